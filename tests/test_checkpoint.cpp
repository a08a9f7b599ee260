// Checkpoints (io/safetensors.hpp): what is saved comes back exactly, the bytes follow the
// safetensors format, every malformed file is refused with a message that names the file and
// the problem while the module stays as it was, and a failed save leaves the old file alone.
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

#include <gradscope/data.hpp>
#include <gradscope/io/safetensors.hpp>
#include <gradscope/optim.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace gradscope;
namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

namespace {

using gradscope::testing::MessageContains;
using gradscope::testing::write_file;

// Every test's files go to their own directory, named after this file.
struct TempDir : gradscope::testing::TempDir {
    TempDir() : gradscope::testing::TempDir("gradscope_test_checkpoint_") {}
};

Bytes read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> chars((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    Bytes out(chars.size());
    if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

Bytes bytes_of(std::string_view text) {
    Bytes out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
}

void append_u64(Bytes& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i, v >>= 8) out.push_back(static_cast<std::byte>(v & 0xff));
}

// A file with the given header text (unpadded) and data bytes.
Bytes make_file(std::string_view header, const Bytes& data) {
    Bytes out;
    append_u64(out, header.size());
    const Bytes text = bytes_of(header);
    out.insert(out.end(), text.begin(), text.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

// A valid file taken apart by hand, as a reader that knows only the format would.
struct Dissected {
    std::uint64_t header_length = 0;
    std::string header_text;
    nlohmann::json header;
    Bytes data;
};

Dissected dissect(const Bytes& file) {
    REQUIRE(file.size() >= 8);
    Dissected d;
    for (int i = 7; i >= 0; --i)
        d.header_length = (d.header_length << 8) | static_cast<std::uint64_t>(file[i]);
    REQUIRE(8 + d.header_length <= file.size());
    d.header_text.assign(reinterpret_cast<const char*>(file.data() + 8), d.header_length);
    d.header = nlohmann::json::parse(d.header_text);
    d.data.assign(file.begin() + 8 + static_cast<std::ptrdiff_t>(d.header_length), file.end());
    return d;
}

// A valid checkpoint with one change to its header.
Bytes with_header(const Bytes& valid, const std::function<void(nlohmann::json&)>& change) {
    Dissected d = dissect(valid);
    change(d.header);
    return make_file(d.header.dump(), d.data);
}

template <class T>
std::shared_ptr<MLP<T>> batch_norm_mlp(std::uint64_t seed, std::vector<Index> widths = {4, 8, 3}) {
    return mlp<T>({.widths = std::move(widths),
                   .activation = Tanh{},
                   .norm = Normalization::batch,
                   .seed = seed});
}

// Runs training-mode batches so that the running statistics and the batch count are not the
// values a fresh network starts with.
template <class T>
void warm_up(MLP<T>& net, std::uint64_t seed) {
    net.train();
    for (int i = 0; i < 3; ++i) {
        (void)net(Tensor<T>::constant(
            testing::normal(16, net.options().widths.front(), seed + i).template cast<T>()));
    }
}

// Every parameter and buffer value, by name.
template <class T>
std::vector<std::pair<std::string, Matrix<T>>> snapshot(const Module<T>& m) {
    std::vector<std::pair<std::string, Matrix<T>>> out;
    for (const auto& [name, t] : m.named_parameters()) out.emplace_back(name, t.value());
    for (const auto& [name, t] : m.named_buffers()) out.emplace_back(name, t.value());
    return out;
}

template <class T>
Matrix<T> tensor_value(const Module<T>& m, const std::string& name) {
    for (const auto& [n, t] : m.named_parameters()) {
        if (n == name) return t.value();
    }
    for (const auto& [n, t] : m.named_buffers()) {
        if (n == name) return t.value();
    }
    FAIL("no tensor named " << name);
    return {};
}

template <class T>
void check_round_trip() {
    TempDir dir;
    const fs::path file = dir.path / "net.safetensors";
    auto saved = batch_norm_mlp<T>(1);
    warm_up(*saved, 100);
    saved->eval();
    const auto x = Tensor<T>::constant(testing::normal(5, 4, 7).cast<T>());
    const Matrix<T> expected = (*saved)(x).value();
    save_checkpoint(file, *saved);

    auto loaded = batch_norm_mlp<T>(2);  // other weights, fresh statistics
    loaded->eval();
    REQUIRE((*loaded)(x).value() != expected);
    const LoadReport report = load_checkpoint(file, *loaded);
    CHECK(report.loaded.size() == 9);
    CHECK(report.missing.empty());
    CHECK(report.unexpected.empty());
    CHECK_FALSE(report.optimizer_loaded);

    CHECK((*loaded)(x).value() == expected);  // exactly: the same bits went in
    CHECK(snapshot(*loaded) == snapshot(*saved));
    CHECK(tensor_value(*loaded, "layers.0.bn.num_batches_tracked")(0, 0) == T(3));
}

// The module used by most rejection tests, and a valid file for it.
struct Fixture {
    TempDir dir;
    std::shared_ptr<MLP<double>> net = batch_norm_mlp<double>(3);
    Bytes valid;
    Fixture() {
        auto other = batch_norm_mlp<double>(4);
        warm_up(*other, 200);
        valid = save_checkpoint_to_bytes(*other);
    }

    // Loading `bytes` from a file must fail with an io_error whose message names the file and
    // contains every fragment, and must leave the network exactly as it was.
    void expect_rejected(const Bytes& bytes, const std::vector<std::string>& fragments,
                         const LoadOptions& options = {}) {
        const fs::path file = dir.path / "broken.safetensors";
        write_file(file, bytes);
        const auto before = snapshot(*net);
        try {
            (void)load_checkpoint(file, *net, options);
            FAIL("load_checkpoint accepted a broken file; expected a message with: "
                 << fragments.front());
        } catch (const io_error& e) {
            const std::string message = e.what();
            INFO(message);
            CHECK(message.find(file.string()) != std::string::npos);
            for (const std::string& fragment : fragments)
                CHECK(message.find(fragment) != std::string::npos);
        }
        CHECK(snapshot(*net) == before);
    }
};

// One optimiser step on the mean square of the network's output at x.
void mean_square_step(MLP<double>& net, Optimizer<double>& optimizer, const TensorD& x) {
    optimizer.zero_grad();
    mean(square(net(x))).backward();
    optimizer.step();
}

}  // namespace

TEST_CASE("a saved mlp with batch norm loads into another and gives identical eval outputs",
          "[checkpoint]") {
    SECTION("float") { check_round_trip<float>(); }
    SECTION("double") { check_round_trip<double>(); }
}

TEST_CASE("the bytes follow the safetensors layout", "[checkpoint]") {
    auto net = batch_norm_mlp<double>(5);
    warm_up(*net, 300);
    const Bytes file = save_checkpoint_to_bytes(*net, {.metadata = {{"epoch", "12"}}});
    const Dissected d = dissect(file);

    // The header is padded with spaces to a multiple of 8, as the reference implementation does.
    CHECK(d.header_length % 8 == 0);
    CHECK(d.header_text.front() == '{');
    CHECK(d.header_text.find_last_not_of(' ') + 1 + 7 >= d.header_text.size());
    CHECK(d.header.at("__metadata__") == nlohmann::json({{"epoch", "12"}}));

    // PyTorch's shapes: matrices 2-D, per-feature vectors 1-D, the batch count a scalar.
    const std::map<std::string, nlohmann::json> shapes = {
        {"layers.0.linear.weight", {8, 4}},
        {"layers.0.linear.bias", {8}},
        {"layers.0.bn.weight", {8}},
        {"layers.0.bn.bias", {8}},
        {"layers.0.bn.running_mean", {8}},
        {"layers.0.bn.running_var", {8}},
        {"layers.0.bn.num_batches_tracked", nlohmann::json::array()},
        {"layers.1.linear.weight", {3, 8}},
        {"layers.1.linear.bias", {3}}};
    CHECK(d.header.size() == shapes.size() + 1);

    // The tensors tile the data region, and each holds its values' bytes, row-major.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
    for (const auto& [name, shape] : shapes) {
        INFO(name);
        const nlohmann::json& entry = d.header.at(name);
        CHECK(entry.at("shape") == shape);
        const auto begin = entry.at("data_offsets").at(0).get<std::uint64_t>();
        const auto end = entry.at("data_offsets").at(1).get<std::uint64_t>();
        spans.emplace_back(begin, end);
        const Matrix<double> value = tensor_value(*net, name);
        if (name.ends_with("num_batches_tracked")) {
            // a counter is an int64, as PyTorch writes it
            CHECK(entry.at("dtype") == "I64");
            REQUIRE(end - begin == sizeof(std::int64_t));
            std::int64_t count = 0;
            std::memcpy(&count, d.data.data() + begin, sizeof count);
            CHECK(static_cast<double>(count) == value(0, 0));
            continue;
        }
        CHECK(entry.at("dtype") == "F64");
        REQUIRE(end - begin == static_cast<std::uint64_t>(value.size()) * sizeof(double));
        CHECK(std::memcmp(d.data.data() + begin, value.data(), end - begin) == 0);
    }
    std::sort(spans.begin(), spans.end());
    std::uint64_t covered = 0;
    for (const auto& [begin, end] : spans) {
        CHECK(begin == covered);
        covered = end;
    }
    CHECK(covered == d.data.size());

    SECTION("floats are F32, and the counter I64 still") {
        auto f = batch_norm_mlp<float>(5);
        const Dissected df = dissect(save_checkpoint_to_bytes(*f));
        CHECK(df.header.at("layers.1.linear.weight").at("dtype") == "F32");
        CHECK(df.header.at("layers.0.bn.num_batches_tracked").at("dtype") == "I64");
        const nlohmann::json& offsets = df.header.at("layers.1.linear.weight").at("data_offsets");
        CHECK(offsets.at(1).get<int>() - offsets.at(0).get<int>() == 3 * 8 * 4);
    }
    SECTION("pytorch_shapes = false keeps every tensor [rows, cols]") {
        const Dissected d2 = dissect(save_checkpoint_to_bytes(*net, {.pytorch_shapes = false}));
        CHECK(d2.header.at("layers.1.linear.bias").at("shape") == nlohmann::json({1, 3}));
        CHECK(d2.header.at("layers.0.bn.num_batches_tracked").at("shape") ==
              nlohmann::json({1, 1}));
        CHECK_FALSE(d2.header.contains("__metadata__"));
    }
    SECTION(
        "a one-output Linear keeps its [1 x in] weight 2-D, as PyTorch does; LayerNorm's scale is 1-D") {
        auto one = mlp<double>({.widths = {4, 8, 1}, .norm = Normalization::layer});
        const Dissected d3 = dissect(save_checkpoint_to_bytes(*one));
        CHECK(d3.header.at("layers.1.linear.weight").at("shape") == nlohmann::json({1, 8}));
        CHECK(d3.header.at("layers.1.linear.bias").at("shape") == nlohmann::json({1}));
        CHECK(d3.header.at("layers.0.ln.weight").at("shape") == nlohmann::json({8}));
        // And it loads back from those shapes.
        auto other = mlp<double>({.widths = {4, 8, 1}, .norm = Normalization::layer, .seed = 9});
        (void)load_checkpoint_from_bytes(save_checkpoint_to_bytes(*one), *other);
        CHECK(snapshot(*other) == snapshot(*one));
    }
}

TEST_CASE("loading accepts 2-D, 1-D and scalar shapes for row tensors, and I64 scalars",
          "[checkpoint]") {
    auto source = batch_norm_mlp<double>(6);
    warm_up(*source, 400);
    auto net = batch_norm_mlp<double>(7);

    // Every tensor written [rows, cols] loads as well as PyTorch's shapes do.
    (void)load_checkpoint_from_bytes(save_checkpoint_to_bytes(*source, {.pytorch_shapes = false}),
                                     *net);
    CHECK(snapshot(*net) == snapshot(*source));

    // num_batches_tracked is an int64 scalar, in any single-value shape.
    Dissected d = dissect(save_checkpoint_to_bytes(*source));
    for (const char* shape : {"[]", "[1]", "[1, 1]"}) {
        INFO("shape " << shape);
        nlohmann::json header = d.header;
        header["layers.0.bn.num_batches_tracked"]["dtype"] = "I64";
        header["layers.0.bn.num_batches_tracked"]["shape"] = nlohmann::json::parse(shape);
        Bytes data = d.data;
        const auto at =
            header["layers.0.bn.num_batches_tracked"]["data_offsets"][0].get<std::size_t>();
        const std::int64_t count = 41;
        std::memcpy(data.data() + at, &count, sizeof count);
        (void)load_checkpoint_from_bytes(make_file(header.dump(), data), *net);
        CHECK(tensor_value(*net, "layers.0.bn.num_batches_tracked")(0, 0) == 41.0);
    }

    // Files from before counters were I64 hold the count in the module's dtype; they load.
    nlohmann::json header = d.header;
    header["layers.0.bn.num_batches_tracked"]["dtype"] = "F64";
    Bytes data = d.data;
    const auto at = header["layers.0.bn.num_batches_tracked"]["data_offsets"][0].get<std::size_t>();
    const double count = 17.0;
    std::memcpy(data.data() + at, &count, sizeof count);
    (void)load_checkpoint_from_bytes(make_file(header.dump(), data), *net);
    CHECK(tensor_value(*net, "layers.0.bn.num_batches_tracked")(0, 0) == 17.0);
}

TEST_CASE("a cumulative-average BatchNorm1d resumes its average after a checkpoint",
          "[checkpoint]") {
    // With momentum none the next batch's weight is 1 / (batches so far + 1), so the restored
    // I64 count decides the statistics: a count lost or mangled on the way gives other values.
    const auto batch = [](std::uint64_t seed) {
        return TensorF::constant(testing::normal(6, 3, seed).cast<float>());
    };
    BatchNorm1d<float> trained(3, {.momentum = std::nullopt});
    for (std::uint64_t i = 0; i < 4; ++i) (void)trained(batch(50 + i));
    const Bytes file = save_checkpoint_to_bytes(trained);
    CHECK(dissect(file).header.at("num_batches_tracked").at("dtype") == "I64");

    BatchNorm1d<float> resumed(3, {.momentum = std::nullopt});
    (void)load_checkpoint_from_bytes(file, resumed);
    CHECK(resumed.num_batches_tracked().value()(0, 0) == 4.0f);
    (void)trained(batch(60));
    (void)resumed(batch(60));
    CHECK(snapshot(resumed) == snapshot(trained));  // exactly: the same operations on the same bits
}

TEST_CASE("a BatchNorm1d without running statistics saves and loads its parameters alone",
          "[checkpoint]") {
    BatchNorm1d<double> source(3, {.track_running_stats = false});
    source.weight().data() = testing::normal(1, 3, 61);
    const Dissected d = dissect(save_checkpoint_to_bytes(source));
    CHECK(d.header.size() == 2);  // weight and bias, as PyTorch's state_dict
    CHECK(d.header.contains("weight"));
    CHECK(d.header.contains("bias"));

    BatchNorm1d<double> target(3, {.track_running_stats = false});
    const LoadReport report = load_checkpoint_from_bytes(save_checkpoint_to_bytes(source), target);
    CHECK(report.loaded.size() == 2);
    CHECK(target.weight().value() == source.weight().value());
    // A file with running statistics does not fit it strictly: they are named as unexpected.
    BatchNorm1d<double> tracking(3);
    REQUIRE_THROWS_MATCHES(load_checkpoint_from_bytes(save_checkpoint_to_bytes(tracking), target),
                           io_error, MessageContains("running_mean"));
}

TEST_CASE("a counter that is not a whole number cannot be saved as an integer", "[checkpoint]") {
    BatchNorm1d<double> bn(3);
    bn.num_batches_tracked().data()(0, 0) = 2.5;
    REQUIRE_THROWS_MATCHES(save_checkpoint_to_bytes(bn), io_error,
                           MessageContains({"num_batches_tracked", "2.5", "whole number"}));
    bn.num_batches_tracked().data()(0, 0) = 1e300;
    REQUIRE_THROWS_MATCHES(save_checkpoint_to_bytes(bn), io_error, MessageContains("int64"));
}

TEST_CASE("doubles convert to a float module, unless one is too large for a float",
          "[checkpoint]") {
    auto source = batch_norm_mlp<double>(8);
    warm_up(*source, 450);
    auto net = batch_norm_mlp<float>(9);
    (void)load_checkpoint_from_bytes(save_checkpoint_to_bytes(*source), *net);
    CHECK(tensor_value(*net, "layers.1.linear.weight") ==
          tensor_value(*source, "layers.1.linear.weight").cast<float>());

    source->layers()[1].named_parameters()[0].second.data()(2, 5) =
        1e300;  // layers.1.linear.weight
    const auto before = snapshot(*net);
    CHECK_THROWS_WITH(
        load_checkpoint_from_bytes(save_checkpoint_to_bytes(*source), *net, {}, "big.safetensors"),
        "big.safetensors: tensor 'layers.1.linear.weight': a value of this F64 tensor is too large "
        "for float (the module's type)");
    CHECK(snapshot(*net) == before);
}

TEST_CASE("malformed files are refused with the file and the problem named, and nothing changes",
          "[checkpoint]") {
    Fixture f;
    using json = nlohmann::json;

    SECTION("shorter than the 8-byte length") {
        f.expect_rejected(bytes_of("abc"), {"3 bytes", "shorter than the 8-byte"});
        f.expect_rejected({}, {"0 bytes"});
    }
    SECTION("a header length beyond the end of the file") {
        Bytes b;
        append_u64(b, 1000);
        const Bytes text = bytes_of("{}");
        b.insert(b.end(), text.begin(), text.end());
        f.expect_rejected(b, {"header length 1000", "runs past the end of the file (10 bytes)"});
    }
    SECTION("an absurd header length") {
        Bytes b;
        append_u64(b, std::uint64_t{1} << 62);
        f.expect_rejected(b, {"header length 4611686018427387904", "limit"});
    }
    SECTION("a header that is not JSON, or not an object") {
        f.expect_rejected(make_file("{\"layers.1.linear.bias\": {\"dtype\": ", {}),
                          {"not valid JSON"});
        f.expect_rejected(make_file("[1, 2]", {}), {"does not start with '{'"});
        f.expect_rejected(make_file("{} {}", {}), {"not valid JSON"});
        f.expect_rejected(make_file("{\"a\": \"\xff\"}", {}), {"not valid JSON"});
    }
    SECTION("a tensor without dtype, shape or data_offsets") {
        for (const char* field : {"dtype", "shape", "data_offsets"}) {
            f.expect_rejected(
                with_header(f.valid, [&](json& h) { h["layers.1.linear.bias"].erase(field); }),
                {"tensor 'layers.1.linear.bias'", std::string("\"") + field + "\" is missing"});
        }
        f.expect_rejected(with_header(f.valid, [](json& h) { h["layers.1.linear.bias"] = 5; }),
                          {"tensor 'layers.1.linear.bias'", "expected an object"});
    }
    SECTION("a dtype the format does not have") {
        f.expect_rejected(
            with_header(f.valid, [](json& h) { h["layers.1.linear.bias"]["dtype"] = "F17"; }),
            {"tensor 'layers.1.linear.bias'", "unknown dtype \"F17\""});
    }
    SECTION("a dtype gradscope cannot read, or I64 for more than a scalar") {
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["layers.1.linear.bias"]["dtype"] = "BF16";
                                          h["layers.1.linear.bias"]["shape"] = {12};
                                      }),
                          {"tensor 'layers.1.linear.bias'", "dtype BF16 is not supported"});
        f.expect_rejected(
            with_header(f.valid, [](json& h) { h["layers.1.linear.bias"]["dtype"] = "I64"; }),
            {"tensor 'layers.1.linear.bias'", "I64 is read only for a scalar", "[3]"});
    }
    SECTION("a shape whose size does not match its offsets") {
        f.expect_rejected(
            with_header(f.valid,
                        [](json& h) {
                            h["layers.1.linear.weight"]["shape"] = {3, 7};
                        }),
            {"tensor 'layers.1.linear.weight'", "shape [3, 7] of F64 needs 168 bytes", "span 192"});
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["layers.1.linear.weight"]["shape"] = {-3, 8};
                                      }),
                          {"tensor 'layers.1.linear.weight'", "non-negative integer", "-3"});
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["layers.1.linear.weight"]["shape"] = {
                                              std::uint64_t{1} << 40, std::uint64_t{1} << 40};
                                      }),
                          {"tensor 'layers.1.linear.weight'", "more bytes than fit in 64 bits"});
    }
    SECTION("offsets out of range, overlapping, leaving gaps or leaving bytes over") {
        // The data region is 800 bytes: 100 doubles, with num_batches_tracked last.
        f.expect_rejected(
            with_header(f.valid,
                        [](json& h) {
                            h["layers.0.bn.num_batches_tracked"]["data_offsets"] = {800, 808};
                        }),
            {"tensor 'layers.0.bn.num_batches_tracked'", "[800, 808]",
             "past the end of the data (800 bytes"});
        f.expect_rejected(
            with_header(f.valid,
                        [](json& h) {
                            h["layers.1.linear.bias"]["data_offsets"] = {632, 656};
                        }),
            {"tensor 'layers.1.linear.bias'", "overlap tensor 'layers.1.linear.weight'"});
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["layers.1.linear.bias"]["data_offsets"] = {648, 672};
                                      }),
                          {"tensor 'layers.1.linear.bias'", "gap: bytes 640 to 648"});
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["layers.1.linear.bias"]["data_offsets"] = {664, 640};
                                      }),
                          {"tensor 'layers.1.linear.bias'", "end before they begin"});
        f.expect_rejected(
            with_header(f.valid,
                        [](json& h) { h["layers.1.linear.bias"]["data_offsets"] = {640}; }),
            {"tensor 'layers.1.linear.bias'", "must be [begin, end]"});
        Dissected d = dissect(f.valid);
        d.data.resize(d.data.size() + 8);
        f.expect_rejected(make_file(d.header.dump(), d.data),
                          {"cover 800 bytes of data but 808 follow"});
    }
    SECTION("a name given twice") {
        Dissected d = dissect(f.valid);
        const std::string entry =
            "\"layers.1.linear.bias\":" + d.header["layers.1.linear.bias"].dump();
        const std::string text = "{" + entry + "," + d.header.dump().substr(1);
        f.expect_rejected(make_file(text, d.data), {"names 'layers.1.linear.bias' twice"});
    }
    SECTION("metadata that is not strings") {
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["__metadata__"] = {{"epoch", 3}};
                                      }),
                          {"\"__metadata__\" entry 'epoch' must be a string"});
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["__metadata__"] = {1, 2};
                                      }),
                          {"\"__metadata__\" must be an object"});
    }
    SECTION("a shape that does not fit the module's tensor names both shapes") {
        f.expect_rejected(
            with_header(f.valid,
                        [](json& h) {
                            h["layers.1.linear.weight"]["shape"] = {8, 3};
                        }),
            {"tensor 'layers.1.linear.weight'", "the file's shape [8, 3]", "the module's [3x8]"});
        f.expect_rejected(
            with_header(f.valid, [](json& h) { h["layers.1.linear.weight"]["shape"] = {24}; }),
            {"the file's shape [24]", "[3x8]"});
        // Even a non-strict load refuses a tensor it cannot fit, as PyTorch's does.
        f.expect_rejected(with_header(f.valid,
                                      [](json& h) {
                                          h["layers.1.linear.weight"]["shape"] = {2, 3, 4};
                                      }),
                          {"the file's shape [2, 3, 4]"}, {.strict = false});
    }
    SECTION("a file that is missing, or a directory") {
        const fs::path missing = f.dir.path / "nope.safetensors";
        CHECK_THROWS_WITH(load_checkpoint(missing, *f.net),
                          Catch::Contains(missing.string()) && Catch::Contains("cannot open"));
        CHECK_THROWS_WITH(load_checkpoint(f.dir.path, *f.net), Catch::Contains("is a directory"));
    }
}

