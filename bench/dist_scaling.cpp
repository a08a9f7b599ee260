// gradscope_dist_scaling: what data parallelism over MPI costs and gains on this machine, as
// measured numbers for docs/DISTRIBUTED.md's scaling model.
//
//   mpiexec -n 1 build/release/bench/gradscope_dist_scaling --json dist_1.json
//   mpiexec -n 2 build/release/bench/gradscope_dist_scaling --json dist_2.json
//
// Each rank runs one thread (Eigen and OpenMP), so that P ranks use P cores. Three measurements:
//  1. the training step of each benchmark shape (bench/workload.hpp) at its global batch B, each
//     rank on B/P rows: forward, backward (with DataParallel's all-reduces, overlapped or not) and
//     an SGD step; the median step time, samples per second and the seconds spent waiting for the
//     all-reduces after backward;
//  2. the same step on one rank alone at every per-rank batch B/P for P = 1, 2, 4, ..., 64: the
//     compute time that the model's P ranks would each spend;
//  3. MPI_Allreduce of 1 KiB to 64 MiB of floats: the median time per size, and the alpha-beta
//     model t = alpha + beta * bytes of this MPI on this machine (alpha: the 1 KiB time; beta: the
//     least-squares slope from 1 MiB up).
// Medians of repeated timings on a noisy 2-core machine; rank 0 prints and writes the JSON.
#include "gradscope_workload.hpp"
#include "workload.hpp"

#include <gradscope/dist.hpp>

#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace gradscope;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// Seconds of `work` repeated until at least `budget` seconds (and 5 times) have passed, as the
// median of the repetitions. Every rank takes the same number of repetitions (rank 0's count is
// broadcast), so that collectives inside `work` pair up.
template <class F>
double median_seconds(const dist::Communicator& comm, double budget, F&& work) {
    for (int i = 0; i < 3; ++i) work();  // warm up: pools, caches, MPI connections
    std::vector<double> times;
    const auto start = Clock::now();
    int repetitions = 0;
    while (true) {
        const auto t0 = Clock::now();
        work();
        times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        ++repetitions;
        int done = repetitions >= 5 &&
                   std::chrono::duration<double>(Clock::now() - start).count() >= budget;
        comm.broadcast(std::span<int>(&done, 1), 0);
        if (done) break;
    }
    return median(times);
}

struct StepResult {
    double seconds = 0.0;     // median step
    double waiting = 0.0;     // median seconds waiting for all-reduces after backward, per step
    double overlapped = 0.0;  // share of buckets started during backward
};

