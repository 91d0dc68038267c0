// SPDX-License-Identifier: MIT
#pragma once
// CRC-32 (IEEE 802.3, reflected 0xEDB88320), table computed at compile time.
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <span>

namespace p11tls::detail {

inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    return t;
}();

/// Continues a CRC over `data`; start with `crc = 0`.
[[nodiscard]] constexpr std::uint32_t crc32(std::span<const std::byte> data, std::uint32_t crc = 0) noexcept {
    crc = ~crc;
    for (std::byte b : data) crc = crc32_table[(crc ^ std::to_integer<std::uint32_t>(b)) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

static_assert(crc32_table[1] == 0x77073096u);

// Little-endian integer codec for on-media formats.
// On little-endian targets (x86, Cortex-M) these are single unaligned loads and stores: the
// token's searches read every attribute header through get_le32.
inline void put_le32(std::byte* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, 4);
    } else {
        for (int i = 0; i < 4; ++i) p[i] = std::byte(v >> (8 * i));
    }
}
[[nodiscard]] inline std::uint32_t get_le32(const std::byte* p) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        return v;
    } else {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::to_integer<std::uint32_t>(p[i]) << (8 * i);
        return v;
    }
}

}  // namespace p11tls::detail
