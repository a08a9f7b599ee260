// Reading IDX files, the format of MNIST and Fashion-MNIST, plain or gzip-compressed (the
// form the datasets ship in). Needs zlib (Debian: zlib1g-dev; link ZLIB::ZLIB or -lz); no other
// gradscope header does, so include this one yourself.
//
//   IdxArray images = read_idx("t10k-images-idx3-ubyte.gz");  // dims {10000, 28, 28}
//   IdxArray labels = read_idx("t10k-labels-idx1-ubyte.gz");  // dims {10000}
//   IdxArray first = read_idx("t10k-images-idx3-ubyte.gz", {.max_items = 500});  // {500, 28, 28}
//   Matrix<float> x = idx_images_as_rows(images);             // [10000 x 784], in [0, 1]
//   std::vector<int> y = idx_labels(labels);
//
// The format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number 0x00 0x00 <type>
// <dimension count>, each dimension as a big-endian 32-bit integer, then the values row-major.
// Only unsigned bytes (type 0x08) are supported, which is what the MNIST family uses: magic
// 0x00000801 for labels, 0x00000803 for images (0x00000802, a matrix, is read too).
// Everything is checked, and every problem is an io_error naming the file: the magic number
// (expected and found, in hex), the data type, the dimension count, data shorter or longer
// than the dimensions say, gzip corruption (zlib's own message), a file that cannot be opened.
//
// Files are read through zlib whether compressed or not: gzread passes a file that is not
// gzip through unchanged, so one path serves both.
//
// With IdxReadOptions::max_items, only the first items (images or labels: the first dimension)
// are read and kept, so a quick run on 5000 of Fashion-MNIST's 60000 training images neither
// decompresses nor holds the rest. The bytes after them are then not read, so neither trailing
// bytes nor a gzip checksum error there is noticed.
#pragma once

#include "../core/concepts.hpp"
#include "../core/matrix.hpp"
#include "errors.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace gradscope {

// An IDX file's contents: its dimensions and its unsigned bytes, row-major.
struct IdxArray {
    std::filesystem::path path;       // where it was read from, for messages
    std::vector<std::uint32_t> dims;  // {count} for labels, {count, rows, cols} for images
    std::vector<std::uint8_t> data;   // product(dims) values
};

struct IdxReadOptions {
    // Read at most this many items (the first dimension); unset: all of them.
    std::optional<std::size_t> max_items = std::nullopt;
};

namespace detail::idx {

inline constexpr int unsigned_byte_type = 0x08;
inline constexpr int max_dimensions = 3;
inline constexpr std::uint64_t max_bytes = std::uint64_t{1} << 40;  // far beyond any real dataset

[[noreturn]] inline void fail(const std::filesystem::path& path, const std::string& what) {
    throw io_error(path.string() + ": " + what);
}

inline std::string hex(std::uint32_t value, int digits) {
    static constexpr char symbols[] = "0123456789ABCDEF";
    std::string out = "0x";
    for (int i = digits - 1; i >= 0; --i) out += symbols[(value >> (4 * i)) & 0xF];
    return out;
}

inline std::uint32_t big_endian_u32(const std::uint8_t* b) {
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           std::uint32_t{b[3]};
}

inline std::string type_name(int type) {
    switch (type) {
        case 0x08:
            return "unsigned byte";
        case 0x09:
            return "signed byte";
        case 0x0B:
            return "16-bit integer";
        case 0x0C:
            return "32-bit integer";
        case 0x0D:
            return "32-bit float";
        case 0x0E:
            return "64-bit float";
        default:
            return "not an IDX type";
    }
}

inline std::string dims_string(const std::vector<std::uint32_t>& dims) {
    std::string out = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) out += (i ? " x " : "") + std::to_string(dims[i]);
    return out + "]";
}

