// SPDX-License-Identifier: MIT
// TlsSession against a plain-mbedTLS server in the same thread, over a MemoryPipe: client keys
// live in a SoftToken, every handshake signature is a token call, every failure has a reason.
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/md.h>
#include <mbedtls/pem.h>

#include <p11tls/detail/mbedtls/tls.hpp>
#include <p11tls/tls/session.hpp>

#include "support/tls_peer.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;
using namespace p11tls::test::tls;
using Catch::Matchers::Contains;
namespace cfg = p11tls::tls;

using Session = TlsSession<TokenType, PipeEnd, GetrandomEntropy>;

/// A TlsSession over a freshly loaded, logged-in token, with credentials for one client key
/// and non-blocking parameters for `server_name`.
struct Client {
    ProvisionedToken token;
    GetrandomEntropy entropy;
    std::unique_ptr<Session> tls;
    cfg::Credentials cred;
    cfg::Params params;

    explicit Client(KeyKind kind = KeyKind::p256) : tls(std::make_unique<Session>(*token, entropy)) {
        const ClientKey& c = world().client(kind);
        cred.key_label = c.key_label;
        cred.cert_label = c.cert_label;
        cred.ca_label = "Root Cert";
        params.server_name = server_name;
        params.non_blocking = true;
    }
    Errc configure() { return code(tls->configure(cred, params)); }
    Session& operator*() noexcept { return *tls; }
    Session* operator->() noexcept { return tls.get(); }
    std::string message() const { return tls->error_message(); }
};

/// Configures, attaches `pipe` (client on a, server on b) and runs the handshake.
Outcome connect(Client& c, MbedServer& server, Pipe<>& pipe) {
    REQUIRE(c.configure() == no_error);
    server.attach(pipe.b);
    c->attach(pipe.a);
    return run_handshake(*c, server);
}

Bytes pattern(std::size_t n, unsigned seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>((i * 131 + seed) >> 3);
    return b;
}

/// Sends `data` from the client while the server reads; returns what the server received.
Bytes client_to_server(Session& c, MbedServer& s, const Bytes& data) {
    Bytes got;
    std::size_t sent = 0;
    unsigned char buf[4096];
    for (int i = 0; i < 10000 && got.size() < data.size(); ++i) {
        if (sent < data.size()) {
            auto r = c.send(as_span(data).subspan(sent));
            if (r) sent += *r;
            else REQUIRE(code(r) == Errc::would_block);
        }
        int n = s.read(buf);
        REQUIRE(n >= 0);
        got.insert(got.end(), buf, buf + n);
    }
    return got;
}

/// Sends `data` from the server while the client reads; returns what the client received.
Bytes server_to_client(MbedServer& s, Session& c, const Bytes& data) {
    Bytes got;
    std::size_t sent = 0;
    Bytes buf(4096);
    for (int i = 0; i < 10000 && got.size() < data.size(); ++i) {
        if (sent < data.size()) {
            int n = s.write(std::span(data).subspan(sent));
            REQUIRE(n >= 0);
            sent += static_cast<std::size_t>(n);
        }
        auto r = c.recv(as_out(buf));
        if (r) got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
        else REQUIRE(code(r) == Errc::would_block);
    }
    return got;
}

CK_ULONG private_key(TokenType& t, CK_ULONG session, std::string_view label) {
    auto hits = find_all(t, session, Template{}.add(CKA_CLASS, CK_OBJECT_CLASS{CKO_PRIVATE_KEY}).add(CKA_LABEL, label));
    REQUIRE(hits.size() == 1);
    return hits[0];
}

bool same_der(const mbedtls_x509_crt* crt, const Bytes& der) {
    return crt && crt->raw.len == der.size() && std::memcmp(crt->raw.p, der.data(), der.size()) == 0;
}

// --- handshakes that succeed ---------------------------------------------------------------

TEST_CASE("a mutual-auth handshake signs once with the token's key and carries data both ways", "[tls]") {
    const KeyKind kind = GENERATE(KeyKind::p256, KeyKind::p384, KeyKind::rsa2048);
    const bool rsa_server = GENERATE(false, true);
    CAPTURE(name(kind), rsa_server);
    World& w = world();
    ServerConfig sc;
    if (rsa_server) {
        sc.cert = &w.server_rsa_cert;
        sc.key = w.server_rsa_key->get();
    }
    MbedServer server(sc);
    Client c(kind);
    auto pipe = std::make_unique<Pipe<>>();

    Outcome o = connect(c, server, *pipe);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    CHECK(c->connected());
    CHECK_FALSE(c->resumed());
    CHECK(c->token_signatures() == 1);
    CHECK(c.message().empty());  // documented: empty after success (would_block steps came before)
    // The server required, received and verified exactly the certificate issued for the token key.
    CHECK(server.verify_result() == 0);
    CHECK(same_der(server.peer_cert(), w.client(kind).cert));
    // Only ECDHE with AEAD.
    std::string suite = c->ciphersuite();
    CHECK_THAT(suite, Contains("ECDHE") && Contains("GCM"));
    CHECK_THAT(suite, Contains(rsa_server ? "RSA" : "ECDSA"));

    CHECK(client_to_server(*c, server, to_bytes("ping")) == to_bytes("ping"));
    CHECK(server_to_client(server, *c, to_bytes("pong")) == to_bytes("pong"));
    const Bytes big = pattern(100000, 7);
    CHECK(client_to_server(*c, server, big) == big);
    CHECK(server_to_client(server, *c, big) == big);
    CHECK(c->token_signatures() == 1);
}

TEST_CASE("a server that does not ask for a client certificate gets no token signature", "[tls]") {
    ServerConfig sc;
    sc.authmode = MBEDTLS_SSL_VERIFY_NONE;
    MbedServer server(sc);
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    CHECK(c->token_signatures() == 0);
    CHECK(server.peer_cert() == nullptr);
    CHECK(client_to_server(*c, server, to_bytes("hello")) == to_bytes("hello"));
}

