// Weight initialisers: small value types that fill a weight matrix given its fan-in, fan-out and
// an explicitly seeded Rng, written exactly as a user would write their own.
//
// The formulas are torch.nn.init's, so that a network initialised here starts in the same
// statistical regime as its PyTorch twin (the numbers differ: the generators differ). For a
// Linear layer the weight is [out x in]: fan_in = cols, fan_out = rows, which is what
// fill_weight passes. Every entry is drawn in row-major order, one draw per entry, so the same
// seed gives the same weights for float and double (the float ones are the double ones rounded).
//
//     Rng rng(42);
//     init::fill_weight(w.data(), init::he_normal(), rng);
//     init::Initializer<double> chosen = init::xavier_uniform(init::calculate_gain("tanh"));
#pragma once

#include "../core/concepts.hpp"
#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/random.hpp"

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <numbers>
#include <string>
#include <string_view>
#include <utility>

namespace gradscope::init {

// Which fan He/Kaiming scales by: fan_in keeps the forward activations' variance, fan_out the
// backward gradients'.
enum class FanMode { fan_in, fan_out };

// The nonlinearity a layer's output goes through, for calculate_gain. The names are PyTorch's.
enum class Nonlinearity { linear, identity, sigmoid, tanh, relu, leaky_relu, selu };

// Anything that fills a weight view given fan-in, fan-out and an Rng: a built-in, a user's
// struct or lambda, or an Initializer.
template <class Init, class T>
concept InitializerFor = std::invocable<const Init&, MatrixView<T>, Index, Index, Rng&>;

// What an Initializer can hold: any callable its std::function can (so a mutable lambda too).
template <class Init, class T>
concept StorableInitializer = CallbackWith<Init, MatrixView<T>, Index, Index, Rng&>;

// A type-erased initialiser, for choosing one at run time or storing it in options: a
// std::function, with constructors that say what an initialiser is. Inside an options aggregate
// (`{.init = f}`) a plain std::function refusing f gives only "invalid initialization ... from
// brace-enclosed initializer list"; this one names InitializerFor and the call that failed. It
// holds exactly what the std::function would, and empty is unset.
template <class T>
class Initializer : public std::function<void(MatrixView<T>, Index, Index, Rng&)> {
    using Base = std::function<void(MatrixView<T>, Index, Index, Rng&)>;

public:
    Initializer() noexcept = default;
    Initializer(std::nullptr_t) noexcept {}  // NOLINT: implicit, as std::function's

    // The same_as test comes first, so that asking whether Initializer itself is storable (which
    // asks whether it is copyable, which looks at these constructors) never recurses.
    template <class Init>
    requires(!std::same_as<Init, Initializer> && StorableInitializer<Init, T>)
        Initializer(Init init)
        : Base(std::move(init)) {}  // NOLINT: implicit, as std::function's

