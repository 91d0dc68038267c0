/* SPDX-License-Identifier: MIT */
/* m4_report image "plain": the same handshake as the p11tls image, written in the plainest C
 * against mbedTLS: the client key parsed from a buffer, the same mbedTLS configuration calls
 * as TlsSession makes (suites, versions, hashes, curves, certificate profile, max fragment
 * length, tickets on, renegotiation off), the same server, entropy generator and harness.
 * Built a second time with PLAIN_SERVER_ONLY ("server-only" image): the server alone, the
 * baseline both client images are measured from. */
#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "measure.h"
#include "test_pki.h"
#include "tls_server.h"

/* A byte pipe: one ring buffer per direction. */
typedef struct {
    unsigned char buf[8 * 1024];
    size_t head, size;
} ring;
static ring to_server, to_client;

typedef struct {
    ring *rx, *tx;
} pipe_end;
static __attribute__((unused)) pipe_end client_end = {&to_client, &to_server};
static pipe_end server_end = {&to_server, &to_client};

static int pipe_send(void *ctx, const unsigned char *b, size_t n) {
    ring *r = ((pipe_end *)ctx)->tx;
    size_t i = 0;
    for (; i < n && r->size < sizeof r->buf; ++i, ++r->size) r->buf[(r->head + r->size) % sizeof r->buf] = b[i];
    return i ? (int)i : MBEDTLS_ERR_SSL_WANT_WRITE;
}
static int pipe_recv(void *ctx, unsigned char *b, size_t n) {
    ring *r = ((pipe_end *)ctx)->rx;
    size_t i = 0;
    for (; i < n && r->size; ++i, --r->size, r->head = (r->head + 1) % sizeof r->buf) b[i] = r->buf[r->head];
    return i ? (int)i : MBEDTLS_ERR_SSL_WANT_READ;
}

static tls_server server;
static int server_step(void *unused) {
    (void)unused;
    return tls_server_handshake(&server);
}
static __attribute__((unused)) int want(int r) { return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE; }
static int fail(const char *what, int ret) {
    printf("error=%s -0x%04x\n", what, (unsigned)-ret);
    return 1;
}

#ifndef PLAIN_SERVER_ONLY
/* Whether mbedtls_strerror() has texts in this mbedTLS build (the report compares like with
 * like: the p11tls image prints its TlsConfig::error_texts). */
#if defined(MBEDTLS_ERROR_C)
static const int error_texts = 1;
#else
static const int error_texts = 0;
#endif

/* The board's emulator-only generator (SplitMix64), as the p11tls image's entropy. */
static int entropy_source(void *ctx, unsigned char *out, size_t len, size_t *olen) {
    unsigned long long *state = ctx;
    *olen = len;
    while (len) {
        unsigned long long z = (*state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        size_t n = len < sizeof z ? len : sizeof z;
        memcpy(out, &z, n);
        out += n;
        len -= n;
    }
    return 0;
}

static const int suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                             MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 0};
static const int hashes[] = {MBEDTLS_MD_SHA512, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA256, MBEDTLS_MD_NONE};
static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};
static const mbedtls_x509_crt_profile profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
    0xFFFFFFF, MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1) | MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP384R1), 2048};

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_ssl_context ssl;
static mbedtls_ssl_config conf;
static mbedtls_x509_crt ca, own;
static mbedtls_pk_context key;
static unsigned long long seed = 0x5e551011ull;
#endif

