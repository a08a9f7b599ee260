// An exception matcher for REQUIRE_THROWS_MATCHES built from a string matcher, so that one
// assertion checks both the exception's type and what its message says:
//
//   REQUIRE_THROWS_MATCHES(Adam<double>(params, {.eps = 0.0}), value_error,
//                          WhatMatches(Contains("eps") && Contains("(got 0)")));
//
// (Catch2 v2's Contains matchers apply to strings, not to exceptions.) The string matcher is
// held by reference: build it in the same assertion, as above.
#pragma once

#include <catch2/catch.hpp>

#include <exception>
#include <string>

namespace gradscope::testing {

class WhatMatches : public Catch::MatcherBase<std::exception> {
public:
    explicit WhatMatches(const Catch::MatcherBase<std::string>& message) : message_(message) {}

    bool match(const std::exception& e) const override { return message_.match(e.what()); }
    std::string describe() const override { return "has a message that " + message_.toString(); }

private:
    const Catch::MatcherBase<std::string>& message_;
};

}  // namespace gradscope::testing
