// SPDX-License-Identifier: MIT
#pragma once
// A test runner for target images (Catch2 needs exceptions and a heap): TARGET_TEST cases run
// in definition order, CHECK records a failure and goes on, REQUIRE and REQUIRE_OK (a Result)
// end the case. main() runs every case, prints each name and a closing "N passed, N failed"
// line, and returns nonzero on any failure: semihosting hands that status to `meson test`.
#include <cstdio>

#include <p11tls/result.hpp>

namespace p11tls::target {

struct Case {
    const char* name;
    void (*fn)();
    Case* next = nullptr;
};

inline Case* first_case = nullptr;
inline Case** last_case = &first_case;
inline int case_failures = 0;

struct Register {
    explicit Register(Case& c) noexcept {
        *last_case = &c;
        last_case = &c.next;
    }
};

inline void failed(const char* file, int line, const char* what) {
    std::printf("  FAILED %s:%d: %s\n", file, line, what);
    ++case_failures;
}
inline void failed(const char* file, int line, const char* what, Error e) {
    std::printf("  FAILED %s:%d: %s: %s (0x%04x, native %ld)\n", file, line, what, describe(e.code),
                static_cast<unsigned>(e.code), static_cast<long>(e.native));
    ++case_failures;
}

inline int run_all() {
    int passed = 0, failed_cases = 0;
    for (Case* c = first_case; c; c = c->next) {
        case_failures = 0;
        std::printf("%s\n", c->name);
        c->fn();
        if (case_failures) ++failed_cases;
        else ++passed;
        std::printf("  %s\n", case_failures ? "failed" : "ok");
    }
    std::printf("%d passed, %d failed\n", passed, failed_cases);
    std::fflush(stdout);
    return failed_cases ? 1 : 0;
}

}  // namespace p11tls::target

#define P11TLS_TARGET_CAT2(a, b) a##b
#define P11TLS_TARGET_CAT(a, b) P11TLS_TARGET_CAT2(a, b)
#define TARGET_TEST(title) P11TLS_TARGET_TEST_(title, P11TLS_TARGET_CAT(target_test_, __LINE__))
#define P11TLS_TARGET_TEST_(title, id)                                               \
    static void id();                                                                \
    static ::p11tls::target::Case P11TLS_TARGET_CAT(id, _case){title, id};           \
    static ::p11tls::target::Register P11TLS_TARGET_CAT(id, _reg){P11TLS_TARGET_CAT(id, _case)}; \
    static void id()

#define CHECK(cond) ((cond) ? (void)0 : ::p11tls::target::failed(__FILE__, __LINE__, #cond))
#define REQUIRE(cond)                                                \
    do {                                                             \
        if (!(cond)) {                                               \
            ::p11tls::target::failed(__FILE__, __LINE__, #cond);     \
            return;                                                  \
        }                                                            \
    } while (0)
#define REQUIRE_OK(expr)                                                               \
    do {                                                                               \
        if (auto&& p11tls_r_ = (expr); !p11tls_r_) {                                   \
            ::p11tls::target::failed(__FILE__, __LINE__, #expr, p11tls_r_.error());    \
            return;                                                                    \
        }                                                                              \
    } while (0)
