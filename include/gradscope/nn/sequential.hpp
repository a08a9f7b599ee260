// Sequential: applies its children in order. Children are named by their position ("0",
// "1", ...) unless given a name.
#pragma once

#include "module.hpp"

#include <memory>
#include <string>

namespace gradscope {

template <class T>
class Sequential : public Module<T> {
public:
    Sequential() = default;

    template <class M>
    std::shared_ptr<M> add(std::shared_ptr<M> module) {
        return add(std::to_string(this->children().size()), std::move(module));
    }

    template <class M>
    std::shared_ptr<M> add(std::string name, std::shared_ptr<M> module) {
        return this->register_module(std::move(name), std::move(module));
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override {
        Tensor<T> h = x;
        for (const auto& [name, child] : this->children()) h = (*child)(h);
        return h;
    }

    [[nodiscard]] std::string type_name() const override { return "Sequential"; }
    [[nodiscard]] std::size_t size() const noexcept { return this->children().size(); }
    [[nodiscard]] Module<T>& operator[](std::size_t i) const {
        if (i >= size()) {
            throw value_error("Sequential: index " + std::to_string(i) + " is out of range for " +
                              std::to_string(size()) + " modules");
        }
        return *this->children()[i].second;
    }
};

}  // namespace gradscope
