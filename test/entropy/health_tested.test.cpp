// SPDX-License-Identifier: MIT
// HealthTested: SP 800-90B cutoffs computed at compile time match the standard's Table 2; a stuck
// source stops at exactly the RCT cutoff, a biased one at the APT; healthy sources run 10^7
// samples without a false alarm; a failure latches until reset().
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/entropy/sim_trng.hpp>

#include "support/result.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;

/// A NoiseSource that plays a script: sample i is script(i). Lets a test place every sample.
template <unsigned Bits, double H>
struct Scripted {
    static constexpr unsigned bits_per_sample = Bits;
    static constexpr double min_entropy_per_sample = H;
    std::function<std::uint8_t(std::uint64_t)> script;
    std::uint64_t i = 0;
    Result<void> fill(std::span<std::byte> out) {
        for (std::byte& b : out) b = std::byte{script(i++)};
        return {};
    }
};

// Background samples the tests never object to: never twice in a row, each value about five
// times per 512-sample window (0x10..0x73, so 0xAA, 0xBB, 0xCC stand out).
std::uint8_t spread(std::uint64_t i) { return static_cast<std::uint8_t>(0x10 + i % 100); }

bool all_zero(std::span<const std::byte> b) {
    return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; });
}

}  // namespace

TEST_CASE("RCT and APT cutoffs computed from H and alpha are the values of SP 800-90B Table 2", "[entropy][health]") {
    // alpha = 2^-20, the standard's table: binary sources (W = 1024) ...
    STATIC_REQUIRE(health::apt_window(1) == 1024);
    STATIC_REQUIRE(health::apt_cutoff(0.2, 1, 20) == 941);
    STATIC_REQUIRE(health::apt_cutoff(0.4, 1, 20) == 840);
    STATIC_REQUIRE(health::apt_cutoff(0.6, 1, 20) == 748);
    STATIC_REQUIRE(health::apt_cutoff(0.8, 1, 20) == 664);
    STATIC_REQUIRE(health::apt_cutoff(1.0, 1, 20) == 589);
    // ... and non-binary sources (W = 512).
    STATIC_REQUIRE(health::apt_window(8) == 512);
    STATIC_REQUIRE(health::apt_cutoff(0.5, 8, 20) == 410);
    STATIC_REQUIRE(health::apt_cutoff(1.0, 8, 20) == 311);
    STATIC_REQUIRE(health::apt_cutoff(2.0, 8, 20) == 177);
    STATIC_REQUIRE(health::apt_cutoff(4.0, 8, 20) == 62);
    STATIC_REQUIRE(health::apt_cutoff(8.0, 8, 20) == 13);
    // RCT: C = 1 + ceil(20 / H).
    STATIC_REQUIRE(health::rct_cutoff(1.0, 20) == 21);
    STATIC_REQUIRE(health::rct_cutoff(2.0, 20) == 11);
    STATIC_REQUIRE(health::rct_cutoff(4.0, 20) == 6);
    STATIC_REQUIRE(health::rct_cutoff(8.0, 20) == 4);
    STATIC_REQUIRE(health::rct_cutoff(0.8, 20) == 26);
    STATIC_REQUIRE(health::rct_cutoff(3.0, 20) == 8);
}

