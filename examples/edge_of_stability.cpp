// gradscope-edge-of-stability: full-batch gradient descent on a subset of Fashion-MNIST at
// several step sizes, with the sharpness (the top eigenvalue of the training loss's Hessian)
// measured as it trains. Cohen et al. 2021 ("Gradient Descent on Neural Networks Typically
// Occurs at the Edge of Stability") observe that the sharpness first rises ("progressive
// sharpening") until it reaches 2/lr, the step size's stability threshold on a quadratic, and
// then hovers at or just above it while the loss keeps falling, though no longer monotonically.
// This program measures both for each --lr and writes two SVG plots (sharpness against 2/lr,
// and the loss), a JSON record and a CSV of the curves. With --check it exits with status 3
// unless, for every --lr, the sharpness rose past 1.5/lr and stayed below 3/lr from then on.
//
// The setting follows the paper's fully connected tanh network on a 5000-image subset of
// CIFAR-10 with the square loss: here a 784 -> 200 -> 200 -> 10 tanh MLP on the first 5000
// Fashion-MNIST training images, loss (1/n) sum_i 1/2 |f(x_i) - e_{y_i}|^2 over one-hot
// targets, plain gradient descent on the whole subset (no momentum, no mini-batches).
#include <gradscope/builtin_activations.hpp>
#include <gradscope/diag/json_report.hpp>
#include <gradscope/gradscope.hpp>

#include "cli_checks.hpp"
#include "fashion_mnist_data.hpp"
#include "text_file.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace gradscope;
using Clock = std::chrono::steady_clock;

struct Settings {
    std::string data = "/usr/share/datasets/fashion-mnist";
    Index samples = 5000;
    Index width = 200;
    int depth = 2;
    std::string activation = "tanh";
    std::string loss = "mse";
    // 2/lr = 50, 45, 40: above the initial sharpness (about 37 here), so that it has to rise.
    std::vector<double> lrs = {2.0 / 50, 2.0 / 45, 2.0 / 40};
    int steps = 1500;
    int sharpness_every = 25;
    int lanczos_iterations = 20;
    std::uint64_t seed = 0;
    int threads = 0;
    std::string out = "edge_of_stability";
    bool check = false;
    bool quiet = false;
};

// One step size's run.
struct Run {
    double lr = 0.0;
    std::vector<std::pair<double, double>> losses;     // (step, training loss)
    std::vector<std::pair<double, double>> sharpness;  // (step, top Hessian eigenvalue)
    std::vector<bool> converged;                       // per sharpness measurement
    double accuracy = 0.0;                             // on the training subset, at the end
    double seconds = 0.0;
};

// What the run says about the edge of stability.
struct Verdict {
    std::optional<double> arrival;  // the first measured step with sharpness >= 1.5 / lr
    double max_after = NAN;         // the largest sharpness from the arrival on
    std::optional<double> at_edge;  // the first measured step with sharpness >= 2 / lr
    double median_at_edge = NAN;    // the median sharpness from then on, in units of 2 / lr
    double loss_rises = NAN;        // the fraction of steps from then on whose loss rose
    [[nodiscard]] bool edge_reproduced(double lr) const {
        return arrival.has_value() && max_after < 3.0 / lr;
    }
};

// The first measured step whose sharpness is at least `threshold`, and every measurement from
// then on.
std::pair<std::optional<double>, std::vector<double>> from_first_at_least(const Run& run,
                                                                          double threshold) {
    std::optional<double> first;
    std::vector<double> after;
    for (const auto& [step, value] : run.sharpness) {
        if (!first && value >= threshold) first = step;
        if (first) after.push_back(value);
    }
    return {first, after};
}

