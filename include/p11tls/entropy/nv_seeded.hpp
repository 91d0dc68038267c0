// SPDX-License-Identifier: MIT
#pragma once
/// NvSeeded<Source, Nvm>: entropy that is unique per board and never repeats after a reset,
/// even when the source itself would: a seed record in the board's Nvm, mixed at boot with
/// the device's unique id and fresh source output, and replaced before the first byte of the
/// boot is handed out (the idea of mbedTLS's MBEDTLS_ENTROPY_NV_SEED, made power-cut safe).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <mbedtls/platform_util.h>

#include <p11tls/concepts/entropy.hpp>
#include <p11tls/concepts/nvm.hpp>
#include <p11tls/detail/mbedtls/sha256.hpp>
#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/nvm/ram_nvm.hpp>

namespace p11tls {

/// Wraps a (health-tested) Entropy source and keeps a seed record in the board's Nvm.
///
/// Boot (the first `fill`, or `boot()`):
///   1. load the record {boot counter c, seed s} (none yet: c = 0, s = 0);
///   2. read fresh source output F (enough for 320 bits of min-entropy);
///   3. K = SHA-256(label, unique id, s, c + 1, F); next seed s' = SHA-256(K, "seed"),
///      output key k = SHA-256(K, "output");
///   4. store {c + 1, s'} (Nvm::store is atomic), and only when that succeeded
///   5. hand out blocks SHA-256(k, block number, fresh source output).
/// A power cut before the store completes leaves {c, s}: the next boot derives the same K only
/// if the source repeats itself, and nothing derived from that K was ever handed out. A cut
/// after it leaves {c + 1, s'}: the next boot starts from a seed no boot has used. Either way no
/// stream is handed out twice. Two boards with equal sources differ by their unique ids.
///
/// Every block also needs fresh source output: a failing source fails `fill` (zeroized output,
/// `Errc::entropy_failed`), the seed never stands in for it. The output is conditioned (each
/// 32-byte block hashes >= 320 bits of the source's declared min-entropy): full entropy.
///
/// The Nvm is the board's (usually the token's: SoftToken binds its own Nvm to an Entropy
/// that has `bind(N&)`), and the record id belongs to the board range (>= 0x80000000) that
/// the token leaves alone. The record is read and written only at boot.
template <Entropy Source, Nvm N, RecordId Record = 0x80000001u>
class NvSeeded {
    static_assert(Record >= 0x80000000u, "board records live at 0x80000000 and up; the token owns the rest");

public:
    static constexpr RecordId record_id = Record;
    static constexpr std::size_t max_unique_id = 64;
    static constexpr std::size_t block_size = detail::mbed::Sha256::size;
    /// Source bytes hashed into each 32-byte block (and into the boot key): 256 + 64 bits of
    /// min-entropy, what SP 800-90B §3.1.5.1.2 asks of a vetted conditioner for full entropy.
    static constexpr std::size_t fresh_bytes = [] {
        constexpr double need = 8.0 * block_size + 64.0;
        const double n = need / entropy_per_byte<Source>;
        auto b = static_cast<std::size_t>(n);
        return static_cast<double>(b) < n ? b + 1 : b;
    }();
    /// The record: magic, boot counter (big-endian), seed.
    static constexpr std::size_t record_size = 4 + 8 + 32;
    static_assert(record_size <= N::max_record_size);

    /// `unique_id`: the device's unique id (e.g. the MCU's UID registers), at most 64 bytes.
    NvSeeded(Source source, std::span<const std::byte> unique_id, N* nvm = nullptr) noexcept(
        std::is_nothrow_move_constructible_v<Source>)
        : source_(std::move(source)), nvm_(nvm) {
        P11TLS_ASSERT(unique_id.size() <= max_unique_id, "NvSeeded: unique id longer than 64 bytes");
        uid_len_ = std::min(unique_id.size(), max_unique_id);
        std::copy_n(unique_id.begin(), uid_len_, uid_.begin());
    }
    NvSeeded(NvSeeded&& o) noexcept(std::is_nothrow_move_constructible_v<Source>)
        : source_(std::move(o.source_)), nvm_(o.nvm_), uid_(o.uid_), uid_len_(o.uid_len_), key_(o.key_),
          blocks_(o.blocks_), boots_(o.boots_), booted_(o.booted_) {
        o.forget();
    }
    NvSeeded& operator=(NvSeeded&&) = delete;
    ~NvSeeded() { forget(); }

    /// The Nvm that holds the seed record (SoftToken calls this with its own).
    void bind(N& nvm) noexcept { nvm_ = &nvm; }

