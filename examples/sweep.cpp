// gradscope-sweep: the textbook picture of vanishing and exploding gradients, measured.
//
// For every activation x initialiser x bias variance x variant x depth it builds a square MLP at
// initialisation (biases N(0, sigma_b^2), zero by default), pushes one batch of N(0, 1) inputs through it and
// backpropagates a fixed random linear readout (diag::measure_depth), then reports how the
// gradient norm |dL/dz_l| changes from the last layer to the first: a table with the ratio,
// the gain per layer, the mean-field prediction where the theory applies and a verdict; a
// summary of the deepest depth that is still healthy; and JSON, CSV and SVG files.
//
//   gradscope-sweep                                   # the defaults: 216 networks
//   gradscope-sweep --activations tanh --sigma-w2 0.5,1,2,4 --variants plain --depths 10,50
//   gradscope-sweep --activations tanh,sigmoid --inits critical --sigma-b2 0.01,0.05,0.2
//   gradscope-sweep --help
//   mpiexec -n 4 gradscope-sweep ...                  # the grid split over 4 processes
//
// Under an MPI launcher (when built with MPI), rank r of n measures every n-th network of the
// grid, deepest first; rank 0 gathers the measurements and writes the same reports, bit for bit,
// as one process would.
#include <gradscope/builtin_activations.hpp>
#include <gradscope/diag.hpp>
#include <gradscope/diag/json_report.hpp>

#include "cli_checks.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#ifdef GRADSCOPE_SWEEP_MPI
#include <gradscope/dist/communicator.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace gradscope;

namespace {

// ---------------------------------------------------------------------------------------------
// What can be swept

// An activation by name, as the network's layer (for T) and as the type the theory needs.
template <class T>
struct ActivationSpec {
    std::string name;
    ActivationChoice<T> choice;
    std::function<double(int depth, double sigma_w2, double sigma_b2)> predicted_gain;
    std::function<std::optional<diag::FixedPoint>(double sigma_w2, double sigma_b2)> fixed_point;
    std::function<diag::CriticalPoint(double sigma_b2)> critical_point;  // value_error: none
};

template <class T, class Act>
ActivationSpec<T> activation_spec(Act act) {
    return {Act::name, ActivationChoice<T>(act),
            [act](int depth, double sigma_w2, double sigma_b2) {
                return diag::mean_field(act, depth, {.sigma_w2 = sigma_w2, .sigma_b2 = sigma_b2})
                    .gain_per_layer;
            },
            [act](double sigma_w2, double sigma_b2) {
                return diag::fixed_point(act, {.sigma_w2 = sigma_w2, .sigma_b2 = sigma_b2});
            },
            [act](double sigma_b2) { return diag::critical_point(act, {.sigma_b2 = sigma_b2}); }};
}

template <class T>
std::vector<ActivationSpec<T>> all_activations() {
    std::vector<ActivationSpec<T>> out;
    for_each_builtin_activation([&](auto act) { out.push_back(activation_spec<T>(act)); });
    return out;
}

const std::vector<std::string> init_names{"naive", "xavier",     "he",
                                          "lecun", "orthogonal", "critical"};
const std::vector<std::string> variant_names{"plain", "batchnorm", "residual",
                                             "batchnorm+residual"};

// A named initialiser, or weights N(0, sigma_w2 / fan_in) when sigma_w2 is set (name "gaussian",
// or "critical" once the edge of chaos of an activation has been found).
struct InitSpec {
    std::string name;
    std::optional<double> sigma_w2;

    bool operator==(const InitSpec&) const = default;
};

template <class T>
init::Initializer<T> make_init(const InitSpec& spec) {
    if (spec.sigma_w2) return diag::gaussian_init<T>(*spec.sigma_w2);
    if (spec.name == "naive") return init::normal(0.0, 1.0);
    if (spec.name == "xavier") return init::xavier_normal(1.0);
    if (spec.name == "he") return init::he_normal();
    if (spec.name == "lecun") return init::lecun_normal();
    if (spec.name == "orthogonal") return init::orthogonal(1.0);
    throw value_error("unknown initialiser '" + spec.name + "'");
}

// Drawing the weights costs as much as the forward and backward passes together (a normal draw
// per entry). But every network the sweep builds with one initialiser draws the same weights: mlp()
// fills its Linear layers input side first from one Rng seeded with the seed, and nothing else
// draws from it (biases are zero). So the k-th weight of every such network is the k-th matrix of
// one sequence, drawn once here. The cache is only a memo: the k-th call is served from it when
// the fans and the Rng's state (checked by drawing from copies) are those the matrix was drawn
// with, and the Rng is left as drawing would leave it; anything else is drawn for real. The
// numbers measured are bit for bit those without it.
template <class T>
class WeightCache {
public:
    WeightCache(init::Initializer<T> real, Index width, int count, std::uint64_t seed)
        : real_(std::move(real)) {
        Rng rng(seed);
        for (int k = 0; k < count; ++k) {
            Entry e{rng, width, width, Matrix<T>(width, width), rng};
            real_(MatrixView<T>(e.weight.data(), width, width), width, width, rng);
            e.after = rng;
            entries_.push_back(std::move(e));
        }
    }