TEST_CASE("an anonymous client connects to a server that does not ask for a certificate", "[tls]") {
    ServerConfig sc;
    sc.authmode = MBEDTLS_SSL_VERIFY_NONE;
    MbedServer server(sc);
    Client c;
    c.cred.anonymous_client = true;
    c.cred.key_label = "no such key";  // never looked up
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    INFO(c.message());
    CHECK(o.client == no_error);
    CHECK(o.server == 0);
    CHECK(c->token_signatures() == 0);
}

TEST_CASE("the root CA may come as PEM bytes instead of a token object", "[tls]") {
    World& w = world();
    unsigned char pem[4096];
    std::size_t len = 0;
    REQUIRE(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", w.ca_cert.data(),
                                     w.ca_cert.size(), pem, sizeof pem, &len) == 0);
    Bytes ca(pem, pem + len - 1);  // without the NUL mbedTLS counts
    MbedServer server;
    Client c;
    c.cred.ca_label = "no such CA";
    c.cred.ca_data = as_span(ca);
    c.cred.cert_data = as_span(w.client(KeyKind::p256).cert);  // DER
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    INFO(c.message());
    CHECK(o.client == no_error);
    CHECK(o.server == 0);
}

/// A CA below the test root and a certificate it issued for the token's P-256 key: the chain
/// a device gets from a provisioning CA that is not the root.
struct Chain {
    Bytes intermediate, leaf;
};
const Chain& p256_chain() {
    static const Chain chain = [] {
        World& w = world();
        static const char* const intermediate_name = "CN=p11tls test intermediate,O=p11tls";
        static std::unique_ptr<Pk> key = generate_key(KeyKind::p256, w.rng);
        Chain c;
        c.intermediate = issue({intermediate_name, key->get(), ca_name, w.ca_key->get(), true, 40}, w.rng);
        c.leaf = issue({"CN=device chained,O=p11tls", w.client(KeyKind::p256).public_key->get(), intermediate_name,
                        key->get(), false, 41},
                       w.rng);
        return c;
    }();
    return chain;
}

Bytes pem_of(const Bytes& der) {
    unsigned char pem[4096];
    std::size_t len = 0;
    REQUIRE(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der.data(), der.size(),
                                     pem, sizeof pem, &len) == 0);
    return Bytes(pem, pem + len - 1);  // without the NUL mbedTLS counts
}

TEST_CASE("a client certificate chain the token lists CA first goes out leaf first", "[tls]") {
    const Chain& chain = p256_chain();
    MbedServer server;  // trusts only the root: it needs the intermediate from us
    Client c;
    CK_ULONG s = c.token.login_session;
    // Token order: the CA certificate was imported before the device's own.
    REQUIRE(code(c.token.token->create_object(s, certificate_template(chain.intermediate, "chain cert"))) == no_error);
    REQUIRE(code(c.token.token->create_object(s, certificate_template(chain.leaf, "chain cert"))) == no_error);
    c.cred.cert_label = "chain cert";
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    CHECK(server.verify_result() == 0);
    REQUIRE(server.peer_cert() != nullptr);
    CHECK(same_der(server.peer_cert(), chain.leaf));
    CHECK(same_der(server.peer_cert()->next, chain.intermediate));
    CHECK(server.peer_cert()->next->next == nullptr);
    CHECK(c->token_signatures() == 1);
}

TEST_CASE("a PEM client chain puts the key's certificate first and keeps the others' order", "[tls]") {
    World& w = world();
    const Chain& chain = p256_chain();
    struct Case {
        const char* what;
        std::vector<const Bytes*> given, sent;
    };
    const Case cases[] = {
        {"leaf first already", {&chain.leaf, &chain.intermediate}, {&chain.leaf, &chain.intermediate}},
        {"leaf last", {&chain.intermediate, &chain.leaf}, {&chain.leaf, &chain.intermediate}},
        {"leaf between root and intermediate", {&w.ca_cert, &chain.leaf, &chain.intermediate},
         {&chain.leaf, &w.ca_cert, &chain.intermediate}},
        {"leaf after root and intermediate", {&w.ca_cert, &chain.intermediate, &chain.leaf},
         {&chain.leaf, &w.ca_cert, &chain.intermediate}},
    };
    for (const Case& k : cases) {
        INFO(k.what);
        Bytes pem;
        for (const Bytes* der : k.given) {
            Bytes one = pem_of(*der);
            pem.insert(pem.end(), one.begin(), one.end());
        }
        MbedServer server;
        Client c;
        c.cred.cert_data = as_span(pem);
        auto pipe = std::make_unique<Pipe<>>();
        Outcome o = connect(c, server, *pipe);
        INFO(c.message());
        REQUIRE(o.client == no_error);
        REQUIRE(o.server == 0);
        const mbedtls_x509_crt* got = server.peer_cert();
        for (const Bytes* der : k.sent) {
            CHECK(same_der(got, *der));
            got = got ? got->next : nullptr;
        }
        CHECK(got == nullptr);
    }
}

TEST_CASE("a chain without the token key's certificate is a key/certificate mismatch", "[tls]") {
    World& w = world();
    const Chain& chain = p256_chain();
    Bytes pem = pem_of(chain.intermediate);
    Bytes other = pem_of(w.server_ec_cert);
    pem.insert(pem.end(), other.begin(), other.end());
    Client c;
    c.cred.cert_data = as_span(pem);
    CHECK(c.configure() == Errc::tls_key_cert_mismatch);
    CHECK_THAT(c.message(), Contains("certificate") && Contains("key"));
}

