// SPDX-License-Identifier: MIT
// The FreeRTOS-compatible C interface (p11tls/c/aws_tls.h) over TlsSession, the board's token
// and a Transport made of the caller's network callbacks.
#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <mbedtls/ssl.h>

#include <p11tls/board.hpp>
#include <p11tls/c/aws_tls.h>
#include <p11tls/tls/session.hpp>

static_assert(P11TLS_TLS_ERROR_CLOSED == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
static_assert(sizeof(BaseType_t) == sizeof(long));

namespace p11tls::c_api {
namespace {

using Clock = std::chrono::steady_clock;

/// How long TLS_Connect and TLS_Send wait while the callbacks move no byte.
constexpr auto idle_limit = std::chrono::seconds(10);

/// The caller's callbacks as a Transport. Callback result -> Transport result:
///   n > 0 (n <= asked)                  -> n
///   0, MBEDTLS_ERR_SSL_WANT_READ/_WRITE -> Errc::would_block (nothing moved yet)
///   n > asked                           -> Errc::transport_failed, native 0 (a broken callback)
///   other n < 0                         -> Errc::transport_failed, native n (handed back to
///                                          the C caller unchanged, as FreeRTOS does)
/// Never returns 0 bytes: mbedTLS would take a 0 from send as "all flushed" and lose data.
class CallbackTransport {
public:
    CallbackTransport(NetworkRecv_t recv, NetworkSend_t send, void* ctx) noexcept
        : recv_(recv), send_(send), ctx_(ctx), progress_(Clock::now()) {}

    [[nodiscard]] Result<std::size_t> send(std::span<const std::byte> in) {
        BaseType_t n = send_(ctx_, reinterpret_cast<const unsigned char*>(in.data()), in.size());
        return account(n, in.size(), "send");
    }
    [[nodiscard]] Result<std::size_t> recv(std::span<std::byte> out) {
        BaseType_t n = recv_(ctx_, reinterpret_cast<unsigned char*>(out.data()), out.size());
        return account(n, out.size(), "recv");
    }

    /// Restarts the idle clock (at the start of a blocking C call).
    void mark_progress() noexcept { progress_ = Clock::now(); }
    [[nodiscard]] bool idle_too_long() const noexcept { return Clock::now() - progress_ > idle_limit; }
    /// Which callback failed and how, for TLS_ErrorMessage.
    [[nodiscard]] const char* failure() const noexcept { return failure_.data(); }

private:
    Result<std::size_t> account(BaseType_t n, std::size_t asked, const char* which) {
        if (n > 0 && static_cast<unsigned long>(n) <= asked) {
            progress_ = Clock::now();
            return static_cast<std::size_t>(n);
        }
        if (n == 0 || n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) return fail(Errc::would_block);
        if (n > 0) {
            std::snprintf(failure_.data(), failure_.size(), "the %s callback returned %ld for a %zu-byte buffer", which,
                          static_cast<long>(n), asked);
            return fail(Errc::transport_failed, 0);
        }
        std::snprintf(failure_.data(), failure_.size(), "the %s callback failed with %ld", which, static_cast<long>(n));
        return fail(Errc::transport_failed, static_cast<std::int32_t>(std::max<BaseType_t>(n, INT32_MIN)));
    }

    NetworkRecv_t recv_;
    NetworkSend_t send_;
    void* ctx_;
    Clock::time_point progress_;
    std::array<char, 96> failure_{};
};

static_assert(Transport<CallbackTransport>);

using Session = TlsSession<board::Token, CallbackTransport, board::Entropy>;

// --- the board's token, shared by every context ----------------------------------------------

struct SharedToken {
    std::mutex mutex;
    std::unique_ptr<board::Token> token;
    std::optional<CK_ULONG> login_session;  // kept open: login lasts while a session is open
    bool login_tried = false;
    char login_error[160] = "";
};

SharedToken& shared() {
    static SharedToken s;
    return s;
}

/// Opens the token on first use (again after a failed open) and logs in with $P11TLS_PIN once.
board::Token* acquire_token(std::span<char> msg) {
    SharedToken& s = shared();
    std::lock_guard lock(s.mutex);
    if (!s.token) {
        std::string dir = board::store_directory();
        auto t = board::open_token(dir);
        if (!t) {
            std::snprintf(msg.data(), msg.size(), "cannot open the token in %s: %s", dir.c_str(),
                          describe(t.error().code));
            return nullptr;
        }
        s.token = std::move(*t);
    }
    if (!s.login_tried) {
        s.login_tried = true;
        const char* pin = std::getenv("P11TLS_PIN");
        if (pin && *pin) {
            auto session = s.token->open_session(CKF_SERIAL_SESSION);
            if (!session) {
                std::snprintf(s.login_error, sizeof s.login_error, "cannot open a token session to log in: %s",
                              describe(session.error().code));
            } else if (auto r = s.token->login(*session, CKU_USER, std::span(pin, std::strlen(pin)));
                       !r && r.error().code != Errc::user_already_logged_in) {
                std::snprintf(s.login_error, sizeof s.login_error,
                              "login with P11TLS_PIN failed: %s (not retried in this process)",
                              describe(r.error().code));
                (void)s.token->close_session(*session);
            } else {
                s.login_session = *session;
            }
        }
    }
    if (s.login_error[0]) {
        std::snprintf(msg.data(), msg.size(), "%s", s.login_error);
        return nullptr;
    }
    return s.token.get();
}

// --- one connection ------------------------------------------------------------------------

enum class State { init_failed, ready, connected, closed, failed };

struct Context {
    board::Entropy entropy;
    std::optional<Session> session;
    State state = State::init_failed;
    BaseType_t failure = P11TLS_TLS_ERROR_NOT_CONNECTED;  // what later calls return once failed
    Errc missing_credential{};  // set when the handshake runs without a client certificate
    char credential_note[300] = "";
    char msg[640] = "";

    void say(const char* text) { std::snprintf(msg, sizeof msg, "%s", text); }
    BaseType_t invalid(const char* text) {
        say(text);
        return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
    }
    BaseType_t stop(BaseType_t code, State s = State::failed) {
        state = s;
        failure = code;
        return code;
    }
};

/// The C return value of a failed session call (the session's message is already written).
BaseType_t code_of(const Error& e) {
    switch (e.code) {
    case Errc::entropy_failed: return TLS_ERROR_RNG;
    case Errc::tls_signing_failed: return TLS_ERROR_SIGN;
    case Errc::connection_closed: return P11TLS_TLS_ERROR_CLOSED;
    case Errc::tls_not_connected: return P11TLS_TLS_ERROR_NOT_CONNECTED;
    case Errc::out_of_memory: return P11TLS_TLS_ERROR_NO_MEMORY;
    case Errc::transport_failed: return e.native < 0 ? e.native : P11TLS_TLS_ERROR_TRANSPORT;
    default: return TLS_ERROR_HANDSHAKE_FAILED;
    }
}

/// Copies the session's message, adding why the client went without a certificate.
void take_message(Context& c, const Error& e) {
    if (e.code == Errc::transport_failed && c.session->transport()->failure()[0])
        std::snprintf(c.msg, sizeof c.msg, "network: %s", c.session->transport()->failure());
    else if (c.missing_credential != Errc{})
        std::snprintf(c.msg, sizeof c.msg, "%s (the handshake ran without a client certificate: %s)",
                      c.session->error_message(), c.credential_note);
    else
        c.say(c.session->error_message());
}

bool is_credential_absent(Errc e) { return e == Errc::tls_key_not_found || e == Errc::tls_cert_not_found; }

// Waits a little before calling a callback that returned 0 again; false once idle too long.
bool wait_for_network(Context& c) {
    if (c.session->transport()->idle_too_long()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return true;
}

BaseType_t init(Context& c, const TLSParams_t* p) {
    if (!p) return c.invalid("TLS_Init: pxParams is NULL");
    if (p->ulSize != 0 && p->ulSize != sizeof(TLSParams_t))
        return c.invalid("TLS_Init: ulSize is not sizeof(TLSParams_t) (header and library differ?)");
    if (!p->pcDestination || !*p->pcDestination)
        return c.invalid("TLS_Init: pcDestination (the server name, for SNI and certificate check) is required");
    if (!p->pxNetworkRecv || !p->pxNetworkSend)
        return c.invalid("TLS_Init: pxNetworkRecv and pxNetworkSend are required");
    if (p->pcServerCertificate && p->ulServerCertificateLength == 0)
        return c.invalid("TLS_Init: ulServerCertificateLength is 0");

    std::array<std::string_view, tls::TlsConfig::max_alpn> alpn;
    std::size_t alpn_count = 0;
    if (p->ppcAlpnProtocols) {
        for (std::uint32_t i = 0; i < p->ulAlpnProtocolsCount && p->ppcAlpnProtocols[i]; ++i) {
            if (alpn_count == alpn.size()) return c.invalid("TLS_Init: more than 4 ALPN protocols");
            alpn[alpn_count++] = p->ppcAlpnProtocols[i];
        }
    }

    tls::Credentials cred;  // labels: "Device Priv TLS Key", "Device Cert", "Root Cert"
    if (p->pcServerCertificate) {
        std::size_t len = p->ulServerCertificateLength;
        std::string_view text(p->pcServerCertificate, len);
        // PEM: FreeRTOS counts the NUL terminator; DER may hold zero bytes anywhere.
        if (text.find("-----BEGIN") != std::string_view::npos) len = strnlen(p->pcServerCertificate, len);
        cred.ca_data = std::as_bytes(std::span(p->pcServerCertificate, len));
    }
    tls::Params params;
    params.server_name = p->pcDestination;
    params.alpn = std::span(alpn.data(), alpn_count);
    params.non_blocking = true;  // close() makes one attempt; the waiting is done here

    board::Token* token = acquire_token(c.msg);
    if (!token) return P11TLS_TLS_ERROR_TOKEN;

    c.session.emplace(*token, c.entropy);
    auto r = c.session->configure(cred, params);
    if (!r && is_credential_absent(r.error().code)) {
        // FreeRTOS still tries the handshake: some servers do not ask for a client certificate.
        c.missing_credential = r.error().code;
        const char* pin = std::getenv("P11TLS_PIN");
        std::snprintf(c.credential_note, sizeof c.credential_note, "%s%s", c.session->error_message(),
                      pin && *pin ? "" : "; P11TLS_PIN is not set");
        c.session.reset();
        c.session.emplace(*token, c.entropy);
        cred.anonymous_client = true;
        r = c.session->configure(cred, params);
    }
    if (!r) {
        c.say(c.session->error_message());
        if (r.error().code == Errc::tls_bad_pem && p->pcServerCertificate) return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
        if (r.error().code == Errc::tls_config) return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
        return code_of(r.error());
    }
    c.session->attach(CallbackTransport(p->pxNetworkRecv, p->pxNetworkSend, p->pvCallerContext));
    c.msg[0] = '\0';
    return pdFREERTOS_ERRNO_NONE;
}

}  // namespace
}  // namespace p11tls::c_api

using p11tls::Errc;
using p11tls::c_api::Context;
using p11tls::c_api::State;

extern "C" BaseType_t TLS_Init(void** ppvContext, TLSParams_t* pxParams) {
    if (!ppvContext) return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
    *ppvContext = nullptr;
    auto* c = new (std::nothrow) Context;
    if (!c) return P11TLS_TLS_ERROR_NO_MEMORY;
    *ppvContext = c;
    BaseType_t r = p11tls::c_api::init(*c, pxParams);
    if (r == pdFREERTOS_ERRNO_NONE) c->state = State::ready;
    else c->stop(r, State::init_failed);
    return r;
}

extern "C" BaseType_t TLS_Connect(void* pvContext) {
    if (!pvContext) return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
    Context& c = *static_cast<Context*>(pvContext);
    if (c.state == State::connected) return pdFREERTOS_ERRNO_NONE;
    if (c.state != State::ready) return c.failure;  // the message of that failure stays
    c.session->transport()->mark_progress();
    for (;;) {
        auto r = c.session->connect();
        if (r) {
            c.state = State::connected;
            c.msg[0] = '\0';
            return pdFREERTOS_ERRNO_NONE;
        }
        if (r.error().code == Errc::would_block) {
            if (p11tls::c_api::wait_for_network(c)) continue;
            c.say("TLS handshake timed out: the network callbacks moved no byte for 10 s");
            return c.stop(P11TLS_TLS_ERROR_TIMEOUT);
        }
        p11tls::c_api::take_message(c, r.error());
        BaseType_t code = p11tls::c_api::code_of(r.error());
        // The server refused the handshake and we had no credential to offer: say which.
        Errc e = r.error().code;
        if (c.missing_credential != Errc{} &&
            (e == Errc::tls_peer_alert || e == Errc::tls_no_shared_cipher || e == Errc::connection_closed))
            code = c.missing_credential == Errc::tls_key_not_found ? TLS_ERROR_NO_PRIVATE_KEY : TLS_ERROR_NO_CERTIFICATE;
        return c.stop(code);
    }
}

extern "C" BaseType_t TLS_Recv(void* pvContext, unsigned char* pucReadBuffer, size_t xReadLength) {
    if (!pvContext) return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
    Context& c = *static_cast<Context*>(pvContext);
    if (c.state != State::connected) {
        if (c.state == State::ready) {
            c.say("TLS_Recv before TLS_Connect succeeded");
            return P11TLS_TLS_ERROR_NOT_CONNECTED;
        }
        return c.failure;
    }
    if (xReadLength == 0) return 0;
    if (!pucReadBuffer) return c.invalid("TLS_Recv: pucReadBuffer is NULL");
    std::size_t len = std::min<std::size_t>(xReadLength, INT_MAX);
    auto r = c.session->recv({reinterpret_cast<std::byte*>(pucReadBuffer), len});
    if (r) return static_cast<BaseType_t>(*r);
    if (r.error().code == Errc::would_block) return 0;
    p11tls::c_api::take_message(c, r.error());
    BaseType_t code = p11tls::c_api::code_of(r.error());
    return c.stop(code, code == P11TLS_TLS_ERROR_CLOSED ? State::closed : State::failed);
}

extern "C" BaseType_t TLS_Send(void* pvContext, const unsigned char* pucMsg, size_t xMsgLength) {
    if (!pvContext) return P11TLS_TLS_ERROR_INVALID_ARGUMENT;
    Context& c = *static_cast<Context*>(pvContext);
    if (c.state != State::connected) {
        if (c.state == State::ready) {
            c.say("TLS_Send before TLS_Connect succeeded");
            return P11TLS_TLS_ERROR_NOT_CONNECTED;
        }
        return c.failure;
    }
    if (xMsgLength == 0) return 0;
    if (!pucMsg) return c.invalid("TLS_Send: pucMsg is NULL");
    if (xMsgLength > static_cast<std::size_t>(LONG_MAX))
        return c.invalid("TLS_Send: xMsgLength does not fit the return type");
    c.session->transport()->mark_progress();
    std::size_t sent = 0;
    while (sent < xMsgLength) {
        // After would_block mbedTLS holds an encrypted record: the retry must pass the same bytes.
        auto r = c.session->send({reinterpret_cast<const std::byte*>(pucMsg + sent), xMsgLength - sent});
        if (r) {
            sent += *r;
            continue;
        }
        if (r.error().code == Errc::would_block) {
            if (p11tls::c_api::wait_for_network(c)) continue;
            c.say("TLS_Send timed out: the send callback took no byte for 10 s");
            return c.stop(P11TLS_TLS_ERROR_TIMEOUT);
        }
        p11tls::c_api::take_message(c, r.error());
        BaseType_t code = p11tls::c_api::code_of(r.error());
        return c.stop(code, code == P11TLS_TLS_ERROR_CLOSED ? State::closed : State::failed);
    }
    return static_cast<BaseType_t>(sent);
}

extern "C" void TLS_Cleanup(void* pvContext) {
    if (!pvContext) return;
    auto* c = static_cast<Context*>(pvContext);
    if (c->state == State::connected) (void)c->session->close();
    delete c;  // the session's destructor frees and zeroizes all TLS state
}

extern "C" const char* TLS_ErrorMessage(void* pvContext) {
    if (!pvContext) return "no TLS context (TLS_Init was not called, or could not allocate one)";
    return static_cast<const Context*>(pvContext)->msg;
}
