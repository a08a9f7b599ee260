// gradscope-fashion-mnist: trains any mlp() on Fashion-MNIST and watches its gradients.
//
// Reads Debian's dataset-fashion-mnist (gzipped IDX files in /usr/share/datasets/fashion-mnist),
// trains the network the command line describes with a progress bar per epoch, measures the
// test accuracy after every epoch (eval mode: batch norm uses its running statistics; no graph
// is recorded), logs the gradient reaching every Linear layer every N steps through a
// diag::GradientMonitor, and writes the curves as CSV, a plot as SVG, the run's record as JSON
// and the trained network as a safetensors checkpoint.
//
//   gradscope-fashion-mnist                       # 2 hidden layers of 256, ReLU, He, Adam 1e-3
//   gradscope-fashion-mnist --depth 30 --activation sigmoid --init xavier --epochs 2
//   gradscope-fashion-mnist --depth 30 --norm batch --residual --epochs 2
//   gradscope-fashion-mnist --epochs 0 --load net.safetensors   # evaluate a checkpoint
//   gradscope-fashion-mnist --help
//   mpiexec -n 2 gradscope-fashion-mnist --distributed   # data-parallel over 2 processes
#include <gradscope/builtin_activations.hpp>
#include <gradscope/diag/doctor_html.hpp>
#include <gradscope/diag/json_report.hpp>
#include <gradscope/diag/training_html.hpp>
#include <gradscope/gradscope.hpp>
#include <gradscope/io.hpp>

#include "cli_checks.hpp"
#include "fashion_mnist_data.hpp"
#include "progress_bar.hpp"
#include "text_file.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#ifdef GRADSCOPE_FASHION_MNIST_MPI
#include <gradscope/dist.hpp>
#include <gradscope/dist/checkpoint.hpp>
#endif

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <thread>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace gradscope;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    std::string data = "/usr/share/datasets/fashion-mnist";
    int depth = 2;  // hidden layers; the network has depth + 1 Linear layers
    Index width = 256;
    std::string activation = "relu";
    std::string init = "he";
    std::string norm = "none";
    bool residual = false;
    double residual_scale = 1.0;
    bool zero_init_residual = false;
    double dropout = 0.0;
    std::string optimizer = "adam";
    double lr = 1e-3;
    std::string schedule = "constant";  // or "cosine": CosineAnnealingLR over all the steps
    std::int64_t warmup = 0;            // steps of linear warm-up (LinearLR) before it
    double momentum = 0.0;
    double weight_decay = 0.0;  // AdamW: 0.01 unless given (PyTorch's default)
    double clip = 0.0;
    int epochs = 10;
    Index batch = 128;
    std::uint64_t seed = 0;
    int threads = 0;
    Index limit = 0;
    int log_every = 100;
    std::string csv, svg, json, report, save, load;
    bool quiet = false;
    bool no_progress = false;
    bool doctor = false;
    bool per_sample = false;
    int sharpness_every = 0;
    bool distributed = false;
};

nlohmann::json to_json(const Settings& s) {
    return {{"data", s.data},
            {"depth", s.depth},
            {"width", s.width},
            {"activation", s.activation},
            {"init", s.init},
            {"norm", s.norm},
            {"residual", s.residual},
            {"residual_scale", s.residual_scale},
            {"zero_init_residual", s.zero_init_residual},
            {"dropout", s.dropout},
            {"optimizer", s.optimizer},
            {"lr", s.lr},
            {"lr_schedule", s.schedule},
            {"lr_warmup", s.warmup},
            {"momentum", s.momentum},
            {"weight_decay", s.weight_decay},
            {"clip", s.clip},
            {"epochs", s.epochs},
            {"batch", s.batch},
            {"seed", s.seed},
            {"threads", s.threads},
            {"limit", s.limit},
            {"log_every", s.log_every},
            {"sharpness_every", s.sharpness_every},
            {"distributed", s.distributed},
            {"load", s.load}};
}

// ---------------------------------------------------------------------------------------------
// The network

const std::vector<std::string> init_names{"default", "naive",      "xavier", "xavier_uniform",
                                          "he",      "he_uniform", "lecun",  "orthogonal"};

// "default" is PyTorch's nn.Linear initialisation (an empty Initializer means that to mlp()).
init::Initializer<float> make_init(const std::string& name) {
    if (name == "default") return {};
    if (name == "naive") return init::normal(0.0, 1.0);
    if (name == "xavier") return init::xavier_normal();
    if (name == "xavier_uniform") return init::xavier_uniform();
    if (name == "he") return init::he_normal();
    if (name == "he_uniform") return init::he_uniform();
    if (name == "lecun") return init::lecun_normal();
    if (name == "orthogonal") return init::orthogonal();
    throw value_error("unknown initialiser '" + name + "'");
}

std::shared_ptr<MLP<float>> make_network(const Settings& s, Index inputs, Index classes) {
    std::vector<Index> widths{inputs};
    for (int l = 0; l < s.depth; ++l) widths.push_back(s.width);
    widths.push_back(classes);
    ActivationChoice<float> act = ReLU{};
    for_each_builtin_activation([&](auto a) {
        if (s.activation == decltype(a)::name) act = a;
    });
    return mlp<float>({.widths = widths,
                       .activation = act,
                       .init = make_init(s.init),
                       .norm = s.norm == "batch"   ? Normalization::batch
                               : s.norm == "layer" ? Normalization::layer
                                                   : Normalization::none,
                       .residual = s.residual,
                       .residual_scale = s.residual_scale,
                       .zero_init_residual = s.zero_init_residual,
                       .dropout = s.dropout,
                       .seed = s.seed});
}

// " (cosine)", " (warm-up 500, cosine)", "": the schedule, for titles.
std::string schedule_label(const Settings& s) {
    std::string parts;
    if (s.warmup > 0) parts = "warm-up " + std::to_string(s.warmup);
    if (s.schedule == "cosine") parts += parts.empty() ? "cosine" : ", cosine";
    return parts.empty() ? "" : " (" + parts + ")";
}

