// SPDX-License-Identifier: MIT
#pragma once
/// GetrandomEntropy: the host's entropy, from the kernel's getrandom(2).
#include <cerrno>

#include <sys/random.h>

#include <p11tls/concepts/noise_source.hpp>

namespace p11tls {

/// Blocks until the kernel's pool is initialised; any other failure is an error, never a
/// short or weak fill. As a NoiseSource each byte is one sample of full entropy (the kernel
/// conditions its inputs), so HealthTested<GetrandomEntropy> only catches gross failures
/// (a stuck or constant output), which is what it is for.
class GetrandomEntropy {
public:
    static constexpr unsigned bits_per_sample = 8;
    static constexpr double min_entropy_per_sample = 8.0;

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

static_assert(NoiseSource<GetrandomEntropy>);

}  // namespace p11tls
