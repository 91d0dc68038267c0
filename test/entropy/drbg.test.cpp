// SPDX-License-Identifier: MIT
// The mbedTLS bridge (detail/mbedtls/drbg.hpp): the board's source is the DRBG's only source,
// registered as strong; a failed fill is MBEDTLS_ERR_ENTROPY_SOURCE_FAILED to mbedTLS; the
// threshold follows the declared min-entropy; reseeding follows the configured interval.
#include <algorithm>

#include <catch2/catch.hpp>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include <p11tls/entropy/getrandom.hpp>

#include "entropy/sim_board.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;
using detail::mbed::Drbg;

bool all_zero(std::span<const std::byte> b) {
    return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

}  // namespace

TEST_CASE("the DRBG's only entropy source is the board's, although mbedTLS was built with the OS's", "[entropy][drbg]") {
    // Debian's mbedTLS registers /dev/urandom (strong) and more in mbedtls_entropy_init.
    mbedtls_entropy_context plain;
    mbedtls_entropy_init(&plain);
    const int defaults = plain.source_count;
    mbedtls_entropy_free(&plain);
    INFO("default sources in this mbedTLS: " << defaults);
    CHECK(defaults >= 1);

    BoardTrng trng(SimTrng<>{1});
    Drbg<BoardTrng> drbg(trng);
    CHECK(drbg.source_count() == 0);
    REQUIRE(code(drbg.seed({})) == no_error);
    CHECK(drbg.source_count() == 1);

    // Equal board sources give equal streams: nothing else is mixed in.
    BoardTrng a(SimTrng<>{2}), b(SimTrng<>{2});
    CHECK(drbg_output(a, 256) == drbg_output(b, 256));
}

TEST_CASE("a failed fill reaches mbedTLS as MBEDTLS_ERR_ENTROPY_SOURCE_FAILED from a strong source", "[entropy][drbg]") {
    BoardTrng trng(SimTrng<>{3});
    trng.source().never_ready();
    mbedtls_entropy_context ctx;
    mbedtls_entropy_init(&ctx);
    ctx.source_count = 0;
    REQUIRE(mbedtls_entropy_add_source(&ctx, &Drbg<BoardTrng>::poll, &trng, Drbg<BoardTrng>::strong_threshold,
                                       MBEDTLS_ENTROPY_SOURCE_STRONG) == 0);
    unsigned char out[32];
    CHECK(mbedtls_entropy_func(&ctx, out, sizeof out) == MBEDTLS_ERR_ENTROPY_SOURCE_FAILED);
    mbedtls_entropy_free(&ctx);
}

TEST_CASE("seeding from a failed source fails and generates nothing", "[entropy][drbg]") {
    BoardTrng trng(SimTrng<>{4});
    trng.source().stick_at(0);
    Drbg<BoardTrng> drbg(trng);
    auto r = drbg.seed({});
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(r.error().native == MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED);
    std::array<std::byte, 64> out;
    out.fill(std::byte{0xEE});
    REQUIRE(code(drbg.fill(out)) == Errc::entropy_failed);
    CHECK(std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0xEE}; }));
}

TEST_CASE("reseeding follows the interval; a source that fails meanwhile fails the reseeding request", "[entropy][drbg]") {
    BoardTrng trng(SimTrng<>{5});
    Drbg<BoardTrng> drbg(trng);
    const int interval = GENERATE(1, 4);
    REQUIRE(code(drbg.seed({}, interval)) == no_error);
    std::array<std::byte, 64> out;
    // mbedTLS reseeds when its counter passes the interval: `interval` requests after seeding.
    for (int i = 0; i < interval; ++i) REQUIRE(code(drbg.fill(out)) == no_error);
    const auto samples = trng.samples_tested();
    trng.source().stick_at(0x77);
    out.fill(std::byte{0xEE});
    auto r = drbg.fill(out);
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(all_zero(out));
    CHECK(trng.samples_tested() > samples);  // the request went to the source
    CHECK(trng.failure() == health::Failure::repetition_count);
}

TEST_CASE("a source with less than full entropy per byte is gathered proportionally more", "[entropy][drbg]") {
    // Binary samples at H = 1 bit each: (384 + 64) / 1 bytes before each seed.
    using Bits = HealthTested<SimTrng<1>>;
    STATIC_REQUIRE(Drbg<Bits>::strong_threshold == 448);
    STATIC_REQUIRE(Drbg<BoardTrng>::strong_threshold == 56);
    STATIC_REQUIRE(Drbg<GetrandomEntropy>::strong_threshold == 56);
    Bits bits(SimTrng<1>{6});
    Drbg<Bits> drbg(bits);
    REQUIRE(code(drbg.seed({})) == no_error);
    // Start-up (1024), then whole gathers of MBEDTLS_ENTROPY_MAX_GATHER until >= 448.
    CHECK(bits.samples_tested() == 1024 + 4 * MBEDTLS_ENTROPY_MAX_GATHER);
}
