// gradscope_bench: a training step of the workloads in workload.hpp, timed for gradscope and
// for the hand-written Eigen baseline in the same process, at 1 and 2 threads, plus the cost of
// a GradientMonitor (without and with its per-sample mode) and of anomaly mode, and the step's
// matrix products alone (the ceiling of any implementation on Eigen), and a Hessian-vector
// product against a gradient in float and double. Names are
// "<shape>/<implementation>/<kind>/threads:<n>"; every benchmark reports the counters
// samples_per_s and GFLOPs. scripts/bench.sh runs it and turns the JSON into
// docs/PERFORMANCE.md's ratios.
#include "counters.hpp"
#include "gradscope_workload.hpp"

#include <benchmark/benchmark.h>

#include <optional>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef GRADSCOPE_USE_OPENBLAS
// With EIGEN_USE_BLAS the matrix products run in OpenBLAS, which has its own thread count.
extern "C" void openblas_set_num_threads(int);
#endif

namespace {

using namespace gradscope;
using namespace gradscope::bench;

constexpr std::uint64_t parameter_seed = 1;
constexpr std::uint64_t data_seed = 2;

// What is attached to the gradscope step besides the network itself.
enum class Extra { none, monitor, per_sample, per_sample_no_gsnr, anomaly };

const char* implementation_name(Extra extra) {
    switch (extra) {
        case Extra::monitor:
            return "gradscope+monitor";
        case Extra::per_sample:
            return "gradscope+per_sample";
        case Extra::per_sample_no_gsnr:
            return "gradscope+per_sample_no_gsnr";
        case Extra::anomaly:
            return "gradscope+anomaly";
        case Extra::none:
            break;
    }
    return "gradscope";
}

struct Batch {
    Matrix<float> input;
    Matrix<float> target;
};

Batch make_batch(const Workload& w) {
    Rng rng(data_seed);
    return {rng.normal_matrix<float>(w.batch, w.width, 0.0, 1.0),
            rng.normal_matrix<float>(w.batch, w.width, 0.0, 1.0)};
}

// OpenMP's team size rather than Eigen::setNbThreads, which would pin every product to that
// many threads: gradscope keeps products too small to share on one thread (ops/linalg.hpp),
// and the baseline gets Eigen's own choice.
void use_threads(int threads) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
#ifdef GRADSCOPE_USE_OPENBLAS
    openblas_set_num_threads(threads);
#endif
}

void report(benchmark::State& state, const Workload& w, int threads) {
    report_throughput(state, w);
    // Eigen ignores setNbThreads without OpenMP: say what really ran.
    state.counters["eigen_threads"] = static_cast<double>(Eigen::nbThreads());
    if (Eigen::nbThreads() != threads)
        state.SkipWithError("Eigen did not take the thread count (built without OpenMP?)");
}

void gradscope_step(benchmark::State& state, const Workload w, Kind kind, int threads,
                    Extra extra) {
    use_threads(threads);
    auto net = make_network<float>(w, parameter_seed);
    const auto params = net->parameters();
    SGD<float> sgd(params, {.lr = sgd_lr});
    const Batch batch = make_batch(w);
    const TensorF x = TensorF::constant(batch.input);
    const TensorF y = TensorF::constant(batch.target);

    // Recording every step, keeping a window of them, as a training loop that logs would.
    std::optional<diag::GradientMonitor<float>> monitor;
    // Per-sample mode: the same monitor, also reducing every Linear's per-sample gradients
    // (mse_loss reduces by the mean, the mode's default), with or without the GSNR.
    if (extra != Extra::none && extra != Extra::anomaly) {
        monitor.emplace(*net, diag::GradientMonitor<float>::Options{
                                  .keep_last = 64,
                                  .per_sample = {.enabled = extra != Extra::monitor,
                                                 .gsnr = extra == Extra::per_sample}});
    }
    const AnomalyGuard anomaly(extra == Extra::anomaly);

    auto step = [&] {
        sgd.zero_grad();
        TensorF loss = mse_loss((*net)(x), y);
        loss.backward();
        if (kind == Kind::train) sgd.step();
        benchmark::DoNotOptimize(loss.item());
    };
    // Untimed warm-up: the first steps fill the pools and allocate (and fault in) the gradients'
    // and the monitor's buffers. Where a step takes long (large, per-sample mode) a repetition
    // may be a single iteration, which would otherwise time that first step.
    for (int i = 0; i < 2; ++i) step();
    for (auto _ : state) step();
    report(state, w, threads);
}

