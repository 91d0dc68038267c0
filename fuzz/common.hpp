// SPDX-License-Identifier: MIT
#pragma once
// What the fuzz targets share: a front-to-back input reader (and the writer that builds seeds
// in the same format), deterministic entropy, the invariant check that turns a logic bug into
// a crash, and the seed-writing mode: `P11TLS_FUZZ_WRITE_SEEDS=DIR fuzz-X` writes the target's
// seed corpus into DIR and exits instead of fuzzing (scripts/fuzz.sh --seeds).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <p11tls/result.hpp>

/// A broken invariant is a crash, so libFuzzer records the input that broke it.
#define P11TLS_FUZZ_CHECK(cond)                                                                   \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            __builtin_trap();                                                                     \
        }                                                                                         \
    } while (0)

namespace p11tls::fuzz {

using Bytes = std::vector<std::uint8_t>;

/// Reads an input from the front. Past the end every read gives zeros (or an empty span), so
/// a truncated input is still a valid one.
class Reader {
public:
    Reader(const std::uint8_t* data, std::size_t size) noexcept : p_(data), n_(size) {}

    std::uint8_t u8() noexcept {
        if (n_ == 0) return 0;
        --n_;
        return *p_++;
    }
    std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | u8() << 8); }
    std::uint32_t u32() noexcept { return u16() | static_cast<std::uint32_t>(u16()) << 16; }
    /// Up to `len` bytes (fewer when the input ends).
    std::span<const std::uint8_t> bytes(std::size_t len) noexcept {
        len = len < n_ ? len : n_;
        std::span<const std::uint8_t> s(p_, len);
        p_ += len;
        n_ -= len;
        return s;
    }
    /// A chunk written by Writer::chunk: u16 length, then the bytes.
    std::span<const std::uint8_t> chunk() noexcept { return bytes(u16()); }
    std::span<const std::uint8_t> rest() noexcept { return bytes(n_); }
    [[nodiscard]] bool empty() const noexcept { return n_ == 0; }
    [[nodiscard]] std::size_t left() const noexcept { return n_; }

private:
    const std::uint8_t* p_;
    std::size_t n_;
};

/// Builds seeds in Reader's format.
class Writer {
public:
    Writer& u8(unsigned v) {
        b_.push_back(static_cast<std::uint8_t>(v));
        return *this;
    }
    Writer& u16(unsigned v) { return u8(v & 0xFF).u8(v >> 8 & 0xFF); }
    Writer& u32(std::uint32_t v) { return u16(v & 0xFFFF).u16(v >> 16); }
    Writer& bytes(std::span<const std::uint8_t> v) {
        b_.insert(b_.end(), v.begin(), v.end());
        return *this;
    }
    Writer& bytes(std::span<const std::byte> v) {
        return bytes(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));
    }
    Writer& bytes(std::string_view v) {
        return bytes(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));
    }
    template <class T>
    Writer& chunk(const T& v) {
        const std::size_t before = b_.size();
        u16(0);
        bytes(v);
        const std::size_t len = b_.size() - before - 2;
        b_[before] = static_cast<std::uint8_t>(len & 0xFF);
        b_[before + 1] = static_cast<std::uint8_t>(len >> 8);
        return *this;
    }
    [[nodiscard]] const Bytes& data() const noexcept { return b_; }

private:
    Bytes b_;
};

inline std::span<const std::byte> as_bytes(std::span<const std::uint8_t> s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

/// An Entropy model whose output is a fixed function of its seed (splitmix64), so a run is
/// repeatable: the fuzzer's crashes reproduce, and the TLS target's client sends the same
/// bytes the recorded server answered.
class DetEntropy {
public:
    explicit DetEntropy(std::uint64_t seed = 0x70313174'6c73667aull) noexcept : state_(seed) {}
    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        for (std::byte& b : out) {
            if (avail_ == 0) {
                std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                word_ = z ^ (z >> 31);
                avail_ = 8;
            }
            b = std::byte(word_ & 0xFF);
            word_ >>= 8;
            --avail_;
        }
        return {};
    }

private:
    std::uint64_t state_, word_ = 0;
    unsigned avail_ = 0;
};

/// Writes one seed file DIR/NAME.
inline void write_seed(const std::string& dir, std::string_view name, const Bytes& data) {
    std::string path = dir + "/" + std::string(name);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(data.data(), 1, data.size(), f) != data.size() || std::fclose(f) != 0) {
        std::fprintf(stderr, "cannot write seed %s\n", path.c_str());
        std::exit(1);
    }
}

/// The seed-writing mode: when P11TLS_FUZZ_WRITE_SEEDS names a directory, runs `make(dir)`
/// and exits.
template <class F>
void seed_mode(F&& make) {
    const char* dir = std::getenv("P11TLS_FUZZ_WRITE_SEEDS");
    if (!dir || !*dir) return;
    make(std::string(dir));
    std::fprintf(stderr, "seeds written to %s\n", dir);
    std::exit(0);
}

}  // namespace p11tls::fuzz
