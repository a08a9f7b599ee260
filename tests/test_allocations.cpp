// A steady-state training step must not touch the heap. This executable replaces the global
// allocation functions (operator new, and glibc's malloc family, which Eigen uses) with
// counting ones, and trains an MLP with batch norm and residual blocks: steps 3 to 10 must
// allocate nothing, and so must a step watched by a GradientMonitor in per-sample mode once its
// history is full. A DataLoader, with and without shuffle and prefetch, must allocate nothing
// after its first batch (so must one drawing with a WeightedRandomSampler), and a training epoch
// fed by it nothing after the first epoch.
#include "support/testing.hpp"

#include <gradscope/data.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define GRADSCOPE_COUNTING_ALLOCATOR 0  // the sanitizer owns malloc and new
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRADSCOPE_COUNTING_ALLOCATOR 0
#endif
#endif
#ifndef GRADSCOPE_COUNTING_ALLOCATOR
#define GRADSCOPE_COUNTING_ALLOCATOR 1
#endif

namespace {
std::atomic<long> allocations{0};
}

#if GRADSCOPE_COUNTING_ALLOCATOR
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, size);
}
}

void* operator new(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = __libc_malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, std::align_val_t align) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    const auto a = static_cast<std::size_t>(align);
    if (void* p = __libc_memalign(a, size == 0 ? a : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) { return operator new(size, align); }
// These deletes free what the replaced operator new above took from malloc, which is the
// right pairing; GCC only sees `free` meeting a pointer from `new` and warns.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif

using namespace gradscope;
using namespace gradscope::testing;

namespace {
// An MLP of residual blocks with `norm`, trained by Adam on one batch of 32 rows and 10 classes.
struct ResidualTraining {
    std::shared_ptr<MLP<float>> net;
    std::vector<TensorF> params;
    Adam<float> optimizer;
    TensorF x;
    std::vector<int> labels;

    ResidualTraining(std::vector<Index> widths, Normalization norm)
        : net(mlp<float>({.widths = std::move(widths),
                          .activation = ReLU{},
                          .init = init::he_normal(),
                          .norm = norm,
                          .residual = true,
                          .seed = 1})),
          params(net->parameters()),
          optimizer(params, {.lr = 1e-3}),
          x(TensorF::constant(normal(32, 32, 2).cast<float>())),
          labels(32) {
        for (int i = 0; i < 32; ++i) labels[static_cast<std::size_t>(i)] = i % 10;
    }

    // One step; clip_norm > 0 clips the gradients' norm first.
    void step(double clip_norm = 0.0) {
        auto loss = cross_entropy((*net)(x), labels);
        optimizer.zero_grad();
        loss.backward();
        if (clip_norm > 0.0) clip_grad_norm(params, clip_norm);
        optimizer.step();
    }
};
}  // namespace

TEST_CASE("training steps 3 to 10 of an MLP with batch norm and residual blocks allocate nothing",
          "[allocations]") {
    if (!GRADSCOPE_COUNTING_ALLOCATOR) {
        WARN("built with a sanitizer, which owns the allocator: allocations are not counted here");
        return;
    }
    ResidualTraining training({32, 64, 64, 64, 10}, Normalization::batch);
    long during = -1;
    for (int step = 1; step <= 10; ++step) {
        if (step == 3) allocations.store(0);
        training.step(5.0);
        if (step == 10) during = allocations.load();
    }
    CHECK(during == 0);

    // The counter does count: the first step of a new network allocates.
    allocations.store(0);
    auto fresh = mlp<float>({.widths = {32, 16, 10}, .seed = 3});
    (void)cross_entropy((*fresh)(training.x), training.labels);
    CHECK(allocations.load() > 0);
}

TEST_CASE("a monitored step allocates nothing once the history is full, per-sample mode on",
          "[allocations][per_sample]") {
    if (!GRADSCOPE_COUNTING_ALLOCATOR) {
        WARN("built with a sanitizer, which owns the allocator: allocations are not counted here");
        return;
    }
    // LayerNorm and residual blocks, 11 Linears (names past the short-string length); the
    // hidden Linears take g_i^T g_bar in the Gram form, the output layer through the mean
    // gradient (diag/per_sample_reduction.hpp), so both forms run.
    ResidualTraining training({32, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 10},
                              Normalization::layer);
    for (const bool gsnr : {true, false}) {
        INFO("gsnr " << gsnr);
        diag::GradientMonitor<float> monitor(
            *training.net, {.keep_last = 4,
                   .select = diag::GradientMonitor<float>::linear_or_layer_norm,
                   .per_sample = {.enabled = true, .gsnr = gsnr, .every = 2}});
        long during = -1;
        for (int step = 1; step <= 12; ++step) {
            if (step == 7) allocations.store(0);  // the history is full after step 4
            training.step();
            if (step == 12) during = allocations.load();
        }
        CHECK(during == 0);
        REQUIRE(monitor.history().size() == 4);
        // The record of step 11 (index 10, measured: every second step from 0) is complete.
        const diag::GradientProfile& last_measured = monitor.history()[2];
        REQUIRE(last_measured.step() == 10);
        CHECK(std::isfinite(last_measured.per_sample_network().gradient_noise_scale));
        CHECK(std::isfinite(last_measured.layers().back().gsnr) == gsnr);
        CHECK(monitor.last().layers().front().per_sample_sq_norms.empty());  // step 12: skipped
    }
}

namespace {
// 30 rows of 32 features with class labels, so batches of 8 leave a short last batch of 6.
data::TensorDataset<float> labelled_rows() {
    std::vector<int> labels(30);
    for (int i = 0; i < 30; ++i) labels[static_cast<std::size_t>(i)] = i % 10;
    return data::TensorDataset<float>(normal(30, 32, 4).cast<float>(), labels);
}

// Three epochs over the loader; the allocations after its first batch (reading every batch, so
// that the loop cannot be skipped).
long allocations_after_first_batch(data::DataLoader<float>& loader) {
    double checksum = 0.0;
    std::size_t batches = 0;
    for (int epoch = 0; epoch < 3; ++epoch) {
        for (const auto& batch : loader) {
            checksum += static_cast<double>(batch.x.sum()) + batch.labels[0];
            if (++batches == 1) allocations.store(0);
        }
    }
    const long after_first = allocations.load();
    CHECK(batches == 12);
    CHECK(checksum != 0.0);
    return after_first;
}
}  // namespace

TEST_CASE("a DataLoader allocates nothing after its first batch, with or without shuffle",
          "[allocations]") {
    if (!GRADSCOPE_COUNTING_ALLOCATOR) {
        WARN("built with a sanitizer, which owns the allocator: allocations are not counted here");
        return;
    }
    for (const bool shuffle : {false, true}) {
        for (const bool prefetch : {false, true}) {
            INFO((shuffle ? "shuffle" : "in order") << (prefetch ? ", prefetch" : ""));
            data::DataLoader<float> loader(
                labelled_rows(),
                {.batch_size = 8, .shuffle = shuffle, .seed = 2, .prefetch = prefetch});
            CHECK(allocations_after_first_batch(loader) == 0);
        }
    }
}

TEST_CASE("a DataLoader with a WeightedRandomSampler allocates nothing after its first batch",
          "[allocations]") {
    if (!GRADSCOPE_COUNTING_ALLOCATOR) {
        WARN("built with a sanitizer, which owns the allocator: allocations are not counted here");
        return;
    }
    const auto rows = labelled_rows();
    for (const bool replacement : {true, false}) {
        INFO((replacement ? "with replacement" : "without replacement"));
        data::DataLoader<float> loader(
            rows, {.batch_size = 8,
                   .sampler = std::make_shared<data::WeightedRandomSampler>(
                       data::class_balancing_weights(rows.labels()),
                       data::WeightedSamplerOptions{.replacement = replacement, .seed = 3})});
        CHECK(allocations_after_first_batch(loader) == 0);
    }
}

TEST_CASE("training epochs 2 and 3 fed by a shuffling, prefetching DataLoader allocate nothing",
          "[allocations]") {
    if (!GRADSCOPE_COUNTING_ALLOCATOR) {
        WARN("built with a sanitizer, which owns the allocator: allocations are not counted here");
        return;
    }
    auto net = mlp<float>({.widths = {32, 16, 10}, .activation = ReLU{}, .seed = 5});
    const auto params = net->parameters();
    Adam<float> optimizer(params, {.lr = 1e-3});
    data::DataLoader<float> loader(labelled_rows(),
                                   {.batch_size = 8, .shuffle = true, .seed = 1, .prefetch = true});
    for (int epoch = 1; epoch <= 3; ++epoch) {
        if (epoch == 2) allocations.store(0);
        for (const auto& batch : loader) {
            auto loss = cross_entropy((*net)(TensorF::constant(batch.x)), batch.labels);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
    }
    CHECK(allocations.load() == 0);
}
