// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), so that a
// network trained here can be loaded by PyTorch and the other way round. Needs nlohmann_json
// (Debian: nlohmann-json3-dev); no other gradscope header does, so include this one yourself.
//
//   save_checkpoint("net.safetensors", *net);            // every parameter and buffer
//   save_checkpoint("run.safetensors", *net, adam);      // ... and the optimiser's state
//   LoadReport r = load_checkpoint("net.safetensors", *net);           // strict
//   load_checkpoint("run.safetensors", *net, adam, {.strict = false});
//
// The format: 8 bytes, a little-endian unsigned header length N; N bytes of JSON,
//   {"__metadata__": {"key": "value", ...},                                   (optional)
//    "<name>": {"dtype": "F32", "shape": [8, 4], "data_offsets": [begin, end]}, ...}
// padded with spaces to a multiple of 8 as the reference implementation pads it; then the
// tensors' raw little-endian bytes, row-major, offsets counted from the first byte after the
// header. The tensors must tile the data region exactly: no gaps, no overlaps, nothing after.
//
// Names are the module's dotted names (named_parameters(), then named_buffers()). Tensors are
// written as F32 for Module<float> and F64 for Module<double>. A module whose layout moved a
// tensor lists its earlier name (Module::earlier_tensor_names; mlp()'s output layer, now
// layers.L.linear, was layers.L): loading reads a file's tensor, and its optimiser state, under
// the earlier name when the file lacks the current one.
//
// Shapes. gradscope keeps every tensor 2-D, and per-feature vectors (biases, normalisation
// scales, running statistics) as [1 x n] rows. PyTorch makes those 1-D, and makes
// BatchNorm's num_batches_tracked a 0-d scalar. With SaveOptions::pytorch_shapes (the default)
// the file uses PyTorch's shapes, so that
// torch_module.load_state_dict({name: tensor for each tensor in the file}) accepts it:
//   - a [1 x 1] tensor registered as a TensorRole::counter (num_batches_tracked) is written as
//     a scalar, shape [];
//   - any other [1 x n] tensor is written as [n], except one registered as a
//     TensorRole::weight: that is an [out x in] matrix that happens to have one row
//     (Linear(in, 1)), which PyTorch keeps 2-D as well;
//   - everything else is written [rows, cols].
// The roles are what the modules declared when they registered their tensors (nn/module.hpp),
// so a user's module gets PyTorch's shapes by declaring its weights as weights.
// Counters. A [1 x 1] tensor registered as a TensorRole::counter (num_batches_tracked) is
// written as I64, as PyTorch writes it, so that the file's state_dict has PyTorch's dtypes too;
// its value must be a whole number within int64's range. (Files written before this held it in
// the module's dtype; they still load.) Loading accepts, for a [1 x n] tensor, [1, n] or [n],
// and for a [1 x 1] tensor also []; any other shape must match [rows, cols]. F32 and F64 are
// converted to the module's type (a finite double too large for a float is an error, not an
// infinity); I64 is accepted for a single value ([], [1] or [1, 1]).
//
// Optimiser state (OptimizerState, see optim/optimizer.hpp), when saved, travels as
//   tensors   "optimizer.<state name>", e.g. "optimizer.exp_avg.layers.0.linear.weight",
//             always [rows, cols];
//   metadata  "optimizer.step_count" = the optimiser's step count, as a decimal integer, and
//             "optimizer.<scalar>" for each scalar, e.g. "optimizer.lr",
//             "optimizer.step.layers.0.linear.weight", as the shortest decimal that reads back
//             as the same double
// Each parameter's entries are keyed by the module's name for it (Note [Optimiser state by
// name]), whether the optimiser was made from named_parameters() or parameters(): the state is
// matched by name on loading, so a network that registers the same parameters in another order
// gets each one's own state back, and a name the network lacks, or a parameter the file has no
// state for, is an io_error naming it. An optimiser holding a tensor that is not one of the
// module's parameters keeps its own keys. Files written when the state was keyed by position
// ("optimizer.exp_avg.3") still load, by position
// (metadata values are strings by the format's rules). The prefix "optimizer." is reserved:
// a module tensor or a metadata key of yours may not start with it. Loading a module alone
// ignores the optimiser's entries; they are neither loaded nor "unexpected".
//
// Extra state (Module::extra_state: Dropout's random stream) travels as metadata under the key
// PyTorch's state_dict gives it, "<module path>._extra_state" ("_extra_state" for the root), so
// that a resumed run continues the stream. Saving refuses a metadata key of yours that is one of
// those keys. Loading restores each module's state that the file has; a module whose state the
// file lacks (a file written by PyTorch, or before the module kept one) keeps its own.
//
// Saving is atomic: the file is written to "<name>.tmp-<random>" next to the target, flushed,
// fsync'ed (on POSIX systems) and renamed over the target. On any failure the temporary is
// removed, io_error names the file and what failed, and the previous file is untouched.
//
// Loading reads and checks everything (the format, every tensor's dtype and shape, strictness,
// the optimiser state) before it changes anything: on io_error the module and the optimiser
// are exactly as they were. Malformed input of any kind is an io_error, never undefined
// behaviour (tests/fuzz/fuzz_safetensors.cpp fuzzes load_checkpoint_from_bytes).
#pragma once

#include "../core/matrix.hpp"
#include "../core/tensor.hpp"
#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"
#include "errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#endif

