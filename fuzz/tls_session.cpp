// SPDX-License-Identifier: MIT
// Fuzz target: TlsSession (client) fed arbitrary server bytes through a MemoryPipe, one chunk
// each time the client waits for the server, at every stage of the handshake and after it.
//
// Input: {config u8} then chunks {len u16, bytes} until the input ends. config % 2 picks the
// client's suites (0: the default ECDHE AES-GCM list, 1: with the CBC suites).
// The client is deterministic (DetEntropy, a fixed clock, a token whose key and certificates
// are built from a fixed seed), so a server's flights recorded once replay as a valid handshake:
// the seeds are such recordings (one chunk per server record: ServerHello, Certificate,
// ServerKeyExchange, CertificateRequest, ServerHelloDone, NewSessionTicket, ChangeCipherSpec,
// Finished, application data, close_notify), and a mutation of one chunk reaches that stage.
// `P11TLS_FUZZ_WRITE_SEEDS=DIR` records them again against an in-process mbedTLS server and
// checks that each replays into a completed handshake and the server's reply.
// Invariants: configure() succeeds; every failure has a message; a completed handshake uses a
// suite the client offered and no ALPN protocol it did not offer; at most one token signature
// per handshake; recv() never returns more than asked.
#include <ctime>
#include <memory>

#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_ticket.h>

#include <p11tls/tls/session.hpp>
#include <p11tls/token/template.hpp>
#include <p11tls/transport/memory_pipe.hpp>

#include "common.hpp"
#include "pki.hpp"
#include "token_config.hpp"

// A fixed clock for the whole program (mbedTLS's time() calls land here): 2030-01-01, inside
// the certificates' validity, and the same in every ClientHello.
extern "C" std::time_t time(std::time_t* t) noexcept {
    constexpr std::time_t fixed = 1893456000;
    if (t) *t = fixed;
    return fixed;
}

using namespace p11tls;
using namespace p11tls::fuzz;

namespace {

constexpr std::string_view server_name = "server.test";
constexpr const char* ca_name = "CN=p11tls fuzz root,O=p11tls";
constexpr std::string_view alpn_offered[] = {"x-fuzz"};
constexpr std::string_view app_request = "ping from the client";

struct CbcConfig : tls::TlsConfig {
    static constexpr const int* ciphersuites = tls::cbc_suites;
};

/// The client's PKI: a root, a client key (imported into the token) and its certificate.
struct ClientPki {
    std::unique_ptr<pki::Pk> ca_key, client_key;
    Bytes ca_cert, client_cert;
    ClientPki() {
        pki::Rng rng("tls client pki");
        ca_key = pki::ec_key(rng);
        client_key = pki::ec_key(rng);
        ca_cert = pki::issue({ca_name, ca_key->get(), ca_name, ca_key->get(), true, 1}, rng);
        client_cert = pki::issue({"CN=fuzz device,O=p11tls", client_key->get(), ca_name, ca_key->get(), false, 2}, rng);
    }
};

ClientPki& client_pki() {
    static ClientPki* p = new ClientPki();
    return *p;
}

/// The token the client signs with: built once, used by every run (signatures are RFC 6979
/// deterministic, so its state between runs does not change what the client sends).
FuzzToken& client_token() {
    static FuzzToken* t = [] {
        auto* tok = new FuzzToken(FuzzNvm{}, DetEntropy{});
        must(tok->load(), "load");
        auto s = tok->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
        must(s, "open_session");
        const ClientPki& p = client_pki();
        const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(*p.client_key->get());
        std::array<std::uint8_t, 32> d;
        pki::must(mbedtls_mpi_write_binary(&ec->d, d.data(), d.size()));
        token::Template<10, 512> priv;
        priv.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true)
            .add(CKA_LABEL, "Device Priv TLS Key").add(CKA_SIGN, true)
            .add(CKA_EC_PARAMS, detail::mbed::curve_params(detail::mbed::Curve::p256))
            .add(CKA_VALUE, as_bytes(std::span<const std::uint8_t>(d)));
        must(tok->create_object(*s, std::as_const(priv).view()), "client key");
        auto cert = [&](std::string_view label, const Bytes& der) {
            token::Template<6, 2048> c;
            c.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_TOKEN, true)
                .add(CKA_LABEL, label).add(CKA_VALUE, as_bytes(std::span<const std::uint8_t>(der)));
            must(tok->create_object(*s, std::as_const(c).view()), "certificate");
        };
        cert("Device Cert", p.client_cert);
        cert("Root Cert", p.ca_cert);
        must(tok->close_session(*s), "close_session");
        return tok;
    }();
    return *t;
}

using Pipe = p11tls::Pipe<>;
using End = MemoryPipe<>;

/// What a run saw (the seed generator checks that a recording replays to the end).
struct Outcome {
    bool connected = false;
    Bytes received;
};

