// gradscope_bench_libtorch: the workloads of workload.hpp in libtorch (torch::nn, autograd,
// torch::optim::SGD), named and counted exactly as gradscope_bench names and counts them, so
// that scripts/bench.sh can put the two side by side. Built only where find_package(Torch)
// succeeds; gradscope itself is not included here (libtorch wants C++17 and its own flags).
#include "counters.hpp"
#include "workload.hpp"

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <string>
#include <vector>

namespace {

using namespace gradscope::bench;

// The same layer structure as gradscope's mlp() (see workload.hpp).
struct TorchMlp : torch::nn::Module {
    TorchMlp(const Workload& w) : residual(w.residual) {
        for (std::int64_t l = 0; l < w.depth; ++l) {
            auto linear =
                register_module("linear" + std::to_string(l), torch::nn::Linear(w.width, w.width));
            torch::nn::init::normal_(linear->weight, 0.0, w.weight_stddev());
            linears.push_back(linear);
            if (w.batch_norm && l + 1 < w.depth) {
                norms.push_back(
                    register_module("bn" + std::to_string(l), torch::nn::BatchNorm1d(w.width)));
            }
        }
    }

    torch::Tensor forward(torch::Tensor h) {
        const std::size_t last = linears.size() - 1;
        for (std::size_t l = 0; l < last; ++l) {
            if (residual) {
                torch::Tensor branch = norms.empty() ? h : norms[l]->forward(h);
                h = h + linears[l]->forward(torch::relu(branch));
            } else {
                h = linears[l]->forward(h);
                if (!norms.empty()) h = norms[l]->forward(h);
                h = torch::relu(h);
            }
        }
        return linears[last]->forward(h);
    }

    bool residual;
    std::vector<torch::nn::Linear> linears;
    std::vector<torch::nn::BatchNorm1d> norms;
};

// libtorch's matrix products go to whichever libblas.so.3 is loaded. OpenBLAS keeps its own
// thread pool, which torch::set_num_threads does not size: without this, the "1 thread" runs on
// OpenBLAS used both cores.
void set_blas_threads(int threads) {
    using SetThreads = void (*)(int);
    if (auto* set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
        set(threads);
}

void report(benchmark::State& state, const Workload& w) {
    report_throughput(state, w);
    state.counters["torch_threads"] = static_cast<double>(torch::get_num_threads());
}

void libtorch_step(benchmark::State& state, const Workload w, Kind kind, int threads) {
    torch::set_num_threads(threads);
    set_blas_threads(threads);
    torch::manual_seed(1);
    auto net = std::make_shared<TorchMlp>(w);
    net->train();
    torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(sgd_lr));
    const torch::Tensor x = torch::randn({w.batch, w.width});
    const torch::Tensor y = torch::randn({w.batch, w.width});

    for (auto _ : state) {
        sgd.zero_grad();  // set_to_none, libtorch's default
        torch::Tensor loss = torch::mse_loss(net->forward(x), y);
        loss.backward();
        if (kind == Kind::train) sgd.step();
        benchmark::DoNotOptimize(loss.item<float>());
    }
    report(state, w);
}

[[maybe_unused]] const bool registered = [] {
    for (const Workload& w : workloads) {
        for (const Kind kind : {Kind::backprop, Kind::train}) {
            for (const int threads : {1, 2}) {
                benchmark::RegisterBenchmark(benchmark_name(w, "libtorch", kind, threads).c_str(),
                                             libtorch_step, w, kind, threads)
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
    return true;
}();

}  // namespace
