// SPDX-License-Identifier: MIT
// Token-backed mbedTLS keys, certificate parsing and the meaning of TLS failures (the sentences
// for people are in detail/mbedtls/tls_text.hpp).
#include <cstdio>
#include <cstring>
#include <utility>

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

// One signature by the token. EC: CKM_ECDSA over the hash, the token's r||s re-encoded as
// the DER mbedTLS expects. RSA: PKCS#1 v1.5 over DigestInfo(md, hash) (the token's
// CKM_RSA_PKCS adds only the padding; with MBEDTLS_MD_NONE the input is signed as given).
int token_sign_hash(TokenKeyRef& ref, mbedtls_md_type_t md, const unsigned char* hash, std::size_t hash_len,
                    unsigned char* sig, std::size_t* sig_len) {
    const bool ec = ref.key_type == CKK_EC;
    // EC: the token's r||s; RSA: the DigestInfo (19 bytes of header for SHA-2, then the hash).
    unsigned char buf[2 * 66];
    std::span<const std::byte> in = bytes(hash, hash_len);
    if (!ec && md != MBEDTLS_MD_NONE) {
        const char* oid;
        std::size_t oid_len;
        if (mbedtls_oid_get_oid_by_md(md, &oid, &oid_len) != 0 || hash_len > 64 || oid_len > 9)
            return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
        // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING hash }
        const unsigned char head[] = {0x30, static_cast<unsigned char>(8 + oid_len + hash_len), 0x30,
                                      static_cast<unsigned char>(4 + oid_len), 0x06, static_cast<unsigned char>(oid_len)};
        const unsigned char tail[] = {0x05, 0x00, 0x04, static_cast<unsigned char>(hash_len)};
        unsigned char* p = buf;
        std::memcpy(p, head, sizeof head);
        std::memcpy(p += sizeof head, oid, oid_len);
        std::memcpy(p += oid_len, tail, sizeof tail);
        std::memcpy(p += sizeof tail, hash, hash_len);
        in = bytes(buf, static_cast<std::size_t>(p - buf) + hash_len);
    }
    const std::span<std::byte> out{reinterpret_cast<std::byte*>(sig), MBEDTLS_PK_SIGNATURE_MAX_SIZE};
    auto n = ref.sign(ref.token, ref.session, ref.key, ec ? CKM_ECDSA : CKM_RSA_PKCS, in,
                      ec ? std::as_writable_bytes(std::span(buf)) : out);
    if (!n) {
        ref.last_error = n.error();
        return MBEDTLS_ERR_PK_HW_ACCEL_FAILED;
    }
    std::size_t len = *n;
    if (ec && (len = ecdsa_raw_to_der(std::as_bytes(std::span(buf)).first(len), out)) == 0)
        return MBEDTLS_ERR_PK_BAD_INPUT_DATA;
    *sig_len = len;
    ++ref.signatures;
    return 0;
}