// The training step of `w` with its global batch split over the ranks.
StepResult time_step(const dist::Communicator& comm, const bench::Workload& w, bool overlap,
                     double budget) {
    const Index rows = static_cast<Index>(w.batch) / comm.size();
    auto net = bench::make_network<float>(w, 1);
    dist::DataParallel<float> ddp(*net, comm, {.overlap = overlap});
    SGD<float> optimizer(net->parameters(), {.lr = bench::sgd_lr});
    Rng rng(2 + static_cast<std::uint64_t>(comm.rank()));
    const TensorF x = TensorF::constant(rng.normal_matrix<float>(rows, w.width, 0.0, 1.0));
    const TensorF y = TensorF::constant(rng.normal_matrix<float>(rows, w.width, 0.0, 1.0));
    const auto before = ddp.stats();
    StepResult r;
    r.seconds = median_seconds(comm, budget, [&] {
        TensorF loss = mse_loss(ddp(x), y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    });
    const auto& after = ddp.stats();
    const double passes = static_cast<double>(after.passes - before.passes);
    r.waiting = (after.seconds_waiting - before.seconds_waiting) / passes;
    r.overlapped = static_cast<double>(after.buckets_overlapped - before.buckets_overlapped) /
                   static_cast<double>(after.buckets_reduced - before.buckets_reduced);
    return r;
}

// One process's step at `rows` rows: the compute a rank does at that share of the batch.
double time_compute(const dist::Communicator& comm, const bench::Workload& w, Index rows,
                    double budget) {
    auto net = bench::make_network<float>(w, 1);
    SGD<float> optimizer(net->parameters(), {.lr = bench::sgd_lr});
    Rng rng(3);
    const TensorF x = TensorF::constant(rng.normal_matrix<float>(rows, w.width, 0.0, 1.0));
    const TensorF y = TensorF::constant(rng.normal_matrix<float>(rows, w.width, 0.0, 1.0));
    return median_seconds(comm, budget, [&] {
        TensorF loss = mse_loss((*net)(x), y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    });
}

}  // namespace

int main(int argc, char** argv) {
    dist::Environment mpi(argc, argv);
    const dist::Communicator comm;
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    std::string json_path;
    double budget = 1.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--json") json_path = argv[i + 1];
        if (flag == "--seconds") budget = std::stod(argv[i + 1]);
    }
    const bool lead = comm.rank() == 0;
    nlohmann::json out{{"ranks", comm.size()}, {"seconds_per_measurement", budget}};

    if (lead) {
        std::printf("%d rank(s), 1 thread each\n\n%-12s %6s %12s %12s %10s %12s %10s\n",
                    comm.size(), "shape", "batch", "step ms", "no overlap", "samples/s",
                    "waiting ms", "overlapped");
    }
    for (const auto& w : bench::workloads) {
        if (w.batch < comm.size() || w.batch % comm.size() != 0) continue;
        const StepResult with = time_step(comm, w, true, budget);
        const StepResult without = time_step(comm, w, false, budget);
        out["steps"].push_back({{"shape", w.name},
                                {"global_batch", w.batch},
                                {"step_seconds", with.seconds},
                                {"step_seconds_no_overlap", without.seconds},
                                {"samples_per_second", static_cast<double>(w.batch) / with.seconds},
                                {"waiting_seconds", with.waiting},
                                {"waiting_seconds_no_overlap", without.waiting},
                                {"buckets_overlapped", with.overlapped}});
        if (lead) {
            std::printf("%-12s %6lld %12.3f %12.3f %10.0f %12.3f %9.0f%%\n", w.name,
                        static_cast<long long>(w.batch), 1e3 * with.seconds, 1e3 * without.seconds,
                        static_cast<double>(w.batch) / with.seconds, 1e3 * with.waiting,
                        100.0 * with.overlapped);
        }
    }

    // Compute alone at each per-rank share of the batch, on one rank (the others wait).
    if (comm.size() == 1) {
        if (lead) std::printf("\ncompute alone (ms) at batch B/P for P = 1, 2, 4, ..., 64\n");
        for (const auto& w : bench::workloads) {
            const Index parameters = bench::make_network<float>(w, 1)->parameter_count();
            nlohmann::json row{{"shape", w.name},
                               {"global_batch", w.batch},
                               {"gradient_bytes", parameters * Index{sizeof(float)}}};
            std::string line = std::string(w.name) + ":";
            for (std::int64_t p = 1; p <= 64; p *= 2) {
                const Index rows = std::max<Index>(1, static_cast<Index>(w.batch / p));
                const double t = time_compute(comm, w, rows, budget / 4);
                row["seconds"].push_back({{"ranks", p}, {"rows", rows}, {"step_seconds", t}});
                line += " " + std::to_string(1e3 * t).substr(0, 7);
            }
            out["compute"].push_back(row);
            if (lead) std::printf("  %s\n", line.c_str());
        }
    }

    // MPI_Allreduce of floats, and the alpha-beta line through the medians.
    if (comm.size() > 1) {
        if (lead) std::printf("\nMPI_Allreduce (sum of floats) over %d ranks\n", comm.size());
        std::vector<double> sizes, times;
        for (std::size_t bytes = 1024; bytes <= (std::size_t{64} << 20); bytes *= 4) {
            std::vector<float> buffer(bytes / sizeof(float), 1.0f);
            const double t = median_seconds(comm, budget / 4,
                                            [&] { comm.all_reduce_sum(std::span<float>(buffer)); });
            sizes.push_back(static_cast<double>(bytes));
            times.push_back(t);
            out["allreduce"].push_back({{"bytes", bytes}, {"seconds", t}});
            if (lead) std::printf("  %10zu bytes  %10.1f us\n", bytes, 1e6 * t);
        }
        // t = alpha + beta * bytes: alpha, the latency, is the smallest message's time (a
        // least-squares intercept would be swamped by the large messages); beta is the
        // least-squares slope through the messages of 1 MiB and more, where bandwidth rules.
        const double alpha = times.front();
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            if (sizes[i] < 1024.0 * 1024.0) continue;
            n += 1;
            sx += sizes[i];
            sy += times[i];
            sxx += sizes[i] * sizes[i];
            sxy += sizes[i] * times[i];
        }
        const double beta = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        out["alpha_seconds"] = alpha;
        out["beta_seconds_per_byte"] = beta;
        if (lead) {
            std::printf("  fit: alpha = %.1f us, beta = %.3f ns/byte (%.2f GB/s)\n", 1e6 * alpha,
                        1e9 * beta, 1e-9 / beta);
        }
    }

    if (lead && !json_path.empty()) {
        std::ofstream(json_path) << out.dump(1) << "\n";
        std::printf("\nwrote %s\n", json_path.c_str());
    }
    return 0;
}