TEST_CASE("strict loads need exactly the module's tensors, non-strict ones report the difference",
          "[checkpoint]") {
    auto with_bn = batch_norm_mlp<double>(10);
    warm_up(*with_bn, 500);
    auto without_bn = mlp<double>({.widths = {4, 8, 3}, .activation = Tanh{}, .seed = 11});
    const Bytes bn_file = save_checkpoint_to_bytes(*with_bn);
    const Bytes plain_file = save_checkpoint_to_bytes(*without_bn);

    SECTION("extra tensors in the file") {
        auto net = mlp<double>({.widths = {4, 8, 3}, .activation = Tanh{}, .seed = 12});
        const auto before = snapshot(*net);
        CHECK_THROWS_MATCHES(
            load_checkpoint_from_bytes(bn_file, *net, {}, "bn.safetensors"), io_error,
            Catch::Matchers::Message(
                "bn.safetensors: strict load: the file's 'layers.0.bn.bias', "
                "'layers.0.bn.num_batches_tracked', 'layers.0.bn.running_mean', "
                "'layers.0.bn.running_var', 'layers.0.bn.weight' not in the module; "
                "load with {.strict = false} to load what matches"));
        CHECK(snapshot(*net) == before);

        const LoadReport r = load_checkpoint_from_bytes(bn_file, *net, {.strict = false});
        CHECK(r.loaded == std::vector<std::string>{"layers.0.linear.weight", "layers.0.linear.bias",
                                                   "layers.1.linear.weight",
                                                   "layers.1.linear.bias"});
        CHECK(r.missing.empty());
        CHECK(r.unexpected.size() == 5);
        CHECK(tensor_value(*net, "layers.1.linear.weight") ==
              tensor_value(*with_bn, "layers.1.linear.weight"));
    }
    SECTION("tensors missing from the file") {
        auto net = batch_norm_mlp<double>(13);
        const auto before = snapshot(*net);
        CHECK_THROWS_WITH(
            load_checkpoint_from_bytes(plain_file, *net),
            Catch::Contains("the module's 'layers.0.bn.weight', 'layers.0.bn.bias'") &&
                Catch::Contains("missing from the file"));
        CHECK(snapshot(*net) == before);

        const LoadReport r = load_checkpoint_from_bytes(plain_file, *net, {.strict = false});
        CHECK(r.loaded.size() == 4);
        CHECK(r.missing == std::vector<std::string>{
                               "layers.0.bn.weight", "layers.0.bn.bias", "layers.0.bn.running_mean",
                               "layers.0.bn.running_var", "layers.0.bn.num_batches_tracked"});
        CHECK(r.unexpected.empty());
        CHECK(tensor_value(*net, "layers.0.linear.weight") ==
              tensor_value(*without_bn, "layers.0.linear.weight"));
        CHECK(tensor_value(*net, "layers.0.bn.running_var") ==
              Matrix<double>::Ones(1, 8));  // untouched
    }
}

