// SPDX-License-Identifier: MIT
#pragma once
// AES-256-GCM on whole records with mbedTLS: the mbedTLS side of SealedNvm. Inline and not a
// template: the mbedTLS calls and their error mapping stay here, out of the public headers.
#include <cstddef>
#include <span>

#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>

#include <p11tls/detail/mbedtls/error.hpp>

namespace p11tls::detail::mbed {

inline constexpr std::size_t gcm_key_size = 32;
inline constexpr std::size_t gcm_iv_size = 12;
inline constexpr std::size_t gcm_tag_size = 16;

namespace gcm_detail {
inline const unsigned char* u8(const std::byte* p) noexcept { return reinterpret_cast<const unsigned char*>(p); }
inline unsigned char* u8(std::byte* p) noexcept { return reinterpret_cast<unsigned char*>(p); }
// The context holds the expanded key; mbedtls_gcm_free zeroizes it.
struct Context {
    mbedtls_gcm_context ctx;
    Context() noexcept { mbedtls_gcm_init(&ctx); }
    ~Context() { mbedtls_gcm_free(&ctx); }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
};
}  // namespace gcm_detail

/// Encrypts `plain` into `cipher` (same length) and writes the tag.
[[nodiscard]] inline Result<void> aes_gcm_seal(std::span<const std::byte, gcm_key_size> key,
                                               std::span<const std::byte, gcm_iv_size> iv, std::span<const std::byte> aad,
                                               std::span<const std::byte> plain, std::span<std::byte> cipher,
                                               std::span<std::byte, gcm_tag_size> tag) noexcept {
    using gcm_detail::u8;
    if (cipher.size() != plain.size()) return fail(Errc::invalid_argument);
    gcm_detail::Context g;
    int ret = mbedtls_gcm_setkey(&g.ctx, MBEDTLS_CIPHER_ID_AES, u8(key.data()), 256);
    if (ret == 0)
        ret = mbedtls_gcm_crypt_and_tag(&g.ctx, MBEDTLS_GCM_ENCRYPT, plain.size(), u8(iv.data()), iv.size(), u8(aad.data()), aad.size(),
                                        u8(plain.data()), u8(cipher.data()), tag.size(), u8(tag.data()));
    return check(ret);
}

/// Checks the tag and decrypts `cipher` into `plain` (same length). A tag that does not match
/// (wrong key, any changed byte of IV, AAD, ciphertext or tag) is `Errc::nvm_corrupt`, the
/// stored data's fault, and leaves `plain` zeroed.
[[nodiscard]] inline Result<void> aes_gcm_open(std::span<const std::byte, gcm_key_size> key,
                                               std::span<const std::byte, gcm_iv_size> iv, std::span<const std::byte> aad,
                                               std::span<const std::byte> cipher, std::span<const std::byte, gcm_tag_size> tag,
                                               std::span<std::byte> plain) noexcept {
    using gcm_detail::u8;
    if (cipher.size() != plain.size()) return fail(Errc::invalid_argument);
    gcm_detail::Context g;
    int ret = mbedtls_gcm_setkey(&g.ctx, MBEDTLS_CIPHER_ID_AES, u8(key.data()), 256);
    if (ret == 0)
        ret = mbedtls_gcm_auth_decrypt(&g.ctx, cipher.size(), u8(iv.data()), iv.size(), u8(aad.data()), aad.size(), u8(tag.data()), tag.size(),
                                       u8(cipher.data()), u8(plain.data()));
    if (ret != 0) mbedtls_platform_zeroize(plain.data(), plain.size());
    if (ret == MBEDTLS_ERR_GCM_AUTH_FAILED) return fail(Errc::nvm_corrupt, ret);
    return check(ret);
}

}  // namespace p11tls::detail::mbed
