// The sweep's reports: the text table, CSV, JSON and the SVG plot, on hand-made runs (and one
// measured one) so that every number can be checked.
#include "support/testing.hpp"

#include <gradscope/diag.hpp>
#include <gradscope/diag/json_report.hpp>

#include <cctype>
#include <deque>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace gradscope;
using diag::SweepRun;

namespace {

diag::GradientProfile profile_of(const std::vector<double>& output_grad_norms) {
    std::vector<diag::LayerStats> layers;
    for (std::size_t l = 0; l < output_grad_norms.size(); ++l) {
        diag::LayerStats s;
        s.name = "layers." + std::to_string(l);
        s.output_grad_norm = output_grad_norms[l];
        if (std::isnan(s.output_grad_norm)) s.nonfinite = 1;  // as the monitor counts a NaN delta
        s.weight_grad_norm = 0.1 * output_grad_norms[l] + 1.0 / 3.0;
        s.activation_norm = 10.0 + static_cast<double>(l) / 7.0;
        layers.push_back(s);
    }
    return diag::GradientProfile(std::move(layers));
}

SweepRun make_run(std::string activation, std::string init, std::string variant,
                  const std::vector<double>& norms,
                  std::optional<double> predicted = std::nullopt) {
    SweepRun run{.activation = std::move(activation),
                 .init = std::move(init),
                 .variant = std::move(variant),
                 .depth = static_cast<int>(norms.size()),
                 .width = 64,
                 .batch = 32,
                 .seed = 7};
    diag::record_profile(run, profile_of(norms));
    run.predicted_gain_per_layer = predicted;
    return run;
}

// Three runs: a vanishing one with a prediction, a healthy one initialised by variance, and
// one whose ratio is NaN.
std::vector<SweepRun> sample_runs() {
    std::vector<SweepRun> runs;
    runs.push_back(
        make_run("sigmoid", "xavier", "plain", {1e-7, 3e-5, 0.01, 0.3}, 0.0712345678901234));
    auto by_variance = make_run("relu", "gaussian", "residual", {0.9, 1.0 / 3.0, 1.1});
    by_variance.sigma_w2 = 2.0;
    runs.push_back(by_variance);
    runs.push_back(make_run("tanh", "he", "batchnorm", {std::nan(""), 1.0, 2.0}));
    return runs;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// RFC 4180 fields of one line (no line breaks inside fields here).
std::vector<std::string> csv_fields(const std::string& line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                out.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                out.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            out.emplace_back();
        } else {
            out.back() += c;
        }
    }
    return out;
}

double parse_double(const std::string& text) {
    double value = 0.0;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    REQUIRE(result.ec == std::errc());
    REQUIRE(result.ptr == text.data() + text.size());
    return value;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos;
         pos = text.find(what, pos + what.size()))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("record_profile derives the ratio, the gain per layer and the verdict", "[report]") {
    const auto runs = sample_runs();
    CHECK(runs[0].ratio_first_last == Approx(1e-7 / 0.3));
    CHECK(runs[0].gain_per_layer == Approx(std::pow(1e-7 / 0.3, 1.0 / 3.0)));
    CHECK(runs[0].verdict == diag::Verdict::vanishing);
    CHECK(runs[1].verdict == diag::Verdict::healthy);
    CHECK(std::isnan(runs[2].ratio_first_last));
    CHECK(runs[2].verdict == diag::Verdict::nonfinite);
}

TEST_CASE("the table has a header line and one aligned row per run", "[report][table]") {
    const auto runs = sample_runs();
    const auto lines = lines_of(diag::format_table(runs));
    REQUIRE(lines.size() == 1 + runs.size());
    for (const char* column : {"activation", "init", "variant", "depth", "ratio", "gain/layer",
                               "predicted", "verdict"}) {
        CHECK(lines[0].find(column) != std::string::npos);
    }
    CHECK(lines[1].find("sigmoid") == 0);
    CHECK(lines[1].find("3.33e-07") != std::string::npos);  // the ratio, 3 significant digits
    CHECK(lines[1].find("vanishing") != std::string::npos);
    CHECK(lines[2].find("sigma_w2=2") != std::string::npos);
    CHECK(lines[3].find("non-finite") != std::string::npos);
    // Aligned: every line puts the verdict column at the same place.
    const auto verdict_at = lines[0].find("verdict");
    CHECK(lines[1].find("vanishing") == verdict_at);
    CHECK(lines[2].find("healthy") == verdict_at);
    CHECK(lines[3].find("non-finite") == verdict_at);
    // A missing prediction is a dash, and so is a NaN measurement.
    CHECK(lines[2].find(" - ") != std::string::npos);
    CHECK(lines[3].find("nan") == std::string::npos);
    CHECK(lines_of(diag::format_table({})).size() == 1);
}

