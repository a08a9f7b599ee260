// The data pipeline: TensorDataset, DataLoader (batches, shuffling, drop_last, samplers,
// prefetch), splits and scalers. Datasets are small and their rows hold their own index, so a
// batch says which rows it carries.
#include "support/testing.hpp"

#include <gradscope/data.hpp>
#include <gradscope/io/safetensors.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;
using data::Batch;
using data::DataLoader;
using data::TensorDataset;

namespace {

// Row i is [i, 10 i]; the target of row i is -i, or the label i % 3.
TensorDataset<double> numbered(std::size_t n, bool labels = false) {
    Matrix<double> x(static_cast<Index>(n), 2);
    Matrix<double> y(static_cast<Index>(n), 1);
    std::vector<int> classes(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto r = static_cast<Index>(i);
        x(r, 0) = static_cast<double>(i);
        x(r, 1) = 10.0 * static_cast<double>(i);
        y(r, 0) = -static_cast<double>(i);
        classes[i] = static_cast<int>(i % 3);
    }
    if (labels) return TensorDataset<double>(x, classes);
    return TensorDataset<double>(x, y);
}

struct SeenBatch {
    std::vector<std::size_t> rows;
    Matrix<double> x, y;
    std::vector<int> labels;
};

// One epoch, copied out of the loader's buffers (which the next batch overwrites).
std::vector<SeenBatch> epoch(DataLoader<double>& loader) {
    std::vector<SeenBatch> out;
    for (const Batch<double>& b : loader) {
        out.push_back(
            {{b.indices.begin(), b.indices.end()}, b.x, b.y, {b.labels.begin(), b.labels.end()}});
    }
    return out;
}

std::vector<std::size_t> order_of(const std::vector<SeenBatch>& batches) {
    std::vector<std::size_t> rows;
    for (const auto& b : batches) rows.insert(rows.end(), b.rows.begin(), b.rows.end());
    return rows;
}

std::vector<std::size_t> range(std::size_t n) {
    std::vector<std::size_t> r(n);
    std::iota(r.begin(), r.end(), std::size_t{0});
    return r;
}

}  // namespace

TEST_CASE("a dataset refuses targets or labels that do not match its rows", "[data]") {
    REQUIRE_THROWS_MATCHES(TensorDataset<double>(Matrix<double>(4, 2), Matrix<double>(3, 1)),
                           shape_error, MessageContains({"TensorDataset", "[4x2]", "[3x1]"}));
    REQUIRE_THROWS_MATCHES(TensorDataset<double>(Matrix<double>(4, 2), std::vector<int>{0, 1}),
                           shape_error, MessageContains("2 labels for 4 feature rows"));
    REQUIRE_THROWS_MATCHES(
        TensorDataset<double>(Matrix<double>::Zero(3, 2), std::vector<int>{0, -1, 2}), value_error,
        MessageContains("label -1 at row 1 is negative"));
    // A table read as classes has [n x 0] targets: a dataset built from them is refused.
    REQUIRE_THROWS_MATCHES(
        TensorDataset<double>(Matrix<double>(4, 2), Matrix<double>(4, 0)), shape_error,
        MessageContains({"the targets have no columns", "std::vector<int>", "[4x2]", "[4x0]"}));
}

