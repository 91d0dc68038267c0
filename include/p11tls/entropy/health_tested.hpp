// SPDX-License-Identifier: MIT
#pragma once
/// HealthTested<Source>: the NIST SP 800-90B §4.4 continuous health tests (Repetition Count
/// Test, Adaptive Proportion Test) and the §4.3 start-up test on a NoiseSource, failing closed.
/// The cutoffs are computed at compile time from the source's declared min-entropy per sample
/// H and the false-positive rate alpha = 2^-AlphaLog2.
#include <array>
#include <cstdint>
#include <type_traits>

#include <mbedtls/platform_util.h>

#include <p11tls/concepts/noise_source.hpp>

namespace p11tls {

/// The cutoff arithmetic of SP 800-90B §4.4, as constexpr functions (tests check them against
/// the standard's Table 2).
namespace health {

/// 2^-h for h >= 0: 2^-floor(h) exactly, times exp(-frac(h) ln 2) by its Taylor series
/// (|x| < 0.7, 30 terms: exact to double precision).
[[nodiscard]] constexpr double exp2_neg(double h) noexcept {
    double r = 1.0;
    while (h >= 1.0) {
        r *= 0.5;
        h -= 1.0;
    }
    const double x = -h * 0.69314718055994530942;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 30; ++k) {
        term *= x / k;
        sum += term;
    }
    return r * sum;
}

/// RCT cutoff (§4.4.1): C = 1 + ceil(-log2(alpha) / H). The test fails when C consecutive
/// samples are identical; a healthy source does that with probability <= alpha per sample.
[[nodiscard]] constexpr std::uint32_t rct_cutoff(double h, unsigned alpha_log2) noexcept {
    const double q = static_cast<double>(alpha_log2) / h;
    auto c = static_cast<std::uint32_t>(q);
    if (static_cast<double>(c) < q) ++c;
    return 1 + c;
}

/// APT window (§4.4.2): 1024 samples for a binary source, 512 for any other.
[[nodiscard]] constexpr std::uint32_t apt_window(unsigned bits_per_sample) noexcept {
    return bits_per_sample == 1 ? 1024 : 512;
}

/// Excel's CRITBINOM(n, p, 1 - 2^-alpha_log2): the smallest k with P(X <= k) >= 1 - alpha for
/// X ~ Binomial(n, p), computed as the smallest k whose upper tail P(X > k) <= alpha.
/// The probabilities are kept relative to the mode (f(mode) = 1, neighbours by the ratio
/// f(j+1)/f(j) = (n-j)/(j+1) * p/(1-p)), so nothing underflows where it matters and no
/// logarithm is needed; terms too small for a double are far below any alpha >= 2^-64.
[[nodiscard]] constexpr std::uint32_t critbinom(std::uint32_t n, double p, unsigned alpha_log2) noexcept {
    constexpr std::uint32_t max_n = 1024;
    if (n > max_n || p <= 0.0 || p >= 1.0) return n;
    std::array<double, max_n + 1> f{};
    const double q = 1.0 - p;
    auto mode = static_cast<std::uint32_t>((n + 1) * p);
    if (mode > n) mode = n;
    f[mode] = 1.0;
    for (std::uint32_t j = mode; j < n; ++j) f[j + 1] = f[j] * (static_cast<double>(n - j) / (j + 1)) * (p / q);
    for (std::uint32_t j = mode; j > 0; --j) f[j - 1] = f[j] * (static_cast<double>(j) / (n - j + 1)) * (q / p);
    double total = 0.0;
    for (std::uint32_t j = 0; j <= n; ++j) total += f[j];
    double alpha = total;
    for (unsigned i = 0; i < alpha_log2; ++i) alpha *= 0.5;
    double tail = 0.0;  // P(X > k) * total, for k from n down
    for (std::uint32_t k = n + 1; k-- > 0;) {
        if (tail > alpha) return k + 1;
        tail += f[k];
    }
    return 0;
}

/// APT cutoff (§4.4.2): C = 1 + CRITBINOM(W, 2^-H, 1 - alpha). The test fails when the first
/// sample of a window recurs C times within it.
[[nodiscard]] constexpr std::uint32_t apt_cutoff(double h, unsigned bits_per_sample, unsigned alpha_log2) noexcept {
    return 1 + critbinom(apt_window(bits_per_sample), exp2_neg(h), alpha_log2);
}

/// Why a HealthTested source stopped; the `native` of its Error.
enum class Failure : std::int32_t {
    none = 0,
    source = 1,               ///< the source itself reported an error (e.g. never became ready)
    repetition_count = 2,     ///< RCT: rct_cutoff identical samples in a row
    adaptive_proportion = 3,  ///< APT: one value too often within a window
};

}  // namespace health

