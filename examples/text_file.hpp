// Writes the command-line tools' text outputs (JSON, CSV, SVG reports) so that a failure loses
// nothing: the text goes to a temporary file beside the target, named after this process, which
// then replaces the target in one rename. A full disk or a crash mid-write leaves the previous
// file as it was, and two tools writing beside each other do not share a temporary.
#pragma once

#include <gradscope/io/errors.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

// Creates the missing directories on the way; gradscope::io_error naming the path otherwise.
inline void write_text_file(const std::string& path, const std::string& text) {
    namespace fs = std::filesystem;
    const fs::path target(path);
    std::error_code ec;
    if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
    if (ec) throw gradscope::io_error("cannot write " + path + ": " + ec.message());
    const fs::path tmp = path + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary);
        out << text;
        out.close();
        if (!out) {
            fs::remove(tmp, ec);
            throw gradscope::io_error("cannot write " + path + " (through " + tmp.string() + ")");
        }
    }
    fs::rename(tmp, target, ec);
    if (ec) {
        const std::string why = ec.message();
        fs::remove(tmp, ec);
        throw gradscope::io_error("cannot write " + path + ": " + why);
    }
}
