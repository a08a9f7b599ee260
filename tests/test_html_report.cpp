// The HTML reports (diag/html_report.hpp, diag/sweep_html.hpp) and the heat map they draw
// (diag/svg_heatmap.hpp): self-contained pages whose text is escaped, whose figures are the SVG
// they were given, and whose sweep heat map has one cell per run, coloured by the verdict band
// its ratio falls in and labelled with its exact value. The browser test (tests/browser/)
// opens the pages the programs write in headless Chromium.
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

#include <gradscope/diag.hpp>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::diag;
namespace fs = std::filesystem;
using gradscope::testing::MessageContains;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A run whose |delta_l| falls by `factor` per layer towards the input: ratio factor^(depth-1).
SweepRun run(const std::string& activation, const std::string& init, int depth, double factor,
             std::optional<double> predicted = std::nullopt) {
    std::vector<LayerStats> layers(static_cast<std::size_t>(depth));
    for (int l = 0; l < depth; ++l) {
        layers[static_cast<std::size_t>(l)].name = "layers." + std::to_string(l);
        layers[static_cast<std::size_t>(l)].output_grad_norm = std::pow(factor, depth - 1 - l);
    }
    SweepRun r{.activation = activation, .init = init, .depth = depth,
               .predicted_gain_per_layer = predicted};
    record_profile(r, GradientProfile(std::move(layers)));
    return r;
}

}  // namespace

TEST_CASE("an HTML report escapes its text and holds its figures inline") {
    HtmlReport report("Sweep <1> & \"2\"");
    report.section("First", "a < b and <script>alert(1)</script>");
    report.figure("<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>", "caption & more");
    report.section("Second");
    report.panels({"<svg><circle/></svg>", "<svg><line/></svg>"}, "two");
    report.table({"a", "b"}, {{"1", "<2>"}});
    const std::string html = report.html();
    CHECK(html.starts_with("<!DOCTYPE html>"));
    CHECK(count(html, "<title>Sweep &lt;1&gt; &amp; &quot;2&quot;</title>") == 1);
    CHECK(count(html, "&lt;script&gt;alert(1)&lt;/script&gt;") == 1);
    CHECK(count(html, "<script") == 0);  // no script of ours, and the text's is escaped
    CHECK(count(html, "<section>") == 2);
    CHECK(count(html, "</section>") == 2);
    CHECK(count(html, "<div class=\"panel\">") == 2);
    CHECK(count(html, "<td>&lt;2&gt;</td>") == 1);
    CHECK(report.section_count() == 2);
    CHECK(report.panel_count() == 2);
    // Nothing to fetch: the only URL is the SVG namespace, which is a name, not a request.
    const std::regex url(R"((src|href)\s*=|url\(\s*['"]?http|@import)");
    CHECK_FALSE(std::regex_search(html, url));
}

TEST_CASE("an HTML report refuses a figure that is not one SVG element") {
    HtmlReport report("r");
    CHECK_THROWS_MATCHES(report.figure("<div>not svg</div>"), value_error,
                         MessageContains("a figure must be one <svg> element"));
    CHECK_THROWS_MATCHES(report.panels({"<svg>unterminated"}), value_error,
                         MessageContains("a figure must be one <svg> element"));
}

TEST_CASE("an HTML report is saved whole, or not at all with an error naming the path") {
    gradscope::testing::TempDir dir("gradscope_test_html_");
    HtmlReport report("saved");
    report.section("s", "text");
    report.save(dir.path / "report.html");
    CHECK(read(dir.path / "report.html") == report.html());
    CHECK(dir.files() == std::vector<std::string>{"report.html"});  // no temporary left
    const fs::path nowhere = dir.path / "missing" / "report.html";
    CHECK_THROWS_MATCHES(report.save(nowhere), io_error,
                         MessageContains(nowhere.string() + ": cannot write the report"));
}

