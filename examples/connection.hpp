// SPDX-License-Identifier: MIT
#pragma once
// What tls_client and mqtt_publish share: the connection options, opening the token (the
// board's or an external PKCS#11 module), login, and a connected TlsSession.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include <p11tls/board.hpp>
#include <p11tls/tls/session.hpp>
#include <p11tls/token/module_token.hpp>
#include <p11tls/transport/posix_tcp.hpp>

namespace example {

/// Name printed before every error line; set by main().
inline const char* program = "p11tls";

[[noreturn]] inline void die(const std::string& msg, int code = 1) {
    fmt::print(stderr, "{}: {}\n", program, msg);
    std::exit(code);
}
[[noreturn]] inline void usage_error(const std::string& msg) { die(msg + " (see --help)", 2); }

/// A decimal option value in [0, max].
inline unsigned long number(std::string_view opt, const std::string& v, unsigned long max) {
    char* end = nullptr;
    errno = 0;
    unsigned long n = std::strtoul(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || !end || *end || errno || n > max)
        usage_error(fmt::format("{}: '{}' is not a number from 0 to {}", opt, v, max));
    return n;
}

inline constexpr const char* connection_usage =
    "  --host H --port P [--sni NAME]   server (SNI and certificate check use NAME, default H)\n"
    "  --ca FILE | --ca-label L         root CA: PEM/DER file, or token certificates (\"Root Cert\")\n"
    "  --key-label L                    client key in the token (\"Device Priv TLS Key\")\n"
    "  --cert-label L | --cert FILE     client certificate (\"Device Cert\")\n"
    "  --alpn P (repeatable)            ALPN protocol, e.g. x-amzn-mqtt-ca\n"
    "  --store DIR                      the board token's store ($P11TLS_STORE)\n"
    "  --pin PIN                        user PIN (or $P11TLS_PIN)\n"
    "  --module PATH [--token-label L]  use an external PKCS#11 module instead of the board token\n"
    "  --timeout MS                     limit for each network wait (10000)\n";

struct Connection {
    std::string host, sni, ca_file, ca_label = "Root Cert", key_label = "Device Priv TLS Key",
        cert_label = "Device Cert", cert_file, store = p11tls::board::store_directory(), pin, module, token_label;
    unsigned port = 0;
    int timeout_ms = 10000;
    std::vector<std::string> alpn;

    Connection() {
        if (const char* p = std::getenv("P11TLS_PIN")) pin = p;
    }

    /// Takes option `a` with value `v` if it is a connection option.
    bool parse(std::string_view a, const std::string& v) {
        if (a == "--host") host = v;
        else if (a == "--port") {
            port = static_cast<unsigned>(number(a, v, 65535));
            if (port == 0) usage_error("--port: 0 is not a port number");
        } else if (a == "--sni") sni = v;
        else if (a == "--ca") ca_file = v;
        else if (a == "--ca-label") ca_label = v;
        else if (a == "--key-label") key_label = v;
        else if (a == "--cert-label") cert_label = v;
        else if (a == "--cert") cert_file = v;
        else if (a == "--alpn") alpn.push_back(v);
        else if (a == "--store") store = v;
        else if (a == "--pin") pin = v;
        else if (a == "--module") module = v;
        else if (a == "--token-label") token_label = v;
        else if (a == "--timeout") {
            timeout_ms = static_cast<int>(number(a, v, 3'600'000));
            if (timeout_ms == 0) usage_error("--timeout: must be at least 1 ms");
        } else return false;
        return true;
    }

    /// Checks what parse() cannot check option by option.
    void finish() {
        if (host.empty()) usage_error("--host is required");
        if (port == 0) usage_error("--port is required");
        if (sni.empty()) sni = host;
    }
};

inline std::vector<std::byte> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) die(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    std::vector<std::byte> data;
    std::byte buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    return data;
}

template <class Tok, class F>
int run_connected(Tok& token, const Connection& c, F& body) {
    p11tls::board::Entropy entropy;
    p11tls::TlsSession<Tok, p11tls::PosixTcp, p11tls::board::Entropy> tls(token, entropy);

    std::vector<std::byte> ca, cert;
    p11tls::tls::Credentials cred;
    cred.key_label = c.key_label;
    cred.cert_label = c.cert_label;
    cred.ca_label = c.ca_label;
    if (!c.ca_file.empty()) cred.ca_data = ca = read_file(c.ca_file);
    if (!c.cert_file.empty()) cred.cert_data = cert = read_file(c.cert_file);
    std::vector<std::string_view> alpn(c.alpn.begin(), c.alpn.end());
    p11tls::tls::Params params;
    params.server_name = c.sni;
    params.alpn = alpn;
    params.timeout_ms = c.timeout_ms;
    if (!tls.configure(cred, params)) die(tls.error_message());

    auto tcp = p11tls::PosixTcp::connect(c.host.c_str(), c.port, c.timeout_ms);
    if (!tcp) die(fmt::format("cannot connect to {}:{}: {}", c.host, c.port, p11tls::describe(tcp.error().code)));
    tls.attach(std::move(*tcp));
    if (!tls.connect()) die(fmt::format("TLS with {}:{}: {}", c.host, c.port, tls.error_message()));
    return body(tls);
}

/// Opens the token `c` names, logs in when a PIN is given, connects, and returns
/// `body(session)`; every failure exits with one line.
template <class F>
int with_tls(const Connection& c, F&& body) {
    if (!c.module.empty()) {
        auto token = p11tls::ModuleToken::open(c.module.c_str(), c.token_label);
        if (!token) die(fmt::format("cannot use PKCS#11 module {}: {}", c.module, p11tls::describe(token.error().code)));
        auto& t = **token;
        if (auto r = c.pin.empty() ? p11tls::Result<void>{} : t.login_user(c.pin); !r)
            die(fmt::format("login to the module's token failed: {}", p11tls::describe(r.error().code)));
        return run_connected(t, c, body);
    }
    auto token = p11tls::board::open_token(c.store);
    if (!token) die(fmt::format("cannot open the token in {}: {}", c.store, p11tls::describe(token.error().code)));
    auto& t = **token;
    if (!c.pin.empty()) {
        // Login is token-wide and lasts while a session is open: this one stays open.
        auto s = t.open_session(CKF_SERIAL_SESSION);
        if (!s || !t.login(*s, CKU_USER, c.pin))
            die("login to the token failed (wrong PIN, PIN locked, or token not initialized)");
    }
    return run_connected(t, c, body);
}

}  // namespace example
