// The IDX reader (io/idx.hpp): small files written here, plain and gzipped, read back exactly;
// every kind of broken file is an io_error naming the file; and, when Debian's
// dataset-fashion-mnist is installed, the real Fashion-MNIST test set reads as it should.
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

#ifdef GRADSCOPE_TEST_HAVE_ZLIB

#include <gradscope/io/idx.hpp>

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace gradscope;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

using gradscope::testing::write_file;

// Every test's files go to their own directory, named after this file.
struct TempDir : gradscope::testing::TempDir {
    TempDir() : gradscope::testing::TempDir("gradscope_test_idx_") {}
};

// An IDX file: magic 0x00 0x00 <type> <rank>, big-endian dimensions, then `data`.
Bytes idx_file(int type, const std::vector<std::uint32_t>& dims, const Bytes& data) {
    Bytes out = {0, 0, static_cast<std::uint8_t>(type), static_cast<std::uint8_t>(dims.size())};
    for (std::uint32_t d : dims) {
        for (int shift = 24; shift >= 0; shift -= 8)
            out.push_back(static_cast<std::uint8_t>(d >> shift));
    }
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

Bytes counting(std::size_t n) {
    Bytes out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
    return out;
}

fs::path write_gzip(const fs::path& path, const Bytes& bytes) {
    gzFile out = gzopen(path.string().c_str(), "wb");
    REQUIRE(out != nullptr);
    REQUIRE(gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())) ==
            static_cast<int>(bytes.size()));
    REQUIRE(gzclose(out) == Z_OK);
    return path;
}