TEST_CASE("a categorical heat map labels its cells and colours them by band") {
    SvgHeatMap map{.x_edges = {0, 1, 2},
                   .y_edges = {0, 1},
                   .values = {-7.0, 0.5},
                   .bands = {{-100, -3, "#0000ff", "low"}, {-3, 100, "#00ff00", "fine"}},
                   .x_labels = {"depth 2", "depth <10>"},
                   .y_labels = {"relu/he"},
                   .cell_texts = {"1e-7", "3.2"},
                   .cell_titles = {"first cell", "second cell"}};
    const std::string svg = svg_heatmap(map);
    CHECK(count(svg, "class=\"cell\"") == 2);
    CHECK(count(svg, "fill=\"#0000ff\"><title>first cell</title>") == 1);
    CHECK(count(svg, "fill=\"#00ff00\"><title>second cell</title>") == 1);
    CHECK(count(svg, ">depth &lt;10&gt;</text>") == 1);
    CHECK(count(svg, ">relu/he</text>") == 1);
    CHECK(count(svg, ">low</text>") == 1);  // the colour bar names its bands

    map.x_labels = {"only one"};
    CHECK_THROWS_MATCHES(svg_heatmap(map), value_error,
                         MessageContains("1 x_labels for 2 columns"));
    map.x_labels = {};
    map.cell_texts = {"one"};
    CHECK_THROWS_MATCHES(svg_heatmap(map), value_error,
                         MessageContains("1 cell_texts for 2 cells"));
}

TEST_CASE("compact numbers drop the exponent's plus sign and leading zeros") {
    CHECK(diag::detail::compact_number(2.1e-6) == "2.1e-6");
    CHECK(diag::detail::compact_number(30.0) == "30");
    CHECK(diag::detail::compact_number(8e21) == "8e21");
    CHECK(diag::detail::compact_number(0.8) == "0.8");
    CHECK(diag::detail::compact_number(1.0) == "1");
}

TEST_CASE("the sweep report has one heat-map cell per run, in the verdict's colour band") {
    const std::vector<SweepRun> runs = {
        run("sigmoid", "xavier", 5, 0.1, 0.25),   // ratio 1e-4: vanishing
        run("sigmoid", "xavier", 20, 0.1, 0.25),  // 1e-19: vanished
        run("relu", "he", 5, 1.0, 1.0),           // 1: healthy
        run("relu", "he", 20, 1.0, 1.0),
        run("relu", "naive", 20, 10.0),  // 1e19: exploded; no theory
    };
    const std::string html = sweep_html(runs, {.lines_per_panel = 1}).html();
    // 3 configurations x 2 depths; relu/naive has no depth-5 run: an empty grey cell.
    CHECK(count(html, "class=\"cell\"") == 6);
    CHECK(count(html, "#dddddd\"><title>not measured</title>") == 1);
    const auto bands = diag::detail::ratio_bands({});
    CHECK(count(html, "fill=\"" + bands[1].colour +
                          "\"><title>sigmoid/xavier/plain, depth 5: |delta_1| / |delta_L| = "
                          "0.0001 (vanishing)</title>") == 1);
    CHECK(count(html, "fill=\"" + bands[0].colour + "\"><title>sigmoid/xavier/plain, depth 20") ==
          1);
    CHECK(count(html, "fill=\"" + bands[2].colour + "\"><title>relu/he/plain, depth 20") == 1);
    CHECK(count(html, "fill=\"" + bands[4].colour + "\"><title>relu/naive/plain, depth 20") == 1);
    CHECK(count(html, ">1e-19</text>") == 1);
    // Panels at depth 20, one line each: sigmoid/plain and relu/plain (he, naive).
    CHECK(count(html, "<div class=\"panel\">") == 3);
    CHECK(count(html, "xavier (theory)") >= 1);
    CHECK(count(html, ">y = x</text>") == 1);
    // The scatter: a dot for each of the 4 runs with a prediction, naming the run on hover.
    CHECK(count(html, "<title>relu/he/plain, depth 20: predicted 1, measured 1</title>") == 1);
    CHECK(count(html, "<title>sigmoid/xavier/plain, depth 5: predicted 0.25, measured 0.1</title>") ==
          1);
    CHECK(count(html, "<g class=\"markers\"") == 2);  // sigmoid, relu
    CHECK(bands[1].label == "< 0.001 vanishing");
    CHECK(bands[0].label == "< 1e-6 vanished");
}

