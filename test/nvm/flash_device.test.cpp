// SPDX-License-Identifier: MIT
// The simulated parts, the flash image file and the power-cut wrappers behave like hardware.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <p11tls/device/image_flash.hpp>
#include <p11tls/device/power_cut.hpp>
#include <p11tls/device/sim_eeprom.hpp>
#include <p11tls/device/sim_flash.hpp>

#include "support/nvm_models.hpp"
#include "support/result.hpp"
#include "support/temp_dir.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

using Bytes = std::vector<std::byte>;

Bytes fill(std::size_t n, unsigned char v) { return Bytes(n, std::byte{v}); }
std::array<std::byte, 4> scratch;

template <class Dev>
Bytes read(Dev& d, std::size_t addr, std::size_t n) {
    Bytes b(n);
    REQUIRE(code(d.read(addr, b)) == no_error);
    return b;
}

}  // namespace

// --- geometry -------------------------------------------------------------------------------

TEST_CASE("Parts: the STM32F4 bank has 4 x 16, 1 x 64 and 7 x 128 KiB sectors", "[device]") {
    using F4 = parts::Stm32f4Flash;
    STATIC_REQUIRE(F4::sector_size(0) == 16 * 1024);
    STATIC_REQUIRE(F4::sector_offset(4) == 64 * 1024);
    STATIC_REQUIRE(F4::sector_size(4) == 64 * 1024);
    STATIC_REQUIRE(F4::sector_offset(5) == 128 * 1024);
    STATIC_REQUIRE(F4::sector_offset(11) == 896 * 1024);
    STATIC_REQUIRE(F4::sector_size(11) == 128 * 1024);
    STATIC_REQUIRE(detail::valid_flash_geometry<F4>());
    STATIC_REQUIRE(FlashDevice<SimFlash<F4>>);
}

namespace {
struct GappyPart : parts::SpiNorFlash {
    static constexpr std::size_t sector_offset(std::size_t i) noexcept { return i * 4096 + (i > 3 ? 16 : 0); }
};
struct OddUnitPart : parts::SpiNorFlash {
    static constexpr std::size_t program_unit = 3;
};
}  // namespace

TEST_CASE("FlashDevice: a geometry with gaps or an odd program unit is no FlashDevice", "[device]") {
    STATIC_REQUIRE_FALSE(FlashDevice<SimFlash<GappyPart>>);
    STATIC_REQUIRE_FALSE(FlashDevice<SimFlash<OddUnitPart>>);
}

// --- SimFlash ---------------------------------------------------------------------------------

TEST_CASE("SimFlash: a new part reads erased", "[device]") {
    auto chip = std::make_unique<SimFlashChip<parts::Nrf52840Flash>>();
    SimFlash<parts::Nrf52840Flash> dev(*chip);
    CHECK(read(dev, 0, 64) == fill(64, 0xFF));
    CHECK(read(dev, parts::Nrf52840Flash::size - 16, 16) == fill(16, 0xFF));
}

TEST_CASE("SimFlash: programming a unit twice is a device error and changes nothing", "[device]") {
    auto chip = std::make_unique<SimFlashChip<parts::Nrf52840Flash>>();
    SimFlash<parts::Nrf52840Flash> dev(*chip);
    REQUIRE(code(dev.program(8, fill(4, 0xF0))) == no_error);
    CHECK(code(dev.program(8, fill(4, 0x00))) == Errc::nvm_io);
    CHECK(read(dev, 8, 4) == fill(4, 0xF0));
    SECTION("even with the erased value, which programs the unit too") {
        REQUIRE(code(dev.program(12, fill(4, 0xFF))) == no_error);
        CHECK(code(dev.program(12, fill(4, 0x00))) == Errc::nvm_io);
    }
    SECTION("a program that overlaps one programmed unit changes none of its units") {
        CHECK(code(dev.program(4, fill(8, 0x11))) == Errc::nvm_io);
        CHECK(read(dev, 4, 4) == fill(4, 0xFF));
    }
    SECTION("until the sector is erased") {
        REQUIRE(code(dev.erase(0)) == no_error);
        CHECK(read(dev, 8, 4) == fill(4, 0xFF));
        CHECK(code(dev.program(8, fill(4, 0x00))) == no_error);
    }
}