TEST_CASE("labels of another integer type are taken as ints, and one an int cannot hold is refused",
          "[data][labels]") {
    // PyTorch's labels are int64, a label file's uint8: both give the dataset of int labels.
    const std::vector<int> want = {2, 0, 1, 0};
    CHECK(TensorDataset<double>(Matrix<double>::Zero(4, 2), std::vector<std::int64_t>{2, 0, 1, 0})
              .labels() == want);
    CHECK(TensorDataset<double>(Matrix<double>::Zero(4, 2), std::vector<std::uint8_t>{2, 0, 1, 0})
              .labels() == want);
    CHECK(TensorDataset<float>(Matrix<float>::Zero(4, 2), std::vector<std::size_t>{2, 0, 1, 0})
              .labels() == want);
    // The element type is deduced from the features, as with int labels.
    const Matrix<float> features = Matrix<float>::Zero(4, 2);
    const TensorDataset deduced(features, std::vector<std::int64_t>{2, 0, 1, 0});
    STATIC_REQUIRE(std::is_same_v<decltype(deduced), const TensorDataset<float>>);
    CHECK(deduced.labels() == want);

    // 2^32 would wrap to class 0 as an int.
    const std::int64_t too_large = std::int64_t{1} << 32;
    REQUIRE_THROWS_MATCHES(
        TensorDataset<double>(Matrix<double>::Zero(3, 2),
                              std::vector<std::int64_t>{0, too_large, 1}),
        value_error,
        MessageContains(
            "TensorDataset: label 4294967296 at row 1 does not fit in an int (labels are class "
            "indices)"));
    // After the conversion, the int constructor's checks, with its messages.
    REQUIRE_THROWS_MATCHES(
        TensorDataset<double>(Matrix<double>::Zero(3, 2), std::vector<std::int64_t>{0, -1, 2}),
        value_error, MessageContains("label -1 at row 1 is negative"));
    REQUIRE_THROWS_MATCHES(
        TensorDataset<double>(Matrix<double>(4, 2), std::vector<std::int64_t>{0, 1}), shape_error,
        MessageContains("2 labels for 4 feature rows"));

    // The same split and the same weights as from int labels.
    std::vector<int> labels;
    for (int i = 0; i < 30; ++i) labels.push_back(i % 7 == 0 ? 1 : 0);
    const std::vector<std::int64_t> wide(labels.begin(), labels.end());
    const data::SplitOptions stratified{
        .validation = 0.2, .test = 0.2, .seed = 5, .stratify = true};
    const auto from_int = data::split_indices(labels, stratified);
    const auto from_wide = data::split_indices(wide, stratified);
    CHECK(from_wide.train == from_int.train);
    CHECK(from_wide.validation == from_int.validation);
    CHECK(from_wide.test == from_int.test);
    const std::vector<std::uint8_t> bytes(labels.begin(), labels.end());
    CHECK(data::split_indices(bytes, stratified).test == from_int.test);
    CHECK(data::class_balancing_weights(wide) == data::class_balancing_weights(labels));
    const std::vector<std::int64_t> too_negative = {0, -too_large};
    REQUIRE_THROWS_MATCHES(data::split_indices(too_negative, stratified), value_error,
                           MessageContains("split: label -4294967296 at row 1 does not fit"));
    REQUIRE_THROWS_MATCHES(data::class_balancing_weights(too_negative), value_error,
                           MessageContains("class_balancing_weights: label -4294967296 at row 1"));
}

TEST_CASE("without shuffle the batches are the rows in order, each row's own values", "[data]") {
    DataLoader<double> loader(numbered(10), {.batch_size = 4});
    CHECK(loader.size() == 3);
    const auto batches = epoch(loader);
    REQUIRE(batches.size() == 3);
    CHECK(batches[0].rows == std::vector<std::size_t>{0, 1, 2, 3});
    CHECK(batches[2].rows == std::vector<std::size_t>{8, 9});  // the last one is short
    for (const auto& b : batches) {
        REQUIRE(b.x.rows() == static_cast<Index>(b.rows.size()));
        for (std::size_t r = 0; r < b.rows.size(); ++r) {
            const auto i = static_cast<double>(b.rows[r]);
            const auto k = static_cast<Index>(r);
            CHECK(b.x(k, 0) == i);
            CHECK(b.x(k, 1) == 10.0 * i);
            CHECK(b.y(k, 0) == -i);
        }
    }
}

TEST_CASE("a shuffled epoch visits every row exactly once, in batches that carry those rows",
          "[data]") {
    DataLoader<double> loader(numbered(23, true), {.batch_size = 5, .shuffle = true, .seed = 7});
    for (int e = 0; e < 3; ++e) {
        const auto batches = epoch(loader);
        REQUIRE(batches.size() == 5);  // 4 of 5 rows and one of 3
        CHECK(batches.back().rows.size() == 3);
        auto rows = order_of(batches);
        for (const auto& b : batches) {
            CHECK(b.y.cols() == 0);
            for (std::size_t r = 0; r < b.rows.size(); ++r) {
                CHECK(b.x(static_cast<Index>(r), 0) == static_cast<double>(b.rows[r]));
                CHECK(b.labels[r] == static_cast<int>(b.rows[r] % 3));
            }
        }
        std::sort(rows.begin(), rows.end());
        CHECK(rows == range(23));
    }
}

TEST_CASE("the same seed gives the same orders, and each epoch has a new one", "[data]") {
    const data::LoaderOptions options{.batch_size = 8, .shuffle = true, .seed = 3};
    DataLoader<double> a(numbered(50), options);
    DataLoader<double> b(numbered(50), options);
    const auto a0 = order_of(epoch(a));
    const auto a1 = order_of(epoch(a));
    CHECK(a0 == order_of(epoch(b)));
    CHECK(a1 == order_of(epoch(b)));
    // 50! orders: two epochs (or two seeds) agreeing by chance has probability ~1e-64.
    CHECK(a0 != a1);
    CHECK(a0 != range(50));
    DataLoader<double> other_seed(numbered(50), {.batch_size = 8, .shuffle = true, .seed = 4});
    CHECK(order_of(epoch(other_seed)) != a0);
    // An epoch's order depends on its number, not on the epochs run before it (resuming).
    DataLoader<double> resumed(numbered(50), options);
    resumed.set_epoch(1);
    CHECK(order_of(epoch(resumed)) == a1);
}