namespace {

// A history of `steps` profiles of three layers; |delta_l| = factor^(2 - l) at every step, and
// step `bad` (if any) has a NaN gradient in the middle layer.
std::deque<GradientProfile> history(std::size_t steps, double factor, bool updates,
                                    std::size_t bad = static_cast<std::size_t>(-1)) {
    std::deque<GradientProfile> out;
    for (std::size_t k = 0; k < steps; ++k) {
        std::vector<LayerStats> layers(3);
        for (std::size_t l = 0; l < 3; ++l) {
            layers[l].name = "layers." + std::to_string(l);
            layers[l].output_grad_norm = std::pow(factor, 2.0 - static_cast<double>(l));
            layers[l].dead_fraction = 0.25;
            if (updates) layers[l].update_ratio = 1e-3;
        }
        if (k == bad) {
            layers[1].output_grad_norm = std::nan("");
            layers[1].nonfinite = 7;
        }
        out.emplace_back(std::move(layers), 10 * k);
    }
    return out;
}

}  // namespace

TEST_CASE("the training report bins the steps and keeps the worst verdict of each bin") {
    // 200 steps into 50 columns of 4; step 13 (step number 130) is non-finite.
    const auto runs = history(200, 1e-3, true, 13);
    const std::string html = training_html(runs, {.max_columns = 50}).html();
    // Verdict strip: 50 cells; 3 layers x 50 for the gradient, the updates and dead units.
    CHECK(count(html, "class=\"cell\"") == 50 + 3 * 50 * 3);
    // |delta_1| / |delta_3| = 1e-6: vanished; the bin of steps 120-150 holds the NaN step.
    CHECK(count(html, "<title>step 120-150: non-finite</title>") == 1);
    CHECK(count(html, ": vanishing</title>") == 49);
    CHECK(count(html, "<title>layers.0, steps 0-30: |delta_l| / |delta_L| 1e-6</title>") == 1);
    CHECK(count(html, "<td>130</td><td>layers.1</td><td>7</td>") == 1);
    CHECK(count(html, "Update-to-weight ratio") == 1);
    CHECK(count(html, "Saturated elements") == 0);  // not measured: no panel
}

TEST_CASE("the training report says what was not measured, and refuses an empty history") {
    const auto runs = history(5, 1.0, false);
    const std::string html = training_html(runs).html();
    CHECK(count(html, "Not measured in this run (the monitor&apos;s track_updates was off") == 1);
    CHECK(count(html, "None: every recorded gradient was finite.") == 1);
    CHECK(count(html, ": healthy</title>") == 5);  // one column per step when there are few
    CHECK_THROWS_MATCHES(training_html({}), value_error,
                         MessageContains("the history has no step with layers"));
    // A step at which no gradient reached the first layer has no verdict: a grey cell.
    auto partial = runs;
    partial[2].layers().front().output_grad_norm = not_measured;
    const std::string grey = training_html(partial).html();
    CHECK(count(grey, "<title>step 20: not measured</title>") == 1);
    CHECK(count(grey, ": healthy</title>") == 4);
    CHECK_THROWS_MATCHES(training_html(runs, {.curves = {{}}, .curve_titles = {"a", "b"}}),
                         value_error, MessageContains("2 curve titles for 1 plots"));
}

TEST_CASE("the training report shows the noise scale when the monitor measured per-sample "
          "statistics") {
    auto net = mlp<double>({.widths = {4, 8, 3}, .seed = 3});
    GradientMonitor<double> monitor(*net, {.per_sample = {.enabled = true}});
    const Matrix<double> x = gradscope::testing::normal(16, 4, 5);
    std::vector<int> labels(16);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % 3);
    for (int step = 0; step < 3; ++step) {
        net->zero_grad();
        cross_entropy((*net)(Tensor<double>::constant(x)), labels).backward();
    }
    const auto with = training_html(monitor.history());
    CHECK(count(with.html(), "Is the batch big enough?") == 1);
    CHECK(with.panel_count() == 1 + 4);  // the norms over the steps, and the four per-sample plots
    CHECK(count(with.html(), ">Gradient noise scale against the batch size</text>") == 1);
    CHECK(count(with.html(), ">Batch-size tests: passed below the threshold</text>") == 1);
    CHECK(count(with.html(), ">theta_inner</text>") == 1);

    GradientMonitor<double> plain(*net);
    net->zero_grad();
    cross_entropy((*net)(Tensor<double>::constant(x)), labels).backward();
    const auto without = training_html(plain.history());
    CHECK(count(without.html(), "Is the batch big enough?") == 0);
    CHECK(without.panel_count() == 1);
}

