// The monitor's per-sample statistics against PyTorch: tools/make_per_sample_reference.py builds
// three small networks (plain with tanh and ReLU and a dead ReLU unit, gradscope's mlp() with
// residual blocks, a residual block with a bias-free projection) in float64, takes one backward
// per sample on that sample's own cross-entropy term, and stores every per-sample field of
// LayerStats for each Linear and for the network. Here the gradscope twin of each network gets
// the same parameters, runs one monitored forward and backward on the whole batch with
// reduction mean and with sum, and must reproduce all of them.
//
// Tolerance: 1e-10 relative. Both sides work in double and differ only in rounding: the forward
// and backward sum in other orders (a few eps per operation through three or four layers), and
// the monitor uses one-pass formulas (tr Sigma = (sum |g_i|^2 - B |g_bar|^2)/(B - 1),
// sigma_j^2 = m_j - g_bar_j^2) where the script uses two passes. The script refuses data on
// which those formulas' condition numbers exceed 1e3, so the rounding stays below about
// 1e3 * 10 * B * eps ~ 2e-11 even in the worst case (measured: 1.8e-14, GCC 12 -O3). A wrong
// convention is off by far more: the factor B = 10 of a mean-reduced loss, the (B - 1)/B = 0.9
// of a biased estimator, a forgotten bias term (its share of |g_i|^2 is at least 1/(1 + |a_i|^2)).
#include "support/reference.hpp"
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

constexpr const char* kFile = "per_sample_reference.json";
constexpr double kRtol = 1e-10;

using Monitor = diag::GradientMonitor<double>;

// The twins of the script's networks (its NETWORKS), with the module names PyTorch gives them.
std::shared_ptr<Module<double>> plain_net() {
    Rng rng(0);  // every parameter is overwritten from the file
    auto net = std::make_shared<Sequential<double>>();
    net->add(std::make_shared<Linear<double>>(5, 7, rng));
    net->add(std::make_shared<Activation<double, Tanh>>());
    net->add(std::make_shared<Linear<double>>(7, 6, rng));
    net->add(std::make_shared<Activation<double, ReLU>>());
    net->add(std::make_shared<Linear<double>>(6, 4, rng));
    return net;
}

std::shared_ptr<Module<double>> residual_net() {
    return mlp<double>(
        {.widths = {5, 6, 6, 6, 4}, .activation = Tanh{}, .residual = true, .residual_scale = 0.5});
}

std::shared_ptr<Module<double>> projection_net() {
    Rng rng(0);
    auto branch = std::make_shared<Sequential<double>>();
    branch->add(std::make_shared<Activation<double, Tanh>>());
    branch->add(std::make_shared<Linear<double>>(6, 4, rng));
    auto net = std::make_shared<Sequential<double>>();
    net->add(std::make_shared<Linear<double>>(5, 6, rng));
    net->add(std::make_shared<Activation<double, ReLU>>());
    net->add(std::make_shared<Residual<double>>(branch, 6, 4, rng,
                                                ResidualOptions{.branch_scale = 0.5}));
    net->add(std::make_shared<Linear<double>>(4, 3, rng));
    return net;
}

struct Network {
    const char* name;
    std::shared_ptr<Module<double>> (*build)();
};

const std::vector<Network>& networks() {
    static const std::vector<Network> list = {
        {"plain", &plain_net}, {"residual", &residual_net}, {"projection", &projection_net}};
    return list;
}

std::vector<std::string> case_names() {
    std::vector<std::string> out;
    for (const Network& n : networks()) {
        for (const char* r : {"mean", "sum"}) out.push_back(std::string(n.name) + "_" + r);
    }
    return out;
}

// ---- Reading the per-sample part of a case, with errors that say what is wrong where ----------

[[noreturn]] void bad_data(const std::string& where, const std::string& what) {
    throw std::runtime_error(std::string(kFile) + ": " + where + ": " + what +
                             " (regenerate it with tools/make_per_sample_reference.py)");
}

