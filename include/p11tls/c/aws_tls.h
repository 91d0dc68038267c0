/* SPDX-License-Identifier: MIT */
#pragma once
/*
 * p11tls's C interface with the names and semantics of Amazon FreeRTOS's TLS layer
 * (aws_tls.h / iot_tls.h): existing firmware and secure-sockets ports use it unchanged.
 * Plain C99; the implementation is TlsSession over the board's token (host board:
 * static library `p11tls-aws-tls`, Meson dependency `p11tls_aws_tls_dep`).
 *
 *   TLSParams_t p = {0};
 *   p.ulSize = sizeof p;
 *   p.pcDestination = "broker.example.com";          SNI and certificate name check
 *   p.pcServerCertificate = root_ca_pem;             PEM, length counts the NUL
 *   p.ulServerCertificateLength = sizeof root_ca_pem;
 *   p.pvCallerContext = &sock; p.pxNetworkRecv = my_recv; p.pxNetworkSend = my_send;
 *   void *tls = NULL;
 *   if (TLS_Init(&tls, &p) == 0 && TLS_Connect(tls) == 0) { TLS_Send(...); TLS_Recv(...); }
 *   else puts(TLS_ErrorMessage(tls));
 *   TLS_Cleanup(tls);                                 always, also after a failed TLS_Init
 *
 * Client credentials come from the token, as in FreeRTOS: the private key labelled
 * "Device Priv TLS Key" (it never leaves the token; the handshake signature is a token
 * operation) and the certificate labelled "Device Cert". When either is missing the handshake
 * is still attempted without a client certificate (for servers that do not ask for one); if
 * it then fails, TLS_Connect says which credential was missing.
 *
 * Token (host board): opened once, on the first TLS_Init, from the store directory
 * ($P11TLS_STORE, else $XDG_DATA_HOME/p11tls/token, else ~/.local/share/p11tls/token). When
 * the environment variable P11TLS_PIN is set, the user is logged in with it once per process
 * (a wrong PIN is reported by every later TLS_Init and is not retried, so it cannot lock the
 * PIN). Without P11TLS_PIN only a token that requires no login can provide the private key.
 *
 * The server is always verified: its chain against the root CA, its name against
 * pcDestination. Nothing is printed; TLS_ErrorMessage() gives one line about the last failure.
 *
 * Return values (BaseType_t):
 *   function      success                 no data / not yet         failure (negative)
 *   TLS_Init      0 (pdFREERTOS_ERRNO_NONE)                          see the codes below
 *   TLS_Connect   0                                                  see the codes below
 *   TLS_Recv      bytes read (> 0)        0: nothing arrived yet    P11TLS_TLS_ERROR_CLOSED once
 *                                                                   the server closed; others
 *   TLS_Send      xMsgLength (all sent)   -                         see the codes below
 *
 *   TLS_ERROR_HANDSHAKE_FAILED  the handshake failed: server not trusted, name mismatch, no
 *                               common cipher suite, alert from the server, bad configuration
 *   TLS_ERROR_RNG               the entropy source failed (no TLS without fresh randomness)
 *   TLS_ERROR_SIGN              the token could not sign the handshake
 *   TLS_ERROR_NO_PRIVATE_KEY    the server refused us and the token holds no usable key
 *   TLS_ERROR_NO_CERTIFICATE    the server refused us and the token holds no client certificate
 *   P11TLS_TLS_ERROR_*          p11tls extensions, below
 *   any other negative value    a network callback's own negative return value, passed
 *                               through unchanged (as FreeRTOS does)
 * A failure of TLS_Connect, TLS_Send or TLS_Recv ends the connection: later calls on the
 * context return the same code (TLS_Cleanup it). Not so P11TLS_TLS_ERROR_INVALID_ARGUMENT for
 * a NULL buffer, and P11TLS_TLS_ERROR_NOT_CONNECTED for TLS_Send/TLS_Recv before TLS_Connect.
 *
 * Network callbacks (pxNetworkRecv / pxNetworkSend), FreeRTOS semantics:
 *   > 0   bytes received / sent (at most the length asked for)
 *   0     nothing received / sent yet (a socket timeout or a full send buffer); also the
 *         values of mbedTLS's MBEDTLS_ERR_SSL_WANT_READ and _WANT_WRITE, which some ports return
 *   < 0   the network failed; the value is passed through to the caller of TLS_*
 * A callback may block (a socket receive timeout) or return 0 at once. TLS_Connect and
 * TLS_Send call again while it returns 0 and give up with P11TLS_TLS_ERROR_TIMEOUT after 10 s
 * without any byte moving; TLS_Recv returns 0 instead (the caller polls again).
 *
 * Differences from FreeRTOS's implementation, all toward stricter or clearer behaviour:
 *   - pcDestination is required (FreeRTOS skipped SNI and the name check when it was NULL).
 *   - pcServerCertificate NULL uses the token's certificate labelled "Root Cert" (FreeRTOS
 *     used its built-in AWS roots). PEM with or without the NUL counted, or DER.
 *   - TLSParams_t and the strings it points to are copied by TLS_Init; they need not outlive it.
 *   - ppcAlpnProtocols: ulAlpnProtocolsCount entries (at most 4), or up to a NULL entry.
 *   - TLS_Init loads the CA, key and certificate (FreeRTOS did so in TLS_Connect) and fails
 *     only with negative codes (FreeRTOS's returned positive CKR_ values on some failures).
 *   - A callback returning 0 during the handshake is waited on (it failed FreeRTOS's handshake).
 *   - TLS_Send takes all bytes or fails: once mbedTLS has encrypted a record it must be sent,
 *     so a short count could never be retried correctly.
 * As in FreeRTOS, TLS_Recv returns the value of MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY
 * (P11TLS_TLS_ERROR_CLOSED) on the server's close_notify; 0 never means "closed".
 *
 * BaseType_t: defined here as `long` (FreeRTOS's portBASE_TYPE on common ports, and the type
 * the library is built with) unless FreeRTOS.h was included first (INC_FREERTOS_H) or the
 * includer defines P11TLS_HAVE_FREERTOS_TYPES to say it provides BaseType_t itself, which then
 * must be `long`.
 *
 * Thread safety: one context is used by one thread at a time; different contexts may run
 * concurrently (the token serialises its own operations).
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if !defined(P11TLS_HAVE_FREERTOS_TYPES) && !defined(INC_FREERTOS_H)
typedef long BaseType_t;
#endif

#ifndef pdFREERTOS_ERRNO_NONE
#define pdFREERTOS_ERRNO_NONE 0 /* success */
#endif

