// A check for the command-line tools' numeric flags that CLI11 does not make itself.
//
// CLI11 reads "nan" and "inf" as doubles, and its number checks compare (NonNegativeNumber is
// `value < 0` fails), which NaN passes: without this, `--clip nan` trains without clipping and
// `--residual-scale nan` trains to chance accuracy without a word. Chain it before the range:
//     app.add_option("--lr", s.lr)->check(finite_number)->check(CLI::PositiveNumber);
// A failure reads "--lr: value nan is not a finite number" and the tools exit with status 2.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>

inline const CLI::Validator finite_number(
    [](std::string& input) -> std::string {
        double value = 0.0;
        if (!CLI::detail::lexical_cast(input, value)) return "value " + input + " is not a number";
        if (!std::isfinite(value)) return "value " + input + " is not a finite number";
        return {};
    },
    "FINITE");