TEST_CASE("metadata travels both ways and the optimizer. prefix is reserved", "[checkpoint]") {
    auto net = batch_norm_mlp<double>(14);
    const LoadReport r = load_checkpoint_from_bytes(
        save_checkpoint_to_bytes(*net, {.metadata = {{"epoch", "7"}, {"note", "ünïcode"}}}), *net);
    CHECK(r.metadata == std::map<std::string, std::string>{{"epoch", "7"}, {"note", "ünïcode"}});
    CHECK_THROWS_AS(save_checkpoint_to_bytes(*net, {.metadata = {{"optimizer.lr", "1"}}}),
                    io_error);
}

TEST_CASE("the optimiser state is saved and restored, and a step after loading matches",
          "[checkpoint]") {
    TempDir dir;
    const fs::path file = dir.path / "run.safetensors";
    const auto x = TensorD::constant(testing::normal(16, 4, 20));
    const auto train_step = [&](MLP<double>& net, Optimizer<double>& opt) {
        mean_square_step(net, opt, x);
    };

    auto net = batch_norm_mlp<double>(15);
    Adam<double> adam(net->parameters(), {.lr = 0.01, .amsgrad = true});
    for (int i = 0; i < 3; ++i) train_step(*net, adam);
    save_checkpoint(file, *net, adam);

    const Dissected d = dissect(read_bytes(file));
    CHECK(d.header.at("__metadata__").at("optimizer.step_count") == "3");
    CHECK(d.header.at("__metadata__").at("optimizer.lr") == "0.01");
    // Keyed by the module's names, though the optimiser was made from parameters().
    CHECK(d.header.at("__metadata__").at("optimizer.step.layers.1.linear.bias") == "3");
    CHECK(d.header.at("optimizer.max_exp_avg_sq.layers.0.linear.weight").at("shape") ==
          nlohmann::json({8, 4}));

    auto resumed = batch_norm_mlp<double>(16);
    Adam<double> resumed_adam(resumed->parameters());  // other options: the file's win
    const LoadReport r = load_checkpoint(file, *resumed, resumed_adam);
    CHECK(r.optimizer_loaded);
    CHECK(r.unexpected.empty());
    CHECK(resumed_adam.step_count() == 3);
    CHECK(resumed_adam.lr() == 0.01);

    train_step(*net, adam);
    train_step(*resumed, resumed_adam);
    CHECK(snapshot(*resumed) == snapshot(*net));

    SECTION("a module-only load ignores the optimiser's entries") {
        auto plain = batch_norm_mlp<double>(17);
        const LoadReport r2 = load_checkpoint(file, *plain);
        CHECK(r2.unexpected.empty());
        CHECK(r2.loaded.size() == 9);
    }
    SECTION("a state that does not fit the optimiser changes neither it nor the module") {
        auto other = batch_norm_mlp<double>(18);
        SGD<double> sgd(other->parameters(), {.lr = 0.5});
        const auto before = snapshot(*other);
        CHECK_THROWS_WITH(
            load_checkpoint(file, *other, sgd),
            Catch::Contains(file.string()) && Catch::Contains("optimiser state does not fit"));
        CHECK(snapshot(*other) == before);
        CHECK(sgd.lr() == 0.5);
    }
    SECTION("a strict load with an optimiser needs its state; a non-strict one does without") {
        save_checkpoint(file, *net);
        auto other = batch_norm_mlp<double>(19);
        Adam<double> fresh(other->parameters(), {.lr = 0.5});
        CHECK_THROWS_WITH(load_checkpoint(file, *other, fresh),
                          Catch::Contains("no optimiser state"));
        const LoadReport r3 = load_checkpoint(file, *other, fresh, {.strict = false});
        CHECK_FALSE(r3.optimizer_loaded);
        CHECK(fresh.lr() == 0.5);
        CHECK(snapshot(*other) == snapshot(*net));
    }
    SECTION("a malformed optimiser scalar is refused") {
        Dissected bad = dissect(read_bytes(file));
        bad.header["__metadata__"]["optimizer.lr"] = "fast";
        auto other = batch_norm_mlp<double>(20);
        Adam<double> fresh(other->parameters());
        const auto before = snapshot(*other);
        CHECK_THROWS_WITH(
            load_checkpoint_from_bytes(make_file(bad.header.dump(), bad.data), *other, fresh),
            Catch::Contains("'optimizer.lr' must be a number, got 'fast'"));
        CHECK(snapshot(*other) == before);
    }
}

