// SPDX-License-Identifier: MIT
#pragma once
/// The Transport concept: a byte stream under TLS (a TCP socket, a modem, an in-memory pipe).
#include <concepts>
#include <cstddef>
#include <span>

#include <p11tls/result.hpp>

namespace p11tls {

/// `send(bytes)` returns how many bytes were taken (at least one), `recv(out)` how many were
/// read (at least one). Conditions are errors, not magic numbers: `Errc::would_block` (try
/// again), `Errc::timeout`, `Errc::connection_closed` (orderly end of stream),
/// `Errc::transport_failed`.
template <class T>
concept Transport = requires(T& t, std::span<const std::byte> in, std::span<std::byte> out) {
    { t.send(in) } -> std::same_as<Result<std::size_t>>;
    { t.recv(out) } -> std::same_as<Result<std::size_t>>;
};

}  // namespace p11tls
