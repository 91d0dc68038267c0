// SPDX-License-Identifier: MIT
// TlsConfig's optional features (resumption, alpn, pem_input): a TlsSession with them switched
// off still makes a verified mutual-auth handshake with the in-process server, the APIs of a
// feature compiled out do not exist, and asking for it at run time is Errc::not_supported.
#include <concepts>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include <mbedtls/pem.h>

#include <p11tls/tls/session.hpp>

#include "support/tls_peer.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;
using namespace p11tls::test::tls;
using Catch::Matchers::Contains;
namespace cfg = p11tls::tls;

/// A TlsConfig with the three optional features chosen; everything else the default.
template <bool Resumption, bool Alpn, bool Pem, bool Texts = true>
struct Features : cfg::TlsConfig {
    static constexpr bool resumption = Resumption;
    static constexpr bool alpn = Alpn;
    static constexpr bool pem_input = Pem;
    static constexpr bool error_texts = Texts;
};
template <class Config>
using SessionOf = TlsSession<TokenType, PipeEnd, GetrandomEntropy, Config>;

using Full = SessionOf<cfg::TlsConfig>;
using Lean = SessionOf<Features<false, false, false>>;
using LeanNoTexts = SessionOf<Features<false, false, false, false>>;

// --- compile time: a feature that is off has no API --------------------------------------

template <class S>
concept HasResumed = requires(const S& s) {
    { s.resumed() } -> std::same_as<bool>;
};
template <class S>
concept HasAlpnProtocol = requires(const S& s) {
    { s.alpn_protocol() } -> std::same_as<const char*>;
};

static_assert(cfg::TlsConfig::resumption && cfg::TlsConfig::alpn && cfg::TlsConfig::pem_input,
              "every optional feature is on by default");
static_assert(HasResumed<Full> && HasAlpnProtocol<Full>);
static_assert(!HasResumed<Lean> && !HasAlpnProtocol<Lean>);
// Each switch removes its own API and no other.
static_assert(!HasResumed<SessionOf<Features<false, true, true>>> && HasAlpnProtocol<SessionOf<Features<false, true, true>>>);
static_assert(HasResumed<SessionOf<Features<true, false, true>>> && !HasAlpnProtocol<SessionOf<Features<true, false, true>>>);
static_assert(HasResumed<SessionOf<Features<true, true, false>>> && HasAlpnProtocol<SessionOf<Features<true, true, false>>>);
// The saved session and the ALPN name buffers are gone from the object too.
static_assert(sizeof(Lean) + sizeof(mbedtls_ssl_session) + cfg::TlsConfig::max_alpn * 64 <= sizeof(Full));

// --- run time ----------------------------------------------------------------------------

/// A session of type S over a freshly loaded, logged-in token with the P-256 client key.
template <class S>
struct Client {
    ProvisionedToken token;
    GetrandomEntropy entropy;
    std::unique_ptr<S> tls;
    cfg::Credentials cred;
    cfg::Params params;

    Client() : tls(std::make_unique<S>(*token, entropy)) {
        const ClientKey& c = world().client(KeyKind::p256);
        cred.key_label = c.key_label;
        cred.cert_label = c.cert_label;
        params.server_name = server_name;
        params.non_blocking = true;
    }
    Errc configure() { return code(tls->configure(cred, params)); }
    std::string message() const { return tls->error_message(); }
};

template <class S>
Outcome handshake(Client<S>& c, MbedServer& server, Pipe<>& pipe) {
    server.attach(pipe.b);
    c.tls->attach(pipe.a);
    return run_handshake(*c.tls, server);
}

Bytes pem(const Bytes& der) {
    unsigned char buf[4096];
    std::size_t len = 0;
    REQUIRE(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der.data(), der.size(),
                                     buf, sizeof buf, &len) == 0);
    return Bytes(buf, buf + len - 1);  // without the NUL mbedTLS counts
}

TEST_CASE("a session without the optional features makes a verified mutual-auth handshake and carries data",
          "[tls][config]") {
    MbedServer server;
    Client<Lean> c;
    auto pipe = std::make_unique<Pipe<>>();
    REQUIRE(c.configure() == no_error);
    Outcome o = handshake(c, server, *pipe);
    INFO(c.message());
    REQUIRE(o.client == no_error);
    REQUIRE(o.server == 0);
    CHECK(c.tls->connected());
    CHECK(c.tls->token_signatures() == 1);
    CHECK(server.verify_result() == 0);
    const ClientKey& key = world().client(KeyKind::p256);
    REQUIRE(server.peer_cert() != nullptr);
    CHECK(server.peer_cert()->raw.len == key.cert.size());

    const Bytes up = to_bytes("telemetry"), down = to_bytes("command");
    std::size_t sent = 0;
    for (int i = 0; i < 16 && sent < up.size(); ++i) {
        auto r = c.tls->send(as_span(up).subspan(sent));
        if (r) sent += *r;
    }
    unsigned char buf[64];
    int got = 0;
    for (int i = 0; i < 16 && got <= 0; ++i) got = server.read(buf);
    REQUIRE(got == static_cast<int>(up.size()));
    CHECK(std::memcmp(buf, up.data(), up.size()) == 0);
    REQUIRE(server.write(down) == static_cast<int>(down.size()));
    Bytes back(64);
    auto n = c.tls->recv(as_out(back));
    REQUIRE(n);
    back.resize(*n);
    CHECK(back == down);
}

