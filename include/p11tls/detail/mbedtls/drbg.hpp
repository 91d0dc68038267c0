// SPDX-License-Identifier: MIT
#pragma once
// CTR_DRBG seeded only through mbedTLS's entropy accumulator from a p11tls Entropy policy.
#include <cstring>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>

#include <p11tls/concepts/entropy.hpp>
#include <p11tls/detail/mbedtls/crypto.hpp>
#include <p11tls/detail/mbedtls/error.hpp>

namespace p11tls::detail::mbed {

/// A DRBG owned by one consumer (token, TLS session). Not movable: mbedTLS keeps pointers
/// into it. A failing source makes seeding, reseeding and therefore every output fail.
///
/// The board's source is the only one: mbedtls_entropy_init() registers the system library's
/// default sources (Debian's build: /dev/urandom as a strong source, plus HAVEGE and the
/// cycle counter), and mbedTLS 2.28 has no call to remove a source, so the constructor empties
/// the context's source table (a public member in 2.28) before adding the board's. Otherwise
/// the OS would quietly mix into every seed: a weak or replaying board source would look fine
/// in tests and be the only source on the MCU it is meant for.
template <Entropy E>
class Drbg {
public:
    /// Bytes mbedTLS must gather from the source before each seed or reseed: enough for
    /// CTR_DRBG's entropy input (MBEDTLS_CTR_DRBG_ENTROPY_LEN bytes) plus 64 bits, at the
    /// min-entropy per byte the source declares (8 unless it says less).
    static constexpr std::size_t strong_threshold = [] {
        constexpr double need = 8.0 * MBEDTLS_CTR_DRBG_ENTROPY_LEN + 64.0;
        const double n = need / entropy_per_byte<E>;
        auto b = static_cast<std::size_t>(n);
        return static_cast<double>(b) < n ? b + 1 : b;
    }();
    // mbedtls_entropy_func gives up after 256 gathers of MBEDTLS_ENTROPY_MAX_GATHER bytes.
    static_assert(strong_threshold <= 256 * MBEDTLS_ENTROPY_MAX_GATHER, "source declares too little entropy per byte");

    explicit Drbg(E& source) noexcept : source_(source) {
        mbedtls_entropy_init(&entropy_);
        entropy_.source_count = 0;
        mbedtls_ctr_drbg_init(&drbg_);
    }
    ~Drbg() {
        mbedtls_ctr_drbg_free(&drbg_);
        mbedtls_entropy_free(&entropy_);
    }
    Drbg(const Drbg&) = delete;
    Drbg& operator=(const Drbg&) = delete;

    /// Registers the source as the (only, strong) source and seeds. `personal` distinguishes
    /// instances; every `reseed_interval` requests the DRBG reseeds from the source (1: every
    /// request after the first).
    [[nodiscard]] Result<void> seed(std::span<const std::byte> personal, int reseed_interval = MBEDTLS_CTR_DRBG_RESEED_INTERVAL) noexcept {
        if (!registered_) {
            P11TLS_TRY(check(mbedtls_entropy_add_source(&entropy_, &poll, &source_, strong_threshold,
                                                        MBEDTLS_ENTROPY_SOURCE_STRONG)));
            registered_ = true;
        }
        P11TLS_TRY(check(mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                               reinterpret_cast<const unsigned char*>(personal.data()),
                                               personal.size())));
        mbedtls_ctr_drbg_set_prediction_resistance(&drbg_, MBEDTLS_CTR_DRBG_PR_OFF);
        mbedtls_ctr_drbg_set_reseed_interval(&drbg_, reseed_interval);
        seeded_ = true;
        return {};
    }
    [[nodiscard]] bool seeded() const noexcept { return seeded_; }

    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        if (!seeded_) return fail(Errc::entropy_failed);
        auto* p = reinterpret_cast<unsigned char*>(out.data());
        std::size_t left = out.size();
        while (left > 0) {
            std::size_t n = left < MBEDTLS_CTR_DRBG_MAX_REQUEST ? left : MBEDTLS_CTR_DRBG_MAX_REQUEST;
            if (int ret = mbedtls_ctr_drbg_random(&drbg_, p, n); ret != 0) {
                mbedtls_platform_zeroize(out.data(), out.size());
                return fail(to_error(ret));
            }
            p += n;
            left -= n;
        }
        return {};
    }
    /// Mixes caller data into the state with a reseed (fresh entropy is still required).
    [[nodiscard]] Result<void> reseed(std::span<const std::byte> additional) noexcept {
        if (!seeded_) return fail(Errc::entropy_failed);
        std::size_t n = additional.size() < MBEDTLS_CTR_DRBG_MAX_SEED_INPUT - MBEDTLS_CTR_DRBG_ENTROPY_LEN
                            ? additional.size()
                            : MBEDTLS_CTR_DRBG_MAX_SEED_INPUT - MBEDTLS_CTR_DRBG_ENTROPY_LEN;
        return check(mbedtls_ctr_drbg_reseed(&drbg_, reinterpret_cast<const unsigned char*>(additional.data()), n));
    }
    /// Sources registered with the accumulator (1 once seeded: the board's alone).
    [[nodiscard]] int source_count() const noexcept { return entropy_.source_count; }
    /// The f_rng/p_rng pair for mbedTLS calls.
    [[nodiscard]] Rng rng() noexcept { return {&mbedtls_ctr_drbg_random, &drbg_}; }

    /// The source as an mbedtls_entropy_f_source_ptr (ctx: an E*): a failed fill is
    /// MBEDTLS_ERR_ENTROPY_SOURCE_FAILED and no bytes.
    static int poll(void* ctx, unsigned char* out, std::size_t len, std::size_t* olen) {
        *olen = 0;
        auto r = static_cast<E*>(ctx)->fill({reinterpret_cast<std::byte*>(out), len});
        if (!r) return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
        *olen = len;
        return 0;
    }

private:
    E& source_;
    mbedtls_entropy_context entropy_;
    mbedtls_ctr_drbg_context drbg_;
    bool registered_ = false;
    bool seeded_ = false;
};

}  // namespace p11tls::detail::mbed
