// The tensor and the graph: leaves and constants, accumulation, no-grad, detach, backward
// once (and twice when asked), hooks, the errors a user meets, and buffer reuse.
#include "support/testing.hpp"

#include <set>

using namespace gradscope;
using namespace gradscope::testing;

TEST_CASE("parameters take gradients and constants do not", "[tensor]") {
    const auto w = param(2, 3, 1);
    const auto x = TensorD::constant(normal(2, 3, 2));
    CHECK(w.requires_grad());
    CHECK(w.is_leaf());
    CHECK_FALSE(x.requires_grad());
    auto loss = sum(w * x);
    CHECK_FALSE(loss.is_leaf());
    loss.backward();
    CHECK(all_close(w.grad(), x.value()));
    CHECK_FALSE(x.has_grad());
    CHECK_THROWS_WITH(x.grad(), Catch::Contains("does not require grad"));
}

TEST_CASE("gradients accumulate on leaves until zeroed", "[tensor]") {
    auto w = param(2, 2, 3);
    for (int i = 0; i < 3; ++i) sum(w * 2.0).backward();
    CHECK(all_close(w.grad(), Matrix<double>::Constant(2, 2, 6.0)));
    w.zero_grad();
    CHECK(all_close(w.grad(), Matrix<double>::Zero(2, 2)));
    sum(w).backward();
    CHECK(all_close(w.grad(), Matrix<double>::Ones(2, 2)));
    w.clear_grad();
    CHECK_FALSE(w.has_grad());
}

TEST_CASE("a tensor used twice receives the sum of both paths", "[tensor]") {
    const auto x = param(1, 1, 4);
    const double v = x.item();
    auto y = x * x + x * 3.0;  // dy/dx = 2x + 3
    y.backward();
    CHECK(x.grad()(0, 0) == Approx(2 * v + 3));
}

TEST_CASE("backward without a seed needs a 1x1 result", "[tensor][errors]") {
    auto y = param(2, 2, 5) * 2.0;
    CHECK_THROWS_AS(y.backward(), graph_error);
    CHECK_THROWS_WITH(y.backward(), Catch::Contains("[2x2]") && Catch::Contains("seed"));
}

TEST_CASE("backward with a seed backpropagates a tensor of any shape", "[tensor]") {
    const auto w = param(2, 3, 6);
    auto y = w * 5.0;
    Matrix<double> seed = normal(2, 3, 7);
    y.backward(seed);
    CHECK(all_close(w.grad(), 5.0 * seed));
    auto z = w * 5.0;
    CHECK_THROWS_AS(z.backward(Matrix<double>::Ones(3, 2)), shape_error);
}

TEST_CASE("a NaN or infinite seed is refused", "[tensor][errors]") {
    auto y = param(1, 2, 8) * 1.0;
    Matrix<double> seed(1, 2);
    seed << 1.0, std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(y.backward(seed), numeric_error);
    seed << 1.0, std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(y.backward(seed), Catch::Contains("NaN or an infinity"));
}

TEST_CASE("a second backward through freed buffers is a clear error", "[tensor][errors]") {
    const auto w = param(2, 2, 9);
    auto loss = sum(tanh(w));
    loss.backward();
    CHECK_THROWS_AS(loss.backward(), graph_error);
    CHECK_THROWS_WITH(loss.backward(), Catch::Contains("retain_graph"));

    // A second root that shares the freed part of the graph is refused too.
    auto shared = tanh(w);
    auto first = sum(shared);
    auto second = mean(shared);
    first.backward();
    CHECK_THROWS_WITH(second.backward(), Catch::Contains("already freed"));
}

TEST_CASE("retain_graph allows backpropagating twice", "[tensor]") {
    const auto w = param(2, 2, 10);
    auto loss = sum(tanh(w));
    loss.backward({.retain_graph = true});
    const Matrix<double> once = w.grad();
    loss.backward();
    CHECK(all_close(w.grad(), 2.0 * once));
}

