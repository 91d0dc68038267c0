// SPDX-License-Identifier: MIT
#pragma once
/// TlsSession<Token, Transport, Entropy, Config>: a TLS 1.2 client on mbedTLS whose private
/// key stays in the token (every handshake signature is a token sign call). Models TlsStream.
///
///   TlsSession<board::Token, PosixTcp, board::Entropy> tls(token, entropy);
///   tls.configure(credentials, params);          // finds key and certificates in the token
///   tls.attach(PosixTcp::connect(host, port).value());
///   tls.connect();                               // handshake; server always verified
///   tls.send(...); tls.recv(...); tls.close();   // close sends close_notify
#include <array>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>

#include <mbedtls/net_sockets.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/concepts/entropy.hpp>
#include <p11tls/concepts/tls_stream.hpp>
#include <p11tls/concepts/token.hpp>
#include <p11tls/concepts/transport.hpp>
#include <p11tls/detail/mbedtls/crypto.hpp>
#include <p11tls/detail/mbedtls/drbg.hpp>
#include <p11tls/detail/mbedtls/tls.hpp>
#include <p11tls/detail/mbedtls/tls_text.hpp>
#include <p11tls/tls/config.hpp>

namespace p11tls {

template <Token Tok, Transport Tr, Entropy E, class Config = tls::TlsConfig>
class TlsSession {
#if !defined(MBEDTLS_SSL_ALPN)
    static_assert(!Config::alpn, "TlsConfig::alpn needs an mbedTLS with MBEDTLS_SSL_ALPN; or set alpn = false");
#endif
#if !defined(MBEDTLS_PEM_PARSE_C)
    static_assert(!Config::pem_input, "TlsConfig::pem_input needs an mbedTLS with MBEDTLS_PEM_PARSE_C; or set pem_input = false");
#endif

public:
    TlsSession(Tok& token, E& entropy) noexcept : token_(token), drbg_(entropy) {
        mbedtls_ssl_init(&ssl_);
        mbedtls_ssl_config_init(&conf_);
        mbedtls_x509_crt_init(&ca_);
        mbedtls_x509_crt_init(&own_);
        mbedtls_pk_init(&key_);
        if constexpr (Config::resumption) mbedtls_ssl_session_init(&saved_);
        msg_[0] = '\0';
    }
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;
    /// Frees (and thereby zeroizes) all TLS state. Does not send close_notify: call close().
    ~TlsSession() {
        reset_configuration();
        if constexpr (Config::resumption) mbedtls_ssl_session_free(&saved_);
    }

    /// Loads the client key reference and certificates and sets up mbedTLS. Errors name what
    /// is missing, before any byte goes to the server. Call once; after a failure it may be
    /// called again (e.g. once the user logged in).
    [[nodiscard]] Result<void> configure(const tls::Credentials& cred, const tls::Params& params) {
        if (configured_) return error(Errc::tls_config, text("configure() called twice"));
        reset_configuration();
        if (params.server_name.empty() || params.server_name.size() >= server_name_.size())
            return error(Errc::tls_config, text("a server name is required (SNI and certificate check)"));
        std::memcpy(server_name_.data(), params.server_name.data(), params.server_name.size());
        server_name_[params.server_name.size()] = '\0';
        params_ = params;
        params_.server_name = {server_name_.data(), params.server_name.size()};
        params_.alpn = {};
        if constexpr (!Config::alpn)
            if (!params.alpn.empty())
                return error(Errc::not_supported, text("ALPN protocols given, but this TlsConfig has alpn = false"));

        static constexpr char personal[] = "p11tls TlsSession";
        if (auto r = drbg_.seed(std::as_bytes(std::span(personal)), Config::drbg_reseed_interval); !r)
            return error(r.error(), text("entropy source failed: no TLS without fresh randomness"));
        auto s = token_.open_session(CKF_SERIAL_SESSION);
        if (!s) return error(s.error(), text("cannot open a token session"));
        token_session_ = *s;

        P11TLS_TRY(load_certs(ca_, cred.ca_data, cred.ca_label, text("root CA certificate"),
                              text("root CA data is not a PEM or DER certificate")));
        if (!cred.anonymous_client) {
            P11TLS_TRY(load_certs(own_, cred.cert_data, cred.cert_label, text("client certificate"),
                                  text("client certificate data is not a PEM or DER certificate")));
            P11TLS_TRY(load_key(cred));
        }
        P11TLS_TRY(setup_mbedtls(cred, params));
        configured_ = true;
        return {};
    }

