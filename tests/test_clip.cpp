// Gradient clipping: clip_grad_norm against torch.nn.utils.clip_grad_norm_ (float64, from
// tests/data/optim_reference.json) and the properties that make it safe to use — the bound
// holds, the direction is kept, nothing changes below the bound, non-finite norms are trapped,
// float gradients cannot overflow the norm — plus clip_grad_value and adaptive (AGC) clipping.
#include "support/reference.hpp"

#include <gradscope/optim/clip.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

const nlohmann::json& optim_reference() { return reference_file("optim_reference.json"); }

// Gives `p` the gradient `g` (making its gradient buffer with a backward first if need be).
template <class T>
void set_grad(Tensor<T>& p, const Matrix<T>& g) {
    if (!p.has_grad()) sum(p).backward();
    p.mutable_grad() = g;
}

template <class T>
Tensor<T> param_with_grad(const Matrix<T>& value, const Matrix<T>& grad) {
    auto p = Tensor<T>::parameter(value);
    set_grad(p, grad);
    return p;
}

// Three parameters of different shapes with random gradients, scaled by `scale`.
std::vector<TensorD> random_params(std::uint64_t seed, double scale) {
    std::vector<TensorD> params;
    const Index shapes[3][2] = {{4, 5}, {1, 4}, {3, 7}};
    for (const auto& shape : shapes) {
        params.push_back(param_with_grad<double>(normal(shape[0], shape[1], seed),
                                                 scale * normal(shape[0], shape[1], seed + 100)));
        ++seed;
    }
    return params;
}

std::vector<Matrix<double>> grads_of(const std::vector<TensorD>& params) {
    std::vector<Matrix<double>> out;
    for (const auto& p : params) out.emplace_back(p.grad());
    return out;
}

double global_norm(const std::vector<Matrix<double>>& grads) {
    double sum = 0.0;
    for (const auto& g : grads) sum += g.squaredNorm();
    return std::sqrt(sum);
}

// Bitwise equality, so that NaN entries compare equal to themselves.
bool same_bits(const Matrix<double>& a, Eigen::Ref<const Matrix<double>> b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) ==
               0;
}

double cosine(const Matrix<double>& a, const Matrix<double>& b) {
    return a.cwiseProduct(b).sum() / (a.norm() * b.norm());
}

}  // namespace

// --- PyTorch reference ------------------------------------------------------------------------

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_ for the 2-, inf-, 1- and 3-norm",
          "[clip][reference]") {
    const nlohmann::json& problem = optim_reference().at("problem");
    const nlohmann::json& clip = optim_reference().at("clip");
    const double max_norm = clip.at("max_norm").get<double>();
    for (const char* name : {"l2", "inf", "l1", "l3"}) {
        INFO("clip case " << name);
        const nlohmann::json& c = clip.at(name);
        const double norm_type =
            c.at("norm_type").is_string() ? inf : c.at("norm_type").get<double>();
        auto W = TensorD::parameter(to_matrix(problem.at("W")));
        auto b = TensorD::parameter(to_matrix(problem.at("b")));
        const auto x = TensorD::constant(to_matrix(problem.at("x")));
        const auto y = TensorD::constant(to_matrix(problem.at("y")));
        mean(square(linear(x, W, b) - y)).backward();

        const double total = clip_grad_norm({W, b}, max_norm, norm_type);
        CHECK(total == Approx(c.at("total_norm").get<double>()).epsilon(1e-10));
        CHECK(all_close(W.grad(), to_matrix(c.at("grads").at("W")), 1e-10, 1e-12));
        CHECK(all_close(b.grad(), to_matrix(c.at("grads").at("b")), 1e-10, 1e-12));
    }
}

// --- clip_grad_norm -----------------------------------------------------------------------------

TEST_CASE("after clip_grad_norm the global 2-norm is within the bound and every direction is kept",
          "[clip][norm]") {
    for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
        auto params = random_params(seed, 10.0);
        const auto before = grads_of(params);
        const double norm_before = global_norm(before);
        const double max_norm = 0.3 * norm_before;

        const double returned = clip_grad_norm(params, max_norm);
        CHECK(returned == Approx(norm_before).epsilon(1e-12));
        const auto after = grads_of(params);
        CHECK(global_norm(after) <= max_norm * (1 + 1e-6));
        CHECK(global_norm(after) == Approx(max_norm).epsilon(1e-6));
        for (std::size_t i = 0; i < params.size(); ++i) {
            INFO("parameter " << i);
            CHECK(cosine(before[i], after[i]) >= 1 - 1e-12);
            // One scale for all: each gradient shrank by the same factor.
            CHECK(after[i].norm() / before[i].norm() == Approx(max_norm / norm_before));
        }
    }
}

