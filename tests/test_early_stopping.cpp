// Early stopping (io/early_stopping.hpp): when it says stop, which epoch it keeps, that the
// kept weights and buffers come back exactly, that the checkpoint file holds the best epoch
// with its metadata, that a failed save leaves both the file and the stopper as they were, and
// that a stopper resumed from its state goes on as the uninterrupted one does.
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

#include <gradscope/io/early_stopping.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

using namespace gradscope;
namespace fs = std::filesystem;
using Mode = EarlyStoppingOptions::Mode;

namespace {

using gradscope::testing::MessageContains;

struct TempDir : gradscope::testing::TempDir {
    TempDir() : gradscope::testing::TempDir("gradscope_test_early_stopping_") {}
};

std::shared_ptr<MLP<double>> small_net(std::uint64_t seed) {
    return mlp<double>({.widths = {3, 5, 2}, .norm = Normalization::batch, .seed = seed});
}

// Every parameter and buffer value, in order.
std::vector<Matrix<double>> values(const Module<double>& m) {
    std::vector<Matrix<double>> out;
    for (const auto& [name, t] : m.named_parameters()) out.emplace_back(t.value());
    for (const auto& [name, t] : m.named_buffers()) out.emplace_back(t.value());
    return out;
}

// Changes every parameter and buffer, as an epoch of training would (a batch in training mode
// moves batch norm's running statistics).
void perturb(MLP<double>& net, std::uint64_t seed) {
    for (auto& [name, t] : net.named_parameters()) {
        t.assign(t.value() + testing::normal(t.rows(), t.cols(), seed));
    }
    net.train();
    (void)net(Tensor<double>::constant(testing::normal(8, 3, seed + 1)));
}

// The metadata EarlyStopping writes for a best metric and epoch.
std::map<std::string, std::string> best_entries(const std::string& metric,
                                                const std::string& epoch) {
    return {{"early_stopping.best_metric", metric}, {"early_stopping.best_epoch", epoch}};
}

}  // namespace

TEST_CASE("early stopping in min mode stops after patience epochs without a new minimum") {
    auto net = small_net(1);
    EarlyStopping<double> stopper(*net, {.patience = 3});
    const std::vector<double> losses = {5.0, 4.0, 4.5, 3.9, 4.0, 3.9, 4.2};
    std::vector<bool> said_stop;
    for (double loss : losses) said_stop.push_back(stopper.step(loss));
    // New minima at epochs 1, 2 and 4; 3.9 again at epoch 6 is not below the best.
    CHECK(said_stop == std::vector<bool>{false, false, false, false, false, false, true});
    CHECK(stopper.best_metric() == 3.9);
    CHECK(stopper.best_epoch() == 4);
    CHECK(stopper.epochs() == 7);
    CHECK(stopper.epochs_without_improvement() == 3);
    CHECK_FALSE(stopper.improved());
    CHECK(stopper.step(1.0) == false);  // a new best resets the count
    CHECK(stopper.improved());
    CHECK(stopper.best_epoch() == 8);
}

TEST_CASE("early stopping in max mode counts only improvements larger than min_delta") {
    auto net = small_net(2);
    EarlyStopping<double> stopper(*net, {.mode = Mode::max, .patience = 2, .min_delta = 0.01});
    CHECK_FALSE(stopper.step(0.50));
    CHECK_FALSE(stopper.step(0.505));  // better, but by less than 0.01
    CHECK(stopper.epochs_without_improvement() == 1);
    CHECK_FALSE(stopper.step(0.52));  // better than 0.50 + 0.01
    CHECK(stopper.best_epoch() == 3);
    CHECK_FALSE(stopper.step(0.40));
    CHECK(stopper.step(0.529));
    CHECK(stopper.should_stop());
    // Stepping on after it has said stop: a late improvement is still kept, and the count
    // restarts.
    CHECK_FALSE(stopper.step(0.9));
    CHECK(stopper.best_epoch() == 6);
}

