// SPDX-License-Identifier: MIT
#pragma once
/// Board `host`: Linux/POSIX. Token objects in a directory (FileNvm), entropy from getrandom
/// behind the SP 800-90B health tests.
#include <cstdlib>
#include <memory>
#include <string>

#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/nvm/file_nvm.hpp>
#include <p11tls/token/soft_token.hpp>

namespace p11tls::board {

inline constexpr const char* name = "host";

using Nvm = FileNvm;
// The kernel's output is conditioned and reseeded by the kernel, so no seed record: a board
// with a hardware RNG composes NvSeeded<HealthTested<Trng>, Nvm> instead (include/p11tls/entropy/).
using Entropy = HealthTested<GetrandomEntropy>;
struct TokenConfig : SoftTokenConfig {};
using Token = SoftToken<Nvm, Entropy, TokenConfig>;

/// The token's store directory: `$P11TLS_STORE` if set, else `$XDG_DATA_HOME/p11tls/token`,
/// else `$HOME/.local/share/p11tls/token`, else `./p11tls-token`.
[[nodiscard]] inline std::string store_directory() {
    if (const char* s = std::getenv("P11TLS_STORE"); s && *s) return s;
    if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/p11tls/token";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/p11tls/token";
    return "p11tls-token";
}

/// Opens (creating if needed) the token stored in `dir`.
[[nodiscard]] inline Result<std::unique_ptr<Token>> open_token(std::string dir = store_directory()) {
    auto nvm = Nvm::open(std::move(dir));
    if (!nvm) return fail(nvm.error());
    auto token = std::make_unique<Token>(std::move(*nvm), Entropy{});
    if (auto r = token->load(); !r) return fail(r.error());
    return token;
}

inline void initialize() {}

}  // namespace p11tls::board