double number_at(const nlohmann::json& stats, const char* key, const std::string& where) {
    if (!stats.is_object() || !stats.contains(key))
        bad_data(where, std::string("no '") + key + "'");
    const nlohmann::json& v = stats.at(key);
    if (!v.is_number()) bad_data(where, std::string("'") + key + "' is not a number");
    return v.get<double>();
}

// A layer's (or the network's) reference statistics.
struct ReferenceStats {
    std::vector<double> sq_norms;  // empty for the network (the file does not need them there)
    double norm_mean, norm_max, q10, q50, q90;
    double mean_grad_sq_norm, trace_covariance, gradient_noise_scale, gsnr, gsnr_parameters;
};

ReferenceStats read_stats(const nlohmann::json& stats, const std::string& where,
                          std::size_t batch) {
    ReferenceStats r{};
    if (!stats.is_object() || !stats.contains("sq_norms") || !stats.at("sq_norms").is_array()) {
        bad_data(where, "no 'sq_norms' array");
    }
    for (const auto& v : stats.at("sq_norms")) {
        if (!v.is_number()) bad_data(where, "'sq_norms' holds something other than numbers");
        r.sq_norms.push_back(v.get<double>());
    }
    if (r.sq_norms.size() != batch) {
        bad_data(where, "'sq_norms' has " + std::to_string(r.sq_norms.size()) +
                            " values for a batch of " + std::to_string(batch));
    }
    r.norm_mean = number_at(stats, "per_sample_norm_mean", where);
    r.norm_max = number_at(stats, "per_sample_norm_max", where);
    r.q10 = number_at(stats, "per_sample_norm_q10", where);
    r.q50 = number_at(stats, "per_sample_norm_q50", where);
    r.q90 = number_at(stats, "per_sample_norm_q90", where);
    r.mean_grad_sq_norm = number_at(stats, "mean_grad_sq_norm", where);
    r.trace_covariance = number_at(stats, "trace_covariance", where);
    r.gradient_noise_scale = number_at(stats, "gradient_noise_scale", where);
    r.gsnr = number_at(stats, "gsnr", where);
    r.gsnr_parameters = number_at(stats, "gsnr_parameters", where);
    return r;
}

// The labels, stored as a [1 x B] row of whole numbers.
std::vector<int> labels_of(const Matrix<double>& row, const std::string& where) {
    if (row.rows() != 1) bad_data(where, "'labels' is not one row");
    std::vector<int> out;
    for (Index j = 0; j < row.cols(); ++j) {
        const double v = row(0, j);
        if (!(v >= 0.0 && v == std::floor(v) && v < 1e6)) {
            bad_data(where, "label " + std::to_string(j) + " is not a class index");
        }
        out.push_back(static_cast<int>(v));
    }
    return out;
}

Reduction reduction_of(const nlohmann::json& c, const std::string& where) {
    const std::string r = c.contains("reduction") && c.at("reduction").is_string()
                              ? c.at("reduction").get<std::string>()
                              : std::string();
    if (r == "mean") return Reduction::mean;
    if (r == "sum") return Reduction::sum;
    bad_data(where, "'reduction' must be \"mean\" or \"sum\", got \"" + r + "\"");
}

// ---- The comparison ------------------------------------------------------------------------

void check_close(double actual, double expected, const char* what) {
    INFO(what << ": gradscope " << actual << ", PyTorch " << expected);
    CHECK(std::abs(actual - expected) <= kRtol * std::abs(expected));
}

void check_stats(const ReferenceStats& e, double norm_mean, double norm_max, double q10, double q50,
                 double q90, double mean_sq, double trace, double noise_scale, double gsnr,
                 double gsnr_parameters) {
    check_close(norm_mean, e.norm_mean, "mean |g_i|");
    check_close(norm_max, e.norm_max, "max |g_i|");
    check_close(q10, e.q10, "q10 |g_i|");
    check_close(q50, e.q50, "median |g_i|");
    check_close(q90, e.q90, "q90 |g_i|");
    check_close(mean_sq, e.mean_grad_sq_norm, "|g_bar|^2");
    check_close(trace, e.trace_covariance, "tr Sigma");
    check_close(noise_scale, e.gradient_noise_scale, "B_simple");
    check_close(gsnr, e.gsnr, "GSNR");
    CHECK(gsnr_parameters == e.gsnr_parameters);  // a count: exact
}