TEST_CASE("early stopping never counts a NaN metric as an improvement") {
    auto net = small_net(3);
    EarlyStopping<double> stopper(*net, {.patience = 2});
    CHECK_FALSE(stopper.step(std::nan("")));
    CHECK_FALSE(stopper.best_metric().has_value());
    CHECK_THROWS_MATCHES(stopper.restore_best(), value_error,
                         MessageContains("no epoch has a best metric yet (1 epochs"));
    CHECK(stopper.step(std::nan("")));
    CHECK_FALSE(stopper.step(2.0));  // the first number is the first best
    CHECK(stopper.best_epoch() == 3);
    CHECK_FALSE(stopper.step(std::nan("")));
    CHECK(stopper.best_metric() == 2.0);
}

TEST_CASE("early stopping restores the best epoch's parameters and buffers exactly") {
    auto net = small_net(4);
    EarlyStopping<double> stopper(*net, {.patience = 5});
    perturb(*net, 10);
    stopper.step(1.0);
    const std::vector<Matrix<double>> best = values(*net);
    perturb(*net, 20);
    stopper.step(1.5);  // worse: not kept
    perturb(*net, 30);
    REQUIRE(values(*net) != best);
    stopper.restore_best();
    CHECK(values(*net) == best);
}

TEST_CASE("early stopping writes each new best to its checkpoint file with the metadata") {
    TempDir dir;
    const fs::path file = dir.path / "best.safetensors";
    auto net = small_net(5);
    EarlyStopping<double> stopper(
        *net, {.patience = 3, .checkpoint = file, .metadata = {{"scaler.kind", "StandardScaler"}}});
    CHECK_FALSE(fs::exists(file));
    perturb(*net, 40);
    stopper.step(0.75);
    const std::vector<Matrix<double>> best = values(*net);
    perturb(*net, 50);
    stopper.step(0.8);  // worse: the file keeps epoch 1
    CHECK(dir.files() == std::vector<std::string>{"best.safetensors"});  // no temporary left

    auto loaded = small_net(6);
    const LoadReport report = load_checkpoint(file, *loaded);
    CHECK(values(*loaded) == best);
    CHECK(report.metadata.at("early_stopping.best_metric") == "0.75");
    CHECK(report.metadata.at("early_stopping.best_epoch") == "1");
    CHECK(report.metadata.at("scaler.kind") == "StandardScaler");
}

TEST_CASE("a failed save of a new best leaves the file and the stopper at the previous best") {
    TempDir dir;
    const fs::path file = dir.path / "best.safetensors";
    auto net = small_net(7);
    perturb(*net, 60);
    // The file the first best makes; the second best's metric is written with more digits, so
    // its header is longer and a disk with room for exactly the first file fills up.
    std::map<std::string, std::string> first_metadata = best_entries("1", "1");
    const std::size_t first_size =
        save_checkpoint_to_bytes(*net, {.metadata = first_metadata}).size();
    EarlyStopping<double> stopper(
        *net, {.patience = 3, .checkpoint = file, .save = {.fail_after_bytes = first_size}});
    stopper.step(1.0);
    const std::vector<Matrix<double>> first_best = values(*net);
    REQUIRE(fs::file_size(file) == first_size);

    perturb(*net, 70);
    CHECK_THROWS_MATCHES(stopper.step(0.12345678901234566), io_error,
                         MessageContains("the previous file, if any, is unchanged"));
    CHECK(stopper.best_metric() == 1.0);
    CHECK(stopper.best_epoch() == 1);
    CHECK(stopper.epochs() == 1);
    CHECK(dir.files() == std::vector<std::string>{"best.safetensors"});
    auto loaded = small_net(8);
    CHECK(load_checkpoint(file, *loaded).metadata.at("early_stopping.best_epoch") == "1");
    CHECK(values(*loaded) == first_best);
    stopper.restore_best();
    CHECK(values(*net) == first_best);
}

TEST_CASE("early stopping refuses options that cannot work, naming them") {
    auto net = small_net(9);
    CHECK_THROWS_MATCHES(EarlyStopping<double>(*net, {.patience = 0}), value_error,
                         MessageContains("patience must be at least 1, got 0"));
    CHECK_THROWS_MATCHES(EarlyStopping<double>(*net, {.min_delta = -0.1}), value_error,
                         MessageContains("min_delta must be finite and non-negative"));
    CHECK_THROWS_MATCHES(
        EarlyStopping<double>(*net, {.min_delta = std::numeric_limits<double>::quiet_NaN()}),
        value_error, MessageContains("min_delta"));
    CHECK_THROWS_MATCHES(
        EarlyStopping<double>(*net, {.metadata = {{"early_stopping.best_epoch", "3"}}}),
        value_error, MessageContains("metadata key 'early_stopping.best_epoch' is reserved"));
}

