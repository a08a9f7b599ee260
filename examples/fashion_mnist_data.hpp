// Fashion-MNIST for the example programs: the four gzipped IDX files of Debian's
// dataset-fashion-mnist package, read with gradscope's IDX reader (needs zlib), pixels
// standardised by the training set's mean and standard deviation.
#pragma once

#include <gradscope/io/idx.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace fashion_mnist {

using namespace gradscope;

struct Dataset {
    Matrix<float> x;  // [n x 784], standardised
    std::vector<int> y;
};

struct Data {
    Dataset train, test;
    double mean = 0.0, stddev = 1.0;  // of the training pixels in [0, 1], all 60000 images
    Index full_train_size = 0;
};

inline std::filesystem::path data_file(const std::filesystem::path& dir, const char* name) {
    const std::filesystem::path path = dir / name;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        const bool no_dir = !std::filesystem::is_directory(dir, ec);
        throw io_error(
            path.string() + ": no such file" +
            (no_dir ? " (the directory " + dir.string() + " does not exist either)"
                    : std::string()) +
            ". Fashion-MNIST comes from Debian's dataset-fashion-mnist package (apt-get install "
            "dataset-fashion-mnist; scripts/quickstart.sh installs it), or give the directory "
            "that holds the four *-ubyte.gz files with --data");
    }
    return path;
}

// The mean and standard deviation of every pixel of `images`, scaled to [0, 1], exactly (in
// double, from a histogram of the byte values).
inline std::pair<double, double> pixel_statistics(const IdxArray& images) {
    std::array<std::uint64_t, 256> counts{};
    for (const std::uint8_t v : images.data) ++counts[v];
    double n = 0.0, sum = 0.0, squares = 0.0;
    for (std::size_t v = 0; v < counts.size(); ++v) {
        const double x = static_cast<double>(v) / 255.0;
        const auto c = static_cast<double>(counts[v]);
        n += c;
        sum += c * x;
        squares += c * x * x;
    }
    if (n == 0.0) throw io_error(images.path.string() + ": no pixels");
    const double mean = sum / n;
    return {mean, std::sqrt(std::max(0.0, squares / n - mean * mean))};
}

inline Dataset make_dataset(IdxArray images, const IdxArray& labels, Index limit, double mean,
                            double stddev) {
    if (images.dims.size() != 3 || images.dims[1] != 28 || images.dims[2] != 28) {
        throw io_error(images.path.string() + ": expected 28 x 28 images");
    }
    std::vector<int> y = idx_labels(labels);
    if (y.size() != images.dims[0]) {
        throw io_error(labels.path.string() + ": " + std::to_string(y.size()) + " labels for " +
                       std::to_string(images.dims[0]) + " images in " + images.path.string());
    }
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (y[i] < 0 || y[i] > 9) {
            throw io_error(labels.path.string() + ": label " + std::to_string(y[i]) + " at index " +
                           std::to_string(i) + " is not a class 0-9");
        }
    }
    if (limit > 0 && static_cast<std::size_t>(limit) < y.size()) {
        images.dims[0] = static_cast<std::uint32_t>(limit);
        images.data.resize(static_cast<std::size_t>(limit) * 28 * 28);
        y.resize(static_cast<std::size_t>(limit));
    }
    Dataset out{idx_images_as_rows(images), std::move(y)};
    out.x.array() = (out.x.array() - static_cast<float>(mean)) * static_cast<float>(1.0 / stddev);
    return out;
}

inline Data load_fashion_mnist(const std::filesystem::path& dir, Index limit) {
    // Every file is checked before the first is read, so a missing one is reported at once.
    const auto train_images_path = data_file(dir, "train-images-idx3-ubyte.gz");
    const auto train_labels_path = data_file(dir, "train-labels-idx1-ubyte.gz");
    const auto test_images_path = data_file(dir, "t10k-images-idx3-ubyte.gz");
    const auto test_labels_path = data_file(dir, "t10k-labels-idx1-ubyte.gz");
    Data data;
    IdxArray train_images = read_idx(train_images_path);
    std::tie(data.mean, data.stddev) = pixel_statistics(train_images);
    data.full_train_size = train_images.dims.empty() ? 0 : static_cast<Index>(train_images.dims[0]);
    data.train = make_dataset(std::move(train_images), read_idx(train_labels_path), limit,
                              data.mean, data.stddev);
    data.test = make_dataset(read_idx(test_images_path), read_idx(test_labels_path), 0, data.mean,
                             data.stddev);
    return data;
}

}  // namespace fashion_mnist