namespace {
// Two hidden layers and the output layer, as a monitor records them; the output layer has no
// activation, so its saturated and dead fractions do not apply.
diag::GradientProfile sample_profile(bool with_updates) {
    std::vector<diag::LayerStats> layers(3);
    const char* names[] = {"layers.0.linear", "layers.1.linear", "layers.2.linear"};
    for (std::size_t l = 0; l < 3; ++l) {
        layers[l].name = names[l];
        layers[l].output_grad_norm = 0.5 * static_cast<double>(l + 1);  // 0.5, 1, 1.5
        layers[l].weight_grad_norm = 2e-3;
        layers[l].weight_norm = 4.0;
        if (with_updates) layers[l].update_ratio = 1.25e-3;
        if (l < 2) {
            layers[l].saturated_fraction = 0.25;
            layers[l].dead_fraction = 0.0;
        }
    }
    return diag::GradientProfile(layers, 7);
}
}  // namespace

TEST_CASE("a profile's table: a row per layer, '-' where a value does not apply, the verdict",
          "[report][table]") {
    const auto lines = lines_of(diag::format_profile(sample_profile(false)));
    REQUIRE(lines.size() == 5);  // header, three layers, verdict
    CHECK(lines[0].find("update") == std::string::npos);  // no layer has one: no column
    for (const char* column : {"layer", "|dL/dz|", "|dL/dW|", "|W|", "saturated", "dead"}) {
        CHECK(lines[0].find(column) != std::string::npos);
    }
    CHECK(lines[1].find("layers.0.linear") == 0);
    CHECK(lines[1].find("5.00e-01") != std::string::npos);
    CHECK(lines[1].find("0.250") != std::string::npos);
    CHECK(lines[3].find("layers.2.linear") == 0);
    CHECK(lines[3].find("nan") == std::string::npos);
    CHECK(lines[3].substr(lines[3].size() - 1) == "-");  // the dead fraction: not applicable
    // Numbers right-aligned: every row's |W| ends where the header's does.
    const auto w_end = lines[0].find("|W|") + 3;
    for (std::size_t r = 1; r <= 3; ++r) CHECK(lines[r].find("4.00e+00") + 8 == w_end);
    CHECK(lines[4] == "verdict: healthy (|dL/dz_1| / |dL/dz_L| = 3.33e-01)");
    std::ostringstream printed;
    printed << sample_profile(false);
    CHECK(printed.str() == diag::format_profile(sample_profile(false)));

    const auto updated = lines_of(diag::format_profile(sample_profile(true)));
    CHECK(updated[0].find("update/|W|") != std::string::npos);
    CHECK(updated[1].find("1.25e-03") != std::string::npos);
    // Thresholds that call a ratio of 1/3 vanishing.
    CHECK(diag::format_profile(sample_profile(true), {.vanishing_ratio = 0.5}).find("vanishing") !=
          std::string::npos);
    REQUIRE_THROWS_MATCHES(diag::text_table({"a", "b"}, {false}, {}), value_error,
                           testing::MessageContains({"text_table", "2 columns", "1 alignments"}));
}