TEST_CASE("with write_every_best off the file is written by save_best, with the best epoch") {
    TempDir dir;
    const fs::path file = dir.path / "best.safetensors";
    auto net = small_net(10);
    EarlyStopping<double> stopper(*net,
                                  {.patience = 3, .checkpoint = file, .write_every_best = false});
    CHECK_THROWS_MATCHES(stopper.save_best(), value_error,
                         MessageContains("save_best: no epoch has a best metric yet"));
    perturb(*net, 80);
    stopper.step(0.5);
    const std::vector<Matrix<double>> best = values(*net);
    perturb(*net, 90);
    stopper.step(0.6);
    CHECK_FALSE(fs::exists(file));
    stopper.save_best();
    auto loaded = small_net(11);
    const LoadReport report = load_checkpoint(file, *loaded);
    CHECK(values(*loaded) == best);
    CHECK(report.metadata == best_entries("0.5", "1"));
    CHECK(read_checkpoint_metadata(file) == report.metadata);

    EarlyStopping<double> in_memory(*net, {});
    in_memory.step(1.0);
    CHECK_THROWS_MATCHES(in_memory.save_best(), value_error,
                         MessageContains("save_best: no checkpoint path in the options"));
}

TEST_CASE("a stopper resumed from its state metadata goes on as the uninterrupted one does") {
    TempDir dir;
    const std::vector<double> metrics = {5.0, 4.0, 4.5, 3.9, 4.0, 3.95, 4.2, 4.1};
    const EarlyStoppingOptions options{.patience = 3};
    // One run of all the epochs; the network changes by the same steps in both runs.
    auto whole_net = small_net(12);
    EarlyStoppingOptions whole_options = options;
    whole_options.checkpoint = dir.path / "whole.safetensors";
    EarlyStopping<double> whole(*whole_net, whole_options);
    std::vector<bool> whole_said;
    for (std::size_t e = 0; e < metrics.size(); ++e) {
        perturb(*whole_net, 100 + e);
        whole_said.push_back(whole.step(metrics[e]));
    }

    // The same run stopped after epoch 5 (3.9 at epoch 4 is the best) and resumed into a new
    // network and a new stopper, as a new process would from the training checkpoint.
    EarlyStoppingOptions resumed_options = options;
    resumed_options.checkpoint = dir.path / "best.safetensors";
    auto first_net = small_net(12);
    std::vector<bool> said;
    std::map<std::string, std::string> state;
    std::vector<std::byte> training_checkpoint;
    {
        EarlyStopping<double> first(*first_net, resumed_options);
        for (std::size_t e = 0; e < 5; ++e) {
            perturb(*first_net, 100 + e);
            said.push_back(first.step(metrics[e]));
        }
        state = first.state_metadata();
        training_checkpoint = save_checkpoint_to_bytes(*first_net, {.metadata = state});
    }
    CHECK(state ==
          std::map<std::string, std::string>{{"early_stopping.best_epoch", "4"},
                                             {"early_stopping.best_metric", "3.9"},
                                             {"early_stopping.epochs", "5"},
                                             {"early_stopping.epochs_without_improvement", "1"}});
    auto net = small_net(13);
    const LoadReport report =
        load_checkpoint_from_bytes<double>(training_checkpoint, *net, {}, "training checkpoint");
    EarlyStopping<double> resumed(*net, resumed_options);
    resumed.load_state(report.metadata);
    CHECK(resumed.epochs() == 5);
    CHECK(resumed.epochs_without_improvement() == 1);
    CHECK(resumed.best_epoch() == 4);
    CHECK(resumed.best_metric() == 3.9);
    CHECK_FALSE(resumed.improved());
    for (std::size_t e = 5; e < metrics.size(); ++e) {
        perturb(*net, 100 + e);
        said.push_back(resumed.step(metrics[e]));
    }
    CHECK(said == whole_said);
    CHECK(said.back());  // no new best after epoch 4: stop from epoch 7 on
    CHECK(resumed.state_metadata() == whole.state_metadata());
    // The best epoch's weights came back from the file: restore_best gives epoch 4's network.
    whole.restore_best();
    resumed.restore_best();
    CHECK(values(*net) == values(*whole_net));
}