TEST_CASE("drop_last leaves out the short last batch", "[data]") {
    for (const auto& [n, batch, drop, count, last] :
         std::vector<std::tuple<std::size_t, std::size_t, bool, std::size_t, std::size_t>>{
             {10, 4, false, 3, 2},
             {10, 4, true, 2, 4},
             {12, 4, true, 3, 4},
             {3, 4, true, 0, 0},
             {3, 4, false, 1, 3},
             {10, 1000, false, 1, 10},
             {10, 1000, true, 0, 0}}) {
        DataLoader<double> loader(numbered(n), {.batch_size = batch, .drop_last = drop});
        INFO(n << " rows in batches of " << batch << (drop ? ", drop_last" : ""));
        CHECK(loader.size() == count);
        const auto batches = epoch(loader);
        REQUIRE(batches.size() == count);
        if (count > 0) CHECK(batches.back().rows.size() == last);
    }
}

namespace {
// A sampler of the shape a distributed one will have: `rank` of `world` takes every world-th row
// of one shared seeded permutation.
class StrideSampler final : public data::Sampler {
public:
    StrideSampler(std::size_t rank, std::size_t world) : rank_(rank), world_(world) {}
    std::size_t length(std::size_t n) const override {
        return n / world_ + (rank_ < n % world_ ? 1 : 0);
    }
    void fill(std::size_t epoch, std::size_t n, std::span<std::size_t> out) override {
        all_.resize(n);
        data::permutation(99, epoch, all_);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = all_[rank_ + i * world_];
        epochs_seen.push_back(epoch);
    }
    std::vector<std::size_t> epochs_seen;

private:
    std::size_t rank_, world_;
    std::vector<std::size_t> all_;
};

class OutOfRangeSampler final : public data::Sampler {
public:
    std::size_t length(std::size_t) const override { return 2; }
    void fill(std::size_t, std::size_t n, std::span<std::size_t> out) override {
        out[0] = 0;
        out[1] = n;
    }
};
}  // namespace

TEST_CASE("a custom sampler decides the rows: three shards cover the dataset disjointly",
          "[data]") {
    std::vector<std::shared_ptr<StrideSampler>> samplers;
    std::vector<std::size_t> all;
    for (std::size_t rank = 0; rank < 3; ++rank) {
        samplers.push_back(std::make_shared<StrideSampler>(rank, 3));
        DataLoader<double> loader(numbered(11), {.batch_size = 2, .sampler = samplers.back()});
        const auto rows = order_of(epoch(loader));
        CHECK(rows.size() == (rank < 2 ? 4U : 3U));  // 11 = 4 + 4 + 3
        all.insert(all.end(), rows.begin(), rows.end());
        (void)epoch(loader);
        CHECK(samplers.back()->epochs_seen == std::vector<std::size_t>{0, 1});
    }
    std::sort(all.begin(), all.end());
    CHECK(all == range(11));

    REQUIRE_THROWS_MATCHES(
        DataLoader<double>(numbered(4), {.shuffle = true, .sampler = samplers[0]}), value_error,
        MessageContains("cannot be combined"));
    DataLoader<double> bad(numbered(4), {.sampler = std::make_shared<OutOfRangeSampler>()});
    REQUIRE_THROWS_MATCHES(epoch(bad), value_error,
                           MessageContains({"row 4 at position 1", "has 4 rows"}));
}