    // Anything else is a compile error that names the requirement. The price:
    // std::is_convertible_v<X, Initializer<T>> is true for every X.
    template <class Init>
    requires(!std::same_as<Init, Initializer> && !StorableInitializer<Init, T>)
        Initializer(Init) {  // NOLINT: implicit, as the one above
        if constexpr (!InitializerFor<Init, T>) {
            static_assert(InitializerFor<Init, T>,
                          "init::InitializerFor: an initialiser is called as "
                          "init(MatrixView<T> weight, Index fan_in, Index fan_out, Rng& rng)");
        } else {
            static_assert(StorableInitializer<Init, T>,
                          "init::StorableInitializer: an initialiser must be copyable and "
                          "callable when not const");
        }
    }
};

namespace detail {

using gradscope::detail::check_finite;
using gradscope::detail::check_non_negative;
using gradscope::detail::number_text;
using gradscope::detail::throw_value;

// Fans are divided by, so a zero or negative one would give an infinite or NaN scale.
inline void require_positive_fan(const char* who, const char* which, Index fan) {
    if (fan <= 0) {
        throw_value(who, std::string(which) + " must be positive, got " + std::to_string(fan));
    }
}

template <class T>
void fill_normal(MatrixView<T> w, double mean, double stddev, Rng& rng) {
    for (Index i = 0; i < w.size(); ++i) w.data()[i] = static_cast<T>(rng.normal(mean, stddev));
}

template <class T>
void fill_uniform(MatrixView<T> w, double low, double high, Rng& rng) {
    for (Index i = 0; i < w.size(); ++i) w.data()[i] = static_cast<T>(rng.uniform(low, high));
}

// A uniform on [-b, b) has variance b^2 / 3: this is the bound that gives standard deviation s.
inline double uniform_bound(double stddev) { return std::numbers::sqrt3 * stddev; }

inline constexpr std::array<std::pair<std::string_view, Nonlinearity>, 7> nonlinearity_names{{
    {"linear", Nonlinearity::linear},
    {"identity", Nonlinearity::identity},
    {"sigmoid", Nonlinearity::sigmoid},
    {"tanh", Nonlinearity::tanh},
    {"relu", Nonlinearity::relu},
    {"leaky_relu", Nonlinearity::leaky_relu},
    {"selu", Nonlinearity::selu},
}};

}  // namespace detail

inline std::string to_string(FanMode mode) {
    return mode == FanMode::fan_in ? "fan_in" : "fan_out";
}

inline std::string to_string(Nonlinearity nl) {
    for (const auto& [name, value] : detail::nonlinearity_names) {
        if (value == nl) return std::string(name);
    }
    return "unknown";
}

// PyTorch's name of a nonlinearity ("tanh", "leaky_relu", ...); value_error lists the known ones.
inline Nonlinearity nonlinearity_from_name(std::string_view name) {
    for (const auto& [known, value] : detail::nonlinearity_names) {
        if (known == name) return value;
    }
    std::string known_list;
    for (const auto& entry : detail::nonlinearity_names) {
        if (!known_list.empty()) known_list += ", ";
        known_list += entry.first;
    }
    detail::throw_value("calculate_gain", "unknown nonlinearity '" + std::string(name) +
                                              "' (known: " + known_list + ")");
}

// The factor that keeps the variance of activations steady through the nonlinearity, with
// torch.nn.init.calculate_gain's values. `param` is leaky ReLU's negative slope.
inline double calculate_gain(Nonlinearity nl, double param = 0.01) {
    switch (nl) {
        case Nonlinearity::linear:
        case Nonlinearity::identity:
        case Nonlinearity::sigmoid:
            return 1.0;
        case Nonlinearity::tanh:
            return 5.0 / 3.0;
        case Nonlinearity::relu:
            return std::numbers::sqrt2;
        case Nonlinearity::leaky_relu:
            detail::check_finite("calculate_gain", "leaky_relu's negative slope", param);
            return std::sqrt(2.0 / (1.0 + param * param));
        case Nonlinearity::selu:
            return 0.75;  // PyTorch's choice, for self-normalising nets
    }
    detail::throw_value("calculate_gain", "unknown nonlinearity");
}

inline double calculate_gain(std::string_view name, double param = 0.01) {
    return calculate_gain(nonlinearity_from_name(name), param);
}

// ---------------------------------------------------------------------------------------------
// Xavier/Glorot: std = gain * sqrt(2 / (fan_in + fan_out)), a compromise between keeping the
// forward and the backward variance.

struct XavierUniform {
    static constexpr const char* name = "xavier_uniform";
    double gain = 1.0;

    void validate() const { detail::check_non_negative(name, "gain", gain); }

    [[nodiscard]] double stddev(Index fan_in, Index fan_out) const {
        validate();
        detail::require_positive_fan(name, "fan_in", fan_in);
        detail::require_positive_fan(name, "fan_out", fan_out);
        return gain * std::sqrt(2.0 / (static_cast<double>(fan_in) + static_cast<double>(fan_out)));
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        const double bound = detail::uniform_bound(stddev(fan_in, fan_out));
        detail::fill_uniform(w, -bound, bound, rng);
    }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + detail::number_text(gain) + ")";
    }
};

struct XavierNormal {
    static constexpr const char* name = "xavier_normal";
    double gain = 1.0;

    void validate() const { detail::check_non_negative(name, "gain", gain); }

    [[nodiscard]] double stddev(Index fan_in, Index fan_out) const {
        validate();
        detail::require_positive_fan(name, "fan_in", fan_in);
        detail::require_positive_fan(name, "fan_out", fan_out);
        return gain * std::sqrt(2.0 / (static_cast<double>(fan_in) + static_cast<double>(fan_out)));
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        detail::fill_normal(w, 0.0, stddev(fan_in, fan_out), rng);
    }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + detail::number_text(gain) + ")";
    }
};

// ---------------------------------------------------------------------------------------------
// He/Kaiming: std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, param). As in
// torch.nn.init.kaiming_*, param (leaky ReLU's slope) defaults to 0, not calculate_gain's 0.01.