TEST_CASE("one formatter: each style as printf would write it, without the locale",
          "[report][format]") {
    using diag::format_number;
    using diag::Notation;
    CHECK(format_number(0.1) == "0.1");  // shortest round trip
    CHECK(format_number(1.0 / 3.0) == "0.3333333333333333");
    CHECK(format_number(3.3e-7) == "3.3e-07");
    CHECK(format_number(2.0) == "2");
    CHECK(format_number(1234.5678, {Notation::fixed, 2}) == "1234.57");
    CHECK(format_number(3.3333e-7, diag::table_ratio) == "3.33e-07");
    CHECK(format_number(1.0, diag::table_gain) == "1.000");  // "%#.4g" keeps the zeros
    CHECK(format_number(0.000123456, diag::table_gain) == "0.0001235");
    CHECK(format_number(123456.0, diag::table_gain) == "1.235e+05");
    CHECK(format_number(9.9996, diag::table_gain) ==
          "10.00");  // rounding carries into the exponent
    CHECK(format_number(0.5, {Notation::general, 3}) == "0.5");
    CHECK(format_number(2e6, {Notation::general, 6}) == "2e+06");
    for (const auto style :
         {diag::round_trip, diag::svg_coordinate, diag::table_ratio, diag::table_gain}) {
        CHECK(format_number(std::nan(""), style) == "nan");
        CHECK(format_number(std::numeric_limits<double>::infinity(), style) == "inf");
        CHECK(format_number(-std::numeric_limits<double>::infinity(), style) == "-inf");
    }
}

TEST_CASE("a missing number is '-' in a table, an empty CSV field and JSON null",
          "[report][format]") {
    const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
    CHECK(diag::table_number(nan, diag::table_gain) == "-");
    CHECK(diag::table_number(std::nullopt, diag::table_gain) == "-");
    CHECK(diag::table_number(inf, diag::table_gain) == "inf");
    CHECK(diag::csv_number(nan).empty());
    CHECK(diag::csv_number(std::optional<double>{}).empty());
    CHECK(diag::csv_number(-inf) == "-inf");
    CHECK(diag::csv_number(0.1) == "0.1");
    CHECK(diag::json_number(nan).is_null());
    CHECK(diag::json_number(inf).is_null());
    CHECK(diag::json_number(std::optional<double>{}).is_null());
    CHECK(diag::json_number(0.25).get<double>() == 0.25);
}

TEST_CASE("CSV has a header and one row per run and layer, numbers at full precision",
          "[report][csv]") {
    auto runs = sample_runs();
    runs[0].activation = "odd, \"quoted\" name";  // needs RFC 4180 quoting
    std::ostringstream out;
    diag::write_csv(out, runs);
    const auto lines = lines_of(out.str());
    REQUIRE(lines.size() == 1 + 4 + 3 + 3);
    const auto header = csv_fields(lines[0]);
    const std::vector<std::string> expected{"activation",
                                            "init",
                                            "sigma_w2",
                                            "sigma_b2",
                                            "q_star",
                                            "xi_c",
                                            "variant",
                                            "depth",
                                            "width",
                                            "batch",
                                            "dtype",
                                            "seed",
                                            "layer",
                                            "output_grad_norm",
                                            "weight_grad_norm",
                                            "activation_norm",
                                            "ratio_first_last",
                                            "gain_per_layer",
                                            "predicted_gain_per_layer",
                                            "verdict"};
    CHECK(header == expected);

    const auto first = csv_fields(lines[1]);
    REQUIRE(first.size() == expected.size());
    CHECK(first[0] == "odd, \"quoted\" name");
    CHECK(lines[1].rfind("\"odd, \"\"quoted\"\" name\",", 0) == 0);
    CHECK(first[2].empty());               // sigma_w2 not known
    CHECK(parse_double(first[3]) == 0.0);  // sigma_b2
    CHECK(first[4].empty());               // no q_star
    CHECK(first[5].empty());               // xi_c NaN
    CHECK(first[7] == "4");
    CHECK(first[8] == "64");
    CHECK(first[11] == "7");
    CHECK(first[12] == "1");  // layers count from 1, the input side
    const auto& layer0 = runs[0].profile.layers()[0];
    CHECK(parse_double(first[13]) == layer0.output_grad_norm);  // exactly: full precision
    CHECK(parse_double(first[14]) == layer0.weight_grad_norm);
    CHECK(parse_double(first[15]) == layer0.activation_norm);
    CHECK(parse_double(first[16]) == runs[0].ratio_first_last);
    CHECK(parse_double(first[17]) == runs[0].gain_per_layer);
    CHECK(parse_double(first[18]) == *runs[0].predicted_gain_per_layer);
    CHECK(first[19] == "vanishing");
    CHECK(csv_fields(lines[4])[12] == "4");

    const auto by_variance = csv_fields(lines[5]);
    CHECK(parse_double(by_variance[2]) == 2.0);
    CHECK(by_variance[18].empty());  // no prediction
    CHECK(parse_double(csv_fields(lines[6])[13]) == 1.0 / 3.0);

    const auto nan_row = csv_fields(lines[8]);
    CHECK(nan_row[13].empty());  // NaN is missing
    CHECK(nan_row[16].empty());
    CHECK(nan_row[19] == "non-finite");
}