TEST_CASE("DistributedSampler: equal shards, disjoint when dropping, every row when padding",
          "[data][distributed]") {
    using Uneven = data::DistributedSampler::Uneven;
    for (const std::size_t world : {1U, 2U, 3U, 4U}) {
        for (const std::size_t n : {0U, 1U, 7U, 12U}) {
            for (const Uneven uneven : {Uneven::pad, Uneven::drop}) {
                for (const bool shuffle : {false, true}) {
                    std::vector<std::size_t> visits(n, 0);
                    std::vector<std::vector<std::size_t>> epoch_three;
                    for (std::size_t rank = 0; rank < world; ++rank) {
                        data::DistributedSampler sampler(
                            {.rank = rank, .world_size = world, .shuffle = shuffle, .seed = 5,
                             .uneven = uneven});
                        const std::size_t length = sampler.length(n);
                        CHECK(length == (uneven == Uneven::pad ? (n + world - 1) / world
                                                               : n / world));
                        std::vector<std::size_t> shard(length);
                        sampler.fill(3, n, shard);
                        for (const std::size_t row : shard) {
                            REQUIRE(row < n);
                            ++visits[row];
                        }
                        epoch_three.push_back(shard);
                    }
                    const std::size_t total = std::accumulate(visits.begin(), visits.end(),
                                                              std::size_t{0});
                    CHECK(total == world * (uneven == Uneven::pad ? (n + world - 1) / world
                                                                  : n / world));
                    for (const std::size_t v : visits) {
                        // Dropping: each row at most once; padding: each row at least once,
                        // and at most twice when there are at least as many rows as ranks.
                        if (uneven == Uneven::drop) CHECK(v <= 1);
                        if (uneven == Uneven::pad) CHECK(v >= 1);
                        if (uneven == Uneven::pad && n >= world) CHECK(v <= 2);
                    }
                    // The shards are a function of (seed, epoch): a second sampler agrees.
                    data::DistributedSampler again(
                        {.rank = 0, .world_size = world, .shuffle = shuffle, .seed = 5,
                         .uneven = uneven});
                    std::vector<std::size_t> shard(again.length(n));
                    again.fill(3, n, shard);
                    CHECK(shard == epoch_three[0]);
                }
            }
        }
    }
    // Without shuffling, rank r of w takes rows r, r + w, ...: PyTorch's DistributedSampler.
    data::DistributedSampler second({.rank = 1, .world_size = 3, .shuffle = false});
    DataLoader<double> loader(numbered(7), {.batch_size = 2, .sampler =
                                                std::make_shared<data::DistributedSampler>(second)});
    CHECK(order_of(epoch(loader)) == std::vector<std::size_t>{1, 4, 0});  // 7 pads with row 0

    // Epochs differ when shuffling, and the ranks of one epoch share its permutation.
    data::DistributedSampler shuffled({.rank = 0, .world_size = 2, .seed = 1});
    std::vector<std::size_t> e0(50), e1(50);
    shuffled.fill(0, 100, e0);
    shuffled.fill(1, 100, e1);
    CHECK(e0 != e1);

    REQUIRE_THROWS_MATCHES(data::DistributedSampler({.rank = 2, .world_size = 2}), value_error,
                           MessageContains("rank 2 is not below world_size 2"));
    REQUIRE_THROWS_MATCHES(data::DistributedSampler({.world_size = 0}), value_error,
                           MessageContains("world_size must be at least 1"));
}

namespace {

// |count - n p| within 5 standard errors of a binomial(n, p) count: a correct sampler fails
// one check in about 1.7 million.
void check_binomial(std::size_t count, std::size_t n, double p) {
    const double expected = static_cast<double>(n) * p;
    const double sd = std::sqrt(static_cast<double>(n) * p * (1.0 - p));
    INFO("count " << count << ", expected " << expected << " +- " << sd);
    CHECK(std::abs(static_cast<double>(count) - expected) <= 5.0 * sd);
}

}  // namespace

TEST_CASE("WeightedRandomSampler draws rows in proportion to their weights, never a weight of 0",
          "[data][weighted]") {
    const std::vector<double> weights{1.0, 2.0, 0.0, 3.0, 4.0};  // total 10
    data::WeightedRandomSampler sampler(weights, {.num_samples = 100000, .seed = 7});
    std::vector<std::size_t> rows(sampler.length(5));
    sampler.fill(0, 5, rows);
    std::vector<std::size_t> count(5, 0);
    for (const std::size_t row : rows) ++count.at(row);
    for (std::size_t i = 0; i < 5; ++i) check_binomial(count[i], rows.size(), weights[i] / 10.0);
    CHECK(count[2] == 0);

    // Only the ratios matter, at either end of the range of doubles: equal weights near the
    // largest double (whose sum overflows) or subnormal ones draw each row half the time.
    for (const double w : {1e308, 5e-324}) {
        INFO("weights " << w);
        data::WeightedRandomSampler extreme(std::vector<double>{w, w}, {.num_samples = 10000});
        std::vector<std::size_t> drawn(10000);
        extreme.fill(0, 2, drawn);
        check_binomial(static_cast<std::size_t>(std::count(drawn.begin(), drawn.end(), 0U)),
                       drawn.size(), 0.5);
    }

    // A function of (seed, epoch): another sampler agrees, the next epoch differs.
    data::WeightedRandomSampler again(weights, {.num_samples = 100000, .seed = 7});
    std::vector<std::size_t> same(rows.size()), next(rows.size());
    again.fill(0, 5, same);
    again.fill(1, 5, next);
    CHECK(same == rows);
    CHECK(next != rows);

    // In a loader: an epoch is num_samples rows (0: one per weight), the batches carry them.
    DataLoader<double> loader(numbered(5),
                              {.batch_size = 2,
                               .sampler = std::make_shared<data::WeightedRandomSampler>(
                                   weights, data::WeightedSamplerOptions{.seed = 1})});
    const auto batches = epoch(loader);
    CHECK(order_of(batches).size() == 5);
    for (const auto& b : batches) {
        for (std::size_t k = 0; k < b.rows.size(); ++k) {
            CHECK(b.rows[k] != 2);
            CHECK(b.x(static_cast<Index>(k), 0) == static_cast<double>(b.rows[k]));
        }
    }
}

