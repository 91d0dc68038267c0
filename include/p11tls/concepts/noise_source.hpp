// SPDX-License-Identifier: MIT
#pragma once
/// The NoiseSource concept: raw samples of a physical (or OS) noise source, as SP 800-90B sees
/// them, with the min-entropy per sample the source was assessed to have.
#include <concepts>

#include <p11tls/concepts/entropy.hpp>

namespace p11tls {

/// An Entropy whose every byte is one raw sample of a noise source (its low `bits_per_sample`
/// bits; 1 for a binary source), before any conditioning. It declares:
/// - `T::bits_per_sample`: 1..8;
/// - `T::min_entropy_per_sample`: H, the assessed min-entropy of one sample in bits,
///   0 < H <= bits_per_sample. Health-test cutoffs are computed from it (HealthTested).
/// A model may offer `reset()` (re-initialize the hardware: power it up again, wait until it
/// is ready); returning `Result<void>` or `void`.
template <class T>
concept NoiseSource = Entropy<T> && requires {
    { T::bits_per_sample } -> std::convertible_to<unsigned>;
    { T::min_entropy_per_sample } -> std::convertible_to<double>;
} && (T::bits_per_sample >= 1 && T::bits_per_sample <= 8) &&
    (T::min_entropy_per_sample > 0 && T::min_entropy_per_sample <= T::bits_per_sample);

}  // namespace p11tls