TEST_CASE("ALPN: the protocol the server picks is reported; bad lists fail configure", "[tls]") {
    static const char* server_protocols[] = {"x-amzn-mqtt-ca", "http/1.1", nullptr};
    ServerConfig sc;
    sc.alpn = server_protocols;
    MbedServer server(sc);
    Client c;
    const std::string_view offered[] = {"mqtt", "x-amzn-mqtt-ca"};
    c.params.alpn = offered;
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(c->alpn_protocol() != nullptr);
    CHECK(std::string(c->alpn_protocol()) == "x-amzn-mqtt-ca");

    SECTION("too many protocols") {
        const std::string_view many[] = {"a", "b", "c", "d", "e"};
        Client d;
        d.params.alpn = many;
        CHECK(d.configure() == Errc::tls_config);
        CHECK_THAT(d.message(), Contains("ALPN"));
    }
    SECTION("an empty or overlong name") {
        const std::string long_name(64, 'x');
        for (std::string_view name : {std::string_view{}, std::string_view{long_name}}) {
            const std::string_view bad[] = {"ok", name};
            Client d;
            d.params.alpn = bad;
            CHECK(d.configure() == Errc::tls_config);
            CHECK_THAT(d.message(), Contains("ALPN"));
        }
    }
}

TEST_CASE("64 full handshakes on one session each sign once with the token", "[tls]") {
    MbedServer server;
    Client c;
    c.params.resume = false;
    REQUIRE(c.configure() == no_error);
    for (int i = 0; i < 64; ++i) {
        auto pipe = std::make_unique<Pipe<>>();
        server.attach(pipe->b);
        c->attach(pipe->a);
        Outcome o = run_handshake(*c, server);
        INFO("handshake " << i << ": " << c.message());
        REQUIRE(o.client == no_error);
        REQUIRE(o.server == 0);
        REQUIRE_FALSE(c->resumed());
        REQUIRE(c->token_signatures() == static_cast<std::size_t>(i + 1));
        REQUIRE(code(c->close()) == no_error);
    }
}

TEST_CASE("a second connect on a new transport resumes the session without a token signature", "[tls]") {
    const bool tickets = GENERATE(false, true);
    CAPTURE(tickets);
    ServerConfig sc;
    sc.tickets = tickets;
    MbedServer server(sc);
    Client c;
    auto first = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *first);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    REQUIRE(c->token_signatures() == 1);
    REQUIRE_FALSE(c->resumed());
    REQUIRE(code(c->close()) == no_error);

    auto second = std::make_unique<Pipe<>>();
    server.attach(second->b);
    c->attach(second->a);
    CHECK_FALSE(c->connected());
    o = run_handshake(*c, server);
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    CHECK(c->resumed());
    CHECK(c->token_signatures() == 1);
    CHECK(client_to_server(*c, server, to_bytes("again")) == to_bytes("again"));
    CHECK(server_to_client(server, *c, to_bytes("welcome back")) == to_bytes("welcome back"));

    SECTION("a server that forgot the session makes a full handshake, signed by the token again") {
        REQUIRE(code(c->close()) == no_error);
        MbedServer restarted(sc);
        auto third = std::make_unique<Pipe<>>();
        restarted.attach(third->b);
        c->attach(third->a);
        o = run_handshake(*c, restarted);
        REQUIRE(o.client == no_error);
        REQUIRE(o.server == 0);
        CHECK_FALSE(c->resumed());
        CHECK(c->token_signatures() == 2);
    }
    SECTION("and a third connect with resume off makes a full handshake") {
        REQUIRE(code(c->close()) == no_error);
        // Params are fixed at configure(); a session configured with resume = false never offers.
        Client fresh;
        fresh.params.resume = false;
        REQUIRE(fresh.configure() == no_error);
        for (int i = 0; i < 2; ++i) {
            auto pipe = std::make_unique<Pipe<>>();
            server.attach(pipe->b);
            fresh->attach(pipe->a);
            o = run_handshake(*fresh, server);
            REQUIRE(o.client == no_error);
            CHECK_FALSE(fresh->resumed());
            REQUIRE(code(fresh->close()) == no_error);
        }
        CHECK(fresh->token_signatures() == 2);
    }
}