    // The initialiser for one network: a fresh call count, the shared sequence.
    [[nodiscard]] init::Initializer<T> for_network() const {
        auto calls = std::make_shared<std::size_t>(0);
        return [this, calls](MatrixView<T> w, Index fan_in, Index fan_out, Rng& rng) {
            const std::size_t k = (*calls)++;
            if (k < entries_.size()) {
                const Entry& e = entries_[k];
                if (e.fan_in == fan_in && e.fan_out == fan_out && w.rows() == e.weight.rows() &&
                    w.cols() == e.weight.cols() && same_state(rng, e.before)) {
                    w = e.weight;
                    rng = e.after;
                    return;
                }
            }
            real_(w, fan_in, fan_out, rng);
        };
    }

private:
    struct Entry {
        Rng before;
        Index fan_in, fan_out;
        Matrix<T> weight;
        Rng after;
    };

    static bool same_state(Rng a, Rng b) {
        return a.normal() == b.normal() && a.next_u64() == b.next_u64() &&
               a.next_u64() == b.next_u64();
    }

    init::Initializer<T> real_;
    std::vector<Entry> entries_;
};

// sigma_w^2 = weight variance x fan-in, for the mean-field prediction; every layer is square
// (width x width). Orthogonal weights (gain 1) have variance 1/width too, and the theory's
// per-layer gain holds for them as well: |W^T v| = |v| exactly for orthogonal W, where for
// Gaussian W it holds on average, so only the fluctuations around the prediction differ.
double theory_sigma_w2(const InitSpec& spec, Index width) {
    if (spec.sigma_w2) return *spec.sigma_w2;
    if (spec.name == "naive")
        return static_cast<double>(width);  // N(0, 1): variance 1 = width / fan_in
    if (spec.name == "he") return 2.0;
    return 1.0;  // xavier (2 fan_in / (fan_in + fan_out) = 1 for square layers), lecun, orthogonal
}

// The mean-field gain per layer for each swept depth (nothing where it is not finite).
template <class T>
std::map<int, std::optional<double>> predictions(const ActivationSpec<T>& act, double sigma_w2,
                                                 double sigma_b2, const std::vector<int>& depths) {
    std::map<int, std::optional<double>> out;
    for (const int d : depths) {
        const double gain = act.predicted_gain(d, sigma_w2, sigma_b2);
        out[d] = std::isfinite(gain) ? std::optional<double>(gain) : std::nullopt;
    }
    return out;
}

struct Variant {
    std::string name;
    Normalization norm;
    bool residual;
};

Variant variant_of(const std::string& name) {
    if (name == "plain") return {name, Normalization::none, false};
    if (name == "batchnorm") return {name, Normalization::batch, false};
    if (name == "residual") return {name, Normalization::none, true};
    if (name == "batchnorm+residual") return {name, Normalization::batch, true};
    throw value_error("unknown variant '" + name + "'");
}

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    std::vector<std::string> activations{"sigmoid", "tanh", "relu"};
    std::vector<std::string> inits{"naive", "xavier", "he"};
    std::vector<double> sigma_w2;
    std::vector<double> sigma_b2{0.0};
    std::vector<std::string> variants{"plain", "batchnorm", "residual", "batchnorm+residual"};
    std::vector<int> depths{2, 5, 10, 20, 50, 100};
    Index width = 256;
    Index batch = 128;
    std::uint64_t seed = 0;
    std::string dtype = "double";  // float underflows below 1e-38: the deep curves would stop there
    std::string json = "sweep.json";
    std::string csv = "sweep.csv";
    std::string svg = "sweep.svg";
    std::string html = "sweep.html";
    bool quiet = false;
    unsigned threads = 0;
};

