// SPDX-License-Identifier: MIT
#pragma once
// The SoftToken the token-side fuzz targets run: a small object table (each run builds a
// token), PBKDF2 at the minimum the token accepts, deterministic entropy, and the
// FreeRTOS-compatible mode so private objects are reachable without a PIN.
#include <p11tls/nvm/ram_nvm.hpp>
#include <p11tls/token/soft_token.hpp>

#include "common.hpp"

namespace p11tls::fuzz {

struct FuzzTokenConfig : SoftTokenConfig {
    static constexpr std::size_t max_objects = 24;
    static constexpr std::size_t max_sessions = 4;
    static constexpr unsigned pin_iterations = 1000;
    static constexpr bool login_required = false;
};

using FuzzNvm = RamNvm<40, 4200>;
using FuzzToken = SoftToken<FuzzNvm, DetEntropy, FuzzTokenConfig>;

inline constexpr std::string_view so_pin = "fuzz-so-pin";
inline constexpr std::string_view user_pin = "fuzz-user-pin";

inline std::span<const char> pin(std::string_view p) noexcept { return {p.data(), p.size()}; }

/// A 32-character blank-padded token label.
inline std::array<char, 32> label32(std::string_view text) {
    std::array<char, 32> l;
    l.fill(' ');
    std::memcpy(l.data(), text.data(), std::min(text.size(), l.size()));
    return l;
}

/// Everything needed to be true before a seed can be made; the generators abort otherwise.
template <class R>
void must(const R& r, const char* what) {
    if (!r) {
        std::fprintf(stderr, "seed generation: %s failed: %s\n", what, describe(r.error().code));
        std::abort();
    }
}

}  // namespace p11tls::fuzz
