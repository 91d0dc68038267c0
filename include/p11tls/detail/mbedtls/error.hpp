// SPDX-License-Identifier: MIT
#pragma once
// The one place mbedTLS's int error codes become p11tls Errors.
#include <p11tls/result.hpp>

namespace p11tls::detail::mbed {

/// Maps a negative mbedTLS return code; `native` keeps the raw code for diagnostics.
[[nodiscard]] Error to_error(int ret) noexcept;

/// `ret == 0` as success, anything else mapped by to_error.
[[nodiscard]] inline Result<void> check(int ret) noexcept {
    if (ret == 0) return {};
    return fail(to_error(ret));
}

}  // namespace p11tls::detail::mbed