template <class V>
void dedupe(V& values) {
    V out;
    for (const auto& v : values) {
        if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
    values = std::move(out);
}

// ---------------------------------------------------------------------------------------------
// The sweep

// One row of the sweep before variants and depths: an activation, an initialiser resolved for
// it (the critical sigma_w2 depends on both the activation and sigma_b2), and the bias variance,
// with what theory says about it.
struct Setting {
    std::size_t activation;
    InitSpec init;
    double sigma_b2;
    double sigma_w2;                        // for the theory
    std::optional<diag::FixedPoint> fixed;  // nullopt: no fixed point, or none found
    std::map<int, std::optional<double>> predicted;
    std::size_t cache;  // index into the weight caches
};

struct Job {
    std::size_t setting, variant;
    int depth;
};

// The settings to sweep, in table order (activation, initialiser, sigma_b2). An activation that
// has no critical point at a sigma_b2 is skipped with a note, unless nothing is left.
template <class T>
std::vector<Setting> resolve_settings(const Settings& s, const std::vector<ActivationSpec<T>>& acts,
                                      const std::vector<InitSpec>& inits,
                                      std::vector<InitSpec>& cached) {
    std::vector<Setting> out;
    std::string skipped;
    for (std::size_t a = 0; a < acts.size(); ++a) {
        for (const InitSpec& requested : inits) {
            for (const double sigma_b2 : s.sigma_b2) {
                InitSpec init = requested;
                if (init.name == "critical") {
                    try {
                        init.sigma_w2 = acts[a].critical_point(sigma_b2).sigma_w2;
                    } catch (const value_error& e) {
                        skipped += std::string("\n  ") + e.what();
                        continue;
                    }
                }
                Setting setting{
                    a,
                    init,
                    sigma_b2,
                    theory_sigma_w2(init, s.width),
                    std::nullopt,
                    predictions(acts[a], theory_sigma_w2(init, s.width), sigma_b2, s.depths),
                    0};
                try {
                    setting.fixed = acts[a].fixed_point(setting.sigma_w2, sigma_b2);
                } catch (const numeric_error&) {
                    // The maps neither settle nor diverge: no fixed point to report.
                }
                const auto known = std::find(cached.begin(), cached.end(), init);
                setting.cache = static_cast<std::size_t>(known - cached.begin());
                if (known == cached.end()) cached.push_back(init);
                out.push_back(std::move(setting));
            }
        }
    }
    if (!skipped.empty() && !s.quiet) std::cerr << "skipped (no edge of chaos):" << skipped << "\n";
    if (out.empty()) throw value_error("nothing to sweep: every setting was skipped" + skipped);
    return out;
}

// Which networks this process measures, and how the others' measurements reach it: rank r of
// n takes every n-th job of the deepest-first order (so that each gets deep and shallow ones),
// and `exchange` leaves on rank 0 the profile of every job (the others' are not needed).
struct Share {
    int rank = 0;
    int ranks = 1;
    // Given this rank's measured (job, profile) pairs, and why its share failed ("" if it did
    // not), returns every rank's pairs on rank 0, or throws on every rank if any failed.
    std::function<std::vector<std::pair<std::size_t, diag::GradientProfile>>(
        const std::vector<std::pair<std::size_t, diag::GradientProfile>>&, const std::string&)>
        exchange;
};

std::string message_of(const std::exception_ptr& failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "an unknown exception";
    }
}

