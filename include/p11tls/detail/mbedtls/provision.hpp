// SPDX-License-Identifier: MIT
#pragma once
// Non-template provisioning glue (src/provision.cpp): token keys whose public half mbedTLS can
// read, PKCS#10 requests signed by the token, private key and certificate parsing.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/detail/mbedtls/crypto.hpp>
#include <p11tls/detail/mbedtls/tls.hpp>
#include <p11tls/result.hpp>
#include <p11tls/token/pkcs11.hpp>

namespace p11tls::detail::mbed {

/// A public key as a token holds it (spans into the caller's buffers).
struct PublicKeyParts {
    CK_KEY_TYPE key_type = CKK_EC;
    std::span<const std::byte> ec_params;  ///< CKA_EC_PARAMS: the curve's DER OID
    std::span<const std::byte> ec_point;   ///< CKA_EC_POINT: DER OCTET STRING (or a bare point)
    std::span<const std::byte> modulus;    ///< CKA_MODULUS
    std::span<const std::byte> exponent;   ///< CKA_PUBLIC_EXPONENT
};

/// A token key as an mbedTLS pk whose public half is in software and whose signatures are the
/// token's (through `ref()`, which the caller binds). Used to write requests and public keys.
class TokenPk {
public:
    TokenPk() noexcept;
    ~TokenPk();
    TokenPk(const TokenPk&) = delete;
    TokenPk& operator=(const TokenPk&) = delete;

    /// Loads and checks the public key: a point on P-256/P-384, or RSA of 2048-4096 bits
    /// (Errc::unsupported_key otherwise). Sets ref().key_type and ref().bits.
    [[nodiscard]] Result<void> load(const PublicKeyParts& pub) noexcept;
    /// Where signatures go: set token, sign, session and key before signing.
    [[nodiscard]] TokenKeyRef& ref() noexcept { return ref_; }
    [[nodiscard]] mbedtls_pk_context& pk() noexcept { return pk_; }
    /// EC keys: their curve.
    [[nodiscard]] std::optional<Curve> curve() const noexcept { return curve_; }
    /// SubjectPublicKeyInfo, DER, at the start of `out`.
    [[nodiscard]] Result<std::size_t> spki_der(std::span<std::byte> out) noexcept;
    /// The same as PEM ("-----BEGIN PUBLIC KEY-----"), NUL-terminated; returns the length
    /// without the NUL.
    [[nodiscard]] Result<std::size_t> spki_pem(std::span<char> out) noexcept;

private:
    void reset() noexcept;

    TokenKeyRef ref_{};
    TokenPublicKey key_{};
    mbedtls_pk_context pk_;
    std::optional<Curve> curve_;
    bool loaded_ = false;
};

/// An iPAddress subjectAltName: 4 (IPv4) or 16 (IPv6) bytes, network order.
struct IpAddress {
    std::array<std::byte, 16> bytes{};
    std::uint8_t len = 0;
};

enum class Encoding : std::uint8_t { pem, der };

/// What a PKCS#10 request says besides the key.
struct CsrFields {
    std::string_view subject;                ///< "CN=device-1,O=Acme" (mbedTLS's name syntax)
    std::span<const std::string_view> dns;   ///< subjectAltName dNSName entries
    std::span<const IpAddress> ips;          ///< subjectAltName iPAddress entries
};

/// Writes a PKCS#10 request for `key`'s public key, signed through `key.ref()` with SHA-256
/// (SHA-384 for P-384), at the start of `out` (PEM is NUL-terminated; the length excludes
/// the NUL). The request is parsed back and its signature verified with its own public key,
/// so a public key that does not belong to the signing key is caught here
/// (Errc::tls_key_cert_mismatch). A bad subject is Errc::invalid_argument.
[[nodiscard]] Result<std::size_t> write_csr(TokenPk& key, const CsrFields& fields, Rng rng, Encoding enc,
                                            std::span<std::byte> out) noexcept;

/// A private key parsed from outside bytes. Components stay here until stored and are
/// zeroized on destruction; spans returned point into this object.
class ParsedKey {
public:
    ParsedKey() = default;
    ~ParsedKey();
    ParsedKey(const ParsedKey&) = delete;
    ParsedKey& operator=(const ParsedKey&) = delete;