/* FreeRTOS's error codes (the last two since FreeRTOS TLS V1.3). */
#ifndef TLS_ERROR_HANDSHAKE_FAILED
#define TLS_ERROR_HANDSHAKE_FAILED (-2001)
#endif
#ifndef TLS_ERROR_RNG
#define TLS_ERROR_RNG (-2002)
#endif
#ifndef TLS_ERROR_SIGN
#define TLS_ERROR_SIGN (-2003)
#endif
#ifndef TLS_ERROR_NO_PRIVATE_KEY
#define TLS_ERROR_NO_PRIVATE_KEY (-2004)
#endif
#ifndef TLS_ERROR_NO_CERTIFICATE
#define TLS_ERROR_NO_CERTIFICATE (-2005)
#endif

/* p11tls extensions. */
/** A NULL or inconsistent argument (ulSize, missing pcDestination or callback, bad CA data). */
#define P11TLS_TLS_ERROR_INVALID_ARGUMENT (-2100)
/** The context could not be allocated (*ppvContext stays NULL). */
#define P11TLS_TLS_ERROR_NO_MEMORY (-2101)
/** The token cannot be opened, or logging in with P11TLS_PIN failed. */
#define P11TLS_TLS_ERROR_TOKEN (-2102)
/** TLS_Send or TLS_Recv without a successful TLS_Connect, or after the connection ended. */
#define P11TLS_TLS_ERROR_NOT_CONNECTED (-2103)
/** The callbacks moved no byte for 10 s during TLS_Connect or TLS_Send. */
#define P11TLS_TLS_ERROR_TIMEOUT (-2104)
/** A callback returned more bytes than it was asked for. */
#define P11TLS_TLS_ERROR_TRANSPORT (-2105)
/** The server closed the session (close_notify); equals MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY. */
#define P11TLS_TLS_ERROR_CLOSED (-0x7880)

/** Receives up to xReceiveLength bytes: > 0 received, 0 nothing yet, < 0 network failure. */
typedef BaseType_t (*NetworkRecv_t)(void *pvCallerContext, unsigned char *pucReceiveBuffer, size_t xReceiveLength);

/** Sends up to xDataLength bytes: > 0 sent, 0 nothing sent yet, < 0 network failure. */
typedef BaseType_t (*NetworkSend_t)(void *pvCallerContext, const unsigned char *pucData, size_t xDataLength);

/** Parameters of one connection. Field order is FreeRTOS's (binary compatible with it). */
typedef struct xTLS_PARAMS {
    uint32_t ulSize;                    /**< sizeof(TLSParams_t); 0 is accepted (FreeRTOS never read it) */
    const char *pcDestination;          /**< server name: sent as SNI and checked against the certificate */
    const char *pcServerCertificate;    /**< trusted root CA(s), PEM (or DER); NULL: token's "Root Cert" */
    uint32_t ulServerCertificateLength; /**< bytes; for PEM the NUL terminator may be counted */
    const char **ppcAlpnProtocols;      /**< ALPN protocols offered, e.g. {"x-amzn-mqtt-ca"}; NULL for none */
    uint32_t ulAlpnProtocolsCount;      /**< entries in ppcAlpnProtocols (at most 4) */
    NetworkRecv_t pxNetworkRecv;        /**< required */
    NetworkSend_t pxNetworkSend;        /**< required */
    void *pvCallerContext;              /**< passed to both callbacks */
} TLSParams_t;

/**
 * Creates a context: checks the parameters, opens the token, loads the root CA, the client
 * key reference and certificate. No byte is sent. *ppvContext is set whenever a context was
 * allocated, also on failure (TLS_ErrorMessage explains it); TLS_Cleanup it in every case.
 */
BaseType_t TLS_Init(void **ppvContext, TLSParams_t *pxParams);

/** Runs the TLS 1.2 handshake over the callbacks. 0 when connected. */
BaseType_t TLS_Connect(void *pvContext);

/**
 * Reads decrypted data: the number of bytes (> 0), 0 when none has arrived yet, negative on
 * failure; P11TLS_TLS_ERROR_CLOSED once the server closed the session.
 */
BaseType_t TLS_Recv(void *pvContext, unsigned char *pucReadBuffer, size_t xReadLength);

/** Encrypts and sends all xMsgLength bytes: returns xMsgLength, or a negative error. */
BaseType_t TLS_Send(void *pvContext, const unsigned char *pucMsg, size_t xMsgLength);

/**
 * Sends close_notify if connected (one attempt) and frees the context; all key material in
 * it is zeroized. NULL is ignored.
 */
void TLS_Cleanup(void *pvContext);

/**
 * p11tls extension: one line for people about the context's last failure ("" after success).
 * Valid until the next call on the context. Never NULL; for a NULL context it explains that
 * there is none.
 */
const char *TLS_ErrorMessage(void *pvContext);

#ifdef __cplusplus
}
#endif
