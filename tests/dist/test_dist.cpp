// Data-parallel training over MPI is the same computation as one process on the whole batch.
// Every rank runs each test case; each rank also trains the single-process reference itself, so
// that every rank checks its own parameters against it.
#include "../support/temp_dir.hpp"
#include "../support/testing.hpp"

#include <gradscope/dist.hpp>
#include <gradscope/dist/checkpoint.hpp>
#include <gradscope/dist/early_stopping.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;
using dist::Communicator;
using dist::DataParallel;

namespace {

constexpr Index batch = 12;  // divisible by 2 and by 3 ranks
constexpr Index inputs = 5;
constexpr Index classes = 3;

struct Batch {
    Matrix<double> x;
    std::vector<int> y;
};

Batch whole_batch(std::uint64_t step) {
    Batch b{normal(batch, inputs, 100 + step), std::vector<int>(batch)};
    for (Index i = 0; i < batch; ++i)
        b.y[static_cast<std::size_t>(i)] = static_cast<int>((i + step) % classes);
    return b;
}

// Rank r's rows of the whole batch: a contiguous block of batch / ranks.
Batch shard(const Batch& all, int rank, int ranks) {
    const Index rows = batch / ranks, first = rows * rank;
    Batch b{all.x.middleRows(first, rows), {}};
    b.y.assign(all.y.begin() + first, all.y.begin() + first + rows);
    return b;
}

// Without batch norm the layers have biases. With it they have none, as is usual: batch norm
// subtracts the batch mean, so a bias before it has a gradient of exactly zero in exact
// arithmetic, and rounding noise of 1e-17 in its place, which Adam divides by its eps (1e-8) into
// steps of 1e-10 that differ between any two summation orders.
std::shared_ptr<MLP<double>> network(Normalization norm, Index width = 8, std::uint64_t seed = 7) {
    return mlp<double>({.widths = {inputs, width, width, width, classes},
                        .activation = Tanh{},
                        .norm = norm,
                        .residual = true,
                        .bias = norm != Normalization::batch,
                        .seed = seed});
}

constexpr double max_norm = 0.5;  // small enough that these gradients are clipped

// One step: AdamW after clipping, from gradients that backward left.
void step(Module<double>& net, AdamW<double>& optimizer) {
    const auto params = net.parameters();
    clip_grad_norm<double>(params, max_norm);
    optimizer.step();
}

// A directory for this run's files, one per number of ranks (np2 and np3 run side by side).
std::filesystem::path scratch_dir(const Communicator& comm) {
    const std::filesystem::path dir =
        std::filesystem::path(GRADSCOPE_TEST_SCRATCH_DIR) / ("np" + std::to_string(comm.size()));
    if (comm.rank() == 0) std::filesystem::create_directories(dir);
    comm.barrier();
    return dir;
}

double largest_difference(const Module<double>& a, const Module<double>& b) {
    const auto pa = a.parameters(), pb = b.parameters();
    REQUIRE(pa.size() == pb.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < pa.size(); ++i) {
        worst = std::max(worst, (pa[i].value() - pb[i].value()).cwiseAbs().maxCoeff());
    }
    return worst;
}

// Three steps of one process on the whole batch.
std::shared_ptr<MLP<double>> train_alone(Normalization norm) {
    auto net = network(norm);
    AdamW<double> optimizer(net->parameters(), {.lr = 0.05, .weight_decay = 0.1});
    for (std::uint64_t s = 0; s < 3; ++s) {
        const Batch b = whole_batch(s);
        auto loss = cross_entropy((*net)(TensorD::constant(b.x)), b.y);
        optimizer.zero_grad();
        loss.backward();
        step(*net, optimizer);
    }
    return net;
}

// Three steps data-parallel: each rank on its shard.
std::shared_ptr<MLP<double>> train_parallel(const Communicator& comm, Normalization norm,
                                            const dist::DataParallelOptions& options = {},
                                            dist::DataParallelStats* stats = nullptr,
                                            bool sync_batch_norm = false) {
    // Another seed on the other ranks: DataParallel must start them from rank 0's weights.
    auto net = network(norm, 8, comm.rank() == 0 ? 7 : 1000 + comm.rank());
    if (sync_batch_norm) REQUIRE(dist::synchronize_batch_norm(*net, comm) == 3);
    DataParallel<double> ddp(*net, comm, options);
    AdamW<double> optimizer(net->parameters(), {.lr = 0.05, .weight_decay = 0.1});
    for (std::uint64_t s = 0; s < 3; ++s) {
        const Batch b = shard(whole_batch(s), comm.rank(), comm.size());
        auto loss = cross_entropy(ddp(TensorD::constant(b.x)), b.y);
        optimizer.zero_grad();
        loss.backward();
        step(*net, optimizer);
    }
    if (stats) *stats = ddp.stats();
    return net;
}

}  // namespace

