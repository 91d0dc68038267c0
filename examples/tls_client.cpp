// SPDX-License-Identifier: MIT
// tls_client: a mutually authenticated TLS 1.2 connection whose client key stays in the token.
// Sends its standard input, prints what the server sends until the server closes.
//
//   tls_client --host H --port P [--sni NAME] (--ca FILE | --ca-label L) [--key-label L]
//              [--cert-label L | --cert FILE] [--alpn P]... [--store DIR] [--pin PIN]
//              [--module PATH [--token-label L]] [--timeout MS]
// The PIN may come from P11TLS_PIN instead. Exit 0 on success; otherwise one line on stderr.
#include <cerrno>
#include <string>
#include <string_view>

#include <poll.h>
#include <unistd.h>

#include <fmt/core.h>

#include "connection.hpp"

namespace {

using example::die;

const std::string usage = std::string("usage: tls_client --host H --port P [options]\n") + example::connection_usage +
                          "Sends standard input, prints what the server sends until it closes.\n";

example::Connection parse(int argc, char** argv) {
    example::Connection c;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            fmt::print("{}", usage);
            std::exit(0);
        }
        if (i + 1 >= argc) example::usage_error(fmt::format("option {} needs a value", a));
        if (!c.parse(a, argv[++i])) example::usage_error(fmt::format("unknown option {}", a));
    }
    c.finish();
    return c;
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

template <class Session>
int relay(Session& tls, const example::Connection& o) {
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
    example::program = "tls_client";
    example::Connection c = parse(argc, argv);
    p11tls::board::initialize();
    return example::with_tls(c, [&](auto& tls) { return relay(tls, c); });
}