TEST_CASE("a gradient already within the bound is left exactly as it was", "[clip][norm]") {
    auto params = random_params(5, 1.0);
    const auto before = grads_of(params);
    const double norm = global_norm(before);
    CHECK(clip_grad_norm(params, 2.0 * norm) == Approx(norm).epsilon(1e-12));
    for (std::size_t i = 0; i < params.size(); ++i) CHECK(same_bits(before[i], params[i].grad()));
}

TEST_CASE("the infinity norm is the largest entry, and clipping bounds every entry by it",
          "[clip][norm]") {
    auto params = random_params(6, 3.0);
    const auto before = grads_of(params);
    double largest = 0.0;
    for (const auto& g : before) largest = std::max(largest, g.cwiseAbs().maxCoeff());

    const double returned = clip_grad_norm(params, 0.5, inf);
    CHECK(returned == largest);
    for (std::size_t i = 0; i < params.size(); ++i) {
        CHECK(params[i].grad().cwiseAbs().maxCoeff() <= 0.5 * (1 + 1e-6));
        CHECK(cosine(before[i], grads_of(params)[i]) >= 1 - 1e-12);
    }
}

TEST_CASE("a general p-norm is the p-norm of all gradients as one vector", "[clip][norm]") {
    auto params = random_params(7, 1.0);
    double sum = 0.0;
    for (const auto& g : grads_of(params)) sum += g.array().abs().pow(1.5).sum();
    const double expected = std::pow(sum, 1.0 / 1.5);
    CHECK(clip_grad_norm(params, 1e9, 1.5) == Approx(expected).epsilon(1e-12));
    CHECK(clip_grad_norm(params, 1e9, 1.0) == Approx([&] {
                                                  double l1 = 0.0;
                                                  for (const auto& g : grads_of(params))
                                                      l1 += g.cwiseAbs().sum();
                                                  return l1;
                                              }())
                                                  .epsilon(1e-12));
}

TEST_CASE("a non-finite norm throws when asked to, and the gradients are left untouched",
          "[clip][norm][errors]") {
    for (const double bad : {std::numeric_limits<double>::quiet_NaN(), inf}) {
        for (const double norm_type : {2.0, inf, 1.0}) {
            INFO("bad entry " << bad << ", norm_type " << norm_type);
            auto params = random_params(8, 5.0);
            Matrix<double> g = params[2].grad();
            g(1, 3) = bad;
            set_grad(params[2], g);
            const auto before = grads_of(params);
            CHECK_THROWS_AS(clip_grad_norm(params, 1.0, norm_type, true), numeric_error);
            CHECK_THROWS_WITH(clip_grad_norm(params, 1.0, norm_type, true),
                              Catch::Contains("non-finite") || Catch::Contains("NaN or infinite"));
            CHECK_THROWS_WITH(clip_grad_norm(params, 1.0, norm_type, true),
                              Catch::Contains("parameter 2"));
            for (std::size_t i = 0; i < params.size(); ++i) {
                CHECK(same_bits(before[i], params[i].grad()));
            }
            // Without the flag the norm is reported as it is.
            const double total = clip_grad_norm(params, 1.0, norm_type, false);
            CHECK_FALSE(std::isfinite(total));
        }
    }
}

TEST_CASE("float gradients of magnitude 1e30 do not overflow the norm", "[clip][norm][float]") {
    Matrix<float> g(2, 3);
    g << 1e30f, -2e30f, 3e30f, -1e30f, 2e30f, 1e30f;
    auto p = param_with_grad<float>(Matrix<float>::Zero(2, 3), g);
    auto q =
        param_with_grad<float>(Matrix<float>::Zero(1, 2), Matrix<float>::Constant(1, 2, 4e30f));
    const double expected = std::sqrt(g.cast<double>().squaredNorm() + 2 * 16e60);

    const float total = clip_grad_norm({p, q}, 1.0);
    REQUIRE(std::isfinite(total));
    CHECK(static_cast<double>(total) == Approx(expected).epsilon(1e-6));
    const double after =
        std::sqrt(p.grad().cast<double>().squaredNorm() + q.grad().cast<double>().squaredNorm());
    CHECK(after <= 1.0 * (1 + 1e-6));
    CHECK(after == Approx(1.0).epsilon(1e-5));
    CHECK(cosine(g.cast<double>(), p.grad().cast<double>()) >= 1 - 1e-6);
}