    /// Gives the session its transport (a new one for each connection). Reconnecting on a new
    /// transport offers the previous session for resumption when params.resume is set (and
    /// Config::resumption).
    void attach(Tr transport) {
        if (used_) {
            (void)mbedtls_ssl_session_reset(&ssl_);
            if constexpr (Config::resumption)
                if (have_saved_ && params_.resume) (void)mbedtls_ssl_set_session(&ssl_, &saved_);
        }
        transport_.emplace(std::move(transport));
        connected_ = false;
        if constexpr (Config::resumption) resumed_ = false;
        close_queued_ = false;
        used_ = true;
        if constexpr (requires(Tr& t) { t.set_timeout(1); }) transport_->set_timeout(params_.timeout_ms);
        if constexpr (requires(Tr& t) { t.set_blocking(true); }) transport_->set_blocking(!params_.non_blocking);
    }

    /// Runs the handshake (or continues it when non-blocking: Errc::would_block means call
    /// again when the transport is ready).
    [[nodiscard]] Result<void> connect() {
        if (!configured_) return error(Errc::tls_config, text("configure() first"));
        if (!transport_) return error(Errc::tls_not_connected, text("attach() a transport first"));
        if (connected_) return {};
        // Fresh entropy for each handshake (its ECDHE key, its randoms): a source that failed
        // since configure() stops the handshake before the ClientHello.
        if (ssl_.state == MBEDTLS_SSL_HELLO_REQUEST) {
            if (auto r = drbg_.reseed({}); !r)
                return error(r.error(), text("entropy source failed: no TLS handshake without fresh randomness"));
        }
        while (ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
            int ret = mbedtls_ssl_handshake_step(&ssl_);
            // mbedTLS marks the handshake resuming as soon as a session is offered; only the
            // ServerHello says whether the server accepted it.
            if constexpr (Config::resumption)
                if (ssl_.handshake && ssl_.state > MBEDTLS_SSL_SERVER_HELLO)
                    resumed_ = detail::mbed::handshake_resuming(ssl_);
            if (ret != 0) return failure(ret);
        }
        connected_ = true;
        msg_[0] = '\0';  // the would_block steps of a non-blocking handshake left text behind
        if constexpr (Config::resumption) {
            mbedtls_ssl_session_free(&saved_);
            mbedtls_ssl_session_init(&saved_);
            have_saved_ = mbedtls_ssl_get_session(&ssl_, &saved_) == 0;
        }
        return {};
    }

    [[nodiscard]] Result<std::size_t> send(std::span<const std::byte> data) {
        if (!connected_) return error(Errc::tls_not_connected, text("not connected"));
        int ret = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data.data()), data.size());
        if (ret < 0) return failure(ret);
        return static_cast<std::size_t>(ret);
    }

    /// Reads application data; Errc::connection_closed once the server closed the session.
    [[nodiscard]] Result<std::size_t> recv(std::span<std::byte> out) {
        if (!connected_) return error(Errc::tls_not_connected, text("not connected"));
        int ret = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(out.data()), out.size());
        if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return error(Errc::connection_closed, text("the server closed the session"));
        if (ret < 0) return failure(ret);
        return static_cast<std::size_t>(ret);
    }

    /// Sends close_notify. The session can be reused with attach() and connect().
    /// Non-blocking: Errc::would_block means call close() again when the transport is writable.
    [[nodiscard]] Result<void> close() {
        if (!connected_) return {};
        int ret;
        for (;;) {
            // mbedtls_ssl_close_notify only flushes while earlier records are pending (and then
            // returns 0); the alert is queued by a call that starts with nothing pending.
            const bool queues_alert = !close_queued_ && ssl_.out_left == 0;
            ret = mbedtls_ssl_close_notify(&ssl_);
            if (queues_alert) close_queued_ = true;
            if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
                if (params_.non_blocking) return failure(ret);  // still connected: call again
                continue;
            }
            if (ret != 0 || close_queued_) break;
        }
        connected_ = false;
        if (ret != 0 && ret != MBEDTLS_ERR_SSL_CONN_EOF) return failure(ret);
        return {};
    }

    /// One line for people about the last failure (empty after success); with
    /// Config::error_texts false, "TLS error 0x<Errc>, native <code>".
    [[nodiscard]] const char* error_message() const noexcept { return msg_.data(); }
    [[nodiscard]] bool connected() const noexcept { return connected_; }
    /// True when the last handshake resumed an earlier session (no new key exchange). Only
    /// with Config::resumption.
    [[nodiscard]] bool resumed() const noexcept
        requires(Config::resumption)
    {
        return resumed_;
    }
    /// Handshake signatures made by the token so far.
    [[nodiscard]] std::size_t token_signatures() const noexcept { return ref_.signatures; }
    /// True when decrypted or buffered data waits inside the session (read it before polling).
    [[nodiscard]] bool pending() const noexcept {
        return mbedtls_ssl_get_bytes_avail(&ssl_) > 0 || mbedtls_ssl_check_pending(&ssl_) != 0;
    }
    /// The ALPN protocol the server chose, or nullptr. Only with Config::alpn.
    [[nodiscard]] const char* alpn_protocol() const noexcept
        requires(Config::alpn)
    {
        return mbedtls_ssl_get_alpn_protocol(&ssl_);
    }
    [[nodiscard]] const char* ciphersuite() const noexcept { return mbedtls_ssl_get_ciphersuite(&ssl_); }
    [[nodiscard]] Tr* transport() noexcept { return transport_ ? &*transport_ : nullptr; }

