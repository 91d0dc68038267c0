// SPDX-License-Identifier: MIT
#pragma once
/// Portable KeySource models for SealedNvm: a key derived from a PIN, and the interface a
/// board implements to supply its hardware unique key. (The host's key file is in key_file.hpp.)
#include <algorithm>
#include <array>
#include <cstring>

#include <mbedtls/platform_util.h>

#include <p11tls/concepts/key_source.hpp>
#include <p11tls/detail/mbedtls/crypto.hpp>

namespace p11tls {

/// A key-wrapping key derived from a PIN with PBKDF2-HMAC-SHA256. The salt should be unique per
/// device (its serial number, an MCU unique ID, or random bytes kept next to the store), so one
/// PIN does not give the same key on two devices. The PIN is needed before the store can be
/// read, so this suits tools and hosts that take the PIN at start, not unattended devices.
/// Holds a copy of the PIN and salt, zeroized on destruction.
template <unsigned Iterations = 100000>
class PinKey {
public:
    static constexpr std::size_t key_size = 32;
    static constexpr std::size_t max_pin = 64, max_salt = 64;
    static_assert(Iterations >= 1000, "PBKDF2 below 1000 iterations is no protection");

    /// `pin` up to 64 bytes, `salt` 8 to 64 bytes (a contract: checked by assertion).
    PinKey(std::span<const char> pin, std::span<const std::byte> salt) noexcept : pin_len_(pin.size()), salt_len_(salt.size()) {
        P11TLS_ASSERT(pin.size() <= max_pin && salt.size() >= 8 && salt.size() <= max_salt, "PIN or salt length");
        std::memcpy(pin_.data(), pin.data(), std::min(pin.size(), max_pin));
        std::memcpy(salt_.data(), salt.data(), std::min(salt.size(), max_salt));
    }
    PinKey(const PinKey&) = default;
    PinKey& operator=(const PinKey&) = default;
    ~PinKey() {
        mbedtls_platform_zeroize(pin_.data(), pin_.size());
        mbedtls_platform_zeroize(salt_.data(), salt_.size());
    }

    [[nodiscard]] Result<void> key(std::span<std::byte, key_size> out) const noexcept {
        return detail::mbed::pbkdf2_sha256(std::as_bytes(std::span(pin_).first(pin_len_)), std::span(salt_).first(salt_len_),
                                           Iterations, out);
    }

private:
    std::array<char, max_pin> pin_{};
    std::array<std::byte, max_salt> salt_{};
    std::size_t pin_len_, salt_len_;
};

/// The key-wrapping key from the MCU's hardware unique key (HUK). A board supplies `Hal` with
///
///     static Result<void> derive_hardware_key(std::span<const std::byte> context,
///                                             std::span<std::byte, 32> out);
///
/// which derives a 256-bit key bound to `context` from a key the CPU cannot read out, e.g.
/// nRF52840 CryptoCell-310 KDR (CRYS_KDF with the device root key), STM32U5/H5 SAES with the
/// DHUK, ESP32 HMAC peripheral keyed from an eFuse block, or i.MX RT SNVS OTPMK. On parts
/// without one, a random key in OTP or in flash behind read-out protection (RDP level 2) is
/// the fallback, and the board documents the weaker guarantee. A failure (peripheral busy,
/// key not provisioned) is an error, never a fallback key.
template <class Hal>
class HardwareKey {
public:
    static constexpr std::size_t key_size = 32;
    /// The derivation context: distinct keys for distinct uses of the same HUK.
    static constexpr char context[] = "p11tls sealed nvm v1";

    [[nodiscard]] Result<void> key(std::span<std::byte, key_size> out) const noexcept {
        return Hal::derive_hardware_key(std::as_bytes(std::span(context).first(sizeof context - 1)), out);
    }
};

}  // namespace p11tls
