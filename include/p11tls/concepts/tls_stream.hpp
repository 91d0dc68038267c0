// SPDX-License-Identifier: MIT
#pragma once
/// The TlsStream concept: what an application uses to talk TLS. TlsSession is one model; a
/// board whose modem or secure element terminates TLS supplies another.
#include <concepts>
#include <cstddef>
#include <span>

#include <p11tls/result.hpp>

namespace p11tls {

/// `connect()` runs (or, non-blocking, continues) the handshake; `send`/`recv` move
/// application data (`Errc::would_block` when non-blocking and not ready; `Errc::connection_closed`
/// after the peer's close_notify); `close()` sends close_notify.
template <class T>
concept TlsStream = requires(T& s, std::span<const std::byte> in, std::span<std::byte> out) {
    { s.connect() } -> std::same_as<Result<void>>;
    { s.send(in) } -> std::same_as<Result<std::size_t>>;
    { s.recv(out) } -> std::same_as<Result<std::size_t>>;
    { s.close() } -> std::same_as<Result<void>>;
};

}  // namespace p11tls
