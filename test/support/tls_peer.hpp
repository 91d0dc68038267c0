// SPDX-License-Identifier: MIT
#pragma once
// TLS test peers: a small PKI made with mbedtls_x509write_crt, a SoftToken whose client keys
// were generated inside it (certificates issued for their public halves), and a plain-mbedTLS
// server that runs in the test's thread over a MemoryPipe, stepped alternately with the client.
#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/transport/memory_pipe.hpp>

#include "support/token_fixture.hpp"

namespace p11tls::test::tls {

enum class KeyKind { p256, p384, rsa2048 };

inline const char* name(KeyKind k) noexcept {
    switch (k) {
    case KeyKind::p256: return "EC P-256";
    case KeyKind::p384: return "EC P-384";
    case KeyKind::rsa2048: return "RSA-2048";
    }
    return "?";
}

/// An owned mbedtls_pk_context.
class Pk {
public:
    Pk() noexcept { mbedtls_pk_init(&pk_); }
    ~Pk() { mbedtls_pk_free(&pk_); }
    Pk(const Pk&) = delete;
    Pk& operator=(const Pk&) = delete;
    mbedtls_pk_context* get() noexcept { return &pk_; }

private:
    mbedtls_pk_context pk_;
};

/// A fresh key pair made by plain mbedTLS (server and CA keys never touch the token).
inline std::unique_ptr<Pk> generate_key(KeyKind kind, TestRng& rng) {
    auto pk = std::make_unique<Pk>();
    if (kind == KeyKind::rsa2048) {
        REQUIRE(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) == 0);
        REQUIRE(mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk->get()), &TestRng::f, rng.p(), 2048, 65537) == 0);
    } else {
        REQUIRE(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0);
        auto curve = kind == KeyKind::p256 ? MBEDTLS_ECP_DP_SECP256R1 : MBEDTLS_ECP_DP_SECP384R1;
        REQUIRE(mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(*pk->get()), &TestRng::f, rng.p()) == 0);
    }
    return pk;
}

/// What a certificate says and who signs it.
struct CertRequest {
    const char* subject;
    mbedtls_pk_context* subject_key;  ///< public part is enough
    const char* issuer;
    mbedtls_pk_context* issuer_key;   ///< must hold the private key
    bool ca = false;
    int serial = 1;
    const char* not_before = "20240101000000";
    const char* not_after = "20440101000000";
    mbedtls_md_type_t md = MBEDTLS_MD_SHA256;
};

/// A DER X.509 v3 certificate.
inline Bytes issue(const CertRequest& req, TestRng& rng) {
    mbedtls_x509write_cert crt;
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi sn;
    mbedtls_mpi_init(&sn);
    REQUIRE(mbedtls_mpi_lset(&sn, req.serial) == 0);
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, req.md);
    mbedtls_x509write_crt_set_subject_key(&crt, req.subject_key);
    mbedtls_x509write_crt_set_issuer_key(&crt, req.issuer_key);
    REQUIRE(mbedtls_x509write_crt_set_subject_name(&crt, req.subject) == 0);
    REQUIRE(mbedtls_x509write_crt_set_issuer_name(&crt, req.issuer) == 0);
    REQUIRE(mbedtls_x509write_crt_set_serial(&crt, &sn) == 0);
    REQUIRE(mbedtls_x509write_crt_set_validity(&crt, req.not_before, req.not_after) == 0);
    REQUIRE(mbedtls_x509write_crt_set_basic_constraints(&crt, req.ca ? 1 : 0, -1) == 0);
    REQUIRE(mbedtls_x509write_crt_set_key_usage(
                &crt, req.ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN : MBEDTLS_X509_KU_DIGITAL_SIGNATURE) == 0);
    unsigned char buf[4096];
    int len = mbedtls_x509write_crt_der(&crt, buf, sizeof buf, &TestRng::f, rng.p());
    mbedtls_mpi_free(&sn);
    mbedtls_x509write_crt_free(&crt);
    REQUIRE(len > 0);
    return Bytes(buf + sizeof buf - len, buf + sizeof buf);
}