TEST_CASE(
    "a file that names mlp()'s output layer layers.L.weight, without its linear child, "
    "still loads, with the optimiser state kept for it",
    "[checkpoint]") {
    const auto x = TensorD::constant(testing::normal(16, 4, 21));
    const auto train_step = [&](MLP<double>& net, Optimizer<double>& opt) {
        mean_square_step(net, opt, x);
    };
    auto net = batch_norm_mlp<double>(15);
    Adam<double> adam(net->parameters(), {.lr = 0.01});
    for (int i = 0; i < 3; ++i) train_step(*net, adam);

    // The file written with the output layer's tensors under their earlier names: every key
    // of the header and of its metadata that names them, renamed.
    const auto earlier = [](std::string key) {
        const std::string current = "layers.1.linear.";
        if (const auto at = key.find(current); at != std::string::npos) {
            key.replace(at, current.size(), "layers.1.");
        }
        return key;
    };
    const auto rename_keys = [&](const nlohmann::json& object) {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& item : object.items()) out[earlier(item.key())] = item.value();
        return out;
    };
    const Bytes file = with_header(save_checkpoint_to_bytes(*net, adam), [&](nlohmann::json& h) {
        h = rename_keys(h);
        h["__metadata__"] = rename_keys(h["__metadata__"]);
    });
    const Dissected d = dissect(file);
    REQUIRE(d.header.contains("layers.1.weight"));
    REQUIRE(d.header.contains("optimizer.exp_avg_sq.layers.1.bias"));
    REQUIRE(d.header.at("__metadata__").contains("optimizer.step.layers.1.weight"));
    REQUIRE_FALSE(d.header.contains("layers.1.linear.weight"));

    auto resumed = batch_norm_mlp<double>(16);
    Adam<double> resumed_adam(resumed->parameters());
    const LoadReport r = load_checkpoint_from_bytes(file, *resumed, resumed_adam);  // strict
    CHECK(r.optimizer_loaded);
    CHECK(r.missing.empty());
    CHECK(r.unexpected.empty());
    CHECK(std::count(r.loaded.begin(), r.loaded.end(), "layers.1.linear.weight") == 1);
    CHECK(snapshot(*resumed) == snapshot(*net));
    // The moments came back too: the next step is the same step.
    train_step(*net, adam);
    train_step(*resumed, resumed_adam);
    CHECK(snapshot(*resumed) == snapshot(*net));

    SECTION("a module that never had those names reports them as the file's extra tensors") {
        Rng rng(1);
        auto plain = std::make_shared<Sequential<double>>();
        plain->add("layers", std::make_shared<Sequential<double>>())
            ->add(std::make_shared<Linear<double>>(4, 3, rng));
        const LoadReport r2 = load_checkpoint_from_bytes(file, *plain, {.strict = false});
        CHECK(std::count(r2.unexpected.begin(), r2.unexpected.end(), "layers.1.weight") == 1);
    }
}

