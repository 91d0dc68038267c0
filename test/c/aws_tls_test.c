/* SPDX-License-Identifier: MIT */
/*
 * aws_tls_test: a client written only against p11tls/c/aws_tls.h, the way FreeRTOS firmware
 * uses it: TCP over plain POSIX sockets behind FreeRTOS-style callbacks (0 = nothing yet,
 * negative = failure), TLS_Init / TLS_Connect / TLS_Send / TLS_Recv / TLS_Cleanup.
 *
 *   aws_tls_test MODE CA_PEM SERVER_NAME [PORT]
 *     ok         GET / from `openssl s_server -www` on 127.0.0.1:PORT, expect "HTTP/1.0 200 ok";
 *                the callbacks stutter (every other call returns 0, at most 700 bytes a call)
 *     untrusted  CA_PEM did not sign the server: TLS_Connect fails, message says "not trusted"
 *     no-key     no PIN, so the token's key is not usable: TLS_Connect fails with
 *                TLS_ERROR_NO_PRIVATE_KEY and names the key's label
 *     bad-pin    P11TLS_PIN is wrong: TLS_Init fails with P11TLS_TLS_ERROR_TOKEN (no server)
 *     callbacks  fake networks (no server): a send callback's negative value comes back from
 *                TLS_Connect unchanged, too many bytes is P11TLS_TLS_ERROR_TRANSPORT, a
 *                callback that only returns 0 ends in P11TLS_TLS_ERROR_TIMEOUT after 10 s
 * The token store comes from P11TLS_STORE, the PIN from P11TLS_PIN. Exit 0 when the
 * expectation holds; every line printed starts with "aws_tls_test:".
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <p11tls/c/aws_tls.h>

static int failures = 0;

#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        if (!(cond)) {                                                   \
            printf("aws_tls_test: FAIL line %d: %s: ", __LINE__, #cond); \
            printf(__VA_ARGS__);                                         \
            printf("\n");                                                \
            ++failures;                                                  \
        }                                                                \
    } while (0)

typedef struct {
    int fd;
    int stutter;               /* every other call returns 0 at once, others move <= 700 bytes */
    unsigned long calls;       /* callback calls */
    unsigned long empty_reads; /* recv callback calls that returned 0 */
    unsigned long empty_sends; /* send callback calls that returned 0 */
} Socket;

/* FreeRTOS semantics: > 0 bytes, 0 nothing within the socket timeout, < 0 failure. */
static BaseType_t net_recv(void *ctx, unsigned char *buf, size_t len) {
    Socket *s = (Socket *)ctx;
    if (s->stutter) {
        if (++s->calls % 2 == 1) {
            ++s->empty_reads;
            return 0;
        }
        if (len > 700) len = 700;
    }
    ssize_t n = recv(s->fd, buf, len, 0);
    if (n > 0) return (BaseType_t)n;
    if (n == 0) return -ECONNRESET; /* end of stream: the peer is gone */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        ++s->empty_reads;
        return 0;
    }
    return -(BaseType_t)errno;
}

static BaseType_t net_send(void *ctx, const unsigned char *buf, size_t len) {
    Socket *s = (Socket *)ctx;
    if (s->stutter) {
        if (++s->calls % 2 == 1) {
            ++s->empty_sends;
            return 0;
        }
        if (len > 700) len = 700;
    }
    ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0) return (BaseType_t)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -(BaseType_t)errno;
}