template <class T>
std::vector<diag::SweepRun> sweep(const Settings& s, const std::vector<InitSpec>& inits,
                                  const Share& share = {}) {
    std::vector<ActivationSpec<T>> acts;
    for (const auto& name : s.activations) {
        for (auto& a : all_activations<T>()) {
            if (a.name == name) acts.push_back(a);
        }
    }
    std::vector<Variant> variants;
    for (const auto& v : s.variants) variants.push_back(variant_of(v));
    std::vector<InitSpec> cached;  // one weight sequence for each distinct initialiser
    const std::vector<Setting> settings = resolve_settings(s, acts, inits, cached);

    // Table order: activation, init, sigma_b2, variant, depth.
    std::vector<Job> jobs;
    for (std::size_t k = 0; k < settings.size(); ++k)
        for (std::size_t v = 0; v < variants.size(); ++v)
            for (const int d : s.depths) jobs.push_back({k, v, d});

    // One weight sequence per initialiser, as long as the deepest network, if it fits in 1 GiB.
    const int deepest = *std::max_element(s.depths.begin(), s.depths.end());
    const double cache_bytes = static_cast<double>(cached.size()) * deepest *
                               static_cast<double>(s.width) * static_cast<double>(s.width) *
                               sizeof(T);
    std::vector<std::unique_ptr<WeightCache<T>>> caches(cached.size());
    if (cache_bytes <= 1024.0 * 1024.0 * 1024.0) {
        for (std::size_t i = 0; i < cached.size(); ++i) {
            caches[i] =
                std::make_unique<WeightCache<T>>(make_init<T>(cached[i]), s.width, deepest, s.seed);
        }
    }

    // Deepest first, so that no thread is left with a depth-100 network at the end.
    std::vector<std::size_t> order(jobs.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t x, std::size_t y) { return jobs[x].depth > jobs[y].depth; });

    // What a run is, apart from its measurement: the same on every rank.
    const auto describe = [&](const Job& job) {
        const Setting& setting = settings[job.setting];
        const Variant& variant = variants[job.variant];
        diag::SweepRun run{.activation = acts[setting.activation].name,
                           .init = setting.init.name,
                           .sigma_w2 = setting.sigma_w2,
                           .sigma_b2 = setting.sigma_b2,
                           .variant = variant.name,
                           .depth = job.depth,
                           .width = s.width,
                           .batch = s.batch,
                           .dtype = s.dtype,
                           .seed = s.seed};
        // The theory is for plain networks; batch norm and skip connections change the map.
        if (variant.norm == Normalization::none && !variant.residual) {
            run.predicted_gain_per_layer = setting.predicted.at(job.depth);
            if (setting.fixed) {
                run.q_star = setting.fixed->q_star;
                run.xi_c = setting.fixed->xi_c;
            }
        }
        return run;
    };
    const auto measure = [&](const Job& job) {
        const Setting& setting = settings[job.setting];
        const Variant& variant = variants[job.variant];
        return diag::measure_depth<T>(acts[setting.activation].choice,
                                      caches[setting.cache] ? caches[setting.cache]->for_network()
                                                            : make_init<T>(setting.init),
                                      {.depth = job.depth,
                                       .width = s.width,
                                       .batch = s.batch,
                                       .seed = s.seed,
                                       .norm = variant.norm,
                                       .residual = variant.residual,
                                       .sigma_b2 = setting.sigma_b2});
    };

    std::vector<std::size_t> mine;  // this rank's share of the deepest-first order
    for (std::size_t n = static_cast<std::size_t>(share.rank); n < order.size();
         n += static_cast<std::size_t>(share.ranks)) {
        mine.push_back(order[n]);
    }
    std::vector<std::pair<std::size_t, diag::GradientProfile>> measured(mine.size());
    std::atomic<std::size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    const auto work = [&] {
        for (std::size_t n = next++; n < mine.size(); n = next++) {
            try {
                measured[n] = {mine[n], measure(jobs[mine[n]])};
            } catch (...) {
                const std::lock_guard lock(failure_mutex);
                if (!failure) failure = std::current_exception();
                next = mine.size();
            }
        }
    };
    const unsigned threads = static_cast<unsigned>(std::min<std::size_t>(s.threads, mine.size()));
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (share.exchange) {
        // Every rank reaches the exchange, so that one rank's failure stops them all.
        measured = share.exchange(measured, failure ? message_of(failure) : std::string());
    } else if (failure) {
        std::rethrow_exception(failure);
    }

    std::vector<diag::SweepRun> runs;
    if (share.rank != 0) return runs;
    runs.resize(jobs.size());
    for (auto& [job, profile] : measured) {
        runs[job] = describe(jobs[job]);
        diag::record_profile(runs[job], std::move(profile));
    }
    return runs;
}

#ifdef GRADSCOPE_SWEEP_MPI
// ---------------------------------------------------------------------------------------------
// The grid over MPI ranks: each rank's measured profiles travel to rank 0 as CBOR, which keeps
// every double's bits (infinities included: a float network's exploding gradient is one), so that
// rank 0's reports are those of one process.

}  // namespace

namespace gradscope::diag {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LayerStats, name, output_grad_norm, weight_grad_norm,
                                   bias_grad_norm, activation_norm, weight_norm, update_ratio,
                                   saturated_fraction, dead_fraction, nonfinite,
                                   per_sample_norm_mean, per_sample_norm_max, per_sample_norm_q10,
                                   per_sample_norm_q50, per_sample_norm_q90, mean_grad_sq_norm,
                                   trace_covariance, gradient_noise_scale, gsnr, gsnr_parameters,
                                   critical_batch_size, norm_test, inner_product_test,
                                   orthogonality_test, per_sample_sq_norms,
                                   per_sample_sq_deviations, per_sample_dot_deviations)
}  // namespace gradscope::diag