namespace {

// A module with a weight and a bias under the names given, registered in the order given, so
// that two of them can have the same names in another order, or other names.
class Pair final : public Module<double> {
public:
    Pair(const std::string& weight_name, const std::string& bias_name, bool weight_first,
         std::uint64_t seed) {
        auto w = TensorD::parameter(testing::normal(2, 3, seed));
        auto b = TensorD::parameter(testing::normal(1, 2, seed + 1));
        if (weight_first) {
            weight_ = register_parameter(weight_name, w);
            bias_ = register_parameter(bias_name, b);
        } else {
            bias_ = register_parameter(bias_name, b);
            weight_ = register_parameter(weight_name, w);
        }
    }
    TensorD forward_impl(const TensorD& x) override { return linear(x, weight_, bias_); }
    [[nodiscard]] std::string type_name() const override { return "Pair"; }

    TensorD weight_;
    TensorD bias_;
};

void train_step(Pair& net, Optimizer<double>& optimizer) {
    optimizer.zero_grad();
    mean(square(net(TensorD::constant(testing::normal(5, 3, 60))))).backward();
    optimizer.step();
}

}  // namespace

TEST_CASE("a grouped optimiser's state travels in the checkpoint with every group's options",
          "[checkpoint]") {
    const auto x = TensorD::constant(testing::normal(16, 4, 30));
    const auto train_step = [&](MLP<double>& net, Optimizer<double>& opt) {
        mean_square_step(net, opt, x);
    };
    auto net = batch_norm_mlp<double>(31);
    AdamW<double> adamw(weight_decay_groups(*net), {.lr = 0.01, .weight_decay = 0.1});
    for (int i = 0; i < 2; ++i) train_step(*net, adamw);
    const Bytes file = save_checkpoint_to_bytes(*net, adamw);
    const nlohmann::json metadata = dissect(file).header.at("__metadata__");
    CHECK(metadata.at("optimizer.weight_decay") == "0.1");
    CHECK(metadata.at("optimizer.group1.weight_decay") == "0");

    // Made with other options; the file's win, group by group.
    auto resumed = batch_norm_mlp<double>(32);
    AdamW<double> resumed_adamw(weight_decay_groups(*resumed), {.lr = 0.5});
    (void)load_checkpoint_from_bytes(file, *resumed, resumed_adamw);
    CHECK(resumed_adamw.options(0).weight_decay == 0.1);
    CHECK(resumed_adamw.options(1).weight_decay == 0.0);
    CHECK(resumed_adamw.lr(1) == 0.01);
    train_step(*net, adamw);
    train_step(*resumed, resumed_adamw);
    CHECK(snapshot(*resumed) == snapshot(*net));  // exactly: the same state and the same steps
}

