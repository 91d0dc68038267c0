// SPDX-License-Identifier: MIT
// m4_report image "p11tls": TlsSession with the client key in the board's SoftToken shakes hands
// with the in-image server (test/target/tls_server.c) over a MemoryPipe, then exchanges data.
// Prints name=value lines: the handshake's instructions (client steps only), peak heap and
// stack. Built a second time with P11TLS_REPORT_TOKEN_ONLY ("p11tls-token" image): the same
// provisioning and token signature without TlsSession, so the report can tell the TLS layer's
// size from the token's.
//
// Like with like: the "p11tls" image's TlsConfig has the features plain_client.c has, and no
// more: no session resumption on reconnect, no ALPN, DER certificates only (it connects once
// and parses DER with mbedtls_x509_crt_parse_der). Built a third time with P11TLS_REPORT_FULL
// ("p11tls-full" image): the board's own TlsConfig, every optional feature on, so the report
// also shows what those features cost.
#include <array>
#include <cstdio>
#include <cstring>

#include "device.hpp"
#include "measure.h"

using namespace p11tls;

namespace {

using End = MemoryPipe<8 * 1024>;
#ifdef P11TLS_REPORT_FULL
using ClientConfig = board::TlsConfig;
#else
struct ClientConfig : board::TlsConfig {
    static constexpr bool resumption = false;
    static constexpr bool alpn = false;
    static constexpr bool pem_input = false;
};
#endif
using Session = TlsSession<board::Token, End, board::Entropy, ClientConfig>;

board::Token& device_token = *board::open_token().value();
board::Entropy tls_entropy{0x5e55'1011};
p11tls::Pipe<8 * 1024> pipe;
tls_server server;
#ifndef P11TLS_REPORT_TOKEN_ONLY
Session session(device_token, tls_entropy);  // namespace scope: no atexit registration at run time
#endif

int server_step(void*) { return tls_server_handshake(&server); }
[[maybe_unused]] bool want(int r) { return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE; }

int fail(const char* what) {
    std::printf("error=%s\n", what);
    return 1;
}

}  // namespace

int main() {
    board::initialize();
    measure_init();
    measure_owner(MEASURE_SERVER);
    const tls_server_credentials creds = target::server_credentials();
    if (tls_server_setup(&server, &creds, &pipe.b, &target::pipe_send<End>, &target::pipe_recv<End>))
        return fail("server setup");
    measure_owner(MEASURE_CLIENT);

    // Factory provisioning (not measured).
    auto s = device_token.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    if (!s || !target::provision_device(device_token, *s) || !device_token.close_session(*s))
        return fail("provisioning");

#ifdef P11TLS_REPORT_TOKEN_ONLY
    // What TlsSession asks of the token: find the key and certificates, read them, sign.
    auto rs = device_token.open_session(CKF_SERIAL_SESSION);
    if (!rs) return fail("session");
    std::array<CK_OBJECT_HANDLE, 2> h;
    token::Template<2, 64> q;
    q.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_LABEL, "Device Priv TLS Key");
    if (!device_token.find_init(*rs, q.view())) return fail("find");
    auto n = device_token.find(*rs, h);
    (void)device_token.find_final(*rs);
    if (!n || *n != 1) return fail("find");
    CK_KEY_TYPE type = 0;
    std::array<std::byte, 16> params;
    CK_ATTRIBUTE a[] = {{CKA_KEY_TYPE, &type, sizeof type}, {CKA_EC_PARAMS, params.data(), params.size()}};
    if (!device_token.get_attributes(*rs, h[0], a) || type != CKK_EC) return fail("attributes");
    CK_MECHANISM m{CKM_ECDSA, nullptr, 0};
    std::array<std::byte, 32> digest{};
    std::array<std::byte, 64> sig;
    if (!device_token.sign_init(*rs, m, h[0]) || !device_token.sign(*rs, digest, sig)) return fail("sign");
    (void)device_token.close_session(*rs);
    measure_owner(MEASURE_SERVER);
    (void)measure_on_aux_stack(server_step, nullptr);
    std::printf("image=p11tls-token\n");
    return 0;
#else
    measure_heap_reset_peak(MEASURE_CLIENT);
    tls::Params params;
    params.server_name = target::server_name;
    params.non_blocking = true;
    if (auto r = session.configure(tls::Credentials{}, params); !r) return fail(session.error_message());
    session.attach(pipe.a);

    measure_stack_paint();
    std::uint32_t ticks = 0;
    int client = MBEDTLS_ERR_SSL_WANT_READ, srv = MBEDTLS_ERR_SSL_WANT_READ, steps = 0;
    for (; steps < 64 && (want(client) || want(srv)); ++steps) {
        if (want(client)) {
            const std::uint32_t t0 = measure_ticks();
            auto r = session.connect();
            ticks += measure_ticks() - t0;
            client = r ? 0 : r.error().code == Errc::would_block ? MBEDTLS_ERR_SSL_WANT_READ : -1;
        }
        if (want(srv)) {
            measure_owner(MEASURE_SERVER);
            srv = measure_on_aux_stack(server_step, nullptr);
            measure_owner(MEASURE_CLIENT);
        }
        if (client < 0 && !want(client)) break;
    }
    const std::size_t stack = measure_stack_used();
    if (client != 0 || srv != 0) return fail(session.error_message());
    const std::size_t heap_peak = measure_heap_peak(MEASURE_CLIENT), heap_after = measure_heap_now(MEASURE_CLIENT);

    // Data both ways.
    static constexpr char up[] = "telemetry from the device", down[] = "command from the server";
    if (!session.send(std::as_bytes(std::span(up)))) return fail("send");
    unsigned char in[64];
    int got = 0;
    for (int i = 0; i < 8 && got <= 0; ++i) got = mbedtls_ssl_read(&server.ssl, in, sizeof in);
    if (got != sizeof up || std::memcmp(in, up, sizeof up) != 0) return fail("server read");
    if (mbedtls_ssl_write(&server.ssl, reinterpret_cast<const unsigned char*>(down), sizeof down) != sizeof down)
        return fail("server write");
    std::array<std::byte, 64> back;
    auto n = session.recv(back);
    if (!n || *n != sizeof down || std::memcmp(back.data(), down, sizeof down) != 0) return fail("recv");

    // The features are in the report from the image's symbols; the harness prints the same bytes
    // in both p11tls images.
#ifdef P11TLS_REPORT_FULL
#define P11TLS_REPORT_IMAGE "p11tls-full"
#else
#define P11TLS_REPORT_IMAGE "p11tls"
#endif
    std::printf("image=" P11TLS_REPORT_IMAGE "\nciphersuite=%s\nhandshake_steps=%d\nhandshake_insns=%lu\nheap_peak=%lu\n"
                "heap_after_handshake=%lu\nstack_peak=%lu\ntoken_signatures=%lu\nerror_texts=%d\n",
                session.ciphersuite(), steps, static_cast<unsigned long>(ticks) * MEASURE_INSNS_PER_TICK,
                static_cast<unsigned long>(heap_peak), static_cast<unsigned long>(heap_after),
                static_cast<unsigned long>(stack), static_cast<unsigned long>(session.token_signatures()),
                ClientConfig::error_texts ? 1 : 0);
    return 0;
#endif
}