    /// Runs the boot steps if they have not run: loads and replaces the seed record. Fails
    /// closed (nothing handed out later either) when the source fails, the record is corrupt
    /// or cannot be written. `Error::native` then holds the source's or the Nvm's reason.
    [[nodiscard]] Result<void> boot() noexcept {
        if (booted_) return {};
        P11TLS_ASSERT(nvm_ != nullptr, "NvSeeded: bind() the board's Nvm before the first fill");
        if (!nvm_) return fail(Errc::entropy_failed);

        std::array<std::byte, record_size> rec{};
        std::uint64_t count = 0;
        if (auto n = nvm_->load(Record, rec); n) {
            if (*n != record_size || !has_magic(rec)) return fail(Errc::entropy_failed, static_cast<std::int32_t>(Errc::nvm_corrupt));
            for (int i = 0; i < 8; ++i) count = (count << 8) | std::to_integer<std::uint64_t>(rec[4 + i]);
        } else if (n.error().code != Errc::nvm_not_found) {
            return fail(Errc::entropy_failed, static_cast<std::int32_t>(n.error().code));
        }
        const auto seed = std::span(rec).subspan(12, 32);

        std::array<std::byte, fresh_bytes> fresh;
        std::array<std::byte, block_size> k, next, out_key;
        auto wipe = [&] {
            mbedtls_platform_zeroize(fresh.data(), fresh.size());
            mbedtls_platform_zeroize(k.data(), k.size());
            mbedtls_platform_zeroize(next.data(), next.size());
            mbedtls_platform_zeroize(out_key.data(), out_key.size());
            mbedtls_platform_zeroize(rec.data(), rec.size());
        };
        if (auto r = source_.fill(fresh); !r) {
            wipe();
            return fail(Errc::entropy_failed, r.error().native);
        }
        ++count;
        bool ok = detail::mbed::Sha256{}.part(label("p11tls NvSeeded boot v1")).part({uid_.data(), uid_len_})
                      .part(seed).u64(count).part(fresh).finish(k);
        ok = ok && detail::mbed::Sha256{}.update(k).part(label("next seed")).finish(next);
        ok = ok && detail::mbed::Sha256{}.update(k).part(label("output key")).finish(out_key);
        if (!ok) {
            wipe();
            return fail(Errc::entropy_failed);
        }
        write_record(rec, count, next);
        // The new seed is committed before anything derived from k leaves this object.
        if (auto r = nvm_->store(Record, rec); !r) {
            wipe();
            return fail(Errc::entropy_failed, static_cast<std::int32_t>(r.error().code));
        }
        key_ = out_key;
        blocks_ = 0;
        boots_ = count;
        booted_ = true;
        wipe();
        return {};
    }

    /// Fills `out` with conditioned blocks; boots first if needed.
    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        if (auto r = boot(); !r) {
            mbedtls_platform_zeroize(out.data(), out.size());
            return r;
        }
        std::array<std::byte, fresh_bytes> fresh;
        std::array<std::byte, block_size> block;
        Result<void> result;
        for (std::size_t done = 0; done < out.size(); done += block_size) {
            if (auto r = source_.fill(fresh); !r) {
                result = fail(Errc::entropy_failed, r.error().native);
                break;
            }
            if (!detail::mbed::Sha256{}.update(key_).u64(++blocks_).part(fresh).finish(block)) {
                result = fail(Errc::entropy_failed);
                break;
            }
            const std::size_t n = std::min(block_size, out.size() - done);
            std::memcpy(out.data() + done, block.data(), n);
        }
        mbedtls_platform_zeroize(fresh.data(), fresh.size());
        mbedtls_platform_zeroize(block.data(), block.size());
        if (!result) mbedtls_platform_zeroize(out.data(), out.size());
        return result;
    }

    /// Writes a factory seed (e.g. from the provisioning station's RNG), keeping the boot
    /// counter if the record is readable. Also the way back from a corrupt record.
    [[nodiscard]] Result<void> provision(std::span<const std::byte> factory_seed) noexcept {
        P11TLS_ASSERT(nvm_ != nullptr, "NvSeeded: bind() the board's Nvm first");
        if (!nvm_) return fail(Errc::invalid_argument);
        std::array<std::byte, record_size> rec{};
        std::uint64_t count = 0;
        if (auto n = nvm_->load(Record, rec); n && *n == record_size && has_magic(rec))
            for (int i = 0; i < 8; ++i) count = (count << 8) | std::to_integer<std::uint64_t>(rec[4 + i]);
        std::array<std::byte, block_size> seed;
        if (!detail::mbed::Sha256{}.part(label("p11tls NvSeeded factory v1")).part(factory_seed).finish(seed))
            return fail(Errc::crypto_failed);
        write_record(rec, count, seed);
        auto r = nvm_->store(Record, rec);
        mbedtls_platform_zeroize(seed.data(), seed.size());
        mbedtls_platform_zeroize(rec.data(), rec.size());
        return r;
    }

    /// Re-initializes the source (HealthTested: the way out of a failure). The boot key stays.
    [[nodiscard]] Result<void> reset() noexcept
        requires requires(Source& s) { { s.reset() } -> std::same_as<Result<void>>; }
    {
        return source_.reset();
    }

    /// Boots so far on this board (the record's counter), 0 before this object booted.
    [[nodiscard]] std::uint64_t boot_count() const noexcept { return boots_; }
    [[nodiscard]] bool booted() const noexcept { return booted_; }
    [[nodiscard]] Source& source() noexcept { return source_; }

private:
    static constexpr std::byte magic[4] = {std::byte{'p'}, std::byte{'1'}, std::byte{'1'}, std::byte{'s'}};

    static std::span<const std::byte> label(const char* s) noexcept {
        return {reinterpret_cast<const std::byte*>(s), std::strlen(s)};
    }
    static bool has_magic(std::span<const std::byte> rec) noexcept { return std::equal(magic, magic + 4, rec.begin()); }
    static void write_record(std::span<std::byte, record_size> rec, std::uint64_t count,
                             std::span<const std::byte, block_size> seed) noexcept {
        std::copy_n(magic, 4, rec.begin());
        for (int i = 0; i < 8; ++i) rec[4 + i] = std::byte(count >> (56 - 8 * i));
        std::copy(seed.begin(), seed.end(), rec.begin() + 12);
    }
    void forget() noexcept {
        mbedtls_platform_zeroize(key_.data(), key_.size());
        booted_ = false;
    }

    Source source_;
    N* nvm_;
    std::array<std::byte, max_unique_id> uid_{};
    std::size_t uid_len_ = 0;
    std::array<std::byte, block_size> key_{};
    std::uint64_t blocks_ = 0;
    std::uint64_t boots_ = 0;
    bool booted_ = false;
};

static_assert(Entropy<NvSeeded<HealthTested<detail::ProbeNoise>, RamNvm<1, 64>>>);

}  // namespace p11tls