TEST_CASE(
    "the optimiser state follows the module's names into a network that registers them in another order",
    "[checkpoint][optimizer]") {
    Pair saved("w", "b", true, 61);
    Adam<double> adam(saved.parameters(), {.lr = 0.05, .amsgrad = true});
    train_step(saved, adam);
    train_step(saved, adam);
    const Bytes bytes = save_checkpoint_to_bytes(saved, adam);
    const Dissected d = dissect(bytes);
    CHECK(d.header.contains("optimizer.exp_avg.w"));
    CHECK(d.header.contains("optimizer.max_exp_avg_sq.b"));
    CHECK(d.header.at("__metadata__").at("optimizer.step.b") == "2");

    const auto resumes_identically = [&](Pair& resumed, Optimizer<double>& optimizer) {
        const LoadReport r = load_checkpoint_from_bytes(bytes, resumed, optimizer);
        CHECK(r.optimizer_loaded);
        Pair twin("w", "b", true, 62);
        Adam<double> twin_adam(twin.parameters());
        (void)load_checkpoint_from_bytes(bytes, twin, twin_adam);
        train_step(twin, twin_adam);
        train_step(resumed, optimizer);
        CHECK(resumed.weight_.value() == twin.weight_.value());
        CHECK(resumed.bias_.value() == twin.bias_.value());
    };
    SECTION("an optimiser made from parameters(), whose positions differ") {
        Pair reordered("w", "b", false, 63);
        Adam<double> optimizer(reordered.parameters());
        resumes_identically(reordered, optimizer);
    }
    SECTION("an optimiser made from named_parameters()") {
        Pair reordered("w", "b", false, 64);
        Adam<double> optimizer(reordered.named_parameters());
        resumes_identically(reordered, optimizer);
    }
    SECTION("a name the network does not have, or a parameter the file has no state for") {
        Pair renamed("w", "bias", true, 65);
        Adam<double> optimizer(renamed.parameters(), {.lr = 0.5});
        const auto before = snapshot(renamed);
        REQUIRE_THROWS_MATCHES(
            load_checkpoint_from_bytes(bytes, renamed, optimizer, {.strict = false}), io_error,
            MessageContains({"optimiser state does not fit",
                             "a parameter 'b' that this optimiser does not have", "'bias'"}));
        CHECK(snapshot(renamed) == before);
        CHECK(optimizer.lr() == 0.5);

        // The file of a network with a parameter fewer: 'bias' has no state in it.
        struct Single final : Module<double> {
            Single() { register_parameter("w", TensorD::parameter(testing::normal(2, 3, 66))); }
            TensorD forward_impl(const TensorD& x) override { return x; }
            [[nodiscard]] std::string type_name() const override { return "Single"; }
        } single;
        SGD<double> sgd(single.parameters(), {.lr = 0.1, .momentum = 0.9});
        sum(square(single.parameters()[0])).backward();
        sgd.step();
        SGD<double> wider(renamed.parameters());
        REQUIRE_THROWS_MATCHES(load_checkpoint_from_bytes(save_checkpoint_to_bytes(single, sgd),
                                                          renamed, wider, {.strict = false}),
                               io_error, MessageContains("no 'step.bias' for parameter 'bias'"));
    }
}