Bytes read_plain(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// read_idx must refuse the file with an io_error naming it and containing every fragment.
void expect_rejected(const fs::path& path, const std::vector<std::string>& fragments,
                     const IdxReadOptions& options = {}) {
    try {
        (void)read_idx(path, options);
        FAIL("read_idx accepted " << path.string());
    } catch (const io_error& e) {
        const std::string message = e.what();
        INFO(message);
        CHECK(message.find(path.string()) != std::string::npos);
        for (const std::string& fragment : fragments)
            CHECK(message.find(fragment) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("images and labels read back exactly, plain and gzipped", "[idx]") {
    TempDir dir;
    const Bytes pixels = counting(3 * 2 * 5);
    const Bytes labels = {7, 0, 9};
    for (const bool gzipped : {false, true}) {
        INFO((gzipped ? "gzipped" : "plain"));
        const auto write = gzipped ? write_gzip : write_file<Bytes>;
        const std::string ext = gzipped ? ".gz" : "";
        const IdxArray images =
            read_idx(write(dir.path / ("images" + ext), idx_file(0x08, {3, 2, 5}, pixels)));
        CHECK(images.dims == std::vector<std::uint32_t>{3, 2, 5});
        CHECK(images.data == pixels);

        const Matrix<float> rows = idx_images_as_rows(images);
        REQUIRE(rows.rows() == 3);
        REQUIRE(rows.cols() == 10);
        for (Index i = 0; i < rows.size(); ++i) {
            CHECK(rows.data()[i] ==
                  static_cast<float>(pixels[static_cast<std::size_t>(i)]) * (1.0f / 255.0f));
        }
        CHECK(idx_images_as_rows(images, 1.0f)(2, 9) == static_cast<float>(pixels.back()));
        // In double, each pixel is its byte / 255 rounded once, in double.
        const Matrix<double> in_double = idx_images_as_rows<double>(images);
        REQUIRE(in_double.rows() == 3);
        for (Index i = 0; i < in_double.size(); ++i) {
            CHECK(in_double.data()[i] ==
                  static_cast<double>(pixels[static_cast<std::size_t>(i)]) * (1.0 / 255.0));
        }
        CHECK(idx_images_as_rows<double>(images, 0.5)(2, 9) == 0.5 * pixels.back());

        const IdxArray label_array =
            read_idx(write(dir.path / ("labels" + ext), idx_file(0x08, {3}, labels)));
        CHECK(label_array.dims == std::vector<std::uint32_t>{3});
        CHECK(idx_labels(label_array) == std::vector<int>{7, 0, 9});
    }
}

TEST_CASE("broken IDX files give io_error naming the file and the problem", "[idx]") {
    TempDir dir;
    const Bytes valid = idx_file(0x08, {2, 3, 4}, counting(24));

    SECTION("wrong magic number") {
        Bytes b = valid;
        b[0] = 0x12;
        b[1] = 0x34;
        expect_rejected(write_file(dir.path / "magic", b),
                        {"magic number is 0x12340803", "0x00000801", "0x00000803"});
    }
    SECTION("a data type other than unsigned byte") {
        expect_rejected(
            write_file(dir.path / "floats", idx_file(0x0D, {2, 3, 4}, counting(96))),
            {"0x00000D03", "data type is 0x0D (32-bit float)", "only 0x08 (unsigned byte)"});
    }
    SECTION("a dimension count out of range") {
        expect_rejected(write_file(dir.path / "rank0", idx_file(0x08, {}, {})), {"0 dimensions"});
        expect_rejected(write_file(dir.path / "rank4", idx_file(0x08, {1, 1, 1, 1}, {5})),
                        {"magic number 0x00000804", "4 dimensions"});
    }
    SECTION("too short for a magic number or its dimensions") {
        expect_rejected(write_file(dir.path / "empty", Bytes{}), {"0 bytes long"});
        expect_rejected(
            write_file(dir.path / "short_header", Bytes(valid.begin(), valid.begin() + 9)),
            {"header needs 16 bytes", "has 9"});
    }
    SECTION("truncated data") {
        expect_rejected(write_file(dir.path / "truncated", Bytes(valid.begin(), valid.end() - 4)),
                        {"truncated", "[2 x 3 x 4] need 24 bytes", "has 20"});
        expect_rejected(
            write_gzip(dir.path / "truncated.gz", Bytes(valid.begin(), valid.end() - 4)),
            {"truncated", "need 24 bytes", "has 20"});
    }
    SECTION("trailing bytes") {
        Bytes b = valid;
        b.insert(b.end(), {1, 2, 3});
        expect_rejected(write_file(dir.path / "trailing", b),
                        {"3 trailing bytes after the 24 bytes"});
        expect_rejected(write_gzip(dir.path / "trailing.gz", b), {"3 trailing bytes"});
    }
    SECTION("dimensions too large to be real") {
        expect_rejected(
            write_file(dir.path / "huge", idx_file(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 2}, {})),
            {"more than 2^40 bytes"});
        // Large but possible: refused for want of data, without allocating what the header claims.
        expect_rejected(
            write_file(dir.path / "claims", idx_file(0x08, {60000, 28, 28}, counting(10))),
            {"need 47040000 bytes", "has 10"});
    }
    SECTION("corrupt gzip: damaged data, a damaged checksum, a cut stream") {
        const Bytes big = idx_file(0x08, {50, 20, 20}, counting(20000));
        const fs::path good = write_gzip(dir.path / "good.gz", big);
        const Bytes compressed = read_plain(good);
        REQUIRE(compressed.size() > 40);

        Bytes damaged = compressed;
        for (std::size_t i = 12; i < 20; ++i) damaged[i] ^= 0x5A;
        expect_rejected(write_file(dir.path / "damaged.gz", damaged), {"corrupt gzip data"});

        Bytes bad_crc = compressed;
        bad_crc[bad_crc.size() - 6] ^=
            0x01;  // the CRC-32 is in the last 8 bytes, before the length
        expect_rejected(write_file(dir.path / "bad_crc.gz", bad_crc),
                        {"corrupt gzip data", "incorrect data check"});

        expect_rejected(
            write_file(dir.path / "cut.gz",
                       Bytes(compressed.begin(), compressed.begin() + compressed.size() / 2)),
            {"corrupt gzip data", "unexpected end of file"});
    }
    SECTION("a missing file or a directory") {
        expect_rejected(dir.path / "no_such_file.gz", {"cannot open"});
        expect_rejected(dir.path, {"directory"});
    }
}

TEST_CASE("max_items reads the first items only, or the whole file when it holds no more",
          "[idx]") {
    TempDir dir;
    const Bytes pixels = counting(5 * 2 * 3);
    const Bytes file = idx_file(0x08, {5, 2, 3}, pixels);
    for (const bool gzipped : {false, true}) {
        INFO((gzipped ? "gzipped" : "plain"));
        const auto write = gzipped ? write_gzip : write_file<Bytes>;
        const fs::path path = write(dir.path / (gzipped ? "images.gz" : "images"), file);

        const IdxArray first = read_idx(path, {.max_items = 2});
        CHECK(first.dims == std::vector<std::uint32_t>{2, 2, 3});
        CHECK(first.data == Bytes(pixels.begin(), pixels.begin() + 12));
        const Matrix<float> rows = idx_images_as_rows(first);
        CHECK(rows.rows() == 2);
        CHECK(rows.cols() == 6);

        for (const std::size_t all : {std::size_t{5}, std::size_t{9}}) {
            const IdxArray whole = read_idx(path, {.max_items = all});
            CHECK(whole.dims == std::vector<std::uint32_t>{5, 2, 3});
            CHECK(whole.data == pixels);
        }
        const IdxArray none = read_idx(path, {.max_items = 0});
        CHECK(none.dims == std::vector<std::uint32_t>{0, 2, 3});
        CHECK(none.data.empty());
        CHECK(idx_images_as_rows(none).rows() == 0);
    }
    const fs::path labels = write_file(dir.path / "labels", idx_file(0x08, {4}, {3, 1, 4, 1}));
    CHECK(idx_labels(read_idx(labels, {.max_items = 3})) == std::vector<int>{3, 1, 4});

    // Data missing inside the first items is still refused; what follows them is not read, so
    // trailing bytes pass unnoticed then and are refused only when the whole file is read.
    expect_rejected(
        write_file(dir.path / "truncated", Bytes(file.begin(), file.begin() + 16 + 9)),
        {"truncated: the first 2 items of the dimensions [5 x 2 x 3] need 12 bytes", "has 9"},
        {.max_items = 2});
    Bytes trailing = file;
    trailing.insert(trailing.end(), {1, 2, 3});
    const fs::path trailing_path = write_file(dir.path / "trailing", trailing);
    CHECK(read_idx(trailing_path, {.max_items = 4}).dims == std::vector<std::uint32_t>{4, 2, 3});
    expect_rejected(trailing_path, {"3 trailing bytes"}, {.max_items = 5});
}

TEST_CASE("the helpers refuse arrays of the wrong kind", "[idx]") {
    TempDir dir;
    const IdxArray labels =
        read_idx(write_file(dir.path / "labels", idx_file(0x08, {4}, {1, 2, 3, 4})));
    const IdxArray images =
        read_idx(write_file(dir.path / "images", idx_file(0x08, {1, 2, 2}, {1, 2, 3, 4})));
    CHECK_THROWS_WITH(idx_images_as_rows(labels), Catch::Contains((dir.path / "labels").string()) &&
                                                      Catch::Contains("expected images"));
    CHECK_THROWS_WITH(idx_labels(images),
                      Catch::Contains("expected labels (one dimension), got [1 x 2 x 2]"));
    IdxArray edited = labels;
    edited.data.pop_back();
    CHECK_THROWS_AS(idx_labels(edited), io_error);
}

TEST_CASE("the Fashion-MNIST test set reads as 10000 images of 28 by 28 with labels 0 to 9",
          "[idx]") {
    const fs::path dir = "/usr/share/datasets/fashion-mnist";
    const fs::path images_file = dir / "t10k-images-idx3-ubyte.gz";
    const fs::path labels_file = dir / "t10k-labels-idx1-ubyte.gz";
    if (!fs::exists(images_file) || !fs::exists(labels_file)) {
        WARN("skipped: " << dir.string()
                         << " is absent (Debian: apt-get install dataset-fashion-mnist)");
        return;
    }
    const IdxArray images = read_idx(images_file);
    CHECK(images.dims == std::vector<std::uint32_t>{10000, 28, 28});
    const Matrix<float> x = idx_images_as_rows(images);
    CHECK(x.rows() == 10000);
    CHECK(x.cols() == 784);
    CHECK(x.minCoeff() == 0.0f);
    CHECK(x.maxCoeff() == 1.0f);

    const std::vector<int> labels = idx_labels(read_idx(labels_file));
    REQUIRE(labels.size() == 10000);
    std::vector<int> per_class(10, 0);
    for (int label : labels) {
        REQUIRE((label >= 0 && label <= 9));
        ++per_class[static_cast<std::size_t>(label)];
    }
    CHECK(per_class == std::vector<int>(10, 1000));  // the test set is balanced

    const IdxArray first = read_idx(images_file, {.max_items = 500});
    CHECK(first.dims == std::vector<std::uint32_t>{500, 28, 28});
    CHECK(first.data == Bytes(images.data.begin(), images.data.begin() + 500 * 28 * 28));
}

#else

TEST_CASE("the IDX reader tests need zlib", "[idx]") {
    WARN("skipped: zlib was not found when the tests were configured, and io/idx.hpp needs it");
}

#endif