// The lr schedule of --lr-schedule and --warmup, stepped once per batch after
// optimizer.step(): PyTorch's LinearLR from lr / 100 to lr over the warm-up, then
// CosineAnnealingLR down to 0 over the remaining steps (or the constant lr), joined by
// SequentialLR as in PyTorch.
class Schedule {
public:
    Schedule(const Settings& s, Optimizer<float>& optimizer, std::int64_t total_steps) {
        const std::int64_t warmup = std::min(s.warmup, total_steps);
        if (warmup > 0) {
            parts_.push_back(std::make_unique<LinearLR>(
                optimizer, LinearLROptions{.start_factor = 0.01, .total_iters = warmup}));
        }
        if (s.schedule == "cosine" && total_steps > warmup) {
            parts_.push_back(std::make_unique<CosineAnnealingLR>(
                optimizer, CosineAnnealingLROptions{.T_max = total_steps - warmup}));
        }
        if (parts_.size() == 2) {
            top_ = std::make_unique<SequentialLR>(SchedulerList{*parts_[0], *parts_[1]},
                                                  std::vector<std::int64_t>{warmup});
        }
    }
    void step() {
        if (top_) {
            top_->step();
        } else if (!parts_.empty()) {
            parts_.front()->step();
        }
    }

private:
    std::vector<std::unique_ptr<LRScheduler>> parts_;
    std::unique_ptr<LRScheduler> top_;
};

std::unique_ptr<Optimizer<float>> make_optimizer(const Settings& s, std::vector<TensorF> params) {
    if (s.optimizer == "sgd") {
        return std::make_unique<SGD<float>>(
            std::move(params),
            SGDOptions{.lr = s.lr, .momentum = s.momentum, .weight_decay = s.weight_decay});
    }
    if (s.optimizer == "adam") {
        return std::make_unique<Adam<float>>(
            std::move(params), AdamOptions{.lr = s.lr, .weight_decay = s.weight_decay});
    }
    if (s.optimizer == "adamw") {
        return std::make_unique<AdamW<float>>(
            std::move(params), AdamWOptions{.lr = s.lr, .weight_decay = s.weight_decay});
    }
    if (s.optimizer == "rmsprop") {
        return std::make_unique<RMSprop<float>>(
            std::move(params),
            RMSpropOptions{.lr = s.lr, .weight_decay = s.weight_decay, .momentum = s.momentum});
    }
    throw value_error("unknown optimiser '" + s.optimizer + "'");
}

// ---------------------------------------------------------------------------------------------
// The data

using fashion_mnist::Data;
using fashion_mnist::Dataset;

Data load_data(const Settings& s) { return fashion_mnist::load_fashion_mnist(s.data, s.limit); }

// ---------------------------------------------------------------------------------------------
// Training and evaluation

Index correct_predictions(ConstMatrixView<float> logits, std::span<const int> labels) {
    Index correct = 0;
    for (Index r = 0; r < logits.rows(); ++r) {
        Index predicted = 0;
        logits.row(r).maxCoeff(&predicted);
        correct += predicted == labels[static_cast<std::size_t>(r)];
    }
    return correct;
}

struct Evaluation {
    double loss = 0.0;
    double accuracy = 0.0;
    double seconds = 0.0;
};

// Eval mode (batch norm's running statistics, no dropout) and no graph; the network is left in
// training mode.
Evaluation evaluate(MLP<float>& net, const Dataset& data) {
    const auto start = Clock::now();
    constexpr Index chunk = 1000;
    net.eval();
    NoGradGuard no_grad;
    double loss = 0.0;
    Index correct = 0;
    const Index n = data.x.rows();
    for (Index begin = 0; begin < n; begin += chunk) {
        const Index rows = std::min(chunk, n - begin);
        const std::span<const int> labels(data.y.data() + begin, static_cast<std::size_t>(rows));
        const TensorF logits = net(TensorF::constant(data.x.middleRows(begin, rows)));
        loss += static_cast<double>(cross_entropy(logits, labels, Reduction::sum).item());
        correct += correct_predictions(logits.value(), labels);
    }
    net.train();
    const double count = static_cast<double>(std::max<Index>(n, 1));
    return {loss / count, static_cast<double>(correct) / count, seconds_since(start)};
}

struct EpochRecord {
    int epoch = 0;
    double train_loss = 0.0;
    double train_accuracy = 0.0;
    Evaluation test;
    double seconds = 0.0;  // training only, evaluation not included
    double samples_per_second = 0.0;
    std::int64_t last_step = 0;
    // With --per-sample: medians over the epoch's steps of the network's noise scale, GSNR and
    // Cockpit's norm and inner-product tests.
    double noise_scale = std::nan("");
    double gsnr = std::nan("");
    double norm_test = std::nan("");
    double inner_product_test = std::nan("");
    // The fraction of the epoch's steps where B_simple was measurable: it is not where the
    // noise estimate exceeds the mean gradient's squared norm (theta_norm >= 1).
    double noise_scale_measured = std::nan("");
    // With --sharpness-every: the last sharpness measured in the epoch.
    double sharpness = std::nan("");
};

struct GradientRecord {
    std::int64_t step = 0;
    int epoch = 0;
    std::vector<diag::LayerStats> layers;
};

struct Run {
    Evaluation initial;
    std::vector<EpochRecord> epochs;
    std::vector<GradientRecord> gradients;
    // With --report: every step's gradient statistics and loss.
    std::deque<diag::GradientProfile> history;
    std::vector<std::pair<double, double>> step_losses;
    // With --sharpness-every: (step, top eigenvalue of the batch loss's Hessian).
    std::vector<std::pair<double, double>> sharpness;
    std::optional<diag::Diagnosis> diagnosis;  // with --report: the doctor's, before training
    int threads = 1;
    int ranks = 1;  // processes training together (--distributed)
    bool openmp = false;
    Index parameters = 0;
    double total_seconds = 0.0;
};

std::string format_norms(const std::vector<diag::LayerStats>& layers) {
    std::string out;
    for (const auto& l : layers)
        out += " " + diag::format_number(l.output_grad_norm, {diag::Notation::scientific, 2});
    return out;
}

// The network's B_simple at one step, for the progress line ("-" when not measurable).
std::string noise_scale_text(const diag::GradientProfile& p) {
    return diag::format_number(p.per_sample_network().gradient_noise_scale,
                               {diag::Notation::general, 3});
}