TEST_CASE("three AdamW steps with clipping: the ranks' shards give the whole batch's parameters",
          "[dist]") {
    Communicator comm;
    // Layer norm and residual blocks: per-sample layers, so the shards add up to the batch.
    const auto alone = train_alone(Normalization::layer);
    const auto parallel = train_parallel(comm, Normalization::layer);
    INFO("rank " << comm.rank() << " of " << comm.size());
    // The averaged gradient differs from the whole batch's by rounding (the sum of the shards'
    // means in another order), about 1e-16 relative; three steps keep it far below 1e-12.
    CHECK(largest_difference(*alone, *parallel) < 1e-12);
    // And the steps did move the weights, and the clipping did clip.
    CHECK(largest_difference(*alone, *network(Normalization::layer)) > 1e-3);
    auto net = network(Normalization::layer);
    const Batch b = whole_batch(0);
    cross_entropy((*net)(TensorD::constant(b.x)), b.y).backward();
    CHECK(clip_grad_norm<double>(net->parameters(), max_norm) > max_norm);
}

TEST_CASE("plain batch norm normalises each rank's shard alone: the ghost-batch result", "[dist]") {
    Communicator comm;
    // One process that cuts each batch into the ranks' shards, normalises each with its own
    // statistics and averages the shard losses computes what the ranks compute together.
    auto ghost = network(Normalization::batch);
    AdamW<double> optimizer(ghost->parameters(), {.lr = 0.05, .weight_decay = 0.1});
    for (std::uint64_t s = 0; s < 3; ++s) {
        const Batch all = whole_batch(s);
        TensorD loss;
        for (int r = 0; r < comm.size(); ++r) {
            const Batch b = shard(all, r, comm.size());
            auto part = cross_entropy((*ghost)(TensorD::constant(b.x)), b.y) * (1.0 / comm.size());
            loss = r == 0 ? part : loss + part;
        }
        optimizer.zero_grad();
        loss.backward();
        step(*ghost, optimizer);
    }
    const auto parallel = train_parallel(comm, Normalization::batch);
    INFO("rank " << comm.rank() << " of " << comm.size());
    CHECK(largest_difference(*ghost, *parallel) < 1e-12);
    // Not the whole batch's: batch statistics of 12 rows are not those of 6 or 4.
    CHECK(largest_difference(*train_alone(Normalization::batch), *parallel) > 1e-6);
}

double largest_buffer_difference(const Module<double>& a, const Module<double>& b) {
    const auto ba = a.named_buffers(), bb = b.named_buffers();
    REQUIRE(ba.size() == bb.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < ba.size(); ++i) {
        worst =
            std::max(worst, (ba[i].second.value() - bb[i].second.value()).cwiseAbs().maxCoeff());
    }
    return worst;
}

TEST_CASE("synchronised batch norm: the ranks' shards train as one process on the whole batch",
          "[dist]") {
    Communicator comm;
    const auto alone = train_alone(Normalization::batch);
    const auto parallel = train_parallel(comm, Normalization::batch, {}, nullptr, true);
    INFO("rank " << comm.rank() << " of " << comm.size());
    CHECK(largest_difference(*alone, *parallel) < 1e-12);
    // The running statistics too: the whole batch's mean and unbiased variance, every step.
    CHECK(largest_buffer_difference(*alone, *parallel) < 1e-12);
    CHECK(largest_buffer_difference(*alone, *network(Normalization::batch)) > 1e-3);
    // Evaluation uses them, without communicating: the same outputs as the single process.
    alone->eval();
    parallel->eval();
    const auto x = TensorD::constant(normal(5, inputs, 9));
    CHECK(((*alone)(x).value() - (*parallel)(x).value()).cwiseAbs().maxCoeff() < 1e-12);

    std::ostringstream summary;
    summary << *parallel;
    CHECK(summary.str().find("synchronized") != std::string::npos);
}

TEST_CASE("bucket size and overlap change nothing in the numbers", "[dist]") {
    Communicator comm;
    dist::DataParallelStats small_stats, one_stats;
    // Every parameter its own bucket, each all-reduce started during backward ...
    const auto small =
        train_parallel(comm, Normalization::layer,
                       {.bucket_bytes = sizeof(double), .overlap = true}, &small_stats);
    // ... against one bucket for everything, reduced after backward.
    const auto one =
        train_parallel(comm, Normalization::layer,
                       {.bucket_bytes = std::size_t{1} << 30, .overlap = false}, &one_stats);
    INFO("rank " << comm.rank() << " of " << comm.size());
    const std::size_t parameters = network(Normalization::layer)->parameters().size();
    CHECK(small_stats.buckets_reduced == 3 * parameters);
    CHECK(small_stats.buckets_overlapped > 0);
    CHECK(one_stats.buckets_reduced == 3);
    CHECK(one_stats.buckets_overlapped == 0);
    CHECK(small_stats.bytes_reduced == one_stats.bytes_reduced);
    CHECK(small_stats.passes == 3);
    // With two ranks each element's sum is a + b either way: bit for bit. With more, MPI may
    // pick another summation order for another message size.
    if (comm.size() == 2) {
        CHECK(largest_difference(*small, *one) == 0.0);
    } else {
        CHECK(largest_difference(*small, *one) < 1e-14);
    }
}