TEST_CASE(
    "WeightedRandomSampler without replacement draws as torch.multinomial: one weighted "
    "draw after another",
    "[data][weighted]") {
    const std::vector<double> weights{1.0, 2.0, 0.0, 3.0, 4.0};
    const std::vector<double> p{0.1, 0.2, 0.0, 0.3, 0.4};
    data::WeightedRandomSampler sampler(weights, {.num_samples = 4, .replacement = false});
    constexpr std::size_t epochs = 20000;
    std::vector<std::size_t> first(5, 0), second(5, 0);
    std::vector<std::size_t> rows(4);
    for (std::size_t e = 0; e < epochs; ++e) {
        sampler.fill(e, 5, rows);
        auto sorted = rows;
        std::sort(sorted.begin(), sorted.end());
        REQUIRE(sorted == std::vector<std::size_t>{0, 1, 3, 4});  // each positive row once
        ++first[rows[0]];
        ++second[rows[1]];
    }
    // The first row is drawn with p_i; the second with sum over i != j of p_i p_j / (1 - p_i).
    for (std::size_t j = 0; j < 5; ++j) {
        double p_second = 0.0;
        for (std::size_t i = 0; i < 5; ++i) {
            if (i != j) p_second += p[i] * p[j] / (1.0 - p[i]);
        }
        check_binomial(first[j], epochs, p[j]);
        check_binomial(second[j], epochs, p_second);
    }
    // A subnormal weight is still a weight: drawn (last), never the row of weight 0 instead.
    data::WeightedRandomSampler tiny(std::vector<double>{5e-324, 0.0, 1.0},
                                     {.num_samples = 2, .replacement = false});
    std::vector<std::size_t> two(2);
    for (std::size_t e = 0; e < 100; ++e) {
        tiny.fill(e, 3, two);
        CHECK(two == std::vector<std::size_t>{2, 0});
    }
    REQUIRE_THROWS_MATCHES(
        data::WeightedRandomSampler(weights, {.num_samples = 5, .replacement = false}), value_error,
        MessageContains("cannot draw 5 rows without replacement: only 4 of the 5 weights"));
}

TEST_CASE("class_balancing_weights make a 9:1 dataset's batches half of each class",
          "[data][weighted]") {
    std::vector<int> labels(100, 0);
    for (std::size_t i = 90; i < 100; ++i) labels[i] = 1;
    const auto weights = data::class_balancing_weights(labels);
    CHECK(weights.front() == Approx(1.0 / 90.0));
    CHECK(weights.back() == Approx(1.0 / 10.0));
    DataLoader<double> loader(TensorDataset<double>(Matrix<double>::Zero(100, 1), labels),
                              {.batch_size = 25,
                               .sampler = std::make_shared<data::WeightedRandomSampler>(
                                   weights, data::WeightedSamplerOptions{.seed = 3})});
    std::size_t minority = 0, drawn = 0;
    for (int e = 0; e < 20; ++e) {
        for (const auto& b : loader) {
            for (const int label : b.labels) minority += label == 1 ? 1 : 0;
            drawn += b.labels.size();
        }
    }
    CHECK(drawn == 2000);
    check_binomial(minority, drawn, 0.5);
    REQUIRE_THROWS_MATCHES(data::class_balancing_weights({0, -1}), value_error,
                           MessageContains("label -1 at row 1 is negative"));
}