TEST_CASE(
    "a stopper with no best yet resumes its counts; load_state refuses a state it cannot "
    "honour and leaves the stopper as it was") {
    TempDir dir;
    const fs::path file = dir.path / "best.safetensors";
    auto net = small_net(14);
    EarlyStopping<double> none_yet(*net, {});
    none_yet.step(std::nan(""));
    const std::map<std::string, std::string> counts = none_yet.state_metadata();
    CHECK(counts ==
          std::map<std::string, std::string>{{"early_stopping.epochs", "1"},
                                             {"early_stopping.epochs_without_improvement", "1"}});
    EarlyStopping<double> fresh(*net, {.patience = 2});
    fresh.load_state(counts);
    CHECK(fresh.epochs() == 1);
    CHECK_FALSE(fresh.best_epoch());
    CHECK(fresh.step(std::nan("")));  // two epochs without a best
    CHECK_THROWS_MATCHES(fresh.restore_best(), value_error, MessageContains("no epoch has a best"));

    // A run whose best (epoch 2 of 3, metric 0.5) is in `file`; its state after epoch 1 is
    // behind the file.
    perturb(*net, 200);
    EarlyStopping<double> run(*net, {.checkpoint = file});
    run.step(0.75);
    const std::map<std::string, std::string> behind = run.state_metadata();
    perturb(*net, 201);
    run.step(0.5);
    const std::vector<Matrix<double>> best = values(*net);
    perturb(*net, 202);
    run.step(0.6);
    const std::map<std::string, std::string> good = run.state_metadata();
    auto with = [&](const std::string& name, const std::string& value) {
        std::map<std::string, std::string> m = good;
        m["early_stopping." + name] = value;
        return m;
    };
    auto without = [&](const std::string& name) {
        std::map<std::string, std::string> m = good;
        m.erase("early_stopping." + name);
        return m;
    };
    // Each refusal leaves a resumed stopper as it was: its state, and its best weights.
    EarlyStopping<double> stopper(*net, {.checkpoint = file});
    stopper.load_state(good);
    const auto refuses = [&](const std::map<std::string, std::string>& metadata,
                             const std::string& message) {
        INFO(message);
        CHECK_THROWS_MATCHES(stopper.load_state(metadata), value_error,
                             MessageContains("EarlyStopping: load_state: "));
        CHECK_THROWS_MATCHES(stopper.load_state(metadata), value_error, MessageContains(message));
        CHECK(stopper.state_metadata() == good);
    };
    refuses({}, "the metadata has no 'early_stopping.epochs': it holds no early-stopping state");
    refuses(with("epochs", "3.5"), "'early_stopping.epochs' is '3.5', not a count");
    refuses(with("epochs_without_improvement", "-1"), "is '-1', not a count");
    refuses(without("best_metric"), "come together; only one is there");
    refuses(without("best_epoch"), "come together");
    refuses(with("epochs_without_improvement", "4"), "4 epochs without improvement out of 3");
    refuses(with("best_epoch", "1"),
            "the best epoch is 1, but 3 epochs with the last 1 not improving make it 2");
    refuses(with("best_epoch", "0"), "the best epoch is 0; epochs count from 1");
    refuses({{"early_stopping.epochs", "2"}, {"early_stopping.epochs_without_improvement", "1"}},
            "no best epoch, yet only 1 of 2 epochs without improvement");
    refuses(with("best_metric", "nan"), "'early_stopping.best_metric' is 'nan', not a number");
    refuses(with("best_metric", "0.4"),
            "best.safetensors holds the best of epoch 2 (metric 0.5), the state epoch 2 (metric "
            "0.4): it is not this run's best");
    refuses(behind,
            "best.safetensors holds the best of epoch 2, after the state's epoch 1: it was "
            "written after this training checkpoint, and the best as of epoch 1 is gone");
    perturb(*net, 203);
    stopper.restore_best();
    CHECK(values(*net) == best);

    EarlyStopping<double> no_path(*net, {});
    CHECK_THROWS_MATCHES(no_path.load_state(good), value_error,
                         MessageContains("there is a best epoch, but no checkpoint path"));
    EarlyStopping<double> missing(*net, {.checkpoint = dir.path / "gone.safetensors"});
    CHECK_THROWS_MATCHES(missing.load_state(good), io_error,
                         MessageContains("gone.safetensors: cannot open the checkpoint"));
    CHECK(missing.epochs() == 0);
    const fs::path plain = dir.path / "plain.safetensors";
    save_checkpoint(plain, *net);
    EarlyStopping<double> not_a_best(*net, {.checkpoint = plain});
    CHECK_THROWS_MATCHES(not_a_best.load_state(good), value_error,
                         MessageContains("plain.safetensors has no early-stopping best epoch and "
                                         "metric in its metadata"));
}

