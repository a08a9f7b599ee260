// Exact Hessian-vector products (nn/hessian.hpp) against PyTorch's double backward:
// tools/make_hessian_reference.py builds gradscope's mlp() in float64 from PyTorch modules with
// gradscope's module names (GELU with batch norm in training mode and cross-entropy; SiLU with
// layer norm and MSE; GELU with batch norm in evaluation mode, residual scale 0.5 and BCE with
// logits and pos_weight), draws every parameter and two directions v and v2, and stores the
// loss, its gradient, and H v and H v2 from autograd.grad(create_graph=True) followed by the
// gradient of g.v. Here the gradscope twin of each network loads the same parameters (and
// running statistics) by name and must reproduce all of them, by Hessian<T>::product and by
// hvp().
//
// Tolerance: 1e-10 relative to each tensor's largest entry. Both sides are float64 and compute
// the same function; they differ only in the order of their sums and in how the second
// derivatives are arranged (PyTorch differentiates its backward graph, gradscope runs tangent
// rules forward over reverse). Every entry of H v is a sum of O(100) products through four
// layers (177 parameters, a batch of 8, normalisation statistics over 6 features or 8 samples),
// so the rounding is of order 100 * eps ~ 2e-14 relative to the entries it sums, with some
// cancellation headroom: 1e-10 leaves a margin of about 1e4 (measured: at most 3.1e-15, GCC 12
// -O3).
// A wrong rule is off by far more: see the last test, where moving one entry of v by 1e-4 moves
// H v by more than 1e-7 relative.
// The build defines the data directory; a bare syntax check (clang++ -fsyntax-only -I tests ...)
// does not, and gets the path from the repository root.
#ifndef GRADSCOPE_TEST_DATA_DIR
#define GRADSCOPE_TEST_DATA_DIR "tests/data"
#endif
#include "support/reference.hpp"
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

constexpr const char* kFile = "hessian_reference.json";
constexpr double kRtol = 1e-10;

const std::vector<std::string>& case_names() {
    static const std::vector<std::string> names = {"gelu_batchnorm_train_ce", "silu_layernorm_mse",
                                                   "gelu_batchnorm_eval_bce"};
    return names;
}

[[noreturn]] void bad_data(const std::string& where, const std::string& what) {
    throw std::runtime_error(std::string(kFile) + ": " + where + ": " + what +
                             " (regenerate it with tools/make_hessian_reference.py)");
}