TEST_CASE("SimFlash: programming only moves bits from erased to programmed", "[device]") {
    auto chip = std::make_unique<SimFlashChip<parts::Stm32f4Flash>>();
    SimFlash<parts::Stm32f4Flash> dev(*chip);
    chip->bytes()[100] = std::byte{0x0F};  // a cell already partly programmed (e.g. torn)
    REQUIRE(code(dev.program(100, fill(1, 0xF3))) == no_error);
    CHECK(read(dev, 100, 1) == fill(1, 0x03));
}

TEST_CASE("SimFlash: misaligned programs and programs across a NOR page are refused", "[device]") {
    auto nrf = std::make_unique<SimFlashChip<parts::Nrf52840Flash>>();
    SimFlash<parts::Nrf52840Flash> words(*nrf);
    CHECK(code(words.program(2, fill(4, 0))) == Errc::invalid_argument);
    CHECK(code(words.program(4, fill(3, 0))) == Errc::invalid_argument);
    CHECK(code(words.read(parts::Nrf52840Flash::size - 2, scratch)) == Errc::invalid_argument);

    auto nor = std::make_unique<SimFlashChip<parts::SpiNorFlash>>();
    SimFlash<parts::SpiNorFlash> spi(*nor);
    CHECK(code(spi.program(250, fill(8, 0))) == Errc::invalid_argument);
    CHECK(read(spi, 250, 8) == fill(8, 0xFF));
    CHECK(code(spi.program(256, fill(256, 0))) == no_error);
    CHECK(code(spi.erase(parts::SpiNorFlash::sector_count)) == Errc::invalid_argument);
}

TEST_CASE("SimFlash: erase resets one sector of a mixed layout and is counted", "[device]") {
    using F4 = parts::Stm32f4Flash;
    auto chip = std::make_unique<SimFlashChip<F4>>();
    SimFlash<F4> dev(*chip);
    REQUIRE(code(dev.program(F4::sector_offset(4), fill(16, 0))) == no_error);
    REQUIRE(code(dev.program(F4::sector_offset(5), fill(16, 0))) == no_error);
    REQUIRE(code(dev.erase(4)) == no_error);
    CHECK(read(dev, F4::sector_offset(4), 16) == fill(16, 0xFF));
    CHECK(read(dev, F4::sector_offset(5), 16) == fill(16, 0x00));
    CHECK(chip->stats().sector_erases[4] == 1);
    CHECK(chip->stats().bytes_programmed == 32);
}

// --- power cuts -------------------------------------------------------------------------------

TEST_CASE("PowerCutFlash: the N-th operation is torn, then everything fails until power returns", "[device][power]") {
    auto chip = std::make_unique<SimFlashChip<parts::SpiNorFlash>>();
    PowerSupply supply(7);
    PowerCutFlash<SimFlash<parts::SpiNorFlash>> dev(SimFlash<parts::SpiNorFlash>(*chip), supply);
    supply.cut_after(2);
    CHECK(code(dev.program(0, fill(16, 0x00))) == no_error);
    CHECK(code(dev.erase(3)) == no_error);
    CHECK(code(dev.program(16, fill(64, 0x00))) == Errc::nvm_io);  // torn
    CHECK_FALSE(supply.on());
    CHECK(code(dev.read(0, scratch)) == Errc::nvm_io);
    CHECK(code(dev.program(128, fill(4, 0))) == Errc::nvm_io);
    CHECK(supply.operations() == 3);
    CHECK(supply.erases() == 1);
    supply.restore();
    CHECK(code(dev.read(0, scratch)) == no_error);
    // The torn program left a prefix: programmed bytes, then at most one partial byte, then erased.
    const Bytes got = read(dev, 16, 64);
    std::size_t k = 0;
    while (k < got.size() && got[k] == std::byte{0}) ++k;
    if (k < got.size() && got[k] != std::byte{0xFF}) ++k;
    CHECK(std::all_of(got.begin() + static_cast<std::ptrdiff_t>(k), got.end(), [](std::byte b) { return b == std::byte{0xFF}; }));
}

