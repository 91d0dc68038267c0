// SPDX-License-Identifier: MIT
#pragma once
/// Compile-time TLS configuration (cipher suites, versions, fragment length) and the runtime
/// parameters of one connection.
#include <cstddef>
#include <span>
#include <string_view>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

namespace p11tls::tls {

/// ECDHE with AES-GCM: forward secret AEAD suites that AWS IoT Core accepts. The default.
inline constexpr int aead_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,   MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0};

/// The AEAD suites plus ECDHE CBC suites with SHA-2 MACs, for servers without GCM. Opt-in.
inline constexpr int cbc_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,   MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,   MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
    0};

/// The suites the FreeRTOS guide lists with HMAC-SHA-1 (not recommended there either). Only a
/// board that names this list explicitly gets them.
inline constexpr int legacy_sha1_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,      MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    MBEDTLS_TLS_RSA_WITH_AES_128_CBC_SHA,            MBEDTLS_TLS_RSA_WITH_AES_256_CBC_SHA,
    0};

/// Handshake signature hashes and certificate-chain rules: SHA-2 only, P-256/P-384, RSA >= 2048.
inline constexpr int sig_hashes[] = {MBEDTLS_MD_SHA512, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA256, MBEDTLS_MD_NONE};
inline constexpr mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
                                                 MBEDTLS_ECP_DP_NONE};
inline constexpr mbedtls_x509_crt_profile cert_profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
    0xFFFFFFF,
    MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1) | MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP384R1),
    2048,
};

/// The default compile-time configuration. Boards derive and override.
struct TlsConfig {
    /// Zero-terminated list of mbedTLS cipher suite ids.
    static constexpr const int* ciphersuites = aead_suites;
    /// TLS 1.2 is the only version offered (mbedTLS 2.28 has no TLS 1.3 client).
    static constexpr int min_minor_version = MBEDTLS_SSL_MINOR_VERSION_3;
    /// MBEDTLS_SSL_MAX_FRAG_LEN_NONE, _512, _1024, _2048 or _4096: asks the server to keep
    /// records small so a board can shrink its record buffers.
    static constexpr unsigned char max_fragment_length = MBEDTLS_SSL_MAX_FRAG_LEN_NONE;
    /// Record buffers of the linked mbedTLS (fixed when mbedTLS is compiled).
    static constexpr std::size_t in_record_buffer = MBEDTLS_SSL_IN_CONTENT_LEN;
    static constexpr std::size_t out_record_buffer = MBEDTLS_SSL_OUT_CONTENT_LEN;
    /// At most this many ALPN protocols (with alpn true).
    static constexpr std::size_t max_alpn = 4;
    /// The session's DRBG reseeds from the board's Entropy after this many requests (and
    /// before every handshake).
    static constexpr int drbg_reseed_interval = MBEDTLS_CTR_DRBG_RESEED_INTERVAL;
    /// Sentences for people in TlsSession::error_message() (what failed, which label, which
    /// certificate check, which alert). false compiles them out: every failure still returns
    /// its Errc and native code, and error_message() names those two numbers only. For
    /// firmware that has no one to read a sentence and counts its flash.
    static constexpr bool error_texts = true;

    /// Optional features. Each is on by default; false compiles the feature out of TlsSession,
    /// with the mbedTLS functions only it calls, for firmware that counts its flash. Security
    /// checks (server chain and name, the token key against the client certificate, the
    /// server's alert) are not optional.
    /// Reconnecting on a new transport offers the last session (ticket or id) when
    /// Params::resume is set, and TlsSession::resumed() says whether the server took it. false:
    /// every connect is a full handshake, Params::resume is ignored (resumption is only ever
    /// an offer) and resumed() does not exist. Whether the ClientHello asks for a ticket is
    /// mbedTLS's (MBEDTLS_SSL_SESSION_TICKETS), not this switch's.
    static constexpr bool resumption = true;
    /// Params::alpn is offered and TlsSession::alpn_protocol() tells the server's choice.
    /// false: alpn_protocol() does not exist and configure() with protocols in Params::alpn
    /// fails with Errc::not_supported.
    static constexpr bool alpn = true;
    /// Credentials' certificate bytes may be PEM (several certificates) as well as DER.
    /// false: DER only (one certificate per buffer, as PKCS#11 stores them in the token), so
    /// mbedTLS's PEM certificate parser is not linked; PEM bytes fail configure() with
    /// Errc::not_supported.
    static constexpr bool pem_input = true;
};

/// Runtime parameters of a connection.
struct Params {
    /// Server name: sent as SNI and checked against the server certificate. Required.
    std::string_view server_name;
    /// ALPN protocols offered, e.g. {"x-amzn-mqtt-ca"}; empty for none (TlsConfig::alpn).
    std::span<const std::string_view> alpn;
    /// Limit for each blocking transport wait, in milliseconds.
    int timeout_ms = 10000;
    /// Non-blocking: connect/send/recv return Errc::would_block; call again when ready.
    bool non_blocking = false;
    /// Offer the last session's ticket or id on reconnect (TlsConfig::resumption).
    bool resume = true;
};

/// Where the client's credentials come from: token objects by label (or id), or caller bytes
/// (PEM, possibly several certificates, or DER).
struct Credentials {
    std::string_view key_label = "Device Priv TLS Key";
    std::span<const std::byte> key_id;  ///< used instead of the label when not empty
    std::string_view cert_label = "Device Cert";
    std::span<const std::byte> cert_data;  ///< used instead of the label when not empty
    std::string_view ca_label = "Root Cert";
    std::span<const std::byte> ca_data;  ///< used instead of the label when not empty
    /// No client key or certificate: for servers that do not ask for one.
    bool anonymous_client = false;
};

}  // namespace p11tls::tls