    /// EC: d; the public point is public_point(). RSA: the PKCS#11 names.
    enum Part : std::uint8_t { ec_d, ec_point, rsa_n, rsa_e, rsa_d, rsa_p, rsa_q, rsa_dp, rsa_dq, rsa_qinv, part_count };

    [[nodiscard]] CK_KEY_TYPE key_type() const noexcept { return key_type_; }
    [[nodiscard]] std::optional<Curve> curve() const noexcept { return curve_; }
    [[nodiscard]] unsigned bits() const noexcept { return bits_; }
    [[nodiscard]] std::span<const std::byte> part(Part p) const noexcept { return {buf_.data() + at_[p], len_[p]}; }
    /// CKA_EC_POINT of the public key: DER OCTET STRING around the uncompressed point.
    [[nodiscard]] std::span<const std::byte> ec_point_der() const noexcept { return {point_der_.data(), point_der_len_}; }

private:
    friend Result<void> parse_private_key(std::span<const std::byte>, ParsedKey&) noexcept;
    void clear() noexcept;
    // Appends `x` big-endian: `len` bytes (left-padded), or its minimal length when 0.
    bool put(Part p, const mbedtls_mpi& x, std::size_t len = 0) noexcept;
    void put_bytes(Part p, std::span<const std::byte> v) noexcept;

    CK_KEY_TYPE key_type_ = CKK_EC;
    std::optional<Curve> curve_;
    unsigned bits_ = 0;
    std::array<std::byte, 2560> buf_{};  // RSA-4096: n, d 512 each, five halves 256 each, e
    std::size_t used_ = 0;
    std::array<std::size_t, part_count> at_{}, len_{};
    std::array<std::byte, 2 + 1 + 2 * 48> point_der_{};
    std::size_t point_der_len_ = 0;
};

/// Parses an unencrypted private key, PEM or DER, PKCS#8, SEC1 (EC) or PKCS#1 (RSA), with
/// mbedtls_pk_parse_key. Errors: Errc::bad_encoding (native: the mbedTLS code; an encrypted
/// key is MBEDTLS_ERR_PK_PASSWORD_REQUIRED), Errc::unsupported_key (a curve other than
/// P-256/P-384, RSA outside 2048-4096 bits, any other algorithm). Every temporary copy of the
/// input and of the key is zeroized.
[[nodiscard]] Result<void> parse_private_key(std::span<const std::byte> data, ParsedKey& out) noexcept;

/// Certificates parsed from PEM (one or more) or DER, in the order given.
class CertList {
public:
    CertList() noexcept;
    ~CertList();
    CertList(const CertList&) = delete;
    CertList& operator=(const CertList&) = delete;

    /// Errc::bad_encoding (native: the mbedTLS code) if anything does not parse.
    [[nodiscard]] Result<void> parse(std::span<const std::byte> data) noexcept;
    [[nodiscard]] std::size_t size() const noexcept;
    [[nodiscard]] const mbedtls_x509_crt& at(std::size_t i) const noexcept;
    [[nodiscard]] std::span<const std::byte> der(std::size_t i) const noexcept;
    [[nodiscard]] std::span<const std::byte> subject_der(std::size_t i) const noexcept;
    [[nodiscard]] std::span<const std::byte> issuer_der(std::size_t i) const noexcept;
    /// The serial number as a DER INTEGER (CKA_SERIAL_NUMBER), into `out`.
    [[nodiscard]] Result<std::size_t> serial_der(std::size_t i, std::span<std::byte> out) const noexcept;
    [[nodiscard]] bool is_ca(std::size_t i) const noexcept;
    /// The certificate's SubjectPublicKeyInfo, DER, at the start of `out`.
    [[nodiscard]] Result<std::size_t> spki_der(std::size_t i, std::span<std::byte> out) const noexcept;

private:
    mbedtls_x509_crt chain_;
};

/// A DER certificate for people: subject and issuer in mbedTLS's "CN=a, O=b" form and the
/// end of validity as "YYYY-MM-DD", each NUL-terminated (and cut to fit).
[[nodiscard]] Result<void> describe_certificate(std::span<const std::byte> der, std::span<char> subject,
                                                std::span<char> issuer, std::span<char> not_after) noexcept;

}  // namespace p11tls::detail::mbed