TEST_CASE("the training report plots the sharpness against 2/eta when the monitor measured it") {
    auto net = mlp<double>({.widths = {4, 8, 3}, .activation = Tanh{}, .seed = 3});
    GradientMonitor<double> monitor(*net,
                                    {.sharpness = SharpnessOptions{.every = 2, .per_layer = true}});
    GradientMonitor<double> plain(*net);
    const Matrix<double> x = gradscope::testing::normal(16, 4, 5);
    std::vector<int> labels(16);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % 3);
    for (int step = 0; step < 3; ++step) {
        net->zero_grad();
        auto loss = cross_entropy((*net)(Tensor<double>::constant(x)), labels);
        monitor.observe_loss(loss);
        loss.backward();
    }
    const std::string with = training_html(monitor.history(), {.learning_rate = 0.5}).html();
    CHECK(count(with, ">Sharpness: the Hessian&apos;s top eigenvalue</text>") == 1);
    CHECK(count(with, ">2/eta = 4</text>") == 1);
    CHECK(count(with, ">Sharpness of each layer&apos;s block</text>") == 1);
    // Steps 0 and 2 measured, step 1 not: one column each, two layers.
    CHECK(count(with, ": lambda_max nan</title>") == 2);
    const std::string without = training_html(plain.history()).html();
    CHECK(count(without, "lambda_max") == 0);
}

TEST_CASE("the doctor's diagnosis becomes a report section with its remedies ranked") {
    // A deep tanh network with too small weights: the gradient vanishes, the doctor names the
    // weight scale and prescribes the critical initialisation first.
    auto net = mlp<double>({.widths = {8, 16, 16, 16, 16, 16, 16, 16, 16, 3},
                            .activation = Tanh{},
                            .init = init::normal(0.0, 0.05),
                            .seed = 3});
    Rng rng(11);
    const Matrix<double> x = rng.normal_matrix<double>(32, 8);
    std::vector<int> labels(32);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % 3);
    const Diagnosis d = doctor<double>(*net, x, [&](const TensorD& out) {
        return cross_entropy(out, labels);
    });
    REQUIRE(d.verdict != Verdict::healthy);
    REQUIRE_FALSE(d.remedies.empty());

    HtmlReport report("doctor");
    add_diagnosis(report, d, "At initialisation");
    const std::string html = report.html();
    CHECK(report.section_count() == 1);
    CHECK(count(html, "<h2>At initialisation</h2>") == 1);
    CHECK(count(html, to_string(d.cause)) >= 1);
    // One hover point per Linear layer, and the remedies in their ranked order.
    CHECK(count(html, "class=\"point\"") == d.depth);
    CHECK(count(html, "<title>" + xml_escape(d.layers.front().layer) + ": |delta_l| = ") == 1);
    const auto first = html.find("<td>" + xml_escape(d.remedies.front().action) + "</td>");
    REQUIRE(first != std::string::npos);
    if (d.remedies.size() > 1) {
        CHECK(html.find("<td>" + xml_escape(d.remedies[1].action) + "</td>") > first);
    }
    CHECK(count(html, "<td>" + std::string(to_string(d.remedies.front().predicted_verdict)) +
                          "</td>") >= 1);
    CHECK(doctor_html(d).html().find("<h2>Diagnosis: what to change</h2>") != std::string::npos);
    // A plain network has nothing outside the theory; a listed module is named in the summary.
    CHECK(count(html, "Not modelled by mean-field theory") == 0);
    Diagnosis with_layer_norm = d;
    with_layer_norm.unmodelled = {"layers.0.ln (LayerNorm)", "layers.1.ln (LayerNorm)"};
    CHECK(count(doctor_html(with_layer_norm).html(),
                "Not modelled by mean-field theory: layers.0.ln (LayerNorm), layers.1.ln "
                "(LayerNorm).") == 1);
}