TEST_CASE(
    "a checkpoint whose optimiser state is keyed by position, as files were before names, still loads",
    "[checkpoint][optimizer]") {
    // tests/fuzz/corpus/valid_double_amsgrad.safetensors: written by the fuzz target's network
    // and Adam(amsgrad) after two steps, with the state under "exp_avg.0", "step.0", ..., and
    // the output layer's tensors under their earlier names, layers.1.weight and layers.1.bias.
    const fs::path file = fs::path(GRADSCOPE_TEST_DATA_DIR) / ".." / "fuzz" / "corpus" /
                          "valid_double_amsgrad.safetensors";
    const auto make_net = [] {
        return mlp<double>(
            {.widths = {3, 4, 2}, .activation = Tanh{}, .norm = Normalization::batch});
    };
    auto net = make_net();
    Adam<double> positional(net->parameters());
    const LoadReport report = load_checkpoint(file, *net, positional);  // strict
    CHECK(report.optimizer_loaded);
    CHECK(std::count(report.loaded.begin(), report.loaded.end(), "layers.1.linear.bias") == 1);
    CHECK(positional.step_count() == 2);
    CHECK(positional.options().amsgrad);

    auto again = make_net();
    Adam<double> named(again->named_parameters());
    CHECK(load_checkpoint(file, *again, named).optimizer_loaded);
    CHECK(named.state().scalars == positional.state(named.param_keys()).scalars);

    // Saved again, it is keyed by name.
    const Dissected d = dissect(save_checkpoint_to_bytes(*net, positional));
    CHECK(d.header.contains("optimizer.exp_avg_sq.layers.1.linear.weight"));
}

TEST_CASE("a save that fails part way leaves the old file byte-identical and no temporary behind",
          "[checkpoint]") {
    TempDir dir;
    const fs::path file = dir.path / "net.safetensors";
    auto net = batch_norm_mlp<double>(21);
    save_checkpoint(file, *net);
    const Bytes old_bytes = read_bytes(file);
    CHECK(dir.files() == std::vector<std::string>{"net.safetensors"});

    warm_up(*net, 600);  // the new checkpoint would differ
    for (std::uint64_t limit : {std::uint64_t{0}, std::uint64_t{5}, std::uint64_t{100},
                                static_cast<std::uint64_t>(old_bytes.size() - 1)}) {
        INFO("the disk fills after " << limit << " bytes");
        CHECK_THROWS_MATCHES(save_checkpoint(file, *net, {.fail_after_bytes = limit}), io_error,
                             Catch::Matchers::Predicate<io_error>([&](const io_error& e) {
                                 const std::string m = e.what();
                                 return m.find(file.string()) != std::string::npos &&
                                        m.find("failed after " + std::to_string(limit) + " of") !=
                                            std::string::npos &&
                                        m.find("No space left on device") != std::string::npos;
                             }));
        CHECK(read_bytes(file) == old_bytes);
        CHECK(dir.files() == std::vector<std::string>{"net.safetensors"});
    }

    save_checkpoint(file, *net, {.fail_after_bytes = old_bytes.size()});  // exactly enough room
    CHECK(read_bytes(file) != old_bytes);
    CHECK(dir.files() == std::vector<std::string>{"net.safetensors"});
}

TEST_CASE("saving into a directory that does not exist throws io_error naming the file",
          "[checkpoint]") {
    TempDir dir;
    const fs::path file = dir.path / "no" / "such" / "dir" / "net.safetensors";
    auto net = batch_norm_mlp<float>(22);
    CHECK_THROWS_MATCHES(save_checkpoint(file, *net), io_error,
                         Catch::Matchers::Predicate<io_error>([&](const io_error& e) {
                             const std::string m = e.what();
                             return m.find(file.string()) != std::string::npos &&
                                    m.find("No such file or directory") != std::string::npos;
                         }));
    CHECK_FALSE(fs::exists(dir.path / "no"));
}