TEST_CASE("values stay readable after backward frees the graph", "[tensor]") {
    const auto w = param(3, 2, 11);
    auto logits = w * 2.0;
    auto loss = sum(logits);
    loss.backward();
    CHECK(all_close(logits.value(), 2.0 * w.value()));
    CHECK(loss.item() == Approx(2.0 * w.value().sum()));
}

TEST_CASE("no-grad scopes record no graph", "[tensor]") {
    const auto w = param(2, 2, 12);
    {
        NoGradGuard guard;
        CHECK_FALSE(is_grad_enabled());
        auto y = tanh(w) * 3.0;
        CHECK_FALSE(y.requires_grad());
        CHECK(y.is_leaf());
        CHECK_THROWS_AS(sum(y).backward(), graph_error);
    }
    CHECK(is_grad_enabled());
    CHECK(tanh(w).requires_grad());
}

TEST_CASE("detach copies the value and cuts the graph", "[tensor]") {
    const auto w = param(2, 2, 13);
    auto y = w * 3.0;
    auto d = y.detach();
    CHECK_FALSE(d.requires_grad());
    CHECK(all_close(d.value(), y.value()));
    auto loss = sum(d * w);  // only the direct path to w remains
    loss.backward();
    CHECK(all_close(w.grad(), 3.0 * w.value()));
}

TEST_CASE("retain_grad keeps an intermediate gradient", "[tensor]") {
    const auto w = param(2, 2, 14);
    auto h = w * 2.0;
    h.retain_grad();
    auto other = w * 2.0;
    sum(square(h) + other).backward();
    CHECK(all_close(h.grad(), 2.0 * h.value()));
    CHECK_FALSE(other.has_grad());
    CHECK_THROWS_WITH(other.grad(), Catch::Contains("retain_grad"));
}

TEST_CASE("a hook sees the gradient flowing into a tensor", "[tensor][hooks]") {
    const auto w = param(2, 3, 15);
    auto h = w * 2.0;
    Matrix<double> seen;
    h.register_hook([&](MatrixView<double> g) { seen = g; });
    sum(square(h)).backward();
    CHECK(all_close(seen, 2.0 * h.value()));
}

TEST_CASE("a hook may replace the gradient, and what it leaves flows on", "[tensor][hooks]") {
    const auto w = param(2, 3, 16);
    auto h = w * 2.0;
    h.register_hook([](MatrixView<double> g) { g.setConstant(1.0); });
    sum(square(h)).backward();
    CHECK(all_close(w.grad(), Matrix<double>::Constant(2, 3, 2.0)));
}

TEST_CASE("a hook on a leaf sees only this pass's gradient, before accumulation",
          "[tensor][hooks]") {
    auto w = param(2, 2, 17);
    std::vector<double> seen;
    auto handle = w.register_hook([&](MatrixView<double> g) {
        seen.push_back(g(0, 0));
        g *= 10.0;
    });
    sum(w * 3.0).backward();
    sum(w * 3.0).backward();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == 3.0);
    CHECK(seen[1] == 3.0);
    CHECK(all_close(w.grad(), Matrix<double>::Constant(2, 2, 60.0)));
    CHECK(handle.remove());
    CHECK_FALSE(handle.remove());
    w.zero_grad();
    sum(w * 3.0).backward();
    CHECK(seen.size() == 2);
    CHECK(all_close(w.grad(), Matrix<double>::Constant(2, 2, 3.0)));
}

TEST_CASE("removed hooks are not called and the others stay", "[tensor][hooks]") {
    const auto w = param(1, 1, 18);
    auto h = w * 1.0;
    int first = 0, second = 0;
    auto a = h.register_hook([&](MatrixView<double>) { ++first; });
    h.register_hook([&](MatrixView<double>) { ++second; });
    a.remove();
    h.backward();
    CHECK(first == 0);
    CHECK(second == 1);
}

TEST_CASE("hooks cannot be put on tensors that take no gradient", "[tensor][hooks][errors]") {
    auto c = TensorD::constant(normal(1, 1, 19));
    CHECK_THROWS_AS(c.register_hook([](MatrixView<double>) {}), graph_error);
}