namespace detail {

inline double he_stddev(const char* who, FanMode mode, Nonlinearity nl, double param, Index fan_in,
                        Index fan_out) {
    check_finite(who, "param", param);
    const bool by_fan_in = mode == FanMode::fan_in;
    const Index fan = by_fan_in ? fan_in : fan_out;
    require_positive_fan(who, by_fan_in ? "fan_in" : "fan_out", fan);
    return calculate_gain(nl, param) / std::sqrt(static_cast<double>(fan));
}

inline std::string he_describe(const char* who, FanMode mode, Nonlinearity nl, double param) {
    std::string text = std::string(who) + "(" + to_string(mode) + ", " + to_string(nl);
    if (nl == Nonlinearity::leaky_relu) text += ", " + number_text(param);
    return text + ")";
}

}  // namespace detail

struct HeUniform {
    static constexpr const char* name = "he_uniform";
    FanMode mode = FanMode::fan_in;
    Nonlinearity nonlinearity = Nonlinearity::relu;
    double param = 0.0;

    void validate() const { detail::check_finite(name, "param", param); }

    [[nodiscard]] double stddev(Index fan_in, Index fan_out) const {
        return detail::he_stddev(name, mode, nonlinearity, param, fan_in, fan_out);
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        const double bound = detail::uniform_bound(stddev(fan_in, fan_out));
        detail::fill_uniform(w, -bound, bound, rng);
    }

    [[nodiscard]] std::string describe() const {
        return detail::he_describe(name, mode, nonlinearity, param);
    }
};

struct HeNormal {
    static constexpr const char* name = "he_normal";
    FanMode mode = FanMode::fan_in;
    Nonlinearity nonlinearity = Nonlinearity::relu;
    double param = 0.0;

    void validate() const { detail::check_finite(name, "param", param); }

    [[nodiscard]] double stddev(Index fan_in, Index fan_out) const {
        return detail::he_stddev(name, mode, nonlinearity, param, fan_in, fan_out);
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        detail::fill_normal(w, 0.0, stddev(fan_in, fan_out), rng);
    }

    [[nodiscard]] std::string describe() const {
        return detail::he_describe(name, mode, nonlinearity, param);
    }
};

// ---------------------------------------------------------------------------------------------
// LeCun: std = sqrt(1 / fan_in), the fixed point SELU networks are designed around.

struct LecunUniform {
    static constexpr const char* name = "lecun_uniform";

    void validate() const {}

    [[nodiscard]] double stddev(Index fan_in, Index /*fan_out*/) const {
        detail::require_positive_fan(name, "fan_in", fan_in);
        return std::sqrt(1.0 / static_cast<double>(fan_in));
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        const double bound = detail::uniform_bound(stddev(fan_in, fan_out));  // sqrt(3 / fan_in)
        detail::fill_uniform(w, -bound, bound, rng);
    }

    [[nodiscard]] std::string describe() const { return std::string(name) + "()"; }
};

struct LecunNormal {
    static constexpr const char* name = "lecun_normal";

    void validate() const {}

    [[nodiscard]] double stddev(Index fan_in, Index /*fan_out*/) const {
        detail::require_positive_fan(name, "fan_in", fan_in);
        return std::sqrt(1.0 / static_cast<double>(fan_in));
    }

    template <class T>
    void operator()(MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) const {
        detail::fill_normal(w, 0.0, stddev(fan_in, fan_out), rng);
    }

    [[nodiscard]] std::string describe() const { return std::string(name) + "()"; }
};

// ---------------------------------------------------------------------------------------------
// Orthogonal (Saxe et al.): gain times the Q of a standard normal matrix's QR, with each column
// of Q multiplied by the sign of R's diagonal so that the factorisation, and hence the result,
// is unique (as torch.nn.init.orthogonal_ does). A tall weight gets orthonormal columns, a wide
// one orthonormal rows. The QR is done in double whatever T is.

struct Orthogonal {
    static constexpr const char* name = "orthogonal";
    double gain = 1.0;

    void validate() const { detail::check_non_negative(name, "gain", gain); }

    template <class T>
    void operator()(MatrixView<T> w, Index /*fan_in*/, Index /*fan_out*/, Rng& rng) const {
        validate();
        const Index rows = w.rows(), cols = w.cols();
        if (w.size() == 0) return;
        using Wide = DependentDouble<T>;
        using ColumnMajor = Eigen::Matrix<Wide, Eigen::Dynamic, Eigen::Dynamic>;
        Matrix<Wide> drawn(rows, cols);
        for (Index i = 0; i < drawn.size(); ++i) drawn.data()[i] = rng.normal();

        // Householder QR needs rows >= cols; a wide weight is the transpose of a tall one.
        const bool wide = rows < cols;
        const ColumnMajor a = wide ? ColumnMajor(drawn.transpose()) : ColumnMajor(drawn);
        const Index m = a.rows(), n = a.cols();
        const Eigen::HouseholderQR<ColumnMajor> qr(a);
        ColumnMajor q = qr.householderQ() * ColumnMajor::Identity(m, n);  // thin Q
        for (Index j = 0; j < n; ++j) {
            // A zero on R's diagonal has probability zero; keep the column rather than zero it.
            if (qr.matrixQR()(j, j) < 0.0) q.col(j) *= -1.0;
        }
        q *= gain;
        if (wide) {
            w = q.transpose().template cast<T>();
        } else {
            w = q.template cast<T>();
        }
    }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + detail::number_text(gain) + ")";
    }
};