namespace {

using Measured = std::vector<std::pair<std::size_t, diag::GradientProfile>>;

std::vector<std::byte> to_bytes(const Measured& measured) {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& [job, profile] : measured) {
        all.push_back({{"job", job}, {"step", profile.step()}, {"layers", profile.layers()}});
    }
    const std::vector<std::uint8_t> cbor = nlohmann::json::to_cbor(all);
    std::vector<std::byte> bytes(cbor.size());
    std::transform(cbor.begin(), cbor.end(), bytes.begin(),
                   [](std::uint8_t b) { return static_cast<std::byte>(b); });
    return bytes;
}

void append_from_bytes(const std::vector<std::byte>& bytes, Measured& out) {
    std::vector<std::uint8_t> cbor(bytes.size());
    std::transform(bytes.begin(), bytes.end(), cbor.begin(),
                   [](std::byte b) { return static_cast<std::uint8_t>(b); });
    for (const auto& entry : nlohmann::json::from_cbor(cbor)) {
        out.emplace_back(
            entry.at("job").get<std::size_t>(),
            diag::GradientProfile(entry.at("layers").get<std::vector<diag::LayerStats>>(),
                                  entry.at("step").get<std::size_t>()));
    }
}

Share mpi_share(const dist::Communicator& comm) {
    Share share{.rank = comm.rank(), .ranks = comm.size(), .exchange = {}};
    share.exchange = [comm](const Measured& mine, const std::string& failure) {
        comm.agree_or_throw(failure);
        Measured all;
        for (const auto& bytes : comm.gather_bytes(to_bytes(mine), 0))
            append_from_bytes(bytes, all);
        return all;
    };
    return share;
}
#endif

// ---------------------------------------------------------------------------------------------
// Reports

// For each (activation, init, variant), the deepest swept depth up to which every depth is
// healthy, and the first verdict that is not.
std::string summary(const std::vector<diag::SweepRun>& runs, const Settings& s) {
    std::vector<std::string> rows;  // activation/init, in table order
    std::map<std::pair<std::string, std::string>, std::string> cells;  // (row, variant) -> text
    for (std::size_t k = 0; k < runs.size();) {
        const auto& first = runs[k];
        const std::string row = first.activation + "/" + diag::init_label(first);
        if (rows.empty() || rows.back() != row) rows.push_back(row);
        std::vector<const diag::SweepRun*> group;
        for (; k < runs.size() && runs[k].activation == first.activation &&
               runs[k].init == first.init && runs[k].sigma_w2 == first.sigma_w2 &&
               runs[k].sigma_b2 == first.sigma_b2 && runs[k].variant == first.variant;
             ++k) {
            group.push_back(&runs[k]);
        }
        std::sort(group.begin(), group.end(), [](auto* a, auto* b) { return a->depth < b->depth; });
        std::string deepest = "none";
        std::string cell;
        for (const auto* r : group) {
            if (r->verdict != diag::Verdict::healthy) {
                cell = deepest + " (" + diag::to_string(r->verdict) + " at " +
                       std::to_string(r->depth) + ")";
                break;
            }
            deepest = std::to_string(r->depth);
        }
        cells[{row, first.variant}] = cell.empty() ? deepest : cell;
    }

    std::vector<std::size_t> widths{std::string("activation/init").size()};
    for (const auto& r : rows) widths[0] = std::max(widths[0], r.size());
    for (const auto& v : s.variants) {
        std::size_t w = v.size();
        for (const auto& r : rows) w = std::max(w, cells[{r, v}].size());
        widths.push_back(w);
    }
    std::ostringstream out;
    out << "Deepest depth at which the gradient is still healthy (1e-3 <= |delta_1|/|delta_L| <= 1e3 at that\n"
           "depth and every shallower one swept), and the first verdict that is not:\n";
    const auto line = [&](const std::string& head, const std::vector<std::string>& cols) {
        std::string text = "  " + head + std::string(widths[0] - head.size(), ' ');
        for (std::size_t c = 0; c < cols.size(); ++c) {
            text += "  " + cols[c] +
                    (c + 1 < cols.size() ? std::string(widths[c + 1] - cols[c].size(), ' ') : "");
        }
        out << text << "\n";
    };
    line("activation/init", s.variants);
    for (const auto& r : rows) {
        std::vector<std::string> cols;
        for (const auto& v : s.variants) cols.push_back(cells[{r, v}]);
        line(r, cols);
    }

    // Measurement against theory, where there is a prediction.
    std::size_t compared = 0, close = 0;
    std::set<std::string> withheld;
    std::vector<std::pair<double, const diag::SweepRun*>> gaps;
    for (const auto& r : runs) {
        if (r.variant == "plain" && !r.predicted_gain_per_layer)
            withheld.insert(r.activation + "/" + diag::init_label(r));
        if (!r.predicted_gain_per_layer || !std::isfinite(*r.predicted_gain_per_layer) ||
            !std::isfinite(r.gain_per_layer) || r.gain_per_layer <= 0.0) {
            continue;
        }
        ++compared;
        const double gap = std::abs(r.gain_per_layer / *r.predicted_gain_per_layer - 1.0);
        if (gap <= 0.05) ++close;
        gaps.emplace_back(gap, &r);
    }
    if (compared > 0 || !withheld.empty()) out << "\n";
    if (compared > 0) {
        std::sort(gaps.begin(), gaps.end(),
                  [](const auto& a, const auto& b) { return a.first > b.first; });
        out << "Mean-field theory (plain networks): measured gain/layer within 5% of the prediction in "
            << close << " of " << compared << " runs with a finite, non-zero measurement";
        if (close < compared) {
            out << "; largest gaps:";
            for (std::size_t k = 0;
                 k < std::min<std::size_t>(3, gaps.size()) && gaps[k].first > 0.05; ++k) {
                const auto& r = *gaps[k].second;
                out << "\n  " << diag::run_label(r) << " depth " << r.depth << ": measured "
                    << diag::format_number(r.gain_per_layer, {diag::Notation::general, 4})
                    << ", predicted "
                    << diag::format_number(*r.predicted_gain_per_layer,
                                           {diag::Notation::general, 4});
            }
        }
        out << "\n";
    }
    if (!withheld.empty()) {
        out << "No prediction for plain";
        for (auto it = withheld.begin(); it != withheld.end(); ++it)
            out << (it == withheld.begin() ? " " : ", ") << *it;
        out << ": the mean-field prediction is not finite there\n";
    }
    return out.str();
}

