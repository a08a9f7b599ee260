// A printable summary of a module tree, as PyTorch's print(model) and Keras' model.summary()
// give: `std::cout << *net` (or summary(*net)) writes one line per module, indented by depth,
// with its path, what it is, its own parameters' shapes and their count, then the totals.
//
//     path             module                                    parameters                      count
//                      MLP
//     layers             Sequential
//     layers.0             Sequential
//     layers.0.linear        Linear(in=784, out=256, bias=true)  weight [256x784], bias [1x256]  200960
//     layers.0.bn            BatchNorm1d(features=256, ...)      weight [1x256], bias [1x256]       512
//     layers.0.act           Activation(relu)
//     layers.1             Sequential
//     layers.1.linear        Linear(in=256, out=10, bias=true)   weight [10x256], bias [1x10]      2570
//     parameters: 204042, of which trainable: 204042
//
// Each module describes its own options through Module::extra_repr (PyTorch's extra_repr); a
// user's module that overrides it is described as the built-ins are.
#pragma once

#include "module.hpp"

#include <algorithm>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace gradscope {

namespace detail {

// "Linear(in=784, out=256, bias=true)": the type name and the module's extra_repr().
template <class T>
std::string describe_module(const Module<T>& m) {
    const std::string type = m.type_name();
    const std::string fields = m.extra_repr();
    if (fields.empty()) return type;
    // "ElmanCell(tanh)" + fields -> "ElmanCell(tanh, input=3, hidden=16)"
    if (!type.empty() && type.back() == ')')
        return type.substr(0, type.size() - 1) + ", " + fields + ")";
    return type + "(" + fields + ")";
}

template <class T>
Index own_parameter_count(const Module<T>& m) {
    Index count = 0;
    for (const auto& [name, p] : m.own_parameters()) count += p.shape().size();
    return count;
}

struct SummaryRow {
    std::string path, module, parameters, count;
};

template <class T>
void summary_rows(const Module<T>& m, const std::string& path, int depth,
                  std::vector<SummaryRow>& rows, Index& total, Index& trainable) {
    std::string shapes;
    for (const auto& [name, p] : m.own_parameters()) {
        shapes += (shapes.empty() ? "" : ", ") + name + " " + to_string(p.shape());
        total += p.shape().size();
        if (p.requires_grad()) trainable += p.shape().size();
    }
    const Index own = own_parameter_count(m);
    rows.push_back({path,
                    std::string(2 * static_cast<std::size_t>(depth), ' ') + describe_module(m),
                    shapes, own > 0 ? std::to_string(own) : std::string()});
    for (const auto& [name, child] : m.children()) {
        summary_rows(*child, join_path(path, name), depth + 1, rows, total, trainable);
    }
}

}  // namespace detail

// The module tree as a table: path, module (indented by depth), own parameters' shapes and
// their count; then the total number of parameters and how many of them are trainable.
template <class T>
std::string summary(const Module<T>& root) {
    std::vector<detail::SummaryRow> rows{{"path", "module", "parameters", "count"}};
    Index total = 0, trainable = 0;
    detail::summary_rows(root, "", 0, rows, total, trainable);

    std::size_t widths[3] = {0, 0, 0};
    std::size_t count_width = 0;
    for (const auto& r : rows) {
        widths[0] = std::max(widths[0], r.path.size());
        widths[1] = std::max(widths[1], r.module.size());
        widths[2] = std::max(widths[2], r.parameters.size());
        count_width = std::max(count_width, r.count.size());
    }
    std::string out;
    for (const auto& r : rows) {
        std::string line = r.path + std::string(widths[0] - r.path.size() + 2, ' ') + r.module +
                           std::string(widths[1] - r.module.size() + 2, ' ') + r.parameters +
                           std::string(widths[2] - r.parameters.size() + 2, ' ') +
                           std::string(count_width - r.count.size(), ' ') + r.count;
        line.erase(line.find_last_not_of(' ') + 1);
        out += line + "\n";
    }
    out += "parameters: " + std::to_string(total) +
           ", of which trainable: " + std::to_string(trainable) + "\n";
    return out;
}

// `std::cout << *net`: the summary above. Found by argument-dependent lookup for every module.
template <class T>
std::ostream& operator<<(std::ostream& out, const Module<T>& module) {
    return out << summary(module);
}

}  // namespace gradscope
