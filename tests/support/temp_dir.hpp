// A fresh directory under the system's temporary directory for one test, removed with its
// contents when the test ends; a guard that makes a directory the current one for a while; and a
// helper that writes raw bytes to a file (the file-format tests write real files).
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace gradscope::testing {

struct TempDir {
    std::filesystem::path path;

    explicit TempDir(const std::string& prefix = "gradscope_test_") {
        std::random_device device;
        path = std::filesystem::temp_directory_path() / (prefix + std::to_string(device()));
        std::filesystem::create_directories(path);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }

    // The names of the files in the directory, sorted.
    [[nodiscard]] std::vector<std::string> files() const {
        std::vector<std::string> out;
        for (const auto& entry : std::filesystem::directory_iterator(path)) {
            out.push_back(entry.path().filename().string());
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

// `directory` is the current directory while the guard lives (for code that names its files
// relative to it, as the docs' snippets do); then the previous one is again.
class InDirectory {
public:
    explicit InDirectory(const std::filesystem::path& directory)
        : previous_(std::filesystem::current_path()) {
        std::filesystem::current_path(directory);
    }
    InDirectory(const InDirectory&) = delete;
    InDirectory& operator=(const InDirectory&) = delete;
    ~InDirectory() {
        std::error_code ignored;
        std::filesystem::current_path(previous_, ignored);
    }

private:
    std::filesystem::path previous_;
};

// Writes `bytes` (any contiguous container of one-byte elements: std::byte, std::uint8_t, char)
// to `path`, replacing the file, and returns the path.
template <class Bytes>
std::filesystem::path write_file(const std::filesystem::path& path, const Bytes& bytes) {
    static_assert(sizeof(typename Bytes::value_type) == 1, "write_file writes bytes");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
}

}  // namespace gradscope::testing
