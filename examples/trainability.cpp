// gradscope-trainability: Schoenholz et al. 2017 ("Deep Information Propagation") find random
// tanh networks trainable only to a depth of about 6 xi_c, the correlation depth scale of
// mean-field theory, which is infinite on the edge of chaos. This trains a grid of networks
// across that edge on Fashion-MNIST — tanh, biases N(0, sigma_b2), weights N(0, sigma_w2 /
// fan_in), plain SGD, a short run each — and draws their test accuracy as a heat map with the
// 6 xi_c curve over it.
//
//   gradscope-trainability                               # the default grid: 96 networks
//   gradscope-trainability --svg docs/trainability.svg --json trainability.json
//   gradscope-trainability --sigma-w2 1.76,4 --depths 40 --steps 150   # the test's corners
#include <gradscope/builtin_activations.hpp>
#include <gradscope/diag/json_report.hpp>
#include <gradscope/diag/svg_heatmap.hpp>
#include <gradscope/gradscope.hpp>

#include "cli_checks.hpp"
#include "fashion_mnist_data.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace gradscope;

namespace {

struct Settings {
    std::string data = "/usr/share/datasets/fashion-mnist";
    double sigma_b2 = 0.05;
    std::vector<double> sigma_w2{1.0, 1.15, 1.3, 1.45, 1.6, 1.76, 1.9, 2.1, 2.4, 2.8, 3.3, 4.0};
    std::vector<int> depths{10, 20, 30, 40, 55, 70, 85, 100};  // hidden tanh layers
    Index width = 128;
    Index train = 10000, test = 2000;  // images used
    int steps = 1000;
    Index batch = 128;
    double lr = 0.01;
    std::uint64_t seed = 0;
    unsigned threads = 0;
    std::string svg, json;
};

struct Cell {
    double sigma_w2 = 0.0;
    int depth = 0;
    double test_accuracy = 0.0;
    double final_loss = 0.0;  // mean training loss over the last 20 steps
    double xi_c = 0.0;        // mean-field correlation depth scale (infinite on the edge)
    double seconds = 0.0;
};

using fashion_mnist::Dataset;

Cell train_one(const Settings& s, const Dataset& train, const Dataset& test, double sigma_w2,
               int depth) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<Index> widths{train.x.cols()};
    for (int l = 0; l < depth; ++l) widths.push_back(s.width);
    widths.push_back(10);
    auto net = mlp<float>({.widths = widths,
                           .activation = Tanh{},
                           .init = diag::gaussian_init<float>(sigma_w2),
                           .bias_init = init::normal(0.0, std::sqrt(s.sigma_b2)),
                           .seed = s.seed + static_cast<std::uint64_t>(depth)});
    SGD<float> sgd(net->parameters(), {.lr = s.lr});
    data::DataLoader<float> loader(
        data::TensorDataset<float>(train.x, train.y),
        {.batch_size = static_cast<std::size_t>(s.batch), .shuffle = true, .seed = s.seed});
    std::vector<double> losses;
    for (int step = 0; step < s.steps;) {
        for (const auto& batch : loader) {
            if (step == s.steps) break;
            auto loss = cross_entropy((*net)(TensorF::constant(batch.x)), batch.labels);
            losses.push_back(loss.value()(0, 0));
            sgd.zero_grad();
            loss.backward();
            sgd.step();
            ++step;
        }
    }
    Cell cell{.sigma_w2 = sigma_w2, .depth = depth};
    const std::size_t tail = std::min<std::size_t>(20, losses.size());
    cell.final_loss =
        std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(tail), losses.end(), 0.0) /
        static_cast<double>(tail);
    {
        const NoGradGuard no_graph;
        net->eval();
        cell.test_accuracy = metrics::accuracy((*net)(TensorF::constant(test.x)), test.y);
    }
    const auto fp = diag::fixed_point(Tanh{}, {.sigma_w2 = sigma_w2, .sigma_b2 = s.sigma_b2});
    cell.xi_c = fp ? fp->xi_c : std::nan("");
    cell.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return cell;
}

// Cell edges halfway between neighbouring values, the outer ones as far out as the inner.
std::vector<double> edges_around(std::vector<double> centres) {
    std::vector<double> out;
    if (centres.size() == 1) return {centres[0] - 0.5, centres[0] + 0.5};
    out.push_back(centres[0] - (centres[1] - centres[0]) / 2);
    for (std::size_t i = 0; i + 1 < centres.size(); ++i)
        out.push_back((centres[i] + centres[i + 1]) / 2);
    out.push_back(centres.back() + (centres.back() - centres[centres.size() - 2]) / 2);
    return out;
}

