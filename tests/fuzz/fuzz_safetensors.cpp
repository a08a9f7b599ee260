// libFuzzer target for the checkpoint loader (io/safetensors.hpp). Build and run it with
// scripts/fuzz.sh SECONDS; the seed corpus is tests/fuzz/corpus/.
//
// What counts as a finding:
//  - a crash, a sanitizer report, a timeout or running out of memory;
//  - any exception that is not a gradscope::error (a std::bad_alloc from a hostile header
//    length, a JSON library exception that escaped): the loader promises io_error;
//  - a load that fails but has changed the module anyway: the loader promises all or nothing.
#include <gradscope/gradscope.hpp>
#include <gradscope/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace gradscope;

// The corpus's checkpoints were written from these networks (seed 0), so that valid inputs
// reach every stage of the loader, including the optimiser state.
template <class T>
struct Target {
    std::shared_ptr<MLP<T>> net =
        mlp<T>({.widths = {3, 4, 2}, .activation = Tanh{}, .norm = Normalization::batch});
    Adam<T> adam{net->parameters()};
};

// A network with dropout, whose random streams travel in the metadata (valid_dropout's seed).
struct DropoutTarget {
    std::shared_ptr<MLP<double>> net =
        mlp<double>({.widths = {3, 4, 2}, .activation = Tanh{}, .dropout = 0.5});
};

// The parameters' and buffers' bytes, then every module's extra state (Dropout's stream).
template <class T>
std::vector<std::vector<std::byte>> values(Module<T>& m) {
    std::vector<std::vector<std::byte>> out;
    const auto add = [&](const Tensor<T>& t) {
        std::vector<std::byte> bytes(static_cast<std::size_t>(t.value().size()) * sizeof(T));
        std::memcpy(bytes.data(), t.value().data(), bytes.size());
        out.push_back(std::move(bytes));
    };
    for (const auto& [name, t] : m.named_parameters()) add(t);
    for (const auto& [name, t] : m.named_buffers()) add(t);
    for (const auto& [path, module] : m.named_modules()) {
        const std::string state = module->extra_state();
        const auto* text = reinterpret_cast<const std::byte*>(state.data());
        out.emplace_back(text, text + state.size());
    }
    return out;
}

template <class Subject, class Load>
void load_expecting_all_or_nothing(Subject& target, Load&& load) {
    const auto before = values(*target.net);
    try {
        load();
    } catch (const error&) {
        if (values(*target.net) != before) {
            std::fprintf(stderr, "a failed load changed the module\n");
            std::abort();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Target<float> f;
    static Target<double> d;
    static DropoutTarget dropout;
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);

    load_expecting_all_or_nothing(
        f, [&] { (void)load_checkpoint_from_bytes(bytes, *f.net, {}, "fuzz"); });
    load_expecting_all_or_nothing(f, [&] {
        (void)load_checkpoint_from_bytes(bytes, *f.net, f.adam, {.strict = false}, "fuzz");
    });
    load_expecting_all_or_nothing(
        d, [&] { (void)load_checkpoint_from_bytes(bytes, *d.net, d.adam, {}, "fuzz"); });
    load_expecting_all_or_nothing(
        dropout, [&] { (void)load_checkpoint_from_bytes(bytes, *dropout.net, {}, "fuzz"); });
    return 0;
}
