// Threads (docs/DESIGN.md, "Threads"): a graph may move between threads and networks may train
// on threads of their own, with results identical to one thread's; one network used by two
// threads at once is refused with a graph_error, never a data race. Under ASan + UBSan in CI
// these also prove that no pool, hook or graph outlives what it points at.
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

std::shared_ptr<MLP<double>> small_net(std::uint64_t seed = 1) {
    return mlp<double>({.widths = {4, 16, 16, 3}, .activation = Tanh{}, .seed = seed});
}

TensorD batch(std::uint64_t seed = 7) { return TensorD::constant(normal(8, 4, seed)); }

TensorD loss_of(Module<double>& net, std::uint64_t seed = 7) {
    return sum(square(net(batch(seed))));
}

// Trains `net` for a few SGD steps with a monitor attached; returns the monitor's last record
// of the first layer's output gradient.
double train(MLP<double>& net, int steps) {
    diag::GradientMonitor<double> monitor(net);
    SGD<double> sgd(net.parameters(), {.lr = 0.01});
    for (int step = 0; step < steps; ++step) {
        sgd.zero_grad();
        loss_of(net, 100 + static_cast<std::uint64_t>(step)).backward();
        sgd.step();
    }
    return monitor.last().layers()[0].output_grad_norm;
}

// Waits for `flag`, failing instead of hanging if the other thread never sets it.
void wait_for(const std::atomic<bool>& flag) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!flag.load()) {
        if (std::chrono::steady_clock::now() > deadline) FAIL("the other thread never arrived");
        std::this_thread::yield();
    }
}

}  // namespace

TEST_CASE("a graph built on one thread backpropagates on another, and the monitor records the step",
          "[threads]") {
    auto reference_net = small_net();
    diag::GradientMonitor<double> reference(*reference_net);
    loss_of(*reference_net).backward();

    auto net = small_net();
    diag::GradientMonitor<double> monitor(*net);
    TensorD loss;
    std::thread([&] { loss = loss_of(*net); }).join();
    loss.backward();
    REQUIRE(monitor.steps_seen() == 1);
    for (std::size_t i = 0; i < monitor.layer_count(); ++i) {
        CHECK(monitor.last().layers()[i].output_grad_norm ==
              reference.last().layers()[i].output_grad_norm);
        CHECK(monitor.last().layers()[i].weight_grad_norm ==
              reference.last().layers()[i].weight_grad_norm);
    }
}

TEST_CASE("a network used on a thread that has ended is used and destroyed safely elsewhere",
          "[threads]") {
    auto net = small_net();
    auto monitor = std::make_unique<diag::GradientMonitor<double>>(*net);
    std::thread([&] {
        loss_of(*net).backward();
        (void)loss_of(*net);  // a forward whose graph dies with the thread's pools
    }).join();
    REQUIRE(monitor->steps_seen() == 1);
    std::thread([&] { net.reset(); }).join();  // destroyed on a third thread
    auto other = small_net(2);
    loss_of(*other).backward();  // nothing scheduled by the dead network may run here
    monitor.reset();
    SUCCEED();
}

TEST_CASE("two threads train two networks at once, each exactly as it would alone", "[threads]") {
    auto alone_a = small_net(1);
    auto alone_b = small_net(2);
    const double expected_a = train(*alone_a, 20);
    const double expected_b = train(*alone_b, 20);

    auto net_a = small_net(1);
    auto net_b = small_net(2);
    double got_a = 0.0;
    double got_b = 0.0;
    std::thread ta([&] { got_a = train(*net_a, 20); });
    std::thread tb([&] { got_b = train(*net_b, 20); });
    ta.join();
    tb.join();
    CHECK(got_a == expected_a);
    CHECK(got_b == expected_b);
    const auto pa = net_a->parameters();
    const auto ea = alone_a->parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].value() == ea[i].value());
}

TEST_CASE("a second thread calling a network while the first is inside it gets a graph_error",
          "[threads]") {
    auto net = small_net();
    std::atomic<bool> first_inside{false};
    std::atomic<bool> second_done{false};
    net->linear_layers()[0].second->register_forward_hook([&](auto&, const auto&, const auto&) {
        if (!first_inside.exchange(true)) wait_for(second_done);
    });
    auto first = std::async(std::launch::async, [&] { (void)(*net)(batch()); });
    wait_for(first_inside);
    std::string error;
    try {
        (void)(*net)(batch());
    } catch (const graph_error& e) {
        error = e.what();
    }
    second_done = true;
    first.get();
    CHECK_THAT(error, Catch::Matchers::Contains("another thread is inside the same module"));
    REQUIRE_NOTHROW(loss_of(*net).backward());  // usable again once the first call returned
}

TEST_CASE("using a network's parameters while another thread backpropagates into them is refused",
          "[threads]") {
    auto net = small_net();
    TensorD second_loss = loss_of(*net, 8);  // recorded before the other thread's pass begins
    std::atomic<bool> in_backward{false};
    std::atomic<bool> second_done{false};
    TensorD first_loss = loss_of(*net, 7);
    first_loss.register_hook([&](MatrixView<double>) {
        in_backward = true;
        wait_for(second_done);
    });
    auto first = std::async(std::launch::async, [&] { first_loss.backward(); });
    wait_for(in_backward);
    std::string forward_error;
    std::string backward_error;
    try {
        (void)loss_of(*net, 9);
    } catch (const graph_error& e) {
        forward_error = e.what();
    }
    try {
        second_loss.backward();
    } catch (const graph_error& e) {
        backward_error = e.what();
    }
    second_done = true;
    first.get();
    CHECK_THAT(forward_error,
               Catch::Matchers::Contains("is being backpropagated into by another thread"));
    CHECK_THAT(backward_error, Catch::Matchers::Contains("layers.") &&
                                   Catch::Matchers::Contains("by another thread at the same time"));
    REQUIRE_NOTHROW(loss_of(*net).backward());
}