Verdict judge(const Run& run) {
    Verdict v;
    const auto [arrival, after_arrival] = from_first_at_least(run, 1.5 / run.lr);
    v.arrival = arrival;
    if (arrival) v.max_after = *std::max_element(after_arrival.begin(), after_arrival.end());

    auto [at_edge, at_edge_values] = from_first_at_least(run, 2.0 / run.lr);
    v.at_edge = at_edge;
    if (!at_edge) return v;
    const auto middle =
        at_edge_values.begin() + static_cast<std::ptrdiff_t>(at_edge_values.size() / 2);
    std::nth_element(at_edge_values.begin(), middle, at_edge_values.end());
    v.median_at_edge = *middle * run.lr / 2.0;
    int rises = 0, steps = 0;
    for (std::size_t i = 1; i < run.losses.size(); ++i) {
        if (run.losses[i].first <= *at_edge) continue;
        ++steps;
        rises += run.losses[i].second > run.losses[i - 1].second ? 1 : 0;
    }
    v.loss_rises = steps > 0 ? static_cast<double>(rises) / steps : NAN;
    return v;
}

ActivationChoice<float> activation_named(const std::string& name) {
    std::optional<ActivationChoice<float>> choice;
    for_each_builtin_activation([&](auto act) {
        if (name == decltype(act)::name) choice.emplace(act);
    });
    if (!choice) throw value_error("unknown activation '" + name + "'");
    return *choice;
}

// A step size as the text shows it: 2/45 as 0.04444, not to 17 digits (the CSV and JSON keep
// every digit).
std::string lr_text(double lr) { return diag::format_number(lr, {diag::Notation::general, 4}); }

Matrix<float> one_hot(const std::vector<int>& labels, Index classes) {
    Matrix<float> y = Matrix<float>::Zero(static_cast<Index>(labels.size()), classes);
    for (std::size_t i = 0; i < labels.size(); ++i) y(static_cast<Index>(i), labels[i]) = 1.0f;
    return y;
}

double accuracy_of(const ConstMatrixView<float>& out, const std::vector<int>& labels) {
    Index right = 0;
    for (Index i = 0; i < out.rows(); ++i) {
        Index best = 0;
        out.row(i).maxCoeff(&best);
        right += best == labels[static_cast<std::size_t>(i)] ? 1 : 0;
    }
    return static_cast<double>(right) / static_cast<double>(out.rows());
}

Run train(const Settings& s, double lr, const fashion_mnist::Dataset& data) {
    std::vector<Index> widths{data.x.cols()};
    for (int i = 0; i < s.depth; ++i) widths.push_back(s.width);
    widths.push_back(10);
    // The same initial weights for every step size: only lr differs between the runs.
    auto net = mlp<float>(
        {.widths = widths, .activation = activation_named(s.activation), .seed = s.seed});
    SGD<float> optimizer(net->parameters(), {.lr = lr});
    diag::SharpnessTracker<float> tracker(
        *net,
        {.every = static_cast<std::size_t>(s.sharpness_every),
         .lanczos = {
             .k = 1, .max_iterations = s.lanczos_iterations, .tolerance = 1e-3, .seed = s.seed}});
    const TensorF x = TensorF::constant(data.x);
    const TensorF targets = TensorF::constant(one_hot(data.y, 10));
    const double n = static_cast<double>(data.x.rows());

    Run run;
    run.lr = lr;
    const auto start = Clock::now();
    for (int step = 0; step <= s.steps; ++step) {
        const TensorF out = (*net)(x);
        TensorF loss = s.loss == "mse" ? mse_loss(out, targets, Reduction::sum) * (0.5 / n)
                                       : cross_entropy(out, data.y);
        const double value = loss.item();
        if (!std::isfinite(value)) {
            throw value_error("lr " + lr_text(lr) + ": the loss is " + std::to_string(value) +
                              " at step " + std::to_string(step) +
                              " (gradient descent diverged; try a smaller --lr)");
        }
        run.losses.emplace_back(step, value);
        if (step == s.steps) {
            run.accuracy = accuracy_of(out.value(), data.y);
            break;  // the last step is only evaluated
        }
        if (tracker.observe(loss)) {
            const diag::SharpnessRecord r = *tracker.latest();
            run.sharpness.emplace_back(step, r.sharpness);
            run.converged.push_back(r.converged);
        }
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        if (!s.quiet && step % 250 == 0) {
            std::printf("  lr %-8s step %5d  loss %.5f  sharpness %s  (2/lr = %s)\n",
                        lr_text(lr).c_str(), step, value,
                        run.sharpness.empty() ? "-"
                                              : diag::format_number(run.sharpness.back().second,
                                                                    {diag::Notation::general, 4})
                                                    .c_str(),
                        lr_text(2.0 / lr).c_str());
            std::fflush(stdout);
        }
    }
    run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return run;
}

