/* SPDX-License-Identifier: MIT */
/* The TLS 1.2 server the target images shake hands with: plain mbedTLS in C, non-blocking over
 * caller-supplied send/recv callbacks, client certificate required. The same code serves the
 * target tests (against TlsSession) and both images of tools/m4_report (TlsSession, plain
 * mbedTLS client), so it costs the same in each. Its randomness is a fixed-seed generator:
 * emulator tests only. */
#ifndef P11TLS_TEST_TARGET_TLS_SERVER_H
#define P11TLS_TEST_TARGET_TLS_SERVER_H

#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert, client_ca;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    unsigned long long seed;
} tls_server;

typedef struct {
    const unsigned char *cert, *key, *client_ca; /* DER */
    size_t cert_len, key_len, client_ca_len;
} tls_server_credentials;

/* 0 or an mbedTLS error code. */
int tls_server_setup(tls_server *s, const tls_server_credentials *c, void *bio, mbedtls_ssl_send_t *send,
                     mbedtls_ssl_recv_t *recv);
/* One handshake call: 0 when done, MBEDTLS_ERR_SSL_WANT_READ/WRITE, or an error. */
int tls_server_handshake(tls_server *s);
void tls_server_free(tls_server *s);

#ifdef __cplusplus
}
#endif

#endif