TEST_CASE("without resumption a reconnect is a full handshake signed by the token, though the server offers one",
          "[tls][config]") {
    const bool tickets = GENERATE(false, true);
    CAPTURE(tickets);
    ServerConfig sc;
    sc.tickets = tickets;
    MbedServer server(sc);
    Client<SessionOf<Features<false, true, true>>> c;
    REQUIRE(c.params.resume);  // the default asks for it; the configuration has none to give
    REQUIRE(c.configure() == no_error);
    for (int i = 1; i <= 2; ++i) {
        auto pipe = std::make_unique<Pipe<>>();
        Outcome o = handshake(c, server, *pipe);
        INFO("connection " << i << ": " << c.message());
        REQUIRE(o.client == no_error);
        REQUIRE(o.server == 0);
        CHECK(c.tls->token_signatures() == static_cast<std::size_t>(i));
        REQUIRE(code(c.tls->close()) == no_error);
    }
}

TEST_CASE("without ALPN, protocols in the parameters are refused as not supported", "[tls][config]") {
    static const char* server_protocols[] = {"x-amzn-mqtt-ca", nullptr};
    const std::string_view offered[] = {"x-amzn-mqtt-ca"};
    SECTION("with error texts the message names the switch") {
        Client<Lean> c;
        c.params.alpn = offered;
        CHECK(c.configure() == Errc::not_supported);
        CHECK_THAT(c.message(), Contains("ALPN") && Contains("alpn = false"));
    }
    SECTION("without error texts the code is the same") {
        Client<LeanNoTexts> c;
        c.params.alpn = offered;
        CHECK(c.configure() == Errc::not_supported);
    }
    SECTION("with none offered it shakes hands with a server that speaks ALPN") {
        ServerConfig sc;
        sc.alpn = server_protocols;
        MbedServer server(sc);
        Client<Lean> c;
        REQUIRE(c.configure() == no_error);
        auto pipe = std::make_unique<Pipe<>>();
        Outcome o = handshake(c, server, *pipe);
        INFO(c.message());
        CHECK(o.client == no_error);
        CHECK(o.server == 0);
    }
}

TEST_CASE("without PEM input, DER certificates from the caller work and PEM is refused as not supported",
          "[tls][config]") {
    World& w = world();
    const Bytes client_der = w.client(KeyKind::p256).cert;
    SECTION("DER client and CA certificates: handshake") {
        MbedServer server;
        Client<Lean> c;
        c.cred.cert_data = as_span(client_der);
        c.cred.ca_label = "no such CA";
        c.cred.ca_data = as_span(w.ca_cert);
        REQUIRE(c.configure() == no_error);
        auto pipe = std::make_unique<Pipe<>>();
        Outcome o = handshake(c, server, *pipe);
        INFO(c.message());
        CHECK(o.client == no_error);
        CHECK(o.server == 0);
    }
    SECTION("a PEM CA certificate") {
        const Bytes ca = pem(w.ca_cert);
        Client<Lean> c;
        c.cred.ca_data = as_span(ca);
        CHECK(c.configure() == Errc::not_supported);
        CHECK_THAT(c.message(), Contains("PEM") && Contains("pem_input = false"));
    }
    SECTION("a PEM client certificate, without error texts") {
        const Bytes cert = pem(client_der);
        Client<LeanNoTexts> c;
        c.cred.cert_data = as_span(cert);
        CHECK(c.configure() == Errc::not_supported);
    }
    SECTION("bytes that are neither stay a certificate that does not parse") {
        Bytes junk = client_der;
        junk.resize(junk.size() / 2);
        Client<Lean> c;
        c.cred.cert_data = as_span(junk);
        CHECK(c.configure() == Errc::tls_bad_pem);
    }
    SECTION("the same PEM works with pem_input on") {
        const Bytes ca = pem(w.ca_cert);
        Client<SessionOf<Features<false, false, true>>> c;
        c.cred.ca_label = "no such CA";
        c.cred.ca_data = as_span(ca);
        CHECK(c.configure() == no_error);
    }
}

TEST_CASE("the security checks stay in a session without the optional features", "[tls][config]") {
    World& w = world();
    SECTION("a server certificate from another CA is not trusted") {
        ServerConfig sc;
        sc.cert = &w.rogue_server_cert;
        MbedServer server(sc);
        Client<Lean> c;
        REQUIRE(c.configure() == no_error);
        auto pipe = std::make_unique<Pipe<>>();
        CHECK(handshake(c, server, *pipe).client == Errc::tls_untrusted);
    }
    SECTION("a server name the certificate does not hold") {
        MbedServer server;
        Client<Lean> c;
        c.params.server_name = "other.test";
        REQUIRE(c.configure() == no_error);
        auto pipe = std::make_unique<Pipe<>>();
        CHECK(handshake(c, server, *pipe).client == Errc::tls_hostname_mismatch);
    }
    SECTION("a client certificate that does not hold the token key") {
        Client<Lean> c;
        c.cred.cert_data = as_span(w.client(KeyKind::p384).cert);
        CHECK(c.configure() == Errc::tls_key_cert_mismatch);
    }
}

}  // namespace