namespace gradscope {

static_assert(std::endian::native == std::endian::little,
              "gradscope's safetensors reader and writer copy tensor bytes as they are in memory, "
              "and safetensors is little-endian; a big-endian host would need byte swapping, "
              "which is not implemented");

struct SaveOptions {
    // Write the shapes PyTorch gives the same tensors (see the top of this file); false writes
    // every tensor as [rows, cols].
    bool pytorch_shapes = true;
    // Written as "__metadata__". Keys may not start with "optimizer." (reserved).
    std::map<std::string, std::string> metadata = {};
    // For tests only: fail as a full disk would, after this many bytes of the file are written.
    std::optional<std::uint64_t> fail_after_bytes = std::nullopt;
};

struct LoadOptions {
    // Strict: the file must hold exactly the module's tensors (and, when an optimiser is
    // given, its state). Otherwise whatever matches is loaded and the rest is reported.
    bool strict = true;
    // Restore the modules' extra state (Dropout's random streams) that the file holds.
    // dist::load_checkpoint gives each rank its own (see dist/checkpoint.hpp).
    bool extra_state = true;
};

struct LoadReport {
    std::vector<std::string> loaded;      // module tensors assigned from the file
    std::vector<std::string> missing;     // module tensors the file does not have
    std::vector<std::string> unexpected;  // file tensors the module does not have
    bool optimizer_loaded = false;
    std::map<std::string, std::string> metadata;  // the file's "__metadata__", all of it
};

namespace detail::safetensors {

// The reference implementation refuses headers above 100 MB; so do we, before allocating.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;
inline constexpr std::string_view optimizer_prefix = "optimizer.";
inline constexpr std::string_view step_count_key = "optimizer.step_count";

struct Dtype {
    std::string_view name;
    std::uint64_t size;
};

// Every dtype the format defines: an unknown one is a corrupt file, a known one that gradscope
// cannot hold is only a problem for a tensor it has to load.
inline constexpr std::array<Dtype, 15> all_dtypes{{{"BOOL", 1},
                                                   {"U8", 1},
                                                   {"I8", 1},
                                                   {"F8_E5M2", 1},
                                                   {"F8_E4M3", 1},
                                                   {"I16", 2},
                                                   {"U16", 2},
                                                   {"F16", 2},
                                                   {"BF16", 2},
                                                   {"I32", 4},
                                                   {"U32", 4},
                                                   {"F32", 4},
                                                   {"I64", 8},
                                                   {"U64", 8},
                                                   {"F64", 8}}};

template <class T>
constexpr std::string_view dtype_name() {
    return std::is_same_v<T, float> ? "F32" : "F64";
}

[[noreturn]] inline void fail(std::string_view source, const std::string& what) {
    throw io_error(std::string(source) + ": " + what);
}

inline std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

inline std::string shape_string(const std::vector<std::uint64_t>& shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

// "'a', 'b' and 3 more": enough names to act on, not a wall of text.
inline std::string name_list(const std::vector<std::string>& names) {
    constexpr std::size_t shown = 8;
    std::string out;
    for (std::size_t i = 0; i < names.size() && i < shown; ++i)
        out += (i ? ", " : "") + in_quotes(names[i]);
    if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
    return out;
}

// One tensor of a parsed header. Offsets are checked against the data region.
struct Entry {
    std::string name;
    std::string dtype;
    std::uint64_t dtype_size = 0;
    std::vector<std::uint64_t> shape;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
};

struct ParsedFile {
    std::vector<Entry> entries;
    std::map<std::string, std::string> metadata;
    std::span<const std::byte> data;  // the region after the header
};

inline std::uint64_t read_u64_le(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint64_t>(p[i]);
    return v;
}

// A JSON value for an error message, kept short; containers are not printed, since a hostile
// header could nest them deeper than printing (which recurses) can go.
inline std::string describe(const nlohmann::json& value) {
    if (value.is_array()) return "an array of " + std::to_string(value.size());
    if (value.is_object()) return "an object";
    std::string text = value.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return text;
}

inline std::uint64_t unsigned_field(std::string_view source, const std::string& where,
                                    const nlohmann::json& value, const char* what) {
    if (!value.is_number_unsigned()) {
        fail(source,
             where + ": " + what + " must be a non-negative integer, got " + describe(value));
    }
    return value.get<std::uint64_t>();
}

inline Entry parse_entry(std::string_view source, const std::string& name,
                         const nlohmann::json& info) {
    const std::string where = "tensor " + in_quotes(name);
    if (!info.is_object()) {
        fail(source,
             where + ": expected an object with \"dtype\", \"shape\" and \"data_offsets\", got " +
                 std::string(info.type_name()));
    }
    auto field = [&](const char* key) -> const nlohmann::json& {
        const auto it = info.find(key);
        if (it == info.end()) fail(source, where + ": the field \"" + key + "\" is missing");
        return *it;
    };
    Entry e;
    e.name = name;

    const nlohmann::json& dtype = field("dtype");
    if (!dtype.is_string())
        fail(source, where + ": \"dtype\" must be a string, got " + describe(dtype));
    e.dtype = dtype.get<std::string>();
    for (const Dtype& d : all_dtypes) {
        if (d.name == e.dtype) e.dtype_size = d.size;
    }
    if (e.dtype_size == 0) {
        std::string known;
        for (const Dtype& d : all_dtypes)
            known += (known.empty() ? "" : ", ") + std::string(d.name);
        fail(source,
             where + ": unknown dtype \"" + e.dtype + "\" (the format's dtypes are " + known + ")");
    }

    const nlohmann::json& shape = field("shape");
    if (!shape.is_array())
        fail(source, where + ": \"shape\" must be an array, got " + describe(shape));
    for (const auto& dim : shape) {
        e.shape.push_back(unsigned_field(source, where, dim, "every \"shape\" entry"));
    }

    const nlohmann::json& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2) {
        fail(source, where + ": \"data_offsets\" must be [begin, end], got " + describe(offsets));
    }
    e.begin = unsigned_field(source, where, offsets[0], "\"data_offsets\"[0]");
    e.end = unsigned_field(source, where, offsets[1], "\"data_offsets\"[1]");
    if (e.end < e.begin) {
        fail(source, where + ": \"data_offsets\" [" + std::to_string(e.begin) + ", " +
                         std::to_string(e.end) + "] end before they begin");
    }

    // Element count times element size, refusing overflow (a hostile shape) rather than wrapping.
    std::uint64_t bytes = e.dtype_size;
    const bool empty = std::find(e.shape.begin(), e.shape.end(), 0u) != e.shape.end();
    if (empty) bytes = 0;
    for (std::uint64_t dim : e.shape) {
        if (empty) break;
        if (dim > std::numeric_limits<std::uint64_t>::max() / bytes) {
            fail(source, where + ": shape " + shape_string(e.shape) +
                             " has more bytes than fit in 64 bits");
        }
        bytes *= dim;
    }
    if (bytes != e.end - e.begin) {
        fail(source, where + ": shape " + shape_string(e.shape) + " of " + e.dtype + " needs " +
                         std::to_string(bytes) + " bytes but \"data_offsets\" [" +
                         std::to_string(e.begin) + ", " + std::to_string(e.end) + "] span " +
                         std::to_string(e.end - e.begin));
    }
    return e;
}

inline std::map<std::string, std::string> parse_metadata(std::string_view source,
                                                         const nlohmann::json& m) {
    std::map<std::string, std::string> out;
    if (m.is_null()) return out;
    if (!m.is_object()) {
        fail(source,
             "\"__metadata__\" must be an object of strings, got " + std::string(m.type_name()));
    }
    for (const auto& [key, value] : m.items()) {
        if (!value.is_string()) {
            fail(source, "\"__metadata__\" entry " + in_quotes(key) + " must be a string, got " +
                             describe(value));
        }
        out.emplace(key, value.get<std::string>());
    }
    return out;
}

// Parses and checks the whole layout: header, every entry, and that the tensors tile the data.
inline ParsedFile parse(std::span<const std::byte> bytes, std::string_view source) {
    if (bytes.size() < 8) {
        fail(source,
             "the file is " + std::to_string(bytes.size()) +
                 " bytes, shorter than the 8-byte header length a safetensors file starts with");
    }
    const std::uint64_t header_size = read_u64_le(bytes.data());
    if (header_size > max_header_bytes) {
        fail(source, "the header length " + std::to_string(header_size) +
                         " is above the format's limit of " + std::to_string(max_header_bytes) +
                         " bytes (is this a safetensors file?)");
    }
    if (header_size > bytes.size() - 8) {
        fail(source, "the header length " + std::to_string(header_size) +
                         " runs past the end of the file (" + std::to_string(bytes.size()) +
                         " bytes)");
    }
    const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
    if (text.empty() || text.front() != '{') fail(source, "the header does not start with '{'");

    // JSON objects may repeat a key and the parser would keep one silently: refuse instead.
    std::set<std::string> top_level_keys;
    std::string duplicate;
    const auto note_duplicates = [&](int depth, nlohmann::json::parse_event_t event,
                                     nlohmann::json& parsed) {
        if (event == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty() &&
            !top_level_keys.insert(parsed.get<std::string>()).second) {
            duplicate = parsed.get<std::string>();
        }
        return true;
    };
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(text.begin(), text.end(), note_duplicates);
    } catch (const nlohmann::json::exception& e) {
        fail(source, std::string("the header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) fail(source, "the header is not a JSON object");
    if (!duplicate.empty()) fail(source, "the header names " + in_quotes(duplicate) + " twice");

    ParsedFile out;
    out.data = bytes.subspan(8 + header_size);
    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            out.metadata = parse_metadata(source, value);
        } else {
            out.entries.push_back(parse_entry(source, key, value));
        }
    }

    // Sorted by offset, each tensor must start where the previous one ended, and the last end
    // where the file does: the format leaves no room for gaps, overlaps or trailing bytes.
    std::vector<const Entry*> by_offset;
    for (const Entry& e : out.entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    const std::uint64_t data_size = out.data.size();
    std::uint64_t covered = 0;
    const Entry* previous = nullptr;
    for (const Entry* e : by_offset) {
        const std::string where = "tensor " + in_quotes(e->name) + ": \"data_offsets\" [" +
                                  std::to_string(e->begin) + ", " + std::to_string(e->end) + "]";
        if (e->end > data_size) {
            fail(source, where + " run past the end of the data (" + std::to_string(data_size) +
                             " bytes after the header)");
        }
        if (e->begin < covered) {
            fail(source, where + " overlap tensor " + in_quotes(previous->name) +
                             ", which ends at " + std::to_string(covered));
        }
        if (e->begin > covered) {
            fail(source, where + " leave a gap: bytes " + std::to_string(covered) + " to " +
                             std::to_string(e->begin) + " of the data belong to no tensor");
        }
        covered = e->end;
        previous = e;
    }
    if (covered != data_size) {
        fail(source, "the tensors cover " + std::to_string(covered) + " bytes of data but " +
                         std::to_string(data_size) + " follow the header");
    }
    return out;
}

// The shape a [1 x n] tensor is written in for PyTorch (see the top of this file).
inline std::vector<std::uint64_t> file_shape(Shape s, bool pytorch_shapes, TensorRole role) {
    const auto rows = static_cast<std::uint64_t>(s.rows), cols = static_cast<std::uint64_t>(s.cols);
    if (!pytorch_shapes || s.rows != 1) return {rows, cols};
    if (role == TensorRole::counter && s.cols == 1) return {};
    if (role == TensorRole::weight) return {rows, cols};
    return {cols};
}

// Whether a file shape can fill a tensor of shape `s`.
inline bool shape_fits(const std::vector<std::uint64_t>& shape, Shape s) {
    const auto rows = static_cast<std::uint64_t>(s.rows), cols = static_cast<std::uint64_t>(s.cols);
    switch (shape.size()) {
        case 0:
            return rows == 1 && cols == 1;
        case 1:
            return rows == 1 && shape[0] == cols;
        case 2:
            return shape[0] == rows && shape[1] == cols;
        default:
            return false;
    }
}

// Copies `out.size()` values of type From into `out`, converting them to T. Returns false if a
// finite double is too large for a float (converting it would be undefined behaviour).
template <class From, class T>
bool convert_into(const std::byte* src, Matrix<T>& out) {
    if constexpr (std::is_same_v<From, T>) {
        if (out.size() != 0)
            std::memcpy(out.data(), src, static_cast<std::size_t>(out.size()) * sizeof(T));
    } else {
        for (Index i = 0; i < out.size(); ++i) {
            From v;
            std::memcpy(&v, src + static_cast<std::size_t>(i) * sizeof(From), sizeof(From));
            if constexpr (std::is_floating_point_v<From>) {
                const auto largest = static_cast<From>(std::numeric_limits<T>::max());
                if (std::isfinite(v) && std::abs(v) > largest) return false;
            }
            out.data()[i] = static_cast<T>(v);
        }
    }
    return true;
}

// Refuses a dtype gradscope cannot turn into float or double.
inline void check_readable_dtype(std::string_view source, const Entry& e) {
    const std::string where = "tensor " + in_quotes(e.name);
    if (e.dtype == "F32" || e.dtype == "F64") return;
    if (e.dtype == "I64") {
        const bool scalar =
            std::all_of(e.shape.begin(), e.shape.end(), [](std::uint64_t d) { return d == 1; }) &&
            e.shape.size() <= 2;
        if (scalar) return;
        fail(source, where +
                         ": dtype I64 is read only for a scalar (shape [], [1] or [1, 1]), such "
                         "as num_batches_tracked; this one has shape " +
                         shape_string(e.shape));
    }
    fail(source, where + ": dtype " + e.dtype +
                     " is not supported (gradscope reads F32 and F64, and I64 scalars)");
}

// The entry's values as a rows x cols matrix of T; the caller has checked dtype and shape.
template <class T>
Matrix<T> read_values(std::string_view source, const Entry& e, std::span<const std::byte> data,
                      Shape s) {
    Matrix<T> out(s.rows, s.cols);
    const std::byte* src = data.data() + e.begin;
    const bool fits = e.dtype == "F32"   ? convert_into<float>(src, out)
                      : e.dtype == "F64" ? convert_into<double>(src, out)
                                         : convert_into<std::int64_t>(src, out);
    if (!fits) {
        fail(source, "tensor " + in_quotes(e.name) + ": a value of this " + e.dtype +
                         " tensor is too large for float (the module's type)");
    }
    return out;
}

// The shape an optimiser tensor is read in: [r, c] as is, [n] as [1 x n], [] as [1 x 1].
inline Shape matrix_shape(std::string_view source, const Entry& e) {
    const auto too_big = [](std::uint64_t d) {
        return d > static_cast<std::uint64_t>(std::numeric_limits<Index>::max());
    };
    if (e.shape.size() > 2 || std::any_of(e.shape.begin(), e.shape.end(), too_big)) {
        fail(source, "tensor " + in_quotes(e.name) + ": shape " + shape_string(e.shape) +
                         " is not a matrix (gradscope tensors have at most 2 dimensions)");
    }
    if (e.shape.empty()) return {1, 1};
    if (e.shape.size() == 1) return {1, static_cast<Index>(e.shape[0])};
    return {static_cast<Index>(e.shape[0]), static_cast<Index>(e.shape[1])};
}

inline std::string format_double(double v) {
    std::array<char, 64> buf{};
    const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    return std::string(buf.data(), result.ptr);
}

template <class Number>
std::optional<Number> parse_number(std::string_view text) {
    Number v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

// The module's name for each of the optimiser's parameters, found by identity; nullopt when
// one of them is not a parameter of the module (then the optimiser's own keys are used).
template <class T>
std::optional<std::vector<std::string>> module_keys(const Module<T>& module,
                                                    const Optimizer<T>& optimizer) {
    std::map<const Node<T>*, std::string> by_node;
    for (const auto& [name, tensor] : module.named_parameters())
        by_node.emplace(&tensor.node(), name);
    std::vector<std::string> keys;
    for (const Tensor<T>& param : optimizer.params()) {
        const auto it = by_node.find(&param.node());
        if (it == by_node.end()) return std::nullopt;
        keys.push_back(it->second);
    }
    return keys;
}

template <class T>
OptimizerState<T> read_optimizer_state(std::string_view source, const ParsedFile& file,
                                       bool& found) {
    OptimizerState<T> state;
    found = false;
    bool have_step_count = false;
    for (const Entry& e : file.entries) {
        if (!e.name.starts_with(optimizer_prefix)) continue;
        found = true;
        check_readable_dtype(source, e);
        const Shape s = matrix_shape(source, e);
        state.tensors.emplace_back(e.name.substr(optimizer_prefix.size()),
                                   read_values<T>(source, e, file.data, s));
    }
    for (const auto& [key, value] : file.metadata) {
        if (!key.starts_with(optimizer_prefix)) continue;
        found = true;
        if (key == step_count_key) {
            const auto steps = parse_number<std::int64_t>(value);
            if (!steps) {
                fail(source, "metadata " + in_quotes(key) + " must be a whole number, got " +
                                 in_quotes(value));
            }
            state.step = *steps;
            have_step_count = true;
        } else {
            const auto number = parse_number<double>(value);
            if (!number) {
                fail(source,
                     "metadata " + in_quotes(key) + " must be a number, got " + in_quotes(value));
            }
            state.scalars.emplace_back(key.substr(optimizer_prefix.size()), *number);
        }
    }
    if (found && !have_step_count) {
        fail(source,
             "the optimiser state has no " + in_quotes(step_count_key) + " in its metadata");
    }
    return state;
}

// Every module's earlier tensor names (Module::earlier_tensor_names) as full dotted paths,
// earlier -> current.
template <class T>
std::map<std::string, std::string> earlier_names(const Module<T>& module) {
    std::map<std::string, std::string> out;
    for (const auto& [path, m] : module.named_modules()) {
        for (const auto& [earlier, current] : m->earlier_tensor_names()) {
            out.emplace(join_path(path, earlier), join_path(path, current));
        }
    }
    return out;
}

// A file that names a tensor the earlier way is read as if it used the current name, and so is
// the optimiser state kept for it ("optimizer.<state>.<tensor>"), unless the file also has the
// current name, which then wins.
template <class T>
void adopt_current_names(ParsedFile& file, const Module<T>& module) {
    const std::map<std::string, std::string> renamed = earlier_names(module);
    if (renamed.empty()) return;
    const auto current_name = [&renamed](const std::string& name) -> std::optional<std::string> {
        if (const auto it = renamed.find(name); it != renamed.end()) return it->second;
        if (!name.starts_with(optimizer_prefix)) return std::nullopt;
        const std::size_t dot = name.find('.', optimizer_prefix.size());
        if (dot == std::string::npos) return std::nullopt;
        const auto it = renamed.find(name.substr(dot + 1));
        if (it == renamed.end()) return std::nullopt;
        return name.substr(0, dot + 1) + it->second;
    };
    std::set<std::string> present;
    for (const Entry& e : file.entries) present.insert(e.name);
    for (Entry& e : file.entries) {
        const auto current = current_name(e.name);
        if (current && !present.contains(*current)) e.name = *current;
    }
    std::map<std::string, std::string> metadata;
    for (auto& [key, value] : file.metadata) {
        const auto current = current_name(key);
        const bool rename = current && !file.metadata.contains(*current);
        metadata.emplace(rename ? *current : key, std::move(value));
    }
    file.metadata = std::move(metadata);
}

// Extra state (Module::extra_state) travels in the metadata under this key.
inline std::string extra_state_key(const std::string& path) {
    return join_path(path, "_extra_state");
}

// Every module's extra state that is not empty, by its metadata key.
template <class T>
std::map<std::string, std::string> extra_states(const Module<T>& module) {
    std::map<std::string, std::string> out;
    for (const auto& [path, m] : module.named_modules()) {
        if (std::string state = m->extra_state(); !state.empty()) {
            out.emplace(extra_state_key(path), std::move(state));
        }
    }
    return out;
}

// The optimiser state, when there is an optimiser: checked whole before it is set.
template <class T>
void load_optimizer_state(std::string_view source, const ParsedFile& file, const Module<T>& module,
                          Optimizer<T>* optimizer, const LoadOptions& options, LoadReport& report) {
    if (optimizer == nullptr) return;
    bool found = false;
    const OptimizerState<T> state = read_optimizer_state<T>(source, file, found);
    if (!found && options.strict) {
        fail(source, "strict load: the file holds no optimiser state (no \"optimizer.\" entries)");
    }
    if (!found) return;
    try {
        // Checks everything before it changes anything.
        if (const auto keys = module_keys(module, *optimizer)) {
            optimizer->load_state(state, *keys);
        } else {
            optimizer->load_state(state);
        }
    } catch (const error& e) {
        fail(source, std::string("the optimiser state does not fit: ") + e.what());
    }
    report.optimizer_loaded = true;
}

// Everything is checked before the first tensor is assigned, and those assignments cannot fail;
// the extra states, set before the optimiser state is checked, are put back if anything fails.
// So a load either happens completely or not at all.
template <class T>
LoadReport load(std::span<const std::byte> bytes, Module<T>& module, Optimizer<T>* optimizer,
                const LoadOptions& options, std::string_view source) {
    ParsedFile file = parse(bytes, source);
    adopt_current_names(file, module);
    LoadReport report;
    report.metadata = file.metadata;

    std::map<std::string_view, const Entry*> by_name;
    for (const Entry& e : file.entries) by_name.emplace(e.name, &e);

    struct Staged {
        Tensor<T> tensor;
        Matrix<T> value;
    };
    std::vector<Staged> staged;
    std::set<std::string_view> used;
    auto stage = [&](const std::string& name, const Tensor<T>& tensor) {
        const auto it = by_name.find(name);
        if (it == by_name.end()) {
            report.missing.push_back(name);
            return;
        }
        const Entry& e = *it->second;
        check_readable_dtype(source, e);
        if (!shape_fits(e.shape, tensor.shape())) {
            fail(source, "tensor " + in_quotes(name) + ": the file's shape " +
                             shape_string(e.shape) + " does not fit the module's " +
                             to_string(tensor.shape()));
        }
        if (!tensor.is_leaf()) {
            throw value_error(std::string(source) + ": the module's tensor " + in_quotes(name) +
                              " is not a leaf, so it cannot be loaded into");
        }
        staged.push_back({tensor, read_values<T>(source, e, file.data, tensor.shape())});
        used.insert(e.name);
        report.loaded.push_back(name);
    };
    for (const auto& [name, tensor] : module.named_parameters()) stage(name, tensor);
    for (const auto& [name, tensor] : module.named_buffers()) stage(name, tensor);
    for (const Entry& e : file.entries) {
        const bool ours = used.contains(e.name) || e.name.starts_with(optimizer_prefix);
        if (!ours) report.unexpected.push_back(e.name);
    }
    if (options.strict && (!report.missing.empty() || !report.unexpected.empty())) {
        std::string what = "strict load:";
        if (!report.missing.empty()) {
            what += " the module's " + name_list(report.missing) + " missing from the file;";
        }
        if (!report.unexpected.empty()) {
            what += " the file's " + name_list(report.unexpected) + " not in the module;";
        }
        fail(source, what + " load with {.strict = false} to load what matches");
    }

    // Extra states (Dropout's random stream) are set first, keeping each module's previous
    // one, so that a failure here or in the optimiser state below can put them back.
    std::vector<std::pair<Module<T>*, std::string>> previous_states;
    const auto restore_states = [&previous_states] {
        for (auto& [m, state] : previous_states) m->set_extra_state(state);
    };
    decltype(module.named_modules()) modules;
    if (options.extra_state) modules = module.named_modules();
    for (const auto& [path, m] : modules) {
        const auto it = file.metadata.find(extra_state_key(path));
        if (it == file.metadata.end()) continue;
        std::string current = m->extra_state();
        if (current.empty()) continue;  // a module that keeps none ignores the file's
        try {
            m->set_extra_state(it->second);
        } catch (const error& e) {
            restore_states();
            fail(source, "metadata " + in_quotes(it->first) + ": " + e.what());
        }
        previous_states.emplace_back(m, std::move(current));
    }
    try {
        load_optimizer_state(source, file, module, optimizer, options, report);
    } catch (...) {
        restore_states();
        throw;
    }

    for (Staged& s : staged) s.tensor.data() = s.value;
    return report;
}

// A checkpoint laid out in memory: the header, then pieces of tensor data that point into the
// module's (and the optimiser state's) buffers, which must outlive it.
template <class T>
struct Layout {
    std::string header;  // with its 8-byte length in front
    std::vector<std::span<const std::byte>> pieces;
    std::deque<std::int64_t> counters;  // counters converted to I64 (a deque never moves them)
    OptimizerState<T> optimizer_state;
    std::uint64_t total = 0;
};

// Every parameter's and buffer's role, by its dotted name.
template <class T>
std::map<std::string, TensorRole> tensor_roles(const Module<T>& module) {
    std::map<std::string, TensorRole> out;
    for (const auto& [path, m] : module.named_modules()) {
        for (const auto* list : {&m->own_parameters(), &m->own_buffers()}) {
            for (const auto& [name, t] : *list) {
                out.emplace(join_path(path, name), m->role_of(name));
            }
        }
    }
    return out;
}

template <class T>
void lay_out(Layout<T>& layout, const Module<T>& module, const Optimizer<T>* optimizer,
             const SaveOptions& options, std::string_view source) {
    for (const auto& [key, value] : options.metadata) {
        if (key.starts_with(optimizer_prefix)) {
            fail(source, "cannot save: the metadata key " + in_quotes(key) +
                             " uses the reserved prefix \"optimizer.\"");
        }
    }
    const std::map<std::string, TensorRole> roles = tensor_roles(module);

    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    std::map<std::string, std::string> metadata = options.metadata;
    for (auto& [key, state] : extra_states(module)) {
        if (metadata.contains(key)) {
            fail(source, "cannot save: the metadata key " + in_quotes(key) +
                             " is where the module's extra state (Module::extra_state) goes");
        }
        metadata.emplace(key, std::move(state));
    }
    if (optimizer != nullptr) {
        const auto keys = module_keys(module, *optimizer);
        layout.optimizer_state = keys ? optimizer->state(*keys) : optimizer->state();
        metadata[std::string(step_count_key)] = std::to_string(layout.optimizer_state.step);
        for (const auto& [name, value] : layout.optimizer_state.scalars) {
            metadata[std::string(optimizer_prefix) + name] = format_double(value);
        }
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;

    std::set<std::string> names;
    std::uint64_t offset = 0;
    auto add_bytes = [&](const std::string& name, std::string_view dtype, const void* values,
                         std::uint64_t bytes, std::vector<std::uint64_t> shape) {
        if (!names.insert(name).second)
            fail(source, "cannot save: two tensors are named " + in_quotes(name));
        header[name] = {{"dtype", std::string(dtype)},
                        {"shape", std::move(shape)},
                        {"data_offsets", {offset, offset + bytes}}};
        layout.pieces.emplace_back(static_cast<const std::byte*>(values),
                                   static_cast<std::size_t>(bytes));
        offset += bytes;
    };
    auto add = [&](const std::string& name, const T* values, Shape s,
                   std::vector<std::uint64_t> shape) {
        add_bytes(name, dtype_name<T>(), values, static_cast<std::uint64_t>(s.size()) * sizeof(T),
                  std::move(shape));
    };
    auto add_counter = [&](const std::string& name, T value, std::vector<std::uint64_t> shape) {
        // 2^63 is exactly representable, and every double below it converts without overflow
        const double v = static_cast<double>(value);
        if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != std::floor(v)) {
            fail(source, "cannot save: the counter " + in_quotes(name) + " holds " +
                             format_double(v) + ", which is not a whole number in int64's range");
        }
        layout.counters.push_back(static_cast<std::int64_t>(v));
        add_bytes(name, "I64", &layout.counters.back(), sizeof(std::int64_t), std::move(shape));
    };
    auto add_module_tensor = [&](const std::string& name, const Tensor<T>& t) {
        if (name.starts_with(optimizer_prefix)) {
            fail(source, "cannot save: the module's tensor " + in_quotes(name) +
                             " uses the reserved prefix \"optimizer.\"");
        }
        const auto found = roles.find(name);
        const TensorRole role = found == roles.end() ? TensorRole::other : found->second;
        auto shape = file_shape(t.shape(), options.pytorch_shapes, role);
        if (role == TensorRole::counter && t.shape() == Shape{1, 1}) {
            add_counter(name, t.value()(0, 0), std::move(shape));
        } else {
            add(name, t.value().data(), t.shape(), std::move(shape));
        }
    };
    for (const auto& [name, t] : module.named_parameters()) add_module_tensor(name, t);
    for (const auto& [name, t] : module.named_buffers()) add_module_tensor(name, t);
    for (const auto& [name, m] : layout.optimizer_state.tensors) {
        const Shape s{m.rows(), m.cols()};
        add(std::string(optimizer_prefix) + name, m.data(), s,
            {static_cast<std::uint64_t>(s.rows), static_cast<std::uint64_t>(s.cols)});
    }

    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {  // a name or metadata value that is not UTF-8
        fail(source, std::string("cannot save: ") + e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    std::uint64_t length = text.size();
    layout.header.resize(8);
    for (std::size_t i = 0; i < 8; ++i, length >>= 8) {
        layout.header[i] = static_cast<char>(length & 0xff);
    }
    layout.header += text;
    layout.total = layout.header.size() + offset;
}

inline std::string errno_message(int code) { return std::generic_category().message(code); }

inline std::string random_suffix() {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    std::uint64_t bits = static_cast<std::uint64_t>(now);
    try {
        std::random_device device;
        bits ^= (static_cast<std::uint64_t>(device()) << 32) ^ device();
    } catch (...) {  // no entropy source: the clock alone still makes clashes unlikely, and
    }                // the temporary is opened exclusively, so a clash is retried, never shared
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 16; ++i, bits >>= 4) out += hex[bits & 0xf];
    return out;
}

// The temporary file of an atomic save: removed unless it was renamed over the target.
struct TemporaryFile {
    std::filesystem::path path;
    std::FILE* file = nullptr;
    bool renamed = false;

    TemporaryFile() = default;
    TemporaryFile(const TemporaryFile&) = delete;
    TemporaryFile& operator=(const TemporaryFile&) = delete;
    ~TemporaryFile() {
        if (file != nullptr) std::fclose(file);
        if (!renamed && !path.empty()) {
            std::error_code ignored;
            std::filesystem::remove(path, ignored);
        }
    }
};

// Writes the concatenation of `pieces` (`total` bytes) to a temporary file next to `target`,
// then renames it over `target`.
inline void write_atomically(const std::filesystem::path& target,
                             std::span<const std::span<const std::byte>> pieces,
                             std::uint64_t total, const SaveOptions& options) {
    const std::string source = target.string();
    const auto give_up = [&](const std::string& what) {
        fail(source,
             "cannot save checkpoint: " + what + "; the previous file, if any, is unchanged");
    };
    const std::filesystem::path directory =
        target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");

    TemporaryFile tmp;
    for (int attempt = 0; tmp.file == nullptr; ++attempt) {
        std::filesystem::path candidate =
            directory / (target.filename().string() + ".tmp-" + random_suffix());
        // "x": fail rather than reuse a file that exists (C11 and C++17 fopen).
        tmp.file = std::fopen(candidate.string().c_str(), "wbx");
        const int code = errno;
        if (tmp.file != nullptr) {
            tmp.path = std::move(candidate);
        } else if (code != EEXIST || attempt == 10) {
            give_up("cannot create the temporary file " + in_quotes(candidate.string()) + ": " +
                    errno_message(code));
        }
    }

    std::uint64_t written = 0;
    const auto write = [&](const void* data, std::size_t size) {
        std::size_t allowed = size;
        const std::optional<std::uint64_t>& limit = options.fail_after_bytes;
        if (limit && written + size > *limit) {
            allowed = static_cast<std::size_t>(*limit - std::min(written, *limit));
        }
        const std::size_t done = allowed == 0 ? 0 : std::fwrite(data, 1, allowed, tmp.file);
        const int code = done < allowed ? errno : ENOSPC;
        written += done;
        if (done != size) {
            give_up("writing " + in_quotes(tmp.path.string()) + " failed after " +
                    std::to_string(written) + " of " + std::to_string(total) +
                    " bytes: " + errno_message(code) +
                    (done == allowed ? " (simulated by SaveOptions::fail_after_bytes)" : ""));
        }
    };
    for (const auto& piece : pieces) write(piece.data(), piece.size());

    // errno is read at once: building a message may change it.
    if (std::fflush(tmp.file) != 0) {
        const int code = errno;
        give_up("flushing " + in_quotes(tmp.path.string()) + " failed: " + errno_message(code));
    }
#if defined(__unix__) || defined(__APPLE__)
    // The rename must not reach the disk before the data does, or a crash could leave an
    // empty or partial file under the target's name.
    if (::fsync(::fileno(tmp.file)) != 0) {
        const int code = errno;
        give_up("fsync of " + in_quotes(tmp.path.string()) + " failed: " + errno_message(code));
    }
#endif
    const int closed = std::fclose(tmp.file);
    const int close_code = errno;
    tmp.file = nullptr;
    if (closed != 0) {
        give_up("closing " + in_quotes(tmp.path.string()) +
                " failed: " + errno_message(close_code));
    }

    std::error_code ec;
    std::filesystem::rename(tmp.path, target, ec);
    if (ec)
        give_up("renaming " + in_quotes(tmp.path.string()) + " over it failed: " + ec.message());
    tmp.renamed = true;
#if defined(__unix__) || defined(__APPLE__)
    // Make the rename itself durable. Best effort: the new file is in place either way.
    const int dir = ::open(directory.string().c_str(), O_RDONLY);
    if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
#endif
}

template <class T>
void write_atomically(const std::filesystem::path& target, const Layout<T>& layout,
                      const SaveOptions& options) {
    std::vector<std::span<const std::byte>> pieces;
    pieces.reserve(layout.pieces.size() + 1);
    pieces.emplace_back(reinterpret_cast<const std::byte*>(layout.header.data()),
                        layout.header.size());
    pieces.insert(pieces.end(), layout.pieces.begin(), layout.pieces.end());
    write_atomically(target, pieces, layout.total, options);
}

inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
    const std::string source = path.string();
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        fail(source, "is a directory, not a checkpoint file");
    std::FILE* file = std::fopen(source.c_str(), "rb");
    if (file == nullptr) {
        const int code = errno;
        fail(source, "cannot open the checkpoint: " + errno_message(code));
    }
    struct Closer {
        std::FILE* f;
        ~Closer() { std::fclose(f); }
    } closer{file};

    // Read in chunks rather than trusting a size reported in advance.
    std::vector<std::byte> bytes;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (!ec) bytes.reserve(static_cast<std::size_t>(size));
    std::array<std::byte, 1 << 16> chunk;
    while (true) {
        const std::size_t n = std::fread(chunk.data(), 1, chunk.size(), file);
        const int code = errno;
        if (std::ferror(file))
            fail(source, "reading the checkpoint failed: " + errno_message(code));
        bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
        if (n < chunk.size()) break;
    }
    return bytes;
}

}  // namespace detail::safetensors

namespace detail::safetensors {

template <class T>
std::vector<std::byte> to_bytes(const Layout<T>& layout) {
    std::vector<std::byte> out(layout.header.size());
    std::memcpy(out.data(), layout.header.data(), layout.header.size());
    for (const auto& piece : layout.pieces) out.insert(out.end(), piece.begin(), piece.end());
    return out;
}

}  // namespace detail::safetensors

// The checkpoint as bytes, exactly as save_checkpoint would write it.
template <class T>
std::vector<std::byte> save_checkpoint_to_bytes(const Module<T>& module,
                                                const SaveOptions& options = {}) {
    detail::safetensors::Layout<T> layout;
    detail::safetensors::lay_out<T>(layout, module, nullptr, options, "<memory>");
    return detail::safetensors::to_bytes(layout);
}

template <class T>
std::vector<std::byte> save_checkpoint_to_bytes(const Module<T>& module,
                                                const Optimizer<T>& optimizer,
                                                const SaveOptions& options = {}) {
    detail::safetensors::Layout<T> layout;
    detail::safetensors::lay_out<T>(layout, module, &optimizer, options, "<memory>");
    return detail::safetensors::to_bytes(layout);
}

// Writes every parameter and buffer of `module` to `path`, atomically (see the top of this file).
template <class T>
void save_checkpoint(const std::filesystem::path& path, const Module<T>& module,
                     const SaveOptions& options = {}) {
    detail::safetensors::Layout<T> layout;
    detail::safetensors::lay_out<T>(layout, module, nullptr, options, path.string());
    detail::safetensors::write_atomically(path, layout, options);
}

// The same, with the optimiser's state (names prefixed "optimizer.").
template <class T>
void save_checkpoint(const std::filesystem::path& path, const Module<T>& module,
                     const Optimizer<T>& optimizer, const SaveOptions& options = {}) {
    detail::safetensors::Layout<T> layout;
    detail::safetensors::lay_out<T>(layout, module, &optimizer, options, path.string());
    detail::safetensors::write_atomically(path, layout, options);
}

// The file's "__metadata__", read and checked as load_checkpoint would, without loading any
// tensor: what a program needs to rebuild the model a checkpoint describes before loading it.
inline std::map<std::string, std::string> read_checkpoint_metadata(
    const std::filesystem::path& path) {
    const std::vector<std::byte> bytes = detail::safetensors::read_file(path);
    return detail::safetensors::parse(bytes, path.string()).metadata;
}

// Loads a checkpoint that is already in memory; `source` names it in error messages.
template <class T>
LoadReport load_checkpoint_from_bytes(std::span<const std::byte> bytes, Module<T>& module,
                                      const LoadOptions& options = {},
                                      std::string_view source = "<memory>") {
    return detail::safetensors::load<T>(bytes, module, nullptr, options, source);
}

template <class T>
LoadReport load_checkpoint_from_bytes(std::span<const std::byte> bytes, Module<T>& module,
                                      Optimizer<T>& optimizer, const LoadOptions& options = {},
                                      std::string_view source = "<memory>") {
    return detail::safetensors::load<T>(bytes, module, &optimizer, options, source);
}

// Loads `path` into `module`: all of it or, on io_error, nothing (see the top of this file).
template <class T>
LoadReport load_checkpoint(const std::filesystem::path& path, Module<T>& module,
                           const LoadOptions& options = {}) {
    const std::vector<std::byte> bytes = detail::safetensors::read_file(path);
    return detail::safetensors::load<T>(bytes, module, nullptr, options, path.string());
}

// The same, and the optimiser's state. A strict load requires the file to have one.
template <class T>
LoadReport load_checkpoint(const std::filesystem::path& path, Module<T>& module,
                           Optimizer<T>& optimizer, const LoadOptions& options = {}) {
    const std::vector<std::byte> bytes = detail::safetensors::read_file(path);
    return detail::safetensors::load<T>(bytes, module, &optimizer, options, path.string());
}

}  // namespace gradscope
