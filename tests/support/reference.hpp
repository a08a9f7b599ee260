// Reading reference values that tools/make_*_reference.py computed with PyTorch and that are
// committed under tests/data/ (CI never needs PyTorch).
#pragma once

#include "testing.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradscope::testing {

inline const nlohmann::json& reference_file(const std::string& name) {
    static std::map<std::string, nlohmann::json> cache;
    auto it = cache.find(name);
    if (it == cache.end()) {
        const std::string path = std::string(GRADSCOPE_TEST_DATA_DIR) + "/" + name;
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot open reference data " + path);
        it = cache.emplace(name, nlohmann::json::parse(in)).first;
    }
    return it->second;
}

inline Matrix<double> to_matrix(const nlohmann::json& t) {
    const Index rows = t.at("shape").at(0).get<Index>();
    const Index cols = t.at("shape").at(1).get<Index>();
    const auto data = t.at("data").get<std::vector<double>>();
    if (static_cast<Index>(data.size()) != rows * cols) {
        throw std::runtime_error("reference tensor with " + std::to_string(data.size()) +
                                 " values for shape [" + std::to_string(rows) + "x" +
                                 std::to_string(cols) + "]");
    }
    return Eigen::Map<const Matrix<double>>(data.data(), rows, cols);
}

// One case of a reference file: its inputs as leaves (those with a reference gradient
// require grad), and checks of outputs and gradients to a relative tolerance.
struct ReferenceCase {
    const nlohmann::json& json;
    std::map<std::string, TensorD> inputs;

    ReferenceCase(const std::string& file, const std::string& name)
        : json(reference_file(file).at("cases").at(name)) {
        for (const auto& [key, value] : json.at("inputs").items()) {
            const bool wants_grad = json.at("grads").contains(key);
            inputs.emplace(key, TensorD::leaf(to_matrix(value), wants_grad));
        }
    }
    TensorD& in(const std::string& key) { return inputs.at(key); }
    [[nodiscard]] Matrix<double> input(const std::string& key) const {
        return to_matrix(json.at("inputs").at(key));
    }
    [[nodiscard]] Matrix<double> output(const std::string& key) const {
        return to_matrix(json.at("outputs").at(key));
    }
    [[nodiscard]] Matrix<double> grad(const std::string& key) const {
        return to_matrix(json.at("grads").at(key));
    }

    template <class M>
    void check_output(const std::string& key, const M& actual, double rtol = 1e-10) const {
        INFO("output " << key);
        CHECK(all_close(actual, output(key), rtol, 1e-12));
    }
    void check_output(const std::string& key, const TensorD& actual, double rtol = 1e-10) const {
        check_output(key, actual.value(), rtol);
    }
    // Every input that has a reference gradient.
    void check_grads(double rtol = 1e-10) {
        for (const auto& [key, value] : json.at("grads").items()) {
            INFO("gradient of " << key);
            REQUIRE(in(key).has_grad());
            CHECK(all_close(in(key).grad(), to_matrix(value), rtol, 1e-12));
        }
    }
};

}  // namespace gradscope::testing
