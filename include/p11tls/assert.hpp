// SPDX-License-Identifier: MIT
#pragma once
/// P11TLS_ASSERT(cond, msg): contract checks. A broken precondition is a bug, not an Error.
/// Override by defining P11TLS_ASSERT before including any p11tls header, or compile the
/// checks out with P11TLS_NO_ASSERT (the Meson option `assertions=false`).

#ifndef P11TLS_ASSERT
#ifdef P11TLS_NO_ASSERT
#define P11TLS_ASSERT(cond, msg) ((void)0)
#else
namespace p11tls::detail {
[[noreturn]] void assert_failed(const char* file, int line, const char* cond, const char* msg) noexcept;
}
#define P11TLS_ASSERT(cond, msg) \
    ((cond) ? (void)0 : ::p11tls::detail::assert_failed(__FILE__, __LINE__, #cond, msg))
#endif
#endif
