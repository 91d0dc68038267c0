// SPDX-License-Identifier: MIT
// Token-backed mbedTLS keys, certificate parsing and the meaning of TLS failures.
#include <cstdio>
#include <cstring>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk_internal.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_internal.h>

#include <p11tls/detail/mbedtls/tls.hpp>

namespace p11tls::detail::mbed {

namespace {

// The pk context is a TokenKeyRef (TLS) or a TokenPublicKey (public half in software); the
// callbacks are instantiated for each through how they find the TokenKeyRef.
using RefOf = TokenKeyRef& (*)(void* ctx);
TokenKeyRef& ref_of(void* ctx) { return *static_cast<TokenKeyRef*>(ctx); }
TokenKeyRef& public_ref_of(void* ctx) { return *static_cast<TokenPublicKey*>(ctx)->ref; }
std::span<const std::byte> bytes(const unsigned char* p, std::size_t n) { return {reinterpret_cast<const std::byte*>(p), n}; }

template <RefOf Ref>
std::size_t bitlen(const void* ctx) { return Ref(const_cast<void*>(ctx)).bits; }
int can_do_ec(mbedtls_pk_type_t t) { return t == MBEDTLS_PK_ECKEY || t == MBEDTLS_PK_ECDSA; }
int can_do_rsa(mbedtls_pk_type_t t) { return t == MBEDTLS_PK_RSA; }
void no_free(void*) {}

template <RefOf Ref>
int sign_ec(void* ctx, mbedtls_md_type_t, const unsigned char* hash, std::size_t hash_len, unsigned char* sig,
            std::size_t* sig_len, int (*)(void*, unsigned char*, std::size_t), void*) {
    TokenKeyRef& ref = Ref(ctx);
    std::byte rs[2 * 66];
    auto n = ref.sign(ref.token, ref.session, ref.key, CKM_ECDSA, bytes(hash, hash_len), std::span<std::byte>(rs));
    if (!n) {
        ref.last_error = n.error();
        return MBEDTLS_ERR_PK_HW_ACCEL_FAILED;
    }
    std::size_t len = ecdsa_raw_to_der(std::span(rs).first(*n), {reinterpret_cast<std::byte*>(sig), MBEDTLS_PK_SIGNATURE_MAX_SIZE});
    if (len == 0) return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
    *sig_len = len;
    ++ref.signatures;
    return 0;
}

// PKCS#1 v1.5 over DigestInfo(md, hash): the token's CKM_RSA_PKCS adds only the padding.
template <RefOf Ref>
int sign_rsa(void* ctx, mbedtls_md_type_t md, const unsigned char* hash, std::size_t hash_len, unsigned char* sig,
             std::size_t* sig_len, int (*)(void*, unsigned char*, std::size_t), void*) {
    TokenKeyRef& ref = Ref(ctx);
    unsigned char info[19 + 64];
    std::size_t info_len = 0;
    if (md == MBEDTLS_MD_NONE) {
        if (hash_len > sizeof info) return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
        std::memcpy(info, hash, hash_len);
        info_len = hash_len;
    } else {
        const char* oid;
        std::size_t oid_len;
        if (mbedtls_oid_get_oid_by_md(md, &oid, &oid_len) != 0 || hash_len > 64 || oid_len > 9)
            return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
        // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING hash }
        unsigned char* p = info;
        *p++ = 0x30;
        *p++ = static_cast<unsigned char>(8 + oid_len + hash_len);
        *p++ = 0x30;
        *p++ = static_cast<unsigned char>(4 + oid_len);
        *p++ = 0x06;
        *p++ = static_cast<unsigned char>(oid_len);
        std::memcpy(p, oid, oid_len);
        p += oid_len;
        *p++ = 0x05;
        *p++ = 0x00;
        *p++ = 0x04;
        *p++ = static_cast<unsigned char>(hash_len);
        std::memcpy(p, hash, hash_len);
        info_len = static_cast<std::size_t>(p - info) + hash_len;
    }
    auto n = ref.sign(ref.token, ref.session, ref.key, CKM_RSA_PKCS, bytes(info, info_len),
                      {reinterpret_cast<std::byte*>(sig), MBEDTLS_PK_SIGNATURE_MAX_SIZE});
    if (!n) {
        ref.last_error = n.error();
        return MBEDTLS_ERR_PK_HW_ACCEL_FAILED;
    }
    *sig_len = *n;
    ++ref.signatures;
    return 0;
}

// A pk type whose signatures come from the token; every other operation is absent.
constexpr mbedtls_pk_info_t token_info(mbedtls_pk_type_t type, const char* name, std::size_t (*bits)(const void*),
                                       int (*can_do)(mbedtls_pk_type_t), decltype(mbedtls_pk_info_t::sign_func) sign) {
    mbedtls_pk_info_t info{};
    info.type = type;
    info.name = name;
    info.get_bitlen = bits;
    info.can_do = can_do;
    info.sign_func = sign;
    info.ctx_free_func = no_free;
    return info;
}

const mbedtls_pk_info_t token_ec_info =
    token_info(MBEDTLS_PK_ECKEY, "p11tls token EC", bitlen<ref_of>, can_do_ec, sign_ec<ref_of>);
const mbedtls_pk_info_t token_rsa_info =
    token_info(MBEDTLS_PK_RSA_ALT, "p11tls token RSA", bitlen<ref_of>, can_do_rsa, sign_rsa<ref_of>);
// With the public half in software: the types mbedtls_pk_write_pubkey understands.
const mbedtls_pk_info_t token_ec_public_info =
    token_info(MBEDTLS_PK_ECKEY, "p11tls token EC", bitlen<public_ref_of>, can_do_ec, sign_ec<public_ref_of>);
const mbedtls_pk_info_t token_rsa_public_info =
    token_info(MBEDTLS_PK_RSA, "p11tls token RSA", bitlen<public_ref_of>, can_do_rsa, sign_rsa<public_ref_of>);

std::size_t der_integer(std::span<const std::byte> v, unsigned char* out) {
    std::size_t lead = 0;
    while (lead + 1 < v.size() && v[lead] == std::byte{0}) ++lead;
    v = v.subspan(lead);
    const bool pad = (std::to_integer<unsigned>(v[0]) & 0x80u) != 0;
    std::size_t len = v.size() + (pad ? 1 : 0);
    out[0] = 0x02;
    out[1] = static_cast<unsigned char>(len);
    std::size_t at = 2;
    if (pad) out[at++] = 0;
    std::memcpy(out + at, v.data(), v.size());
    return at + v.size();
}

}  // namespace

void token_pk_setup(mbedtls_pk_context& pk, TokenKeyRef& ref) noexcept {
    pk.pk_info = ref.key_type == CKK_EC ? &token_ec_info : &token_rsa_info;
    pk.pk_ctx = &ref;
}

void token_pk_setup(mbedtls_pk_context& pk, TokenPublicKey& key) noexcept {
    pk.pk_info = key.ref->key_type == CKK_EC ? &token_ec_public_info : &token_rsa_public_info;
    pk.pk_ctx = &key;
}

std::size_t ecdsa_raw_to_der(std::span<const std::byte> rs, std::span<std::byte> out) noexcept {
    if (rs.empty() || rs.size() % 2 != 0 || rs.size() > 2 * 61) return 0;  // keeps every length < 128
    unsigned char r[64], s[64];
    const std::size_t half = rs.size() / 2;
    std::size_t rl = der_integer(rs.first(half), r);
    std::size_t sl = der_integer(rs.subspan(half), s);
    std::size_t total = 2 + rl + sl;
    if (out.size() < total) return 0;
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    p[0] = 0x30;
    p[1] = static_cast<unsigned char>(rl + sl);
    std::memcpy(p + 2, r, rl);
    std::memcpy(p + 2 + rl, s, sl);
    return total;
}

bool handshake_resuming(const mbedtls_ssl_context& ssl) noexcept {
    return ssl.handshake != nullptr && ssl.handshake->resume != 0;
}

Result<void> parse_certs(mbedtls_x509_crt& chain, std::span<const std::byte> data) noexcept {
    if (data.empty()) return fail(Errc::tls_bad_pem);
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    int ret;
    static constexpr char pem_begin[] = "-----BEGIN ";
    if (data.size() > 11 && std::memchr(p, '-', data.size()) &&
        std::string_view(reinterpret_cast<const char*>(p), data.size()).find(pem_begin) != std::string_view::npos) {
        // mbedTLS wants PEM NUL-terminated with the NUL counted.
        auto* copy = static_cast<unsigned char*>(mbedtls_calloc(1, data.size() + 1));
        if (!copy) return fail(Errc::out_of_memory);
        std::memcpy(copy, p, data.size());
        ret = mbedtls_x509_crt_parse(&chain, copy, data.size() + 1);
        mbedtls_free(copy);
    } else {
        ret = mbedtls_x509_crt_parse_der(&chain, p, data.size());
    }
    // A positive value counts certificates that did not parse.
    if (ret != 0) return fail(Errc::tls_bad_pem, ret);
    return {};
}

namespace {

const char* alert_text(int alert) {
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

void verify_text(std::uint32_t flags, std::string_view name, std::span<char> msg) {
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

}  // namespace

Error describe_tls_failure(const TlsFailure& f, std::span<char> msg) noexcept {
    auto say = [&](const char* fmt, auto... args) { std::snprintf(msg.data(), msg.size(), fmt, args...); };
    if (f.transport.code != Errc{} &&
        (f.ret == MBEDTLS_ERR_SSL_WANT_READ || f.ret == MBEDTLS_ERR_SSL_WANT_WRITE || f.ret == MBEDTLS_ERR_SSL_TIMEOUT ||
         f.ret == MBEDTLS_ERR_SSL_CONN_EOF || f.ret == MBEDTLS_ERR_NET_RECV_FAILED || f.ret == MBEDTLS_ERR_NET_SEND_FAILED)) {
        if (f.transport.code == Errc::connection_closed)
            say("connection closed by the server during the TLS exchange");
        else
            say("transport: %s", describe(f.transport.code));
        return f.transport;
    }
    switch (f.ret) {
    case MBEDTLS_ERR_SSL_WANT_READ:
    case MBEDTLS_ERR_SSL_WANT_WRITE: say("operation would block"); return {Errc::would_block, f.ret};
    case MBEDTLS_ERR_SSL_TIMEOUT: say("timed out waiting for the server"); return {Errc::timeout, f.ret};
    case MBEDTLS_ERR_SSL_CONN_EOF:
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
    case MBEDTLS_ERR_NET_CONN_RESET: say("connection closed by the server"); return {Errc::connection_closed, f.ret};
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED: {
        verify_text(f.verify_flags, f.server_name, msg);
        if (f.verify_flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) return {Errc::tls_untrusted, f.ret};
        if (f.verify_flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) return {Errc::tls_hostname_mismatch, f.ret};
        if (f.verify_flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) return {Errc::tls_cert_expired, f.ret};
        return {Errc::tls_untrusted, f.ret};
    }
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
        if (f.alert == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE && f.suite_agreed) {
            // After the ServerHello the suite is settled: OpenSSL sends this for a missing or
            // refused client certificate.
            say("server sent fatal alert handshake_failure after agreeing on a cipher suite (it requires a client "
                "certificate, or refused ours or our signature)");
            return {Errc::tls_peer_alert, f.ret};
        }
        const char* t = alert_text(f.alert);
        if (t) say("server sent fatal alert %s", t);
        else say("server sent fatal alert %d", f.alert);
        bool cipher = f.alert == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE || f.alert == MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION ||
                      f.alert == MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY;
        return {cipher ? Errc::tls_no_shared_cipher : Errc::tls_peer_alert, f.ret};
    }
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
    case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
        say("no cipher suite or TLS version in common with the server (TLS 1.2 with ECDHE and AES-GCM is offered)");
        return {Errc::tls_no_shared_cipher, f.ret};
    case MBEDTLS_ERR_PK_HW_ACCEL_FAILED:
        say("the token could not sign the handshake");
        return {Errc::tls_signing_failed, f.ret};
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
    case MBEDTLS_ERR_SSL_INVALID_MAC:
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
    case MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO:
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE_REQUEST:
    case MBEDTLS_ERR_SSL_BAD_HS_SERVER_KEY_EXCHANGE:
    case MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO_DONE:
    case MBEDTLS_ERR_SSL_BAD_HS_FINISHED:
    case MBEDTLS_ERR_SSL_BAD_HS_CHANGE_CIPHER_SPEC:
    case MBEDTLS_ERR_SSL_BAD_HS_NEW_SESSION_TICKET:
    case MBEDTLS_ERR_SSL_BAD_INPUT_DATA:
    case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO: {
        char detail[96];
        mbedtls_strerror(f.ret, detail, sizeof detail);
        say("malformed or unexpected message from the server (%s)", detail);
        return {Errc::tls_bad_message, f.ret};
    }
    default: {
        char detail[96];
        mbedtls_strerror(f.ret, detail, sizeof detail);
        say("TLS handshake failed: %s", detail);
        return {Errc::tls_handshake_failed, f.ret};
    }
    }
}

}  // namespace p11tls::detail::mbed
