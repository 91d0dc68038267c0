// SPDX-License-Identifier: MIT
#pragma once
// SHA-256 over several parts, for the entropy conditioning in NvSeeded. Zeroizes its state.
#include <array>
#include <cstdint>
#include <span>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

namespace p11tls::detail::mbed {

class Sha256 {
public:
    static constexpr std::size_t size = 32;
    Sha256() noexcept {
        mbedtls_sha256_init(&ctx_);
        ok_ = mbedtls_sha256_starts_ret(&ctx_, 0) == 0;
    }
    ~Sha256() { mbedtls_sha256_free(&ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    Sha256& update(std::span<const std::byte> data) noexcept {
        if (ok_ && !data.empty())
            ok_ = mbedtls_sha256_update_ret(&ctx_, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 0;
        return *this;
    }
    /// A length-prefixed part (4 bytes big-endian, then the bytes): unambiguous concatenation.
    Sha256& part(std::span<const std::byte> data) noexcept {
        const auto n = static_cast<std::uint32_t>(data.size());
        const std::byte len[4] = {std::byte(n >> 24), std::byte(n >> 16), std::byte(n >> 8), std::byte(n)};
        return update(len).update(data);
    }
    Sha256& u64(std::uint64_t v) noexcept {
        std::byte b[8];
        for (int i = 0; i < 8; ++i) b[i] = std::byte(v >> (56 - 8 * i));
        return update(b);
    }
    /// Writes the digest; false if mbedTLS failed anywhere (out is then zeroed).
    [[nodiscard]] bool finish(std::span<std::byte, size> out) noexcept {
        if (ok_) ok_ = mbedtls_sha256_finish_ret(&ctx_, reinterpret_cast<unsigned char*>(out.data())) == 0;
        if (!ok_) mbedtls_platform_zeroize(out.data(), out.size());
        return ok_;
    }

private:
    mbedtls_sha256_context ctx_;
    bool ok_ = false;
};

}  // namespace p11tls::detail::mbed