TEST_CASE("the default alpha 2^-40 gives the cutoffs the README lists", "[entropy][health]") {
    // Cross-checked with exact rational binomial tails; CRITBINOM(1024, 2^-0.8, 1-2^-40) = 698
    // is also the APT cutoff Google's Cr50 firmware uses for its 1-bit TRNG.
    STATIC_REQUIRE(health::critbinom(1024, health::exp2_neg(0.8), 40) == 698);
    STATIC_REQUIRE(health::apt_cutoff(0.8, 1, 40) == 699);
    STATIC_REQUIRE(health::rct_cutoff(0.8, 40) == 51);  // Cr50's RCT_CUTOFF_SAMPLES too
    STATIC_REQUIRE(HealthTested<SimTrng<8>>::rct_cutoff == 6);
    STATIC_REQUIRE(HealthTested<SimTrng<8>>::apt_cutoff == 19);
    STATIC_REQUIRE(HealthTested<SimTrng<8>>::apt_window == 512);
    STATIC_REQUIRE(HealthTested<SimTrng<8, 4.0>>::rct_cutoff == 11);
    STATIC_REQUIRE(HealthTested<SimTrng<8, 4.0>>::apt_cutoff == 78);
    STATIC_REQUIRE(HealthTested<SimTrng<1>>::rct_cutoff == 41);
    STATIC_REQUIRE(HealthTested<SimTrng<1>>::apt_cutoff == 625);
    STATIC_REQUIRE(HealthTested<SimTrng<1>>::apt_window == 1024);
    STATIC_REQUIRE(HealthTested<GetrandomEntropy>::rct_cutoff == 6);
    STATIC_REQUIRE(HealthTested<SimTrng<8>>::startup_samples == 1024);
    STATIC_REQUIRE(HealthTested<SimTrng<1>>::startup_samples == 1024);
    CHECK(health::exp2_neg(0.5) == Approx(0.70710678118654752).epsilon(1e-15));
}

TEMPLATE_TEST_CASE("a source stuck after start-up fails at exactly the RCT cutoff", "[entropy][health]", SimTrng<8>,
                   (SimTrng<8, 4.0>), SimTrng<1>) {
    HealthTested<TestType> ht(TestType{7});
    std::vector<std::byte> out(4096);
    REQUIRE(code(ht.fill(out)) == no_error);
    const std::uint64_t before = ht.samples_tested();
    REQUIRE(before == HealthTested<TestType>::startup_samples + out.size());

    const std::uint8_t stuck = 1;
    // Samples just before equal to the stuck value already count toward the run.
    std::uint64_t run = 0;
    while (run < out.size() && out[out.size() - 1 - run] == std::byte{stuck}) ++run;
    ht.source().stick_at(stuck);
    std::vector<std::byte> more(256, std::byte{0xEE});
    auto r = ht.fill(more);
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(r.error().native == static_cast<int>(health::Failure::repetition_count));
    CHECK(ht.failure() == health::Failure::repetition_count);
    CHECK(ht.samples_tested() == before + HealthTested<TestType>::rct_cutoff - run);
    CHECK(all_zero(more));
}

TEST_CASE("a source stuck from power-up fails the start-up test at sample C", "[entropy][health]") {
    HealthTested<SimTrng<>> ht(SimTrng<>{3});
    ht.source().stick_at(0x5A);
    std::array<std::byte, 32> out;
    out.fill(std::byte{0xEE});
    REQUIRE(code(ht.fill(out)) == Errc::entropy_failed);
    CHECK(ht.samples_tested() == 6);
    CHECK(ht.failure() == health::Failure::repetition_count);
    CHECK(all_zero(out));
}

