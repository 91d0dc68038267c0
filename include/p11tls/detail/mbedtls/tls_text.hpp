// SPDX-License-Identifier: MIT
#pragma once
// The sentences for people about TLS failures (TlsSession::error_message() when
// Config::error_texts is set). Inline in a header rather than in src/: a string literal of an
// object file stays in the image whenever any string of that file is used, so firmware built
// without texts must not link the file that holds them.
#include <cstdint>
#include <cstdio>
#include <span>
#include <string_view>

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>

#include <p11tls/detail/mbedtls/tls.hpp>
#include <p11tls/result.hpp>

namespace p11tls::detail::mbed {

/// The name of a TLS alert and what it usually means here, or null for one without a text.
inline const char* alert_text(int alert) noexcept {
    switch (alert) {
    case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE: return "handshake_failure (no cipher suite, curve or signature algorithm in common)";
    case MBEDTLS_SSL_ALERT_MSG_BAD_CERT: return "bad_certificate (the server rejected our certificate)";
    case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT: return "unsupported_certificate";
    case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED: return "certificate_revoked";
    case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED: return "certificate_expired";
    case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN: return "certificate_unknown (the server rejected our certificate)";
    case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA: return "unknown_ca (the server does not trust our certificate's issuer)";
    case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED: return "access_denied";
    case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR: return "decrypt_error (our signature did not verify)";
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION: return "protocol_version (no TLS version in common)";
    case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY: return "insufficient_security";
    case MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR: return "internal_error";
    case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME: return "unrecognized_name (server does not know the SNI name)";
    case MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL: return "no_application_protocol (ALPN)";
    case 116: return "certificate_required (the server requires a client certificate)";
    default: return nullptr;
    }
}

/// "server certificate not trusted: ..." (or "... name mismatch: ...") naming each of the
/// verification `flags`.
inline void verify_text(std::uint32_t flags, std::string_view name, std::span<char> msg) noexcept {
    struct Flag {
        std::uint32_t bit;
        const char* text;
    };
    static constexpr Flag table[] = {
        {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "unknown issuer (not signed by a configured root CA)"},
        {MBEDTLS_X509_BADCERT_CN_MISMATCH, "name mismatch"},
        {MBEDTLS_X509_BADCERT_EXPIRED, "expired"},
        {MBEDTLS_X509_BADCERT_FUTURE, "not yet valid"},
        {MBEDTLS_X509_BADCERT_REVOKED, "revoked"},
        {MBEDTLS_X509_BADCERT_BAD_MD, "signed with a refused hash (only SHA-2 is accepted)"},
        {MBEDTLS_X509_BADCERT_BAD_PK, "key type refused"},
        {MBEDTLS_X509_BADCERT_BAD_KEY, "key too weak (RSA < 2048 or curve other than P-256/P-384)"},
        {MBEDTLS_X509_BADCERT_KEY_USAGE, "key usage does not allow TLS server authentication"},
        {MBEDTLS_X509_BADCERT_EXT_KEY_USAGE, "extended key usage does not allow TLS server authentication"},
        {MBEDTLS_X509_BADCERT_MISSING, "no certificate sent"},
        {MBEDTLS_X509_BADCERT_SKIP_VERIFY, "verification skipped"},
        {MBEDTLS_X509_BADCERT_OTHER, "other error"},
    };
    // A name mismatch alone is named as such; anything else means the chain is not trusted.
    const bool name_only = (flags & ~static_cast<std::uint32_t>(MBEDTLS_X509_BADCERT_CN_MISMATCH)) == 0;
    int n = std::snprintf(msg.data(), msg.size(), name_only ? "server certificate name mismatch:" : "server certificate not trusted:");
    bool first = true;
    for (const Flag& f : table) {
        if (!(flags & f.bit) || n < 0 || static_cast<std::size_t>(n) >= msg.size()) continue;
        if (f.bit == MBEDTLS_X509_BADCERT_CN_MISMATCH)
            n += std::snprintf(msg.data() + n, msg.size() - n, "%s certificate does not name '%.*s'", first ? "" : ";",
                               static_cast<int>(name.size()), name.data());
        else
            n += std::snprintf(msg.data() + n, msg.size() - n, "%s %s", first ? "" : ";", f.text);
        first = false;
    }
}

/// classify_tls_failure(f), and a one-line message for people about it in `msg`.
[[nodiscard]] inline Error describe_tls_failure(const TlsFailure& f, std::span<char> msg) noexcept {
    const Error e = classify_tls_failure(f);
    auto say = [&](const char* fmt, auto... args) { std::snprintf(msg.data(), msg.size(), fmt, args...); };
    char detail[96];
    if (f.transport_caused()) {
        if (e.code == Errc::connection_closed) say("connection closed by the server during the TLS exchange");
        else say("transport: %s", describe(e.code));
        return e;
    }
    switch (e.code) {
    case Errc::would_block: say("operation would block"); break;
    case Errc::timeout: say("timed out waiting for the server"); break;
    case Errc::connection_closed: say("connection closed by the server"); break;
    case Errc::tls_untrusted:
    case Errc::tls_hostname_mismatch:
    case Errc::tls_cert_expired: verify_text(f.verify_flags, f.server_name, msg); break;
    case Errc::tls_no_shared_cipher:
    case Errc::tls_peer_alert:
        if (f.ret != MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
            say("no cipher suite or TLS version in common with the server (TLS 1.2 with ECDHE and AES-GCM is offered)");
        else if (f.refused_after_hello())
            say("server sent fatal alert handshake_failure after agreeing on a cipher suite (it requires a client "
                "certificate, or refused ours or our signature)");
        else if (const char* t = alert_text(f.alert)) say("server sent fatal alert %s", t);
        else say("server sent fatal alert %d", f.alert);
        break;
    case Errc::tls_signing_failed: say("the token could not sign the handshake"); break;
    case Errc::tls_bad_message:
        mbedtls_strerror(f.ret, detail, sizeof detail);
        say("malformed or unexpected message from the server (%s)", detail);
        break;
    default:
        mbedtls_strerror(f.ret, detail, sizeof detail);
        say("TLS handshake failed: %s", detail);
        break;
    }
    return e;
}

}  // namespace p11tls::detail::mbed
