/* SPDX-License-Identifier: MIT */
#include "tls_server.h"

#include <string.h>

static int server_entropy(void *ctx, unsigned char *out, size_t len, size_t *olen) {
    unsigned long long *state = ctx;
    for (size_t i = 0; i < len; ++i) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (unsigned char)(*state >> 56);
    }
    *olen = len;
    return 0;
}

int tls_server_setup(tls_server *s, const tls_server_credentials *c, void *bio, mbedtls_ssl_send_t *send,
                     mbedtls_ssl_recv_t *recv) {
    int r;
    mbedtls_ssl_init(&s->ssl);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_x509_crt_init(&s->client_ca);
    mbedtls_pk_init(&s->key);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    s->seed = 0x5e7e5e7eull;
    if ((r = mbedtls_entropy_add_source(&s->entropy, server_entropy, &s->seed, 32, MBEDTLS_ENTROPY_SOURCE_STRONG)) ||
        (r = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, (const unsigned char *)"server", 6)) ||
        (r = mbedtls_x509_crt_parse_der(&s->cert, c->cert, c->cert_len)) ||
        (r = mbedtls_x509_crt_parse_der(&s->client_ca, c->client_ca, c->client_ca_len)) ||
        (r = mbedtls_pk_parse_key(&s->key, c->key, c->key_len, NULL, 0)) ||
        (r = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)))
        return r;
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&s->conf, &s->client_ca, NULL);
    if ((r = mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key)) || (r = mbedtls_ssl_setup(&s->ssl, &s->conf)))
        return r;
    mbedtls_ssl_set_bio(&s->ssl, bio, send, recv, NULL);
    return 0;
}

int tls_server_handshake(tls_server *s) { return mbedtls_ssl_handshake(&s->ssl); }

void tls_server_free(tls_server *s) {
    mbedtls_ssl_free(&s->ssl);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->cert);
    mbedtls_x509_crt_free(&s->client_ca);
    mbedtls_pk_free(&s->key);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
}