/// The public key of a token key pair, read through PKCS#11 (CKA_EC_POINT, or CKA_MODULUS and
/// CKA_PUBLIC_EXPONENT) into a plain mbedTLS context: what a CSR would carry.
template <class Tok>
std::unique_ptr<Pk> token_public_key(Tok& t, CK_ULONG session, CK_ULONG key, KeyKind kind) {
    auto pk = std::make_unique<Pk>();
    if (kind == KeyKind::rsa2048) {
        Bytes n = get_bytes(t, session, key, CKA_MODULUS), e = get_bytes(t, session, key, CKA_PUBLIC_EXPONENT);
        REQUIRE(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) == 0);
        mbedtls_rsa_context* rsa = mbedtls_pk_rsa(*pk->get());
        REQUIRE(mbedtls_rsa_import_raw(rsa, n.data(), n.size(), nullptr, 0, nullptr, 0, nullptr, 0, e.data(), e.size()) == 0);
        REQUIRE(mbedtls_rsa_complete(rsa) == 0);
    } else {
        Bytes point = get_bytes(t, session, key, CKA_EC_POINT);  // OCTET STRING { 04 || X || Y }
        REQUIRE(point.size() > 2);
        REQUIRE(point[0] == 0x04);
        REQUIRE(point[1] == point.size() - 2);
        REQUIRE(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0);
        mbedtls_ecp_keypair* ec = mbedtls_pk_ec(*pk->get());
        REQUIRE(mbedtls_ecp_group_load(&ec->grp, kind == KeyKind::p256 ? MBEDTLS_ECP_DP_SECP256R1 : MBEDTLS_ECP_DP_SECP384R1) == 0);
        REQUIRE(mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, point.data() + 2, point.size() - 2) == 0);
    }
    return pk;
}

using TokenType = SoftToken<RamNvm<>, GetrandomEntropy, TestConfig>;

inline constexpr std::string_view server_name = "server.test";
inline constexpr const char* ca_name = "CN=p11tls test root,O=p11tls";
inline constexpr const char* other_ca_name = "CN=p11tls other root,O=elsewhere";

/// A client key pair generated in the token, and the certificate issued for it.
struct ClientKey {
    KeyKind kind;
    std::string key_label, cert_label;
    Bytes cert;
    std::unique_ptr<Pk> public_key;
};

/// Everything the TLS tests share, made once per run (RSA key generation is slow):
/// - a root CA and an unrelated "other" CA (EC P-256);
/// - server certificates for `server_name` with EC P-256 and RSA-2048 keys signed by the root,
///   and one for the same EC key signed by the other CA;
/// - a token store holding client keys generated in the token ("p256 key", "p384 key",
///   "rsa key"), their certificates ("p256 cert", ...), the root as "Root Cert" and the
///   other CA as "Other Root". The user PIN is `user_pin`.
struct World {
    TestRng rng;
    std::unique_ptr<Pk> ca_key, other_ca_key, server_ec_key, server_rsa_key;
    Bytes ca_cert, other_ca_cert, server_ec_cert, server_rsa_cert, rogue_server_cert;
    std::array<ClientKey, 3> clients;
    std::unique_ptr<RamNvm<>> store;

    World() {
        ca_key = generate_key(KeyKind::p256, rng);
        other_ca_key = generate_key(KeyKind::p256, rng);
        server_ec_key = generate_key(KeyKind::p256, rng);
        server_rsa_key = generate_key(KeyKind::rsa2048, rng);
        ca_cert = issue({ca_name, ca_key->get(), ca_name, ca_key->get(), true, 1}, rng);
        other_ca_cert = issue({other_ca_name, other_ca_key->get(), other_ca_name, other_ca_key->get(), true, 1}, rng);
        server_ec_cert = issue({"CN=server.test", server_ec_key->get(), ca_name, ca_key->get(), false, 2}, rng);
        server_rsa_cert = issue({"CN=server.test", server_rsa_key->get(), ca_name, ca_key->get(), false, 3}, rng);
        rogue_server_cert = issue({"CN=server.test", server_ec_key->get(), other_ca_name, other_ca_key->get(), false, 2}, rng);

        auto token = std::make_unique<TokenType>(RamNvm<>{}, GetrandomEntropy{});
        REQUIRE(code(token->load()) == no_error);
        init_token(*token);
        CK_ULONG s = login_user(*token);
        clients[0] = {KeyKind::p256, "p256 key", "p256 cert", {}, nullptr};
        clients[1] = {KeyKind::p384, "p384 key", "p384 cert", {}, nullptr};
        clients[2] = {KeyKind::rsa2048, "rsa key", "rsa cert", {}, nullptr};
        int serial = 10;
        for (ClientKey& c : clients) {
            KeyPair kp = c.kind == KeyKind::rsa2048 ? generate_rsa_key_pair(*token, s, 2048, c.key_label)
                         : generate_ec_key_pair(*token, s, c.kind == KeyKind::p256 ? p256_params() : p384_params(),
                                                c.key_label, true, Bytes{static_cast<unsigned char>(serial)});
            c.public_key = token_public_key(*token, s, kp.private_key, c.kind);
            std::string subject = "CN=device " + std::string(name(c.kind)) + ",O=p11tls";
            c.cert = issue({subject.c_str(), c.public_key->get(), ca_name, ca_key->get(), false, serial++}, rng);
            REQUIRE(code(token->create_object(s, certificate_template(c.cert, c.cert_label))) == no_error);
        }
        REQUIRE(code(token->create_object(s, certificate_template(ca_cert, "Root Cert"))) == no_error);
        REQUIRE(code(token->create_object(s, certificate_template(other_ca_cert, "Other Root"))) == no_error);
        REQUIRE(code(token->close_session(s)) == no_error);
        store = std::make_unique<RamNvm<>>(token->nvm());
    }

