// A one-line progress bar for the example programs: drawn only on a terminal, redrawn at most
// ten times a second, and cleared before a line of ordinary output is printed in its place.
//
//   ProgressBar bar(stdout_is_terminal());
//   bar.draw("epoch 3/10", done, total, "loss 0.4321");
//   bar.clear();  std::printf("epoch 3 done\n");
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

inline bool stdout_is_terminal() {
#if defined(__unix__) || defined(__APPLE__)
    return ::isatty(::fileno(stdout)) == 1;
#else
    return false;
#endif
}

class ProgressBar {
public:
    explicit ProgressBar(bool enabled) : enabled_(enabled) {}

    // "<label> [#####.....] done/total  <after>"; `force` draws even within 100 ms of the last.
    void draw(const std::string& label, std::int64_t done, std::int64_t total,
              const std::string& after, bool force = false) {
        if (!enabled_) return;
        const auto now = std::chrono::steady_clock::now();
        if (!force && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        constexpr std::int64_t width = 30;
        const std::int64_t filled = total > 0 ? width * done / total : width;
        std::printf("\r\033[K%s [%s%s] %lld/%lld  %s", label.c_str(),
                    std::string(static_cast<std::size_t>(filled), '#').c_str(),
                    std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
                    static_cast<long long>(done), static_cast<long long>(total), after.c_str());
        std::fflush(stdout);
    }

    // Clears the bar so that a line can be printed in its place.
    void clear() const {
        if (enabled_) std::printf("\r\033[K");
    }

private:
    bool enabled_;
    std::chrono::steady_clock::time_point last_{};
};