void check_case(const std::string& name, Module<double>& net) {
    const ReferenceCase c(kFile, name);
    const std::string where = "case " + name;
    const Reduction reduction = reduction_of(c.json, where);

    // The twin has exactly the file's parameters, by name.
    std::set<std::string> in_file;
    for (const auto& [key, value] : c.json.at("inputs").items()) {
        if (key != "x" && key != "labels") in_file.insert(key);
    }
    std::set<std::string> in_twin;
    for (auto& [pname, p] : net.named_parameters()) {
        in_twin.insert(pname);
        if (!in_file.contains(pname)) bad_data(where, "no parameter '" + pname + "'");
        p.assign(c.input(pname));
    }
    if (in_file != in_twin) bad_data(where, "parameters the gradscope twin does not have");

    const Matrix<double> x = c.input("x");
    const std::vector<int> labels = labels_of(c.input("labels"), where);
    if (static_cast<Index>(labels.size()) != x.rows()) {
        bad_data(where, std::to_string(labels.size()) + " labels for " + std::to_string(x.rows()) +
                            " inputs");
    }
    const auto batch = static_cast<std::size_t>(x.rows());

    Monitor monitor(net, {.per_sample = {.enabled = true, .loss_reduction = reduction}});
    net.zero_grad();
    const TensorD logits = net(TensorD::constant(x));
    TensorD loss = cross_entropy(logits, labels, reduction);
    loss.backward();

    // First the twin itself: same function, same batch gradient.
    c.check_output("logits", logits);
    c.check_output("loss", loss);
    for (auto& [pname, p] : net.named_parameters()) {
        INFO("batch gradient of " << pname);
        REQUIRE(p.has_grad());
        CHECK(all_close(p.grad(), c.grad(pname), kRtol, 1e-14));
    }

    // Then every per-sample field of every Linear, in the monitor's (module-tree) order.
    const nlohmann::json& ps = c.json.at("per_sample");
    const auto order = ps.at("layer_order").get<std::vector<std::string>>();
    const diag::GradientProfile& profile = monitor.last();
    std::vector<std::string> watched;
    for (const diag::LayerStats& s : profile.layers()) watched.push_back(s.name);
    INFO("the monitor watches " << ::Catch::Detail::stringify(watched) << ", the file has "
                                << ::Catch::Detail::stringify(order));
    REQUIRE(watched == order);
    for (const diag::LayerStats& s : profile.layers()) {
        INFO("layer " << s.name);
        const ReferenceStats e =
            read_stats(ps.at("layers").at(s.name), where + " layer " + s.name, batch);
        REQUIRE(s.per_sample_sq_norms.size() == batch);
        for (std::size_t i = 0; i < batch; ++i) {
            INFO("sample " << i);
            check_close(s.per_sample_sq_norms[i], e.sq_norms[i], "|g_i|^2");
        }
        check_stats(e, s.per_sample_norm_mean, s.per_sample_norm_max, s.per_sample_norm_q10,
                    s.per_sample_norm_q50, s.per_sample_norm_q90, s.mean_grad_sq_norm,
                    s.trace_covariance, s.gradient_noise_scale, s.gsnr, s.gsnr_parameters);
    }

    INFO("the network");
    const ReferenceStats e = read_stats(ps.at("network"), where + " network", batch);
    const diag::PerSampleNetworkStats n = profile.per_sample_network();
    CHECK(n.batch == batch);
    CHECK(n.layers == order.size());
    check_stats(e, n.norms.mean, n.norms.max, n.norms.q10, n.norms.q50, n.norms.q90,
                n.mean_grad_sq_norm, n.trace_covariance, n.gradient_noise_scale, n.gsnr,
                [&profile] {
                    double count = 0.0;
                    for (const auto& s : profile.layers()) count += s.gsnr_parameters;
                    return count;
                }());
}