// Medians of the network's per-sample statistics over the steps recorded since `begin`, into
// `record` (steps where one is not measurable are left out of its median, except as below).
void record_per_sample_medians(const diag::GradientMonitor<float>& watch, std::size_t begin,
                               EpochRecord& record) {
    std::vector<double> noise, gsnr, norm_test, inner;
    std::size_t measured = 0;
    const auto& history = watch.history();
    const auto keep = [](std::vector<double>& v, double x) {
        if (!std::isnan(x)) v.push_back(x);
    };
    for (std::size_t k = begin; k < history.size(); ++k) {
        const auto n = history[k].per_sample_network();
        // theta_norm >= 1: the noise swamps the mean gradient and B_simple exceeds any finite
        // value (B_simple = B theta^2 / (1 - theta^2)); it counts as +inf in the median.
        if (std::isfinite(n.gradient_noise_scale)) {
            noise.push_back(n.gradient_noise_scale);
            ++measured;
        } else if (n.norm_test >= 1.0) {
            noise.push_back(std::numeric_limits<double>::infinity());
        }
        keep(gsnr, n.gsnr);
        keep(norm_test, n.norm_test);
        keep(inner, n.inner_product_test);
    }
    const auto median = [](std::vector<double>& v) {
        if (v.empty()) return std::nan("");
        std::sort(v.begin(), v.end());
        return diag::quantile_of_sorted(v, 0.5);
    };
    record.noise_scale_measured =
        history.size() > begin
            ? static_cast<double>(measured) / static_cast<double>(history.size() - begin)
            : std::nan("");
    record.noise_scale = median(noise);
    record.gsnr = median(gsnr);
    record.norm_test = median(norm_test);
    record.inner_product_test = median(inner);
}

// --distributed: this process's place among the ranks mpiexec started, and what their training
// shares. Without it: rank 0 of 1.
struct Parallel {
    int rank = 0;
    int ranks = 1;
#ifdef GRADSCOPE_FASHION_MNIST_MPI
    dist::Communicator* comm = nullptr;
    dist::DataParallel<float>* ddp = nullptr;  // averages the ranks' gradients in backward
#endif
    // Rank 0 evaluates, prints and writes.
    [[nodiscard]] bool leads() const noexcept { return rank == 0; }
    // The sum of `values` over the ranks, in place.
    void sum(std::span<double> values) const {
#ifdef GRADSCOPE_FASHION_MNIST_MPI
        if (comm) comm->all_reduce_sum(values);
#else
        (void)values;
#endif
    }
    TensorF forward(MLP<float>& net, const TensorF& x) const {
#ifdef GRADSCOPE_FASHION_MNIST_MPI
        if (ddp) return (*ddp)(x);
#endif
        return net(x);
    }
};

// Every rank takes its share of each batch of s.batch rows, so that the ranks together take the
// batches one process would: rows [first, first + count) of a batch of `rows`.
std::pair<Index, Index> share_of(Index rows, const Parallel& par) {
    const Index first = rows * par.rank / par.ranks;
    return {first, rows * (par.rank + 1) / par.ranks - first};
}