std::string sharpness_svg(const Settings& s, const std::vector<Run>& runs) {
    std::vector<diag::SvgSeries> series;
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const std::string colour = diag::svg_palette()[i % diag::svg_palette().size()];
        const std::string lr = lr_text(runs[i].lr);
        series.push_back(
            {.name = "sharpness, lr " + lr, .points = runs[i].sharpness, .color = colour});
        series.push_back(
            {.name = "2 / lr = " + lr_text(2.0 / runs[i].lr),
             .points = {{0.0, 2.0 / runs[i].lr}, {static_cast<double>(s.steps), 2.0 / runs[i].lr}},
             .color = colour,
             .dash = "6 4"});
    }
    return diag::svg_plot(series, {.title = "Sharpness under full-batch gradient descent",
                                   .x_label = "step",
                                   .y_label = "top eigenvalue of the Hessian",
                                   .hover_values = true});
}

std::string loss_svg(const std::vector<Run>& runs) {
    std::vector<diag::SvgSeries> series;
    for (const Run& run : runs) {
        series.push_back({.name = "lr " + lr_text(run.lr), .points = run.losses});
    }
    return diag::svg_plot(series, {.title = "Training loss (the whole subset, every step)",
                                   .x_label = "step",
                                   .y_label = "loss",
                                   .log_y = true});
}

std::string curves_csv(const std::vector<Run>& runs) {
    std::string csv = "lr,series,step,value\n";
    for (const Run& run : runs) {
        const std::string lr = diag::format_number(run.lr, {diag::Notation::general, 17});
        for (const auto& [step, value] : run.losses) {
            csv += lr + ",loss," + std::to_string(static_cast<long>(step)) + "," +
                   diag::format_number(value, {diag::Notation::general, 9}) + "\n";
        }
        for (const auto& [step, value] : run.sharpness) {
            csv += lr + ",sharpness," + std::to_string(static_cast<long>(step)) + "," +
                   diag::format_number(value, {diag::Notation::general, 9}) + "\n";
        }
    }
    return csv;
}

nlohmann::json record(const Settings& s, const std::vector<Run>& runs,
                      const std::vector<Verdict>& verdicts) {
    nlohmann::json out = {{"settings",
                           {{"data", s.data},
                            {"samples", s.samples},
                            {"widths", s.width},
                            {"depth", s.depth},
                            {"activation", s.activation},
                            {"loss", s.loss},
                            {"steps", s.steps},
                            {"sharpness_every", s.sharpness_every},
                            {"lanczos_iterations", s.lanczos_iterations},
                            {"seed", s.seed}}},
                          {"runs", nlohmann::json::array()}};
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const Run& r = runs[i];
        const Verdict& v = verdicts[i];
        const auto unconverged = std::count(r.converged.begin(), r.converged.end(), false);
        out["runs"].push_back(
            {{"lr", r.lr},
             {"two_over_lr", 2.0 / r.lr},
             {"initial_sharpness", diag::json_number(r.sharpness.front().second)},
             {"arrival_step", v.arrival ? nlohmann::json(*v.arrival) : nlohmann::json(nullptr)},
             {"max_sharpness_after_arrival", diag::json_number(v.max_after)},
             {"edge_step", v.at_edge ? nlohmann::json(*v.at_edge) : nlohmann::json(nullptr)},
             {"median_sharpness_from_edge_over_two_over_lr", diag::json_number(v.median_at_edge)},
             {"fraction_of_steps_loss_rose_from_edge", diag::json_number(v.loss_rises)},
             {"final_loss", r.losses.back().second},
             {"final_train_accuracy", r.accuracy},
             {"unconverged_measurements", unconverged},
             {"seconds", r.seconds},
             {"edge_of_stability_reproduced", v.edge_reproduced(r.lr)}});
    }
    return out;
}

