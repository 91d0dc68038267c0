// SPDX-License-Identifier: MIT
// A failing entropy source end to end: C_GenerateKeyPair, C_GenerateRandom and a TLS handshake
// each fail with a clear error, and nothing weak comes out (buffers untouched or zeroized, no
// object or record created, no handshake message sent after the failure).
#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/entropy/sim_trng.hpp>
#include <p11tls/tls/session.hpp>

#include "support/tls_peer.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;
using namespace p11tls::test::tls;
using Catch::Matchers::Contains;
using Trng = HealthTested<SimTrng<>>;

/// Token settings whose DRBG reseeds from the source on every request after the first.
struct EveryRequest : TestConfig {
    static constexpr int drbg_reseed_interval = 1;
};

template <class Config = TestConfig>
using TrngToken = SoftToken<RamNvm<>, Trng, Config>;

template <class Config = TestConfig>
std::unique_ptr<TrngToken<Config>> make_token(std::uint64_t sequence) {
    return std::make_unique<TrngToken<Config>>(RamNvm<>{}, Trng(SimTrng<>{sequence}));
}

/// A TRNG-fed token, initialized, with the user logged in and one key generated while healthy.
template <class Config = TestConfig>
struct HealthyToken {
    std::unique_ptr<TrngToken<Config>> token = make_token<Config>(17);
    CK_ULONG session = 0;
    HealthyToken() {
        REQUIRE(code(token->load()) == no_error);
        init_token(*token);
        session = login_user(*token);
        generate_ec_key_pair(*token, session, p256_params(), "before the failure");
    }
    void break_trng() { trng().source().stick_at(0x00); }
    Trng& trng() { return token->entropy(); }
};

bool untouched_or_zero(const Bytes& b, unsigned char fill) {
    return std::all_of(b.begin(), b.end(), [&](unsigned char x) { return x == fill; }) ||
           std::all_of(b.begin(), b.end(), [](unsigned char x) { return x == 0; });
}

}  // namespace

TEST_CASE("a token whose TRNG is stuck from power-up does not load, and C_GenerateRandom fails", "[entropy][token]") {
    auto token = make_token(1);
    token->entropy().source().stick_at(0x42);
    auto r = token->load();
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(std::string(describe(r.error().code)) == "entropy source failed");
    CK_ULONG s = open_session(*token);
    Bytes out(64, 0xEE);
    REQUIRE(code(token->generate_random(s, as_out(out))) == Errc::entropy_failed);
    CHECK(out == Bytes(64, 0xEE));
}

TEST_CASE("C_GenerateKeyPair with a failed TRNG fails and creates nothing", "[entropy][token]") {
    HealthyToken<> t;
    const auto objects = find_all(*t.token, t.session, Template{}).size();
    const auto records = record_ids(t.token->nvm());
    t.break_trng();
    CK_MECHANISM ec{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_MECHANISM rsa{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    Template pub, priv;
    pub.add(CKA_EC_PARAMS, p256_params()).add(CKA_TOKEN, true).add(CKA_LABEL, "after the failure");
    priv.add(CKA_TOKEN, true).add(CKA_LABEL, "after the failure").add(CKA_SIGN, true);
    auto kp = t.token->generate_key_pair(t.session, ec, pub, priv);
    REQUIRE(code(kp) == Errc::entropy_failed);
    Template rpub, rpriv;
    rpub.add(CKA_MODULUS_BITS, CK_ULONG{2048}).add(CKA_TOKEN, true);
    rpriv.add(CKA_TOKEN, true).add(CKA_SIGN, true);
    REQUIRE(code(t.token->generate_key_pair(t.session, rsa, rpub, rpriv)) == Errc::entropy_failed);
    CHECK(find_all(*t.token, t.session, Template{}).size() == objects);
    CHECK(record_ids(t.token->nvm()) == records);
    CHECK(t.trng().failure() == health::Failure::repetition_count);

    SECTION("after the board re-initializes a repaired TRNG, key generation works again") {
        t.trng().source().heal();
        REQUIRE(code(t.trng().reset()) == no_error);
        generate_ec_key_pair(*t.token, t.session, p256_params(), "after the repair");
    }
}

TEST_CASE("C_GenerateRandom with a failed TRNG fails at the next reseed and zeroizes its output", "[entropy][token]") {
    HealthyToken<EveryRequest> t;
    Bytes out(64, 0xEE);
    REQUIRE(code(t.token->generate_random(t.session, as_out(out))) == no_error);
    t.break_trng();
    out.assign(64, 0xEE);
    auto r = t.token->generate_random(t.session, as_out(out));
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(untouched_or_zero(out, 0xEE));
    REQUIRE(code(t.token->generate_random(t.session, as_out(out))) == Errc::entropy_failed);
}

namespace {

struct EveryRequestTls : p11tls::tls::TlsConfig {
    static constexpr int drbg_reseed_interval = 1;
};

template <class Config = p11tls::tls::TlsConfig>
struct TrngClient {
    using Session = TlsSession<TokenType, PipeEnd, Trng, Config>;
    ProvisionedToken token;
    Trng entropy{SimTrng<>{23}};
    std::unique_ptr<Session> tls = std::make_unique<Session>(*token, entropy);
    p11tls::tls::Credentials cred;
    p11tls::tls::Params params;
    TrngClient() {
        const ClientKey& c = world().client(KeyKind::p256);
        cred.key_label = c.key_label;
        cred.cert_label = c.cert_label;
        params.server_name = server_name;
        params.non_blocking = true;
    }
};

}  // namespace

TEST_CASE("a TLS session whose TRNG failed refuses to configure, with a clear message", "[entropy][tls]") {
    TrngClient<> c;
    c.entropy.source().never_ready();
    auto r = c.tls->configure(c.cred, c.params);
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK_THAT(c.tls->error_message(), Contains("entropy source failed"));
}

TEST_CASE("a TRNG that fails after configure() stops the handshake before the ClientHello", "[entropy][tls]") {
    TrngClient<> c;
    REQUIRE(code(c.tls->configure(c.cred, c.params)) == no_error);
    c.entropy.source().stick_at(0x00);
    MbedServer server;
    Pipe<> pipe;
    server.attach(pipe.b);
    c.tls->attach(pipe.a);
    Outcome o = run_handshake(*c.tls, server);
    CHECK(o.client == Errc::entropy_failed);
    CHECK_THAT(c.tls->error_message(), Contains("no TLS handshake without fresh randomness"));
    CHECK(want(o.server));  // the server never got a byte
    CHECK(pipe.a_to_b.size() == 0);
}

TEST_CASE("a TRNG that fails during the handshake fails it with an entropy error", "[entropy][tls]") {
    TrngClient<EveryRequestTls> c;
    REQUIRE(code(c.tls->configure(c.cred, c.params)) == no_error);
    // The reseed before the ClientHello gathers 128 good samples; the next reseed (the DRBG
    // reseeds on every request after the first) meets a stuck TRNG.
    c.entropy.source().stick_at(0x00, MBEDTLS_ENTROPY_MAX_GATHER);
    MbedServer server;
    Pipe<> pipe;
    server.attach(pipe.b);
    c.tls->attach(pipe.a);
    Outcome o = run_handshake(*c.tls, server);
    CHECK(o.client == Errc::entropy_failed);
    // Not the pre-ClientHello check: the failure came from inside mbedTLS's handshake.
    CHECK_THAT(c.tls->error_message(), Contains("the DRBG could not reseed: entropy source failed"));
    CHECK(o.server != 0);  // the handshake never completed
    CHECK(c.entropy.failure() == health::Failure::repetition_count);
}
