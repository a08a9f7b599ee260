// Checks for the command-line tools' flags that CLI11 does not make itself, or makes with
// messages a person cannot read.
//
// CLI11 reads "nan" and "inf" as doubles, and its number checks compare (NonNegativeNumber is
// `value < 0` fails), which NaN passes: without finite_number, `--clip nan` trains without
// clipping and `--residual-scale nan` trains to chance accuracy without a word. CLI11's
// PositiveNumber and NonNegativeNumber print their upper bound, DBL_MAX, as a 309-digit number;
// positive_number and non_negative_number say what is wrong in words. Chain them:
//     app.add_option("--lr", s.lr)->check(finite_number)->check(positive_number);
// A failure reads "--lr: value -1 is not positive" and the tools exit with status 2.
//
// output_file checks an output path when the command line is read, so that a mistyped
// directory fails at once instead of after the whole run.
#pragma once

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

namespace cli_checks_detail {

// The flag's value as a double, or an error message.
inline std::string read_number(const std::string& input, double& value) {
    if (!CLI::detail::lexical_cast(input, value)) return "value " + input + " is not a number";
    return {};
}

}  // namespace cli_checks_detail

// A validator that reads the flag's value as a double and refuses it, saying "value <input>
// <complaint>", when `accept` is false for it.
template <class Accept>
CLI::Validator number_check(Accept accept, std::string complaint, std::string name) {
    return CLI::Validator(
        [accept, complaint](std::string& input) -> std::string {
            double value = 0.0;
            if (auto error = cli_checks_detail::read_number(input, value); !error.empty()) {
                return error;
            }
            if (!accept(value)) return "value " + input + " " + complaint;
            return {};
        },
        std::move(name));
}

inline const CLI::Validator finite_number = number_check(
    [](double v) { return std::isfinite(v); }, "is not a finite number", "FINITE");

// NaN fails both: it compares false.
inline const CLI::Validator positive_number =
    number_check([](double v) { return v > 0.0; }, "is not positive", "POSITIVE");

inline const CLI::Validator non_negative_number =
    number_check([](double v) { return v >= 0.0; }, "is negative", "NONNEGATIVE");

// A file the tool can write: not a directory, and its nearest existing ancestor a writable
// directory (the tools create the missing directories in between). An empty path passes: the
// tools read it as "do not write".
inline const CLI::Validator output_file(
    [](std::string& input) -> std::string {
        namespace fs = std::filesystem;
        if (input.empty()) return {};
        std::error_code ec;
        const fs::path path(input);
        if (fs::is_directory(path, ec)) return "cannot write " + input + ": it is a directory";
        fs::path dir = path.parent_path();
        while (!dir.empty() && !fs::exists(dir, ec) && dir.parent_path() != dir) dir = dir.parent_path();
        if (dir.empty()) dir = ".";
        if (!fs::is_directory(dir, ec)) {
            return "cannot write " + input + ": " + dir.string() + " is not a directory";
        }
        if (::access(dir.c_str(), W_OK) != 0) {
            return "cannot write " + input + ": directory " + dir.string() + " is not writable";
        }
        return {};
    },
    "PATH");