// An open gzFile that reports zlib's errors as io_error and closes itself.
class GzReader {
public:
    explicit GzReader(const std::filesystem::path& path) : path_(path) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) fail(path, "cannot open: no such file");
        if (std::filesystem::is_directory(path, ec)) fail(path, "cannot open: it is a directory");
        file_ = gzopen(path.string().c_str(), "rb");
        if (file_ == nullptr) {
            const int code = errno;
            fail(path, "cannot open: " + std::generic_category().message(code));
        }
        gzbuffer(file_, 1u << 17);
    }
    GzReader(const GzReader&) = delete;
    GzReader& operator=(const GzReader&) = delete;
    ~GzReader() { gzclose(file_); }

    // Reads up to `size` bytes into `out`; fewer only at the end of the data.
    std::size_t read(std::uint8_t* out, std::size_t size) {
        std::size_t got = 0;
        while (got < size) {
            const auto chunk = static_cast<unsigned>(std::min<std::size_t>(size - got, 1u << 20));
            const int n = gzread(file_, out + got, chunk);
            if (n > 0) got += static_cast<std::size_t>(n);
            if (n < static_cast<int>(chunk)) {  // an error, or the end: gzerror tells which
                check();
                if (n <= 0) break;
            }
        }
        return got;
    }

private:
    void check() {
        int code = Z_OK;
        const char* message = gzerror(file_, &code);
        if (code == Z_OK) return;
        if (code == Z_ERRNO) {
            const int err = errno;
            fail(path_, "reading failed: " + std::generic_category().message(err));
        }
        std::string text = message != nullptr ? message : "unknown zlib error";
        const std::string prefix = path_.string() + ": ";  // zlib puts the path in front
        if (text.rfind(prefix, 0) == 0) text.erase(0, prefix.size());
        fail(path_, "corrupt gzip data: " + text);
    }

    std::filesystem::path path_;
    gzFile file_ = nullptr;
};

}  // namespace detail::idx

// Reads an IDX file of unsigned bytes, gzip-compressed or not (its first max_items items only,
// if given).
inline IdxArray read_idx(const std::filesystem::path& path, const IdxReadOptions& options = {}) {
    using namespace detail::idx;
    GzReader in(path);
    IdxArray out;
    out.path = path;

    std::uint8_t magic_bytes[4] = {};
    const std::size_t got_magic = in.read(magic_bytes, 4);
    if (got_magic < 4) {
        fail(path, "the file is " + std::to_string(got_magic) +
                       " bytes long, too short for an IDX magic number");
    }
    const std::uint32_t magic = big_endian_u32(magic_bytes);
    const std::string expected =
        "expected " + hex(0x801, 8) + " (labels) or " + hex(0x803, 8) + " (images)";
    if (magic_bytes[0] != 0 || magic_bytes[1] != 0) {
        fail(path, "not an IDX file: the magic number is " + hex(magic, 8) + ", " + expected);
    }
    const int type = magic_bytes[2];
    if (type != unsigned_byte_type) {
        fail(path, "the magic number " + hex(magic, 8) + " says the data type is " + hex(type, 2) +
                       " (" + type_name(type) + "); only " + hex(unsigned_byte_type, 2) +
                       " (unsigned byte) is supported, " + expected);
    }
    const int rank = magic_bytes[3];
    if (rank < 1 || rank > max_dimensions) {
        fail(path, "the magic number " + hex(magic, 8) + " says " + std::to_string(rank) +
                       " dimensions; 1 to " + std::to_string(max_dimensions) + " are supported, " +
                       expected);
    }

    std::uint8_t dim_bytes[4 * max_dimensions] = {};
    const auto dims_size = static_cast<std::size_t>(4 * rank);
    const std::size_t got_dims = in.read(dim_bytes, dims_size);
    if (got_dims < dims_size) {
        fail(path, "truncated: the header needs " + std::to_string(4 + dims_size) + " bytes for " +
                       std::to_string(rank) + " dimensions but the file has " +
                       std::to_string(4 + got_dims));
    }
    std::uint64_t count = 1;
    for (int d = 0; d < rank; ++d) {
        const std::uint32_t dim = big_endian_u32(dim_bytes + 4 * d);
        out.dims.push_back(dim);
        if (dim != 0 && count > max_bytes / dim) {
            fail(path,
                 "the dimensions " + dims_string(out.dims) + " describe more than 2^40 bytes");
        }
        count *= dim;
    }

    // The first max_items items: that many rows of the first dimension.
    const std::vector<std::uint32_t> file_dims = out.dims;
    const bool first_only = options.max_items && *options.max_items < out.dims[0];
    if (first_only) {
        count = count / out.dims[0] * *options.max_items;
        out.dims[0] = static_cast<std::uint32_t>(*options.max_items);
    }
    const std::string what_needs = first_only
                                       ? "the first " + std::to_string(out.dims[0]) +
                                             " items of the dimensions " + dims_string(file_dims)
                                       : "the dimensions " + dims_string(out.dims);

    // Grow with the data actually there rather than trusting the header with one allocation,
    // and, reading the whole file, read one byte more than needed to detect trailing bytes
    // (and, for gzip, to reach the end of the stream, where zlib checks the CRC).
    const auto needed = static_cast<std::size_t>(count);
    const std::size_t wanted = first_only ? needed : needed + 1;
    std::size_t have = 0;
    while (have < wanted) {
        const std::size_t step = std::max<std::size_t>(have, std::size_t{1} << 20);  // doubling
        const std::size_t want = std::min(wanted - have, step);
        out.data.resize(have + want);
        const std::size_t n = in.read(out.data.data() + have, want);
        have += n;
        if (n < want) break;
    }
    if (have < needed) {
        fail(path, "truncated: " + what_needs + " need " + std::to_string(needed) +
                       " bytes of data but the file has " + std::to_string(have));
    }
    if (have > needed) {
        // Count them for the message, up to a limit: a gzip bomb should not keep us reading.
        std::uint8_t rest[4096];
        std::uint64_t trailing = have - needed;
        while (trailing < (1u << 20)) {
            const std::size_t n = in.read(rest, sizeof rest);
            if (n == 0) break;
            trailing += n;
        }
        fail(path, std::to_string(trailing) + (trailing >= (1u << 20) ? " or more" : "") +
                       " trailing bytes after the " + std::to_string(needed) +
                       " bytes of data the dimensions " + dims_string(out.dims) + " call for");
    }
    out.data.resize(needed);
    return out;
}

