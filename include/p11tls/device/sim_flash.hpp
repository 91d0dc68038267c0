// SPDX-License-Identifier: MIT
#pragma once
/// SimFlash<Part>: a FlashDevice in RAM with a real part's geometry and semantics, for tests,
/// benchmarks and host tools. The memory (`SimFlashChip`) outlives the handles that drive it,
/// so a store can be mounted again on the same bytes, as after a reset.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include <p11tls/concepts/flash_device.hpp>
#include <p11tls/device/parts.hpp>

namespace p11tls {

/// The flash array of one part: its bytes, which program units have been programmed since
/// their sector's last erase, and what was done to it. Large (the whole part): allocate it on
/// the heap or statically.
template <class Part>
class SimFlashChip {
public:
    static constexpr std::size_t units = Part::size / Part::program_unit;

    SimFlashChip() noexcept { bytes_.fill(Part::erased_value); }

    /// What a reader of the part would see; writable so tests can damage it.
    [[nodiscard]] std::span<std::byte, Part::size> bytes() noexcept { return bytes_; }
    [[nodiscard]] std::span<const std::byte, Part::size> bytes() const noexcept { return bytes_; }
    /// One flag per program unit: programmed since the last erase of its sector.
    [[nodiscard]] std::span<std::uint8_t, units> programmed() noexcept { return programmed_; }

    /// Replaces the whole content with `image` (Part::size bytes, e.g. read from a board's
    /// dump); units that read other than erased count as programmed.
    void load_image(std::span<const std::byte> image) noexcept {
        P11TLS_ASSERT(image.size() == Part::size, "image size differs from the part");
        std::copy(image.begin(), image.end(), bytes_.begin());
        for (std::size_t u = 0; u < units; ++u) {
            auto unit = std::span(bytes_).subspan(u * Part::program_unit, Part::program_unit);
            programmed_[u] = std::ranges::all_of(unit, [](std::byte b) { return b == Part::erased_value; }) ? 0 : 1;
        }
    }

    struct Stats {
        std::uint64_t reads = 0, bytes_read = 0;
        std::uint64_t programs = 0, bytes_programmed = 0;
        std::uint64_t erases = 0;
        std::array<std::uint32_t, Part::sector_count> sector_erases{};
    };
    [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
    void reset_stats() noexcept { stats_ = Stats{}; }

private:
    template <class>
    friend class SimFlash;

    std::array<std::byte, Part::size> bytes_;
    std::array<std::uint8_t, units> programmed_{};
    Stats stats_{};
};

/// A handle on a SimFlashChip with the part's geometry: a FlashDevice. Misuse (unaligned or
/// out-of-range access, a program across a page) is `Errc::invalid_argument`; programming a
/// unit twice is `Errc::nvm_io` and changes nothing, as on parts with ECC.
template <class Part>
class SimFlash : public Part {
public:
    using chip_type = SimFlashChip<Part>;

    explicit SimFlash(chip_type& chip) noexcept : chip_(&chip) {}

    [[nodiscard]] Result<void> read(std::size_t addr, std::span<std::byte> out) noexcept {
        if (addr > Part::size || out.size() > Part::size - addr) return fail(Errc::invalid_argument);
        std::memcpy(out.data(), chip_->bytes_.data() + addr, out.size());
        ++chip_->stats_.reads;
        chip_->stats_.bytes_read += out.size();
        return {};
    }

    [[nodiscard]] Result<void> program(std::size_t addr, std::span<const std::byte> in) noexcept {
        constexpr std::size_t u = Part::program_unit;
        if (addr > Part::size || in.size() > Part::size - addr || addr % u != 0 || in.size() % u != 0)
            return fail(Errc::invalid_argument);
        if (Part::program_page != 0 && !in.empty() &&
            addr / page_or_one() != (addr + in.size() - 1) / page_or_one())
            return fail(Errc::invalid_argument);
        for (std::size_t i = addr / u; i < (addr + in.size()) / u; ++i)
            if (chip_->programmed_[i]) return fail(Errc::nvm_io);  // programmed twice: device error
        for (std::size_t i = 0; i < in.size(); ++i) {
            std::byte& cell = chip_->bytes_[addr + i];
            // Only erased -> programmed transitions: a 1 can become 0 on a part erased to 0xFF.
            cell = Part::erased_value == std::byte{0xFF} ? (cell & in[i]) : (cell | in[i]);
        }
        for (std::size_t i = addr / u; i < (addr + in.size()) / u; ++i) chip_->programmed_[i] = 1;
        ++chip_->stats_.programs;
        chip_->stats_.bytes_programmed += in.size();
        return {};
    }

    [[nodiscard]] Result<void> erase(std::size_t sector) noexcept {
        if (sector >= Part::sector_count) return fail(Errc::invalid_argument);
        const std::size_t at = Part::sector_offset(sector), n = Part::sector_size(sector);
        std::fill_n(chip_->bytes_.begin() + at, n, Part::erased_value);
        std::fill_n(chip_->programmed_.begin() + at / Part::program_unit, n / Part::program_unit, 0);
        ++chip_->stats_.erases;
        ++chip_->stats_.sector_erases[sector];
        return {};
    }

    /// An erase cut by a power loss (PowerCutFlash calls it): bytes [from, to) of the sector
    /// become random garbage; on one side of them the erase has passed (erased), on the other
    /// it has not (old content), the side chosen at random.
    template <class Rng>
    void tear_erase(std::size_t sector, std::size_t from, std::size_t to, Rng& rng) noexcept {
        constexpr std::size_t u = Part::program_unit;
        const std::size_t at = Part::sector_offset(sector), n = Part::sector_size(sector);
        const bool from_start = rng.random(2) == 0;  // the erased side: before `from` or after `to`
        auto erased_side = [&](std::size_t i) { return from_start ? i < from : i >= to; };
        for (std::size_t i = 0; i < n; ++i) {
            std::byte& cell = chip_->bytes_[at + i];
            if (i >= from && i < to) cell = rng.random_byte();
            else if (erased_side(i)) cell = Part::erased_value;
        }
        for (std::size_t lo = 0; lo < n; lo += u) {
            std::uint8_t& flag = chip_->programmed_[(at + lo) / u];
            const bool all_erased = erased_side(lo) && erased_side(lo + u - 1) && !(lo + u > from && lo < to);
            const bool any_erased_or_band = erased_side(lo) || erased_side(lo + u - 1) || (lo + u > from && lo < to);
            if (all_erased) flag = 0;
            else if (any_erased_or_band) flag = 1;  // garbage, or half erased: not programmable
        }
        ++chip_->stats_.erases;
        ++chip_->stats_.sector_erases[sector];
    }

    [[nodiscard]] chip_type& chip() noexcept { return *chip_; }

private:
    static constexpr std::size_t page_or_one() noexcept { return Part::program_page ? Part::program_page : 1; }
    chip_type* chip_;
};

static_assert(FlashDevice<SimFlash<parts::Stm32f4Flash>>);
static_assert(FlashDevice<SimFlash<parts::Nrf52840Flash>>);
static_assert(FlashDevice<SimFlash<parts::SpiNorFlash>>);

}  // namespace p11tls
