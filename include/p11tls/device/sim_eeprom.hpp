// SPDX-License-Identifier: MIT
#pragma once
/// SimEeprom<Part>: an EepromDevice in RAM with a real part's size and page size.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include <p11tls/concepts/eeprom_device.hpp>
#include <p11tls/device/parts.hpp>

namespace p11tls {

/// The memory of one EEPROM part and what was done to it. A new part reads 0xFF throughout.
template <class Part>
class SimEepromChip {
public:
    static constexpr std::size_t pages = Part::size / Part::page_size;

    SimEepromChip() noexcept { bytes_.fill(std::byte{0xFF}); }

    [[nodiscard]] std::span<std::byte, Part::size> bytes() noexcept { return bytes_; }
    [[nodiscard]] std::span<const std::byte, Part::size> bytes() const noexcept { return bytes_; }

    struct Stats {
        std::uint64_t reads = 0, bytes_read = 0;
        std::uint64_t writes = 0, bytes_written = 0;
        std::array<std::uint32_t, pages> page_writes{};  ///< write cycles per page (endurance)
    };
    [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
    void reset_stats() noexcept { stats_ = Stats{}; }

private:
    template <class>
    friend class SimEeprom;
    std::array<std::byte, Part::size> bytes_;
    Stats stats_{};
};

/// A handle on a SimEepromChip: an EepromDevice.
template <class Part>
class SimEeprom : public Part {
public:
    using chip_type = SimEepromChip<Part>;

    explicit SimEeprom(chip_type& chip) noexcept : chip_(&chip) {}

    [[nodiscard]] Result<void> read(std::size_t addr, std::span<std::byte> out) noexcept {
        if (addr > Part::size || out.size() > Part::size - addr) return fail(Errc::invalid_argument);
        std::memcpy(out.data(), chip_->bytes_.data() + addr, out.size());
        ++chip_->stats_.reads;
        chip_->stats_.bytes_read += out.size();
        return {};
    }

    [[nodiscard]] Result<void> write(std::size_t addr, std::span<const std::byte> in) noexcept {
        if (addr > Part::size || in.size() > Part::size - addr) return fail(Errc::invalid_argument);
        if (in.empty()) return {};
        if (addr / Part::page_size != (addr + in.size() - 1) / Part::page_size) return fail(Errc::invalid_argument);
        std::memcpy(chip_->bytes_.data() + addr, in.data(), in.size());
        ++chip_->stats_.writes;
        chip_->stats_.bytes_written += in.size();
        ++chip_->stats_.page_writes[addr / Part::page_size];
        return {};
    }

    [[nodiscard]] chip_type& chip() noexcept { return *chip_; }

private:
    chip_type* chip_;
};

static_assert(EepromDevice<SimEeprom<parts::At24lc256>>);

}  // namespace p11tls