template <RefOf Ref>
int sign(void* ctx, mbedtls_md_type_t md, const unsigned char* hash, std::size_t hash_len, unsigned char* sig,
         std::size_t* sig_len, int (*)(void*, unsigned char*, std::size_t), void*) {
    return token_sign_hash(Ref(ctx), md, hash, hash_len, sig, sig_len);
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
    token_info(MBEDTLS_PK_ECKEY, "p11tls token EC", bitlen<ref_of>, can_do_ec, sign<ref_of>);
const mbedtls_pk_info_t token_rsa_info =
    token_info(MBEDTLS_PK_RSA_ALT, "p11tls token RSA", bitlen<ref_of>, can_do_rsa, sign<ref_of>);
// With the public half in software: the types mbedtls_pk_write_pubkey understands.
const mbedtls_pk_info_t token_ec_public_info =
    token_info(MBEDTLS_PK_ECKEY, "p11tls token EC", bitlen<public_ref_of>, can_do_ec, sign<public_ref_of>);
const mbedtls_pk_info_t token_rsa_public_info =
    token_info(MBEDTLS_PK_RSA, "p11tls token RSA", bitlen<public_ref_of>, can_do_rsa, sign<public_ref_of>);

// Writes the DER INTEGER of the `n` unsigned big-endian bytes at `v` (minimal: leading zero
// bytes dropped, a zero byte before a set top bit) to end at `end`; returns where it starts.
unsigned char* put_integer(unsigned char* end, const std::byte* v, std::size_t n) {
    for (; n > 1 && *v == std::byte{0}; --n) ++v;
    unsigned char* p = end - n;
    std::memcpy(p, v, n);
    if (*p & 0x80u) *--p = 0;
    const auto len = static_cast<unsigned char>(end - p);
    *--p = len;
    *--p = 0x02;
    return p;
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
    if (rs.empty() || rs.size() % 2 != 0 || rs.size() > 2 * 61) return 0;
    // Written back to front: s, r, then the SEQUENCE header.
    unsigned char der[2 + 2 * (3 + 61)];
    unsigned char* const end = der + sizeof der;
    const std::size_t half = rs.size() / 2;
    unsigned char* p = put_integer(put_integer(end, rs.data() + half, half), rs.data(), half);
    const auto body = static_cast<std::size_t>(end - p);
    if (body > 127 || out.size() < body + 2) return 0;  // short-form lengths only
    *--p = static_cast<unsigned char>(body);
    *--p = 0x30;
    std::memcpy(out.data(), p, body + 2);
    return body + 2;
}

namespace {

// True if `pk` is a `type` key and, unless `pub` is empty, the public key `pub` (see leaf_first).
bool holds(const mbedtls_pk_context& pk, CK_KEY_TYPE type, std::span<const std::byte> pub) {
    if (mbedtls_pk_get_type(&pk) != (type == CKK_EC ? MBEDTLS_PK_ECKEY : MBEDTLS_PK_RSA)) return false;
    if (pub.empty()) return true;
    unsigned char mine[512];
    std::size_t len = pub.size();
    if (len > sizeof mine) return false;
    // The RSA modulus is written into exactly pub.size() bytes: one that does not fit fails,
    // a shorter one gets a leading zero that `pub` (without leading zeros) does not have.
    // The type is checked: the context is what mbedtls_pk_ec / mbedtls_pk_rsa would return.
    const auto* ec = static_cast<const mbedtls_ecp_keypair*>(pk.pk_ctx);
    const int ret = type == CKK_EC ? mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len,
                                                                    mine, sizeof mine)
                                   : mbedtls_mpi_write_binary(&static_cast<const mbedtls_rsa_context*>(pk.pk_ctx)->N,
                                                              mine, len);
    return ret == 0 && len == pub.size() && std::memcmp(mine, pub.data(), len) == 0;
}

// Exchanges two certificates' places in their chain. A parsed certificate points only into
// its own heap buffers, never into itself, so its struct can move.
void swap_places(mbedtls_x509_crt& a, mbedtls_x509_crt& b) {
    mbedtls_x509_crt* const a_next = a.next;
    mbedtls_x509_crt* const b_next = b.next;
    // In place, byte by byte: no copy of either is left on the stack.
    auto* x = reinterpret_cast<unsigned char*>(&a);
    auto* y = reinterpret_cast<unsigned char*>(&b);
    for (std::size_t i = 0; i < sizeof a; ++i) std::swap(x[i], y[i]);
    a.next = a_next;
    b.next = b_next;
}

}  // namespace

bool leaf_first(mbedtls_x509_crt& chain, CK_KEY_TYPE type, std::span<const std::byte> pub) noexcept {
    if (type != CKK_EC && type != CKK_RSA) return false;
    for (mbedtls_x509_crt* m = &chain; m != nullptr && m->raw.p != nullptr; m = m->next) {
        if (holds(m->pk, type, pub)) {
            // Swapping each certificate before it with it rotates it to the head: the
            // certificates it passes keep their order.
            for (mbedtls_x509_crt* c = &chain; c != m; c = c->next) swap_places(*c, *m);
            return true;
        }
        if (pub.empty()) break;  // only the first certificate's key type can be checked
    }
    return false;
}

bool handshake_resuming(const mbedtls_ssl_context& ssl) noexcept {
    return ssl.handshake != nullptr && ssl.handshake->resume != 0;
}