static int tcp_connect(unsigned port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    /* A short receive timeout, so the recv callback also reports "nothing yet" (0). */
    struct timeval tv = {0, 200 * 1000};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Reads a file and appends a NUL; *len counts the NUL, as FreeRTOS passes PEM. */
static char *read_pem(const char *path, uint32_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    *len = (uint32_t)(n + 1);
    return buf;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Fake networks for the callbacks mode: how callback results reach the caller. */
static long fake_send_result;
static BaseType_t fake_send(void *ctx, const unsigned char *buf, size_t len) {
    (void)ctx;
    (void)buf;
    return fake_send_result == 1 ? (BaseType_t)len + 1 : fake_send_result;
}
static BaseType_t fake_recv(void *ctx, unsigned char *buf, size_t len) {
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

static void check_callback_results(TLSParams_t p) {
    struct {
        long send_result; /* 1: more bytes than asked */
        BaseType_t expected;
        const char *says;
    } cases[] = {
        {-1234, -1234, "send callback failed with -1234"},
        {1, P11TLS_TLS_ERROR_TRANSPORT, "-byte buffer"},
        {0, P11TLS_TLS_ERROR_TIMEOUT, "timed out"},
    };
    p.pxNetworkSend = fake_send;
    p.pxNetworkRecv = fake_recv;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        void *tls = NULL;
        fake_send_result = cases[i].send_result;
        BaseType_t r = TLS_Init(&tls, &p);
        CHECK(r == pdFREERTOS_ERRNO_NONE, "TLS_Init = %ld: %s", r, TLS_ErrorMessage(tls));
        double start = now_s();
        r = TLS_Connect(tls);
        double took = now_s() - start;
        printf("aws_tls_test: send callback returning %ld: TLS_Connect = %ld after %.1f s: %s\n", cases[i].send_result,
               r, took, TLS_ErrorMessage(tls));
        CHECK(r == cases[i].expected, "TLS_Connect = %ld, expected %ld", r, cases[i].expected);
        CHECK(strstr(TLS_ErrorMessage(tls), cases[i].says) != NULL, "message '%s'", TLS_ErrorMessage(tls));
        if (cases[i].send_result == 0) CHECK(took > 9 && took < 30, "gave up after %.1f s, expected 10 s", took);
        TLS_Cleanup(tls);
    }
}

/* Argument checks that need neither token nor server. */
static void check_arguments(void) {
    void *ctx = (void *)1;
    BaseType_t r = TLS_Init(&ctx, NULL);
    CHECK(r == P11TLS_TLS_ERROR_INVALID_ARGUMENT, "TLS_Init(NULL params) = %ld", r);
    CHECK(ctx != NULL && strstr(TLS_ErrorMessage(ctx), "pxParams") != NULL, "message '%s'", TLS_ErrorMessage(ctx));
    CHECK(TLS_Connect(ctx) == P11TLS_TLS_ERROR_INVALID_ARGUMENT, "TLS_Connect after a failed TLS_Init");
    TLS_Cleanup(ctx);

    TLSParams_t p;
    memset(&p, 0, sizeof p);
    p.ulSize = sizeof p;
    p.pxNetworkRecv = net_recv;
    p.pxNetworkSend = net_send;
    ctx = NULL;
    r = TLS_Init(&ctx, &p);
    CHECK(r == P11TLS_TLS_ERROR_INVALID_ARGUMENT, "TLS_Init without pcDestination = %ld", r);
    CHECK(strstr(TLS_ErrorMessage(ctx), "pcDestination") != NULL, "message '%s'", TLS_ErrorMessage(ctx));
    TLS_Cleanup(ctx);

    CHECK(TLS_Init(NULL, &p) == P11TLS_TLS_ERROR_INVALID_ARGUMENT, "TLS_Init(NULL context pointer)");
    CHECK(TLS_Connect(NULL) == P11TLS_TLS_ERROR_INVALID_ARGUMENT, "TLS_Connect(NULL)");
    CHECK(TLS_Recv(NULL, NULL, 0) == P11TLS_TLS_ERROR_INVALID_ARGUMENT, "TLS_Recv(NULL)");
    CHECK(TLS_ErrorMessage(NULL) != NULL, "TLS_ErrorMessage(NULL)");
    TLS_Cleanup(NULL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        printf("aws_tls_test: usage: aws_tls_test ok|untrusted|no-key|bad-pin|callbacks CA_PEM SERVER_NAME [PORT]\n");
        return 2;
    }
    const char *mode = argv[1];
    unsigned port = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 0;
    int ok_mode = strcmp(mode, "ok") == 0, untrusted = strcmp(mode, "untrusted") == 0;
    int no_key = strcmp(mode, "no-key") == 0, bad_pin = strcmp(mode, "bad-pin") == 0;
    int callbacks = strcmp(mode, "callbacks") == 0;
    if (!ok_mode && !untrusted && !no_key && !bad_pin && !callbacks) {
        printf("aws_tls_test: unknown mode '%s'\n", mode);
        return 2;
    }
    if (!bad_pin && !callbacks && (port == 0 || port > 65535)) {
        printf("aws_tls_test: mode %s needs a PORT\n", mode);
        return 2;
    }
    if (ok_mode) check_arguments();

    uint32_t ca_len = 0;
    char *ca = read_pem(argv[2], &ca_len);
    if (!ca) {
        printf("aws_tls_test: cannot read %s: %s\n", argv[2], strerror(errno));
        return 1;
    }

    Socket sock = {-1, 0, 0, 0, 0};
    sock.stutter = ok_mode;
    const char *alpn[] = {"x-amzn-mqtt-ca", "http/1.1"};
    TLSParams_t p;
    memset(&p, 0, sizeof p);
    p.ulSize = sizeof p;
    p.pcDestination = argv[3];
    p.pcServerCertificate = ca;
    p.ulServerCertificateLength = ca_len;
    p.ppcAlpnProtocols = alpn;
    p.ulAlpnProtocolsCount = 2;
    p.pvCallerContext = &sock;
    p.pxNetworkRecv = net_recv;
    p.pxNetworkSend = net_send;

    if (callbacks) {
        check_callback_results(p);
        free(ca);
        if (failures == 0) printf("aws_tls_test: %s passed\n", mode);
        return failures ? 1 : 0;
    }

    void *tls = NULL;
    BaseType_t r = TLS_Init(&tls, &p);
    free(ca); /* TLS_Init copied what it needs */
    if (bad_pin) {
        printf("aws_tls_test: TLS_Init = %ld: %s\n", r, TLS_ErrorMessage(tls));
        CHECK(r == P11TLS_TLS_ERROR_TOKEN, "TLS_Init with a wrong PIN = %ld", r);
        CHECK(strstr(TLS_ErrorMessage(tls), "PIN") != NULL, "message '%s'", TLS_ErrorMessage(tls));
        TLS_Cleanup(tls);
        return failures ? 1 : 0;
    }
    CHECK(r == pdFREERTOS_ERRNO_NONE, "TLS_Init = %ld: %s", r, TLS_ErrorMessage(tls));
    if (r != pdFREERTOS_ERRNO_NONE) {
        TLS_Cleanup(tls);
        return 1;
    }
    unsigned char buf[4096];
    if (ok_mode) {
        r = TLS_Recv(tls, buf, sizeof buf);
        CHECK(r == P11TLS_TLS_ERROR_NOT_CONNECTED, "TLS_Recv before TLS_Connect = %ld", r);
    }

    sock.fd = tcp_connect(port);
    if (sock.fd < 0) {
        printf("aws_tls_test: cannot connect to 127.0.0.1:%u: %s\n", port, strerror(errno));
        TLS_Cleanup(tls);
        return 1;
    }

    r = TLS_Connect(tls);
    printf("aws_tls_test: TLS_Connect = %ld%s%s\n", r, r ? ": " : "", TLS_ErrorMessage(tls));
    if (untrusted) {
        CHECK(r == TLS_ERROR_HANDSHAKE_FAILED, "TLS_Connect with the wrong root CA = %ld", r);
        CHECK(strstr(TLS_ErrorMessage(tls), "not trusted") != NULL, "message '%s'", TLS_ErrorMessage(tls));
        CHECK(TLS_Send(tls, (const unsigned char *)"x", 1) == r, "TLS_Send after a failed TLS_Connect");
    } else if (no_key) {
        CHECK(r == TLS_ERROR_NO_PRIVATE_KEY, "TLS_Connect without a usable key = %ld", r);
        CHECK(strstr(TLS_ErrorMessage(tls), "Device Priv TLS Key") != NULL, "message '%s'", TLS_ErrorMessage(tls));
    } else {
        CHECK(r == pdFREERTOS_ERRNO_NONE, "TLS_Connect = %ld", r);
        CHECK(TLS_ErrorMessage(tls)[0] == '\0', "message after success '%s'", TLS_ErrorMessage(tls));
    }
    if (!ok_mode || r != pdFREERTOS_ERRNO_NONE) {
        TLS_Cleanup(tls);
        close(sock.fd);
        return failures ? 1 : 0;
    }

    /* The server sends nothing before the request: "nothing yet" is 0, not an error. */
    unsigned long timeouts_before = sock.empty_reads;
    sock.stutter = 0;
    r = TLS_Recv(tls, buf, sizeof buf);
    CHECK(r == 0, "TLS_Recv while the server is silent = %ld: %s", r, TLS_ErrorMessage(tls));
    CHECK(sock.empty_reads > timeouts_before, "the recv callback should have timed out");
    sock.stutter = 1;

    static const char request[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
    r = TLS_Send(tls, (const unsigned char *)request, sizeof request - 1);
    CHECK(r == (BaseType_t)(sizeof request - 1), "TLS_Send = %ld: %s", r, TLS_ErrorMessage(tls));

    /* Read until the server ends the session; 0 means "nothing yet", as in FreeRTOS. */
    static char response[256 * 1024];
    size_t have = 0;
    unsigned long zero_returns = 0;
    double deadline = now_s() + 30;
    for (;;) {
        r = TLS_Recv(tls, buf, sizeof buf);
        if (r < 0) break;
        if (r == 0) {
            ++zero_returns;
            if (now_s() > deadline) break;
            continue;
        }
        size_t n = (size_t)r;
        if (n > sizeof response - 1 - have) n = sizeof response - 1 - have;
        memcpy(response + have, buf, n);
        have += n;
    }
    response[have] = '\0';
    printf("aws_tls_test: received %zu bytes; TLS_Recv returned 0 %lu times; callbacks returned 0 %lu (recv) and "
           "%lu (send) times; ended with %ld: %s\n",
           have, zero_returns, sock.empty_reads, sock.empty_sends, r, TLS_ErrorMessage(tls));
    CHECK(r == P11TLS_TLS_ERROR_CLOSED, "TLS_Recv at the end = %ld (expected P11TLS_TLS_ERROR_CLOSED)", r);
    CHECK(strstr(response, "HTTP/1.0 200 ok") != NULL, "no 'HTTP/1.0 200 ok' in the response: %.200s", response);
    CHECK(TLS_Recv(tls, buf, sizeof buf) == P11TLS_TLS_ERROR_CLOSED, "TLS_Recv after the close");
    CHECK(TLS_Send(tls, (const unsigned char *)"x", 1) == P11TLS_TLS_ERROR_CLOSED, "TLS_Send after the close");

    TLS_Cleanup(tls);
    close(sock.fd);
    if (failures == 0) printf("aws_tls_test: %s passed\n", mode);
    return failures ? 1 : 0;
}
