// SPDX-License-Identifier: MIT
// A TLS 1.2 mutual-auth handshake on the target: TlsSession (client key in the board's token)
// against a plain-mbedTLS server in the same image over a MemoryPipe, then data both ways.
#include <array>
#include <cstring>
#include <new>

#include "check.hpp"
#include "device.hpp"

using namespace p11tls;

namespace {

using Pipe = p11tls::Pipe<8 * 1024>;
using End = MemoryPipe<8 * 1024>;
using Session = TlsSession<board::Token, End, board::Entropy, board::TlsConfig>;

// The board's token on its flash store, mounted and loaded before main().
board::Token& tok = *board::open_token().value();
board::Entropy tls_entropy{0x5e55'1011};
Pipe pipe;
tls_server server;

bool want(int r) { return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE; }

struct Outcome {
    Errc client = Errc::would_block;
    int server = MBEDTLS_ERR_SSL_WANT_READ;
};

// Steps the client and the server alternately until both settled (or the client failed).
Outcome handshake(Session& tls) {
    Outcome o;
    for (int i = 0; i < 64; ++i) {
        if (o.client == Errc::would_block) {
            auto r = tls.connect();
            o.client = r ? Errc{} : r.error().code;
        }
        if (want(o.server)) o.server = tls_server_handshake(&server);
        if (o.client != Errc::would_block && !want(o.server)) break;
        if (o.client != Errc::would_block && o.client != Errc{} && i > 8) break;
    }
    return o;
}

// Reads exactly `out.size()` bytes on the server, letting the client flush in between.
int server_read(std::span<unsigned char> out) {
    std::size_t got = 0;
    for (int i = 0; i < 64 && got < out.size(); ++i) {
        int r = mbedtls_ssl_read(&server.ssl, out.data() + got, out.size() - got);
        if (r > 0) got += static_cast<std::size_t>(r);
        else if (!want(r)) return r;
    }
    return static_cast<int>(got);
}

void start_server() {
    tls_server_free(&server);
    pipe.~Pipe();
    new (&pipe) Pipe();
    const tls_server_credentials creds = target::server_credentials();
    int r = tls_server_setup(&server, &creds, &pipe.b, &target::pipe_send<End>, &target::pipe_recv<End>);
    if (r) std::printf("  server setup failed: -0x%04x\n", -r);
}

}  // namespace

TARGET_TEST("provision the board's token with the device key and certificates") {
    auto s = tok.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    REQUIRE_OK(s);
    REQUIRE_OK(target::provision_device(tok, *s));
    REQUIRE_OK(tok.close_session(*s));
}

TARGET_TEST("mutual-auth TLS 1.2 handshake with the key in the token, then data both ways") {
    start_server();
    static Session tls(tok, tls_entropy);
    tls::Params params;
    params.server_name = target::server_name;
    params.non_blocking = true;
    REQUIRE_OK(tls.configure(tls::Credentials{}, params));
    tls.attach(pipe.a);
    Outcome o = handshake(tls);
    if (o.client != Errc{}) std::printf("  client: %s\n", tls.error_message());
    REQUIRE(o.client == Errc{});
    REQUIRE(o.server == 0);
    CHECK(std::strcmp(tls.ciphersuite(), "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256") == 0);
    CHECK(tls.token_signatures() == 1);
    CHECK(mbedtls_ssl_get_verify_result(&server.ssl) == 0);
    const mbedtls_x509_crt* peer = mbedtls_ssl_get_peer_cert(&server.ssl);
    REQUIRE(peer != nullptr);
    CHECK(peer->raw.len == sizeof test_client_cert && std::memcmp(peer->raw.p, test_client_cert, peer->raw.len) == 0);
    std::printf("  %s, max fragment length %u\n", tls.ciphersuite(),
                static_cast<unsigned>(mbedtls_ssl_get_output_max_frag_len(&server.ssl)));

    // Client to server: more than one 4 KiB record.
    static std::array<std::byte, 6000> up;
    for (std::size_t i = 0; i < up.size(); ++i) up[i] = std::byte(i * 7 + 1);
    std::size_t sent = 0;
    static std::array<unsigned char, 6000> got;
    std::size_t received = 0;
    for (int i = 0; i < 16 && (sent < up.size() || received < got.size()); ++i) {
        if (sent < up.size()) {
            auto n = tls.send(std::span(up).subspan(sent));
            if (n) sent += *n;
            else REQUIRE(n.error().code == Errc::would_block);
        }
        int r = server_read(std::span(got).subspan(received));
        REQUIRE(r >= 0);
        received += static_cast<std::size_t>(r);
    }
    REQUIRE(received == up.size());
    CHECK(std::memcmp(got.data(), up.data(), up.size()) == 0);

    // Server to client.
    static constexpr char reply[] = "hello device, this is the server";
    int w = mbedtls_ssl_write(&server.ssl, reinterpret_cast<const unsigned char*>(reply), sizeof reply);
    REQUIRE(w == static_cast<int>(sizeof reply));
    std::array<std::byte, 64> in;
    auto n = tls.recv(in);
    REQUIRE_OK(n);
    REQUIRE(*n == sizeof reply);
    CHECK(std::memcmp(in.data(), reply, sizeof reply) == 0);

    // close_notify reaches the server.
    REQUIRE_OK(tls.close());
    unsigned char tail[8];
    CHECK(mbedtls_ssl_read(&server.ssl, tail, sizeof tail) == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
}

TARGET_TEST("a server certificate for another name is refused before the client authenticates") {
    start_server();
    static Session tls(tok, tls_entropy);
    tls::Params params;
    params.server_name = "other.test";
    params.non_blocking = true;
    REQUIRE_OK(tls.configure(tls::Credentials{}, params));
    tls.attach(pipe.a);
    Outcome o = handshake(tls);
    CHECK(o.client == Errc::tls_hostname_mismatch);
    CHECK(tls.token_signatures() == 0);
    std::printf("  client: %s\n", tls.error_message());
}

int main() {
    board::initialize();
    std::printf("board %s: TLS tests\n", board::name);
    return target::run_all();
}