/// The client side of one connection over `pipe.a`. `more()` is called whenever the client
/// waits for the server; it returns false when the server has nothing more to say.
template <class Config, class More>
Outcome run_client(Pipe& pipe, More&& more) {
    Outcome out;
    DetEntropy entropy;
    TlsSession<FuzzToken, End, DetEntropy, Config> tls(client_token(), entropy);
    tls::Credentials cred;
    tls::Params params{.server_name = server_name, .alpn = alpn_offered, .non_blocking = true, .resume = false};
    P11TLS_FUZZ_CHECK(tls.configure(cred, params));
    tls.attach(pipe.a);
    auto failed = [&](const Error& e) {
        P11TLS_FUZZ_CHECK(e.code != Errc::tls_config && e.code != Errc::tls_not_connected);
        P11TLS_FUZZ_CHECK(std::strlen(tls.error_message()) > 0);
    };
    for (int rounds = 0; rounds < 256; ++rounds) {
        auto r = tls.connect();
        if (r) {
            out.connected = true;
            break;
        }
        if (r.error().code != Errc::would_block) {
            failed(r.error());
            return out;
        }
        if (!more()) return out;
    }
    if (!out.connected) return out;
    // A completed handshake agreed on what the client offered.
    const int suite = mbedtls_ssl_get_ciphersuite_id(tls.ciphersuite());
    bool offered = false;
    for (const int* s = Config::ciphersuites; *s; ++s) offered |= *s == suite;
    P11TLS_FUZZ_CHECK(offered);
    if (const char* alpn = tls.alpn_protocol()) P11TLS_FUZZ_CHECK(std::string_view(alpn) == alpn_offered[0]);
    P11TLS_FUZZ_CHECK(tls.token_signatures() <= 1);

    auto sent = tls.send(as_bytes(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(app_request.data()),
                                                                 app_request.size())));
    if (!sent) return out;
    std::array<std::byte, 512> buf;
    for (int rounds = 0; rounds < 64; ++rounds) {
        auto n = tls.recv(std::span(buf).first(1 + rounds % buf.size()));
        if (n) {
            P11TLS_FUZZ_CHECK(*n <= 1 + rounds % buf.size());
            auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
            out.received.insert(out.received.end(), p, p + *n);
            continue;
        }
        if (n.error().code != Errc::would_block) {
            if (n.error().code != Errc::connection_closed) failed(n.error());
            break;
        }
        if (!more()) break;
    }
    (void)tls.close();
    return out;
}

/// Replays the chunks of an input as the server's bytes.
template <class Config>
Outcome replay(Reader& in) {
    auto pipe = std::make_unique<Pipe>();
    return run_client<Config>(*pipe, [&] {
        std::array<std::byte, 4096> sink;  // what the client sent: not needed
        while (pipe->b.recv(sink)) {
        }
        if (in.empty()) return false;
        auto chunk = in.chunk();
        // A chunk the pipe cannot take whole is cut: the rest would arrive later anyway.
        (void)pipe->b.send(as_bytes(chunk));
        return true;
    });
}

Outcome replay_input(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    return in.u8() % 2 == 0 ? replay<tls::TlsConfig>(in) : replay<CbcConfig>(in);
}

// --- seed generation: an mbedTLS server in the same thread, its records recorded ---

struct ServerSetup {
    const int* suites;
    bool p384_key = false;
    bool client_auth = true;
};

class Recorder {
public:
    Recorder(const ServerSetup& setup, Pipe& pipe) : pipe_(pipe), rng_("tls server") {
        const ClientPki& p = client_pki();
        key_ = pki::ec_key(rng_, setup.p384_key ? MBEDTLS_ECP_DP_SECP384R1 : MBEDTLS_ECP_DP_SECP256R1);
        pki::Rng ca_rng("tls server cert");
        cert_ = pki::issue({"CN=server.test,O=p11tls", key_->get(), ca_name, p.ca_key->get(), false, 9}, ca_rng);
        mbedtls_ssl_config_init(&conf_);
        mbedtls_ssl_init(&ssl_);
        mbedtls_x509_crt_init(&own_);
        mbedtls_x509_crt_init(&ca_);
        mbedtls_ssl_ticket_init(&ticket_);
        pki::must(mbedtls_x509_crt_parse_der(&own_, cert_.data(), cert_.size()));
        pki::must(mbedtls_x509_crt_parse_der(&ca_, p.ca_cert.data(), p.ca_cert.size()));
        pki::must(mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                              MBEDTLS_SSL_PRESET_DEFAULT));
        mbedtls_ssl_conf_rng(&conf_, &pki::Rng::f, rng_.p());
        mbedtls_ssl_conf_authmode(&conf_, setup.client_auth ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
        mbedtls_ssl_conf_ca_chain(&conf_, &ca_, nullptr);
        pki::must(mbedtls_ssl_conf_own_cert(&conf_, &own_, key_->get()));
        mbedtls_ssl_conf_ciphersuites(&conf_, setup.suites);
        static const char* alpn[] = {"x-fuzz", nullptr};
        pki::must(mbedtls_ssl_conf_alpn_protocols(&conf_, alpn));
        pki::must(mbedtls_ssl_ticket_setup(&ticket_, &pki::Rng::f, rng_.p(), MBEDTLS_CIPHER_AES_256_GCM, 3600));
        mbedtls_ssl_conf_session_tickets_cb(&conf_, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &ticket_);
        pki::must(mbedtls_ssl_setup(&ssl_, &conf_));
        mbedtls_ssl_set_bio(&ssl_, this, &send, &recv, nullptr);
    }
    ~Recorder() {
        mbedtls_ssl_free(&ssl_);
        mbedtls_ssl_config_free(&conf_);
        mbedtls_ssl_ticket_free(&ticket_);
        mbedtls_x509_crt_free(&own_);
        mbedtls_x509_crt_free(&ca_);
    }
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;

