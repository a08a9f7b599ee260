// The data pipeline: TensorDataset, DataLoader (batches, shuffling, drop_last, samplers,
// prefetch), splits and scalers. Datasets are small and their rows hold their own index, so a
// batch says which rows it carries.
#include "support/testing.hpp"

#include <gradscope/data.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
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
             {3, 4, false, 1, 3}}) {
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