TEST_CASE("backward from inside a hook is refused", "[tensor][hooks][errors]") {
    const auto w = param(1, 1, 20);
    auto h = w * 1.0;
    h.register_hook([&](MatrixView<double>) { sum(w * 2.0).backward(); });
    CHECK_THROWS_WITH(h.backward(), Catch::Contains("inside a hook"));
}

TEST_CASE("only leaves' values and flags may be written", "[tensor][errors]") {
    const auto w = param(1, 2, 21);
    auto y = w * 2.0;
    CHECK_THROWS_AS(y.data(), graph_error);
    CHECK_THROWS_AS(y.set_requires_grad(false), graph_error);
    CHECK_THROWS_AS(TensorD().value(), graph_error);
    CHECK_THROWS_WITH(param(2, 2, 22).item(), Catch::Contains("[2x2]"));
}

TEST_CASE("anomaly mode names the op whose forward made a NaN", "[tensor][anomaly]") {
    const auto w = param(Matrix<double>::Constant(1, 2, -1.0));
    CHECK_NOTHROW(log(w));  // off by default: NaN flows silently, as in PyTorch
    AnomalyGuard anomaly;
    CHECK_THROWS_AS(log(w), numeric_error);
    CHECK_THROWS_WITH(log(w), Catch::Contains("'log'") && Catch::Contains("forward"));
}

TEST_CASE("anomaly mode names the op whose backward made an infinity", "[tensor][anomaly]") {
    const auto w = param(Matrix<double>::Zero(1, 2));
    auto y = sum(sqrt(w));  // sqrt'(0) is infinite while sqrt(0) is fine
    AnomalyGuard anomaly;
    CHECK_THROWS_WITH(y.backward(), Catch::Contains("backward of 'sqrt'"));
}

// A steady-state training step must not touch the heap: every buffer comes back from the pool.
TEST_CASE("a repeated step reuses pooled buffers instead of allocating", "[tensor][pool]") {
    auto w1 = TensorF::parameter(normal(16, 8, 23).cast<float>());
    auto b1 = TensorF::parameter(normal(1, 16, 24).cast<float>());
    auto w2 = TensorF::parameter(normal(4, 16, 25).cast<float>());
    const auto x = TensorF::constant(normal(32, 8, 26).cast<float>());
    auto step = [&] {
        auto loss = mean(square(linear(relu(linear(x, w1, b1)), w2)));
        w1.zero_grad();
        b1.zero_grad();
        w2.zero_grad();
        loss.backward();
    };
    step();
    step();
    const auto misses = BufferPool<float>::local()->stats().misses;
    for (int i = 0; i < 8; ++i) step();
    CHECK(BufferPool<float>::local()->stats().misses == misses);
}

// Values that no backward reads go back to the pool once no handle points at them
// (Node::value_readers): what keeps a deep network's forward working set small.
TEST_CASE("a value no backward reads is released when its last handle goes", "[tensor][memory]") {
    const auto x = TensorD::constant(normal(4, 3, 31));
    auto w = TensorD::parameter(normal(5, 3, 32));
    auto b = TensorD::parameter(normal(1, 5, 33));
    const Node<double>* pre = nullptr;
    TensorD y;
    {
        const TensorD h = linear(x, w, b);
        pre = &h.node();
        y = relu(h);                      // relu's backward reads its own output, not h
        CHECK(pre->value.has_storage());  // a handle still points at h
    }
    CHECK_FALSE(pre->value.has_storage());
    CHECK(pre->shape() == Shape{4, 5});   // the shape stays: backward sizes h's gradient by it
    CHECK(y.node().value.has_storage());  // read by relu's backward
    CHECK(x.node().value.has_storage());  // a leaf keeps its value

    // The gradients are those of a run that kept every value alive.
    sum(y).backward();
    const Matrix<double> released_grad = w.grad();
    w.clear_grad();
    b.clear_grad();
    const TensorD h = linear(x, w, b);
    sum(relu(h)).backward();
    CHECK(w.grad() == released_grad);
    CHECK(h.node().value.has_storage());
}

