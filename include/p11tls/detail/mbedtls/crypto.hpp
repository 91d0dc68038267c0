// SPDX-License-Identifier: MIT
#pragma once
// Key operations on raw key components with mbedTLS: the non-template core of SoftToken.
// Every temporary holding secret material is freed (zeroized by mbedTLS) before return.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <mbedtls/ecp.h>
#include <mbedtls/md.h>

#include <p11tls/result.hpp>

namespace p11tls::detail::mbed {

/// mbedTLS's random callback shape.
struct Rng {
    int (*f)(void*, unsigned char*, std::size_t);
    void* p;
};

enum class Curve : std::uint8_t { p256, p384 };

[[nodiscard]] constexpr std::size_t curve_bytes(Curve c) noexcept { return c == Curve::p256 ? 32 : 48; }
/// The named curve of a DER CKA_EC_PARAMS (an OBJECT IDENTIFIER), if supported.
[[nodiscard]] std::optional<Curve> curve_from_params(std::span<const std::byte> der) noexcept;
/// The DER CKA_EC_PARAMS of a curve.
[[nodiscard]] std::span<const std::byte> curve_params(Curve c) noexcept;
/// The uncompressed point (04||X||Y) inside a CKA_EC_POINT, which is normally a DER
/// OCTET STRING; a bare point is accepted too.
[[nodiscard]] Result<std::span<const std::byte>> ec_point_raw(Curve c, std::span<const std::byte> ec_point) noexcept;
/// Wraps a raw point into the DER OCTET STRING of CKA_EC_POINT; returns the length written.
[[nodiscard]] std::size_t ec_point_der(std::span<const std::byte> raw, std::span<std::byte> out) noexcept;

/// The curve groups one owner (a token) keeps loaded. mbedTLS caches the precomputed multiples
/// of the base point in the group on first use; reloading a group for every operation rebuilds
/// that table and costs about four ECDSA signatures. Not thread-safe: the owner serializes.
class EcGroups {
public:
    EcGroups() noexcept {
        for (auto& g : groups_) mbedtls_ecp_group_init(&g);
    }
    ~EcGroups() {
        for (auto& g : groups_) mbedtls_ecp_group_free(&g);
    }
    EcGroups(const EcGroups&) = delete;
    EcGroups& operator=(const EcGroups&) = delete;
    /// The loaded group of `c`, or nullptr if it could not be loaded (out of memory).
    [[nodiscard]] mbedtls_ecp_group* get(Curve c) noexcept;

private:
    mbedtls_ecp_group groups_[2];
};

[[nodiscard]] Result<void> ec_check_private(Curve c, std::span<const std::byte> d) noexcept;
[[nodiscard]] Result<void> ec_check_public(Curve c, std::span<const std::byte> raw_point) noexcept;
/// New key pair: `d` gets curve_bytes, `point` gets 1 + 2 * curve_bytes (uncompressed).
[[nodiscard]] Result<void> ec_generate(EcGroups& groups, Curve c, Rng rng, std::span<std::byte> d, std::span<std::byte> point) noexcept;
/// The public point of a private scalar (uncompressed form into `point`).
[[nodiscard]] Result<void> ec_public_from_private(Curve c, std::span<const std::byte> d, std::span<std::byte> point) noexcept;
/// ECDSA (RFC 6979 deterministic nonce, blinded with `rng`); `sig` gets r||s, 2 * curve_bytes.
[[nodiscard]] Result<void> ec_sign(EcGroups& groups, Curve c, std::span<const std::byte> d, std::span<const std::byte> hash,
                                   std::span<std::byte> sig, Rng rng) noexcept;
[[nodiscard]] Result<void> ec_verify(EcGroups& groups, Curve c, std::span<const std::byte> raw_point, std::span<const std::byte> hash,
                                     std::span<const std::byte> sig) noexcept;

/// RSA key components, big-endian. A public key leaves d, p, q empty.
struct RsaKey {
    std::span<const std::byte> n, e, d, p, q;
};
enum class RsaPad : std::uint8_t { pkcs1, pss };
/// `md == MBEDTLS_MD_NONE` with pkcs1 signs the input as given (CKM_RSA_PKCS);
/// for PSS, `md` names the hash the input is, `mgf` the MGF1 hash, `salt` the salt length.
struct RsaScheme {
    RsaPad pad = RsaPad::pkcs1;
    mbedtls_md_type_t md = MBEDTLS_MD_NONE;
    mbedtls_md_type_t mgf = MBEDTLS_MD_NONE;
    std::size_t salt = 0;
};
inline constexpr unsigned rsa_min_bits = 1024;
inline constexpr unsigned rsa_max_bits = 4096;

[[nodiscard]] Result<unsigned> rsa_check_public(std::span<const std::byte> n, std::span<const std::byte> e) noexcept;
[[nodiscard]] Result<void> rsa_check_private(const RsaKey& k) noexcept;
[[nodiscard]] Result<std::size_t> rsa_sign(const RsaKey& k, const RsaScheme& s, std::span<const std::byte> input,
                                           std::span<std::byte> sig, Rng rng) noexcept;
[[nodiscard]] Result<void> rsa_verify(const RsaKey& k, const RsaScheme& s, std::span<const std::byte> input,
                                      std::span<const std::byte> sig) noexcept;
/// Component ids passed to the generation sink.
enum class RsaPart : std::uint8_t { n, e, d, p, q, dp, dq, qinv };
using RsaSink = void (*)(void* ctx, RsaPart part, std::span<const std::byte> value);
/// Generates a key of `bits` with public exponent `e` and hands each component to `sink`
/// (then zeroizes its copies).
[[nodiscard]] Result<void> rsa_generate(unsigned bits, std::uint32_t e, Rng rng, RsaSink sink, void* ctx) noexcept;

/// Digest size of an mbedTLS hash type.
[[nodiscard]] std::size_t md_size(mbedtls_md_type_t t) noexcept;
/// One-shot hash; out must hold md_size(t).
[[nodiscard]] Result<void> hash(mbedtls_md_type_t t, std::span<const std::byte> in, std::span<std::byte> out) noexcept;

/// PBKDF2-HMAC-SHA256 of `pin` with `salt` into `out`.
[[nodiscard]] Result<void> pbkdf2_sha256(std::span<const std::byte> pin, std::span<const std::byte> salt,
                                         unsigned iterations, std::span<std::byte> out) noexcept;

/// Parts of an X.509 certificate handed to an X509Sink, each as DER.
enum class CertPart : std::uint8_t { subject, issuer, serial };
using X509Sink = void (*)(void* ctx, CertPart part, std::span<const std::byte> der);
/// Parses a DER certificate (Errc::attribute_value_invalid if it does not parse) and hands its
/// subject, issuer and serial number (as a DER INTEGER) to `sink`.
[[nodiscard]] Result<void> x509_parts(std::span<const std::byte> der, X509Sink sink, void* ctx) noexcept;

/// RAII multi-part hash.
class Md {
public:
    Md() noexcept { mbedtls_md_init(&ctx_); }
    ~Md() { mbedtls_md_free(&ctx_); }
    Md(const Md&) = delete;
    Md& operator=(const Md&) = delete;
    [[nodiscard]] Result<void> start(mbedtls_md_type_t t) noexcept;
    [[nodiscard]] Result<void> update(std::span<const std::byte> in) noexcept;
    /// Finishes into `out` (md_size bytes) and frees the context.
    [[nodiscard]] Result<void> finish(std::span<std::byte> out) noexcept;
    void reset() noexcept {
        mbedtls_md_free(&ctx_);
        mbedtls_md_init(&ctx_);
    }
    [[nodiscard]] mbedtls_md_type_t type() const noexcept {
        return ctx_.md_info ? mbedtls_md_get_type(ctx_.md_info) : MBEDTLS_MD_NONE;
    }

private:
    mbedtls_md_context_t ctx_;
};

}  // namespace p11tls::detail::mbed