// A gradient (forward and backward) against a Hessian-vector product (forward, then the
// second-order pass of nn/hessian.hpp) in precision T on one thread: the ratio of the two is
// what an H v costs in gradients.
template <class T>
void gradient_or_hvp_step(benchmark::State& state, const Workload w, bool hessian_product) {
    use_threads(1);
    auto net = make_network<T>(w, parameter_seed);
    const auto params = net->parameters();
    const Batch batch = make_batch(w);
    const Tensor<T> x = Tensor<T>::constant(batch.input.template cast<T>());
    const Tensor<T> y = Tensor<T>::constant(batch.target.template cast<T>());
    Rng rng(data_seed + 1);
    std::vector<Matrix<T>> direction;
    for (const Tensor<T>& p : params) direction.push_back(rng.normal_matrix<T>(p.rows(), p.cols()));
    const auto loss_of = [&] { return mse_loss((*net)(x), y); };

    HessianVectorProduct<T> out{};
    auto step = [&] {
        if (hessian_product) {
            hvp(loss_of, params, std::span<const Matrix<T>>(direction), out);
            benchmark::DoNotOptimize(out.product.front().data());
        } else {
            net->zero_grad();
            Tensor<T> loss = loss_of();
            loss.backward();
            benchmark::DoNotOptimize(loss.item());
        }
    };
    for (int i = 0; i < 2; ++i) step();
    for (auto _ : state) step();
    report(state, w, 1);
}

void baseline_step(benchmark::State& state, const Workload w, Kind kind, int threads) {
    use_threads(threads);
    BaselineMlp<float> baseline(w);
    copy_parameters(*make_network<float>(w, parameter_seed), baseline);
    const Batch batch = make_batch(w);

    for (auto _ : state) {
        const float loss = baseline.forward_backward(batch.input, batch.target);
        if (kind == Kind::train) baseline.sgd_step(static_cast<float>(sgd_lr));
        benchmark::DoNotOptimize(loss);
    }
    report(state, w, threads);
}

// The step's matrix products alone, with Eigen, on buffers allocated once: per layer the
// forward product and, backward, dW and (past the first layer) dX; no bias, activation, loss
// or update. No MLP implementation on Eigen can beat this, so it is the ceiling against which
// the large shape's GFLOP/s target is read.
void gemms_only_step(benchmark::State& state, const Workload w, int threads) {
    use_threads(threads);
    using Mat = Matrix<float>;
    Rng rng(data_seed);
    const auto layers = static_cast<std::size_t>(w.depth);
    std::vector<Mat> weights, weight_grads(layers, Mat(w.width, w.width));
    std::vector<Mat> activations(layers + 1, Mat(w.batch, w.width));
    for (std::size_t l = 0; l < layers; ++l) {
        weights.push_back(rng.normal_matrix<float>(w.width, w.width, 0.0, w.weight_stddev()));
    }
    activations[0] = rng.normal_matrix<float>(w.batch, w.width, 0.0, 1.0);
    Mat grad = rng.normal_matrix<float>(w.batch, w.width, 0.0, 1.0), grad_in(w.batch, w.width);

    for (auto _ : state) {
        for (std::size_t l = 0; l < layers; ++l) {
            activations[l + 1].noalias() = activations[l] * weights[l].transpose();
        }
        for (std::size_t l = layers; l-- > 0;) {
            weight_grads[l].noalias() = grad.transpose() * activations[l];
            if (l > 0) {
                grad_in.noalias() = grad * weights[l];
                grad.swap(grad_in);
            }
        }
        benchmark::DoNotOptimize(weight_grads[0].data());
        benchmark::ClobberMemory();
    }
    report(state, w, threads);
}

std::vector<int> thread_counts() {
#ifdef _OPENMP
    return {1, 2};
#else
    return {1};
#endif
}

template <class Fn, class... Args>
void add(const std::string& name, Fn fn, Args... args) {
    benchmark::RegisterBenchmark(name.c_str(), fn, args...)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
}

[[maybe_unused]] const bool registered = [] {
    for (const Workload& w : workloads) {
        for (const Kind kind : {Kind::backprop, Kind::train}) {
            for (const int threads : thread_counts()) {
                add(benchmark_name(w, "baseline", kind, threads), baseline_step, w, kind, threads);
                add(benchmark_name(w, "gradscope", kind, threads), gradscope_step, w, kind, threads,
                    Extra::none);
            }
        }
        if (!w.batch_norm && !w.residual) {  // the variants' products are the plain shape's
            for (const int threads : thread_counts()) {
                add(benchmark_name(w, "gemms_only", Kind::backprop, threads), gemms_only_step, w,
                    threads);
            }
        }
        // Second order: H v against the gradient it costs, in float and in double.
        add(benchmark_name(w, "gradscope+hvp", Kind::backprop, 1), gradient_or_hvp_step<float>, w,
            true);
        add(benchmark_name(w, "gradscope_f64", Kind::backprop, 1), gradient_or_hvp_step<double>, w,
            false);
        add(benchmark_name(w, "gradscope_f64+hvp", Kind::backprop, 1), gradient_or_hvp_step<double>,
            w, true);
        for (const Extra extra :
             {Extra::monitor, Extra::per_sample, Extra::per_sample_no_gsnr, Extra::anomaly}) {
            add(benchmark_name(w, implementation_name(extra), Kind::train, 1), gradscope_step, w,
                Kind::train, 1, extra);
        }
    }
    return true;
}();

}  // namespace
