// SPDX-License-Identifier: MIT
#pragma once
/// SimTrng: a simulated hardware TRNG for tests and simulated boards, with injectable faults:
/// stuck at a value, biased toward a value, the same sequence after every reset, never ready.
#include <cstdint>

#include <p11tls/concepts/noise_source.hpp>

namespace p11tls {

/// A NoiseSource whose samples come from a deterministic generator (splitmix64) started at
/// `sequence`: two SimTrngs built with the same `sequence` produce the same samples, which is
/// how tests model boards whose TRNGs cannot be told apart. Samples are `BitsPerSample` wide
/// and, while no fault is injected, uniform: the declared `MinEntropy` (default: full) holds.
///
/// `reset()` models the driver re-initializing the peripheral: a healthy TRNG goes on with new
/// samples, one with `replay_after_reset(true)` starts its sequence over.
template <unsigned BitsPerSample = 8, double MinEntropy = static_cast<double>(BitsPerSample)>
class SimTrng {
public:
    static constexpr unsigned bits_per_sample = BitsPerSample;
    static constexpr double min_entropy_per_sample = MinEntropy;
    /// The driver's own error (in Error::native) when the data-ready flag never rises.
    static constexpr std::int32_t not_ready_error = -0x7E;

    explicit SimTrng(std::uint64_t sequence = 1) noexcept : initial_(sequence), state_(sequence) {}

    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        if (!ready_) return fail(Errc::entropy_failed, not_ready_error);
        for (std::byte& b : out) b = std::byte{next_sample()};
        return {};
    }

    /// Re-initializes the peripheral: clears "never ready" only if the fault was transient.
    Result<void> reset() noexcept {
        ++resets_;
        if (replay_) {
            state_ = initial_;
            produced_ = 0;
            last_ = -1;
        }
        if (!ready_ && !ready_fault_sticky_) ready_ = true;
        if (!ready_) return fail(Errc::entropy_failed, not_ready_error);
        return {};
    }

    // --- fault injection -----------------------------------------------------------------

    /// From `after` samples on, every sample is `value`.
    void stick_at(std::uint8_t value, std::uint64_t after = 0) noexcept {
        stuck_value_ = static_cast<std::uint8_t>(value & mask);
        stuck_from_ = produced_ + after;
        stuck_ = true;
    }
    /// Each sample is `value` with `probability` (else uniform over the other values); with
    /// `no_runs`, `value` never comes twice in a row (so only the APT can see the bias).
    void bias(std::uint8_t value, double probability, bool no_runs = true) noexcept {
        bias_value_ = static_cast<std::uint8_t>(value & mask);
        bias_p_ = probability;
        bias_no_runs_ = no_runs;
    }
    /// After every reset() the sequence starts over from `sequence`.
    void replay_after_reset(bool on = true) noexcept { replay_ = on; }
    /// The data-ready flag never rises: fill() fails. `sticky`: reset() does not cure it.
    void never_ready(bool sticky = true) noexcept {
        ready_ = false;
        ready_fault_sticky_ = sticky;
    }
    /// Removes every fault (the sequence goes on where it was).
    void heal() noexcept {
        stuck_ = false;
        bias_p_ = 0.0;
        ready_ = true;
        ready_fault_sticky_ = false;
    }

    [[nodiscard]] std::uint64_t samples() const noexcept { return produced_; }
    [[nodiscard]] unsigned resets() const noexcept { return resets_; }

private:
    static constexpr std::uint8_t mask = static_cast<std::uint8_t>((1u << BitsPerSample) - 1u);

    std::uint64_t next64() noexcept {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::uint8_t uniform() noexcept { return static_cast<std::uint8_t>(next64() & mask); }

    std::uint8_t next_sample() noexcept {
        std::uint8_t x;
        if (stuck_ && produced_ >= stuck_from_) {
            x = stuck_value_;
        } else if (bias_p_ > 0.0) {
            const double u = static_cast<double>(next64() >> 11) * 0x1.0p-53;
            const bool pick = u < bias_p_ && !(bias_no_runs_ && last_ == bias_value_);
            if (pick) {
                x = bias_value_;
            } else {
                do x = uniform();
                while (x == bias_value_);
            }
        } else {
            x = uniform();
        }
        ++produced_;
        last_ = x;
        return x;
    }

    std::uint64_t initial_;
    std::uint64_t state_;
    std::uint64_t produced_ = 0;
    int last_ = -1;
    bool stuck_ = false;
    std::uint8_t stuck_value_ = 0;
    std::uint64_t stuck_from_ = 0;
    std::uint8_t bias_value_ = 0;
    double bias_p_ = 0.0;
    bool bias_no_runs_ = true;
    bool replay_ = false;
    bool ready_ = true;
    bool ready_fault_sticky_ = false;
    unsigned resets_ = 0;
};

static_assert(NoiseSource<SimTrng<>>);
static_assert(NoiseSource<SimTrng<1>>);

}  // namespace p11tls
