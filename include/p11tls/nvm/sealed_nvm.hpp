// SPDX-License-Identifier: MIT
#pragma once
/// SealedNvm<Nvm, KeySource, Entropy>: an Nvm adaptor that encrypts and authenticates every
/// record with AES-256-GCM, so a dump of the store (an external SPI flash, the store
/// directory) reveals no key material and a changed record is rejected, not used.
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include <mbedtls/platform_util.h>

#include <p11tls/concepts/entropy.hpp>
#include <p11tls/concepts/key_source.hpp>
#include <p11tls/concepts/nvm.hpp>
#include <p11tls/detail/crc32.hpp>
#include <p11tls/detail/mbedtls/gcm.hpp>

namespace p11tls {

/// Each record of the inner store holds {'S', version, 0, 0}, a 12-byte IV, the ciphertext and
/// the 16-byte tag. The additional authenticated data is "P11S", the record's 4-byte header
/// (so its format version) and the record id: a record copied to another id, or with any
/// byte changed, fails.
/// A record that fails its tag (tampered, truncated, another key) loads as `Errc::nvm_corrupt`;
/// the token then skips it (`corrupt_records()`) and never overwrites it.
///
/// Nonces: a fresh random 96-bit IV from the board's Entropy for every store. It needs no
/// state, so there is nothing a power cut could roll back: a counter would have to be written
/// to the store before use, and a cut between that write and a reset could hand the same value
/// out twice. NIST SP 800-38D (8.3) allows 2^32 random-IV encryptions per key; a store cannot
/// come near that before its flash wears out (e.g. 100 000 erase cycles of a 64 KiB partition
/// hold about 2^27 records of 48 bytes). A failed entropy source fails the store; it never
/// falls back to a predictable IV.
///
/// The key is asked of the KeySource once, at `open`, and kept in the object (zeroized on
/// destruction). RAM: one record buffer of `Inner::max_record_size` bytes.
template <Nvm Inner, KeySource K, Entropy E>
class SealedNvm {
public:
    using inner_type = Inner;
    static constexpr std::uint8_t format_version = 1;
    static constexpr std::size_t header_size = 4;
    static constexpr std::size_t overhead = header_size + detail::mbed::gcm_iv_size + detail::mbed::gcm_tag_size;
    static constexpr std::size_t max_record_size = Inner::max_record_size - overhead;
    static_assert(Inner::max_record_size > overhead);

    /// Takes the key from `keys`; fails if the key source does.
    [[nodiscard]] static Result<SealedNvm> open(Inner inner, K keys, E entropy) {
        SealedNvm s(std::move(inner), std::move(keys), std::move(entropy));
        P11TLS_TRY(s.keys_.key(s.key_));
        return s;
    }

    SealedNvm(SealedNvm&&) = default;
    SealedNvm& operator=(SealedNvm&&) = default;
    ~SealedNvm() {
        mbedtls_platform_zeroize(key_.data(), key_.size());
        mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
    }

    [[nodiscard]] Result<void> store(RecordId id, std::span<const std::byte> data) {
        if (data.size() > max_record_size) return fail(Errc::nvm_record_too_large);
        auto rec = std::span(scratch_).first(overhead + data.size());
        rec[0] = std::byte{'S'};
        rec[1] = std::byte{format_version};
        rec[2] = rec[3] = std::byte{0};
        auto iv = rec.subspan(header_size).template first<detail::mbed::gcm_iv_size>();
        P11TLS_TRY(entropy_.fill(iv));
        Aad aad;
        make_aad(aad, rec.template first<header_size>(), id);
        P11TLS_TRY(detail::mbed::aes_gcm_seal(key_, iv, aad, data, rec.subspan(header_size + iv.size(), data.size()),
                                              rec.template last<detail::mbed::gcm_tag_size>()));
        return inner_.store(id, rec);
    }

    [[nodiscard]] Result<std::size_t> load(RecordId id, std::span<std::byte> out) const {
        auto n = inner_.load(id, scratch_);
        if (!n) return fail(n.error());
        if (*n < overhead || scratch_[0] != std::byte{'S'} || scratch_[1] != std::byte{format_version})
            return fail(Errc::nvm_corrupt);
        const std::size_t len = *n - overhead;
        if (out.size() < len) return fail(Errc::buffer_too_small);
        auto rec = std::span<const std::byte>(scratch_).first(*n);
        Aad aad;
        make_aad(aad, rec.template first<header_size>(), id);
        P11TLS_TRY(detail::mbed::aes_gcm_open(key_, rec.subspan(header_size).template first<detail::mbed::gcm_iv_size>(), aad,
                                              rec.subspan(header_size + detail::mbed::gcm_iv_size, len),
                                              rec.template last<detail::mbed::gcm_tag_size>(), out.first(len)));
        return len;
    }

    [[nodiscard]] Result<std::size_t> size(RecordId id) const {
        auto n = inner_.size(id);
        if (!n) return fail(n.error());
        if (*n < overhead) return fail(Errc::nvm_corrupt);
        return *n - overhead;
    }

    [[nodiscard]] Result<void> remove(RecordId id) { return inner_.remove(id); }
    [[nodiscard]] Result<std::size_t> list(std::span<RecordId> ids) const { return inner_.list(ids); }

    /// The store underneath (tests, inspection). Writing to it bypasses the sealing.
    [[nodiscard]] Inner& inner() noexcept { return inner_; }

private:
    SealedNvm(Inner inner, K keys, E entropy) : inner_(std::move(inner)), keys_(std::move(keys)), entropy_(std::move(entropy)) {}

    using Aad = std::array<std::byte, 4 + header_size + 4>;
    static void make_aad(Aad& aad, std::span<const std::byte, header_size> header, RecordId id) noexcept {
        aad = {std::byte{'P'}, std::byte{'1'}, std::byte{'1'}, std::byte{'S'}};
        std::copy(header.begin(), header.end(), aad.begin() + 4);
        detail::put_le32(aad.data() + 4 + header_size, id);
    }

    Inner inner_;
    K keys_;
    E entropy_;
    std::array<std::byte, detail::mbed::gcm_key_size> key_{};
    mutable std::array<std::byte, Inner::max_record_size> scratch_{};  // one sealed record
};

}  // namespace p11tls
