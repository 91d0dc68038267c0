// SPDX-License-Identifier: MIT
#pragma once
/// Power-loss injection for tests: device wrappers that cut the power at the N-th program,
/// erase or write and tear that operation the way hardware would, then fail everything until
/// the power is restored.
#include <array>
#include <cstdint>
#include <limits>

#include <p11tls/concepts/eeprom_device.hpp>
#include <p11tls/concepts/flash_device.hpp>

namespace p11tls {

/// The power rail shared by the wrapped devices of one test: counts the operations that change
/// the memory and decides which one is cut. Deterministic for a given seed.
class PowerSupply {
public:
    static constexpr std::size_t never = std::numeric_limits<std::size_t>::max();

    explicit PowerSupply(std::uint64_t seed = 0x9E3779B97F4A7C15ull) noexcept : rng_(seed) {}

    /// The operation `n` operations from now (0: the next one) is torn, then the power is off.
    void cut_after(std::size_t n) noexcept { countdown_ = n; }
    /// No cut is pending.
    void disarm() noexcept { countdown_ = never; }
    /// Power back on (no cut pending): what a reset does.
    void restore() noexcept {
        on_ = true;
        countdown_ = never;
    }
    [[nodiscard]] bool on() const noexcept { return on_; }
    /// Operations that changed (or tried to change) the memory since the last reset_count().
    [[nodiscard]] std::size_t operations() const noexcept { return operations_; }
    /// The erases among them.
    [[nodiscard]] std::size_t erases() const noexcept { return erases_; }
    void reset_count() noexcept { operations_ = erases_ = 0; }
    /// Number of cuts so far.
    [[nodiscard]] std::size_t cuts() const noexcept { return cuts_; }

    /// For the wrappers: called once per memory-changing operation; true means tear this one.
    [[nodiscard]] bool tear_this(bool erase = false) noexcept {
        ++operations_;
        erases_ += erase ? 1 : 0;
        if (countdown_ == never) return false;
        if (countdown_-- != 0) return false;
        on_ = false;
        countdown_ = never;
        ++cuts_;
        return true;
    }
    /// Uniform in [0, n).
    [[nodiscard]] std::uint64_t random(std::uint64_t n) noexcept { return n ? next() % n : 0; }
    [[nodiscard]] std::byte random_byte() noexcept { return std::byte(next() & 0xFF); }

private:
    std::uint64_t next() noexcept {  // splitmix64
        std::uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::uint64_t rng_;
    std::size_t countdown_ = never;
    std::size_t operations_ = 0;
    std::size_t erases_ = 0;
    std::size_t cuts_ = 0;
    bool on_ = true;
};

/// A FlashDevice whose power can be cut. The cut operation is torn:
/// - a program leaves its first k units programmed (0 <= k <= all) and, sometimes, unit k with
///   only some of the bits it was to program;
/// - an erase leaves the sector partly erased with a band of random garbage where the erase
///   was when the power went; with a device offering `tear_erase` (SimFlash) the rest of the
///   sector keeps its old content, otherwise it reads erased.
/// The torn operation and every one after it return `Errc::nvm_io` until `PowerSupply::restore`.
template <FlashDevice D>
class PowerCutFlash : public D {
public:
    PowerCutFlash(D dev, PowerSupply& supply) noexcept : D(std::move(dev)), supply_(&supply) {}

    [[nodiscard]] Result<void> read(std::size_t addr, std::span<std::byte> out) noexcept {
        if (!supply_->on()) return fail(Errc::nvm_io);
        return D::read(addr, out);
    }