TEST_CASE("JSON has exactly the documented keys, null for what is missing or NaN",
          "[report][json]") {
    const auto runs = sample_runs();
    const nlohmann::json j = diag::to_json(runs);
    REQUIRE(j.is_object());
    REQUIRE(j.size() == 1);
    REQUIRE(j.at("runs").size() == runs.size());

    const std::set<std::string> run_keys{"activation",     "init",
                                         "sigma_w2",       "sigma_b2",
                                         "q_star",         "xi_c",
                                         "variant",        "depth",
                                         "width",          "batch",
                                         "dtype",          "seed",
                                         "layers",         "ratio_first_last",
                                         "gain_per_layer", "predicted_gain_per_layer",
                                         "verdict"};
    const std::set<std::string> layer_keys{"layer", "output_grad_norm", "weight_grad_norm",
                                           "activation_norm"};
    for (const auto& run : j["runs"]) {
        std::set<std::string> keys;
        for (const auto& [key, value] : run.items()) keys.insert(key);
        CHECK(keys == run_keys);
        for (const auto& layer : run["layers"]) {
            std::set<std::string> lkeys;
            for (const auto& [key, value] : layer.items()) lkeys.insert(key);
            CHECK(lkeys == layer_keys);
        }
    }
    const auto& first = j["runs"][0];
    CHECK(first["activation"] == "sigmoid");
    CHECK(first["sigma_w2"].is_null());
    CHECK(first["depth"] == 4);
    CHECK(first["seed"] == 7);
    CHECK(first["dtype"] == "float");
    CHECK(first["verdict"] == "vanishing");
    CHECK(first["layers"][0]["layer"] == 1);
    CHECK(first["layers"][3]["layer"] == 4);
    CHECK(first["predicted_gain_per_layer"].get<double>() == *runs[0].predicted_gain_per_layer);

    CHECK(j["runs"][1]["sigma_w2"].get<double>() == 2.0);
    CHECK(j["runs"][1]["predicted_gain_per_layer"].is_null());
    CHECK(j["runs"][2]["ratio_first_last"].is_null());  // NaN
    CHECK(j["runs"][2]["gain_per_layer"].is_null());
    CHECK(j["runs"][2]["layers"][0]["output_grad_norm"].is_null());

    // Through text and back, the ratio is the same double.
    const auto parsed = nlohmann::json::parse(j.dump());
    CHECK(parsed["runs"][0]["ratio_first_last"].get<double>() == runs[0].ratio_first_last);
    CHECK(parsed["runs"][1]["layers"][1]["output_grad_norm"].get<double>() == 1.0 / 3.0);
}

TEST_CASE("JSON writes infinities as null", "[report][json]") {
    auto run = make_run("relu", "naive", "plain", {std::numeric_limits<double>::infinity(), 1.0});
    const auto j = diag::to_json(std::vector<SweepRun>{run});
    CHECK(j["runs"][0]["ratio_first_last"].is_null());
    CHECK(j["runs"][0]["layers"][0]["output_grad_norm"].is_null());
    CHECK_NOTHROW(nlohmann::json::parse(j.dump()));
}