void write_file(const std::string& path, const std::function<void(std::ostream&)>& write) {
    const std::filesystem::path p(path);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    if (!out) throw std::runtime_error("cannot open " + path + " for writing");
    write(out);
    out.flush();
    if (!out) throw std::runtime_error("failed writing " + path);
}

// One line per configuration at the deepest depth swept; coloured by activation/init and
// dashed by variant when there are few enough of each to tell apart.
std::string plot(const std::vector<diag::SweepRun>& runs, const Settings& s) {
    const int deepest = *std::max_element(s.depths.begin(), s.depths.end());
    std::vector<diag::SweepRun> shown;
    for (const auto& r : runs) {
        if (r.depth == deepest) shown.push_back(r);
    }
    auto series = diag::gradient_series(shown);
    std::vector<std::string> combos;
    for (const auto& r : shown) {
        const std::string combo = r.activation + "/" + diag::init_label(r);
        if (std::find(combos.begin(), combos.end(), combo) == combos.end()) combos.push_back(combo);
    }
    const auto& palette = diag::svg_palette();
    const auto& dashes = diag::svg_dash_patterns();
    if (combos.size() <= palette.size() && s.variants.size() <= dashes.size()) {
        for (std::size_t k = 0; k < shown.size(); ++k) {
            const std::string combo = shown[k].activation + "/" + diag::init_label(shown[k]);
            const auto c = static_cast<std::size_t>(std::find(combos.begin(), combos.end(), combo) -
                                                    combos.begin());
            const auto v = static_cast<std::size_t>(
                std::find(s.variants.begin(), s.variants.end(), shown[k].variant) -
                s.variants.begin());
            series[k].color = palette[c];
            series[k].dash = dashes[v];
        }
    }
    const std::string title = "Gradient norm per layer at initialisation: depth " +
                              std::to_string(deepest) + ", width " + std::to_string(s.width) +
                              ", batch " + std::to_string(s.batch) + ", " + s.dtype + ", seed " +
                              std::to_string(s.seed);
    return diag::svg_plot(series, diag::gradient_plot_options(title));
}

