// SPDX-License-Identifier: MIT
#pragma once
/// The FlashDevice concept: NOR-type flash (MCU internal flash, SPI NOR) as a record store sees it.
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>

#include <p11tls/result.hpp>

namespace p11tls {

namespace detail {

// The geometry is usable in constant expressions and describes the whole part without gaps.
template <class T>
consteval bool valid_flash_geometry() {
    constexpr std::size_t u = T::program_unit;
    if (u != 1 && u != 2 && u != 4 && u != 8 && u != 16) return false;
    if (T::program_page != 0 && T::program_page % u != 0) return false;
    if (T::sector_count == 0) return false;
    std::size_t at = 0;
    for (std::size_t i = 0; i < T::sector_count; ++i) {
        if (T::sector_offset(i) != at || T::sector_size(i) == 0 || T::sector_size(i) % u != 0) return false;
        at += T::sector_size(i);
    }
    return at == T::size;
}

}  // namespace detail

/// NOR flash: erased in sectors, programmed in units, read at any address.
///
/// Geometry (all `static constexpr`, so a store can size itself at compile time):
/// - `size`, `sector_count`, `sector_size(i)`, `sector_offset(i)`: the sector layout, uniform
///   (SPI NOR, nRF52840 pages) or mixed (STM32F4: 4 x 16, 1 x 64, 7 x 128 KiB);
/// - `program_unit`: 1, 2, 4, 8 or 16 bytes; a program covers whole, aligned units;
/// - `program_page`: a program never crosses a multiple of it (SPI NOR's 256-byte page);
///   0 when the part has no such limit;
/// - `erased_value`: what every byte of a freshly erased sector reads.
///
/// Operations (addresses are byte offsets from the start of the part):
/// - `read(addr, out)`;
/// - `program(addr, bytes)`: bits only go from the erased to the programmed state, and a unit
///   is programmed at most once between erases: programming it again is a device error
///   (`Errc::nvm_io`), as on parts with ECC;
/// - `erase(sector)`: every byte of the sector back to `erased_value`.
/// An operation cut by a power loss may leave a unit partly programmed or a sector partly
/// erased; a store built on this concept must cope with both.
template <class T>
concept FlashDevice = requires(T& dev, std::size_t addr, std::size_t sector, std::span<std::byte> out,
                               std::span<const std::byte> in) {
    { T::size } -> std::convertible_to<std::size_t>;
    { T::sector_count } -> std::convertible_to<std::size_t>;
    { T::sector_size(sector) } -> std::same_as<std::size_t>;
    { T::sector_offset(sector) } -> std::same_as<std::size_t>;
    { T::program_unit } -> std::convertible_to<std::size_t>;
    { T::program_page } -> std::convertible_to<std::size_t>;
    { T::erased_value } -> std::convertible_to<std::byte>;
    { dev.read(addr, out) } -> std::same_as<Result<void>>;
    { dev.program(addr, in) } -> std::same_as<Result<void>>;
    { dev.erase(sector) } -> std::same_as<Result<void>>;
    requires std::bool_constant<detail::valid_flash_geometry<T>()>::value;
};

}  // namespace p11tls
