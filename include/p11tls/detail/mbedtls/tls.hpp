// SPDX-License-Identifier: MIT
#pragma once
// Non-template TLS glue: token-backed mbedTLS keys and the error/message mapping.
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/result.hpp>
#include <p11tls/token/pkcs11.hpp>

namespace p11tls::detail::mbed {

/// A private key that stays in a token: mbedTLS's pk sign calls come back here.
struct TokenKeyRef {
    void* token = nullptr;
    /// Signs `in` with `mech` on `key`; returns the signature length.
    Result<std::size_t> (*sign)(void* token, CK_ULONG session, CK_ULONG key, CK_MECHANISM_TYPE mech,
                                std::span<const std::byte> in, std::span<std::byte> out) = nullptr;
    CK_ULONG session = 0;
    CK_ULONG key = 0;
    CK_KEY_TYPE key_type = CKK_EC;
    std::size_t bits = 0;
    std::size_t signatures = 0;  ///< signatures made (handshakes with client authentication)
    Error last_error{};          ///< the token's error when a signature failed
};

/// A TokenKeyRef::sign for any Token type `Tok` (`token` points at a Tok): a single-part
/// C_SignInit + C_Sign with no mechanism parameter.
template <class Tok>
Result<std::size_t> token_sign(void* token, CK_ULONG session, CK_ULONG key, CK_MECHANISM_TYPE mech,
                               std::span<const std::byte> in, std::span<std::byte> out) {
    Tok& t = *static_cast<Tok*>(token);
    CK_MECHANISM m{mech, nullptr, 0};
    P11TLS_TRY(t.sign_init(session, m, key));
    return t.sign(session, in, out);
}

/// Makes `pk` (initialised, empty) use `ref`'s key. `ref` must outlive `pk`. The ECDSA r||s
/// from the token is re-encoded as the DER mbedTLS expects; RSA signs a DigestInfo with
/// CKM_RSA_PKCS.
void token_pk_setup(mbedtls_pk_context& pk, TokenKeyRef& ref) noexcept;

/// A token key with its public half in mbedTLS form, for mbedTLS functions that read the
/// public key of the pk they sign with (mbedtls_x509write_csr writes it into the request).
/// `ec` or `rsa` (by ref->key_type) holds the public key only; it comes first because
/// mbedtls_pk_ec / mbedtls_pk_rsa read it at the pk's context pointer. The owner initializes
/// and frees it (see detail/mbedtls/provision.hpp).
struct TokenPublicKey {
    union {
        mbedtls_ecp_keypair ec;
        mbedtls_rsa_context rsa;
    };
    TokenKeyRef* ref = nullptr;
};

/// Makes `pk` (initialised, empty) sign like token_pk_setup(pk, *key.ref) and present
/// `key`'s public key (pk type ECKEY or RSA). `key` and its ref must outlive `pk`.
void token_pk_setup(mbedtls_pk_context& pk, TokenPublicKey& key) noexcept;

/// Encodes a PKCS#11 ECDSA signature r||s (each half the same length) as DER
/// SEQUENCE { INTEGER r, INTEGER s }, minimal integers. Returns the length, 0 if `out` is too small.
[[nodiscard]] std::size_t ecdsa_raw_to_der(std::span<const std::byte> rs, std::span<std::byte> out) noexcept;

/// Moves the certificate of `chain` that holds the public key `pub` of a `type` key (CKK_EC:
/// the uncompressed point; CKK_RSA: the modulus without leading zeros) to the head of the
/// chain; the others keep their order after it. An empty `pub` (a key whose public half the
/// token does not show) only checks that the first certificate holds a key of that type.
/// False if no certificate matches.
[[nodiscard]] bool leaf_first(mbedtls_x509_crt& chain, CK_KEY_TYPE type, std::span<const std::byte> pub) noexcept;

/// True while `ssl` is inside a handshake that resumes an earlier session.
[[nodiscard]] bool handshake_resuming(const mbedtls_ssl_context& ssl) noexcept;

/// Parses PEM (one or more certificates) or DER certificate bytes into `chain`.
[[nodiscard]] Result<void> parse_certs(mbedtls_x509_crt& chain, std::span<const std::byte> data) noexcept;
/// Parses one DER certificate into `chain`; PEM is an error (mbedTLS's PEM parser is not linked).
[[nodiscard]] inline Result<void> parse_der_cert(mbedtls_x509_crt& chain, std::span<const std::byte> data) noexcept {
    if (data.empty()) return fail(Errc::tls_bad_pem);
    if (int ret = mbedtls_x509_crt_parse_der(&chain, reinterpret_cast<const unsigned char*>(data.data()), data.size()))
        return fail(Errc::tls_bad_pem, ret);
    return {};
}
/// True if `data` holds a PEM block ("-----BEGIN ").
[[nodiscard]] inline bool looks_like_pem(std::span<const std::byte> data) noexcept {
    static constexpr char begin[] = "-----BEGIN ";
    for (std::size_t i = 0; i + sizeof begin - 1 <= data.size(); ++i)
        if (std::memcmp(data.data() + i, begin, sizeof begin - 1) == 0) return true;
    return false;
}

/// The member a feature that is compiled out leaves in its place (with [[no_unique_address]]).
struct Absent {};

/// What a bio callback returns to mbedTLS for a transport error `code` on a send or a receive.
[[nodiscard]] int transport_ret(Errc code, bool sending) noexcept;

/// Records a failure for people in `msg`: `text`, followed by ": `detail`" when given; with
/// no text (a configuration without texts) the error's code and native code. Returns `e` as
/// a failure.
[[nodiscard]] Unexpected note_failure(std::span<char> msg, Error e, const char* text, const char* detail = nullptr) noexcept;

/// The facts about a failed mbedTLS TLS call that say what it means.
struct TlsFailure {
    int ret;                        ///< mbedTLS return code
    std::uint32_t verify_flags;     ///< mbedtls_ssl_get_verify_result
    int alert;                      ///< fatal alert received from the peer, or -1
    Error transport;                ///< the transport's last error, if it caused the failure
    std::string_view server_name;
    bool suite_agreed = false;      ///< the ServerHello was processed (a cipher suite was chosen)

    /// The transport's own error explains the failure (mbedTLS only saw the bio callback's code).
    [[nodiscard]] bool transport_caused() const noexcept {
        return transport.code != Errc{} &&
               (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_TIMEOUT ||
                ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == MBEDTLS_ERR_NET_RECV_FAILED || ret == MBEDTLS_ERR_NET_SEND_FAILED);
    }
    /// A handshake_failure alert once the suite was settled: OpenSSL sends it for a missing or
    /// refused client certificate.
    [[nodiscard]] bool refused_after_hello() const noexcept {
        return alert == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE && suite_agreed;
    }
};
/// What the failure means, as an Errc (native: the mbedTLS code, or the transport's error).
[[nodiscard]] Error classify_tls_failure(const TlsFailure& f) noexcept;
/// classify_tls_failure and a one-line message for people: describe_tls_failure in
/// detail/mbedtls/tls_text.hpp (a header, so firmware without texts links none of them).

}  // namespace p11tls::detail::mbed
