// SPDX-License-Identifier: MIT
#pragma once
/// The Entropy concept: a source of random bytes that fails closed.
#include <concepts>
#include <cstddef>
#include <span>

#include <p11tls/result.hpp>

namespace p11tls {

/// A source of random bytes for seeding a DRBG. `fill(out)` either fills all of `out` with
/// output of the source or returns an error (`Errc::entropy_failed`); it never returns weak
/// or partial bytes as success.
///
/// Bytes are full entropy unless the model declares less with
/// `static constexpr double min_entropy_per_byte` (bits, 0 < h <= 8), as a source that hands
/// out raw noise samples does; consumers then gather proportionally more (see
/// `entropy_per_byte`).
template <class T>
concept Entropy = requires(T& e, std::span<std::byte> out) {
    { e.fill(out) } -> std::same_as<Result<void>>;
};

/// The min-entropy, in bits, that an `E` claims for each byte it fills: its declared
/// `min_entropy_per_byte`, else 8 (full entropy).
template <Entropy E>
inline constexpr double entropy_per_byte = [] {
    if constexpr (requires { E::min_entropy_per_byte; }) {
        static_assert(E::min_entropy_per_byte > 0 && E::min_entropy_per_byte <= 8, "min-entropy per byte is in (0, 8]");
        return static_cast<double>(E::min_entropy_per_byte);
    } else {
        return 8.0;
    }
}();

}  // namespace p11tls