TEST_CASE("double gradients beyond 1e154 or below 1e-154 still give the right 2-norm",
          "[clip][norm]") {
    for (const double scale : {1e200, 1e-200}) {
        INFO("scale " << scale);
        auto p = param_with_grad<double>(Matrix<double>::Zero(1, 2),
                                         (Matrix<double>(1, 2) << 3 * scale, 4 * scale).finished());
        CHECK(clip_grad_norm({p}, inf) == Approx(5 * scale).epsilon(1e-14));
    }
}

TEST_CASE("clip_grad_norm skips parameters without a gradient and checks its arguments",
          "[clip][norm][errors]") {
    auto with = param_with_grad<double>(Matrix<double>::Zero(1, 2),
                                        (Matrix<double>(1, 2) << 3.0, 4.0).finished());
    auto without = param(2, 2, 9);
    std::vector<TensorD> params{with, without};
    CHECK(clip_grad_norm(params, 100.0) == Approx(5.0));
    CHECK_FALSE(without.has_grad());
    CHECK(clip_grad_norm({without}, 1.0) == 0.0);

    // A span works as well as a vector.
    CHECK(clip_grad_norm(std::span<TensorD>(params), 100.0) == Approx(5.0));

    CHECK_THROWS_AS(clip_grad_norm(params, -1.0), value_error);
    CHECK_THROWS_WITH(clip_grad_norm(params, -1.0), Catch::Contains("max_norm"));
    CHECK_THROWS_WITH(clip_grad_norm(params, 1.0, 0.0), Catch::Contains("norm_type"));
    CHECK_THROWS_WITH(clip_grad_norm(params, 1.0, std::nan("")), Catch::Contains("norm_type"));
}

// --- clip_grad_value ----------------------------------------------------------------------------

TEST_CASE("clip_grad_value bounds every entry and leaves the ones inside alone", "[clip][value]") {
    auto params = random_params(10, 2.0);
    const auto before = grads_of(params);
    clip_grad_value(params, 1.0);
    for (std::size_t i = 0; i < params.size(); ++i) {
        const auto g = params[i].grad();
        CHECK(g.cwiseAbs().maxCoeff() <= 1.0);
        for (Index k = 0; k < g.size(); ++k) {
            const double was = before[i].data()[k];
            const double now = g.data()[k];
            CHECK(now == (std::abs(was) <= 1.0 ? was : std::copysign(1.0, was)));
        }
    }

    Matrix<double> with_nan = Matrix<double>::Constant(1, 2, 5.0);
    with_nan(0, 1) = std::numeric_limits<double>::quiet_NaN();
    auto p = param_with_grad<double>(Matrix<double>::Zero(1, 2), with_nan);
    clip_grad_value({p}, 2.0);
    CHECK(p.grad()(0, 0) == 2.0);
    CHECK(std::isnan(p.grad()(0, 1)));  // a NaN is not hidden by clipping

    CHECK_THROWS_AS(clip_grad_value(params, -1.0), value_error);
}

// --- Adaptive gradient clipping -----------------------------------------------------------------

namespace {

// ||G_i|| / max(||W_i||, eps) for every unit: rows of a weight, entries of a [1 x n] parameter.
std::vector<double> unit_ratios(const Matrix<double>& w, const Matrix<double>& g, double eps) {
    std::vector<double> out;
    if (w.rows() == 1) {
        for (Index j = 0; j < w.cols(); ++j) {
            out.push_back(std::abs(g(0, j)) / std::max(std::abs(w(0, j)), eps));
        }
    } else {
        for (Index i = 0; i < w.rows(); ++i) {
            out.push_back(g.row(i).norm() / std::max(w.row(i).norm(), eps));
        }
    }
    return out;
}

}  // namespace