// ---------------------------------------------------------------------------------------------
// Plain distributions and constants: the fans are ignored.

struct Normal {
    static constexpr const char* name = "normal";
    double mean = 0.0;
    double stddev = 1.0;

    void validate() const {
        detail::check_finite(name, "mean", mean);
        detail::check_non_negative(name, "std", stddev);
    }

    template <class T>
    void operator()(MatrixView<T> w, Index /*fan_in*/, Index /*fan_out*/, Rng& rng) const {
        validate();
        detail::fill_normal(w, mean, stddev, rng);
    }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + detail::number_text(mean) + ", " +
               detail::number_text(stddev) + ")";
    }
};

// Uniform on [a, b).
struct Uniform {
    static constexpr const char* name = "uniform";
    double a = 0.0;
    double b = 1.0;

    void validate() const {
        detail::check_finite(name, "a", a);
        detail::check_finite(name, "b", b);
        if (a > b) {
            detail::throw_value(name, "needs a <= b, got a = " + detail::number_text(a) +
                                          ", b = " + detail::number_text(b));
        }
    }

    template <class T>
    void operator()(MatrixView<T> w, Index /*fan_in*/, Index /*fan_out*/, Rng& rng) const {
        validate();
        detail::fill_uniform(w, a, b, rng);
    }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + detail::number_text(a) + ", " + detail::number_text(b) +
               ")";
    }
};

// Draws nothing, so it leaves the Rng untouched.
struct Constant {
    static constexpr const char* name = "constant";
    double value = 0.0;

    // A NaN or infinite weight would only surface as a NaN loss steps later.
    void validate() const { detail::check_finite(name, "value", value); }

    template <class T>
    void operator()(MatrixView<T> w, Index /*fan_in*/, Index /*fan_out*/, Rng& /*rng*/) const {
        validate();
        w.setConstant(static_cast<T>(value));
    }

    [[nodiscard]] std::string describe() const {
        return std::string(name) + "(" + detail::number_text(value) + ")";
    }
};

// ---------------------------------------------------------------------------------------------
// Factories: the names users write (init::he_normal()). Each checks its arguments at once, so a
// bad one fails where it is written rather than when the weight is filled.

namespace detail {
template <class Init>
Init checked(Init init) {
    init.validate();
    return init;
}
}  // namespace detail

inline XavierUniform xavier_uniform(double gain = 1.0) {
    return detail::checked(XavierUniform{gain});
}
inline XavierNormal xavier_normal(double gain = 1.0) { return detail::checked(XavierNormal{gain}); }

inline HeUniform he_uniform(FanMode mode = FanMode::fan_in, Nonlinearity nl = Nonlinearity::relu,
                            double param = 0.0) {
    return detail::checked(HeUniform{mode, nl, param});
}
inline HeNormal he_normal(FanMode mode = FanMode::fan_in, Nonlinearity nl = Nonlinearity::relu,
                          double param = 0.0) {
    return detail::checked(HeNormal{mode, nl, param});
}

inline LecunUniform lecun_uniform() { return {}; }
inline LecunNormal lecun_normal() { return {}; }

inline Orthogonal orthogonal(double gain = 1.0) { return detail::checked(Orthogonal{gain}); }

inline Normal normal(double mean = 0.0, double stddev = 1.0) {
    return detail::checked(Normal{mean, stddev});
}
inline Uniform uniform(double a, double b) { return detail::checked(Uniform{a, b}); }

inline Constant constant(double value) { return detail::checked(Constant{value}); }
inline Constant zeros() { return {0.0}; }
inline Constant ones() { return {1.0}; }

// Fills a layer's [out x in] weight: fan_in = cols, fan_out = rows.
template <class T, class Init>
requires InitializerFor<Init, T>
void fill_weight(MatrixView<T> w, const Init& init, Rng& rng) { init(w, w.cols(), w.rows(), rng); }

}  // namespace gradscope::init
