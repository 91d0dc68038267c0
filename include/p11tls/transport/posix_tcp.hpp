// SPDX-License-Identifier: MIT
#pragma once
/// PosixTcp: the host's Transport, a TCP socket with TCP_NODELAY (mbedTLS 2.28 sends each
/// handshake message in its own write; with Nagle each handshake would wait ~40 ms on ACKs).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <p11tls/concepts/transport.hpp>

namespace p11tls {

class PosixTcp {
public:
    /// Connects to `host`:`port` within `timeout_ms` (each resolved address in turn).
    [[nodiscard]] static Result<PosixTcp> connect(const char* host, unsigned port, int timeout_ms = 10000) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        char service[8];
        std::snprintf(service, sizeof service, "%u", port);
        addrinfo* list = nullptr;
        if (int rc = ::getaddrinfo(host, service, &hints, &list); rc != 0) return fail(Errc::connect_failed, rc);
        Error last{Errc::connect_failed, 0};
        for (addrinfo* ai = list; ai; ai = ai->ai_next) {
            int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
            if (fd < 0) continue;
            PosixTcp sock(fd);
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                if (errno != EINPROGRESS) {
                    last.native = errno;
                    continue;
                }
                pollfd p{fd, POLLOUT, 0};
                int n = ::poll(&p, 1, timeout_ms);
                int err = 0;
                socklen_t len = sizeof err;
                if (n == 0) {
                    last = {Errc::timeout, 0};
                    continue;
                }
                if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
                    last.native = err ? err : errno;
                    continue;
                }
            }
            int one = 1;
            (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            ::freeaddrinfo(list);
            sock.timeout_ms_ = timeout_ms;
            return sock;
        }
        ::freeaddrinfo(list);
        return fail(last);
    }

    PosixTcp(PosixTcp&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), timeout_ms_(o.timeout_ms_), blocking_(o.blocking_) {}
    PosixTcp& operator=(PosixTcp&& o) noexcept {
        std::swap(fd_, o.fd_);
        timeout_ms_ = o.timeout_ms_;
        blocking_ = o.blocking_;
        return *this;
    }
    ~PosixTcp() {
        if (fd_ >= 0) ::close(fd_);
    }

    /// How long a blocking send or recv waits (milliseconds; negative waits forever).
    void set_timeout(int ms) noexcept { timeout_ms_ = ms; }
    /// Non-blocking: send/recv return Errc::would_block instead of waiting.
    void set_blocking(bool b) noexcept { blocking_ = b; }
    [[nodiscard]] int fd() const noexcept { return fd_; }

    [[nodiscard]] Result<std::size_t> send(std::span<const std::byte> in) noexcept {
        for (;;) {
            ssize_t n = ::send(fd_, in.data(), in.size(), MSG_NOSIGNAL);
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(errno == EPIPE || errno == ECONNRESET ? Errc::connection_closed : Errc::transport_failed, errno);
            P11TLS_TRY(wait(POLLOUT));
        }
    }
    [[nodiscard]] Result<std::size_t> recv(std::span<std::byte> out) noexcept {
        for (;;) {
            ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
            if (n > 0) return static_cast<std::size_t>(n);
            if (n == 0) return fail(Errc::connection_closed);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return fail(errno == ECONNRESET ? Errc::connection_closed : Errc::transport_failed, errno);
            P11TLS_TRY(wait(POLLIN));
        }
    }

private:
    explicit PosixTcp(int fd) noexcept : fd_(fd) {}
    Result<void> wait(short events) noexcept {
        if (!blocking_) return fail(Errc::would_block);
        pollfd p{fd_, events, 0};
        int n;
        do n = ::poll(&p, 1, timeout_ms_);
        while (n < 0 && errno == EINTR);
        if (n == 0) return fail(Errc::timeout);
        if (n < 0) return fail(Errc::transport_failed, errno);
        return {};
    }

    int fd_ = -1;
    int timeout_ms_ = 10000;
    bool blocking_ = true;
};

static_assert(Transport<PosixTcp>);

}  // namespace p11tls