// Both reductions of one network, each on a freshly built twin.
void check_network(const std::string& name) {
    const auto n = std::find_if(networks().begin(), networks().end(),
                                [&name](const Network& x) { return x.name == name; });
    REQUIRE(n != networks().end());
    for (const char* r : {"mean", "sum"}) {
        INFO("reduction " << r);
        check_case(name + "_" + r, *n->build());
    }
}

}  // namespace

TEST_CASE("the reference file holds exactly the cases this test builds",
          "[per_sample][reference]") {
    std::vector<std::string> in_file;
    for (const auto& [name, value] : reference_file(kFile).at("cases").items()) {
        in_file.push_back(name);
    }
    std::vector<std::string> here = case_names();
    std::sort(in_file.begin(), in_file.end());
    std::sort(here.begin(), here.end());
    CHECK(in_file == here);
}

TEST_CASE("per-sample statistics equal PyTorch's per-sample loop: plain mlp with a dead ReLU",
          "[per_sample][reference]") {
    check_network("plain");
}

TEST_CASE("per-sample statistics equal PyTorch's per-sample loop: mlp with residual blocks",
          "[per_sample][reference]") {
    check_network("residual");
}

TEST_CASE(
    "per-sample statistics equal PyTorch's per-sample loop: residual block with a bias-free "
    "projection",
    "[per_sample][reference]") {
    check_network("projection");
}

TEST_CASE("the mean and sum cases store the same per-sample statistics",
          "[per_sample][reference]") {
    // gradscope's convention (diag/monitor.hpp): g_i is the gradient of l_i whatever the
    // reduction, so the file's two reductions of one network must agree; the script's loss of a
    // batch of one is the same number under both (a mean of one term), so they agree bit for bit.
    const auto& cases = reference_file(kFile).at("cases");
    for (const Network& n : networks()) {
        INFO("network " << n.name);
        const auto& mean = cases.at(std::string(n.name) + "_mean").at("per_sample");
        const auto& sum = cases.at(std::string(n.name) + "_sum").at("per_sample");
        CHECK(mean == sum);
    }
}

TEST_CASE("bad per-sample reference data is refused with a message that says where",
          "[per_sample][reference]") {
    const nlohmann::json good =
        reference_file(kFile).at("cases").at("plain_mean").at("per_sample").at("network");
    CHECK_NOTHROW(read_stats(good, "network", 10));

    nlohmann::json missing = good;
    missing.erase("gsnr");
    REQUIRE_THROWS_MATCHES(
        read_stats(missing, "case x network", 10), std::runtime_error,
        MessageContains({kFile, "case x network", "no 'gsnr'", "make_per_sample_reference.py"}));
    nlohmann::json text = good;
    text["trace_covariance"] = "0.5";
    REQUIRE_THROWS_MATCHES(read_stats(text, "n", 10), std::runtime_error,
                           MessageContains("'trace_covariance' is not a number"));
    nlohmann::json short_norms = good;
    short_norms["sq_norms"].erase(0);
    REQUIRE_THROWS_MATCHES(read_stats(short_norms, "n", 10), std::runtime_error,
                           MessageContains("'sq_norms' has 9 values for a batch of 10"));
    REQUIRE_THROWS_MATCHES(labels_of(Matrix<double>::Constant(1, 2, 0.5), "n"), std::runtime_error,
                           MessageContains("label 0 is not a class index"));
    REQUIRE_THROWS_MATCHES(reduction_of(nlohmann::json{{"reduction", "none"}}, "n"),
                           std::runtime_error,
                           MessageContains("'reduction' must be \"mean\" or \"sum\""));
    REQUIRE_THROWS_MATCHES(ReferenceCase("no_such_reference.json", "plain_mean"),
                           std::runtime_error, MessageContains("cannot open reference data"));
}