TEST_CASE("WeightedRandomSampler refuses weights it cannot draw from, naming them",
          "[data][weighted][errors]") {
    REQUIRE_THROWS_MATCHES(data::WeightedRandomSampler(std::vector<double>{1.0, -1.0}), value_error,
                           MessageContains("weight 1 is -1; weights must be finite and >= 0"));
    REQUIRE_THROWS_MATCHES(data::WeightedRandomSampler(std::vector<double>{1.0, std::nan("")}),
                           value_error, MessageContains("weight 1 is nan"));
    REQUIRE_THROWS_MATCHES(data::WeightedRandomSampler(std::vector<double>{0.0, 0.0}), value_error,
                           MessageContains("all 2 weights are 0"));
    REQUIRE_THROWS_MATCHES(data::WeightedRandomSampler(std::vector<double>{}), value_error,
                           MessageContains("no weights"));
    REQUIRE_THROWS_MATCHES(
        data::WeightedRandomSampler(std::vector<double>{1.0, 0.0}, {.replacement = false}),
        value_error,
        MessageContains("cannot draw 2 rows without replacement (num_samples 0: one per weight): "
                        "only 1 of the 2 weights"));
    REQUIRE_THROWS_MATCHES(data::class_balancing_weights({}), value_error,
                           MessageContains("no labels"));
    // One weight per row: a loader over a dataset of another size says so when it is built.
    REQUIRE_THROWS_MATCHES(
        DataLoader<double>(numbered(6), {.sampler = std::make_shared<data::WeightedRandomSampler>(
                                             std::vector<double>(5, 1.0))}),
        value_error, MessageContains("5 weights for a dataset of 6 rows"));
}

TEST_CASE("prefetch gives the same batches as no prefetch, bit for bit", "[data]") {
    for (const bool shuffle : {false, true}) {
        DataLoader<double> plain(numbered(37, true),
                                 {.batch_size = 4, .shuffle = shuffle, .seed = 5});
        DataLoader<double> ahead(
            numbered(37, true), {.batch_size = 4, .shuffle = shuffle, .seed = 5, .prefetch = true});
        for (int e = 0; e < 4; ++e) {
            const auto p = epoch(plain);
            const auto a = epoch(ahead);
            REQUIRE(p.size() == a.size());
            for (std::size_t i = 0; i < p.size(); ++i) {
                CHECK(p[i].rows == a[i].rows);
                CHECK(p[i].x == a[i].x);
                CHECK(p[i].labels == a[i].labels);
            }
        }
    }
}

TEST_CASE("leaving an epoch early, or destroying a prefetching loader mid-epoch, is clean",
          "[data]") {
    DataLoader<double> loader(numbered(40), {.batch_size = 3, .shuffle = true, .prefetch = true});
    for (const auto& b : loader) {
        if (b.number == 2) break;
    }
    // The next epoch starts from its first batch and is whole.
    const auto rows = order_of(epoch(loader));
    CHECK(rows.size() == 40);
    // A second iteration while the first is live is refused.
    auto it = loader.begin();
    REQUIRE_THROWS_MATCHES(loader.begin(), value_error, MessageContains("already being iterated"));
    ++it;
    {
        auto moved = std::move(it);  // the live iteration moves; the old iterator ends nothing
    }
    CHECK(order_of(epoch(loader)).size() == 40);
    // Destroyed with the worker waiting on a slot: the destructor joins it (a hang fails).
    auto doomed = std::make_unique<DataLoader<double>>(
        numbered(100), data::LoaderOptions{.batch_size = 2, .prefetch = true});
    {
        auto first = doomed->begin();
        CHECK((*first).size() == 2);
    }
    doomed.reset();
}

TEST_CASE("an empty dataset gives no batches", "[data]") {
    DataLoader<double> loader(TensorDataset<double>(Matrix<double>(0, 3), Matrix<double>(0, 1)),
                              {.batch_size = 4, .prefetch = true});
    CHECK(loader.size() == 0);
    CHECK(epoch(loader).empty());
}

// ---------------------------------------------------------------------------------------------
// Splits
// ---------------------------------------------------------------------------------------------

TEST_CASE("a split has the documented sizes, covers every row once and follows its seed",
          "[data]") {
    const auto parts = data::split_indices(100, {.validation = 0.15, .test = 0.25, .seed = 3});
    CHECK(parts.test.size() == 25);
    CHECK(parts.validation.size() == 15);
    CHECK(parts.train.size() == 60);
    std::vector<std::size_t> all;
    for (const auto* p : {&parts.train, &parts.validation, &parts.test}) {
        CHECK(std::is_sorted(p->begin(), p->end()));
        all.insert(all.end(), p->begin(), p->end());
    }
    std::sort(all.begin(), all.end());
    CHECK(all == range(100));
    const auto again = data::split_indices(100, {.validation = 0.15, .test = 0.25, .seed = 3});
    CHECK(again.test == parts.test);
    const auto other = data::split_indices(100, {.validation = 0.15, .test = 0.25, .seed = 4});
    CHECK(other.test != parts.test);
    // 0.25 of 10 is 2.5, rounded up to 3; 0.15 of 10 is 1.5, rounded up to 2.
    const auto small = data::split_indices(10, {.validation = 0.15, .test = 0.25});
    CHECK(small.test.size() == 3);
    CHECK(small.validation.size() == 2);
    REQUIRE_THROWS_MATCHES(data::split_indices(10, {.test = 1.0}), value_error,
                           MessageContains("test must be a fraction in [0, 1)"));
    REQUIRE_THROWS_MATCHES(data::split_indices(2, {.validation = 0.5, .test = 0.5}), value_error,
                           MessageContains("leave none for training"));
}

