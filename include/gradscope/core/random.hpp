// The one source of randomness: an explicitly seeded generator passed to whatever needs it.
//
// The standard library's distributions are implementation-defined (libstdc++ and libc++ give
// different normals for the same engine), so the distributions here are written out: the same
// seed gives the same numbers with any compiler.
#pragma once

#include "errors.hpp"
#include "matrix.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <locale>
#include <numbers>
#include <random>
#include <sstream>
#include <string>
#include <string_view>

namespace gradscope {

class Rng {
public:
    explicit Rng(std::uint64_t seed) : engine_(seed) {}

    // Uniform on [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

    // Uniform on [low, high); low == high gives low (as PyTorch's uniform_ does).
    double uniform(double low, double high) {
        check_uniform_range("uniform", low, high);
        return unchecked_uniform(low, high);
    }

    // Standard normal by the Box-Muller transform (the second value of each pair is kept).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = 0.0;
        while (u1 == 0.0) u1 = uniform();  // log(0) would be -inf
        const double u2 = uniform();
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double angle = 2.0 * std::numbers::pi * u2;
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }

    double normal(double mean, double stddev) {
        check_normal("normal", mean, stddev);
        return mean + stddev * normal();
    }

    // A uniformly drawn integer in [0, n), n >= 1.
    std::uint64_t below(std::uint64_t n) {
        if (n == 0) throw value_error("below: the range [0, n) is empty for n = 0");
        // Rejection removes the modulo bias.
        const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        std::uint64_t x = engine_();
        while (x >= limit) x = engine_();
        return x % n;
    }

    std::uint64_t next_u64() { return engine_(); }

    // A uniform random bit generator too, so that the standard library's algorithms and
    // distributions take it: std::shuffle(v.begin(), v.end(), rng) or
    // std::uniform_int_distribution<int>(0, 9)(rng) draw the engine's next 64 bits, next_u64().
    // Those distributions' results differ between standard libraries (see the top of this
    // file); gradscope's own draws never go through them.
    using result_type = std::uint64_t;
    static constexpr result_type min() { return std::mt19937_64::min(); }
    static constexpr result_type max() { return std::mt19937_64::max(); }
    result_type operator()() { return engine_(); }

    // The generator's whole state as text, and back, so that a resumed run draws the numbers
    // the uninterrupted one would have (checkpoints keep Dropout's this way): the engine's
    // standard text form, then the Box-Muller value kept for the next normal(), if any.
    [[nodiscard]] std::string state() const {
        std::ostringstream out;
        out.imbue(std::locale::classic());  // no digit grouping, whatever the global locale
        out << engine_ << " spare " << (has_spare_ ? detail::number_text(spare_) : "-");
        return out.str();
    }
    // Throws value_error, and changes nothing, unless `text` is what state() writes.
    void set_state(std::string_view text) {
        const auto refuse = [&text](const std::string& why) {
            const std::string shown(text.substr(0, 40));
            detail::throw_value("Rng::set_state",
                                why + " in '" + shown + (text.size() > 40 ? "...'" : "'"));
        };
        std::istringstream in{std::string(text)};
        in.imbue(std::locale::classic());
        std::mt19937_64 engine;
        std::string label, spare;
        if (!(in >> engine)) refuse("no mt19937_64 state");
        if (!(in >> label >> spare) || label != "spare") refuse("no 'spare' after the engine");
        if (std::string extra; in >> extra) refuse("text after the state");
        double value = 0.0;
        if (spare != "-") {
            const auto [end, ec] =
                std::from_chars(spare.data(), spare.data() + spare.size(), value);
            if (ec != std::errc() || end != spare.data() + spare.size() || !std::isfinite(value))
                refuse("the spare normal '" + spare + "' is not a finite number");
        }
        engine_ = engine;
        has_spare_ = spare != "-";
        spare_ = value;
    }

    // The matrix versions check their arguments once, not once per entry.
    template <class T>
    Matrix<T> normal_matrix(Index rows, Index cols, double mean = 0.0, double stddev = 1.0) {
        detail::check_dimensions("normal_matrix", rows, cols);
        check_normal("normal_matrix", mean, stddev);
        Matrix<T> m(rows, cols);
        for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(mean + stddev * normal());
        return m;
    }

    template <class T>
    Matrix<T> uniform_matrix(Index rows, Index cols, double low, double high) {
        detail::check_dimensions("uniform_matrix", rows, cols);
        check_uniform_range("uniform_matrix", low, high);
        Matrix<T> m(rows, cols);
        for (Index i = 0; i < m.size(); ++i)
            m.data()[i] = static_cast<T>(unchecked_uniform(low, high));
        return m;
    }

private:
    double unchecked_uniform(double low, double high) { return low + (high - low) * uniform(); }

    // Finite bounds whose difference is finite too: -1e308 to 1e308 would draw infinities.
    static void check_uniform_range(const char* who, double low, double high) {
        detail::check_finite(who, "low", low);
        detail::check_finite(who, "high", high);
        if (low > high) {
            detail::throw_value(who, "the range is inverted: low = " + detail::number_text(low) +
                                         " > high = " + detail::number_text(high));
        }
        if (!std::isfinite(high - low)) {
            detail::throw_value(who, "the range [" + detail::number_text(low) + ", " +
                                         detail::number_text(high) +
                                         ") is wider than a double holds");
        }
    }

    static void check_normal(const char* who, double mean, double stddev) {
        detail::check_finite(who, "mean", mean);
        detail::check_non_negative(who, "stddev", stddev);
    }

    std::mt19937_64 engine_;  // its output sequence is fixed by the C++ standard
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace gradscope
