// A CSV reader (RFC 4180): a header row, then records of the same number of fields.
//
// Why not a library. Debian's libfccp-dev ("Fast C++ CSV Parser", csv.h) was the candidate, and
// it reports errors well (file, line and column name), strips the CR of CRLF and reads quoted
// fields. It does not fit a reader of tables chosen at run time: its CSVReader takes the number
// of columns as a template argument and read_row() one typed variable per column, so the
// columns must be known when the program is compiled; it splits the file into lines before it
// looks at quotes, so a quoted field holding a line break (legal in RFC 4180, common in
// spreadsheet exports) is an error; it truncates column names to 63 characters; and it starts a
// reading thread unless CSV_IO_NO_THREAD is defined before the include. So gradscope reads CSV
// itself: about 150 lines, standard library only, and therefore not an optional dependency.
//
// What it accepts: fields separated by `delimiter` (default ','); records ended by LF, CRLF or
// a lone CR; a field in double quotes may hold the delimiter, line breaks and "" for a quote;
// spaces outside quotes are kept as part of the field (the table reader trims numbers). A UTF-8
// byte order mark before the header is skipped, and so are blank lines. Refused, as io_error
// naming the source and line: a quote inside an unquoted field, text after a closing quote, a
// quoted field that never closes, a record whose field count differs from the header's, an
// empty or duplicate column name, an empty file.
#pragma once

#include "../io/errors.hpp"

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope::data {

struct CsvOptions {
    char delimiter = ',';
};

struct CsvTable {
    std::string source;               // the file, as error messages name it
    std::vector<std::string> header;  // column names
    std::vector<std::vector<std::string>> rows;
    std::vector<std::size_t> lines;  // the line (from 1) on which each row begins

    // The position of column `name` in the header; value_error listing the columns if none.
    [[nodiscard]] std::size_t column(std::string_view name) const {
        for (std::size_t c = 0; c < header.size(); ++c) {
            if (header[c] == name) return c;
        }
        std::string names;
        for (const auto& h : header) names += (names.empty() ? "'" : ", '") + h + "'";
        throw value_error(source + ": no column '" + std::string(name) + "'; the columns are " +
                          names);
    }
};

namespace detail::csv {

class Parser {
public:
    Parser(std::string_view text, std::string source, char delimiter)
        : text_(text), source_(std::move(source)), delimiter_(delimiter) {
        if (text_.starts_with("\xEF\xBB\xBF")) text_.remove_prefix(3);
    }

    // The next record's fields, or false at the end. Blank lines are skipped.
    bool next(std::vector<std::string>& fields, std::size_t& line) {
        while (pos_ < text_.size() && at_line_end()) skip_line_end();
        if (pos_ >= text_.size()) return false;
        line = line_;
        fields.clear();
        for (;;) {
            fields.push_back(field());
            if (pos_ >= text_.size()) return true;
            if (text_[pos_] == delimiter_) {
                ++pos_;
                continue;
            }
            skip_line_end();  // field() stops only at a delimiter, a line end or the end
            return true;
        }
    }

    [[noreturn]] void fail(std::size_t line, const std::string& what) const {
        throw io_error(source_ + ", line " + std::to_string(line) + ": " + what);
    }

private:
    [[nodiscard]] bool at_line_end() const { return text_[pos_] == '\n' || text_[pos_] == '\r'; }

    void skip_line_end() {
        if (text_[pos_] == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n') ++pos_;
        ++pos_;
        ++line_;
    }

    std::string field() {
        std::string out;
        if (pos_ < text_.size() && text_[pos_] == '"') return quoted();
        while (pos_ < text_.size() && text_[pos_] != delimiter_ && !at_line_end()) {
            if (text_[pos_] == '"') {
                fail(line_,
                     "a quote inside an unquoted field (quote the whole field, and "
                     "double the quotes in it)");
            }
            out += text_[pos_++];
        }
        return out;
    }

    std::string quoted() {
        const std::size_t opened = line_;
        std::string out;
        ++pos_;
        for (;;) {
            if (pos_ >= text_.size()) fail(opened, "a quoted field is never closed");
            const char c = text_[pos_];
            if (c == '"') {
                if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
                    out += '"';
                    pos_ += 2;
                    continue;
                }
                ++pos_;
                break;
            }
            // A line break inside quotes is data; count it so later lines are numbered right.
            if (c == '\n' || (c == '\r' && !(pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n')))
                ++line_;
            out += c;
            ++pos_;
        }
        if (pos_ < text_.size() && text_[pos_] != delimiter_ && !at_line_end()) {
            fail(line_, "text after a closing quote");
        }
        return out;
    }

    std::string_view text_;
    std::string source_;
    char delimiter_;
    std::size_t pos_ = 0;
    std::size_t line_ = 1;
};

}  // namespace detail::csv

// Parses CSV text; `source` names it in error messages.
inline CsvTable parse_csv(std::string_view text, std::string source = "<memory>",
                          const CsvOptions& options = {}) {
    if (options.delimiter == '"' || options.delimiter == '\n' || options.delimiter == '\r') {
        throw value_error("parse_csv: the delimiter cannot be a quote or a line break");
    }
    CsvTable table;
    table.source = source;
    detail::csv::Parser parser(text, std::move(source), options.delimiter);
    std::size_t line = 0;
    if (!parser.next(table.header, line)) {
        throw io_error(table.source + ": empty, with no header row");
    }
    for (std::size_t c = 0; c < table.header.size(); ++c) {
        const std::string& name = table.header[c];
        if (name.empty()) {
            parser.fail(line, "column " + std::to_string(c + 1) + " of the header has no name");
        }
        for (std::size_t d = 0; d < c; ++d) {
            if (table.header[d] == name) parser.fail(line, "two columns are named '" + name + "'");
        }
    }
    std::vector<std::string> fields;
    while (parser.next(fields, line)) {
        if (fields.size() != table.header.size()) {
            parser.fail(line, std::to_string(fields.size()) + " fields, but the header has " +
                                  std::to_string(table.header.size()) + " columns");
        }
        table.rows.push_back(fields);
        table.lines.push_back(line);
    }
    return table;
}

// Reads the CSV file at `path` (io_error if it cannot be read).
inline CsvTable read_csv(const std::filesystem::path& path, const CsvOptions& options = {}) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(path.string() + ": cannot be opened for reading");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw io_error(path.string() + ": reading failed");
    return parse_csv(text.str(), path.string(), options);
}

}  // namespace gradscope::data