TEST_CASE("a stratified split takes round(fraction x class size) of each class", "[data]") {
    // Classes of 10, 7 and 3 rows.
    std::vector<int> labels;
    for (int c = 0; c < 3; ++c) labels.insert(labels.end(), std::vector<int>{10, 7, 3}[c], c);
    const auto parts =
        data::split_indices(labels, {.validation = 0.2, .test = 0.3, .seed = 1, .stratify = true});
    const auto count = [&](const std::vector<std::size_t>& rows, int c) {
        return std::count_if(rows.begin(), rows.end(),
                             [&](std::size_t r) { return labels[r] == c; });
    };
    // test: round(3.0) = 3, round(2.1) = 2, round(0.9) = 1; validation: 2, round(1.4) = 1,
    // round(0.6) = 1; train: the rest.
    CHECK(count(parts.test, 0) == 3);
    CHECK(count(parts.test, 1) == 2);
    CHECK(count(parts.test, 2) == 1);
    CHECK(count(parts.validation, 0) == 2);
    CHECK(count(parts.validation, 1) == 1);
    CHECK(count(parts.validation, 2) == 1);
    CHECK(count(parts.train, 0) == 5);
    CHECK(count(parts.train, 1) == 4);
    CHECK(count(parts.train, 2) == 1);

    const auto datasets = data::split(numbered(30, true), {.test = 0.2, .stratify = true});
    CHECK(datasets.test.size() == 6);  // 10 rows of each class, 2 of each
    for (std::size_t i = 0; i < datasets.test.size(); ++i) {
        const auto row =
            static_cast<std::size_t>(datasets.test.features()(static_cast<Index>(i), 0));
        CHECK(datasets.test.labels()[i] == static_cast<int>(row % 3));  // rows keep their labels
    }
    REQUIRE_THROWS_MATCHES(data::split(numbered(30), {.test = 0.2, .stratify = true}), value_error,
                           MessageContains("stratify needs a dataset of class labels"));
}

// ---------------------------------------------------------------------------------------------
// Scalers
// ---------------------------------------------------------------------------------------------

TEST_CASE("StandardScaler and MinMaxScaler compute their maps by hand", "[data]") {
    Matrix<double> train(4, 3);
    train << 1, 10, 5,  //
        2, 20, 5,       //
        3, 30, 5,       //
        6, 40, 5;
    data::StandardScaler<double> standard;
    standard.fit(train);
    // Column 0: mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5.
    CHECK(standard.mean()(0, 0) == 3.0);
    CHECK(standard.scale()(0, 0) == Approx(std::sqrt(3.5)).epsilon(1e-15));
    CHECK(standard.mean()(0, 1) == 25.0);
    CHECK(standard.scale()(0, 1) == Approx(std::sqrt(125.0)).epsilon(1e-15));
    CHECK(standard.scale()(0, 2) == 1.0);  // a constant column is not divided by zero
    const Matrix<double> z = standard.transform(train);
    CHECK(z(3, 0) == Approx(3.0 / std::sqrt(3.5)).epsilon(1e-15));
    CHECK(z.col(2).isZero());
    CHECK(all_close(z.colwise().mean(), Matrix<double>::Zero(1, 3), 0, 1e-15));
    CHECK(all_close(standard.inverse_transform(z), train, 1e-15, 1e-15));

    data::MinMaxScaler<double> minmax(-1.0, 1.0);
    minmax.fit(train);
    const Matrix<double> m = minmax.transform(train);
    // Column 0: (x - 1) / 5 * 2 - 1.
    CHECK(m(0, 0) == -1.0);
    CHECK(m(1, 0) == Approx(-0.6).epsilon(1e-15));
    CHECK(m(3, 0) == 1.0);
    CHECK(m(2, 1) == Approx(1.0 / 3.0).epsilon(1e-15));
    CHECK(m(0, 2) == -1.0);  // constant: mapped to low
    CHECK(all_close(minmax.inverse_transform(m), train, 1e-15, 1e-15));

    REQUIRE_THROWS_MATCHES(standard.transform(Matrix<double>::Zero(2, 2)), shape_error,
                           MessageContains("fitted on 3 columns, got [2x2]"));
    REQUIRE_THROWS_MATCHES(data::StandardScaler<double>().transform(train), value_error,
                           MessageContains("transform before fit"));
    Matrix<double> holed = train;
    holed(2, 1) = std::nan("");
    REQUIRE_THROWS_MATCHES(standard.fit(holed), value_error,
                           MessageContains("column 1, row 2 is nan"));
    REQUIRE_THROWS_MATCHES(data::MinMaxScaler<double>(1.0, 1.0), value_error,
                           MessageContains("low < high"));
}

