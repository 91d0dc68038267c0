// SPDX-License-Identifier: MIT
#pragma once
// Nvm models over simulated devices for the Nvm contract suite and the device tests: each
// owns its chip (the memory survives `remount()`, like a board's flash across a reset).
#include <memory>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include <p11tls/device/image_flash.hpp>
#include <p11tls/device/sim_eeprom.hpp>
#include <p11tls/device/sim_flash.hpp>
#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/nvm/eeprom_nvm.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/nvm/key_file.hpp>
#include <p11tls/nvm/sealed_nvm.hpp>

#include "support/result.hpp"
#include "support/temp_dir.hpp"

namespace p11tls::test {

/// A fixed key-wrapping key: a KeySource for tests (a board's HUK stand-in).
struct FixedKey {
    static constexpr std::size_t key_size = 32;
    std::byte fill{0x5A};
    [[nodiscard]] Result<void> key(std::span<std::byte, key_size> out) const noexcept {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte(static_cast<unsigned char>(i)) ^ fill;
        return {};
    }
};
static_assert(KeySource<FixedKey>);

/// Partitions used by the tests and the benchmark: small enough that collections happen
/// often, real sector sizes.
using Stm32f4Nvm = FlashNvm<SimFlash<parts::Stm32f4Flash>, 1, 3>;        // sectors 1-3: 3 x 16 KiB
using Nrf52840Nvm = FlashNvm<SimFlash<parts::Nrf52840Flash>, 248, 8>;    // last 8 pages: 32 KiB
using SpiNorNvm = FlashNvm<SimFlash<parts::SpiNorFlash>, 0, 8>;          // 8 x 4 KiB
using At24lc256Nvm = EepromNvm<SimEeprom<parts::At24lc256>>;

/// A FlashNvm over a SimFlash chip.
template <class N>
struct FlashModel {
    using nvm_type = N;
    using part = typename N::device_type;
    std::unique_ptr<typename part::chip_type> chip = std::make_unique<typename part::chip_type>();
    std::optional<N> store;

    FlashModel() { remount(); }
    void remount() {
        store.reset();
        auto r = N::mount(part(*chip));
        REQUIRE(code(r) == no_error);
        store.emplace(std::move(*r));
    }
    N& nvm() { return *store; }
};

/// An EepromNvm over a SimEeprom chip.
template <class N = At24lc256Nvm>
struct EepromModel {
    using nvm_type = N;
    using part = typename N::device_type;
    std::unique_ptr<typename part::chip_type> chip = std::make_unique<typename part::chip_type>();
    std::optional<N> store;

    EepromModel() { remount(); }
    void remount() {
        store.reset();
        auto r = N::mount(part(*chip));
        REQUIRE(code(r) == no_error);
        store.emplace(std::move(*r));
    }
    N& nvm() { return *store; }
};

/// A FlashNvm on an image file (STM32F4 sectors 1-2) in a temp directory.
struct ImageFlashModel {
    using nvm_type = FlashNvm<ImageFlash<parts::Stm32f4Flash>, 1, 2>;
    TempDir dir;
    std::optional<nvm_type> store;

    ImageFlashModel() { remount(); }
    std::string image() const { return dir.path() + "/flash.img"; }
    void remount() {
        store.reset();
        auto dev = ImageFlash<parts::Stm32f4Flash>::open(image());
        REQUIRE(code(dev) == no_error);
        auto r = nvm_type::mount(std::move(*dev));
        REQUIRE(code(r) == no_error);
        store.emplace(std::move(*r));
    }
    nvm_type& nvm() { return *store; }
};

/// SealedNvm over a FlashNvm on SPI NOR, the key in a key file.
struct SealedFlashModel {
    using nvm_type = SealedNvm<SpiNorNvm, KeyFile, GetrandomEntropy>;
    using part = SpiNorNvm::device_type;
    TempDir dir;
    std::unique_ptr<part::chip_type> chip = std::make_unique<part::chip_type>();
    std::optional<nvm_type> store;

    SealedFlashModel() { remount(); }
    void remount() {
        store.reset();
        auto inner = SpiNorNvm::mount(part(*chip));
        REQUIRE(code(inner) == no_error);
        auto r = nvm_type::open(std::move(*inner), KeyFile(dir.path() + "/kwk"), GetrandomEntropy{});
        REQUIRE(code(r) == no_error);
        store.emplace(std::move(*r));
    }
    nvm_type& nvm() { return *store; }
};

/// SealedNvm over an EepromNvm, the key from a fixed (hardware-key stand-in) source.
struct SealedEepromModel {
    using nvm_type = SealedNvm<At24lc256Nvm, FixedKey, GetrandomEntropy>;
    using part = At24lc256Nvm::device_type;
    std::unique_ptr<part::chip_type> chip = std::make_unique<part::chip_type>();
    std::optional<nvm_type> store;

    SealedEepromModel() { remount(); }
    void remount() {
        store.reset();
        auto inner = At24lc256Nvm::mount(part(*chip));
        REQUIRE(code(inner) == no_error);
        auto r = nvm_type::open(std::move(*inner), FixedKey{}, GetrandomEntropy{});
        REQUIRE(code(r) == no_error);
        store.emplace(std::move(*r));
    }
    nvm_type& nvm() { return *store; }
};

}  // namespace p11tls::test