TEST_CASE("a stopper that writes its best only in save_best() resumes from that file") {
    TempDir dir;
    const fs::path file = dir.path / "best.safetensors";
    auto net = small_net(15);
    EarlyStopping<double> run(*net, {.checkpoint = file, .write_every_best = false});
    perturb(*net, 300);
    run.step(0.5);
    const std::vector<Matrix<double>> best = values(*net);
    perturb(*net, 301);
    run.step(0.7);
    run.save_best();  // beside the training checkpoint, as a periodic save would
    EarlyStopping<double> resumed(*net, {.checkpoint = file, .write_every_best = false});
    resumed.load_state(run.state_metadata());
    CHECK(resumed.best_epoch() == 1);
    CHECK(resumed.epochs_without_improvement() == 1);
    resumed.restore_best();
    CHECK(values(*net) == best);
}

TEST_CASE("a stopper resumes from its state and the best checkpoint's bytes, with no file") {
    auto net = small_net(16);
    EarlyStopping<double> run(*net, {});
    CHECK(run.best_checkpoint().empty());
    perturb(*net, 400);
    run.step(0.5);
    const std::vector<Matrix<double>> best = values(*net);
    perturb(*net, 401);
    run.step(0.7);
    const std::map<std::string, std::string> good = run.state_metadata();

    EarlyStopping<double> resumed(*net, {});
    resumed.load_state(good, run.best_checkpoint(), "rank 0's best");
    CHECK(resumed.state_metadata() == good);
    CHECK(std::ranges::equal(resumed.best_checkpoint(), run.best_checkpoint()));
    resumed.restore_best();
    CHECK(values(*net) == best);

    // Refusals name the bytes and leave the stopper as it was.
    EarlyStopping<double> another(*net, {});
    another.step(0.25);  // a best of epoch 1 with another metric
    const auto refuses = [&](const std::map<std::string, std::string>& metadata,
                             std::span<const std::byte> bytes, const std::string& message) {
        INFO(message);
        CHECK_THROWS_MATCHES(resumed.load_state(metadata, bytes, "rank 0's best"), value_error,
                             MessageContains(message));
        CHECK(resumed.state_metadata() == good);
        CHECK(std::ranges::equal(resumed.best_checkpoint(), run.best_checkpoint()));
    };
    refuses(good, {}, "there is a best epoch, but the best checkpoint (rank 0's best) is empty");
    refuses({{"early_stopping.epochs", "1"}, {"early_stopping.epochs_without_improvement", "1"}},
            run.best_checkpoint(), "the state has no best epoch, yet a best checkpoint of");
    refuses(good, another.best_checkpoint(),
            "rank 0's best holds the best of epoch 1 (metric 0.25), the state epoch 1 (metric "
            "0.5): it is not this run's best");
    const std::vector<std::byte> truncated(run.best_checkpoint().begin(),
                                           run.best_checkpoint().begin() + 5);
    CHECK_THROWS_MATCHES(resumed.load_state(good, truncated, "rank 0's best"), io_error,
                         MessageContains("rank 0's best"));
    CHECK(resumed.state_metadata() == good);
}