TEST_CASE("after adaptive_clip_grad no unit's gradient is more than lambda times its weight",
          "[clip][agc]") {
    const double lambda = 0.05;
    const double eps = 1e-3;
    // A weight with one zero row (eps takes over) and gradients whose rows span small to large
    // ratios; a bias handled entry by entry.
    Matrix<double> w = normal(6, 5, 20);
    w.row(2).setZero();
    Matrix<double> gw = normal(6, 5, 21);
    for (Index i = 0; i < 6; ++i) gw.row(i) *= std::pow(10.0, static_cast<double>(i) - 4.0);
    Matrix<double> b = normal(1, 6, 22);
    Matrix<double> gb = normal(1, 6, 23) * 0.05;
    auto W = param_with_grad<double>(w, gw);
    auto B = param_with_grad<double>(b, gb);
    auto no_grad = param(2, 2, 24);

    const auto ratios_w = unit_ratios(w, gw, eps);
    const auto ratios_b = unit_ratios(b, gb, eps);
    // The test needs units on both sides of lambda, in the weight and in the bias.
    const auto some_over = [&](const std::vector<double>& r) {
        return std::any_of(r.begin(), r.end(), [&](double x) { return x > lambda; });
    };
    const auto some_under = [&](const std::vector<double>& r) {
        return std::any_of(r.begin(), r.end(), [&](double x) { return x <= lambda; });
    };
    REQUIRE((some_over(ratios_w) && some_under(ratios_w)));
    REQUIRE((some_over(ratios_b) && some_under(ratios_b)));

    adaptive_clip_grad({W, B, no_grad}, lambda, eps);
    CHECK_FALSE(no_grad.has_grad());

    const Matrix<double> gw_after = W.grad();
    const auto after_w = unit_ratios(w, gw_after, eps);
    for (Index i = 0; i < 6; ++i) {
        INFO("weight row " << i << ", ratio before " << ratios_w[static_cast<std::size_t>(i)]);
        CHECK(after_w[static_cast<std::size_t>(i)] <= lambda * (1 + 1e-9));
        if (ratios_w[static_cast<std::size_t>(i)] <= lambda) {
            CHECK(same_bits(gw.row(i), gw_after.row(i)));
        } else {
            CHECK(after_w[static_cast<std::size_t>(i)] == Approx(lambda).epsilon(1e-12));
            CHECK(cosine(gw.row(i), gw_after.row(i)) >= 1 - 1e-12);
        }
    }
    const Matrix<double> gb_after = B.grad();
    const auto after_b = unit_ratios(b, gb_after, eps);
    for (Index j = 0; j < 6; ++j) {
        INFO("bias entry " << j << ", ratio before " << ratios_b[static_cast<std::size_t>(j)]);
        CHECK(after_b[static_cast<std::size_t>(j)] <= lambda * (1 + 1e-9));
        if (ratios_b[static_cast<std::size_t>(j)] <= lambda) {
            CHECK(gb_after(0, j) == gb(0, j));
        } else {
            CHECK(std::signbit(gb_after(0, j)) == std::signbit(gb(0, j)));
        }
    }
    // The zero row is bounded by lambda * eps.
    CHECK(gw_after.row(2).norm() <= lambda * eps * (1 + 1e-9));
}

TEST_CASE("adaptive_clip_grad checks lambda and eps", "[clip][agc][errors]") {
    auto p = param_with_grad<double>(normal(2, 2, 30), normal(2, 2, 31));
    CHECK_THROWS_AS(adaptive_clip_grad({p}, 0.0), value_error);
    CHECK_THROWS_WITH(adaptive_clip_grad({p}, -1.0), Catch::Contains("lambda"));
    CHECK_THROWS_WITH(adaptive_clip_grad({p}, 0.1, -1.0), Catch::Contains("eps"));
}

TEST_CASE("adaptive_clip_grad works on float gradients", "[clip][agc][float]") {
    auto p =
        param_with_grad<float>(Matrix<float>::Ones(3, 4), Matrix<float>::Constant(3, 4, 10.0f));
    adaptive_clip_grad({p}, 0.01);
    // ||W_i|| = 2, so each row's gradient norm becomes 0.02: entries 0.01.
    CHECK(p.grad().cast<double>().isApprox(Matrix<double>::Constant(3, 4, 0.01), 1e-6));
}

// --- Hostile arguments: one test per class, each naming the argument -------------------------

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// Every gradient of `params` is bit for bit what it was: a refused call changed nothing.
bool unchanged(const std::vector<TensorD>& params, const std::vector<Matrix<double>>& before) {
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (!same_bits(before[i], params[i].grad())) return false;
    }
    return true;
}

// clip(params, value) for each value must throw value_error saying `rule` and the value, and
// leave every gradient as it was.
template <class Clip>
void check_refused(std::initializer_list<double> values, const std::string& rule, Clip&& clip) {
    auto params = random_params(50, 3.0);
    const auto before = grads_of(params);
    for (const double value : values) {
        INFO(rule << " ... (got " << value << ")");
        REQUIRE_THROWS_MATCHES(clip(params, value), value_error,
                               MessageContains({rule, "got " + detail::number_text(value)}));
    }
    CHECK(unchanged(params, before));
}

}  // namespace

