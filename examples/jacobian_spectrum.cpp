// gradscope-jacobian-spectrum: dynamical isometry, measured. Builds deep square MLPs at
// initialisation and prints the singular values of each one's input-output Jacobian at one input
// (diag::jacobian_spectrum): tanh on its edge of chaos with orthogonal and with Gaussian weights,
// and ReLU at He's variance with both. Optionally plots the sorted singular values (SVG).
//
//   gradscope-jacobian-spectrum                          # depth 64, width 128
//   gradscope-jacobian-spectrum --depth 64 --width 256 --svg docs/jacobian_spectra.svg
#include <gradscope/builtin_activations.hpp>
#include <gradscope/diag.hpp>

#include "cli_checks.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace gradscope;

namespace {

struct Settings {
    int depth = 64;
    Index width = 128;
    double sigma_b2 = 1e-6;
    std::uint64_t seed = 1;
    std::string svg;
};

struct Case {
    std::string name;
    ActivationChoice<double> activation;
    init::Initializer<double> weights;
    init::Initializer<double> biases;
    double input_second_moment;  // E[x^2] of the input row
};

std::vector<Case> cases(const Settings& s) {
    const auto gaussian = init::critical(Tanh{}, {.sigma_b2 = s.sigma_b2});
    const auto orthogonal = init::critical(Tanh{}, {.sigma_b2 = s.sigma_b2, .orthogonal = true});
    // The first layer's pre-activations at q*: E[x^2] = (q* - sigma_b^2) / sigma_w^2.
    const double at_q_star = (gaussian.point.at.q_star - s.sigma_b2) / gaussian.sigma_w2;
    return {
        {"tanh, critical, orthogonal", Tanh{}, orthogonal, orthogonal.bias(), at_q_star},
        {"tanh, critical, Gaussian", Tanh{}, gaussian, gaussian.bias(), at_q_star},
        {"relu, He, orthogonal", ReLU{}, init::orthogonal(std::sqrt(2.0)), init::zeros(), 1.0},
        {"relu, He, Gaussian", ReLU{}, init::he_normal(), init::zeros(), 1.0},
    };
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    CLI::App app{
        "gradscope-jacobian-spectrum: singular values of the input-output Jacobian of deep MLPs at "
        "initialisation (tanh on its edge of chaos with orthogonal and Gaussian weights; ReLU at He's "
        "variance), at one N(0, q*) input, in double.",
        "gradscope-jacobian-spectrum"};
    app.add_option("--depth", s.depth, "Linear layers")
        ->check(CLI::Range(2, 10000))
        ->capture_default_str();
    app.add_option("--width", s.width, "Width of every layer")
        ->check(CLI::Range(Index{1}, Index{4096}))
        ->capture_default_str();
    app.add_option("--sigma-b2", s.sigma_b2, "Bias variance of the tanh networks (> 0)")
        ->check(finite_number)
        ->check(positive_number)
        ->capture_default_str();
    app.add_option("--seed", s.seed, "Seed of the weights and the input")->capture_default_str();
    app.add_option("--svg", s.svg, "Plot the sorted singular values here")
        ->check(output_file)
        ->type_name("PATH");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    try {
        std::ofstream svg_file;
        if (!s.svg.empty()) {
            svg_file.open(s.svg, std::ios::binary);
            if (!svg_file) throw std::runtime_error("cannot open " + s.svg + " for writing");
        }
        std::printf("depth %d, width %td, tanh sigma_b2 %g, seed %llu\n\n", s.depth, s.width,
                    s.sigma_b2, static_cast<unsigned long long>(s.seed));
        std::printf("%-28s %10s %10s %10s %12s %10s\n", "network", "max", "min", "mean s^2",
                    "condition", "spread");
        std::vector<diag::SvgSeries> series;
        for (const Case& c : cases(s)) {
            auto net = mlp<double>({.widths = std::vector<Index>(s.depth + 1, s.width),
                                    .activation = c.activation,
                                    .init = c.weights,
                                    .bias_init = c.biases,
                                    .seed = s.seed});
            net->eval();
            Rng rng(s.seed ^ 0x5eed);
            const Matrix<double> x =
                rng.normal_matrix<double>(1, s.width) * std::sqrt(c.input_second_moment);
            const auto spectrum = diag::jacobian_spectrum(*net, x);
            std::printf("%-28s %10.3g %10.3g %10.3g %12.3g %7.2f dec\n", c.name.c_str(),
                        spectrum.max, spectrum.min, spectrum.mean_squared,
                        spectrum.condition_number, spectrum.log10_spread);
            diag::SvgSeries line{.name = c.name, .points = {}};
            const auto& values = spectrum.singular_values;
            for (Index i = 0; i < values.size(); ++i) {
                line.points.emplace_back(
                    static_cast<double>(i + 1) / static_cast<double>(values.size()), values(i));
            }
            series.push_back(std::move(line));
        }
        std::printf(
            "\nspread: standard deviation of log10 of the singular values above 0, in decades;\n"
            "singular values below about 1e-16 of the largest are rounding (double).\n");
        if (svg_file.is_open()) {
            svg_file << diag::svg_plot(
                series, {.title = "Singular values of the input-output Jacobian: depth " +
                                  std::to_string(s.depth) + ", width " + std::to_string(s.width),
                         .x_label = "rank / width",
                         .y_label = "singular value",
                         .log_y = true});
            if (!svg_file) throw std::runtime_error("failed writing " + s.svg);
            std::cout << "wrote " << s.svg << "\n";
        }
    } catch (const std::exception& e) {
        std::cerr << "gradscope-jacobian-spectrum: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