TEST_CASE("RCT: C-1 repeats pass, the C-th fails; APT: cutoff-1 recurrences in a window pass", "[entropy][health]") {
    using Ht = HealthTested<Scripted<8, 8.0>>;
    constexpr std::uint32_t c = Ht::rct_cutoff;  // 6
    SECTION("RCT") {
        // After start-up: a run of C-1 identical samples, a different one, then a run of C.
        const std::uint64_t s = Ht::startup_samples;
        Ht ht({[&](std::uint64_t i) -> std::uint8_t {
            if (i >= s && i < s + c - 1) return 0xAA;
            if (i >= s + 100 && i < s + 100 + c) return 0xBB;
            return spread(i);
        }});
        std::vector<std::byte> out(100);
        REQUIRE(code(ht.fill(out)) == no_error);
        std::vector<std::byte> more(200);
        REQUIRE(code(ht.fill(more)) == Errc::entropy_failed);
        CHECK(ht.failure() == health::Failure::repetition_count);
        CHECK(ht.samples_tested() == s + 100 + c);
    }
    SECTION("APT") {
        constexpr std::uint32_t w = Ht::apt_window, cut = Ht::apt_cutoff;  // 512, 19
        // The window after start-up begins with 0xCC and holds cut-1 of them (never adjacent):
        // it passes. The next begins with 0xCC too and its cut-th one fails.
        const std::uint64_t w2 = Ht::startup_samples, w3 = w2 + w;
        Ht ht({[&](std::uint64_t i) -> std::uint8_t {
            if (i >= w2 && i < w2 + 2 * (cut - 1) && (i - w2) % 2 == 0) return 0xCC;
            if (i >= w3 && i < w3 + 2 * cut && (i - w3) % 2 == 0) return 0xCC;
            return spread(i);
        }});
        std::vector<std::byte> out(w);
        REQUIRE(code(ht.fill(out)) == no_error);
        REQUIRE(std::count(out.begin(), out.end(), std::byte{0xCC}) == cut - 1);
        REQUIRE(code(ht.fill(out)) == Errc::entropy_failed);
        CHECK(ht.failure() == health::Failure::adaptive_proportion);
        CHECK(ht.samples_tested() == w3 + 2 * (cut - 1) + 1);
    }
}

TEST_CASE("a source biased past its declared min-entropy fails the APT", "[entropy][health]") {
    SECTION("8-bit samples declared full entropy, one value at 1/16 instead of 1/256") {
        HealthTested<SimTrng<8>> ht(SimTrng<8>{11});
        ht.source().bias(0x00, 1.0 / 16);  // never twice in a row: only the APT can see it
        std::vector<std::byte> out(4096);
        Result<void> r;
        std::size_t samples = 0;
        while (r && samples < (1u << 20)) {
            r = ht.fill(out);
            samples += out.size();
        }
        REQUIRE(code(r) == Errc::entropy_failed);
        CHECK(ht.failure() == health::Failure::adaptive_proportion);
        INFO("samples until the APT fired: " << ht.samples_tested());
        CHECK(ht.samples_tested() < 64 * 1024);
    }
    SECTION("binary samples declared H = 1, ones at 0.7") {
        HealthTested<SimTrng<1>> ht(SimTrng<1>{12});
        ht.source().bias(1, 0.7, false);
        std::vector<std::byte> out(4096);
        Result<void> r = ht.fill(out);
        for (int i = 0; r && i < 256; ++i) r = ht.fill(out);
        REQUIRE(code(r) == Errc::entropy_failed);
        CHECK(ht.failure() == health::Failure::adaptive_proportion);
    }
}

TEST_CASE("a bias within the declared min-entropy is no failure", "[entropy][health]") {
    // Declared H = 4 (most likely value at most 1/16); the source gives one value 1/32.
    HealthTested<SimTrng<8, 4.0>> ht(SimTrng<8, 4.0>{13});
    ht.source().bias(0x00, 1.0 / 32, false);
    std::vector<std::byte> out(1 << 16);
    for (int i = 0; i < 16; ++i) REQUIRE(code(ht.fill(out)) == no_error);
    CHECK(ht.healthy());
}

TEST_CASE("healthy sources run 10^7 samples without a false alarm at alpha = 2^-40", "[entropy][health]") {
    constexpr std::size_t total = 10'000'000;
    std::vector<std::byte> out(1 << 16);
    auto run = [&](auto& ht) {
        std::size_t n = 0;
        while (n < total) {
            const std::size_t k = std::min(out.size(), total - n);
            REQUIRE(code(ht.fill(std::span(out).first(k))) == no_error);
            n += k;
        }
        CHECK(ht.samples_tested() == total + ht.startup_samples);
    };
    SECTION("simulated 8-bit TRNG") {
        HealthTested<SimTrng<8>> ht(SimTrng<8>{21});
        run(ht);
    }
    SECTION("simulated binary TRNG") {
        HealthTested<SimTrng<1>> ht(SimTrng<1>{22});
        run(ht);
    }
    SECTION("getrandom") {
        HealthTested<GetrandomEntropy> ht;
        run(ht);
    }
}

