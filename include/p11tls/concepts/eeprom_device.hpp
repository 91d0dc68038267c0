// SPDX-License-Identifier: MIT
#pragma once
/// The EepromDevice concept: byte-writable EEPROM with page writes (I2C/SPI serial EEPROMs).
#include <concepts>
#include <cstddef>
#include <span>
#include <type_traits>

#include <p11tls/result.hpp>

namespace p11tls {

/// A serial EEPROM: no erase, any byte may be rewritten, writes go through a page buffer.
///
/// Geometry (`static constexpr`): `size` in bytes and `page_size`; `size` is a whole number
/// of pages.
///
/// Operations: `read(addr, out)` at any address; `write(addr, bytes)` within one page (a write
/// that would cross a page boundary is refused with `Errc::invalid_argument`: real parts wrap
/// around inside the page instead). A write cut by a power loss may leave any of the bytes it
/// was writing old, new or garbage; bytes it was not writing keep their value.
template <class T>
concept EepromDevice = requires(T& dev, std::size_t addr, std::span<std::byte> out, std::span<const std::byte> in) {
    { T::size } -> std::convertible_to<std::size_t>;
    { T::page_size } -> std::convertible_to<std::size_t>;
    { dev.read(addr, out) } -> std::same_as<Result<void>>;
    { dev.write(addr, in) } -> std::same_as<Result<void>>;
    requires std::bool_constant<(T::page_size > 0 && T::size % T::page_size == 0)>::value;
};

}  // namespace p11tls
