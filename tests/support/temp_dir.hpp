// A fresh directory under the system's temporary directory for one test, removed with its
// contents when the test ends (the file-format tests write real files).
#pragma once

#include <algorithm>
#include <filesystem>
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

}  // namespace gradscope::testing