void train(const Settings& s, MLP<float>& net, const Data& data, Run& run, bool show_progress,
           const Parallel& par) {
    auto optimizer = make_optimizer(s, net.parameters());
    const std::vector<TensorF> params = net.parameters();
    ProgressBar progress(show_progress);
    Rng rng(s.seed ^ 0x5eedf00dULL);
    const Index n = data.train.x.rows();
    std::vector<Index> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), Index{0});
    Matrix<float> batch_x(s.batch, data.train.x.cols());
    std::vector<int> batch_y(static_cast<std::size_t>(s.batch));
    std::int64_t step = 0;
    // Batch norm cannot train on one sample (PyTorch refuses too), and every rank needs a row:
    // a last batch smaller than that is left out.
    const auto left_out = [&](Index rows) {
        return (rows < 2 && s.norm == "batch") || rows < par.ranks;
    };
    const Index batches = n / s.batch + (n % s.batch > 0 && !left_out(n % s.batch) ? 1 : 0);
    Schedule schedule(s, *optimizer, static_cast<std::int64_t>(batches) * s.epochs);
    // --report watches every step (with the weights' updates); otherwise a monitor is attached
    // only for the steps --log-every logs, so that the others pay nothing.
    std::optional<diag::GradientMonitor<float>> watch;
    if (!s.report.empty() || s.per_sample) {
        watch.emplace(
            net, diag::GradientMonitor<float>::Options{.per_sample = {.enabled = s.per_sample}});
    }

    // --sharpness-every N: the Hessian's top eigenvalue on the step's own batch, from the step's
    // recorded graph (Lanczos, 20 Hessian-vector products at most), before its backward.
    std::optional<diag::SharpnessTracker<float>> sharpness;
    if (s.sharpness_every > 0) {
        sharpness.emplace(
            net, diag::SharpnessOptions{.every = static_cast<std::size_t>(s.sharpness_every)});
    }

    for (int epoch = 1; epoch <= s.epochs; ++epoch) {
        // Fisher-Yates with the library's Rng: the same order with any standard library.
        for (Index i = n - 1; i > 0; --i) {
            const auto j = static_cast<Index>(rng.below(static_cast<std::uint64_t>(i + 1)));
            std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
        }
        const auto start = Clock::now();
        const std::size_t epoch_begin = watch ? watch->history().size() : 0;
        double loss_sum = 0.0;        // over this rank's rows
        Index correct = 0, seen = 0;  // this rank's rows
        Index done = 0;               // every rank's rows
        for (Index begin = 0; begin < n; begin += s.batch) {
            const Index rows = std::min(s.batch, n - begin);
            if (left_out(rows)) break;
            const auto [first, mine] = share_of(rows, par);
            if (batch_x.rows() != mine) batch_x.resize(mine, batch_x.cols());
            batch_y.resize(static_cast<std::size_t>(mine));
            for (Index r = 0; r < mine; ++r) {
                const Index source = order[static_cast<std::size_t>(begin + first + r)];
                batch_x.row(r) = data.train.x.row(source);
                batch_y[static_cast<std::size_t>(r)] =
                    data.train.y[static_cast<std::size_t>(source)];
            }

            std::optional<diag::GradientMonitor<float>> monitor;
            const bool logged = s.log_every > 0 && step % s.log_every == 0;
            if (logged && !watch)
                monitor.emplace(net, diag::GradientMonitor<float>::Options{.keep_last = 1,
                                                                           .track_updates = false});

            const TensorF logits = par.forward(net, TensorF::constant(batch_x));
            // The batch's mean loss. Across ranks, each one's share is its rows' sum times
            // ranks / rows, and DataParallel's average over the ranks (sum / ranks) of their
            // gradients is then the gradient of the whole batch's mean, whatever the shares' sizes.
            TensorF loss = par.ranks == 1
                               ? cross_entropy(logits, batch_y)
                               : cross_entropy(logits, batch_y, Reduction::sum) *
                                     (static_cast<double>(par.ranks) / static_cast<double>(rows));
            optimizer->zero_grad();
            if (sharpness && sharpness->observe(loss)) {
                run.sharpness.emplace_back(static_cast<double>(step),
                                           sharpness->latest()->sharpness);
            }
            loss.backward();
            if (logged) {
                run.gradients.push_back({step, epoch, (watch ? *watch : *monitor).last().layers()});
                monitor.reset();
            }
            if (watch) {
                // Over the ranks, the mean of their losses is the batch's (see `loss`).
                std::array<double, 1> batch_loss{static_cast<double>(loss.item()) /
                                                 static_cast<double>(par.ranks)};
                par.sum(batch_loss);
                run.step_losses.emplace_back(static_cast<double>(step), batch_loss[0]);
            }
            if (s.clip > 0.0) clip_grad_norm(params, s.clip);
            optimizer->step();
            schedule.step();

            // This rank's rows' loss summed (one process: the mean times the rows).
            loss_sum += static_cast<double>(loss.item()) * static_cast<double>(rows) /
                        static_cast<double>(par.ranks);
            correct += correct_predictions(logits.value(), batch_y);
            seen += mine;
            done += rows;
            ++step;
            const double mean_loss = loss_sum / static_cast<double>(seen);
            const double accuracy = static_cast<double>(correct) / static_cast<double>(seen);
            if (logged && !s.quiet) {
                progress.clear();
                const auto& layers = run.gradients.back().layers;
                std::printf("  step %lld  |dL/dz| per layer (input side first):%s\n",
                            static_cast<long long>(step - 1), format_norms(layers).c_str());
            }
            const double seconds = seconds_since(start);
            std::array<char, 160> after{};
            std::snprintf(
                after.data(), after.size(), "%.0f samples/s  loss %.4f  acc %.2f%%%s",
                seconds > 0 ? static_cast<double>(done) / seconds : 0.0, mean_loss,
                100.0 * accuracy,
                s.per_sample ? ("  B_simple " + noise_scale_text(watch->last())).c_str() : "");
            progress.draw("epoch " + std::to_string(epoch) + "/" + std::to_string(s.epochs), done,
                          n, after.data(), logged);
        }
        // The epoch's loss and accuracy over every rank's rows.
        std::array<double, 3> totals{loss_sum, static_cast<double>(correct),
                                     static_cast<double>(seen)};
        par.sum(totals);
        loss_sum = totals[0];
        correct = static_cast<Index>(totals[1]);
        seen = static_cast<Index>(totals[2]);
        EpochRecord record;
        record.epoch = epoch;
        record.seconds = seconds_since(start);
        record.train_loss = seen > 0 ? loss_sum / static_cast<double>(seen) : std::nan("");
        record.train_accuracy =
            seen > 0 ? static_cast<double>(correct) / static_cast<double>(seen) : std::nan("");
        record.samples_per_second =
            record.seconds > 0 ? static_cast<double>(seen) / record.seconds : 0.0;
        record.last_step = step;
        if (par.leads()) record.test = evaluate(net, data.test);
        if (s.per_sample) {
            record_per_sample_medians(*watch, epoch_begin, record);
        }
        if (sharpness && sharpness->latest()) record.sharpness = sharpness->latest()->sharpness;
        run.epochs.push_back(record);
        progress.clear();
        if (!s.quiet) {
            std::printf(
                "epoch %d/%d  loss %.4f  train acc %.2f%%  test loss %.4f  test acc %.2f%%  %.2f s  %.0f samples/s\n",
                epoch, s.epochs, record.train_loss, 100.0 * record.train_accuracy, record.test.loss,
                100.0 * record.test.accuracy, record.seconds, record.samples_per_second);
            if (s.per_sample) {
                const auto g3 = [](double v) {
                    return diag::format_number(v, {diag::Notation::general, 3});
                };
                std::printf(
                    "  per-sample (median over the epoch's steps): gradient noise scale "
                    "B_simple %s (batch %td; measurable at %.0f%% of steps), GSNR %s, "
                    "theta_norm %s, theta_inner %s\n",
                    g3(record.noise_scale).c_str(), s.batch, 100.0 * record.noise_scale_measured,
                    g3(record.gsnr).c_str(), g3(record.norm_test).c_str(),
                    g3(record.inner_product_test).c_str());
            }
            if (sharpness && sharpness->latest()) {
                std::printf(
                    "  sharpness (top Hessian eigenvalue of the batch loss, step %zu): %s; "
                    "2/lr = %s\n",
                    sharpness->latest()->step,
                    diag::format_number(record.sharpness, {diag::Notation::general, 4}).c_str(),
                    diag::format_number(2.0 / s.lr, {diag::Notation::general, 4}).c_str());
            }
            std::fflush(stdout);
        }
    }
    if (watch) run.history = watch->history();
}

// The --report page: the gradient's story over the run (diag::training_html), with the loss
// per step and the test accuracy per epoch.
diag::HtmlReport html_report(const Settings& s, const Run& run) {
    diag::SvgSeries loss{.name = "training loss (batch)", .points = run.step_losses};
    diag::SvgSeries accuracy{.name = "test accuracy", .points = {}};
    for (const auto& e : run.epochs) {
        accuracy.points.emplace_back(static_cast<double>(e.last_step), e.test.accuracy);
    }
    std::vector<std::vector<diag::SvgSeries>> curves{{loss}};
    std::vector<std::string> titles{"loss"};
    if (!run.sharpness.empty()) {
        // Next to the loss: the sharpness, and 2/lr, gradient descent's stability threshold on
        // a quadratic (Cohen et al. 2021).
        diag::SvgSeries top{.name = "sharpness (top Hessian eigenvalue)", .points = run.sharpness};
        diag::SvgSeries threshold{.name = "2 / lr", .points = {}};
        threshold.points = {{run.sharpness.front().first, 2.0 / s.lr},
                            {run.sharpness.back().first, 2.0 / s.lr}};
        curves.push_back({top, threshold});
        titles.emplace_back("sharpness");
    }
    curves.push_back({accuracy});
    titles.emplace_back("test accuracy");
    auto report = diag::training_html(
        run.history,
        {.title = "gradscope-fashion-mnist: " + std::to_string(s.depth) + " x " +
                  std::to_string(s.width) + " " + s.activation + ", " + s.init + " init",
         .description = "MLP 784 -> " + std::to_string(s.depth) + " x " + std::to_string(s.width) +
                        " -> 10 on Fashion-MNIST (" + s.activation + ", " + s.init + " init" +
                        (s.norm == "none" ? "" : ", " + s.norm + " norm") +
                        (s.residual ? ", residual" : "") + "), " + s.optimizer + " lr " +
                        diag::format_number(s.lr) + schedule_label(s) + ", batch " +
                        std::to_string(s.batch) + ", " + std::to_string(s.epochs) +
                        " epoch(s), seed " + std::to_string(s.seed) + ".",
         .curves = std::move(curves),
         .curve_titles = std::move(titles)});
    if (run.diagnosis) {
        diag::add_diagnosis(report, *run.diagnosis, "Before training: the doctor's diagnosis");
    }
    return report;
}

