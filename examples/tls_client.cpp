// SPDX-License-Identifier: MIT
// tls_client: a mutually authenticated TLS 1.2 connection whose client key stays in the token.
// Sends its standard input, prints what the server sends until the server closes.
//
//   tls_client --host H --port P [--sni NAME] (--ca FILE | --ca-label L) [--key-label L]
//              [--cert-label L | --cert FILE] [--alpn P]... [--store DIR] [--pin PIN]
//              [--module PATH [--token-label L]] [--timeout MS]
// The PIN may come from P11TLS_PIN instead. Exit 0 on success; otherwise one line on stderr.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include <fmt/core.h>

#include <p11tls/board.hpp>
#include <p11tls/tls/session.hpp>
#include <p11tls/token/module_token.hpp>
#include <p11tls/transport/posix_tcp.hpp>

namespace {

struct Options {
    std::string host, sni, ca_file, ca_label = "Root Cert", key_label = "Device Priv TLS Key",
        cert_label = "Device Cert", cert_file, store = p11tls::board::store_directory(), pin, module, token_label;
    unsigned port = 0;
    int timeout_ms = 10000;
    std::vector<std::string> alpn;
};

constexpr const char* usage =
    "usage: tls_client --host H --port P [--sni NAME] (--ca FILE | --ca-label L) [--key-label L]\n"
    "                  [--cert-label L | --cert FILE] [--alpn P]... [--store DIR] [--pin PIN]\n"
    "                  [--module PATH [--token-label L]] [--timeout MS]\n";

[[noreturn]] void die(const std::string& msg, int code = 1) {
    fmt::print(stderr, "tls_client: {}\n", msg);
    std::exit(code);
}

Options parse(int argc, char** argv) {
    Options o;
    if (const char* p = std::getenv("P11TLS_PIN")) o.pin = p;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            fmt::print("{}", usage);
            std::exit(0);
        }
        if (i + 1 >= argc) die(fmt::format("option {} needs a value\n{}", a, usage), 2);
        std::string v = argv[++i];
        if (a == "--host") o.host = v;
        else if (a == "--port") {
            char* end = nullptr;
            unsigned long p = std::strtoul(v.c_str(), &end, 10);
            if (!end || *end || p == 0 || p > 65535) die(fmt::format("--port: '{}' is not a port number", v), 2);
            o.port = static_cast<unsigned>(p);
        } else if (a == "--sni") o.sni = v;
        else if (a == "--ca") o.ca_file = v;
        else if (a == "--ca-label") o.ca_label = v;
        else if (a == "--key-label") o.key_label = v;
        else if (a == "--cert-label") o.cert_label = v;
        else if (a == "--cert") o.cert_file = v;
        else if (a == "--alpn") o.alpn.push_back(v);
        else if (a == "--store") o.store = v;
        else if (a == "--pin") o.pin = v;
        else if (a == "--module") o.module = v;
        else if (a == "--token-label") o.token_label = v;
        else if (a == "--timeout") o.timeout_ms = std::atoi(v.c_str());
        else die(fmt::format("unknown option {}\n{}", a, usage), 2);
    }
    if (o.host.empty() || o.port == 0) die(fmt::format("--host and --port are required\n{}", usage), 2);
    if (o.sni.empty()) o.sni = o.host;
    return o;
}

std::vector<std::byte> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) die(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    std::vector<std::byte> data;
    std::byte buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    return data;
}

bool write_all(int fd, std::span<const std::byte> d) {
    while (!d.empty()) {
        ssize_t n = ::write(fd, d.data(), d.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        d = d.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

template <class Tok>
int run(Tok& token, const Options& o) {
    p11tls::board::Entropy entropy;
    p11tls::TlsSession<Tok, p11tls::PosixTcp, p11tls::board::Entropy> tls(token, entropy);

    std::vector<std::byte> ca, cert;
    p11tls::tls::Credentials cred;
    cred.key_label = o.key_label;
    cred.cert_label = o.cert_label;
    cred.ca_label = o.ca_label;
    if (!o.ca_file.empty()) cred.ca_data = ca = read_file(o.ca_file);
    if (!o.cert_file.empty()) cred.cert_data = cert = read_file(o.cert_file);
    std::vector<std::string_view> alpn(o.alpn.begin(), o.alpn.end());
    p11tls::tls::Params params;
    params.server_name = o.sni;
    params.alpn = alpn;
    params.timeout_ms = o.timeout_ms;
    if (!tls.configure(cred, params)) die(tls.error_message());

    auto tcp = p11tls::PosixTcp::connect(o.host.c_str(), o.port, o.timeout_ms);
    if (!tcp) die(fmt::format("cannot connect to {}:{}: {}", o.host, o.port, p11tls::describe(tcp.error().code)));
    tls.attach(std::move(*tcp));
    if (!tls.connect()) die(tls.error_message());
    fmt::print(stderr, "tls_client: connected to {}:{} ({}{}{})\n", o.host, o.port, tls.ciphersuite(),
               tls.alpn_protocol() ? ", ALPN " : "", tls.alpn_protocol() ? tls.alpn_protocol() : "");

    // Relay: stdin to the server until EOF, the server to stdout until it closes.
    bool stdin_open = true;
    std::byte buf[4096];
    for (;;) {
        pollfd fds[2] = {{tls.transport()->fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int n = ::poll(fds, stdin_open ? 2 : 1, o.timeout_ms);
        if (n == 0) die("timed out waiting for the server");
        if (n < 0 && errno != EINTR) die("poll failed");
        if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP))) {
            ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
            if (got <= 0) {
                stdin_open = false;
            } else {
                std::span<const std::byte> out(buf, static_cast<std::size_t>(got));
                while (!out.empty()) {
                    auto sent = tls.send(out);
                    if (!sent) die(tls.error_message());
                    out = out.subspan(*sent);
                }
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            for (;;) {
                auto got = tls.recv(buf);
                if (!got) {
                    if (got.error().code == p11tls::Errc::connection_closed) {
                        (void)tls.close();
                        return 0;
                    }
                    if (got.error().code == p11tls::Errc::would_block) break;
                    die(tls.error_message());
                }
                if (!write_all(STDOUT_FILENO, std::span(buf, *got))) die("cannot write to stdout");
                if (!tls.pending()) break;
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    p11tls::board::initialize();
    if (!o.module.empty()) {
        auto token = p11tls::ModuleToken::open(o.module.c_str(), o.token_label);
        if (!token) die(fmt::format("cannot use PKCS#11 module {}: {}", o.module, p11tls::describe(token.error().code)));
        auto& t = **token;
        if (!o.pin.empty()) {
            if (auto r = t.login_user(o.pin); !r) die(fmt::format("login to the module's token failed: {}", p11tls::describe(r.error().code)));
        }
        return run(t, o);
    }
    auto token = p11tls::board::open_token(o.store);
    if (!token) die(fmt::format("cannot open the token in {}: {}", o.store, p11tls::describe(token.error().code)));
    auto& t = **token;
    if (!o.pin.empty()) {
        auto s = t.open_session(CKF_SERIAL_SESSION);
        if (!s || !t.login(*s, CKU_USER, o.pin))
            die("login to the token failed (wrong PIN, PIN locked, or token not initialized)");
        // Login is token-wide and lasts while a session is open: keep this one open.
    }
    return run(t, o);
}