TEST_CASE("alpha is a per-sample rate: at 2^-20 a binary source false-alarms a few times in 10^7", "[entropy][health]") {
    // Why the default is 2^-40. A run of 21 equal bits ends at a given sample with probability
    // 2^-21 (alpha = 2^-20 bounds it): ~4.8 RCT alarms expected in 10^7 samples, the APT ~0.01.
    HealthTested<SimTrng<1>, 20> ht(SimTrng<1>{23});
    STATIC_REQUIRE(HealthTested<SimTrng<1>, 20>::rct_cutoff == 21);
    std::vector<std::byte> out(1 << 16);
    int alarms = 0;
    std::uint64_t tested = 0;
    while (tested < 10'000'000) {
        const std::uint64_t before = ht.samples_tested();
        if (!ht.fill(out)) {
            ++alarms;
            REQUIRE(code(ht.reset()) == no_error);
        }
        tested += ht.samples_tested() - before;
    }
    INFO("false alarms: " << alarms);
    CHECK(alarms >= 1);
    CHECK(alarms <= 15);
}

TEST_CASE("a failure latches: every later request fails until reset() re-runs the start-up test", "[entropy][health]") {
    HealthTested<SimTrng<>> ht(SimTrng<>{31});
    std::array<std::byte, 64> out;
    REQUIRE(code(ht.fill(out)) == no_error);
    ht.source().stick_at(0x42);
    REQUIRE(code(ht.fill(out)) == Errc::entropy_failed);
    ht.source().heal();  // the source looks fine again, the wrapper does not trust it
    for (int i = 0; i < 3; ++i) {
        out.fill(std::byte{0xEE});
        REQUIRE(code(ht.fill(out)) == Errc::entropy_failed);
        CHECK(all_zero(out));
    }
    const std::uint64_t before = ht.samples_tested();
    REQUIRE(code(ht.reset()) == no_error);
    CHECK(ht.source().resets() == 1);
    CHECK(ht.samples_tested() == before + HealthTested<SimTrng<>>::startup_samples);
    REQUIRE(code(ht.fill(out)) == no_error);
    CHECK(ht.healthy());

    SECTION("a reset while the source is still stuck fails again in the start-up test") {
        ht.source().stick_at(0x42);
        REQUIRE(code(ht.fill(out)) == Errc::entropy_failed);
        REQUIRE(code(ht.reset()) == Errc::entropy_failed);
        CHECK(ht.failure() == health::Failure::repetition_count);
        REQUIRE(code(ht.fill(out)) == Errc::entropy_failed);
    }
}

TEST_CASE("a TRNG that never becomes ready fails with the driver's reason, and keeps failing", "[entropy][health]") {
    HealthTested<SimTrng<>> ht(SimTrng<>{41});
    ht.source().never_ready();
    std::array<std::byte, 16> out;
    out.fill(std::byte{0xEE});
    auto r = ht.fill(out);
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(r.error().native == SimTrng<>::not_ready_error);
    CHECK(ht.failure() == health::Failure::source);
    CHECK(all_zero(out));
    CHECK(code(ht.reset()) == Errc::entropy_failed);  // sticky: re-initializing does not help

    SECTION("a transient not-ready is cured by reset()") {
        HealthTested<SimTrng<>> t2(SimTrng<>{42});
        t2.source().never_ready(false);
        REQUIRE(code(t2.fill(out)) == Errc::entropy_failed);
        REQUIRE(code(t2.fill(out)) == Errc::entropy_failed);
        REQUIRE(code(t2.reset()) == no_error);
        REQUIRE(code(t2.fill(out)) == no_error);
    }
}