namespace {

// Two micro-batches a step, each (loss / 2).backward() on its own: the first batch of the step
// is whole_batch(2s), the second whole_batch(2s + 1).
enum class Accumulation { every_pass_synchronised, first_pass_local, every_pass_local };

std::shared_ptr<MLP<double>> train_accumulating(const Communicator* comm, Accumulation how,
                                                dist::DataParallelStats* stats = nullptr) {
    auto net = network(Normalization::layer);
    std::optional<DataParallel<double>> ddp;
    if (comm) ddp.emplace(*net, *comm);
    AdamW<double> optimizer(net->parameters(), {.lr = 0.05, .weight_decay = 0.1});
    for (std::uint64_t s = 0; s < 3; ++s) {
        optimizer.zero_grad();
        for (std::uint64_t micro = 0; micro < 2; ++micro) {
            Batch b = whole_batch(2 * s + micro);
            if (comm) b = shard(b, comm->rank(), comm->size());
            auto loss = cross_entropy((*net)(TensorD::constant(b.x)), b.y) * 0.5;
            const bool local = comm && (how == Accumulation::every_pass_local ||
                                        (how == Accumulation::first_pass_local && micro == 0));
            if (local) {
                auto guard = ddp->no_sync();
                loss.backward();
            } else {
                loss.backward();
            }
        }
        if (comm && how == Accumulation::every_pass_local) ddp->synchronize_gradients();
        step(*net, optimizer);
    }
    if (stats) *stats = ddp->stats();
    return net;
}

}  // namespace

TEST_CASE("gradient accumulation under no_sync() communicates once a step, with the same result",
          "[dist]") {
    Communicator comm;
    const auto alone = train_accumulating(nullptr, Accumulation::every_pass_synchronised);
    dist::DataParallelStats every, first, none;
    const auto synced_each_pass =
        train_accumulating(&comm, Accumulation::every_pass_synchronised, &every);
    const auto local_first = train_accumulating(&comm, Accumulation::first_pass_local, &first);
    const auto local_all = train_accumulating(&comm, Accumulation::every_pass_local, &none);
    INFO("rank " << comm.rank() << " of " << comm.size());
    CHECK(largest_difference(*alone, *synced_each_pass) < 1e-12);
    CHECK(largest_difference(*alone, *local_first) < 1e-12);
    CHECK(largest_difference(*alone, *local_all) < 1e-12);
    // Half the all-reduces (one bucket here) with no_sync(): one a step instead of two.
    CHECK(every.passes == 6);
    CHECK(every.local_passes == 0);
    CHECK(first.passes == 3);
    CHECK(first.local_passes == 3);
    CHECK(first.bytes_reduced * 2 == every.bytes_reduced);
    CHECK(none.passes == 3);
    CHECK(none.local_passes == 6);
}

TEST_CASE("under no_sync() each rank keeps its own gradient", "[dist]") {
    Communicator comm;
    auto net = network(Normalization::none);
    DataParallel<double> ddp(*net, comm);
    const Batch b = shard(whole_batch(0), comm.rank(), comm.size());
    {
        auto guard = ddp.no_sync();
        CHECK_FALSE(ddp.synchronizing());
        cross_entropy(ddp(TensorD::constant(b.x)), b.y).backward();
        REQUIRE_THROWS_MATCHES(ddp.synchronize_gradients(), dist_error,
                               Catch::Matchers::Message(
                                   "DataParallel::synchronize_gradients() called under no_sync()"));
    }
    CHECK(ddp.synchronizing());
    const Matrix<double> local = net->parameters().front().grad();
    // This rank's own gradient: that of one process on this shard.
    auto alone = network(Normalization::none);
    cross_entropy((*alone)(TensorD::constant(b.x)), b.y).backward();
    CHECK((alone->parameters().front().grad() - local).cwiseAbs().maxCoeff() == 0.0);
    // Not rank 0's (the shards differ) ...
    Matrix<double> from_root = local;
    comm.broadcast(std::span<double>(from_root.data(), static_cast<std::size_t>(from_root.size())));
    if (comm.rank() != 0) CHECK((from_root - local).cwiseAbs().maxCoeff() > 1e-6);
    // ... until it is averaged: then it is the same everywhere.
    ddp.synchronize_gradients();
    Matrix<double> averaged = net->parameters().front().grad();
    from_root = averaged;
    comm.broadcast(std::span<double>(from_root.data(), static_cast<std::size_t>(from_root.size())));
    CHECK(from_root == averaged);
}

TEST_CASE("dropout draws each rank's own masks, unless asked not to, across a checkpoint",
          "[dist]") {
    Communicator comm;
    const auto net_with_dropout = [] {
        return mlp<double>({.widths = {inputs, 64, classes}, .dropout = 0.5, .seed = 7});
    };
    // The same input on every rank, so that only the masks can make the outputs differ.
    const auto x = TensorD::constant(normal(4, inputs, 3));
    // Each rank's streams survive a checkpoint saved and loaded at once.
    const std::filesystem::path dir = scratch_dir(comm);
    const auto output_and_root_output = [&](bool distinct) {
        auto net = net_with_dropout();
        DataParallel<double> ddp(*net, comm, {.distinct_dropout_masks = distinct});
        dist::save_checkpoint(comm, dir / "dropout.safetensors", *net);
        (void)dist::load_checkpoint(comm, dir / "dropout.safetensors", *net);
        Matrix<double> out = ddp(x).value(), from_root = out;
        comm.broadcast(
            std::span<double>(from_root.data(), static_cast<std::size_t>(from_root.size())));
        return std::pair(out, from_root);
    };
    INFO("rank " << comm.rank() << " of " << comm.size());
    const auto [distinct, distinct_root] = output_and_root_output(true);
    const auto [same, same_root] = output_and_root_output(false);
    CHECK(same == same_root);
    if (comm.rank() == 0) {
        // Rank 0 keeps the stream of a network used without DataParallel.
        CHECK(distinct == (*net_with_dropout())(x).value());
    } else {
        CHECK(distinct != distinct_root);
    }
}