std::string or_dash(double v, int digits = 3) {
    return std::isfinite(v) ? diag::format_number(v, {diag::Notation::general, digits}) : "-";
}

std::string step_or_never(const std::optional<double>& step) {
    return step ? std::to_string(static_cast<long>(*step)) : "never";
}

void print_table(const std::vector<Run>& runs, const std::vector<Verdict>& verdicts) {
    std::printf("\n%-8s %6s %8s %9s %10s %8s %12s %11s %10s %9s %6s\n", "lr", "2/lr", "initial",
                "at 1.5/lr", "max after", "at 2/lr", "median/(2/lr)", "loss rises", "final loss",
                "accuracy", "edge?");
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const Run& r = runs[i];
        const Verdict& v = verdicts[i];
        const std::string rises =
            std::isfinite(v.loss_rises)
                ? diag::format_number(100.0 * v.loss_rises, {diag::Notation::fixed, 1}) + "%"
                : "-";
        std::printf("%-8s %6s %8s %9s %10s %8s %12s %11s %10s %9s %6s\n", lr_text(r.lr).c_str(),
                    or_dash(2.0 / r.lr).c_str(), or_dash(r.sharpness.front().second).c_str(),
                    step_or_never(v.arrival).c_str(), or_dash(v.max_after).c_str(),
                    step_or_never(v.at_edge).c_str(), or_dash(v.median_at_edge).c_str(),
                    rises.c_str(), or_dash(r.losses.back().second, 4).c_str(),
                    or_dash(r.accuracy, 3).c_str(), v.edge_reproduced(r.lr) ? "yes" : "no");
    }
    std::printf(
        "at 1.5/lr, at 2/lr: the first measured step with sharpness at least that; max after: the "
        "largest sharpness from the first on; median, loss rises: the sharpness, and the share of "
        "steps on which the loss went up, from the second on\n");
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    CLI::App app{
        "Full-batch gradient descent on a Fashion-MNIST subset at several step sizes, with the "
        "sharpness (the top Hessian eigenvalue) measured as it trains: the edge of stability of "
        "Cohen et al. 2021 reproduced.",
        "gradscope-edge-of-stability"};
    app.add_option("--data", s.data, "Directory of the four Fashion-MNIST *-ubyte.gz files")
        ->capture_default_str();
    app.add_option("--samples", s.samples, "The first N training images are the training set")
        ->check(CLI::Range(Index{10}, Index{60000}))
        ->capture_default_str();
    app.add_option("--width", s.width, "Hidden width")
        ->check(CLI::Range(Index{1}, Index{1} << 14))
        ->capture_default_str();
    app.add_option("--depth", s.depth, "Hidden layers")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    app.add_option("--activation", s.activation, "Hidden activation")
        ->check(CLI::IsMember(builtin_activation_names()))
        ->capture_default_str();
    app.add_option("--loss", s.loss,
                   "mse: (1/n) sum 1/2 |f(x) - onehot(y)|^2, as in the paper; cross-entropy")
        ->check(CLI::IsMember({"mse", "cross-entropy"}))
        ->capture_default_str();
    app.add_option("--lr", s.lrs, "Step sizes, one run each (e.g. --lr 0.02 0.04 0.08)")
        ->check(finite_number)
        ->check(positive_number)
        ->capture_default_str();
    app.add_option("--steps", s.steps, "Gradient descent steps per step size")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--sharpness-every", s.sharpness_every, "Measure the sharpness every N steps")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--lanczos-iterations", s.lanczos_iterations,
                   "Lanczos iterations per sharpness measurement (at most; each is one "
                   "Hessian-vector product over the whole subset)")
        ->check(CLI::Range(2, 1000))
        ->capture_default_str();
    app.add_option("--seed", s.seed, "Seed of the initial weights and of Lanczos")
        ->capture_default_str();
    app.add_option("--threads", s.threads,
                   "Threads for Eigen's matrix products (0: every core); needs a build with OpenMP")
        ->check(CLI::Range(0, 1024))
        ->capture_default_str();
    app.add_option("--out", s.out,
                   "Directory for edge_of_stability.svg, edge_of_stability_loss.svg, "
                   "edge_of_stability.json and edge_of_stability.csv (created if missing)")
        ->capture_default_str();
    app.add_flag("--check", s.check,
                 "Exit with status 3 unless, for every --lr, the sharpness rose past 1.5/lr and "
                 "stayed below 3/lr from then on");
    app.add_flag("--quiet,-q", s.quiet, "Print only the table and errors");
    app.footer(
        "Exit status: 0 on success, 2 for a bad flag or value, 1 if the data cannot be read, "
        "training diverges or a file cannot be written, 3 if --check finds no edge of stability.");
    try {
        app.parse(argc, argv);
        for (const std::string name : {"edge_of_stability.svg", "edge_of_stability.json"}) {
            std::string path = (std::filesystem::path(s.out) / name).string();
            const std::string problem = output_file(path);
            if (!problem.empty()) throw CLI::ValidationError("--out", problem);
        }
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    try {
#ifdef _OPENMP
        if (s.threads > 0) omp_set_num_threads(s.threads);
#endif
        const fashion_mnist::Data data = fashion_mnist::load_fashion_mnist(s.data, s.samples);
        if (!s.quiet) {
            std::printf(
                "Full-batch gradient descent on the first %td Fashion-MNIST training images: MLP "
                "784 -> %d x %td -> 10 (%s), %s loss, %d steps per lr, sharpness every %d steps "
                "(Lanczos, %d iterations at most); Eigen on %d thread(s)\n",
                data.train.x.rows(), s.depth, s.width, s.activation.c_str(), s.loss.c_str(),
                s.steps, s.sharpness_every, s.lanczos_iterations, Eigen::nbThreads());
        }
        std::vector<Run> runs;
        std::vector<Verdict> verdicts;
        for (const double lr : s.lrs) {
            runs.push_back(train(s, lr, data.train));
            verdicts.push_back(judge(runs.back()));
        }
        print_table(runs, verdicts);

        const std::filesystem::path out(s.out);
        write_text_file((out / "edge_of_stability.svg").string(), sharpness_svg(s, runs));
        write_text_file((out / "edge_of_stability_loss.svg").string(), loss_svg(runs));
        write_text_file((out / "edge_of_stability.csv").string(), curves_csv(runs));
        write_text_file((out / "edge_of_stability.json").string(),
                        record(s, runs, verdicts).dump(2) + "\n");
        if (!s.quiet)
            std::printf("wrote %s/edge_of_stability{.svg,_loss.svg,.json,.csv}\n", s.out.c_str());

        if (s.check) {
            for (std::size_t i = 0; i < runs.size(); ++i) {
                if (!verdicts[i].edge_reproduced(runs[i].lr)) {
                    std::fprintf(
                        stderr, "gradscope-edge-of-stability: lr %s: the sharpness %s\n",
                        lr_text(runs[i].lr).c_str(),
                        verdicts[i].arrival
                            ? ("reached " + or_dash(verdicts[i].max_after) +
                               " after arriving, not below 3/lr = " + or_dash(3.0 / runs[i].lr))
                                  .c_str()
                            : ("never reached 1.5/lr = " + or_dash(1.5 / runs[i].lr)).c_str());
                    return 3;
                }
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gradscope-edge-of-stability: error: %s\n", e.what());
        return 1;
    }
}