/// Wraps a NoiseSource in the SP 800-90B health tests and models Entropy (and NoiseSource:
/// its bytes are the source's samples, passed through unchanged once tested).
///
/// - The start-up test runs the continuous tests over `startup_samples` (1,024, at least one
///   full APT window) before the first byte is handed out; those samples are discarded.
/// - Every sample handed out has passed the RCT and the APT; the window state carries over
///   from one `fill` to the next, so the tests see one continuous stream.
/// - On a failure `fill` zeroizes its output and returns `Errc::entropy_failed` (`native` is
///   a health::Failure), and so does every later call, until `reset()`: the board
///   re-initializes the source and the start-up test runs again.
///
/// AlphaLog2: alpha = 2^-AlphaLog2 per test, 20..64. The default 40 is the strict end of the
/// range SP 800-90B recommends (2^-20..2^-40): at 2^-20 a healthy byte source would stop on
/// average every few million samples, and a stopped source stops the token and TLS.
template <NoiseSource S, unsigned AlphaLog2 = 40>
class HealthTested {
    static_assert(AlphaLog2 >= 20 && AlphaLog2 <= 64, "SP 800-90B: alpha <= 2^-20; 2^-64 is the precision limit");

public:
    static constexpr unsigned bits_per_sample = S::bits_per_sample;
    static constexpr double min_entropy_per_sample = S::min_entropy_per_sample;
    /// One sample per byte: a byte carries a sample's min-entropy.
    static constexpr double min_entropy_per_byte = S::min_entropy_per_sample;
    static constexpr unsigned alpha_log2 = AlphaLog2;
    static constexpr std::uint32_t rct_cutoff = health::rct_cutoff(min_entropy_per_sample, AlphaLog2);
    static constexpr std::uint32_t apt_window = health::apt_window(bits_per_sample);
    static constexpr std::uint32_t apt_cutoff = health::apt_cutoff(min_entropy_per_sample, bits_per_sample, AlphaLog2);
    static constexpr std::uint32_t startup_samples = apt_window > 1024 ? apt_window : 1024;
    static_assert(apt_cutoff <= apt_window, "the APT can never fail: declare a higher min-entropy or a larger alpha");

    explicit HealthTested(S source = S{}) noexcept(std::is_nothrow_move_constructible_v<S>) : source_(std::move(source)) {}

    /// Fills `out` with tested samples; runs the start-up test first if it has not run.
    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        if (failure_ != health::Failure::none) return stopped(out);
        if (!started_) {
            if (auto r = startup(); !r) {
                mbedtls_platform_zeroize(out.data(), out.size());
                return r;
            }
        }
        return read_tested(out);
    }

    /// Re-initializes the source (its `reset()`, if it has one), clears the failure and runs
    /// the start-up test again. The only way out of a failure.
    [[nodiscard]] Result<void> reset() noexcept {
        failure_ = health::Failure::none;
        started_ = false;
        rct_count_ = 0;
        apt_pos_ = 0;
        if constexpr (requires(S& s) { { s.reset() } -> std::same_as<Result<void>>; }) {
            if (auto r = source_.reset(); !r) {
                failure_ = health::Failure::source;
                return r;
            }
        } else if constexpr (requires(S& s) { s.reset(); }) {
            source_.reset();
        }
        return startup();
    }

    /// Why the source stopped (none while healthy).
    [[nodiscard]] health::Failure failure() const noexcept { return failure_; }
    [[nodiscard]] bool healthy() const noexcept { return failure_ == health::Failure::none; }
    /// Samples tested since construction (start-up samples included), up to and including the
    /// one that failed a test.
    [[nodiscard]] std::uint64_t samples_tested() const noexcept { return samples_; }
    /// The wrapped source, e.g. for a driver's own diagnostics (or a test's fault injection).
    [[nodiscard]] S& source() noexcept { return source_; }

private:
    static constexpr std::uint8_t mask = static_cast<std::uint8_t>((1u << bits_per_sample) - 1u);

    Result<void> stopped(std::span<std::byte> out) noexcept {
        mbedtls_platform_zeroize(out.data(), out.size());
        return fail(Errc::entropy_failed, static_cast<std::int32_t>(failure_));
    }

    Result<void> startup() noexcept {
        std::array<std::byte, 128> buf;
        Result<void> r;
        for (std::uint32_t done = 0; r && done < startup_samples; done += buf.size()) {
            const std::size_t n = startup_samples - done < buf.size() ? startup_samples - done : buf.size();
            r = read_tested(std::span(buf).first(n));
        }
        mbedtls_platform_zeroize(buf.data(), buf.size());
        started_ = r.has_value();
        return r;
    }

    Result<void> read_tested(std::span<std::byte> out) noexcept {
        if (auto r = source_.fill(out); !r) {
            failure_ = health::Failure::source;
            mbedtls_platform_zeroize(out.data(), out.size());
            return fail(Errc::entropy_failed, r.error().native);
        }
        for (std::byte& b : out) {
            const auto x = static_cast<std::uint8_t>(std::to_integer<std::uint8_t>(b) & mask);
            b = std::byte{x};
            if (!test(x)) return stopped(out);
        }
        return {};
    }

    // One sample through both tests; false when one of them fails.
    bool test(std::uint8_t x) noexcept {
        ++samples_;
        if (rct_count_ != 0 && x == rct_value_) {
            if (++rct_count_ >= rct_cutoff) {
                failure_ = health::Failure::repetition_count;
                return false;
            }
        } else {
            rct_value_ = x;
            rct_count_ = 1;
        }
        if (apt_pos_ == 0) {
            apt_value_ = x;
            apt_count_ = 1;
        } else if (x == apt_value_ && ++apt_count_ >= apt_cutoff) {
            failure_ = health::Failure::adaptive_proportion;
            return false;
        }
        if (++apt_pos_ == apt_window) apt_pos_ = 0;
        return true;
    }

    S source_;
    std::uint64_t samples_ = 0;
    std::uint32_t rct_count_ = 0;
    std::uint32_t apt_pos_ = 0;
    std::uint32_t apt_count_ = 0;
    std::uint8_t rct_value_ = 0;
    std::uint8_t apt_value_ = 0;
    bool started_ = false;
    health::Failure failure_ = health::Failure::none;
};

namespace detail {
// The smallest NoiseSource, to prove the model below without pulling in a real driver.
struct ProbeNoise {
    static constexpr unsigned bits_per_sample = 8;
    static constexpr double min_entropy_per_sample = 8.0;
    Result<void> fill(std::span<std::byte>) noexcept { return fail(Errc::entropy_failed); }
};
}  // namespace detail

static_assert(NoiseSource<HealthTested<detail::ProbeNoise>>);

}  // namespace p11tls