TEST_CASE("module hooks after backward see the averaged gradient", "[dist]") {
    Communicator comm;
    auto net = network(Normalization::none);
    DataParallel<double> ddp(*net, comm);
    Module<double>* first_linear = nullptr;
    for (auto& [path, m] : net->named_modules()) {
        if (m->type_name() == "Linear") {
            first_linear = m;
            break;
        }
    }
    REQUIRE(first_linear != nullptr);
    Matrix<double> seen;
    first_linear->register_param_grad_hook(
        [&](Module<double>& m) { seen = m.own_parameters().front().second.grad(); });
    const Batch b = shard(whole_batch(0), comm.rank(), comm.size());
    cross_entropy(ddp(TensorD::constant(b.x)), b.y).backward();
    const Matrix<double> averaged = first_linear->own_parameters().front().second.grad();
    CHECK(seen == averaged);
    // It is the average: the same on every rank.
    Matrix<double> from_root = averaged;
    comm.broadcast(std::span<double>(from_root.data(), static_cast<std::size_t>(from_root.size())));
    CHECK(from_root == averaged);
}

TEST_CASE("a network that differs between ranks is an error on every rank, naming both", "[dist]") {
    Communicator comm;
    if (comm.size() < 2) return;
    // Rank 1's hidden layers are wider.
    auto wider = network(Normalization::none, comm.rank() == 1 ? 9 : 8);
    REQUIRE_THROWS_MATCHES(
        DataParallel<double>(*wider, comm), dist_error,
        MessageContains({"rank 1 of", "layers.0", "[9x5]", "[8x5]", "on rank 0"}));
    // Rank 1's network has a layer more.
    auto deeper = comm.rank() == 1 ? mlp<double>({.widths = {inputs, 8, 8, classes}, .seed = 1})
                                   : mlp<double>({.widths = {inputs, 8, classes}, .seed = 1});
    REQUIRE_THROWS_MATCHES(DataParallel<double>(*deeper, comm), dist_error,
                           MessageContains({"rank 1 of", "on rank 0"}));
    // And afterwards the ranks are still in step: a good network works.
    auto same = network(Normalization::none);
    DataParallel<double> ddp(*same, comm);
    CHECK(ddp.parameter_names().size() == same->parameters().size());
}

TEST_CASE("the distributed sampler's shards cover each epoch once across the ranks", "[dist]") {
    Communicator comm;
    for (const std::size_t n : {std::size_t{12}, std::size_t{13}}) {
        data::DistributedSampler sampler({.rank = static_cast<std::size_t>(comm.rank()),
                                          .world_size = static_cast<std::size_t>(comm.size()),
                                          .seed = 4,
                                          .uneven = data::DistributedSampler::Uneven::drop});
        std::vector<std::size_t> rows(sampler.length(n));
        sampler.fill(2, n, rows);
        std::vector<double> visits(n, 0.0);
        for (const std::size_t r : rows) visits[r] += 1.0;
        comm.all_reduce_sum(std::span<double>(visits));
        const auto kept = static_cast<double>(n / static_cast<std::size_t>(comm.size()) *
                                              static_cast<std::size_t>(comm.size()));
        CHECK(std::count(visits.begin(), visits.end(), 1.0) == static_cast<long>(kept));
        CHECK(std::count(visits.begin(), visits.end(), 0.0) == static_cast<long>(n - kept));
    }
}

TEST_CASE("checkpoints: rank 0 writes, every rank loads, and a failure reaches every rank",
          "[dist]") {
    Communicator comm;
    const std::filesystem::path dir = scratch_dir(comm);
    const auto path = dir / "trained.safetensors";

    const auto trained = train_parallel(comm, Normalization::layer);
    AdamW<double> optimizer(trained->parameters(), {.lr = 0.05});
    dist::save_checkpoint(comm, path, *trained, optimizer);

    auto fresh = network(Normalization::layer, 8, 55);
    AdamW<double> fresh_optimizer(fresh->parameters(), {.lr = 0.05});
    const LoadReport report = dist::load_checkpoint(comm, path, *fresh, fresh_optimizer);
    CHECK(report.missing.empty());
    CHECK(largest_difference(*trained, *fresh) == 0.0);

    REQUIRE_THROWS_MATCHES(
        dist::save_checkpoint(comm, dir / "no" / "such" / "dir.safetensors", *trained), dist_error,
        MessageContains("rank 0 of"));

    if (comm.size() < 2) return;
    // A file that does not fit rank 1's network: no rank keeps what it loaded.
    auto other = network(Normalization::layer, comm.rank() == 1 ? 9 : 8, 55);
    const auto before = network(Normalization::layer, comm.rank() == 1 ? 9 : 8, 55);
    REQUIRE_THROWS_MATCHES(dist::load_checkpoint(comm, path, *other), dist_error,
                           MessageContains({"rank 1 of", path.string()}));
    CHECK(largest_difference(*other, *before) == 0.0);
}

