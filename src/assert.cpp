// SPDX-License-Identifier: MIT
#include <cstdio>
#include <cstdlib>

#include <p11tls/assert.hpp>

namespace p11tls::detail {
void assert_failed(const char* file, int line, const char* cond, const char* msg) noexcept {
    std::fprintf(stderr, "p11tls: assertion failed at %s:%d: %s (%s)\n", file, line, cond, msg);
    std::abort();
}
}  // namespace p11tls::detail