TEST_CASE("close() sends a close_notify the server reads", "[tls]") {
    MbedServer server;
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    REQUIRE(connect(c, server, *pipe).client == no_error);
    REQUIRE(code(c->close()) == no_error);
    CHECK_FALSE(c->connected());
    unsigned char buf[16];
    CHECK(server.read(buf) == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
    // Nothing more to send and nothing to do a second time.
    CHECK(code(c->close()) == no_error);
    CHECK(code(c->send(as_span(to_bytes("late")))) == Errc::tls_not_connected);
}

TEST_CASE("a non-blocking close() that would block finishes on the next call", "[tls]") {
    MbedServer server;
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    REQUIRE(connect(c, server, *pipe).client == no_error);
    // Fill the pipe while the server does not read, until the client's send would block.
    const Bytes chunk = pattern(4096, 3);
    std::size_t queued = 0;
    for (int i = 0; i < 64; ++i) {
        auto r = c->send(as_span(chunk));
        if (!r) {
            REQUIRE(code(r) == Errc::would_block);
            break;
        }
        queued += *r;
    }
    REQUIRE(pipe->a_to_b.size() > 32 * 1024 - 64);
    CHECK(code(c->close()) == Errc::would_block);
    // The server drains the pipe; the client keeps calling close() until it succeeds.
    Bytes got;
    unsigned char buf[4096];
    int last = 0;
    Errc closed = Errc::would_block;
    for (int i = 0; i < 200 && last != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY; ++i) {
        if (closed == Errc::would_block) closed = code(c->close());
        last = server.read(buf);
        if (last > 0) got.insert(got.end(), buf, buf + last);
        else if (last < 0) break;
    }
    CHECK(closed == no_error);
    CHECK(last == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
    CHECK(got.size() >= queued);
}

TEST_CASE("recv reports the server's close_notify as connection_closed", "[tls]") {
    MbedServer server;
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    REQUIRE(connect(c, server, *pipe).client == no_error);
    REQUIRE(server.close_notify() == 0);
    Bytes buf(64);
    CHECK(code(c->recv(as_out(buf))) == Errc::connection_closed);
    CHECK_THAT(c.message(), Contains("closed"));
}

// --- ECDSA signature encoding --------------------------------------------------------------

/// What mbedTLS itself writes for (r, s): SEQUENCE { INTEGER r, INTEGER s } (as in
/// mbedtls_ecdsa_write_signature).
Bytes mbedtls_der(const Bytes& r_bytes, const Bytes& s_bytes) {
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    REQUIRE(mbedtls_mpi_read_binary(&r, r_bytes.data(), r_bytes.size()) == 0);
    REQUIRE(mbedtls_mpi_read_binary(&s, s_bytes.data(), s_bytes.size()) == 0);
    unsigned char buf[200];
    unsigned char* p = buf + sizeof buf;
    int len = 0, n;
    REQUIRE((n = mbedtls_asn1_write_mpi(&p, buf, &s)) > 0);
    len += n;
    REQUIRE((n = mbedtls_asn1_write_mpi(&p, buf, &r)) > 0);
    len += n;
    REQUIRE((n = mbedtls_asn1_write_len(&p, buf, static_cast<std::size_t>(len))) > 0);
    len += n;
    REQUIRE((n = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) > 0);
    len += n;
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return Bytes(p, p + len);
}

Bytes to_der(const Bytes& r, const Bytes& s) {
    Bytes rs(r);
    rs.insert(rs.end(), s.begin(), s.end());
    Bytes out(160);
    std::size_t n = detail::mbed::ecdsa_raw_to_der(as_span(rs), as_out(out));
    out.resize(n);
    return out;
}

/// (r, s) back from DER with mbedTLS's ASN.1 parser; the whole input must be consumed.
bool parse_der(const Bytes& der, Bytes& r_out, Bytes& s_out, std::size_t half) {
    unsigned char* p = const_cast<unsigned char*>(der.data());
    const unsigned char* end = p + der.size();
    std::size_t len;
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    bool ok = mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) == 0 &&
              p + len == end && mbedtls_asn1_get_mpi(&p, end, &r) == 0 && mbedtls_asn1_get_mpi(&p, end, &s) == 0 &&
              p == end;
    if (ok) {
        r_out.assign(half, 0);
        s_out.assign(half, 0);
        ok = mbedtls_mpi_write_binary(&r, r_out.data(), half) == 0 && mbedtls_mpi_write_binary(&s, s_out.data(), half) == 0;
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return ok;
}

TEST_CASE("ecdsa_raw_to_der writes the DER mbedTLS writes, for any leading bytes of r and s", "[tls]") {
    const std::size_t half = GENERATE(std::size_t{32}, std::size_t{48});
    CAPTURE(half);
    auto value = [&](std::initializer_list<unsigned char> head, unsigned char fill) {
        Bytes v(half, fill);
        std::copy(head.begin(), head.end(), v.begin());
        return v;
    };
    struct Case {
        const char* what;
        Bytes r, s;
    };
    const std::vector<Case> cases = {
        {"high bit set in both", value({0x80}, 0xA5), value({0xFF}, 0xFF)},
        {"one leading zero byte in r", value({0x00, 0x7F}, 0x11), value({0x12}, 0x34)},
        {"one leading zero byte in s", value({0x12}, 0x34), value({0x00, 0x01}, 0x22)},
        {"leading zero then high bit (needs the pad byte again)", value({0x00, 0x80}, 0x01), value({0x00, 0xC3}, 0x02)},
        {"several leading zero bytes", value({0x00, 0x00, 0x00, 0x05}, 0x99), value({0x00, 0x00, 0x80}, 0x00)},
        {"r is 1, s is all 0xFF", [&] { Bytes v(half, 0); v.back() = 1; return v; }(), value({}, 0xFF)},
        {"low bytes only, high bit in the last byte", [&] { Bytes v(half, 0); v.back() = 0x80; return v; }(),
         value({0x7F}, 0x00)},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        Bytes der = to_der(c.r, c.s);
        CHECK(der == mbedtls_der(c.r, c.s));
        Bytes r, s;
        REQUIRE(parse_der(der, r, s, half));
        CHECK(r == c.r);
        CHECK(s == c.s);
    }

    SECTION("random values agree with mbedTLS") {
        TestRng rng;
        for (int i = 0; i < 2000; ++i) {
            Bytes r(half), s(half);
            REQUIRE(TestRng::f(rng.p(), r.data(), half) == 0);
            REQUIRE(TestRng::f(rng.p(), s.data(), half) == 0);
            // Bias towards the interesting cases: zero and high-bit leading bytes.
            if (i % 4 == 1) r[0] = 0;
            if (i % 4 == 2) s[0] = 0, s[1] |= 0x80;
            if (i % 8 == 3) r[0] = 0, r[1] = 0;
            if (i % 2 == 0) r[0] |= 0x80;
            if (mbedtls_der(r, s) != to_der(r, s)) FAIL("differs at iteration " << i);
        }
    }
    SECTION("zero encodes as one zero byte") {
        Bytes zero(half, 0), one(half, 0);
        one.back() = 1;
        Bytes der = to_der(zero, one);
        REQUIRE(der.size() == 8);
        CHECK(der == Bytes{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01});
    }
}

TEST_CASE("ecdsa_raw_to_der refuses what it cannot encode", "[tls]") {
    Bytes out(200);
    Bytes odd(63, 0x42), empty, p521(132, 0x42), p384(96, 0xFF);
    CHECK(detail::mbed::ecdsa_raw_to_der(as_span(odd), as_out(out)) == 0);
    CHECK(detail::mbed::ecdsa_raw_to_der(as_span(empty), as_out(out)) == 0);
    CHECK(detail::mbed::ecdsa_raw_to_der(as_span(p521), as_out(out)) == 0);
    // P-384 with both high bits: 2 + 2 * (2 + 49) = 104 bytes.
    Bytes small(103);
    CHECK(detail::mbed::ecdsa_raw_to_der(as_span(p384), as_out(small)) == 0);
    Bytes exact(104);
    CHECK(detail::mbed::ecdsa_raw_to_der(as_span(p384), as_out(exact)) == 104);
}

/// TokenKeyRef's sign callback over a SoftToken (what TlsSession installs).
Result<std::size_t> token_sign(void* token, CK_ULONG session, CK_ULONG key, CK_MECHANISM_TYPE mech,
                               std::span<const std::byte> in, std::span<std::byte> out) {
    auto& t = *static_cast<TokenType*>(token);
    CK_MECHANISM m{mech, nullptr, 0};
    P11TLS_TRY(t.sign_init(session, m, key));
    return t.sign(session, in, out);
}

/// Signatures from the token through the mbedTLS pk bridge, verified by mbedTLS with the
/// certificate's public key.
struct BridgeKey {
    ProvisionedToken token;
    detail::mbed::TokenKeyRef ref{};
    mbedtls_pk_context pk;
    mbedtls_pk_context pub;

    explicit BridgeKey(KeyKind kind) {
        const ClientKey& c = world().client(kind);
        ref.token = token.token.get();
        ref.sign = &token_sign;
        ref.session = open_session(*token, false);
        ref.key = private_key(*token, ref.session, c.key_label);
        ref.key_type = kind == KeyKind::rsa2048 ? CKK_RSA : CKK_EC;
        ref.bits = kind == KeyKind::p256 ? 256 : kind == KeyKind::p384 ? 384 : 2048;
        mbedtls_pk_init(&pk);
        detail::mbed::token_pk_setup(pk, ref);
        mbedtls_pk_init(&pub);
        mbedtls_x509_crt crt;
        mbedtls_x509_crt_init(&crt);
        REQUIRE(mbedtls_x509_crt_parse_der(&crt, c.cert.data(), c.cert.size()) == 0);
        // Move the certificate's key out (the x509 frees an empty pk).
        pub = crt.pk;
        mbedtls_pk_init(&crt.pk);
        mbedtls_x509_crt_free(&crt);
    }
    ~BridgeKey() {
        mbedtls_pk_free(&pk);
        mbedtls_pk_free(&pub);
    }
    /// Signs a hash of `md` through mbedtls_pk_sign; returns the DER (EC) or PKCS#1 (RSA) signature.
    Bytes sign(mbedtls_md_type_t md, const Bytes& digest) {
        Bytes sig(MBEDTLS_PK_SIGNATURE_MAX_SIZE);
        std::size_t len = 0;
        TestRng rng;
        REQUIRE(mbedtls_pk_sign(&pk, md, digest.data(), digest.size(), sig.data(), &len, &TestRng::f, rng.p()) == 0);
        sig.resize(len);
        return sig;
    }
    bool verify(mbedtls_md_type_t md, const Bytes& digest, const Bytes& sig) {
        return mbedtls_pk_verify(&pub, md, digest.data(), digest.size(), sig.data(), sig.size()) == 0;
    }
};

TEST_CASE("token ECDSA signatures verify whether r and s have leading zero bytes or high bits", "[tls]") {
    const KeyKind kind = GENERATE(KeyKind::p256, KeyKind::p384);
    CAPTURE(name(kind));
    BridgeKey key(kind);
    CHECK(mbedtls_pk_get_bitlen(&key.pk) == key.ref.bits);
    CHECK(mbedtls_pk_can_do(&key.pk, MBEDTLS_PK_ECDSA));
    const std::size_t half = kind == KeyKind::p256 ? 32 : 48;
    const mbedtls_md_type_t md = kind == KeyKind::p256 ? MBEDTLS_MD_SHA256 : MBEDTLS_MD_SHA384;
    // A leading zero byte in r or s has probability 1/256 each: sign until both shapes (and the
    // high-bit shape) were seen; 30000 signatures make missing one practically impossible.
    bool r_short = false, s_short = false, r_padded = false, s_padded = false;
    int n = 0;
    for (; n < 30000 && !(r_short && s_short && r_padded && s_padded); ++n) {
        Bytes digest = hash(md, to_bytes("message " + std::to_string(n)));
        Bytes sig = key.sign(md, digest);
        if (!key.verify(md, digest, sig)) FAIL("signature " << n << " does not verify");
        // DER INTEGER lengths: < half means a leading zero byte was dropped, half + 1 a 0x00 pad.
        std::size_t r_len = sig[3], s_len = sig[4 + r_len + 1];
        if (r_len < half) r_short = true;
        if (r_len == half + 1) r_padded = true;
        if (s_len < half) s_short = true;
        if (s_len == half + 1) s_padded = true;
    }
    INFO(n << " signatures");
    CHECK(r_short);
    CHECK(s_short);
    CHECK(r_padded);
    CHECK(s_padded);
    CHECK(key.ref.signatures == static_cast<std::size_t>(n));
}

TEST_CASE("token RSA signatures through the pk bridge verify for every TLS 1.2 hash", "[tls]") {
    BridgeKey key(KeyKind::rsa2048);
    CHECK(mbedtls_pk_get_bitlen(&key.pk) == 2048);
    CHECK(mbedtls_pk_can_do(&key.pk, MBEDTLS_PK_RSA));
    for (mbedtls_md_type_t md : {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA512}) {
        CAPTURE(md);
        Bytes digest = hash(md, to_bytes("tls 1.2 transcript"));
        Bytes sig = key.sign(md, digest);
        CHECK(sig.size() == 256);
        CHECK(key.verify(md, digest, sig));
    }
    CHECK(key.ref.signatures == 3);
}

// --- the server is not who it should be ----------------------------------------------------

TEST_CASE("a server certificate from an unknown CA is refused as not trusted", "[tls]") {
    ServerConfig sc;
    sc.cert = &world().rogue_server_cert;
    MbedServer server(sc);
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    CHECK(o.client == Errc::tls_untrusted);
    CHECK_THAT(c.message(), Contains("not trusted"));
    CHECK_FALSE(c->connected());
    CHECK(c->token_signatures() == 0);  // refused before the client authenticates
}

/// A configuration without sentences for people, as firmware boards choose.
struct NoTexts : cfg::TlsConfig {
    static constexpr bool error_texts = false;
};

std::string numbers(Errc code, long native) {
    char m[64];
    std::snprintf(m, sizeof m, "TLS error 0x%04x, native %ld", static_cast<unsigned>(code), native);
    return m;
}

TEST_CASE("without error texts a failure keeps its code and the message gives its numbers", "[tls]") {
    ProvisionedToken token;
    GetrandomEntropy entropy;
    auto tls = std::make_unique<TlsSession<TokenType, PipeEnd, GetrandomEntropy, NoTexts>>(*token, entropy);
    cfg::Credentials cred;
    cred.key_label = "p256 key";
    cred.cert_label = "p256 cert";
    cfg::Params params;
    params.server_name = server_name;
    params.non_blocking = true;

    SECTION("configure: no such key") {
        cred.key_label = "no such key";
        CHECK(code(tls->configure(cred, params)) == Errc::tls_key_not_found);
        CHECK(std::string(tls->error_message()) == numbers(Errc::tls_key_not_found, 0));
    }
    SECTION("handshake: a server certificate from an unknown CA") {
        ServerConfig sc;
        sc.cert = &world().rogue_server_cert;
        MbedServer server(sc);
        auto pipe = std::make_unique<Pipe<>>();
        REQUIRE(code(tls->configure(cred, params)) == no_error);
        CHECK(std::string(tls->error_message()).empty());
        server.attach(pipe->b);
        tls->attach(pipe->a);
        Outcome o = run_handshake(*tls, server);
        CHECK(o.client == Errc::tls_untrusted);
        CHECK(std::string(tls->error_message()) == numbers(Errc::tls_untrusted, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED));
        CHECK_FALSE(tls->connected());
    }
    SECTION("a handshake that succeeds leaves no message") {
        MbedServer server;
        auto pipe = std::make_unique<Pipe<>>();
        REQUIRE(code(tls->configure(cred, params)) == no_error);
        server.attach(pipe->b);
        tls->attach(pipe->a);
        Outcome o = run_handshake(*tls, server);
        CHECK(o.client == no_error);
        CHECK(o.server == 0);
        CHECK(std::string(tls->error_message()).empty());
        CHECK(tls->token_signatures() == 1);
    }
}

TEST_CASE("a client that trusts another CA refuses the server", "[tls]") {
    MbedServer server;
    Client c;
    c.cred.ca_label = "Other Root";
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    CHECK(o.client == Errc::tls_untrusted);
    CHECK_THAT(c.message(), Contains("not trusted") && Contains("unknown issuer"));
}

TEST_CASE("a server certificate for another name is a host name mismatch", "[tls]") {
    MbedServer server;
    Client c;
    c.params.server_name = "other.test";
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    CHECK(o.client == Errc::tls_hostname_mismatch);
    CHECK_THAT(c.message(), Contains("name mismatch") && Contains("other.test") && !Contains("not trusted"));
    CHECK(c->token_signatures() == 0);
}

TEST_CASE("an expired or SHA-1-signed server certificate is refused with the reason", "[tls]") {
    World& w = world();
    struct Case {
        const char* what;
        const char* not_before;
        const char* not_after;
        mbedtls_md_type_t md;
        Errc expected;
        const char* reason;
    };
    const Case cases[] = {
        {"expired", "20200101000000", "20210101000000", MBEDTLS_MD_SHA256, Errc::tls_cert_expired, "expired"},
        {"not yet valid", "20900101000000", "20910101000000", MBEDTLS_MD_SHA256, Errc::tls_cert_expired, "not yet valid"},
        {"signed with SHA-1", "20240101000000", "20440101000000", MBEDTLS_MD_SHA1, Errc::tls_untrusted, "refused hash"},
    };
    for (const Case& k : cases) {
        INFO(k.what);
        CertRequest req{"CN=server.test", w.server_ec_key->get(), ca_name, w.ca_key->get(), false, 40};
        req.not_before = k.not_before;
        req.not_after = k.not_after;
        req.md = k.md;
        const Bytes cert = issue(req, w.rng);
        ServerConfig sc;
        sc.cert = &cert;
        MbedServer server(sc);
        Client c;
        auto pipe = std::make_unique<Pipe<>>();
        Outcome o = connect(c, server, *pipe);
        CHECK(o.client == k.expected);
        CHECK_THAT(c.message(), Contains(k.reason));
        CHECK(c->token_signatures() == 0);
    }
}

TEST_CASE("a server offering only CBC-SHA1 suites shares no cipher suite", "[tls]") {
    static constexpr int sha1_only[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
                                        MBEDTLS_TLS_RSA_WITH_AES_128_CBC_SHA, 0};
    ServerConfig sc;
    sc.ciphersuites = sha1_only;
    MbedServer server(sc);
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    CHECK((o.server == MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE || o.server == MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN));
    CHECK(o.client == Errc::tls_no_shared_cipher);
    CHECK_THAT(c.message(), Contains("handshake_failure") || Contains("cipher suite"));
    CHECK(c->token_signatures() == 0);
}

// --- the server refuses us -----------------------------------------------------------------

TEST_CASE("a server whose CA list lacks our issuer refuses us with a clear message", "[tls]") {
    ServerConfig sc;
    sc.client_ca = &world().other_ca_cert;
    MbedServer server(sc);
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    CHECK(o.server == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
    CHECK(o.client == Errc::tls_peer_alert);
    CHECK_THAT(c.message(), Contains("unknown_ca") && Contains("our certificate"));
    CHECK_FALSE(c->connected());
}

/// A pipe end whose peer goes away at the n-th send, like TCP after the peer's RST: before that
/// send fails (EPIPE) the peer gets to run, e.g. to read what came before, answer and close.
struct ResettingPipe {
    PipeEnd end;
    int sends_before_reset;
    std::function<void()> peer;
    bool reset = false;

    Result<std::size_t> send(std::span<const std::byte> in) {
        if (!reset && sends_before_reset-- == 0) {
            reset = true;
            peer();
        }
        if (reset) return fail(Errc::connection_closed);
        return end.send(in);
    }
    Result<std::size_t> recv(std::span<std::byte> out) { return end.recv(out); }
};
static_assert(Transport<ResettingPipe>);

TEST_CASE("a server that refuses our certificate and resets before our next write still gets its alert reported", "[tls]") {
    ServerConfig sc;
    sc.client_ca = &world().other_ca_cert;
    MbedServer server(sc);
    ProvisionedToken token;
    GetrandomEntropy entropy;
    auto tls = std::make_unique<TlsSession<TokenType, ResettingPipe, GetrandomEntropy>>(*token, entropy);
    cfg::Credentials cred;
    cred.key_label = "p256 key";
    cred.cert_label = "p256 cert";
    cfg::Params params;
    params.server_name = server_name;
    params.non_blocking = true;
    REQUIRE(code(tls->configure(cred, params)) == no_error);
    auto pipe = std::make_unique<Pipe<>>();
    server.attach(pipe->b);
    const bool alert = GENERATE(true, false);
    CAPTURE(alert);
    int server_result = 0;
    // Sends: 1 ClientHello, 2 Certificate, 3 ClientKeyExchange: the server reads the certificate,
    // refuses it (with or without an alert) and is gone before the third.
    tls->attach(ResettingPipe{pipe->a, 2, [&] {
                                  if (alert) server_result = server.handshake();
                                  pipe->b.close();
                              }});
    REQUIRE(code(tls->connect()) == Errc::would_block);
    REQUIRE(want(server.handshake()));
    auto r = tls->connect();
    if (alert) {
        CHECK(server_result == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
        CHECK(code(r) == Errc::tls_peer_alert);
        CHECK_THAT(std::string(tls->error_message()), Contains("unknown_ca"));
    } else {
        CHECK(code(r) == Errc::connection_closed);
        CHECK_THAT(std::string(tls->error_message()), Contains("closed"));
    }
}

TEST_CASE("an anonymous client against a server that requires a certificate fails with a clear message", "[tls]") {
    MbedServer server;
    Client c;
    c.cred.anonymous_client = true;
    auto pipe = std::make_unique<Pipe<>>();
    Outcome o = connect(c, server, *pipe);
    CHECK(o.server == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE);
    // The server's handshake_failure alert comes after the suite was agreed: it is about the
    // certificate, not about cipher suites.
    CHECK(o.client == Errc::tls_peer_alert);
    CHECK_THAT(c.message(), Contains("handshake_failure") && Contains("client certificate"));
}

TEST_CASE("a token that cannot sign fails the handshake with the token's reason", "[tls]") {
    MbedServer server;
    Client c;
    REQUIRE(c.configure() == no_error);
    // Logged out between configure() and connect(): the key handle is known, signing is refused.
    REQUIRE(code(c.token.token->logout(c.token.login_session)) == no_error);
    auto pipe = std::make_unique<Pipe<>>();
    server.attach(pipe->b);
    c->attach(pipe->a);
    Outcome o = run_handshake(*c, server);
    CHECK(o.client == Errc::tls_signing_failed);
    // The token's own reason follows (SoftToken hides private objects from a logged-out user).
    CHECK_THAT(c.message(), Contains("token could not sign the handshake: ") &&
                                (Contains(describe(Errc::user_not_logged_in)) || Contains(describe(Errc::key_handle_invalid))));
    CHECK(c->token_signatures() == 0);
}

// --- configuration errors come before any byte is sent --------------------------------------

bool pipe_empty(const Pipe<>& p) { return p.a_to_b.size() == 0 && p.b_to_a.size() == 0; }

TEST_CASE("a key label that is not in the token fails configure before any byte is sent", "[tls]") {
    Client c;
    c.cred.key_label = "no such key";
    auto pipe = std::make_unique<Pipe<>>();
    CHECK(c.configure() == Errc::tls_key_not_found);
    CHECK_THAT(c.message(), Contains("no private key labelled 'no such key'"));
    c->attach(pipe->a);
    CHECK(code(c->connect()) == Errc::tls_config);
    CHECK(pipe_empty(*pipe));
}

TEST_CASE("a key id that is not in the token fails configure", "[tls]") {
    Client c;
    const Bytes id{0x77, 0x77};
    c.cred.key_id = as_span(id);
    CHECK(c.configure() == Errc::tls_key_not_found);
    CHECK_THAT(c.message(), Contains("id"));
}

TEST_CASE("without login the private key is not found, and the message says why it may be", "[tls]") {
    Client c;
    REQUIRE(code(c.token.token->logout(c.token.login_session)) == no_error);
    CHECK(c.configure() == Errc::tls_key_not_found);
    CHECK_THAT(c.message(), Contains("logged in"));
}

TEST_CASE("configure can be retried after a failure, e.g. once the user logged in", "[tls]") {
    Client c;
    REQUIRE(code(c.token.token->logout(c.token.login_session)) == no_error);
    REQUIRE(c.configure() == Errc::tls_key_not_found);
    REQUIRE(code(c.token.token->login(c.token.login_session, CKU_USER, pin(user_pin))) == no_error);
    REQUIRE(c.configure() == no_error);
    CHECK(c.message().empty());
    MbedServer server;
    auto pipe = std::make_unique<Pipe<>>();
    server.attach(pipe->b);
    c->attach(pipe->a);
    Outcome o = run_handshake(*c, server);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    // Our certificate went out once, not once per configure() call.
    REQUIRE(server.peer_cert() != nullptr);
    CHECK(server.peer_cert()->next == nullptr);
    CHECK(c->token_signatures() == 1);
    // The failed attempt left no token session behind: the login session and the TLS one.
    auto info = c.token.token->session_info(c.token.login_session);
    REQUIRE(code(info) == no_error);
    CK_TOKEN_INFO ti;
    c.token.token->token_info(ti);
    CHECK(ti.ulSessionCount == 2);
}

TEST_CASE("a certificate label that is not in the token fails configure", "[tls]") {
    Client c;
    c.cred.cert_label = "no such cert";
    CHECK(c.configure() == Errc::tls_cert_not_found);
    CHECK_THAT(c.message(), Contains("client certificate labelled 'no such cert'"));
    c.cred.cert_label = "p256 cert";
}

TEST_CASE("a root CA label that is not in the token fails configure", "[tls]") {
    Client c;
    c.cred.ca_label = "no such root";
    CHECK(c.configure() == Errc::tls_cert_not_found);
    CHECK_THAT(c.message(), Contains("root CA"));
}

TEST_CASE("a certificate that is not the token key's is a key/certificate mismatch", "[tls]") {
    World& w = world();
    struct Case {
        const char* what;
        KeyKind key;
        const char* cert_label;
        const Bytes* cert_data;
    };
    const Case cases[] = {
        {"P-256 key, P-384 certificate", KeyKind::p256, "p384 cert", nullptr},
        {"P-384 key, P-256 certificate", KeyKind::p384, "p256 cert", nullptr},
        {"P-256 key, another P-256 key's certificate", KeyKind::p256, nullptr, &w.server_ec_cert},
        {"P-256 key, RSA certificate", KeyKind::p256, "rsa cert", nullptr},
        {"RSA key, P-256 certificate", KeyKind::rsa2048, "p256 cert", nullptr},
        {"RSA key, another RSA key's certificate", KeyKind::rsa2048, nullptr, &w.server_rsa_cert},
    };
    for (const Case& k : cases) {
        INFO(k.what);
        Client c(k.key);
        if (k.cert_label) c.cred.cert_label = k.cert_label;
        if (k.cert_data) c.cred.cert_data = as_span(*k.cert_data);
        CHECK(c.configure() == Errc::tls_key_cert_mismatch);
        CHECK_THAT(c.message(), Contains("certificate") && Contains("key"));
    }
}

TEST_CASE("configure refuses a missing server name and a second call", "[tls]") {
    Client c;
    c.params.server_name = {};
    CHECK(c.configure() == Errc::tls_config);
    CHECK_THAT(c.message(), Contains("server name"));
    Client d;
    REQUIRE(d.configure() == no_error);
    CHECK(d.configure() == Errc::tls_config);
}

struct FailingEntropy {
    int calls = 0;
    Result<void> fill(std::span<std::byte>) {
        ++calls;
        return fail(Errc::entropy_failed);
    }
};
static_assert(Entropy<FailingEntropy>);

TEST_CASE("a failing entropy source stops configure with a message about entropy", "[tls]") {
    ProvisionedToken token;
    FailingEntropy entropy;
    auto tls = std::make_unique<TlsSession<TokenType, PipeEnd, FailingEntropy>>(*token, entropy);
    cfg::Credentials cred;
    cred.key_label = "p256 key";
    cred.cert_label = "p256 cert";
    cfg::Params params;
    params.server_name = server_name;
    params.non_blocking = true;
    auto r = tls->configure(cred, params);
    CHECK(code(r) == Errc::entropy_failed);
    CHECK_THAT(std::string(tls->error_message()), Contains("entropy"));
    CHECK(entropy.calls > 0);
    auto pipe = std::make_unique<Pipe<>>();
    tls->attach(pipe->a);
    CHECK(code(tls->connect()) == Errc::tls_config);
    CHECK(pipe_empty(*pipe));
}

// --- the peer misbehaves -------------------------------------------------------------------

TEST_CASE("a peer closing mid-handshake is connection_closed", "[tls]") {
    MbedServer server;
    Client c;
    auto pipe = std::make_unique<Pipe<>>();
    REQUIRE(c.configure() == no_error);
    server.attach(pipe->b);
    c->attach(pipe->a);

    SECTION("right after the ClientHello") {
        CHECK(code(c->connect()) == Errc::would_block);
        pipe->b.close();
    }
    SECTION("after the server's first flight, while the client waits for its Finished") {
        CHECK(code(c->connect()) == Errc::would_block);
        CHECK(want(server.handshake()));  // ServerHello .. ServerHelloDone
        CHECK(code(c->connect()) == Errc::would_block);  // Certificate .. Finished sent
        CHECK(c->token_signatures() == 1);
        pipe->b.close();
    }
    auto r = c->connect();
    CHECK(code(r) == Errc::connection_closed);
    CHECK_THAT(c.message(), Contains("closed"));
    CHECK_FALSE(c->connected());
}

TEST_CASE("garbage instead of a ServerHello is a bad message", "[tls]") {
    struct Case {
        const char* what;
        Bytes bytes;
    };
    const Case cases[] = {
        {"an HTTP response", to_bytes("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")},
        {"a handshake record with a nonsense body",
         {0x16, 0x03, 0x03, 0x00, 0x08, 0x02, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef}},
        {"an application-data record before the handshake", {0x17, 0x03, 0x03, 0x00, 0x04, 1, 2, 3, 4}},
    };
    for (const Case& k : cases) {
        INFO(k.what);
        Client c;
        auto pipe = std::make_unique<Pipe<>>();
        REQUIRE(c.configure() == no_error);
        c->attach(pipe->a);
        REQUIRE(code(c->connect()) == Errc::would_block);
        REQUIRE(code(pipe->b.send(as_span(k.bytes))) == no_error);
        auto r = c->connect();
        CHECK(code(r) == Errc::tls_bad_message);
        CHECK_THAT(c.message(), Contains("server"));
        CHECK_FALSE(c->connected());
    }
}

}  // namespace