std::string string_at(const nlohmann::json& j, const char* key, const std::string& where) {
    if (!j.is_object() || !j.contains(key) || !j.at(key).is_string()) {
        bad_data(where, std::string("no string '") + key + "'");
    }
    return j.at(key).get<std::string>();
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

// The gradscope twin of the script's MLP, with the file's parameters and running statistics.
std::shared_ptr<MLP<double>> build_twin(const ReferenceCase& c, const std::string& where) {
    const nlohmann::json& n = c.json.at("network");
    const std::string act = string_at(n, "activation", where);
    const std::string norm_name = string_at(n, "norm", where);
    const std::string mode = string_at(n, "mode", where);
    if (!n.contains("residual_scale") || !n.at("residual_scale").is_number()) {
        bad_data(where, "no number 'residual_scale'");
    }
    const double scale = n.at("residual_scale").get<double>();
    ActivationChoice<double> activation = GELU{};
    if (act == "silu") {
        activation = SiLU{};
    } else if (act != "gelu") {
        bad_data(where, "unknown activation '" + act + "'");
    }
    Normalization norm = Normalization::batch;
    if (norm_name == "layer") {
        norm = Normalization::layer;
    } else if (norm_name != "batch") {
        bad_data(where, "unknown norm '" + norm_name + "'");
    }
    auto net = mlp<double>({.widths = {5, 6, 6, 6, 3},
                            .activation = activation,
                            .norm = norm,
                            .residual = true,
                            .residual_scale = scale});

    // Exactly the file's parameters, by name and in named_parameters() order.
    std::vector<std::string> names;
    for (auto& [pname, p] : net->named_parameters()) {
        names.push_back(pname);
        if (!c.json.at("inputs").contains(pname)) bad_data(where, "no parameter '" + pname + "'");
        p.assign(c.input(pname));
    }
    const auto in_file = c.json.at("parameters").get<std::vector<std::string>>();
    INFO("gradscope names " << ::Catch::Detail::stringify(names) << ", the file "
                            << ::Catch::Detail::stringify(in_file));
    REQUIRE(names == in_file);

    std::size_t buffers_set = 0;
    for (auto& [bname, b] : net->named_buffers()) {
        if (c.json.at("buffers").contains(bname)) {
            b.assign(to_matrix(c.json.at("buffers").at(bname)));
            ++buffers_set;
        }
    }
    REQUIRE(buffers_set == c.json.at("buffers").size());
    if (mode == "eval") {
        REQUIRE(buffers_set > 0);  // non-trivial running statistics, or eval proves little
        net->eval();
    } else if (mode == "train") {
        net->train();
    } else {
        bad_data(where, "unknown mode '" + mode + "'");
    }
    return net;
}

// The case's loss of the network's output.
struct LossOf {
    std::string kind;
    std::vector<int> labels;
    TensorD targets;
    BCEWithLogitsOptions bce;

    LossOf(const ReferenceCase& c, const std::string& where)
        : kind(string_at(c.json, "loss", where)) {
        const auto batch = c.input("x").rows();
        if (kind == "cross_entropy") {
            labels = labels_of(c.input("labels"), where);
            if (static_cast<Index>(labels.size()) != batch)
                bad_data(where, "labels for another batch");
        } else if (kind == "mse" || kind == "bce_with_logits") {
            targets = TensorD::constant(c.input("targets"));
            if (kind == "bce_with_logits") {
                const Matrix<double> pw = c.input("pos_weight");
                bce.pos_weight.assign(pw.data(), pw.data() + pw.size());
            }
        } else {
            bad_data(where, "unknown loss '" + kind + "'");
        }
    }

    TensorD operator()(const TensorD& out) const {
        if (kind == "cross_entropy") return cross_entropy(out, labels);
        if (kind == "mse") return mse_loss(out, targets);
        return binary_cross_entropy_with_logits(out, targets, bce);
    }
};

std::vector<Matrix<double>> by_name(const nlohmann::json& tensors,
                                    const std::vector<std::string>& names,
                                    const std::string& where) {
    std::vector<Matrix<double>> out;
    for (const std::string& n : names) {
        if (!tensors.contains(n)) bad_data(where, "no tensor '" + n + "'");
        out.push_back(to_matrix(tensors.at(n)));
    }
    return out;
}

double largest_entry(const std::vector<Matrix<double>>& tensors) {
    double m = 0.0;
    for (const Matrix<double>& t : tensors) {
        if (t.size() > 0) m = std::max(m, t.cwiseAbs().maxCoeff());
    }
    return m;
}

// A tensor's error, max |actual - expected| relative to the reference's largest entry. A tensor
// whose reference is zero in exact arithmetic holds only rounding noise on both sides (the bias
// of a Linear followed by batch norm in training mode: the batch mean takes any shift of it
// away, so its gradient and every H v on it vanish; PyTorch stores entries of 1e-16), and noise
// relative to noise means nothing: for such a tensor, below 1e-12 of the largest entry of all
// the tensors (`largest`), the error is relative to that largest entry, the scale of the sums
// whose rounding it is.
double error_of(const Matrix<double>& actual, const Matrix<double>& expected, double largest) {
    REQUIRE(actual.rows() == expected.rows());
    REQUIRE(actual.cols() == expected.cols());
    if (expected.size() == 0) return 0.0;
    const double own = expected.cwiseAbs().maxCoeff();
    const double scale = own < 1e-12 * largest ? largest : own;
    return (actual - expected).cwiseAbs().maxCoeff() / scale;
}

double dot(const std::vector<Matrix<double>>& a, const std::vector<Matrix<double>>& b) {
    double s = 0.0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i].cwiseProduct(b[i]).sum();
    return s;
}

// Each tensor within kRtol (by error_of); returns the largest error seen.
double check_tensors(const std::vector<Matrix<double>>& actual,
                     const std::vector<Matrix<double>>& expected,
                     const std::vector<std::string>& names, const char* what) {
    REQUIRE(actual.size() == expected.size());
    const double largest = largest_entry(expected);
    REQUIRE(largest > 0.0);
    double worst = 0.0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        INFO(what << " of " << names[i]);
        const double err = error_of(actual[i], expected[i], largest);
        CHECK(err <= kRtol);
        worst = std::max(worst, err);
    }
    return worst;
}

