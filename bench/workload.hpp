// The benchmark workload shared by every implementation (gradscope, the hand-written Eigen
// baseline, libtorch): an MLP of `depth` Linear layers, all width x width, ReLU between them,
// MSE loss against a fixed target, float32. Deep variants add BatchNorm1d after each hidden
// Linear and/or make each hidden layer a pre-activation residual block, as gradscope's mlp()
// builds them:
//
//   plain hidden layer:     h <- relu([bn](h W^T + b))
//   residual hidden layer:  h <- h + relu([bn](h)) W^T + b
//   output layer:           out = h W^T + b,   loss = mean((out - y)^2)
//
// Kept free of gradscope and of Eigen so that the libtorch benchmark can share it.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

namespace gradscope::bench {

struct Workload {
    const char* name;
    std::int64_t batch;
    std::int64_t width;
    std::int64_t depth;  // Linear layers
    bool batch_norm = false;
    bool residual = false;

    // The convention: 2*B*W^2 per layer forward, twice that backward.
    [[nodiscard]] double flops_per_step() const {
        return 6.0 * static_cast<double>(batch) * static_cast<double>(width) *
               static_cast<double>(width) * static_cast<double>(depth);
    }

    // Standard deviation of every weight: He (sqrt(2 / fan_in)) keeps a plain ReLU stack's
    // activations at scale through 64 layers; residual stacks divide it by sqrt(depth) so
    // that the sum of depth branches stays at scale too (otherwise float activations grow
    // like 2^(depth/2), and a timed loop of SGD steps would run into infinities).
    [[nodiscard]] double weight_stddev() const {
        const double he = std::sqrt(2.0 / static_cast<double>(width));
        return residual ? he / std::sqrt(static_cast<double>(depth)) : he;
    }
};

inline constexpr std::array<Workload, 8> workloads{{
    {"tiny", 1, 32, 4},
    {"small", 32, 128, 4},
    {"medium", 64, 256, 8},
    {"large", 256, 1024, 8},
    {"deep", 128, 128, 64},
    {"deep_bn", 128, 128, 64, true, false},
    {"deep_res", 128, 128, 64, false, true},
    {"deep_bn_res", 128, 128, 64, true, true},
}};

// A small learning rate: the timed loop takes thousands of SGD steps on one batch, and the
// parameters must stay finite (and out of the denormal range) for all of them.
inline constexpr double sgd_lr = 1e-4;

enum class Kind { backprop, train };
inline const char* to_string(Kind kind) { return kind == Kind::backprop ? "backprop" : "train"; }

// "<shape>/<implementation>/<kind>/threads:<n>": what scripts/bench.sh's table splits on.
inline std::string benchmark_name(const Workload& w, const char* implementation, Kind kind,
                                  int threads) {
    return std::string(w.name) + "/" + implementation + "/" + to_string(kind) +
           "/threads:" + std::to_string(threads);
}

}  // namespace gradscope::bench
