// SPDX-License-Identifier: MIT
#pragma once
/// The Entropy concept: a source of full-entropy bytes that fails closed.
#include <concepts>
#include <cstddef>
#include <span>

#include <p11tls/result.hpp>

namespace p11tls {

/// A source of random bytes for seeding a DRBG. `fill(out)` either fills all of `out` with
/// output of the source or returns an error (`Errc::entropy_failed`); it never returns weak
/// or partial bytes as success.
template <class T>
concept Entropy = requires(T& e, std::span<std::byte> out) {
    { e.fill(out) } -> std::same_as<Result<void>>;
};

}  // namespace p11tls