Result<void> parse_certs(mbedtls_x509_crt& chain, std::span<const std::byte> data) noexcept {
    if (!looks_like_pem(data)) return parse_der_cert(chain, data);
    // mbedTLS wants PEM NUL-terminated with the NUL counted.
    auto* copy = static_cast<unsigned char*>(mbedtls_calloc(1, data.size() + 1));
    if (!copy) return fail(Errc::out_of_memory);
    std::memcpy(copy, data.data(), data.size());
    const int ret = mbedtls_x509_crt_parse(&chain, copy, data.size() + 1);
    mbedtls_free(copy);
    // A positive value counts certificates that did not parse.
    if (ret != 0) return fail(Errc::tls_bad_pem, ret);
    return {};
}

int transport_ret(Errc code, bool sending) noexcept {
    switch (code) {
    case Errc::would_block: return sending ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_SSL_WANT_READ;
    case Errc::timeout: return MBEDTLS_ERR_SSL_TIMEOUT;
    case Errc::connection_closed: return MBEDTLS_ERR_SSL_CONN_EOF;
    default: return sending ? MBEDTLS_ERR_NET_SEND_FAILED : MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

Unexpected note_failure(std::span<char> msg, Error e, const char* text, const char* detail) noexcept {
    if (!text)
        std::snprintf(msg.data(), msg.size(), "TLS error 0x%04x, native %ld", static_cast<unsigned>(e.code),
                      static_cast<long>(e.native));
    else if (detail)
        std::snprintf(msg.data(), msg.size(), "%s: %s", text, detail);
    else
        std::snprintf(msg.data(), msg.size(), "%s", text);
    return fail(e);
}

namespace {

// mbedTLS codes that mean one Errc each (every mbedTLS code fits in 16 bits).
struct Meaning {
    std::int16_t ret;
    Errc code;
};
constexpr Meaning meanings[] = {
    {MBEDTLS_ERR_SSL_WANT_READ, Errc::would_block},
    {MBEDTLS_ERR_SSL_WANT_WRITE, Errc::would_block},
    {MBEDTLS_ERR_SSL_TIMEOUT, Errc::timeout},
    {MBEDTLS_ERR_SSL_CONN_EOF, Errc::connection_closed},
    {MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY, Errc::connection_closed},
    {MBEDTLS_ERR_NET_CONN_RESET, Errc::connection_closed},
    {MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN, Errc::tls_no_shared_cipher},
    {MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE, Errc::tls_no_shared_cipher},
    {MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION, Errc::tls_no_shared_cipher},
    {MBEDTLS_ERR_PK_HW_ACCEL_FAILED, Errc::tls_signing_failed},
    {MBEDTLS_ERR_SSL_INVALID_RECORD, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_INVALID_MAC, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE_REQUEST, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_SERVER_KEY_EXCHANGE, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO_DONE, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_FINISHED, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_CHANGE_CIPHER_SPEC, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_NEW_SESSION_TICKET, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_INPUT_DATA, Errc::tls_bad_message},
    {MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO, Errc::tls_bad_message},
};

}  // namespace

Error classify_tls_failure(const TlsFailure& f) noexcept {
    if (f.transport_caused()) return f.transport;
    if (f.ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        if (f.verify_flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) return {Errc::tls_untrusted, f.ret};
        if (f.verify_flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) return {Errc::tls_hostname_mismatch, f.ret};
        if (f.verify_flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) return {Errc::tls_cert_expired, f.ret};
        return {Errc::tls_untrusted, f.ret};
    }
    if (f.ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        const bool cipher = !f.refused_after_hello() && (f.alert == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE ||
                                                         f.alert == MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION ||
                                                         f.alert == MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY);
        return {cipher ? Errc::tls_no_shared_cipher : Errc::tls_peer_alert, f.ret};
    }
    for (const Meaning& m : meanings)
        if (m.ret == f.ret) return {m.code, f.ret};
    return {Errc::tls_handshake_failed, f.ret};
}

}  // namespace p11tls::detail::mbed
