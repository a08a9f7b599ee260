// The one source of randomness: an explicitly seeded generator passed to whatever needs it.
//
// The standard library's distributions are implementation-defined (libstdc++ and libc++ give
// different normals for the same engine), so the distributions here are written out: the same
// seed gives the same numbers with any compiler.
#pragma once

#include "matrix.hpp"

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

namespace gradscope {

class Rng {
public:
    explicit Rng(std::uint64_t seed) : engine_(seed) {}

    // Uniform on [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

    double uniform(double low, double high) { return low + (high - low) * uniform(); }

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

    double normal(double mean, double stddev) { return mean + stddev * normal(); }

    // A uniformly drawn integer in [0, n).
    std::uint64_t below(std::uint64_t n) {
        // Rejection removes the modulo bias.
        const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        std::uint64_t x = engine_();
        while (x >= limit) x = engine_();
        return x % n;
    }

    std::uint64_t next_u64() { return engine_(); }

    template <class T>
    Matrix<T> normal_matrix(Index rows, Index cols, double mean = 0.0, double stddev = 1.0) {
        Matrix<T> m(rows, cols);
        for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(normal(mean, stddev));
        return m;
    }

    template <class T>
    Matrix<T> uniform_matrix(Index rows, Index cols, double low, double high) {
        Matrix<T> m(rows, cols);
        for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(uniform(low, high));
        return m;
    }

private:
    std::mt19937_64 engine_;  // its output sequence is fixed by the C++ standard
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace gradscope