    const ClientKey& client(KeyKind k) const {
        for (const ClientKey& c : clients)
            if (c.kind == k) return c;
        FAIL("no such client key");
        return clients[0];
    }
};

inline World& world() {
    static World w;
    return w;
}

/// A token loaded from the world's store with the user logged in (login lasts while the
/// session this object keeps is open).
struct ProvisionedToken {
    std::unique_ptr<TokenType> token;
    CK_ULONG login_session = 0;

    ProvisionedToken() {
        auto nvm = std::make_unique<RamNvm<>>(*world().store);
        token = std::make_unique<TokenType>(std::move(*nvm), GetrandomEntropy{});
        REQUIRE(code(token->load()) == no_error);
        login_session = login_user(*token);
    }
    TokenType& operator*() noexcept { return *token; }
};

using PipeEnd = MemoryPipe<>;

inline bool want(int r) noexcept { return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE; }

/// How the in-process server is set up.
struct ServerConfig {
    const Bytes* cert = nullptr;          ///< default: world().server_ec_cert
    mbedtls_pk_context* key = nullptr;    ///< default: world().server_ec_key
    const Bytes* client_ca = nullptr;     ///< CA for client certificates; default: world().ca_cert
    int authmode = MBEDTLS_SSL_VERIFY_REQUIRED;
    const int* ciphersuites = nullptr;    ///< zero-terminated; default: mbedTLS's list
    bool tickets = false;                 ///< resumption by session ticket (else by session-id cache)
    const char** alpn = nullptr;          ///< null-terminated ALPN protocols the server accepts
};

/// A plain-mbedTLS TLS 1.2 server over one end of a MemoryPipe. Non-blocking: every call
/// returns MBEDTLS_ERR_SSL_WANT_READ/WRITE when it needs the client to run. One config (and
/// session cache) across connections: attach() a new pipe end for each.
class MbedServer {
public:
    explicit MbedServer(ServerConfig cfg = {}) {
        World& w = world();
        mbedtls_ssl_config_init(&conf_);
        mbedtls_ssl_init(&ssl_);
        mbedtls_x509_crt_init(&own_);
        mbedtls_x509_crt_init(&client_ca_);
        mbedtls_ssl_cache_init(&cache_);
        mbedtls_ssl_ticket_init(&ticket_);
        const Bytes& cert = cfg.cert ? *cfg.cert : w.server_ec_cert;
        const Bytes& ca = cfg.client_ca ? *cfg.client_ca : w.ca_cert;
        REQUIRE(mbedtls_x509_crt_parse_der(&own_, cert.data(), cert.size()) == 0);
        REQUIRE(mbedtls_x509_crt_parse_der(&client_ca_, ca.data(), ca.size()) == 0);
        REQUIRE(mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                            MBEDTLS_SSL_PRESET_DEFAULT) == 0);
        mbedtls_ssl_conf_rng(&conf_, &TestRng::f, rng_.p());
        mbedtls_ssl_conf_authmode(&conf_, cfg.authmode);
        mbedtls_ssl_conf_ca_chain(&conf_, &client_ca_, nullptr);
        REQUIRE(mbedtls_ssl_conf_own_cert(&conf_, &own_, cfg.key ? cfg.key : w.server_ec_key->get()) == 0);
        if (cfg.ciphersuites) mbedtls_ssl_conf_ciphersuites(&conf_, cfg.ciphersuites);
        if (cfg.alpn) REQUIRE(mbedtls_ssl_conf_alpn_protocols(&conf_, cfg.alpn) == 0);
        if (cfg.tickets) {
            REQUIRE(mbedtls_ssl_ticket_setup(&ticket_, &TestRng::f, rng_.p(), MBEDTLS_CIPHER_AES_256_GCM, 3600) == 0);
            mbedtls_ssl_conf_session_tickets_cb(&conf_, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &ticket_);
        } else {
            mbedtls_ssl_conf_session_cache(&conf_, &cache_, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
        }
        REQUIRE(mbedtls_ssl_setup(&ssl_, &conf_) == 0);
    }
    ~MbedServer() {
        mbedtls_ssl_free(&ssl_);
        mbedtls_ssl_config_free(&conf_);
        mbedtls_ssl_cache_free(&cache_);
        mbedtls_ssl_ticket_free(&ticket_);
        mbedtls_x509_crt_free(&own_);
        mbedtls_x509_crt_free(&client_ca_);
    }
    MbedServer(const MbedServer&) = delete;
    MbedServer& operator=(const MbedServer&) = delete;

