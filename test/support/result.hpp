// SPDX-License-Identifier: MIT
#pragma once
// Catch2 glue for p11tls::Result: compare error codes, and print them by name on failure.
#include <string>

#include <catch2/catch.hpp>

#include <p11tls/result.hpp>

namespace p11tls::test {

/// The Errc a result stands for; `no_error` for a success.
inline constexpr Errc no_error{};

template <class T>
[[nodiscard]] Errc code(const Result<T>& r) noexcept {
    return r ? no_error : r.error().code;
}

}  // namespace p11tls::test

namespace Catch {
template <>
struct StringMaker<p11tls::Errc> {
    static std::string convert(p11tls::Errc e) {
        if (e == p11tls::test::no_error) return "ok";
        return std::string(p11tls::describe(e));
    }
};
}  // namespace Catch