TEST_CASE("the SVG plot has one path per series, a legend and escaped labels", "[report][svg]") {
    const std::vector<diag::SvgSeries> series{
        {.name = "relu/he/plain", .points = {{1, 1.0}, {2, 0.5}, {3, 0.25}}},
        {.name = "a<b&c", .points = {{1, 1e-12}, {2, 1e3}}},
        {.name = "say \"hi\"", .points = {{1, 2.0}, {2, 3.0}}},
    };
    const std::string svg = diag::svg_plot(
        series, {.title = "x < y & z", .x_label = "layer", .y_label = "|g|", .log_y = true});
    CHECK(svg.rfind("<svg", 0) == 0);
    CHECK(svg.find("xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
    CHECK(svg.find("viewBox=") != std::string::npos);
    CHECK(svg.find("</svg>") != std::string::npos);
    CHECK(count(svg, "<path") == series.size());
    CHECK(svg.find("relu/he/plain") != std::string::npos);
    CHECK(svg.find("a&lt;b&amp;c") != std::string::npos);
    CHECK(svg.find("a<b&c") == std::string::npos);
    CHECK(svg.find("say &quot;hi&quot;") != std::string::npos);
    CHECK(svg.find("x &lt; y &amp; z") != std::string::npos);
    // Decade ticks from the data: 1e-12 up to 1e3.
    CHECK(svg.find(">1e-12<") != std::string::npos);
    CHECK(svg.find(">1e3<") != std::string::npos);
    CHECK(svg.find(">1e0<") != std::string::npos);
    // No stray markup characters outside tags: every '<' opens a tag or closes one.
    for (auto pos = svg.find('<'); pos != std::string::npos; pos = svg.find('<', pos + 1)) {
        const char next = svg[pos + 1];
        CHECK((std::isalpha(static_cast<unsigned char>(next)) || next == '/'));
    }
}

TEST_CASE("the SVG plot skips non-positive and non-finite values on a log axis, breaking the line",
          "[report][svg]") {
    const double nan = std::nan("");
    const std::vector<diag::SvgSeries> series{
        {.name = "broken",
         .points = {{1, 1.0}, {2, 0.0}, {3, -1.0}, {4, 2.0}, {5, 4.0}, {6, nan}, {7, 1.0}}}};
    const std::string svg = diag::svg_plot(series, {.log_y = true});
    const auto d_at = svg.find(" d=\"");
    REQUIRE(d_at != std::string::npos);
    const std::string d = svg.substr(d_at + 4, svg.find('"', d_at + 4) - d_at - 4);
    CHECK(count(d, "M") == 3);  // (1), (4)-(5), (7): three runs
    CHECK(count(d, "L") == 1);
    CHECK(count(svg, "<circle") == 2);  // the isolated points 1 and 7 are drawn as dots
    CHECK(svg.find("nan") == std::string::npos);
    CHECK(svg.find("inf") == std::string::npos);

    // On a linear axis zero and negative values are drawn.
    const std::string linear = diag::svg_plot(series, {.log_y = false});
    const auto ld = linear.find(" d=\"");
    const std::string d2 = linear.substr(ld + 4, linear.find('"', ld + 4) - ld - 4);
    CHECK(count(d2, "M") == 2);
    CHECK(count(d2, "L") == 4);
}

TEST_CASE("an SVG plot with no series, or no usable point, is a valid empty plot",
          "[report][svg]") {
    for (const auto& series :
         {std::vector<diag::SvgSeries>{},
          std::vector<diag::SvgSeries>{{.name = "empty", .points = {}}},
          std::vector<diag::SvgSeries>{{.name = "zeros", .points = {{1, 0.0}, {2, 0.0}}}}}) {
        std::string svg;
        REQUIRE_NOTHROW(svg = diag::svg_plot(series, {.title = "nothing", .log_y = true}));
        CHECK(svg.rfind("<svg", 0) == 0);
        CHECK(svg.find("</svg>") != std::string::npos);
        CHECK(svg.find("no data") != std::string::npos);
        CHECK(count(svg, "<path") == series.size());
        CHECK(svg.find("nan") == std::string::npos);
    }
}

TEST_CASE("more series than palette colours get dash patterns, and every one is in the legend",
          "[report][svg]") {
    std::vector<diag::SvgSeries> series;
    for (int k = 0; k < 25; ++k) {
        series.push_back(
            {.name = "series " + std::to_string(k), .points = {{0, 1.0 + k}, {1, 2.0 + k}}});
    }
    const std::string svg = diag::svg_plot(series, {.title = "many"});
    CHECK(count(svg, "<path") == 25);
    for (int k = 0; k < 25; ++k)
        CHECK(svg.find(">series " + std::to_string(k) + "<") != std::string::npos);
    // 10 solid paths (first cycle) and 15 dashed ones, each once on the plot and once in the legend.
    CHECK(count(svg, "stroke-dasharray") == 2 * 15);
}

TEST_CASE("a scatter series draws a dot per point with its hover text, and no line",
          "[report][svg]") {
    const std::vector<diag::SvgSeries> series{
        {.name = "runs",
         .points = {{1.0, 2.0}, {3.0, 4.0}, {std::nan(""), 1.0}},
         .markers = true,
         .point_titles = {"first & one", "second", "skipped"}},
        {.name = "y = x", .points = {{1.0, 1.0}, {4.0, 4.0}}, .dash = "4 4"},
    };
    const std::string svg = diag::svg_plot(series);
    CHECK(count(svg, "<path") == 1);  // only the line
    CHECK(count(svg, "class=\"point\"") == 2);
    CHECK(count(svg, "<title>first &amp; one</title>") == 1);
    CHECK(count(svg, "<title>second</title>") == 1);
    CHECK(svg.find("skipped") == std::string::npos);
}

TEST_CASE("with hover_values every drawable point of a line shows its exact values",
          "[report][svg]") {
    const std::vector<diag::SvgSeries> series{
        {.name = "loss", .points = {{1, 0.5}, {2, 0.0}, {3, 0.125}}}};
    const std::string plain = diag::svg_plot(series, {.log_y = true});
    CHECK(count(plain, "class=\"point\"") == 0);
    const std::string hover = diag::svg_plot(series, {.log_y = true, .hover_values = true});
    CHECK(count(hover, "class=\"point\"") == 2);  // 0 has no place on a log axis
    CHECK(count(hover, "<title>loss: x = 1, y = 0.5</title>") == 1);
    CHECK(count(hover, "<title>loss: x = 3, y = 0.125</title>") == 1);
}

TEST_CASE("a log x axis has decade ticks and skips non-positive x", "[report][svg]") {
    const std::vector<diag::SvgSeries> series{
        {.name = "s", .points = {{0.0, 1.0}, {1e-3, 1.0}, {10.0, 2.0}, {1e4, 3.0}}}};
    const std::string svg = diag::svg_plot(series, {.log_x = true});
    CHECK(svg.find(">1e-3<") != std::string::npos);
    CHECK(svg.find(">1e4<") != std::string::npos);
    const auto d_at = svg.find(" d=\"");
    const std::string d = svg.substr(d_at + 4, svg.find('"', d_at + 4) - d_at - 4);
    CHECK(count(d, "M") == 1);
    CHECK(count(d, "L") == 2);
}

TEST_CASE("the gradient plot of a measured sweep run has one line per run, layers from 1",
          "[report][svg]") {
    SweepRun run{.activation = "tanh",
                 .init = "xavier",
                 .depth = 5,
                 .width = 32,
                 .batch = 16,
                 .dtype = "double"};
    diag::record_profile(run, diag::measure_depth<double>(Tanh{}, init::xavier_normal(),
                                                          {.depth = 5, .width = 32, .batch = 16}));
    REQUIRE(run.profile.size() == 5);
    const auto series = diag::gradient_series({run, run});
    REQUIRE(series.size() == 2);
    CHECK(series[0].name == "tanh/xavier/plain");
    CHECK(series[0].points.front().first == 1.0);
    CHECK(series[0].points.back().first == 5.0);
    const std::string svg = diag::svg_gradient_plot({run}, "depth 5");
    CHECK(svg.find("layer (input side = 1)") != std::string::npos);
    CHECK(svg.find("|dL/dz_l|") != std::string::npos);
    CHECK(count(svg, "<path") == 1);
}

namespace {

// Two monitored SGD steps of a small tanh network: the first step's record has every statistic.
std::deque<diag::GradientProfile> monitored_history() {
    auto net = mlp<double>({.widths = {5, 8, 8, 3}, .activation = Tanh{}, .seed = 4});
    // Per-sample mode on, so that its columns hold numbers (the loss below is a sum).
    diag::GradientMonitor<double> monitor(
        *net, {.per_sample = {.enabled = true, .loss_reduction = Reduction::sum}});
    SGD<double> sgd(net->parameters(), {.lr = 0.1});
    const auto x = TensorD::constant(testing::normal(6, 5, 3));
    for (int step = 0; step < 2; ++step) {
        sgd.zero_grad();
        sum(square((*net)(x))).backward();
        sgd.step();
    }
    return monitor.history();
}

}  // namespace

TEST_CASE(
    "a monitor's history as CSV: a column per statistic, a row per step and layer, values that read back",
    "[report][csv]") {
    const auto history = monitored_history();
    std::ostringstream out;
    diag::write_history_csv(out, history);
    const auto lines = lines_of(out.str());
    std::string expected = "step,layer,name";
    for (const auto& s : diag::layer_statistics<double>()) expected += std::string(",") + s.name;
    CHECK(lines.at(0) == expected + ",nonfinite");

    std::vector<std::vector<std::string>> rows;
    for (std::size_t i = 1; i < lines.size(); ++i) rows.push_back(csv_fields(lines[i]));
    REQUIRE(rows.size() == 2 * 3);
    const auto statistics = diag::layer_statistics<double>();
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const diag::LayerStats& stats = history[r / 3].layers()[r % 3];
        REQUIRE(rows[r].size() == 3 + statistics.size() + 1);
        CHECK(rows[r][2] == stats.name);
        for (std::size_t k = 0; k < statistics.size(); ++k) {
            const double value = stats.*statistics[k].field;
            INFO(statistics[k].name << " in row " << r);
            if (std::isnan(value)) {
                CHECK(rows[r][3 + k].empty());
            } else {
                CHECK(std::stod(rows[r][3 + k]) == value);  // round-trip precision
            }
        }
    }
}

TEST_CASE("a monitor's history as JSON: what each statistic means, then every step's layers",
          "[report][json]") {
    const auto history = monitored_history();
    const nlohmann::json j = diag::history_json(history);
    const auto statistics = diag::layer_statistics<double>();
    REQUIRE(j["statistics"].size() == statistics.size());
    REQUIRE(j["steps"].size() == 2);
    const auto& first = j["steps"][0]["layers"][1];
    CHECK(first["name"] == history[0].layers()[1].name);
    for (const auto& s : statistics) {
        INFO(s.name);
        const double value = history[0].layers()[1].*s.field;
        if (std::isnan(value)) {
            CHECK(first[s.name].is_null());
        } else {
            CHECK(first[s.name].get<double>() == value);
        }
    }
    CHECK(
        j["steps"][1]["layers"][1]["update_ratio"].is_null());  // no update followed the last step
}

TEST_CASE("a run on the edge of chaos reports sigma_b2 and q_star, and null for its infinite xi_c",
          "[report][json]") {
    auto run = sample_runs()[1];
    run.init = "critical";
    run.sigma_w2 = 1.7609546396;
    run.sigma_b2 = 0.05;
    run.q_star = 0.570048;
    run.xi_c = std::numeric_limits<double>::infinity();
    const nlohmann::json j = diag::to_json(run);
    CHECK(j["sigma_w2"].get<double>() == 1.7609546396);
    CHECK(j["sigma_b2"].get<double>() == 0.05);
    CHECK(j["q_star"].get<double>() == 0.570048);
    CHECK(j["xi_c"].is_null());
    CHECK(diag::init_label(run) == "critical sigma_b2=0.05");
    run.init = "gaussian";
    CHECK(diag::init_label(run) == "sigma_w2=1.7609546396 sigma_b2=0.05");
}

TEST_CASE(
    "a monitor's history as JSON has the sharpness at the steps that measured it, null at "
    "the others",
    "[report][json][curvature]") {
    auto net = mlp<double>({.widths = {5, 8, 3}, .activation = Tanh{}, .seed = 4});
    diag::GradientMonitor<double> monitor(
        *net, {.sharpness = diag::SharpnessOptions{.every = 2, .per_layer = true}});
    const auto x = TensorD::constant(testing::normal(6, 5, 3));
    for (int step = 0; step < 2; ++step) {
        net->zero_grad();
        auto loss = sum(square((*net)(x)));
        monitor.observe_loss(loss);
        loss.backward();
    }
    const auto& history = monitor.history();
    REQUIRE(history[0].sharpness().measured());
    const nlohmann::json j = diag::history_json(history);
    const auto& measured = j["steps"][0];
    CHECK(measured["sharpness"]["lambda_max"].get<double>() == history[0].sharpness().sharpness);
    CHECK(measured["sharpness"]["products"].get<int>() == history[0].sharpness().products);
    CHECK(measured["sharpness"]["converged"].is_boolean());
    CHECK(measured["layers"][1]["sharpness"].get<double>() == history[0].layers()[1].sharpness);
    CHECK(j["steps"][1]["sharpness"].is_null());
    CHECK(j["steps"][1]["layers"][1]["sharpness"].is_null());
    std::ostringstream csv;
    diag::write_history_csv(csv, history);
    CHECK(csv.str().find(",sharpness,") != std::string::npos);
}
