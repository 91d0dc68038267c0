// SPDX-License-Identifier: MIT
#pragma once
/// Geometry of real parts, for the simulated devices, the image-file device and board
/// drivers: `SimFlash<Stm32f4Flash>` behaves like that part's flash in RAM.
#include <cstddef>

namespace p11tls::parts {

/// STM32F405/407 internal flash, 1 MiB bank: sectors 0-3 of 16 KiB, 4 of 64 KiB, 5-11 of
/// 128 KiB; byte programming (x8 parallelism); erased to 0xFF.
struct Stm32f4Flash {
    static constexpr const char* name = "stm32f4";
    static constexpr std::size_t size = 1024 * 1024;
    static constexpr std::size_t sector_count = 12;
    static constexpr std::size_t sector_size(std::size_t i) noexcept {
        return i < 4 ? 16 * 1024 : i == 4 ? 64 * 1024 : 128 * 1024;
    }
    static constexpr std::size_t sector_offset(std::size_t i) noexcept {
        return i <= 4 ? i * 16 * 1024 : 128 * 1024 * (i - 4);
    }
    static constexpr std::size_t program_unit = 1;
    static constexpr std::size_t program_page = 0;
    static constexpr std::byte erased_value{0xFF};
};

/// nRF52840 internal flash: 256 pages of 4 KiB, programmed in aligned 32-bit words (the NVMC
/// allows two writes per word; the simulation allows one, as an ECC part would), erased to 0xFF.
struct Nrf52840Flash {
    static constexpr const char* name = "nrf52840";
    static constexpr std::size_t size = 1024 * 1024;
    static constexpr std::size_t sector_count = 256;
    static constexpr std::size_t sector_size(std::size_t) noexcept { return 4096; }
    static constexpr std::size_t sector_offset(std::size_t i) noexcept { return i * 4096; }
    static constexpr std::size_t program_unit = 4;
    static constexpr std::size_t program_page = 0;
    static constexpr std::byte erased_value{0xFF};
};

/// SPI NOR flash of the W25Q80DV kind: 1 MiB, 4 KiB sectors (SECTOR ERASE 0x20), page program
/// (0x02) of up to 256 bytes that must not cross a 256-byte page, erased to 0xFF.
struct SpiNorFlash {
    static constexpr const char* name = "spi-nor";
    static constexpr std::size_t size = 1024 * 1024;
    static constexpr std::size_t sector_count = 256;
    static constexpr std::size_t sector_size(std::size_t) noexcept { return 4096; }
    static constexpr std::size_t sector_offset(std::size_t i) noexcept { return i * 4096; }
    static constexpr std::size_t program_unit = 1;
    static constexpr std::size_t program_page = 256;
    static constexpr std::byte erased_value{0xFF};
};

/// Microchip 24LC256 I2C EEPROM: 32 KiB in 64-byte pages.
struct At24lc256 {
    static constexpr const char* name = "24lc256";
    static constexpr std::size_t size = 32 * 1024;
    static constexpr std::size_t page_size = 64;
};

}  // namespace p11tls::parts
