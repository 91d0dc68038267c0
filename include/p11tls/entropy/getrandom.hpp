// SPDX-License-Identifier: MIT
#pragma once
/// GetrandomEntropy: the host's entropy, from the kernel's getrandom(2).
#include <cerrno>

#include <sys/random.h>

#include <p11tls/concepts/entropy.hpp>

namespace p11tls {

/// Blocks until the kernel's pool is initialised; any other failure is an error, never a
/// short or weak fill.
class GetrandomEntropy {
public:
    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        while (!out.empty()) {
            ssize_t n = ::getrandom(out.data(), out.size(), 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                return fail(Errc::entropy_failed, errno);
            }
            out = out.subspan(static_cast<std::size_t>(n));
        }
        return {};
    }
};

static_assert(Entropy<GetrandomEntropy>);

}  // namespace p11tls