TEST_CASE(
    "every truncation and thousands of corrupted bytes give io_error or a load, never a crash",
    "[checkpoint]") {
    Fixture f;
    const auto before = snapshot(*f.net);
    for (std::size_t n = 0; n < f.valid.size(); ++n) {
        const Bytes cut(f.valid.begin(), f.valid.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS(load_checkpoint_from_bytes(cut, *f.net), io_error);
    }
    CHECK(snapshot(*f.net) == before);

    std::mt19937_64 rng(23);
    for (int trial = 0; trial < 3000; ++trial) {
        Bytes bytes = f.valid;
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < flips; ++i) {
            bytes[rng() % std::min<std::size_t>(bytes.size(), 900)] =
                static_cast<std::byte>(rng() & 0xff);
        }
        const auto snap = snapshot(*f.net);
        try {
            (void)load_checkpoint_from_bytes(bytes, *f.net);
        } catch (const io_error&) {
            REQUIRE(snapshot(*f.net) == snap);
        }
    }
}

TEST_CASE("a resumed run with dropout, a schedule and a shuffling loader takes the same steps",
          "[checkpoint][dropout]") {
    const auto make = [](std::uint64_t seed) {
        return mlp<double>(
            {.widths = {4, 8, 8, 3}, .activation = Tanh{}, .dropout = 0.25, .seed = seed});
    };
    data::DataLoader<double> loader(
        data::TensorDataset<double>(testing::normal(48, 4, 30), testing::normal(48, 3, 31)),
        {.batch_size = 16, .shuffle = true, .seed = 5});
    const auto train_epoch = [&loader](MLP<double>& net, Adam<double>& adam,
                                       CosineAnnealingLR& schedule, int epoch) {
        loader.set_epoch(epoch);
        for (const auto& batch : loader) {
            adam.zero_grad();
            mse_loss(net(TensorD::constant(batch.x)), TensorD::constant(batch.y)).backward();
            adam.step();
        }
        schedule.step();
    };
    // Every Dropout's stream, by module path.
    const auto streams = [](MLP<double>& net) {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& [path, m] : net.named_modules()) {
            if (!m->extra_state().empty()) out.emplace_back(path, m->extra_state());
        }
        return out;
    };

    auto net = make(1);  // six epochs without a stop
    Adam<double> adam(net->parameters(), {.lr = 0.01});
    CosineAnnealingLR schedule(adam, {.T_max = 6});
    for (int epoch = 0; epoch < 3; ++epoch) train_epoch(*net, adam, schedule, epoch);
    const Bytes file =
        save_checkpoint_to_bytes(*net, adam, {.metadata = scheduler_metadata(schedule.state())});
    for (int epoch = 3; epoch < 6; ++epoch) train_epoch(*net, adam, schedule, epoch);

    auto resumed = make(2);  // other weights, and other dropout seeds
    Adam<double> resumed_adam(resumed->parameters(), {.lr = 0.01});
    CosineAnnealingLR resumed_schedule(resumed_adam, {.T_max = 6});
    const LoadReport report = load_checkpoint_from_bytes(file, *resumed, resumed_adam);
    resumed_schedule.load_state(scheduler_state_from_metadata(report.metadata));
    for (int epoch = 3; epoch < 6; ++epoch) {
        train_epoch(*resumed, resumed_adam, resumed_schedule, epoch);
    }
    CHECK(snapshot(*resumed) == snapshot(*net));  // exactly: the same masks on the same bits
    CHECK(streams(*resumed) == streams(*net));
    CHECK(resumed_adam.lr() == adam.lr());

    // Each Dropout's stream travels in the metadata under PyTorch's extra-state key.
    auto at_save = make(3);
    (void)load_checkpoint_from_bytes(file, *at_save);
    const nlohmann::json metadata = dissect(file).header.at("__metadata__");
    REQUIRE(streams(*at_save).size() == 2);
    for (const auto& [path, state] : streams(*at_save)) {
        CHECK(metadata.at(path + "._extra_state") == state);
    }

    SECTION(
        "a file without the streams (PyTorch's, or an older one) loads; each layer keeps its own") {
        const Bytes without = with_header(file, [&](nlohmann::json& h) {
            for (const auto& [path, state] : streams(*net)) {
                h.at("__metadata__").erase(path + "._extra_state");
            }
        });
        auto other = make(2);
        auto twin = make(2);
        const auto own = streams(*other);
        (void)load_checkpoint_from_bytes(without, *other);
        (void)load_checkpoint_from_bytes(file, *twin);
        CHECK(streams(*other) == own);
        CHECK(streams(*twin) != own);
        CHECK(snapshot(*other) == snapshot(*twin));  // the weights and buffers load either way

        // ... as with {.extra_state = false}, which dist::load_checkpoint uses on every rank.
        auto third = make(2);
        (void)load_checkpoint_from_bytes(file, *third, {.extra_state = false});
        CHECK(streams(*third) == own);
        CHECK(snapshot(*third) == snapshot(*twin));
    }
    SECTION("a stream that cannot be read is an io_error naming its key; nothing changes") {
        const Bytes corrupt = with_header(file, [](nlohmann::json& h) {
            h.at("__metadata__").at("layers.1.dropout._extra_state") = "5 4 3 spare -";
        });
        auto other = make(2);
        Adam<double> other_adam(other->parameters());
        const auto before = snapshot(*other);
        const auto own = streams(*other);
        CHECK_THROWS_MATCHES(
            load_checkpoint_from_bytes(corrupt, *other, other_adam), io_error,
            MessageContains({"'layers.1.dropout._extra_state'", "Rng::set_state"}));
        CHECK(streams(*other) == own);  // layers.0's stream, set first, was put back
        CHECK(snapshot(*other) == before);
        CHECK(other_adam.step_count() == 0);
    }
    SECTION("an optimiser state that does not fit puts the streams back too") {
        auto other = make(2);
        Adam<double> elsewhere(std::vector<TensorD>{testing::param(2, 2, 1)}, {});
        const auto own = streams(*other);
        CHECK_THROWS_MATCHES(load_checkpoint_from_bytes(file, *other, elsewhere), io_error,
                             MessageContains("the optimiser state does not fit"));
        CHECK(streams(*other) == own);
    }
    SECTION("a metadata key of yours cannot take a stream's place") {
        CHECK_THROWS_MATCHES(
            save_checkpoint_to_bytes(*net, {.metadata = {{"layers.0.dropout._extra_state", "x"}}}),
            io_error, MessageContains("'layers.0.dropout._extra_state'"));
    }
}
