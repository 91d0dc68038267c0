// SPDX-License-Identifier: MIT
#pragma once
/// MemoryPipe: two connected in-memory Transport ends, for tests, fuzzing and single-image MCU
/// tests where client and server run in one loop. No heap, no threads: an empty pipe reads
/// as Errc::would_block, a full one writes as Errc::would_block.
#include <array>
#include <cstring>

#include <p11tls/concepts/transport.hpp>

namespace p11tls {

/// One direction of a pipe: a ring buffer of `N` bytes.
template <std::size_t N>
class PipeBuffer {
public:
    std::size_t write(std::span<const std::byte> in) noexcept {
        std::size_t n = 0;
        while (n < in.size() && size_ < N) {
            buf_[(head_ + size_) % N] = in[n++];
            ++size_;
        }
        return n;
    }
    std::size_t read(std::span<std::byte> out) noexcept {
        std::size_t n = 0;
        while (n < out.size() && size_ > 0) {
            out[n++] = buf_[head_];
            head_ = (head_ + 1) % N;
            --size_;
        }
        return n;
    }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    void close() noexcept { closed_ = true; }
    [[nodiscard]] bool closed() const noexcept { return closed_; }

private:
    std::array<std::byte, N> buf_{};
    std::size_t head_ = 0, size_ = 0;
    bool closed_ = false;
};

/// One end of a pipe: reads from `rx`, writes to `tx`.
template <std::size_t N = 32 * 1024>
class MemoryPipe {
public:
    MemoryPipe(PipeBuffer<N>& rx, PipeBuffer<N>& tx) noexcept : rx_(&rx), tx_(&tx) {}

    [[nodiscard]] Result<std::size_t> send(std::span<const std::byte> in) noexcept {
        if (tx_->closed()) return fail(Errc::connection_closed);
        std::size_t n = tx_->write(in);
        if (n == 0 && !in.empty()) return fail(Errc::would_block);
        return n;
    }
    [[nodiscard]] Result<std::size_t> recv(std::span<std::byte> out) noexcept {
        std::size_t n = rx_->read(out);
        if (n == 0 && !out.empty()) return fail(rx_->closed() ? Errc::connection_closed : Errc::would_block);
        return n;
    }
    /// Ends this side's output: the peer reads connection_closed once it drained the data.
    void close() noexcept { tx_->close(); }

private:
    PipeBuffer<N>* rx_;
    PipeBuffer<N>* tx_;
};

/// Both buffers of a pipe and its two ends.
template <std::size_t N = 32 * 1024>
struct Pipe {
    PipeBuffer<N> a_to_b, b_to_a;
    MemoryPipe<N> a{b_to_a, a_to_b};
    MemoryPipe<N> b{a_to_b, b_to_a};
    Pipe() = default;
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
};

static_assert(Transport<MemoryPipe<>>);

}  // namespace p11tls