TEST_CASE("a max_norm that is NaN or negative is refused, and infinity clips nothing",
          "[clip][norm][errors][hostile]") {
    check_refused({not_a_number, -1.0, -inf}, "clip_grad_norm: max_norm must be a number >= 0",
                  [](auto& p, double v) { return clip_grad_norm(p, v); });
    auto params = random_params(51, 3.0);
    const auto before = grads_of(params);
    CHECK(clip_grad_norm(params, inf) == Approx(global_norm(before)));
    CHECK(unchanged(params, before));
}

TEST_CASE("a norm_type that is NaN, zero or negative is refused", "[clip][norm][errors][hostile]") {
    check_refused({not_a_number, 0.0, -2.0, -inf}, "clip_grad_norm: norm_type must be > 0",
                  [](auto& p, double v) { return clip_grad_norm(p, 1.0, v); });
}

TEST_CASE("a clip_value that is NaN or negative is refused, and infinity clips nothing",
          "[clip][value][errors][hostile]") {
    check_refused({not_a_number, -0.5}, "clip_grad_value: clip_value must be a number >= 0",
                  [](auto& p, double v) { clip_grad_value(p, v); });
    auto params = random_params(52, 3.0);
    const auto before = grads_of(params);
    clip_grad_value(params, inf);
    CHECK(unchanged(params, before));
}

TEST_CASE("adaptive_clip_grad refuses a lambda or eps that is NaN, infinite or out of range",
          "[clip][agc][errors][hostile]") {
    check_refused({not_a_number, inf, 0.0, -0.1},
                  "adaptive_clip_grad: lambda must be finite and positive",
                  [](auto& p, double v) { adaptive_clip_grad(p, v); });
    check_refused({not_a_number, inf, -1e-3},
                  "adaptive_clip_grad: eps must be finite and non-negative",
                  [](auto& p, double v) { adaptive_clip_grad(p, 0.1, v); });
}

TEST_CASE("a parameter given twice, or an empty handle, is refused by every clipping function",
          "[clip][errors][hostile]") {
    auto params = random_params(54, 3.0);
    const auto before = grads_of(params);
    // Counted twice, the repeated gradient would inflate the norm and be scaled twice.
    const std::vector<TensorD> twice{params[0], params[1], params[0]};
    REQUIRE_THROWS_MATCHES(
        clip_grad_norm(twice, 1.0), value_error,
        MessageContains("clip_grad_norm: parameter 2 is the same tensor as parameter 0"));
    REQUIRE_THROWS_MATCHES(clip_grad_value(twice, 1.0), value_error,
                           MessageContains("clip_grad_value: parameter 2 is the same"));
    REQUIRE_THROWS_MATCHES(adaptive_clip_grad(twice, 0.1), value_error,
                           MessageContains("adaptive_clip_grad: parameter 2 is the same"));
    CHECK(unchanged(params, before));

    REQUIRE_THROWS_MATCHES(
        clip_grad_norm({params[0], TensorD()}, 1.0), value_error,
        MessageContains("clip_grad_norm: parameter 1 is an empty Tensor handle"));
    REQUIRE_THROWS_MATCHES(clip_grad_value({TensorD()}, 1.0), value_error,
                           MessageContains("parameter 0 is an empty Tensor handle"));
    CHECK(unchanged(params, before));
}

TEST_CASE("every kind of parameter list clips alike: vector, span, array and braced list",
          "[clip]") {
    const auto clipped = [](auto&& call) {
        auto params = random_params(55, 3.0);
        call(params);
        return grads_of(params);
    };
    const auto by_vector = clipped([](std::vector<TensorD>& p) { clip_grad_norm(p, 1.0); });
    const auto by_span =
        clipped([](std::vector<TensorD>& p) { clip_grad_norm(std::span<TensorD>(p), 1.0); });
    const auto by_const_span =
        clipped([](std::vector<TensorD>& p) { clip_grad_norm(std::span<const TensorD>(p), 1.0); });
    const auto by_array = clipped([](std::vector<TensorD>& p) {
        clip_grad_norm(std::array<TensorD, 3>{p[0], p[1], p[2]}, 1.0);
    });
    const auto by_list = clipped([](std::vector<TensorD>& p) {
        clip_grad_norm({p[0], p[1], p[2]}, 1.0);
    });
    for (std::size_t i = 0; i < by_vector.size(); ++i) {
        CHECK(same_bits(by_vector[i], by_span[i]));
        CHECK(same_bits(by_vector[i], by_const_span[i]));
        CHECK(same_bits(by_vector[i], by_array[i]));
        CHECK(same_bits(by_vector[i], by_list[i]));
    }
}