TEST_CASE("PowerCutFlash: torn programs cover every tear point, with partial units", "[device][power]") {
    auto chip = std::make_unique<SimFlashChip<parts::Nrf52840Flash>>();
    PowerSupply supply(11);
    PowerCutFlash<SimFlash<parts::Nrf52840Flash>> dev(SimFlash<parts::Nrf52840Flash>(*chip), supply);
    std::vector<bool> seen(9);
    bool partial = false;
    for (int round = 0; round < 400; ++round) {
        REQUIRE(code(SimFlash<parts::Nrf52840Flash>(*chip).erase(0)) == no_error);
        supply.restore();
        supply.cut_after(0);
        REQUIRE(code(dev.program(0, fill(32, 0x00))) == Errc::nvm_io);
        supply.restore();
        const Bytes got = read(dev, 0, 32);
        std::size_t k = 0;
        while (k < 8 && got[4 * k] == std::byte{0} && got[4 * k + 3] == std::byte{0}) ++k;
        seen[k] = true;
        if (k < 8 && !std::all_of(got.begin() + 4 * static_cast<std::ptrdiff_t>(k), got.begin() + 4 * static_cast<std::ptrdiff_t>(k) + 4,
                                  [](std::byte b) { return b == std::byte{0xFF}; }))
            partial = true;
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
    CHECK(partial);
}

TEST_CASE("PowerCutFlash: a torn erase leaves garbage and a part of the old or erased content", "[device][power]") {
    auto chip = std::make_unique<SimFlashChip<parts::SpiNorFlash>>();
    PowerSupply supply(3);
    PowerCutFlash<SimFlash<parts::SpiNorFlash>> dev(SimFlash<parts::SpiNorFlash>(*chip), supply);
    int garbage = 0, kept_old = 0;
    for (int round = 0; round < 50; ++round) {
        supply.restore();
        REQUIRE(code(dev.erase(1)) == no_error);
        for (std::size_t at = 4096; at < 8192; at += 256) REQUIRE(code(dev.program(at, fill(256, 0x00))) == no_error);
        supply.cut_after(0);
        REQUIRE(code(dev.erase(1)) == Errc::nvm_io);
        supply.restore();
        const Bytes got = read(dev, 4096, 4096);
        const auto zeros = std::count(got.begin(), got.end(), std::byte{0});
        const auto ones = std::count(got.begin(), got.end(), std::byte{0xFF});
        garbage += zeros + ones < 4096 ? 1 : 0;
        kept_old += zeros > 0 ? 1 : 0;
    }
    CHECK(garbage > 25);
    CHECK(kept_old > 10);
}

TEST_CASE("PowerCutEeprom: a torn write changes only the bytes it was writing", "[device][power]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    PowerSupply supply(5);
    PowerCutEeprom<SimEeprom<parts::At24lc256>> dev(SimEeprom<parts::At24lc256>(*chip), supply);
    REQUIRE(code(dev.write(64, fill(64, 0x11))) == no_error);
    supply.cut_after(0);
    CHECK(code(dev.write(80, fill(16, 0x22))) == Errc::nvm_io);
    CHECK(code(dev.write(0, fill(4, 0x22))) == Errc::nvm_io);
    supply.restore();
    const Bytes page = read(dev, 64, 64);
    CHECK(std::all_of(page.begin(), page.begin() + 16, [](std::byte b) { return b == std::byte{0x11}; }));
    CHECK(std::all_of(page.begin() + 32, page.end(), [](std::byte b) { return b == std::byte{0x11}; }));
    CHECK(read(dev, 0, 4) == fill(4, 0xFF));
}

TEST_CASE("SimEeprom: a write never crosses a page", "[device]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    SimEeprom<parts::At24lc256> dev(*chip);
    CHECK(code(dev.write(60, fill(8, 0))) == Errc::invalid_argument);
    CHECK(read(dev, 60, 8) == fill(8, 0xFF));
    CHECK(code(dev.write(64, fill(64, 0))) == no_error);
    CHECK(chip->stats().page_writes[1] == 1);
}

// --- image file -------------------------------------------------------------------------------

TEST_CASE("ImageFlash: a new image is an erased part, mode 0600", "[device][image]") {
    TempDir dir;
    const std::string path = dir.path() + "/f4.img";
    auto dev = ImageFlash<parts::Stm32f4Flash>::open(path);
    REQUIRE(code(dev) == no_error);
    CHECK(std::filesystem::file_size(path) == parts::Stm32f4Flash::size);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(read(*dev, 12345, 7) == fill(7, 0xFF));
}

TEST_CASE("ImageFlash: programs, erases and the not-blank rule", "[device][image]") {
    TempDir dir;
    auto dev = ImageFlash<parts::SpiNorFlash>::open(dir.path() + "/nor.img", false);
    REQUIRE(code(dev) == no_error);
    REQUIRE(code(dev->program(4096, fill(16, 0xA5))) == no_error);
    CHECK(code(dev->program(4096 + 8, fill(8, 0x00))) == Errc::nvm_io);
    CHECK(code(dev->program(250, fill(8, 0))) == Errc::invalid_argument);
    CHECK(read(*dev, 4096, 16) == fill(16, 0xA5));
    REQUIRE(code(dev->erase(1)) == no_error);
    CHECK(read(*dev, 4096, 16) == fill(16, 0xFF));
}

TEST_CASE("ImageFlash: an image of another size is refused", "[device][image]") {
    TempDir dir;
    const std::string path = dir.path() + "/small.img";
    std::ofstream(path, std::ios::binary) << "not a flash image";
    CHECK(code(ImageFlash<parts::Stm32f4Flash>::open(path)) == Errc::invalid_argument);
}

TEST_CASE("ImageFlash: a store written on the simulated part mounts from its image file and back", "[device][image][nvm]") {
    using Part = parts::Stm32f4Flash;
    using SimStore = FlashNvm<SimFlash<Part>, 1, 2>;
    using FileStore = FlashNvm<ImageFlash<Part>, 1, 2>;
    TempDir dir;
    const std::string path = dir.path() + "/board.img";
    auto chip = std::make_unique<SimFlashChip<Part>>();
    const Bytes a = fill(300, 0x42), b = fill(20, 0x17);
    {
        auto nvm = SimStore::mount(SimFlash<Part>(*chip));
        REQUIRE(code(nvm) == no_error);
        REQUIRE(code(nvm->store(1, a)) == no_error);
        REQUIRE(code(nvm->store(2, b)) == no_error);
    }
    {  // the programmer's dump of the board
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(chip->bytes().data()), static_cast<std::streamsize>(chip->bytes().size()));
    }
    {
        auto dev = ImageFlash<Part>::open(path);
        REQUIRE(code(dev) == no_error);
        auto nvm = FileStore::mount(std::move(*dev));
        REQUIRE(code(nvm) == no_error);
        Bytes out(400);
        auto n = nvm->load(1, out);
        REQUIRE(code(n) == no_error);
        CHECK(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(*n)) == a);
        REQUIRE(code(nvm->remove(2)) == no_error);
        REQUIRE(code(nvm->store(3, b)) == no_error);
    }
    // ... and the host's changes go back to the board byte for byte.
    std::ifstream in(path, std::ios::binary);
    Bytes image(Part::size);
    in.read(reinterpret_cast<char*>(image.data()), static_cast<std::streamsize>(image.size()));
    REQUIRE(in.gcount() == static_cast<std::streamsize>(Part::size));
    chip->load_image(image);
    auto nvm = SimStore::mount(SimFlash<Part>(*chip));
    REQUIRE(code(nvm) == no_error);
    std::array<RecordId, 4> ids{};
    auto n = nvm->list(ids);
    REQUIRE(code(n) == no_error);
    CHECK(*n == 2);
    CHECK(code(nvm->size(2)) == Errc::nvm_not_found);
    CHECK(code(nvm->size(3)) == no_error);
}