diag::HtmlReport html_report(const std::vector<diag::SweepRun>& runs, const Settings& s) {
    std::string activations;
    for (const auto& a : s.activations) activations += (activations.empty() ? "" : ", ") + a;
    return diag::sweep_html(
        runs,
        {.title = "gradscope depth sweep: " + std::to_string(runs.size()) + " networks",
         .description = "Square MLPs of width " + std::to_string(s.width) + " at initialisation (" +
                        activations + "), one batch of " + std::to_string(s.batch) +
                        " N(0, 1) inputs, a fixed random linear "
                        "readout as the loss, " +
                        s.dtype + ", seed " + std::to_string(s.seed) + "."});
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    CLI::App app{
        "gradscope-sweep: how the gradient norm |dL/dz_l| changes from the last layer to the first in "
        "square MLPs at initialisation, for every activation x initialiser x bias variance x variant x "
        "depth. Biases N(0, sigma_b2), zero by default; one batch of N(0, 1) inputs; the loss is a "
        "fixed random linear readout.",
        "gradscope-sweep"};
    const auto activations = builtin_activation_names();
    app.add_option("--activations", s.activations, "Activations, comma separated")
        ->delimiter(',')
        ->check(CLI::IsMember(activations))
        ->type_name("LIST")
        ->capture_default_str();
    auto* inits_option =
        app.add_option(
               "--inits", s.inits,
               "Initialisers, comma separated (naive = N(0, 1); xavier = xavier_normal; "
               "he = he_normal; lecun = lecun_normal; orthogonal, gain 1; critical = "
               "N(0, s / fan_in) with s on the activation's edge of chaos for each --sigma-b2)")
            ->delimiter(',')
            ->check(CLI::IsMember(init_names))
            ->type_name("LIST")
            ->capture_default_str();
    auto* sigma_option =
        app.add_option(
               "--sigma-w2", s.sigma_w2,
               "Weights N(0, s / fan_in) for each s, comma separated, instead of the named initialisers "
               "(also with them if --inits is given too)")
            ->delimiter(',')
            ->check(finite_number)
            ->check(positive_number)
            ->type_name("LIST");
    app.add_option(
           "--sigma-b2", s.sigma_b2,
           "Bias variances, comma separated: biases N(0, s) for each s, with every initialiser")
        ->delimiter(',')
        ->check(finite_number)
        ->check(non_negative_number)
        ->type_name("LIST")
        ->capture_default_str();
    app.add_option("--variants", s.variants, "Variants, comma separated")
        ->delimiter(',')
        ->check(CLI::IsMember(variant_names))
        ->type_name("LIST")
        ->capture_default_str();
    app.add_option("--depths", s.depths, "Depths (Linear layers, each >= 2), comma separated")
        ->delimiter(',')
        ->check(CLI::Range(2, 100000))
        ->type_name("LIST")
        ->capture_default_str();
    app.add_option("--width", s.width, "Width of every layer")
        ->check(CLI::Range(Index{1}, Index{1} << 20))
        ->capture_default_str();
    app.add_option("--batch", s.batch, "Batch size (>= 2: batch norm needs it)")
        ->check(CLI::Range(Index{2}, Index{1} << 24))
        ->capture_default_str();
    app.add_option("--seed", s.seed, "Seed of the weights and of the data")->capture_default_str();
    app.add_option("--dtype", s.dtype,
                   "Scalar type (float is faster, but loses norms below 1e-38 or above 3e38)")
        ->check(CLI::IsMember({"float", "double"}))
        ->capture_default_str();
    app.add_option("--json", s.json, "Write the runs as JSON here (\"\" to skip)")
        ->check(output_file)
        ->type_name("PATH")
        ->capture_default_str();
    app.add_option("--csv", s.csv, "Write one CSV row per run and layer here (\"\" to skip)")
        ->check(output_file)
        ->type_name("PATH")
        ->capture_default_str();
    app.add_option("--svg", s.svg,
                   "Plot |dL/dz_l| per layer at the deepest depth here (\"\" to skip)")
        ->check(output_file)
        ->type_name("PATH")
        ->capture_default_str();
    app.add_option(
           "--html", s.html,
           "Write the report to read in a browser here: a heat map of every configuration by "
           "depth, per-layer panels with theory, measured against predicted gain (\"\" to skip)")
        ->check(output_file)
        ->type_name("PATH")
        ->capture_default_str();
    app.add_flag("--quiet,-q", s.quiet, "Print nothing but errors (no table, summary or progress)");
    app.add_option("--threads", s.threads,
                   "Networks measured in parallel (0: one per hardware thread)")
        ->capture_default_str();
    app.footer(
        "Output files: sweep.json, sweep.csv, sweep.svg and sweep.html in the current directory unless other paths are "
        "given; an empty path skips that file, missing directories are created.\n"
        "The predicted gain/layer is mean-field theory's (E[x^2] = 1, sigma_b^2 as swept) and is given for "
        "plain networks only (not batchnorm or residual), with sigma_w^2 = width for naive, 1 for xavier, "
        "lecun and orthogonal, 2 for he, s for --sigma-w2 s, the critical value for critical; JSON and CSV "
        "also give theory's fixed point q_star and depth scale xi_c (empty or null where infinite or there "
        "is none).\n"
        "Exit status: 0 on success, 2 for a bad flag or value, 1 if the sweep or a file write fails.");

    try {
        app.parse(argc, argv);
        if (sigma_option->count() > 0 && inits_option->count() == 0) s.inits.clear();
        dedupe(s.activations), dedupe(s.inits), dedupe(s.sigma_w2), dedupe(s.sigma_b2),
            dedupe(s.variants), dedupe(s.depths);
        std::sort(s.depths.begin(), s.depths.end());
        if (s.activations.empty()) throw CLI::ValidationError("--activations", "the list is empty");
        if (s.inits.empty() && s.sigma_w2.empty())
            throw CLI::ValidationError("--inits", "no initialiser to sweep");
        if (s.variants.empty()) throw CLI::ValidationError("--variants", "the list is empty");
        if (s.sigma_b2.empty()) throw CLI::ValidationError("--sigma-b2", "the list is empty");
        if (s.depths.empty()) throw CLI::ValidationError("--depths", "the list is empty");
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;  // --help is success; every usage error is 2
    }
    Share share;
#ifdef GRADSCOPE_SWEEP_MPI
    std::optional<dist::Environment> mpi;
    std::optional<dist::Communicator> comm;
    if (dist::launched_by_mpi()) {
        mpi.emplace(argc, argv);
        comm.emplace();
        share = mpi_share(*comm);
    }
#endif
    // Ranks on one machine share its cores.
    if (s.threads == 0) {
        s.threads =
            std::max(1u, std::thread::hardware_concurrency() / static_cast<unsigned>(share.ranks));
    }
    const bool writes = share.rank == 0;  // only rank 0 prints and writes
    if (!writes) s.quiet = true;

    std::vector<InitSpec> inits;
    for (const auto& name : s.inits) inits.push_back({name, std::nullopt});
    for (const double v : s.sigma_w2) inits.push_back({"gaussian", v});

    try {
        const std::size_t count = s.activations.size() * inits.size() * s.sigma_b2.size() *
                                  s.variants.size() * s.depths.size();
        if (!s.quiet) {
            std::cerr << "measuring " << count << " networks (width " << s.width << ", batch "
                      << s.batch << ", " << s.dtype << ") on "
                      << std::min<std::size_t>(s.threads, count) << " thread(s)"
                      << (share.ranks > 1
                              ? " in each of " + std::to_string(share.ranks) + " processes"
                              : std::string())
                      << "...\n";
        }
        const auto start = std::chrono::steady_clock::now();
        const auto runs =
            s.dtype == "double" ? sweep<double>(s, inits, share) : sweep<float>(s, inits, share);
        if (!writes) return 0;
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

        if (!s.quiet) {
            std::cout << diag::format_table(runs) << "\n" << summary(runs, s) << "\n";
            std::printf("%zu networks measured in %.1f s\n", runs.size(), seconds);
        }
        const auto report = [&](const std::string& path, const char* what,
                                const std::function<void(std::ostream&)>& write) {
            if (path.empty()) return;
            write_file(path, write);
            if (!s.quiet)
                std::cout << "wrote " << what << ": "
                          << std::filesystem::absolute(path).lexically_normal().string() << "\n";
        };
        report(s.json, "JSON",
               [&](std::ostream& out) { out << diag::to_json(runs).dump(1) << "\n"; });
        report(s.csv, "CSV", [&](std::ostream& out) { diag::write_csv(out, runs); });
        report(s.svg, "SVG", [&](std::ostream& out) { out << plot(runs, s); });
        report(s.html, "HTML report",
               [&](std::ostream& out) { out << html_report(runs, s).html(); });
    } catch (const std::exception& e) {
        std::cerr << "gradscope-sweep: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
