// Fixed-width text tables for a terminal or a log: every report that prints columns (the sweep's
// format_table, a profile's format_profile) lays them out here, so that they look alike.
#pragma once

#include "../core/errors.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace gradscope::diag {

// The header and the rows, each column as wide as its widest cell, two spaces between columns,
// right-aligned where `right_aligned` says (numbers), one line per row ended by "\n". Trailing
// spaces are not written.
inline std::string text_table(const std::vector<std::string>& header,
                              const std::vector<bool>& right_aligned,
                              const std::vector<std::vector<std::string>>& rows) {
    const std::size_t columns = header.size();
    if (right_aligned.size() != columns) {
        throw value_error("text_table: " + std::to_string(columns) + " columns but " +
                          std::to_string(right_aligned.size()) + " alignments");
    }
    std::vector<std::size_t> widths(columns);
    for (std::size_t c = 0; c < columns; ++c) widths[c] = header[c].size();
    for (const auto& row : rows) {
        if (row.size() != columns) {
            throw value_error("text_table: a row has " + std::to_string(row.size()) +
                              " cells, the header " + std::to_string(columns));
        }
        for (std::size_t c = 0; c < columns; ++c) widths[c] = std::max(widths[c], row[c].size());
    }
    std::string out;
    const auto emit = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t c = 0; c < columns; ++c) {
            if (c > 0) line += "  ";
            const std::string pad(widths[c] - cells[c].size(), ' ');
            line += right_aligned[c] ? pad + cells[c] : cells[c] + (c + 1 < columns ? pad : "");
        }
        out += line + "\n";
    };
    emit(header);
    for (const auto& row : rows) emit(row);
    return out;
}

}  // namespace gradscope::diag