TEST_CASE("a value some backward reads is kept without handles", "[tensor][memory]") {
    const auto x = TensorD::constant(normal(4, 3, 34));
    auto w = TensorD::parameter(normal(5, 3, 35));
    const Node<double>* pre = nullptr;
    TensorD y;
    {
        const TensorD h = linear(x, w);
        pre = &h.node();
        y = mul(h, h);  // d(h*h)/dh = 2h reads h
    }
    CHECK(pre->value.has_storage());
    sum(y).backward();
    // d/dW sum((xW^T)^2) = 2 (xW^T)^T x
    const Matrix<double> h_value = x.value() * w.value().transpose();
    CHECK((w.grad() - 2.0 * h_value.transpose() * x.value()).cwiseAbs().maxCoeff() < 1e-12);
}

namespace {

// The [B x W] buffers a graph holds: values, saved and aux data of every node reachable from
// `root`.
template <class T>
std::size_t held_buffers(const Node<T>& root, Shape shape) {
    std::vector<const Node<T>*> stack{&root};
    std::set<const Node<T>*> seen;
    std::size_t count = 0;
    while (!stack.empty()) {
        const Node<T>* node = stack.back();
        stack.pop_back();
        if (!seen.insert(node).second || node->is_leaf) continue;
        for (const PooledMatrix<T>* buffer : {&node->value, &node->saved, &node->aux}) {
            if (buffer->has_storage() && buffer->shape() == shape) ++count;
        }
        for (const Node<T>* input : node->inputs) stack.push_back(input);
    }
    return count;
}

}  // namespace

TEST_CASE("a deep batch-norm residual network holds two buffers per block after forward",
          "[tensor][memory]") {
    // Each block is x + Linear(relu(bn(x))). Its backward needs batch norm's x-hat and relu's
    // output (read by relu's and the Linear's backward); batch norm's output, the Linear's and
    // the sum are read by no backward. Keeping everything would hold five per block.
    constexpr Index batch = 8, width = 6, blocks = 12;
    auto net = mlp<double>({.widths = std::vector<Index>(blocks + 2, width),
                            .norm = Normalization::batch,
                            .residual = true,
                            .seed = 5});
    const auto x = TensorD::constant(normal(batch, width, 36));
    const TensorD out = (*net)(x);
    // + the last block's sum, which the output Linear reads, + the output itself.
    CHECK(held_buffers(out.node(), Shape{batch, width}) == 2 * blocks + 2);
}

TEST_CASE("release_cached_memory returns the calling thread's cached blocks to the heap",
          "[tensor][memory]") {
    {
        const auto x = TensorD::parameter(Matrix<double>::Ones(64, 32));
        sum(square(tanh(x * 2.0))).backward();
    }  // the graph's buffers are back in the pool now
    const BufferPool<double>& pool = *BufferPool<double>::local();
    REQUIRE(pool.stats().cached_blocks > 0);
    release_cached_memory<double>();
    CHECK(pool.stats().cached_blocks == 0);
    CHECK(pool.stats().cached_bytes == 0);
}

TEST_CASE("assign and copy_from replace a leaf's value, shape-checked, in either precision",
          "[tensor]") {
    auto w = TensorD::parameter(Matrix<double>::Zero(2, 3));
    w.assign(Matrix<double>::Constant(2, 3, 1.5));
    CHECK(w.value()(1, 2) == 1.5);
    const auto source = TensorF::constant(Matrix<float>::Constant(2, 3, 0.25f));
    w.copy_from(source);
    CHECK(w.value()(0, 0) == 0.25);
    CHECK(w.requires_grad());  // the flag stays the target's
    REQUIRE_THROWS_MATCHES(w.assign(Matrix<double>::Zero(3, 2)), shape_error,
                           MessageContains({"assign", "[2x3]", "[3x2]"}));
    REQUIRE_THROWS_MATCHES(w.copy_from(TensorD::constant(Matrix<double>::Zero(2, 2))), shape_error,
                           MessageContains({"copy_from", "[2x3]", "[2x2]"}));
    CHECK(w.value()(0, 0) == 0.25);  // a refused copy leaves the value alone
    const auto made = w * 2.0;       // not a leaf: its value belongs to the graph
    auto not_leaf = made;
    REQUIRE_THROWS_AS(not_leaf.copy_from(source), graph_error);
}