    [[nodiscard]] Result<void> program(std::size_t addr, std::span<const std::byte> in) noexcept {
        if (!supply_->on()) return fail(Errc::nvm_io);
        if (!supply_->tear_this()) return D::program(addr, in);
        constexpr std::size_t u = D::program_unit;
        const std::size_t units = in.size() / u;
        const std::size_t k = static_cast<std::size_t>(supply_->random(units + 1));
        if (k > 0) (void)D::program(addr, in.first(k * u));
        if (k < units && supply_->random(2) == 0) {
            // Unit k caught mid-pulse: a non-empty random part of the bits it was to program.
            std::array<std::byte, u> partial;
            bool any = false;
            for (std::size_t i = 0; i < u; ++i) {
                const std::byte erased = D::erased_value;
                const std::byte target = in[k * u + i];
                const std::byte moving = target ^ erased;  // bits that were to change
                const std::byte some = moving & supply_->random_byte();
                partial[i] = erased ^ some;
                any |= some != std::byte{0};
            }
            if (!any) {  // force one changed bit when the unit had any to change
                for (std::size_t i = 0; i < u && !any; ++i) {
                    const std::byte moving = in[k * u + i] ^ D::erased_value;
                    for (unsigned b = 0; b < 8 && !any; ++b)
                        if (std::to_integer<unsigned>(moving) & (1u << b)) {
                            partial[i] = D::erased_value ^ std::byte(1u << b);
                            any = true;
                        }
                }
            }
            if (any) (void)D::program(addr + k * u, partial);
        }
        return fail(Errc::nvm_io);
    }

    [[nodiscard]] Result<void> erase(std::size_t sector) noexcept {
        if (!supply_->on()) return fail(Errc::nvm_io);
        if (!supply_->tear_this(true)) return D::erase(sector);
        if (sector >= D::sector_count) return fail(Errc::invalid_argument);
        const std::size_t n = D::sector_size(sector);
        const std::size_t from = static_cast<std::size_t>(supply_->random(n + 1));
        const std::size_t to = from + static_cast<std::size_t>(supply_->random(n - from + 1) / 4);
        if constexpr (requires(D& d, std::size_t i, PowerSupply& ps) { d.tear_erase(i, i, i, ps); }) {
            D::tear_erase(sector, from, to, *supply_);
        } else {
            (void)D::erase(sector);
            constexpr std::size_t u = D::program_unit;
            std::array<std::byte, 64 * u> garbage;
            for (std::size_t at = from / u * u; at < to;) {
                std::size_t len = std::min(garbage.size(), (to - at + u - 1) / u * u);
                len = std::min(len, n - at);
                if constexpr (D::program_page != 0)
                    len = std::min(len, D::program_page - (D::sector_offset(sector) + at) % D::program_page);
                for (std::size_t i = 0; i < len; ++i) garbage[i] = supply_->random_byte();
                (void)D::program(D::sector_offset(sector) + at, std::span(garbage).first(len));
                at += len;
            }
        }
        return fail(Errc::nvm_io);
    }

private:
    PowerSupply* supply_;
};

/// An EepromDevice whose power can be cut: the cut write leaves each byte it was writing old,
/// new or random; the write and every operation after it return `Errc::nvm_io` until
/// `PowerSupply::restore`.
template <EepromDevice D>
class PowerCutEeprom : public D {
public:
    PowerCutEeprom(D dev, PowerSupply& supply) noexcept : D(std::move(dev)), supply_(&supply) {}

    [[nodiscard]] Result<void> read(std::size_t addr, std::span<std::byte> out) noexcept {
        if (!supply_->on()) return fail(Errc::nvm_io);
        return D::read(addr, out);
    }

    [[nodiscard]] Result<void> write(std::size_t addr, std::span<const std::byte> in) noexcept {
        if (!supply_->on()) return fail(Errc::nvm_io);
        if (!supply_->tear_this()) return D::write(addr, in);
        if (in.size() > D::page_size) return fail(Errc::nvm_io);
        std::array<std::byte, D::page_size> torn;
        auto mix = std::span(torn).first(in.size());
        if (!D::read(addr, mix)) return fail(Errc::nvm_io);
        for (std::size_t i = 0; i < in.size(); ++i) {
            switch (supply_->random(3)) {
            case 0: break;  // old
            case 1: mix[i] = in[i]; break;
            default: mix[i] = supply_->random_byte(); break;
            }
        }
        (void)D::write(addr, mix);
        return fail(Errc::nvm_io);
    }

private:
    PowerSupply* supply_;
};

}  // namespace p11tls
