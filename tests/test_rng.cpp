// The generator's state (Rng::state / set_state): what a checkpoint keeps so that a resumed run
// draws the numbers the uninterrupted one would have.
#include "support/testing.hpp"

#include <gradscope/core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <locale>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace gradscope;

namespace {

// The next numbers of every kind the generator draws.
std::vector<double> draws(Rng& rng) {
    std::vector<double> out;
    for (int i = 0; i < 5; ++i) {
        out.push_back(rng.normal());
        out.push_back(rng.uniform());
        out.push_back(static_cast<double>(rng.next_u64() >> 11));
    }
    return out;
}

}  // namespace

TEST_CASE("a generator set to another's state draws the same numbers from there on", "[rng]") {
    Rng original(7);
    (void)draws(original);  // five normals: the second of the last pair is kept for the next
    SECTION("between two normals of a Box-Muller pair, the kept one included") {
        CHECK(original.state().ends_with(" spare -") == false);
    }
    SECTION("after a whole pair") {
        (void)original.normal();
        CHECK(original.state().ends_with(" spare -"));
    }
    const std::string state = original.state();
    Rng copy(12345);
    copy.set_state(state);
    CHECK(copy.state() == state);
    CHECK(draws(copy) == draws(original));
}

TEST_CASE("a state that is not one is refused, and the generator is left as it was", "[rng]") {
    Rng rng(3);
    (void)rng.normal();
    const std::string good = rng.state();
    const auto refuses = [&](const std::string& text, const std::string& why) {
        INFO(text.substr(0, 60));
        Rng twin(3);
        twin.set_state(good);
        CHECK_THROWS_MATCHES(rng.set_state(text), value_error,
                             testing::MessageContains({"Rng::set_state", why}));
        CHECK(draws(rng) == draws(twin));
        rng.set_state(good);
    };
    refuses("", "no mt19937_64 state");
    refuses("1 2 3 spare -", "no mt19937_64 state");
    refuses(good.substr(0, good.find(" spare")), "no 'spare'");
    refuses(good.substr(0, good.find(" spare")) + " spare 0.5 more", "text after the state");
    refuses(good.substr(0, good.find(" spare")) + " spare nan", "not a finite number");
    refuses(good.substr(0, good.find(" spare")) + " spare 0.5x", "not a finite number");
}

TEST_CASE("the state's text does not depend on the global locale", "[rng]") {
    // A locale that groups digits ("1,234,567"), as many users' locales do.
    struct Grouping : std::numpunct<char> {
        char do_thousands_sep() const override { return ','; }
        std::string do_grouping() const override { return "\3"; }
    };
    Rng rng(11);
    (void)rng.normal();
    const std::string classic = rng.state();
    const std::locale previous =
        std::locale::global(std::locale(std::locale::classic(), new Grouping));
    const std::string grouped = rng.state();
    Rng copy(1);
    copy.set_state(classic);  // a file written under another locale still reads
    std::locale::global(previous);
    CHECK(grouped == classic);
    CHECK(draws(copy) == draws(rng));
}

// A program that makes its data with <random> takes the library's generator, and gets the
// engine's bits in order: the generator is a std::uniform_random_bit_generator.
static_assert(std::uniform_random_bit_generator<Rng>);

TEST_CASE("the standard library's algorithms and distributions draw the engine's bits", "[rng]") {
    Rng rng(11), twin(11);
    std::vector<std::uint64_t> bits(4);
    for (auto& b : bits) b = rng();
    for (const auto b : bits) CHECK(b == twin.next_u64());

    std::vector<int> order(50);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    CHECK_FALSE(std::is_sorted(order.begin(), order.end()));
    std::sort(order.begin(), order.end());
    for (int i = 0; i < 50; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);

    // Every face of a die within 5 standard errors of 1/6 over 60 000 throws.
    std::uniform_int_distribution<int> die(1, 6);
    std::vector<int> faces(7, 0);
    const int throws = 60000;
    for (int i = 0; i < throws; ++i) ++faces[static_cast<std::size_t>(die(rng))];
    const double p = 1.0 / 6.0, sigma = std::sqrt(p * (1 - p) / throws);
    for (int face = 1; face <= 6; ++face)
        CHECK(std::abs(faces[static_cast<std::size_t>(face)] / double(throws) - p) < 5 * sigma);
}