namespace {

std::shared_ptr<MLP<double>> network_with_dropout(std::uint64_t seed) {
    return mlp<double>({.widths = {inputs, 16, 16, classes}, .dropout = 0.3, .seed = seed});
}

// Steps [first, last) data-parallel, each rank on its shard, with dropout drawing masks.
void train_steps(const Communicator& comm, DataParallel<double>& ddp, AdamW<double>& optimizer,
                 std::uint64_t first, std::uint64_t last) {
    for (std::uint64_t s = first; s < last; ++s) {
        const Batch b = shard(whole_batch(s), comm.rank(), comm.size());
        auto loss = cross_entropy(ddp(TensorD::constant(b.x)), b.y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    }
}

// The metadata key and the state of the first module that keeps an extra state (a Dropout's
// stream).
std::pair<std::string, std::string> first_stream(const Module<double>& net) {
    for (const auto& [path, m] : net.named_modules()) {
        if (std::string state = m->extra_state(); !state.empty()) {
            return {path + "._extra_state", std::move(state)};
        }
    }
    FAIL("no module keeps an extra state");
    return {};
}

}  // namespace

TEST_CASE("a data-parallel run with dropout, resumed from a checkpoint, takes the same steps",
          "[dist]") {
    Communicator comm;
    const std::filesystem::path dir = scratch_dir(comm);
    const auto path = dir / "resume.safetensors";
    INFO("rank " << comm.rank() << " of " << comm.size());

    auto net = network_with_dropout(7);
    DataParallel<double> ddp(*net, comm);
    AdamW<double> optimizer(net->parameters(), {.lr = 0.05});
    train_steps(comm, ddp, optimizer, 0, 2);
    dist::save_checkpoint(comm, path, *net, optimizer);
    train_steps(comm, ddp, optimizer, 2, 4);

    // Another seed: only the file can give the resumed run the masks the first one drew.
    auto resumed = network_with_dropout(99);
    DataParallel<double> resumed_ddp(*resumed, comm);
    AdamW<double> resumed_optimizer(resumed->parameters(), {.lr = 0.05});
    (void)dist::load_checkpoint(comm, path, *resumed, resumed_optimizer);
    train_steps(comm, resumed_ddp, resumed_optimizer, 2, 4);
    CHECK(largest_difference(*net, *resumed) == 0.0);

    // The same input on every rank and in every network below: only the masks differ.
    const auto x = TensorD::constant(normal(4, inputs, 3));
    const auto output_after_loading = [&](const std::filesystem::path& file, LoadOptions options) {
        auto fresh = network_with_dropout(99);
        DataParallel<double> fresh_ddp(*fresh, comm);
        (void)dist::load_checkpoint(comm, file, *fresh, options);
        return Matrix<double>(fresh_ddp(x).value());
    };
    CHECK(output_after_loading(path, {}) != output_after_loading(path, {.extra_state = false}));

    // A file saved by another number of ranks, with a stream for every rank of this run: every
    // rank keeps the streams it has.
    const auto other_world = dir / "other_world.safetensors";
    const auto with_metadata = [&](const std::filesystem::path& file,
                                   std::map<std::string, std::string> metadata) {
        if (comm.rank() == 0) save_checkpoint(file, *net, {.metadata = std::move(metadata)});
        comm.barrier();
    };
    std::map<std::string, std::string> more_ranks{
        {"dist.world_size", std::to_string(comm.size() + 1)}};
    const auto [stream_key, stream] = first_stream(*net);
    for (int r = 1; r <= comm.size(); ++r) {
        more_ranks.emplace("dist.rank." + std::to_string(r) + "." + stream_key, stream);
    }
    with_metadata(other_world, more_ranks);
    CHECK(output_after_loading(other_world, {}) ==
          output_after_loading(other_world, {.extra_state = false}));

    // A world size that is not a number, or one rank's stream that does not parse: an error on
    // every rank, and no rank keeps anything of the file.
    const auto check_nothing_loaded = [&](const std::filesystem::path& file,
                                          const std::string& named) {
        auto fresh = network_with_dropout(99);
        DataParallel<double> fresh_ddp(*fresh, comm);
        const auto before = network_with_dropout(99);
        DataParallel<double> before_ddp(*before, comm);
        REQUIRE_THROWS_MATCHES(dist::load_checkpoint(comm, file, *fresh), dist_error,
                               MessageContains({file.string(), named}));
        CHECK(largest_difference(*fresh, *before) == 0.0);
        CHECK(fresh_ddp(x).value() == before_ddp(x).value());
    };
    const auto not_a_number = dir / "world_size_not_a_number.safetensors";
    with_metadata(not_a_number, {{"dist.world_size", "two"}});
    check_nothing_loaded(not_a_number, "dist.world_size");
    if (comm.size() < 2) return;
    const std::string last_rank_key =
        "dist.rank." + std::to_string(comm.size() - 1) + "." + stream_key;
    const auto bad_stream = dir / "bad_stream.safetensors";
    with_metadata(bad_stream,
                  {{"dist.world_size", std::to_string(comm.size())}, {last_rank_key, "garbage"}});
    check_nothing_loaded(bad_stream, last_rank_key);

    // The prefix is reserved in what a data-parallel save writes.
    REQUIRE_THROWS_MATCHES(dist::save_checkpoint(comm, dir / "reserved.safetensors", *net,
                                                 SaveOptions{.metadata = {{"dist.mine", "1"}}}),
                           dist_error, MessageContains({"dist.mine", "reserved"}));
}

namespace {

// Each rank's parameters change alike (DataParallel keeps them equal); its batch norm's running
// statistics drift apart, from a training-mode forward on the rank's own rows.
void train_epoch_with_drift(const Communicator& comm, MLP<double>& net, std::uint64_t epoch) {
    for (auto& [name, t] : net.named_parameters()) {
        t.assign(t.value() + 0.1 * normal(t.rows(), t.cols(), 500 + epoch));
    }
    net.train();
    (void)net(TensorD::constant(normal(6, inputs, 600 + 10 * epoch + comm.rank())));
}

// A module whose extra state on rank 1 is not UTF-8, which no checkpoint can hold: saving it
// fails there and nowhere else.
class UnsavableOnRank1 : public Module<double> {
public:
    explicit UnsavableOnRank1(int rank) : rank_(rank) {}
    TensorD forward_impl(const TensorD& x) override { return x; }
    [[nodiscard]] std::string extra_state() const override {
        return rank_ == 1 ? std::string("\xff") : std::string("ok");
    }
    void set_extra_state(std::string_view) override {}

private:
    int rank_;
};

// This rank's parameters and buffers as checkpoint bytes, and rank 0's.
std::pair<std::vector<std::byte>, std::vector<std::byte>> mine_and_rank_0s(
    const Communicator& comm, const Module<double>& net) {
    std::vector<std::byte> mine = save_checkpoint_to_bytes(net), root = mine;
    comm.broadcast_vector(root, 0);
    return {std::move(mine), std::move(root)};
}

}  // namespace

TEST_CASE(
    "early stopping across ranks: one decision from the averaged metric, rank 0's file, "
    "every rank's best and a resumed stopper the same",
    "[dist]") {
    Communicator comm;
    const std::filesystem::path dir = scratch_dir(comm);
    INFO("rank " << comm.rank() << " of " << comm.size());
    const auto file_of = [&](int rank) {
        return dir / ("best_" + std::to_string(rank) + ".safetensors");
    };
    if (comm.rank() == 0) {
        for (int r = 0; r < comm.size(); ++r) std::filesystem::remove(file_of(r));
    }
    comm.barrier();

    // The average metric: best at epoch 4, then three epochs without improvement. Epoch 5's
    // metrics are spread over the ranks, so rank 0's alone would be a new best; each value is a
    // binary fraction, so the average over 2 or 3 ranks is exact.
    const std::vector<double> average{1.0, 0.75, 0.875, 0.5, 0.625, 0.5625, 0.53125};
    const auto metric = [&](std::size_t epoch) {
        const double spread = epoch == 4 ? 0.25 : 0.0;
        return average[epoch] + spread * (2 * comm.rank() - (comm.size() - 1));
    };
    auto net =
        mlp<double>({.widths = {inputs, 6, classes}, .norm = Normalization::batch, .seed = 3});
    // Every rank names its own file: only rank 0's may be written.
    dist::EarlyStopping<double> stopper(comm, *net,
                                        {.patience = 3, .checkpoint = file_of(comm.rank())});
    EarlyStopping<double> alone(*net, {.patience = 3});  // one process fed the averages
    std::vector<std::byte> best_on_rank_0;
    std::map<std::string, std::string> state_after_5;
    for (std::size_t epoch = 0; epoch < average.size(); ++epoch) {
        train_epoch_with_drift(comm, *net, epoch);
        const bool stop = stopper.step(metric(epoch));
        CHECK(stop == alone.step(average[epoch]));
        CHECK(stop == (epoch + 1 == average.size()));
        if (epoch == 3) best_on_rank_0 = mine_and_rank_0s(comm, *net).second;
        if (epoch == 4) state_after_5 = stopper.state_metadata();
    }
    CHECK(stopper.best_epoch() == 4);
    CHECK(stopper.best_metric() == 0.5);
    CHECK(stopper.state_metadata() == alone.state_metadata());
    CHECK(std::filesystem::exists(file_of(comm.rank())) == (comm.rank() == 0));
    if (comm.rank() == 0) {
        const auto metadata = read_checkpoint_metadata(file_of(0));
        CHECK(metadata.at("early_stopping.best_epoch") == "4");
        CHECK(metadata.at("early_stopping.best_metric") == "0.5");
    }

    // restore_best: every rank holds rank 0's best epoch, running statistics included, though
    // each rank's own copy had its own.
    std::vector<std::byte> rank_0s_copy(stopper.best_checkpoint().begin(),
                                        stopper.best_checkpoint().end());
    comm.broadcast_vector(rank_0s_copy, 0);
    CHECK(std::ranges::equal(stopper.best_checkpoint(), rank_0s_copy) == (comm.rank() == 0));
    stopper.restore_best();
    const auto [restored, restored_on_rank_0] = mine_and_rank_0s(comm, *net);
    CHECK(restored == restored_on_rank_0);
    CHECK(restored == best_on_rank_0);

    // Resumed after epoch 5 on every rank from rank 0's file: the ranks without one get its
    // bytes, and the stopper ends where the uninterrupted one did.
    dist::EarlyStopping<double> resumed(comm, *net,
                                        {.patience = 3, .checkpoint = file_of(comm.rank())});
    resumed.load_state(state_after_5);
    CHECK(std::ranges::equal(resumed.best_checkpoint(), rank_0s_copy));
    CHECK_FALSE(resumed.step(metric(5)));
    CHECK(resumed.step(metric(6)));
    CHECK(resumed.state_metadata() == stopper.state_metadata());

    // With write_every_best off, save_best() writes once, on rank 0 only; a write rank 0 cannot
    // make is an error on every rank.
    const auto saved_file_of = [&](int rank) {
        return dir / ("saved_" + std::to_string(rank) + ".safetensors");
    };
    if (comm.rank() == 0) {
        for (int r = 0; r < comm.size(); ++r) std::filesystem::remove(saved_file_of(r));
    }
    comm.barrier();
    dist::EarlyStopping<double> quiet(
        comm, *net, {.checkpoint = saved_file_of(comm.rank()), .write_every_best = false});
    quiet.step(metric(0));
    CHECK_FALSE(std::filesystem::exists(saved_file_of(comm.rank())));
    quiet.save_best();
    comm.barrier();
    CHECK(std::filesystem::exists(saved_file_of(comm.rank())) == (comm.rank() == 0));
    if (comm.rank() == 0) {
        CHECK(read_checkpoint_metadata(saved_file_of(0)).at("early_stopping.best_epoch") == "1");
    }
    dist::EarlyStopping<double> quiet_unwritable(
        comm, *net,
        {.checkpoint = dir / "no" / "such" / "dir" / "saved.safetensors",
         .write_every_best = false});
    quiet_unwritable.step(metric(0));
    REQUIRE_THROWS_MATCHES(quiet_unwritable.save_best(), dist_error, MessageContains("rank 0 of"));

    // A write rank 0 cannot make is an error on every rank, and no rank has taken the step.
    dist::EarlyStopping<double> unwritable(
        comm, *net, {.checkpoint = dir / "no" / "such" / "dir" / "best.safetensors"});
    REQUIRE_THROWS_MATCHES(unwritable.step(1.0), dist_error, MessageContains("rank 0 of"));
    CHECK(unwritable.epochs() == 0);
    // So is a best file rank 0 cannot read when resuming, and the stopper stays as it was.
    REQUIRE_THROWS_MATCHES(unwritable.load_state(state_after_5), dist_error,
                           MessageContains({"rank 0 of", "cannot open"}));
    CHECK(unwritable.epochs() == 0);

    if (comm.size() < 2) return;
    // Options one rank refuses, or that differ between ranks, are an error on every rank.
    REQUIRE_THROWS_MATCHES(
        dist::EarlyStopping<double>(comm, *net, {.patience = comm.rank() == 1 ? 0 : 3}), dist_error,
        MessageContains({"rank 1 of", "patience must be at least 1"}));
    REQUIRE_THROWS_MATCHES(dist::EarlyStopping<double>(comm, *net, {.patience = 3 + comm.rank()}),
                           dist_error,
                           MessageContains({"rank 1 of", "patience is 4 here but 3 on rank 0"}));
    REQUIRE_THROWS_MATCHES(
        dist::EarlyStopping<double>(comm, *net,
                                    {.mode = comm.rank() == 0 ? EarlyStoppingOptions::Mode::min
                                                              : EarlyStoppingOptions::Mode::max}),
        dist_error, MessageContains("mode is max here but min on rank 0"));
    REQUIRE_THROWS_MATCHES(
        dist::EarlyStopping<double>(comm, *net, {.min_delta = comm.rank() == 0 ? 0.0 : 0.125}),
        dist_error, MessageContains("min_delta is 0.125 here but 0 on rank 0"));

    // A step that fails on rank 1 alone (its checkpoint cannot be made) is an error on every
    // rank, and no rank has taken it: rank 0, which stepped last, has not written its file.
    UnsavableOnRank1 unsavable(comm.rank());
    const auto unsavable_file = dir / "unsavable.safetensors";
    if (comm.rank() == 0) std::filesystem::remove(unsavable_file);
    dist::EarlyStopping<double> fails_on_1(comm, unsavable, {.checkpoint = unsavable_file});
    REQUIRE_THROWS_MATCHES(fails_on_1.step(1.0), dist_error, MessageContains("rank 1 of"));
    CHECK(fails_on_1.epochs() == 0);
    CHECK_FALSE(fails_on_1.best_epoch());
    CHECK_FALSE(std::filesystem::exists(unsavable_file));

    // A state that rank 1 refuses and the others accept: no rank loads it.
    dist::EarlyStopping<double> refuses_on_1(comm, *net, {.patience = 3, .checkpoint = file_of(0)});
    std::map<std::string, std::string> state = state_after_5;
    if (comm.rank() == 1) state["early_stopping.epochs"] = "five";
    REQUIRE_THROWS_MATCHES(refuses_on_1.load_state(state), dist_error,
                           MessageContains({"rank 1 of", "'early_stopping.epochs' is 'five'"}));
    CHECK(refuses_on_1.epochs() == 0);
    CHECK(refuses_on_1.best_checkpoint().empty());
}

TEST_CASE("gather_bytes collects every rank's bytes of its own length on the root, in rank order",
          "[dist]") {
    Communicator comm;
    const std::vector<std::byte> mine(static_cast<std::size_t>(comm.rank()) * 3 + 1,
                                      static_cast<std::byte>(comm.rank() + 7));
    const auto all = comm.gather_bytes(mine, 0);
    if (comm.rank() != 0) {
        CHECK(all.empty());
        return;
    }
    REQUIRE(all.size() == static_cast<std::size_t>(comm.size()));
    for (int r = 0; r < comm.size(); ++r) {
        const auto& got = all[static_cast<std::size_t>(r)];
        CHECK(got.size() == static_cast<std::size_t>(r) * 3 + 1);
        CHECK(std::all_of(got.begin(), got.end(),
                          [&](std::byte b) { return b == static_cast<std::byte>(r + 7); }));
    }
}

// The code blocks of docs/DISTRIBUTED.md (tests/test_doc_snippets.cpp checks that each is here
// or in examples/distributed_training.cpp), verbatim between clang-format off/on.

TEST_CASE("docs/DISTRIBUTED.md: micro-batches accumulate under no_sync() as one process's do",
          "[dist]") {
    Communicator comm;
    const std::size_t micro_batches = 3;
    // One process: the whole of each micro-batch.
    auto alone = network(Normalization::none);
    AdamW<double> alone_optimizer(alone->parameters(), {.lr = 0.05});
    alone_optimizer.zero_grad();
    for (std::uint64_t m = 0; m < micro_batches; ++m) {
        const Batch b = whole_batch(m);
        (cross_entropy((*alone)(TensorD::constant(b.x)), b.y) * (1.0 / micro_batches)).backward();
    }
    alone_optimizer.step();

    auto net = network(Normalization::none);
    DataParallel<double> ddp(*net, comm);
    AdamW<double> optimizer(net->parameters(), {.lr = 0.05});
    std::vector<TensorD> x;
    std::vector<std::vector<int>> y;
    for (std::uint64_t m = 0; m < micro_batches; ++m) {
        const Batch b = shard(whole_batch(m), comm.rank(), comm.size());
        x.push_back(TensorD::constant(b.x));
        y.push_back(b.y);
    }
    // clang-format off
  optimizer.zero_grad();
  for (std::size_t m = 0; m < micro_batches; ++m) {
      auto loss = cross_entropy(ddp(x[m]), y[m]) * (1.0 / micro_batches);
      if (m + 1 < micro_batches) {
          auto local = ddp.no_sync();  // this pass's gradients stay on this rank
          loss.backward();
      } else {
          loss.backward();             // averages everything accumulated
      }
  }
  optimizer.step();
    // clang-format on
    INFO("rank " << comm.rank() << " of " << comm.size());
    CHECK(largest_difference(*alone, *net) < 1e-12);
    // One synchronised pass, whose all-reduce averages the sum of the three; the parameters
    // alone would not tell (averaging is linear): these counts do.
    CHECK(ddp.stats().passes == 1);
    CHECK(ddp.stats().local_passes == 2);
}

TEST_CASE("docs/DISTRIBUTED.md: early stopping decides once for every rank", "[dist]") {
    Communicator comm;
    InDirectory here(scratch_dir(comm));
    if (comm.rank() == 0) std::filesystem::remove("best.safetensors");
    comm.barrier();
    auto net = mlp<float>({.widths = {inputs, 6, classes}, .seed = 3});
    DataParallel<float> ddp(*net, comm);
    AdamW<float> optimizer(net->parameters(), {.lr = 0.01});
    // The ranks' metrics average to their best at the third epoch. At the fourth they differ:
    // rank r's is off by 0.25 (2r - (size - 1)), so rank 0's alone would be a new best (binary
    // fractions: the averages are exact).
    const std::vector<double> average{1.0, 0.75, 0.5, 0.625, 0.75, 0.875, 1.0, 1.125, 1.25};
    const int epochs = static_cast<int>(average.size());
    int trained = 0;
    std::vector<Matrix<float>> after_third;
    auto train_one_epoch = [&] {
        const Batch b =
            shard(whole_batch(static_cast<std::uint64_t>(trained)), comm.rank(), comm.size());
        auto loss = cross_entropy(ddp(TensorF::constant(b.x.cast<float>())), b.y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        if (++trained == 3) {
            for (const auto& p : net->parameters()) after_third.push_back(p.value());
        }
    };
    auto validation_loss_of_this_ranks_shard = [&] {
        const double spread = trained == 4 ? 0.25 : 0.0;
        return average[static_cast<std::size_t>(trained - 1)] +
               spread * (2 * comm.rank() - (comm.size() - 1));
    };
    // clang-format off
  dist::EarlyStopping<float> stopper(comm, *net, {.patience = 5, .checkpoint = "best.safetensors"});
  for (int epoch = 0; epoch < epochs; ++epoch) {
      train_one_epoch();                               // through ddp
      if (stopper.step(validation_loss_of_this_ranks_shard())) break;  // all ranks, one epoch
  }
  stopper.restore_best();
    // clang-format on
    INFO("rank " << comm.rank() << " of " << comm.size());
    CHECK(trained == 8);  // five epochs without a better average after the third
    CHECK(stopper.best_epoch() == 3);
    const auto params = net->parameters();
    REQUIRE(after_third.size() == params.size());
    for (std::size_t i = 0; i < params.size(); ++i) CHECK(params[i].value() == after_third[i]);
    if (comm.rank() == 0) {  // only rank 0 writes the best file
        CHECK(read_checkpoint_metadata("best.safetensors").at("early_stopping.best_epoch") == "3");
    }
}