std::string heat_map(const Settings& s, const std::vector<Cell>& cells) {
    std::vector<double> depths(s.depths.begin(), s.depths.end());
    diag::SvgHeatMap map{.x_edges = edges_around(s.sigma_w2),
                         .y_edges = edges_around(depths),
                         .values = {},
                         .low = 0.1,
                         .high = 0.9,
                         .title = "Test accuracy after " + std::to_string(s.steps) +
                                  " SGD steps: tanh, width " + std::to_string(s.width) +
                                  ", sigma_b^2 = " + diag::format_number(s.sigma_b2),
                         .x_label = "sigma_w^2",
                         .y_label = "depth (hidden layers)",
                         .value_label = "accuracy"};
    for (const int d : s.depths) {
        for (const double w : s.sigma_w2) {
            for (const auto& c : cells) {
                if (c.depth == d && c.sigma_w2 == w) map.values.push_back(c.test_accuracy);
            }
        }
    }
    diag::SvgSeries curve{.name = "6 xi_c", .points = {}, .color = "#d62728", .dash = ""};
    const double lo = map.x_edges.front(), hi = map.x_edges.back();
    for (int k = 0; k <= 120; ++k) {
        const double w = lo + (hi - lo) * k / 120.0;
        if (w <= 0.0) continue;
        const auto fp = diag::fixed_point(Tanh{}, {.sigma_w2 = w, .sigma_b2 = s.sigma_b2});
        if (fp) curve.points.emplace_back(w, std::isfinite(fp->xi_c) ? 6.0 * fp->xi_c : 1e9);
    }
    map.overlays.push_back(std::move(curve));
    return diag::svg_heatmap(map);
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    CLI::App app{
        "gradscope-trainability: test accuracy of tanh MLPs across the edge of chaos after a short SGD "
        "run on Fashion-MNIST, against the 6 xi_c depth of Schoenholz et al. 2017.",
        "gradscope-trainability"};
    app.add_option("--data", s.data, "Directory with Fashion-MNIST's *-ubyte.gz files")
        ->capture_default_str();
    app.add_option("--sigma-b2", s.sigma_b2, "Bias variance (> 0)")
        ->check(finite_number)
        ->check(positive_number)
        ->capture_default_str();
    app.add_option("--sigma-w2", s.sigma_w2, "Weight variances x fan-in, comma separated")
        ->delimiter(',')
        ->check(finite_number)
        ->check(positive_number)
        ->type_name("LIST")
        ->capture_default_str();
    app.add_option("--depths", s.depths, "Hidden tanh layers, comma separated")
        ->delimiter(',')
        ->check(CLI::Range(1, 10000))
        ->type_name("LIST")
        ->capture_default_str();
    app.add_option("--width", s.width, "Width of the hidden layers")
        ->check(CLI::Range(Index{1}, Index{1} << 14))
        ->capture_default_str();
    app.add_option("--train", s.train, "Training images used (the first N)")
        ->check(CLI::Range(Index{1}, Index{60000}))
        ->capture_default_str();
    app.add_option("--test", s.test, "Test images used (the first N)")
        ->check(CLI::Range(Index{1}, Index{10000}))
        ->capture_default_str();
    app.add_option("--steps", s.steps, "SGD steps per network")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--batch", s.batch, "Batch size")
        ->check(CLI::Range(Index{1}, Index{60000}))
        ->capture_default_str();
    app.add_option("--lr", s.lr, "SGD learning rate")
        ->check(finite_number)
        ->check(positive_number)
        ->capture_default_str();
    app.add_option("--seed", s.seed, "Seed of the weights and of the batch order")
        ->capture_default_str();
    app.add_option("--threads", s.threads, "Networks trained in parallel (0: one per core)")
        ->capture_default_str();
    app.add_option("--svg", s.svg, "Write the heat map here")->check(output_file)->type_name("PATH");
    app.add_option("--json", s.json, "Write every cell here")
        ->check(output_file)
        ->type_name("PATH");
    try {
        app.parse(argc, argv);
        std::sort(s.sigma_w2.begin(), s.sigma_w2.end());
        s.sigma_w2.erase(std::unique(s.sigma_w2.begin(), s.sigma_w2.end()), s.sigma_w2.end());
        std::sort(s.depths.begin(), s.depths.end());
        s.depths.erase(std::unique(s.depths.begin(), s.depths.end()), s.depths.end());
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    if (s.threads == 0) s.threads = std::max(1u, std::thread::hardware_concurrency());

    try {
        // Output paths are opened before the work, so that a bad one fails at once.
        std::ofstream svg_file, json_file;
        if (!s.svg.empty() && !(svg_file.open(s.svg, std::ios::binary), svg_file))
            throw std::runtime_error("cannot open " + s.svg + " for writing");
        if (!s.json.empty() && !(json_file.open(s.json, std::ios::binary), json_file))
            throw std::runtime_error("cannot open " + s.json + " for writing");

        auto data = fashion_mnist::load_fashion_mnist(s.data, s.train);
        data.test.x.conservativeResize(std::min(s.test, data.test.x.rows()), Eigen::NoChange);
        data.test.y.resize(static_cast<std::size_t>(data.test.x.rows()));
        std::printf(
            "tanh MLPs 784 -> depth x %td -> 10, sigma_b2 %g, %d SGD steps (lr %g, batch %td) "
            "on %td images, tested on %td; %u thread(s)\n",
            s.width, s.sigma_b2, s.steps, s.lr, s.batch, data.train.x.rows(), data.test.x.rows(),
            s.threads);
        const auto edge = diag::critical_point(Tanh{}, {.sigma_b2 = s.sigma_b2});
        std::printf("edge of chaos: sigma_w2 = %.4f\n\n", edge.sigma_w2);

        std::vector<std::pair<double, int>> jobs;
        for (const int d : s.depths)
            for (const double w : s.sigma_w2) jobs.emplace_back(w, d);
        // Deepest first, so that no thread is left with a deep network at the end.
        std::stable_sort(jobs.begin(), jobs.end(),
                         [](const auto& a, const auto& b) { return a.second > b.second; });
        std::vector<Cell> cells(jobs.size());
        std::atomic<std::size_t> next{0};
        std::exception_ptr failure;
        std::mutex lock;
        auto work = [&] {
            for (std::size_t k = next++; k < jobs.size(); k = next++) {
                try {
                    cells[k] = train_one(s, data.train, data.test, jobs[k].first, jobs[k].second);
                    const std::lock_guard guard(lock);
                    std::printf(
                        "sigma_w2 %5.3g  depth %4d  test accuracy %5.1f%%  loss %.3f  "
                        "6 xi_c %6.1f  (%.0f s)\n",
                        cells[k].sigma_w2, cells[k].depth, 100.0 * cells[k].test_accuracy,
                        cells[k].final_loss, 6.0 * cells[k].xi_c, cells[k].seconds);
                    std::fflush(stdout);
                } catch (...) {
                    const std::lock_guard guard(lock);
                    if (!failure) failure = std::current_exception();
                    next = jobs.size();
                }
            }
        };
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < std::min<std::size_t>(s.threads, jobs.size()); ++t)
            pool.emplace_back(work);
        work();
        for (auto& t : pool) t.join();
        if (failure) std::rethrow_exception(failure);

        if (svg_file.is_open()) {
            svg_file << heat_map(s, cells);
            if (!svg_file) throw std::runtime_error("failed writing " + s.svg);
            std::cout << "wrote " << s.svg << "\n";
        }
        if (json_file.is_open()) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& c : cells) {
                out.push_back({{"sigma_w2", c.sigma_w2},
                               {"depth", c.depth},
                               {"test_accuracy", c.test_accuracy},
                               {"final_loss", diag::json_number(c.final_loss)},
                               {"xi_c", diag::json_number(c.xi_c)},
                               {"seconds", c.seconds}});
            }
            json_file << nlohmann::json{{"sigma_b2", s.sigma_b2},
                                        {"critical_sigma_w2", edge.sigma_w2},
                                        {"steps", s.steps},
                                        {"width", s.width},
                                        {"cells", out}}
                             .dump(1)
                      << "\n";
            if (!json_file) throw std::runtime_error("failed writing " + s.json);
            std::cout << "wrote " << s.json << "\n";
        }
    } catch (const std::exception& e) {
        std::cerr << "gradscope-trainability: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
