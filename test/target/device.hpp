// SPDX-License-Identifier: MIT
#pragma once
// What the target images share: the factory provisioning of the board's token with the test
// PKI (test_pki.h, made by make_pki.sh at build time), and the in-image TLS server's bio over
// the server end of a MemoryPipe.
#include <span>

#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include <p11tls/board.hpp>
#include <p11tls/tls/session.hpp>
#include <p11tls/token/template.hpp>
#include <p11tls/transport/memory_pipe.hpp>

#include "test_pki.h"
#include "tls_server.h"

namespace p11tls::target {

template <std::size_t N>
std::span<const std::byte> bytes(const unsigned char (&a)[N]) noexcept {
    return std::as_bytes(std::span(a));
}

inline constexpr unsigned char p256_oid[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
inline constexpr const char* server_name = "server.test";

/// Stores the device key (imported: the test CA issued its certificate), the device
/// certificate and the root CA under the labels tls::Credentials looks for.
template <class Tok>
Result<void> provision_device(Tok& token, CK_ULONG rw_session) {
    token::Template<10, 128> key;
    key.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true)
        .add(CKA_LABEL, "Device Priv TLS Key").add(CKA_ID, std::as_bytes(std::span("dev", 3))).add(CKA_SIGN, true)
        .add(CKA_EC_PARAMS, std::as_bytes(std::span(p256_oid))).add(CKA_VALUE, bytes(test_client_d));
    token::Template<6, 1024> cert;
    cert.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_TOKEN, true)
        .add(CKA_LABEL, "Device Cert").add(CKA_VALUE, bytes(test_client_cert));
    token::Template<6, 1024> root;
    root.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_TOKEN, true)
        .add(CKA_LABEL, "Root Cert").add(CKA_VALUE, bytes(test_ca_cert));
    if (!key.ok() || !cert.ok() || !root.ok()) return fail(Errc::buffer_too_small);
    P11TLS_TRY(token.create_object(rw_session, key.view()));
    P11TLS_TRY(token.create_object(rw_session, cert.view()));
    P11TLS_TRY(token.create_object(rw_session, root.view()));
    return {};
}

/// The server's credentials from the test PKI.
inline tls_server_credentials server_credentials() noexcept {
    return {test_server_cert, test_server_key, test_ca_cert, sizeof test_server_cert, sizeof test_server_key,
            sizeof test_ca_cert};
}

/// mbedTLS bio callbacks over a MemoryPipe end (ctx): WANT_READ/WANT_WRITE while it is empty/full.
template <class End>
int pipe_send(void* ctx, const unsigned char* b, std::size_t n) {
    auto r = static_cast<End*>(ctx)->send({reinterpret_cast<const std::byte*>(b), n});
    if (r) return static_cast<int>(*r);
    return r.error().code == Errc::would_block ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_CONN_RESET;
}
template <class End>
int pipe_recv(void* ctx, unsigned char* b, std::size_t n) {
    auto r = static_cast<End*>(ctx)->recv({reinterpret_cast<std::byte*>(b), n});
    if (r) return static_cast<int>(*r);
    if (r.error().code == Errc::would_block) return MBEDTLS_ERR_SSL_WANT_READ;
    return r.error().code == Errc::connection_closed ? 0 : MBEDTLS_ERR_NET_RECV_FAILED;
}

}  // namespace p11tls::target