private:
    static constexpr bool texts_ = Config::error_texts;

    // `t` for error_message(), or nothing when Config::error_texts is false: the literal then
    // never reaches the image.
    static constexpr const char* text([[maybe_unused]] const char* t) noexcept {
        if constexpr (texts_) return t;
        else return nullptr;
    }
    detail::Unexpected error(Errc code, const char* t, std::int32_t native = 0) {
        if constexpr (texts_) return detail::mbed::note_failure(msg_, {code, native}, t);
        else return error(Error{code, native}, nullptr);  // one call site of note_failure without texts
    }
    detail::Unexpected error(Error e, const char* t) {
        if constexpr (texts_) return detail::mbed::note_failure(msg_, e, t, describe(e.code));
        else return detail::mbed::note_failure(msg_, e, nullptr);
    }

    detail::Unexpected failure(int ret) {
        if (Error e = detail::mbed::to_error(ret); e.code == Errc::entropy_failed) {
            connected_ = false;
            return error(e, text("TLS handshake stopped: the DRBG could not reseed"));
        }
        int alert = -1;
        if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && ssl_.in_msg && ssl_.in_msglen >= 2)
            alert = ssl_.in_msg[1];
        Error transport = last_transport_error_;
        last_transport_error_ = {};
        if (transport.code == Errc::connection_closed && ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
            // A server that refuses our certificate sends an alert and closes; the write of our
            // next handshake message then fails (EPIPE) before mbedTLS reads that alert.
            if (int a = pending_alert(); a >= 0) {
                ret = MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE;
                alert = a;
                transport = {};
            }
        }
        const detail::mbed::TlsFailure f{ret, mbedtls_ssl_get_verify_result(&ssl_), alert, transport, params_.server_name,
                                         ssl_.state > MBEDTLS_SSL_SERVER_HELLO};
        Error e;
        if constexpr (texts_) {
            e = detail::mbed::describe_tls_failure(f, msg_);
            if (e.code == Errc::tls_signing_failed && ref_.last_error.code != Errc{}) {
                std::size_t n = std::strlen(msg_.data());
                std::snprintf(msg_.data() + n, msg_.size() - n, ": %s", describe(ref_.last_error.code));
            }
        } else {
            e = detail::mbed::classify_tls_failure(f);
            (void)detail::mbed::note_failure(msg_, e, nullptr);
        }
        if (e.code != Errc::would_block) connected_ = false;
        return fail(e);
    }

    // Drops what a failed configure() left behind (certificates parsed, a token session).
    void reset_configuration() noexcept {
        msg_[0] = '\0';
        if (token_session_) (void)token_.close_session(*token_session_);
        token_session_.reset();
        mbedtls_ssl_free(&ssl_);
        mbedtls_ssl_init(&ssl_);
        mbedtls_ssl_config_free(&conf_);
        mbedtls_ssl_config_init(&conf_);
        mbedtls_x509_crt_free(&ca_);
        mbedtls_x509_crt_init(&ca_);
        mbedtls_x509_crt_free(&own_);
        mbedtls_x509_crt_init(&own_);
        mbedtls_pk_free(&key_);
        mbedtls_pk_init(&key_);
        ref_ = {};
    }

    // The description of a plaintext fatal alert record waiting in the transport, or -1.
    // mbedTLS reads records exactly, so during the handshake nothing of it is buffered yet.
    int pending_alert() {
        std::array<std::byte, 7> rec;  // type 21, version 3.x, length 2, level 2, description
        std::size_t got = 0;
        while (got < rec.size()) {
            auto r = transport_->recv(std::span(rec).subspan(got));
            if (!r || *r == 0) break;
            got += *r;
        }
        auto at = [&](std::size_t i) { return std::to_integer<int>(rec[i]); };
        if (got == rec.size() && at(0) == MBEDTLS_SSL_MSG_ALERT && at(1) == 3 && at(3) == 0 && at(4) == 2 &&
            at(5) == MBEDTLS_SSL_ALERT_LEVEL_FATAL)
            return at(6);
        return -1;
    }

    // Finds objects of `cls` whose label (or id) matches, up to out.size().
    Result<std::size_t> find(CK_OBJECT_CLASS cls, std::string_view label, std::span<const std::byte> id,
                             std::span<CK_OBJECT_HANDLE> out) {
        // The token copies what it needs of the template in find_init.
        const CK_ATTRIBUTE q[] = {
            {CKA_CLASS, &cls, sizeof cls},
            id.empty() ? CK_ATTRIBUTE{CKA_LABEL, const_cast<char*>(label.data()), static_cast<CK_ULONG>(label.size())}
                       : CK_ATTRIBUTE{CKA_ID, const_cast<std::byte*>(id.data()), static_cast<CK_ULONG>(id.size())}};
        P11TLS_TRY(token_.find_init(*token_session_, q));
        auto n = token_.find(*token_session_, out);
        (void)token_.find_final(*token_session_);
        return n;
    }

    // Reads a (non-sensitive) attribute into `buf`, returning its bytes.
    Result<std::span<const std::byte>> attribute(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, std::span<std::byte> buf) {
        CK_ATTRIBUTE a{type, buf.data(), static_cast<CK_ULONG>(buf.size())};
        P11TLS_TRY(token_.get_attributes(*token_session_, obj, std::span(&a, 1)));
        return std::span<const std::byte>(buf.first(a.ulValueLen));
    }

    // Adds the certificates of token objects labelled `label` to `chain`.
    Result<void> certs_from_token(mbedtls_x509_crt& chain, std::string_view label, [[maybe_unused]] const char* what) {
        std::array<CK_OBJECT_HANDLE, 8> h;
        auto n = find(CKO_CERTIFICATE, label, {}, h);
        if (!n) return error(n.error(), text("token search failed"));
        if (*n == 0) {
            if constexpr (texts_) {
                char t[160];
                std::snprintf(t, sizeof t, "no %s labelled '%.*s' in the token", what, static_cast<int>(label.size()),
                              label.data());
                return error(Errc::tls_cert_not_found, t);
            } else {
                return error(Errc::tls_cert_not_found, nullptr);
            }
        }
        std::array<std::byte, 4096> der;
        for (std::size_t i = 0; i < *n; ++i) {
            auto v = attribute(h[i], CKA_VALUE, der);
            if (!v) return error(v.error(), text("cannot read a certificate from the token"));
            if (auto r = parse(chain, *v); !r)
                return error(Errc::tls_bad_pem, text("a certificate in the token does not parse"));
        }
        return {};
    }

    // Parses the caller's certificate bytes into `chain`, or without bytes the token's
    // certificates labelled `label`.
    Result<void> load_certs(mbedtls_x509_crt& chain, std::span<const std::byte> data, std::string_view label,
                            const char* what, const char* bad_data) {
        if (data.empty()) return certs_from_token(chain, label, what);
        if (auto r = parse(chain, data); !r) {
            if constexpr (!Config::pem_input)
                if (detail::mbed::looks_like_pem(data))
                    return error(Errc::not_supported, text("certificate data is PEM, but this TlsConfig has "
                                                           "pem_input = false: give DER"));
            return error(Errc::tls_bad_pem, bad_data);
        }
        return {};
    }

    // PEM or DER with Config::pem_input, else DER only (mbedTLS's PEM parser stays out).
    static Result<void> parse(mbedtls_x509_crt& chain, std::span<const std::byte> data) noexcept {
        if constexpr (Config::pem_input) return detail::mbed::parse_certs(chain, data);
        else return detail::mbed::parse_der_cert(chain, data);
    }

    // Finds the private key, makes key_ sign with it through the token, and puts the client
    // certificate that holds its public key first in own_ (the one the server checks our
    // signature with; the token may list a chain's CA certificates before it). Not inlined:
    // configure() runs it once, and inlined there its error paths cost more than the call.
    [[gnu::noinline]] Result<void> load_key(const tls::Credentials& c) {
        std::array<CK_OBJECT_HANDLE, 2> h;
        auto n = find(CKO_PRIVATE_KEY, c.key_label, c.key_id, h);
        if (!n) return error(n.error(), text("token search failed"));
        if (*n == 0) {
            if constexpr (texts_) {
                char t[160];
                if (!c.key_id.empty())
                    std::snprintf(t, sizeof t, "no private key with the given id in the token (logged in?)");
                else
                    std::snprintf(t, sizeof t, "no private key labelled '%.*s' in the token (logged in?)",
                                  static_cast<int>(c.key_label.size()), c.key_label.data());
                return error(Errc::tls_key_not_found, t);
            } else {
                return error(Errc::tls_key_not_found, nullptr);
            }
        }
        std::array<std::byte, 520> buf;
        auto kt = attribute(h[0], CKA_KEY_TYPE, buf);
        if (!kt || kt->size() != sizeof(CK_KEY_TYPE)) return error(Errc::tls_key_not_found, text("cannot read the key type"));
        CK_KEY_TYPE type;
        std::memcpy(&type, kt->data(), sizeof type);
        ref_.token = &token_;
        ref_.sign = &detail::mbed::token_sign<Tok>;
        ref_.session = *token_session_;
        ref_.key = h[0];
        ref_.key_type = type;

        // The public half (EC point or RSA modulus) finds the certificate; without one that
        // holds it every handshake would fail late.
        std::span<const std::byte> pub;
        if (type == CKK_EC) {
            auto params = attribute(h[0], CKA_EC_PARAMS, buf);
            auto curve = params ? detail::mbed::curve_from_params(*params) : std::nullopt;
            if (!curve) return error(Errc::tls_key_not_found, text("the token key is not on P-256 or P-384"));
            ref_.bits = detail::mbed::curve_bytes(*curve) * 8;
            // A private key object may lack CKA_EC_POINT (SoftHSMv2's do): then only the key
            // type of the first certificate can be checked.
            if (auto point = attribute(h[0], CKA_EC_POINT, buf)) {
                auto raw = detail::mbed::ec_point_raw(*curve, *point);
                if (!raw) return error(Errc::tls_key_cert_mismatch, text("the token key's EC point does not parse"));
                pub = *raw;
            }
        } else if (type == CKK_RSA) {
            auto mod = attribute(h[0], CKA_MODULUS, buf);
            if (!mod) return error(mod.error(), text("cannot read the RSA modulus"));
            pub = *mod;
            while (!pub.empty() && pub[0] == std::byte{0}) pub = pub.subspan(1);
            ref_.bits = pub.size() * 8;
        } else {
            return error(Errc::tls_key_not_found, text("the token key is neither EC nor RSA"));
        }
        if (!detail::mbed::leaf_first(own_, type, pub))
            return error(Errc::tls_key_cert_mismatch, text("no client certificate holds the token key's public key"));
        detail::mbed::token_pk_setup(key_, ref_);
        return {};
    }

    Result<void> setup_mbedtls(const tls::Credentials& c, const tls::Params& p) {
        // Each step names itself in `what` before it runs: one error path for all of them.
        const char* what = text("mbedTLS refused the client defaults");
        int r = mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                            MBEDTLS_SSL_PRESET_DEFAULT);
        if (r == 0) {
            mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
            mbedtls_ssl_conf_ca_chain(&conf_, &ca_, nullptr);
            mbedtls_ssl_conf_cert_profile(&conf_, &tls::cert_profile);
            mbedtls_ssl_conf_rng(&conf_, drbg_.rng().f, drbg_.rng().p);
            mbedtls_ssl_conf_ciphersuites(&conf_, Config::ciphersuites);
            mbedtls_ssl_conf_min_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, Config::min_minor_version);
            mbedtls_ssl_conf_max_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
            mbedtls_ssl_conf_sig_hashes(&conf_, tls::sig_hashes);
            mbedtls_ssl_conf_curves(&conf_, tls::curves);
            mbedtls_ssl_conf_renegotiation(&conf_, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
            mbedtls_ssl_conf_session_tickets(&conf_, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
            what = text("invalid max fragment length");
            r = mbedtls_ssl_conf_max_frag_len(&conf_, Config::max_fragment_length);
        }
        if (r == 0 && !c.anonymous_client) {
            what = text("mbedTLS refused the client certificate");
            r = mbedtls_ssl_conf_own_cert(&conf_, &own_, &key_);
        }
        if constexpr (Config::alpn) {
            if (r == 0 && !p.alpn.empty()) {
                if (p.alpn.size() > Config::max_alpn) return error(Errc::tls_config, text("too many ALPN protocols"));
                for (std::size_t i = 0; i < p.alpn.size(); ++i) {
                    if (p.alpn[i].empty() || p.alpn[i].size() >= alpn_names_[i].size())
                        return error(Errc::tls_config, text("ALPN protocol name empty or too long"));
                    std::memcpy(alpn_names_[i].data(), p.alpn[i].data(), p.alpn[i].size());
                    alpn_names_[i][p.alpn[i].size()] = '\0';
                    alpn_[i] = alpn_names_[i].data();
                }
                alpn_[p.alpn.size()] = nullptr;
                what = text("invalid ALPN list");
                r = mbedtls_ssl_conf_alpn_protocols(&conf_, alpn_.data());
            }
        }
        if (r == 0) {
            what = text("mbedTLS setup failed (out of memory?)");
            r = mbedtls_ssl_setup(&ssl_, &conf_);
        }
        if (r == 0) {
            what = text("invalid server name");
            r = mbedtls_ssl_set_hostname(&ssl_, server_name_.data());
        }
        if (r != 0) return error(Errc::tls_config, what, r);
        mbedtls_ssl_set_bio(&ssl_, this, &bio_send, &bio_recv, nullptr);
        return {};
    }

    // The bio callbacks keep the transport's error (failure() names it) and give mbedTLS its code.
    int bio_result(const Result<std::size_t>& r, bool sending) {
        if (r) return static_cast<int>(*r);
        last_transport_error_ = r.error();
        return detail::mbed::transport_ret(last_transport_error_.code, sending);
    }
    static int bio_send(void* ctx, const unsigned char* buf, std::size_t len) {
        auto& self = *static_cast<TlsSession*>(ctx);
        return self.bio_result(self.transport_->send({reinterpret_cast<const std::byte*>(buf), len}), true);
    }
    static int bio_recv(void* ctx, unsigned char* buf, std::size_t len) {
        auto& self = *static_cast<TlsSession*>(ctx);
        return self.bio_result(self.transport_->recv({reinterpret_cast<std::byte*>(buf), len}), false);
    }

    Tok& token_;
    detail::mbed::Drbg<E> drbg_;
    mbedtls_ssl_context ssl_;
    mbedtls_ssl_config conf_;
    mbedtls_x509_crt ca_, own_;
    mbedtls_pk_context key_;
    // The last session, offered on reconnect (Config::resumption).
    [[no_unique_address]] std::conditional_t<Config::resumption, mbedtls_ssl_session, detail::mbed::Absent> saved_;
    detail::mbed::TokenKeyRef ref_{};
    std::optional<CK_ULONG> token_session_;
    std::optional<Tr> transport_;
    tls::Params params_{};
    Error last_transport_error_{};
    // Written before use (msg_ starts empty in the constructor): no zero fill at construction.
    std::array<char, 256> server_name_;
    static constexpr std::size_t alpn_max_ = Config::alpn ? Config::max_alpn : 0;
    std::array<std::array<char, 64>, alpn_max_> alpn_names_;
    std::array<const char*, Config::alpn ? alpn_max_ + 1 : 0> alpn_;
    std::array<char, texts_ ? 256 : 40> msg_;
    bool configured_ = false, connected_ = false, used_ = false, resumed_ = false, have_saved_ = false,
         close_queued_ = false;
};

}  // namespace p11tls
