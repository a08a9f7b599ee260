// A report as one self-contained HTML file: sections of text, figures (inline SVG, as
// gradscope's svg_* functions make them), rows of small panels, and tables. Everything is in
// the file (the CSS inline, no script, no font, image or stylesheet fetched from anywhere), so
// it opens offline from file:// and can be mailed or attached to a CI run as it is.
//
//   diag::HtmlReport report("Depth sweep");
//   report.section("Where the gradient dies", "Each cell is one network ...");
//   report.figure(diag::svg_heatmap(map), "log10 |delta_1| / |delta_L|");
//   report.panels({svg_a, svg_b, svg_c}, "One panel per activation");
//   report.save("sweep.html");
//
// Text is escaped; an SVG is inserted as it is, and must be a complete <svg> element (what
// the svg_* functions return), or it is a value_error. Hover titles (SVG <title>) give exact
// values without a script.
#pragma once

#include "../core/errors.hpp"
#include "../io/errors.hpp"  // io_error: a leaf header, as data/ uses it
#include "svg.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gradscope::diag {

class HtmlReport {
public:
    explicit HtmlReport(std::string title) : title_(std::move(title)) {}

    // A new section: a heading and, optionally, a paragraph under it.
    HtmlReport& section(std::string_view heading, std::string_view text = {}) {
        close_section();
        ++sections_;
        add("<h2>" + xml_escape(heading) + "</h2>\n");
        if (!text.empty()) paragraph(text);
        return *this;
    }

    HtmlReport& paragraph(std::string_view text) {
        add("<p>" + xml_escape(text) + "</p>\n");
        return *this;
    }

    // One SVG with a caption under it.
    HtmlReport& figure(std::string_view svg, std::string_view caption = {}) {
        add("<figure>\n" + checked_svg(svg) + caption_html(caption) + "</figure>\n");
        return *this;
    }

    // Small multiples: the SVGs side by side, wrapping to the page's width, one caption.
    HtmlReport& panels(const std::vector<std::string>& svgs, std::string_view caption = {}) {
        std::string html = "<figure>\n<div class=\"panels\">\n";
        for (const auto& svg : svgs) html += "<div class=\"panel\">" + checked_svg(svg) + "</div>\n";
        add(html + "</div>\n" + caption_html(caption) + "</figure>\n");
        panel_count_ += svgs.size();
        return *this;
    }

    // A table: a header row and rows of cells (text, escaped).
    HtmlReport& table(const std::vector<std::string>& header,
                      const std::vector<std::vector<std::string>>& rows) {
        std::string html = "<table>\n<tr>";
        for (const auto& h : header) html += "<th>" + xml_escape(h) + "</th>";
        html += "</tr>\n";
        for (const auto& row : rows) {
            html += "<tr>";
            for (const auto& cell : row) html += "<td>" + xml_escape(cell) + "</td>";
            html += "</tr>\n";
        }
        add(html + "</table>\n");
        return *this;
    }

    [[nodiscard]] std::size_t section_count() const { return sections_; }
    [[nodiscard]] std::size_t panel_count() const { return panel_count_; }

    [[nodiscard]] std::string html() const {
        return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<title>" +
               xml_escape(title_) + "</title>\n<style>\n" + style() +
               "</style>\n</head>\n<body>\n<header><h1>" + xml_escape(title_) +
               "</h1><p class=\"by\">written by gradscope</p></header>\n<main>\n" + body_ +
               (section_open_ ? "</section>\n" : "") + "</main>\n</body>\n</html>\n";
    }

    // Writes the file through a temporary next to it, so a failed write leaves no half file
    // under the name; io_error naming the path otherwise.
    void save(const std::filesystem::path& path) const {
        const std::filesystem::path tmp = path.string() + ".tmp";
        {
            std::ofstream out(tmp, std::ios::binary);
            out << html();
            out.close();
            if (!out) {
                std::error_code ignored;
                std::filesystem::remove(tmp, ignored);
                throw io_error(path.string() + ": cannot write the report");
            }
        }
        std::error_code ec;
        std::filesystem::rename(tmp, path, ec);
        if (ec) {
            std::filesystem::remove(tmp, ec);
            throw io_error(path.string() + ": cannot write the report: " + ec.message());
        }
    }

private:
    // Content goes into the section opened last (one is opened if there is none yet).
    void add(const std::string& html) {
        if (!section_open_) body_ += "<section>\n";
        section_open_ = true;
        body_ += html;
    }

    void close_section() {
        if (section_open_) body_ += "</section>\n";
        section_open_ = false;
    }

    static std::string checked_svg(std::string_view svg) {
        const auto begin = svg.find("<svg");
        const auto end = svg.rfind("</svg>");
        if (begin != 0 || end == std::string_view::npos) {
            throw value_error("HtmlReport: a figure must be one <svg> element (got \"" +
                              std::string(svg.substr(0, 40)) + "...\")");
        }
        return std::string(svg.substr(0, end + 6)) + "\n";
    }

    static std::string caption_html(std::string_view caption) {
        return caption.empty() ? std::string()
                               : "<figcaption>" + xml_escape(caption) + "</figcaption>\n";
    }

    static std::string style() {
        return "body { font-family: sans-serif; margin: 0; color: #222; background: #fafafa; }\n"
               "header { background: #263238; color: white; padding: 12px 24px; }\n"
               "header h1 { margin: 0; font-size: 22px; }\n"
               ".by { margin: 4px 0 0; font-size: 12px; opacity: 0.7; }\n"
               "main { padding: 8px 24px 32px; max-width: 1400px; }\n"
               "section { margin-top: 20px; }\n"
               "h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }\n"
               "p { max-width: 900px; line-height: 1.45; }\n"
               "figure { margin: 12px 0; }\n"
               "figcaption { font-size: 13px; color: #555; max-width: 900px; }\n"
               "svg { max-width: 100%; height: auto; background: white; }\n"
               ".panels { display: flex; flex-wrap: wrap; gap: 8px; }\n"
               ".panel { flex: 0 1 440px; }\n"
               "table { border-collapse: collapse; font-size: 13px; }\n"
               "th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }\n"
               "th { background: #eee; }\n";
    }

    std::string title_;
    std::string body_;
    std::size_t sections_ = 0;
    std::size_t panel_count_ = 0;
    bool section_open_ = false;
};

}  // namespace gradscope::diag