    /// Starts a new connection on `end` (the pipe must outlive the connection).
    void attach(PipeEnd& end) {
        if (attached_) REQUIRE(mbedtls_ssl_session_reset(&ssl_) == 0);
        attached_ = true;
        end_ = &end;
        mbedtls_ssl_set_bio(&ssl_, this, &bio_send, &bio_recv, nullptr);
    }

    /// One handshake call. A hard failure closes the connection as a real server would, after
    /// the alert mbedTLS sends; a missing client certificate gets the handshake_failure alert
    /// OpenSSL sends for it (mbedTLS 2.28 sends none).
    int handshake() {
        int r = mbedtls_ssl_handshake(&ssl_);
        if (r != 0 && !want(r)) {
            if (r == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
                (void)mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL, MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
            end_->close();
        }
        return r;
    }
    bool done() const noexcept { return ssl_.state == MBEDTLS_SSL_HANDSHAKE_OVER; }

    /// Application data: bytes read, 0 if none yet, or a negative mbedTLS code (other than WANT_*).
    int read(std::span<unsigned char> out) {
        int r = mbedtls_ssl_read(&ssl_, out.data(), out.size());
        return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE ? 0 : r;
    }
    int write(std::span<const unsigned char> in) {
        int r = mbedtls_ssl_write(&ssl_, in.data(), in.size());
        return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE ? 0 : r;
    }
    int close_notify() { return mbedtls_ssl_close_notify(&ssl_); }

    /// The client certificate the server received, if any.
    const mbedtls_x509_crt* peer_cert() const noexcept { return mbedtls_ssl_get_peer_cert(&ssl_); }
    std::uint32_t verify_result() const noexcept { return mbedtls_ssl_get_verify_result(&ssl_); }
    mbedtls_ssl_context& ssl() noexcept { return ssl_; }

private:
    static int bio_send(void* ctx, const unsigned char* b, std::size_t n) {
        auto r = static_cast<MbedServer*>(ctx)->end_->send({reinterpret_cast<const std::byte*>(b), n});
        if (r) return static_cast<int>(*r);
        return r.error().code == Errc::would_block ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_CONN_RESET;
    }
    static int bio_recv(void* ctx, unsigned char* b, std::size_t n) {
        auto r = static_cast<MbedServer*>(ctx)->end_->recv({reinterpret_cast<std::byte*>(b), n});
        if (r) return static_cast<int>(*r);
        if (r.error().code == Errc::would_block) return MBEDTLS_ERR_SSL_WANT_READ;
        return r.error().code == Errc::connection_closed ? 0 : MBEDTLS_ERR_NET_RECV_FAILED;
    }

    TestRng rng_;
    mbedtls_ssl_config conf_;
    mbedtls_ssl_context ssl_;
    mbedtls_x509_crt own_, client_ca_;
    mbedtls_ssl_cache_context cache_;
    mbedtls_ssl_ticket_context ticket_;
    PipeEnd* end_ = nullptr;
    bool attached_ = false;
};

/// How a handshake between a TlsSession and the server ended.
struct Outcome {
    Errc client = Errc::would_block;     ///< no_error when connect() succeeded
    int server = MBEDTLS_ERR_SSL_WANT_READ;  ///< 0 when the server's handshake completed
};

/// Steps client.connect() and the server's handshake alternately (client first) until both
/// are settled, the client failed (the server then gets a few steps to read its alert), or
/// `rounds` are used up.
template <class Session>
Outcome run_handshake(Session& client, MbedServer& server, int rounds = 64) {
    Outcome o;
    int after_failure = 0;
    for (int i = 0; i < rounds; ++i) {
        if (o.client == Errc::would_block) o.client = code(client.connect());
        if (want(o.server)) o.server = server.handshake();
        const bool client_settled = o.client != Errc::would_block, server_settled = !want(o.server);
        if (client_settled && server_settled) break;
        if (client_settled && o.client != no_error && ++after_failure > 3) break;
    }
    return o;
}

}  // namespace p11tls::test::tls
