// SPDX-License-Identifier: MIT
#pragma once
/// The KeySource concept: where a sealed store gets its key-wrapping key.
#include <concepts>
#include <cstddef>
#include <span>

#include <p11tls/result.hpp>

namespace p11tls {

/// Supplies the 256-bit key-wrapping key of a SealedNvm: a hardware unique key on an MCU, a
/// key file or a PIN-derived key on the host. `key(out)` writes the same `key_size` bytes every
/// time for the same device (or file, or PIN), or fails; it never hands out a weaker key.
template <class T>
concept KeySource = requires(T& k, std::span<std::byte, 32> out) {
    requires T::key_size == 32;
    { k.key(out) } -> std::same_as<Result<void>>;
};

}  // namespace p11tls