// The doctor's diagnosis on the first training batch.
diag::Diagnosis diagnose(MLP<float>& net, const Dataset& train, Index batch) {
    const Index rows = std::min(batch, train.x.rows());
    const Matrix<float> x = train.x.topRows(rows);
    const std::vector<int> labels(train.y.begin(), train.y.begin() + rows);
    return diag::doctor<float>(net, x,
                               [&](const TensorF& out) { return cross_entropy(out, labels); });
}

// A copy of the network, weights and buffers included. The doctor's pass draws dropout masks
// from the network's generators; on a twin, the training run is the same with --report as
// without it.
std::shared_ptr<MLP<float>> twin_of(const MLP<float>& net, const Settings& s, const Data& data) {
    auto twin = make_network(s, data.train.x.cols(), 10);
    copy_state(net, *twin);
    return twin;
}

// ---------------------------------------------------------------------------------------------
// Reports

nlohmann::json to_json(const Settings& s, const Data& data, const Run& run) {
    nlohmann::json epochs = nlohmann::json::array();
    for (const auto& e : run.epochs) {
        epochs.push_back({{"epoch", e.epoch},
                          {"train_loss", diag::json_number(e.train_loss)},
                          {"train_accuracy", diag::json_number(e.train_accuracy)},
                          {"test_loss", diag::json_number(e.test.loss)},
                          {"test_accuracy", diag::json_number(e.test.accuracy)},
                          {"seconds", e.seconds},
                          {"eval_seconds", e.test.seconds},
                          {"samples_per_second", e.samples_per_second},
                          {"noise_scale", diag::json_number(e.noise_scale)},
                          {"noise_scale_measured", diag::json_number(e.noise_scale_measured)},
                          {"gsnr", diag::json_number(e.gsnr)},
                          {"norm_test", diag::json_number(e.norm_test)},
                          {"inner_product_test", diag::json_number(e.inner_product_test)},
                          {"sharpness", diag::json_number(e.sharpness)}});
    }
    nlohmann::json gradients = nlohmann::json::array();
    for (const auto& g : run.gradients) {
        nlohmann::json layers = nlohmann::json::array();
        for (std::size_t l = 0; l < g.layers.size(); ++l) {
            layers.push_back(
                {{"layer", l + 1},
                 {"name", g.layers[l].name},
                 {"output_grad_norm", diag::json_number(g.layers[l].output_grad_norm)},
                 {"weight_grad_norm", diag::json_number(g.layers[l].weight_grad_norm)}});
        }
        gradients.push_back({{"step", g.step}, {"epoch", g.epoch}, {"layers", std::move(layers)}});
    }
    nlohmann::json sharpness = nlohmann::json::array();
    for (const auto& [step, value] : run.sharpness) {
        sharpness.push_back({{"step", step}, {"value", diag::json_number(value)}});
    }
    const Evaluation& last = run.epochs.empty() ? run.initial : run.epochs.back().test;
    return {{"tool", "gradscope-fashion-mnist"},
            {"gradscope_version", gradscope::version},
            {"config", to_json(s)},
            {"data",
             {{"train_samples", data.train.x.rows()},
              {"test_samples", data.test.x.rows()},
              {"input_mean", data.mean},
              {"input_std", data.stddev}}},
            {"parameters", run.parameters},
            {"eigen_threads", run.threads},
            {"processes", run.ranks},
            {"openmp", run.openmp},
            {"initial",
             {{"test_loss", diag::json_number(run.initial.loss)},
              {"test_accuracy", diag::json_number(run.initial.accuracy)}}},
            {"epochs", std::move(epochs)},
            {"final_test_accuracy", diag::json_number(last.accuracy)},
            {"final_test_loss", diag::json_number(last.loss)},
            {"total_seconds", run.total_seconds},
            {"gradients", std::move(gradients)},
            {"sharpness", std::move(sharpness)}};
}

// Long form, one value per row: "series,epoch,step,layer,value". Per epoch: train_loss,
// train_accuracy, test_loss, test_accuracy, seconds, samples_per_second (epoch 0: the test
// values before training). Per logged step and Linear layer (1 = input side):
// output_grad_norm (|dL/dz_l|) and weight_grad_norm.
std::string csv(const Run& run) {
    std::ostringstream out;
    out << "series,epoch,step,layer,value\n";
    const auto row = [&](const char* series, int epoch, std::int64_t step, std::size_t layer,
                         double value) {
        out << series << ',' << epoch << ',' << step << ','
            << (layer > 0 ? std::to_string(layer) : "") << ',' << diag::csv_number(value) << '\n';
    };
    row("test_loss", 0, 0, 0, run.initial.loss);
    row("test_accuracy", 0, 0, 0, run.initial.accuracy);
    for (const auto& e : run.epochs) {
        row("train_loss", e.epoch, e.last_step, 0, e.train_loss);
        row("train_accuracy", e.epoch, e.last_step, 0, e.train_accuracy);
        row("test_loss", e.epoch, e.last_step, 0, e.test.loss);
        row("test_accuracy", e.epoch, e.last_step, 0, e.test.accuracy);
        row("seconds", e.epoch, e.last_step, 0, e.seconds);
        row("samples_per_second", e.epoch, e.last_step, 0, e.samples_per_second);
    }
    for (const auto& g : run.gradients) {
        for (std::size_t l = 0; l < g.layers.size(); ++l) {
            row("output_grad_norm", g.epoch, g.step, l + 1, g.layers[l].output_grad_norm);
            row("weight_grad_norm", g.epoch, g.step, l + 1, g.layers[l].weight_grad_norm);
        }
    }
    return out.str();
}