void check_case(const std::string& name) {
    const ReferenceCase c(kFile, name);
    const std::string where = "case " + name;
    auto net = build_twin(c, where);
    const LossOf loss_of(c, where);
    const TensorD x = TensorD::constant(c.input("x"));
    const auto names = c.json.at("parameters").get<std::vector<std::string>>();
    const auto v = by_name(c.json.at("directions").at("v"), names, where);
    const auto v2 = by_name(c.json.at("directions").at("v2"), names, where);
    const auto gradient = by_name(c.json.at("grads"), names, where);
    const auto hv_torch = by_name(c.json.at("products").at("v"), names, where);
    const auto hv2_torch = by_name(c.json.at("products").at("v2"), names, where);
    const double loss_torch = c.output("loss")(0, 0);

    Hessian<double> hessian(loss_of((*net)(x)), net->parameters());
    {
        INFO("loss: gradscope " << hessian.loss() << ", PyTorch " << loss_torch);
        CHECK(std::abs(hessian.loss() - loss_torch) <= kRtol * std::abs(loss_torch));
    }
    const auto hv = hessian.product(v);
    double worst = check_tensors(hessian.gradient(), gradient, names, "gradient");
    worst = std::max(worst, check_tensors(hv, hv_torch, names, "H v"));
    const auto hv2 = hessian.product(v2);
    worst = std::max(worst, check_tensors(hv2, hv2_torch, names, "H v2"));

    // hvp(): a fresh forward and one pass, the same numbers.
    const auto once = hvp<double>([&] { return loss_of((*net)(x)); }, net->parameters(), v);
    CHECK(std::abs(once.loss - loss_torch) <= kRtol * std::abs(loss_torch));
    worst = std::max(worst, check_tensors(once.gradient, gradient, names, "hvp() gradient"));
    worst = std::max(worst, check_tensors(once.product, hv_torch, names, "hvp() H v"));

    // Symmetry, v2.Hv = v.Hv2, on gradscope's side and against PyTorch's.
    const double v2hv = dot(v2, hv), vhv2 = dot(v, hv2), v2hv_torch = dot(v2, hv_torch);
    INFO("v2.Hv " << v2hv << ", v.Hv2 " << vhv2 << ", PyTorch's v2.Hv " << v2hv_torch);
    CHECK(std::abs(v2hv) > 1e-2);  // a product of zeros would prove nothing
    CHECK(std::abs(v2hv - vhv2) <= kRtol * std::abs(v2hv_torch));
    CHECK(std::abs(v2hv - v2hv_torch) <= kRtol * std::abs(v2hv_torch));

    INFO("largest relative error " << worst);
    CHECK(worst <= kRtol);
}

}  // namespace

TEST_CASE("the Hessian reference file holds exactly the cases this test checks",
          "[hessian][reference]") {
    std::vector<std::string> in_file;
    for (const auto& [name, value] : reference_file(kFile).at("cases").items()) {
        in_file.push_back(name);
    }
    std::vector<std::string> here = case_names();
    std::sort(in_file.begin(), in_file.end());
    std::sort(here.begin(), here.end());
    CHECK(in_file == here);
}

TEST_CASE("H v equals PyTorch's double backward: GELU, batch norm in training mode, cross-entropy",
          "[hessian][reference]") {
    check_case("gelu_batchnorm_train_ce");
}

TEST_CASE("H v equals PyTorch's double backward: SiLU, layer norm, MSE", "[hessian][reference]") {
    check_case("silu_layernorm_mse");
}

TEST_CASE(
    "H v equals PyTorch's double backward: GELU, batch norm in evaluation mode, residual scale "
    "0.5, BCE with logits",
    "[hessian][reference]") {
    check_case("gelu_batchnorm_eval_bce");
}

TEST_CASE("the comparison fails for a direction that differs from the reference's in one entry",
          "[hessian][reference]") {
    // The test can fail: moving one entry of v by 1e-4 moves H v by 1e-4 times a column of H,
    // which is far outside the tolerance.
    for (const std::string& name : case_names()) {
        INFO("case " << name);
        const ReferenceCase c(kFile, name);
        auto net = build_twin(c, name);
        const LossOf loss_of(c, name);
        const auto names = c.json.at("parameters").get<std::vector<std::string>>();
        auto v = by_name(c.json.at("directions").at("v"), names, name);
        const auto hv_torch = by_name(c.json.at("products").at("v"), names, name);
        v.front()(0, 0) += 1e-4;  // the first Linear's first weight
        Hessian<double> hessian(loss_of((*net)(TensorD::constant(c.input("x")))),
                                net->parameters());
        const auto hv = hessian.product(v);
        const double largest = largest_entry(hv_torch);
        double worst = 0.0;
        for (std::size_t i = 0; i < hv.size(); ++i) {
            worst = std::max(worst, error_of(hv[i], hv_torch[i], largest));
        }
        INFO("largest relative error " << worst);
        CHECK(worst > 1e3 * kRtol);
    }
}

TEST_CASE("bad Hessian reference data is refused with a message that says where",
          "[hessian][reference]") {
    REQUIRE_THROWS_MATCHES(
        labels_of(Matrix<double>::Constant(1, 2, 0.5), "n"), std::runtime_error,
        MessageContains({kFile, "label 0 is not a class index", "make_hessian_reference.py"}));
    REQUIRE_THROWS_MATCHES(string_at(nlohmann::json{{"loss", 1}}, "loss", "case x"),
                           std::runtime_error, MessageContains({"case x", "no string 'loss'"}));
    REQUIRE_THROWS_MATCHES(by_name(nlohmann::json::object(), {"layers.3.linear.weight"}, "case y"),
                           std::runtime_error,
                           MessageContains({"case y", "no tensor 'layers.3.linear.weight'"}));
}
