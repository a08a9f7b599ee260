// The name of a class as its source spells it, for a module that does not name itself
// (Module::type_name): "Block", "Gated<float>". Summaries and error messages print it, as
// PyTorch prints a module's class name.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

namespace gradscope::detail {

// The type's name as written in C++ (the Itanium ABI's demangler, which g++ and clang use);
// elsewhere the implementation's own text.
inline std::string demangled_name(const std::type_info& type) {
#if __has_include(<cxxabi.h>)
    int status = 0;
    const std::unique_ptr<char, void (*)(void*)> name(
        abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
    if (status == 0 && name) return name.get();
#endif
    return type.name();
}

// The class's own name: the namespaces, enclosing classes or functions around it dropped
// ("app::Block" and "main()::Block" give "Block"), its template arguments kept as written
// ("app::Gated<app::Cell>" gives "Gated<app::Cell>").
inline std::string class_name(const std::type_info& type) {
    std::string name = demangled_name(type);
    for (const std::string_view keyword : {"class ", "struct "}) {  // MSVC's spelling
        if (name.starts_with(keyword)) name.erase(0, keyword.size());
    }
    // The last "::" outside brackets, read from the end, ends the scopes around the class.
    int depth = 0;
    for (std::size_t i = name.size(); i-- > 1;) {
        const char c = name[i];
        if (c == '>' || c == ')') ++depth;
        if (c == '<' || c == '(') --depth;
        if (depth == 0 && c == ':' && name[i - 1] == ':') return name.substr(i + 1);
    }
    return name;
}

}  // namespace gradscope::detail