    /// Runs the server until it waits for the client; false when it has nothing more to do.
    bool step() {
        if (ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
            int r = mbedtls_ssl_handshake(&ssl_);
            if (r != 0 && r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
                std::fprintf(stderr, "recording: server handshake failed: -0x%04x\n", static_cast<unsigned>(-r));
                std::abort();
            }
            return true;
        }
        unsigned char buf[256];
        int n = mbedtls_ssl_read(&ssl_, buf, sizeof buf);
        if (n > 0 && !replied_) {
            static constexpr char reply[] = "pong from the server";
            pki::must(mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(reply), sizeof reply - 1) < 0 ? -1 : 0);
            (void)mbedtls_ssl_close_notify(&ssl_);
            replied_ = true;
            return true;
        }
        return !replied_;
    }
    [[nodiscard]] const std::vector<Bytes>& records() const noexcept { return records_; }

private:
    static int send(void* ctx, const unsigned char* b, std::size_t n) {
        auto& self = *static_cast<Recorder*>(ctx);
        auto r = self.pipe_.b.send({reinterpret_cast<const std::byte*>(b), n});
        if (!r) return MBEDTLS_ERR_SSL_WANT_WRITE;
        self.records_.emplace_back(b, b + *r);
        return static_cast<int>(*r);
    }
    static int recv(void* ctx, unsigned char* b, std::size_t n) {
        auto r = static_cast<Recorder*>(ctx)->pipe_.b.recv({reinterpret_cast<std::byte*>(b), n});
        if (!r) return MBEDTLS_ERR_SSL_WANT_READ;
        return static_cast<int>(*r);
    }

    Pipe& pipe_;
    pki::Rng rng_;
    std::unique_ptr<pki::Pk> key_;
    Bytes cert_;
    mbedtls_ssl_config conf_;
    mbedtls_ssl_context ssl_;
    mbedtls_x509_crt own_, ca_;
    mbedtls_ssl_ticket_context ticket_;
    std::vector<Bytes> records_;
    bool replied_ = false;
};

template <class Config>
void record(const std::string& dir, std::string_view name, unsigned config, const ServerSetup& setup) {
    auto pipe = std::make_unique<Pipe>();
    auto server = std::make_unique<Recorder>(setup, *pipe);
    Outcome live = run_client<Config>(*pipe, [&] { return server->step(); });
    if (!live.connected) {
        std::fprintf(stderr, "recording %.*s: the handshake did not complete\n", static_cast<int>(name.size()), name.data());
        std::abort();
    }
    Writer w;
    w.u8(config);
    for (const Bytes& r : server->records()) w.chunk(std::span<const std::uint8_t>(r));
    // The recording must replay: the client is deterministic, so the same flights finish it.
    Outcome again = replay_input(w.data().data(), w.data().size());
    if (!again.connected || again.received != live.received || live.received.empty()) {
        std::fprintf(stderr, "recording %.*s does not replay (the client is not deterministic?)\n",
                     static_cast<int>(name.size()), name.data());
        std::abort();
    }
    write_seed(dir, name, w.data());
    std::fprintf(stderr, "%.*s: %zu server records, %zu bytes of application data\n", static_cast<int>(name.size()),
                 name.data(), server->records().size(), live.received.size());
}

void make_seeds(const std::string& dir) {
    static constexpr int gcm[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0};
    static constexpr int gcm256[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0};
    static constexpr int cbc[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, 0};
    record<tls::TlsConfig>(dir, "aes128gcm-client-auth", 0, {gcm});
    record<tls::TlsConfig>(dir, "aes256gcm-p384-server-no-client-auth", 0, {gcm256, true, false});
    record<CbcConfig>(dir, "aes128cbc-client-auth", 1, {cbc});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)client_token();  // the PKI and the token, before the first run
    seed_mode(make_seeds);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    (void)replay_input(data, size);
    return 0;
}