// The number in attribute `name` of an <svg ...> element's opening tag.
double svg_attribute(const std::string& svg, const std::string& name) {
    const std::string key = " " + name + "=\"";
    const std::size_t at = svg.find(key);
    if (at == std::string::npos || at > svg.find('>'))
        throw std::logic_error("svg_plot wrote no " + name);
    return std::stod(svg.substr(at + key.size()));
}

// Plots stacked top to bottom in one image: each becomes a nested <svg> placed at its offset.
std::string stack_svgs(const std::vector<std::string>& plots) {
    double width = 0.0, height = 0.0;
    std::string body;
    for (const auto& plot : plots) {
        body += "<svg x=\"0\" y=\"" + diag::format_number(height, diag::svg_coordinate) + "\"" +
                plot.substr(4);  // after "<svg"
        width = std::max(width, svg_attribute(plot, "width"));
        height += svg_attribute(plot, "height");
    }
    const std::string w = diag::format_number(width, diag::svg_coordinate);
    const std::string h = diag::format_number(height, diag::svg_coordinate);
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + w + " " + h +
           "\" width=\"" + w + "\" height=\"" + h + "\">\n<rect x=\"0\" y=\"0\" width=\"" + w +
           "\" height=\"" + h + "\" fill=\"white\"/>\n" + body + "</svg>\n";
}