namespace detail::idx {

// An IdxArray built or edited by hand may disagree with itself.
inline void check_consistent(const IdxArray& a) {
    std::uint64_t count = 1;
    bool overflow = false;
    for (std::uint32_t d : a.dims) {
        if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d) overflow = true;
        count *= d;
    }
    if (std::find(a.dims.begin(), a.dims.end(), 0u) != a.dims.end()) overflow = false;  // then 0
    if (a.dims.empty() || overflow || count != a.data.size()) {
        fail(a.path, "the array holds " + std::to_string(a.data.size()) +
                         " bytes but its dimensions " + dims_string(a.dims) + " call for " +
                         std::to_string(a.dims.empty() ? 0 : count));
    }
}

}  // namespace detail::idx

// Images as one row per image, scaled (by default to [0, 1]): [count x rows*cols], in float
// or, as idx_images_as_rows<double>(images), in double.
template <TensorScalar T = float>
Matrix<T> idx_images_as_rows(const IdxArray& images,
                             std::type_identity_t<T> scale = T(1) / T(255)) {
    using namespace detail::idx;
    // A NaN or infinite scale would turn every pixel into NaN or infinity without a word.
    gradscope::detail::check_finite("idx_images_as_rows", "scale", scale);
    if (images.dims.size() < 2) {
        fail(images.path,
             "expected images (dimensions [count x rows x cols]), got " + dims_string(images.dims));
    }
    check_consistent(images);
    const auto rows = static_cast<Index>(images.dims[0]);
    const auto cols = rows == 0 ? Index{0} : static_cast<Index>(images.data.size()) / rows;
    Matrix<T> out(rows, cols);
    for (std::size_t i = 0; i < images.data.size(); ++i) {
        out.data()[i] = scale * static_cast<T>(images.data[i]);
    }
    return out;
}

// Labels as integers.
inline std::vector<int> idx_labels(const IdxArray& labels) {
    using namespace detail::idx;
    if (labels.dims.size() != 1) {
        fail(labels.path, "expected labels (one dimension), got " + dims_string(labels.dims));
    }
    check_consistent(labels);
    return {labels.data.begin(), labels.data.end()};
}

}  // namespace gradscope
