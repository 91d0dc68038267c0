// SPDX-License-Identifier: MIT
#pragma once
// A simulated board with a hardware RNG, as the entropy tests reset it: what survives a reset
// (its Nvm, its unique id, and a TRNG sequence that starts over at each power-up) and the
// entropy stack it boots, NvSeeded<HealthTested<SimTrng>, Nvm>, feeding the DRBG.
#include <array>
#include <cstdint>
#include <cstring>
#include <set>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/detail/mbedtls/drbg.hpp>
#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/entropy/nv_seeded.hpp>
#include <p11tls/entropy/sim_trng.hpp>
#include <p11tls/nvm/ram_nvm.hpp>

#include "support/result.hpp"

namespace p11tls::test {

using SimNvm = RamNvm<8, 256>;
using BoardTrng = HealthTested<SimTrng<>>;
using BoardEntropy = NvSeeded<BoardTrng, SimNvm>;
using Block = std::array<unsigned char, 16>;

/// What outlives a reset. The TRNG replays `trng_sequence` after every power-up: the worst
/// case a seed record must cover.
struct SimBoard {
    SimNvm nvm;
    std::array<std::byte, 12> uid{};
    std::uint64_t trng_sequence = 1;

    SimBoard(std::string_view id, std::uint64_t sequence) : trng_sequence(sequence) {
        std::memcpy(uid.data(), id.data(), std::min(id.size(), uid.size()));
    }
    /// The entropy stack of a fresh boot, over the surviving Nvm.
    [[nodiscard]] BoardEntropy entropy() { return BoardEntropy(BoardTrng(SimTrng<>{trng_sequence}), uid, &nvm); }
};

/// Splits DRBG output into 16-byte blocks.
inline std::vector<Block> blocks(std::span<const std::byte> bytes) {
    std::vector<Block> out(bytes.size() / 16);
    for (std::size_t i = 0; i < out.size(); ++i) std::memcpy(out[i].data(), bytes.data() + 16 * i, 16);
    return out;
}

/// Seeds a DRBG from `e` as the token does and returns `n` bytes of its output; empty if
/// seeding or generating failed (`failed` then holds the error).
template <class E>
std::vector<std::byte> drbg_output(E& e, std::size_t n, Errc* failed = nullptr) {
    detail::mbed::Drbg<E> drbg(e);
    static constexpr char personal[] = "p11tls SoftToken";
    std::vector<std::byte> out(n, std::byte{0xEE});
    Errc c = code(drbg.seed(std::as_bytes(std::span(personal))));
    if (c == no_error) c = code(drbg.fill(out));
    if (failed) *failed = c;
    if (c != no_error) {
        // Nothing weak came out: the buffer is untouched or zeroized.
        const bool untouched = std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0xEE}; });
        const bool zeroed = std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0}; });
        CHECK((untouched || zeroed));
        return {};
    }
    return out;
}

}  // namespace p11tls::test