int main(void) {
    int r;
    measure_init();
    measure_owner(MEASURE_SERVER);
    const tls_server_credentials creds = {test_server_cert, test_server_key, test_ca_cert, sizeof test_server_cert,
                                          sizeof test_server_key, sizeof test_ca_cert};
    if ((r = tls_server_setup(&server, &creds, &server_end, pipe_send, pipe_recv))) return fail("server setup", r);
    measure_owner(MEASURE_CLIENT);

#ifdef PLAIN_SERVER_ONLY
    measure_owner(MEASURE_SERVER);
    (void)measure_on_aux_stack(server_step, NULL);
    printf("image=server-only\n");
    return 0;
#else
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_config_init(&conf);
    mbedtls_x509_crt_init(&ca);
    mbedtls_x509_crt_init(&own);
    mbedtls_pk_init(&key);
    if ((r = mbedtls_entropy_add_source(&entropy, entropy_source, &seed, 32, MBEDTLS_ENTROPY_SOURCE_STRONG)) ||
        (r = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)"plain", 5)) ||
        (r = mbedtls_x509_crt_parse_der(&ca, test_ca_cert, sizeof test_ca_cert)) ||
        (r = mbedtls_x509_crt_parse_der(&own, test_client_cert, sizeof test_client_cert)) ||
        (r = mbedtls_pk_parse_key(&key, test_client_key, sizeof test_client_key, NULL, 0)) ||
        (r = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)))
        return fail("client setup", r);
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
    mbedtls_ssl_conf_cert_profile(&conf, &profile);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_ciphersuites(&conf, suites);
    mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_sig_hashes(&conf, hashes);
    mbedtls_ssl_conf_curves(&conf, curves);
    mbedtls_ssl_conf_renegotiation(&conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_session_tickets(&conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    if ((r = mbedtls_ssl_conf_max_frag_len(&conf, MBEDTLS_SSL_MAX_FRAG_LEN_4096)) ||
        (r = mbedtls_ssl_conf_own_cert(&conf, &own, &key)) || (r = mbedtls_ssl_setup(&ssl, &conf)) ||
        (r = mbedtls_ssl_set_hostname(&ssl, "server.test")))
        return fail("client setup", r);
    mbedtls_ssl_set_bio(&ssl, &client_end, pipe_send, pipe_recv, NULL);

    measure_stack_paint();
    uint32_t ticks = 0;
    int client = MBEDTLS_ERR_SSL_WANT_READ, srv = MBEDTLS_ERR_SSL_WANT_READ, steps = 0;
    for (; steps < 64 && (want(client) || want(srv)); ++steps) {
        if (want(client)) {
            const uint32_t t0 = measure_ticks();
            client = mbedtls_ssl_handshake(&ssl);
            ticks += measure_ticks() - t0;
        }
        if (want(srv)) {
            measure_owner(MEASURE_SERVER);
            srv = measure_on_aux_stack(server_step, NULL);
            measure_owner(MEASURE_CLIENT);
        }
        if (client && !want(client)) break;
    }
    const size_t stack = measure_stack_used();
    if (client) return fail("client handshake", client);
    if (srv) return fail("server handshake", srv);
    const size_t heap_peak = measure_heap_peak(MEASURE_CLIENT), heap_after = measure_heap_now(MEASURE_CLIENT);

    static const char up[] = "telemetry from the device", down[] = "command from the server";
    unsigned char in[64];
    int got = 0;
    if (mbedtls_ssl_write(&ssl, (const unsigned char *)up, sizeof up) != sizeof up) return fail("write", 0);
    for (int i = 0; i < 8 && got <= 0; ++i) got = mbedtls_ssl_read(&server.ssl, in, sizeof in);
    if (got != sizeof up || memcmp(in, up, sizeof up)) return fail("server read", got);
    if (mbedtls_ssl_write(&server.ssl, (const unsigned char *)down, sizeof down) != sizeof down)
        return fail("server write", 0);
    got = mbedtls_ssl_read(&ssl, in, sizeof in);
    if (got != sizeof down || memcmp(in, down, sizeof down)) return fail("read", got);

    printf("image=plain\nciphersuite=%s\nhandshake_steps=%d\nhandshake_insns=%lu\nheap_peak=%lu\n"
           "heap_after_handshake=%lu\nstack_peak=%lu\nerror_texts=%d\n",
           mbedtls_ssl_get_ciphersuite(&ssl), steps, (unsigned long)ticks * MEASURE_INSNS_PER_TICK,
           (unsigned long)heap_peak, (unsigned long)heap_after, (unsigned long)stack, error_texts);
    return 0;
#endif
}