std::string plot(const Settings& s, const Run& run) {
    const std::string net =
        std::to_string(s.depth) + " x " + std::to_string(s.width) + " " + s.activation + ", " +
        s.init + (s.norm == "none" ? "" : ", " + s.norm + " norm") +
        (s.residual ? ", residual" : "") + ", " + s.optimizer + " lr " + diag::format_number(s.lr) +
        schedule_label(s) + ", batch " + std::to_string(s.batch);
    diag::SvgSeries train_loss{.name = "train loss (mean over the epoch)"},
        test_loss{.name = "test loss"};
    diag::SvgSeries train_acc{.name = "train accuracy (running, over the epoch)"},
        test_acc{.name = "test accuracy"};
    test_loss.points.emplace_back(0.0, run.initial.loss);
    test_acc.points.emplace_back(0.0, 100.0 * run.initial.accuracy);
    for (const auto& e : run.epochs) {
        const auto x = static_cast<double>(e.epoch);
        train_loss.points.emplace_back(x, e.train_loss);
        test_loss.points.emplace_back(x, e.test.loss);
        train_acc.points.emplace_back(x, 100.0 * e.train_accuracy);
        test_acc.points.emplace_back(x, 100.0 * e.test.accuracy);
    }
    diag::SvgSeries first_z{.name = "|dL/dz_1| (first Linear)"},
        last_z{.name = "|dL/dz_L| (last Linear)"};
    diag::SvgSeries first_w{.name = "|dL/dW_1|", .dash = "6 3"},
        last_w{.name = "|dL/dW_L|", .dash = "6 3"};
    first_w.color = diag::svg_palette()[0];
    last_w.color = diag::svg_palette()[1];
    for (const auto& g : run.gradients) {
        if (g.layers.empty()) continue;
        const auto x = static_cast<double>(g.step);
        first_z.points.emplace_back(x, g.layers.front().output_grad_norm);
        last_z.points.emplace_back(x, g.layers.back().output_grad_norm);
        first_w.points.emplace_back(x, g.layers.front().weight_grad_norm);
        last_w.points.emplace_back(x, g.layers.back().weight_grad_norm);
    }
    const double w = 900, h = 380;
    return stack_svgs({
        diag::svg_plot({train_loss, test_loss},
                       {.title = "Fashion-MNIST: loss per epoch (" + net + ")",
                        .x_label = "epoch",
                        .y_label = "cross-entropy",
                        .width = w,
                        .height = h}),
        diag::svg_plot({train_acc, test_acc},
                       {.title = "accuracy per epoch (epoch 0: before training)",
                        .x_label = "epoch",
                        .y_label = "accuracy (%)",
                        .width = w,
                        .height = h}),
        diag::svg_plot({first_z, last_z, first_w, last_w},
                       {.title = "gradient norms, first and last Linear layer, every " +
                                 std::to_string(s.log_every) + " steps",
                        .x_label = "step",
                        .y_label = "norm",
                        .log_y = true,
                        .width = w,
                        .height = h}),
    });
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    CLI::App app{
        "gradscope-fashion-mnist: trains an MLP (mlp()) on Fashion-MNIST: a progress bar per epoch, the test "
        "accuracy after each, the gradient reaching every Linear layer every N steps, and CSV, SVG, JSON and "
        "checkpoint files on request.",
        "gradscope-fashion-mnist"};
    app.add_option("--data", s.data,
                   "Directory with the four gzipped IDX files (Debian: dataset-fashion-mnist)")
        ->type_name("DIR")
        ->capture_default_str();
    app.add_option("--depth", s.depth, "Hidden layers (the network has depth + 1 Linear layers)")
        ->check(CLI::Range(0, 10000))
        ->capture_default_str();
    app.add_option("--width", s.width, "Width of every hidden layer")
        ->check(CLI::Range(Index{1}, Index{1} << 16))
        ->capture_default_str();
    app.add_option("--activation", s.activation, "Activation")
        ->check(CLI::IsMember(builtin_activation_names()))
        ->capture_default_str();
    app.add_option(
           "--init", s.init,
           "Weight initialiser: default = PyTorch's nn.Linear default; naive = N(0, 1); xavier = xavier_normal; "
           "he = he_normal (fan_in, ReLU gain); lecun = lecun_normal; orthogonal (gain 1). Biases always "
           "PyTorch's default")
        ->check(CLI::IsMember(init_names))
        ->capture_default_str();
    app.add_option("--norm", s.norm, "Normalisation in every hidden layer")
        ->check(CLI::IsMember({"none", "batch", "layer"}))
        ->capture_default_str();
    app.add_flag(
        "--residual", s.residual,
        "Pre-activation residual blocks x + s * linear(act(norm(x))) for the hidden layers after the first");
    app.add_option("--residual-scale", s.residual_scale, "The branch scale s of residual blocks")
        ->check(finite_number)
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_flag("--zero-init-residual", s.zero_init_residual,
                 "Zero each residual branch's last Linear");
    app.add_option("--dropout", s.dropout, "Dropout probability after each hidden activation")
        ->check(finite_number)
        ->check(CLI::Range(0.0, 0.99))
        ->capture_default_str();
    app.add_option("--optimizer", s.optimizer, "Optimiser")
        ->check(CLI::IsMember({"sgd", "adam", "adamw", "rmsprop"}))
        ->capture_default_str();
    app.add_option("--lr", s.lr, "Learning rate (> 0)")
        ->check(finite_number)
        ->check(positive_number)
        ->capture_default_str();
    app.add_option(
           "--lr-schedule", s.schedule,
           "Learning rate over the run: constant, or cosine = lr * (1 + cos(pi * t / T)) / 2 at step t of T "
           "(CosineAnnealingLR; after a warm-up, t and T count the steps after it)")
        ->check(CLI::IsMember({"constant", "cosine"}))
        ->capture_default_str();
    app.add_option(
           "--warmup", s.warmup,
           "Steps (batches) of linear warm-up from lr / 100 to lr before the schedule (LinearLR)")
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_option("--momentum", s.momentum, "Momentum (sgd, rmsprop)")
        ->check(finite_number)
        ->check(CLI::Range(0.0, 0.999999))
        ->capture_default_str();
    auto* decay_option = app.add_option("--weight-decay", s.weight_decay,
                                        "Weight decay (default 0; adamw: 0.01, as PyTorch)")
                             ->check(finite_number)
                             ->check(non_negative_number);
    app.add_option("--clip", s.clip, "Clip the gradients' total 2-norm to this (0: no clipping)")
        ->check(finite_number)
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_option("--epochs", s.epochs, "Epochs (0: only evaluate, e.g. a --load'ed checkpoint)")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    app.add_option("--batch", s.batch, "Batch size")
        ->check(CLI::Range(Index{1}, Index{1} << 20))
        ->capture_default_str();
    app.add_option("--seed", s.seed, "Seed of the weights, the shuffling and dropout")
        ->capture_default_str();
    app.add_option(
           "--threads", s.threads,
           "Threads for Eigen's matrix products (0: Eigen's default, every core); needs a build with OpenMP")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--limit", s.limit, "Train on the first N training images only (0: all 60000)")
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_option("--log-every", s.log_every,
                   "Log every layer's gradient norm every N steps, from step 0 (0: never)")
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_option("--csv", s.csv,
                   "Write the curves here (long form: series,epoch,step,layer,value)")
        ->check(output_file)
        ->type_name("PATH");
    app.add_option(
           "--svg", s.svg,
           "Write a plot here: loss and accuracy per epoch, first/last-layer gradient norms")
        ->check(output_file)
        ->type_name("PATH");
    app.add_option("--report", s.report,
                   "Write the run as an HTML page to open in a browser: the verdict per step, a "
                   "layers x steps map of the gradient, update sizes, dead and saturated units "
                   "(watches every step, which costs some speed)")
        ->check(output_file)
        ->type_name("PATH");
    app.add_option("--json", s.json,
                   "Write the run's record here (configuration, per-epoch results, timings)")
        ->check(output_file)
        ->type_name("PATH");
    app.add_option("--save", s.save, "Save the trained network as a safetensors checkpoint here")
        ->check(output_file)
        ->type_name("PATH");
    app.add_option(
           "--load", s.load,
           "Start from this safetensors checkpoint (the same architecture options it was saved with; the "
           "optimiser starts afresh)")
        ->type_name("PATH");
    app.add_flag(
        "--per-sample", s.per_sample,
        "Per-sample gradient statistics every step (GradientMonitor's per-sample mode): the "
        "gradient noise scale B_simple on the progress line, its and the GSNR's median per epoch "
        "in the output and the JSON, and a panel of them in --report");
    app.add_option(
           "--sharpness-every", s.sharpness_every,
           "Measure the sharpness (the top eigenvalue of the batch loss's Hessian, by Lanczos "
           "over exact Hessian-vector products) every N steps, from step 0 (0: never); printed "
           "per epoch with 2/lr, in the JSON, and plotted next to the loss in --report")
        ->check(non_negative_number)
        ->capture_default_str();
    app.add_flag("--doctor", s.doctor,
                 "Diagnose the gradient at step 0 (diag::doctor on the first training batch): the "
                 "verdict, its cause and remedies with their predicted gain per layer; then exit");
    app.add_flag(
        "--distributed", s.distributed,
        "Train data-parallel over the processes an MPI launcher started (mpiexec -n N "
        "gradscope-fashion-mnist --distributed): each takes its share of every batch of "
        "--batch rows and the gradients are averaged over them (gradscope::dist), so the "
        "steps are one process's; batch norm is synchronised; rank 0 evaluates, prints and "
        "writes (--report: the gradients it shows are the averaged ones, the activations rank "
        "0's share's). Not with --per-sample or --sharpness-every");
    app.add_flag("--quiet,-q", s.quiet, "Print nothing but errors");
    app.add_flag("--no-progress", s.no_progress,
                 "No progress bar (there is none anyway when stdout is not a terminal)");
    app.footer(
        "Inputs: pixels scaled to [0, 1], then standardised with the mean and standard deviation of all 60000 "
        "training images (computed from the data, whatever --limit; about 0.2860 and 0.3530).\n"
        "Output files are written only when asked for; missing directories are created.\n"
        "Exit status: 0 on success, 2 for a bad flag or value, 1 if the data cannot be read, training fails or a "
        "file cannot be written.");

    try {
        app.parse(argc, argv);
        if (s.optimizer == "adamw" && decay_option->count() == 0) s.weight_decay = 1e-2;
        if (s.momentum > 0.0 && s.optimizer != "sgd" && s.optimizer != "rmsprop") {
            throw CLI::ValidationError("--momentum", "only sgd and rmsprop take a momentum");
        }
        if (s.norm == "batch" && s.batch < 2) {
            throw CLI::ValidationError("--batch", "batch norm needs batches of at least 2");
        }
        if (s.epochs == 0 && !s.save.empty() && s.load.empty()) {
            throw CLI::ValidationError(
                "--save", "with --epochs 0 there is nothing trained to save (add --load)");
        }
        if (s.distributed) {
#ifndef GRADSCOPE_FASHION_MNIST_MPI
            throw CLI::ValidationError(
                "--distributed", "this build has no MPI (Debian: libopenmpi-dev, then rebuild)");
#endif
            // Both would measure rank 0's share of each batch and present it as the batch's.
            if (s.per_sample) {
                throw CLI::ValidationError(
                    "--distributed",
                    "cannot be combined with --per-sample: each process sees "
                    "only its share of a batch's per-sample gradients");
            }
            if (s.sharpness_every > 0) {
                throw CLI::ValidationError(
                    "--distributed",
                    "cannot be combined with --sharpness-every: each process can measure only "
                    "the Hessian of its share of the batch's loss");
            }
        }
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;  // --help is success; every usage error is 2
    }

    try {
        const auto start = Clock::now();
        Run run;
        Parallel par;
#ifdef GRADSCOPE_FASHION_MNIST_MPI
        std::optional<dist::Environment> mpi;
        std::optional<dist::Communicator> comm;
        if (s.distributed) {
            mpi.emplace(argc, argv);
            comm.emplace();
            par.rank = comm->rank();
            par.ranks = comm->size();
            par.comm = &*comm;
            if (!par.leads()) s.quiet = true;
            // Ranks on one machine share its cores.
            if (s.threads == 0) {
                s.threads =
                    std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / par.ranks);
            }
        }
#endif
        run.ranks = par.ranks;
#ifdef _OPENMP
        run.openmp = true;
#endif
#ifdef _OPENMP
        // OpenMP's team size, not Eigen::setNbThreads (which would pin every product to it):
        // gradscope keeps products too small to share on one thread.
        if (s.threads > 0) omp_set_num_threads(s.threads);
#endif
        run.threads = Eigen::nbThreads();
        if (!run.openmp && s.threads > 1 && !s.quiet) {
            std::cerr
                << "gradscope-fashion-mnist: note: built without OpenMP, so Eigen runs on one thread; "
                   "--threads "
                << s.threads << " has no effect\n";
        }

        const Data data = load_data(s);
        auto net = make_network(s, data.train.x.cols(), 10);
        run.parameters = net->parameter_count();
#ifdef GRADSCOPE_FASHION_MNIST_MPI
        std::optional<dist::DataParallel<float>> ddp;
        if (comm) {
            if (s.norm == "batch") dist::synchronize_batch_norm(*net, *comm);
            ddp.emplace(*net, *comm);
            par.ddp = &*ddp;
        }
#endif
        // After DataParallel, whose constructor reseeds the dropout streams the file restores.
        if (!s.load.empty()) {
#ifdef GRADSCOPE_FASHION_MNIST_MPI
            if (comm) {
                dist::load_checkpoint(*comm, s.load, *net);  // read by rank 0, loaded by all
            } else {
                load_checkpoint(s.load, *net);
            }
#else
            load_checkpoint(s.load, *net);
#endif
            if (!s.quiet) std::printf("loaded %s\n", s.load.c_str());
        }
        if (!s.quiet) {
            std::printf(
                "Fashion-MNIST: %td training, %td test images; inputs standardised (mean %.4f, std %.4f)\n",
                data.train.x.rows(), data.test.x.rows(), data.mean, data.stddev);
            std::printf(
                "MLP 784 -> %d x %td -> 10 (%s, %s init%s%s), %td parameters; %s lr %g%s, batch %td%s; "
                "Eigen on %d thread(s)%s%s\n",
                s.depth, s.width, s.activation.c_str(), s.init.c_str(),
                s.norm == "none" ? "" : (", " + s.norm + " norm").c_str(),
                s.residual ? ", residual" : "", run.parameters, s.optimizer.c_str(), s.lr,
                schedule_label(s).c_str(), s.batch,
                s.clip > 0 ? (", clip " + diag::format_number(s.clip)).c_str() : "", run.threads,
                run.openmp ? "" : " (no OpenMP)",
                par.ranks > 1
                    ? (" in each of " + std::to_string(par.ranks) + " processes, data-parallel")
                          .c_str()
                    : "");
        }
        if (s.doctor) {
            // On a twin: `net`'s DataParallel hooks and synchronised batch norm communicate,
            // and only rank 0 diagnoses.
            if (par.leads())
                std::cout << diagnose(*twin_of(*net, s, data), data.train, s.batch).text();
            return 0;
        }
        if (!s.report.empty() && par.leads())
            run.diagnosis = diagnose(*twin_of(*net, s, data), data.train, s.batch);
        if (par.leads()) run.initial = evaluate(*net, data.test);
        if (!s.quiet) {
            std::printf("before training: test loss %.4f, test accuracy %.2f%%\n", run.initial.loss,
                        100.0 * run.initial.accuracy);
            std::fflush(stdout);
        }
        train(s, *net, data, run, !s.quiet && !s.no_progress && stdout_is_terminal(), par);
        run.total_seconds = seconds_since(start);

        if (!s.quiet && !run.epochs.empty()) {
            double seconds = 0.0, samples = 0.0;
            for (const auto& e : run.epochs) {
                seconds += e.seconds;
                samples += e.samples_per_second * e.seconds;
            }
            std::printf(
                "final test accuracy %.2f%% after %d epoch(s); %.2f s per epoch, %.0f samples/s (training "
                "only); %.1f s in all\n",
                100.0 * run.epochs.back().test.accuracy, s.epochs,
                seconds / static_cast<double>(run.epochs.size()),
                seconds > 0 ? samples / seconds : 0.0, run.total_seconds);
        }
        const auto report = [&](const std::string& path, const char* what,
                                const std::function<std::string()>& text) {
            if (path.empty() || !par.leads()) return;
            write_text_file(path, text());
            if (!s.quiet) std::cout << "wrote " << what << ": " << path << "\n";
        };
        report(s.json, "JSON", [&] { return to_json(s, data, run).dump(1) + "\n"; });
        report(s.csv, "CSV", [&] { return csv(run); });
        report(s.svg, "SVG", [&] { return plot(s, run); });
        report(s.report, "HTML report", [&] { return html_report(s, run).html(); });
        if (!s.save.empty()) {
            const std::filesystem::path p(s.save);
            const SaveOptions options{
                .metadata = {{"gradscope.fashion_mnist.config", to_json(s).dump()}}};
            if (par.leads() && p.has_parent_path()) {
                std::filesystem::create_directories(p.parent_path());
            }
#ifdef GRADSCOPE_FASHION_MNIST_MPI
            if (comm) {
                dist::save_checkpoint(*comm, p, *net, options);  // rank 0 writes
            } else {
                save_checkpoint(p, *net, options);
            }
#else
            save_checkpoint(p, *net, options);
#endif
            if (!s.quiet) std::cout << "wrote checkpoint: " << s.save << "\n";
        }
    } catch (const std::exception& e) {
        std::cerr << "gradscope-fashion-mnist: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