TEST_CASE("a scaler fitted on the training split sees nothing of the validation split", "[data]") {
    // Validation rows far outside the training range: had they been fitted on, the training
    // rows would map into a narrow band and the validation rows into [0, 1].
    const auto dataset = numbered(40);
    const auto parts = data::split(dataset, {.validation = 0.25, .seed = 2});
    Matrix<double> validation = parts.validation.features();
    validation.array() += 1000.0;
    data::MinMaxScaler<double> scaler;
    scaler.fit(parts.train.features());
    const Matrix<double> train_scaled = scaler.transform(parts.train.features());
    CHECK(train_scaled.minCoeff() == 0.0);
    CHECK(train_scaled.maxCoeff() == 1.0);
    CHECK(scaler.min() == parts.train.features().colwise().minCoeff());
    // At least 1000 / 390 (column 1 spans at most 0..390): far above the 1 a fit on these rows
    // would give them.
    CHECK(scaler.transform(validation).minCoeff() > 2.5);
    // Fitting again on training rows alone gives the same map, whatever validation holds.
    data::MinMaxScaler<double> refit;
    refit.fit(parts.train.features());
    CHECK(refit.scale() == scaler.scale());
}

TEST_CASE("a scaler travels in a checkpoint's metadata and transforms bit for bit after loading",
          "[data]") {
    auto net = mlp<float>({.widths = {3, 4, 2}, .seed = 1});
    const Matrix<float> train = (normal(50, 3, 8) * 7.0).array().cast<float>() + 3.0F;
    const Matrix<float> other = normal(9, 3, 9).cast<float>() * 11.0F;
    data::StandardScaler<float> standard;
    standard.fit(train);
    data::MinMaxScaler<float> minmax(-2.0, 3.0);
    minmax.fit(train);
    auto metadata = standard.metadata();
    metadata.merge(minmax.metadata("input_minmax."));  // two scalers under two prefixes
    const auto bytes = save_checkpoint_to_bytes(*net, {.metadata = metadata});

    auto restored_net = mlp<float>({.widths = {3, 4, 2}, .seed = 2});
    const LoadReport report = load_checkpoint_from_bytes(bytes, *restored_net);
    const auto s = data::StandardScaler<float>::from_metadata(report.metadata);
    const auto m = data::MinMaxScaler<float>::from_metadata(report.metadata, "input_minmax.");
    CHECK(s.transform(other) == standard.transform(other));
    CHECK(m.transform(other) == minmax.transform(other));
    CHECK(m.offset() == -2.0F);

    REQUIRE_THROWS_MATCHES(
        data::MinMaxScaler<float>::from_metadata(report.metadata), value_error,
        MessageContains("'scaler.kind' is 'StandardScaler', not 'MinMaxScaler'"));
    auto broken = report.metadata;
    broken["scaler.scale"] = "1,x,2";
    REQUIRE_THROWS_MATCHES(data::StandardScaler<float>::from_metadata(broken), value_error,
                           MessageContains("'scaler.scale' is '1,x,2'"));
    broken["scaler.scale"] = "1,2";
    REQUIRE_THROWS_MATCHES(data::StandardScaler<float>::from_metadata(broken), value_error,
                           MessageContains("3 centers, 2 scales"));
    REQUIRE_THROWS_MATCHES(data::StandardScaler<float>::from_metadata({}), value_error,
                           MessageContains("no 'scaler.kind'"));
}

// PyTorch's DataLoader keywords in its order (batch_size, shuffle, sampler, drop_last, then the
// generator, here a seed, and prefetching): designated initialisers must follow the declaration
// order, so this compiles only while LoaderOptions keeps it.
TEST_CASE("loader options take their fields in PyTorch's keyword order", "[data][options]") {
    const data::LoaderOptions options{.batch_size = 4,
                                      .shuffle = false,
                                      .sampler = nullptr,
                                      .drop_last = true,
                                      .seed = 3,
                                      .prefetch = true};
    DataLoader<double> loader(numbered(10), options);
    CHECK(loader.size() == 2);  // 10 rows in batches of 4, the short last one dropped
}
