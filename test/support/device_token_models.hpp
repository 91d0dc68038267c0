// SPDX-License-Identifier: MIT
#pragma once
// SoftToken models over the simulated flash and EEPROM stores, for the token suite's model
// list: `reload()` destroys the token and mounts the store again on the same chip, as a reset
// of the board would.
#include <memory>

#include <catch2/catch.hpp>

#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/token/soft_token.hpp>

#include "support/nvm_models.hpp"
#include "support/result.hpp"

namespace p11tls::test {

/// A SoftToken over an Nvm that `Mount` builds on a chip the model owns.
template <class Mount, class Config>
struct DeviceTokenModel {
    using nvm_type = typename Mount::nvm_type;
    using token_type = SoftToken<nvm_type, GetrandomEntropy, Config>;
    static constexpr bool injectable = false;

    Mount mount;
    std::unique_ptr<token_type> token;

    DeviceTokenModel() { load(); }
    void reload() {
        token.reset();
        load();
    }
    nvm_type& nvm() { return token->nvm(); }
    token_type& operator*() { return *token; }

private:
    void load() {
        token = std::make_unique<token_type>(mount.open(), GetrandomEntropy{});
        REQUIRE(code(token->load()) == no_error);
    }
};

/// Mounts a FlashNvm or EepromNvm `N` on its chip.
template <class N>
struct ChipMount {
    using nvm_type = N;
    using part = typename N::device_type;
    std::unique_ptr<typename part::chip_type> chip = std::make_unique<typename part::chip_type>();
    N open() {
        auto r = N::mount(part(*chip));
        REQUIRE(code(r) == no_error);
        return std::move(*r);
    }
};

/// SealedNvm over a FlashNvm on nRF52840 pages, with a fixed key-wrapping key.
struct SealedChipMount {
    using nvm_type = SealedNvm<Nrf52840Nvm, FixedKey, GetrandomEntropy>;
    std::unique_ptr<Nrf52840Nvm::device_type::chip_type> chip = std::make_unique<Nrf52840Nvm::device_type::chip_type>();
    nvm_type open() {
        auto inner = Nrf52840Nvm::mount(Nrf52840Nvm::device_type(*chip));
        REQUIRE(code(inner) == no_error);
        auto r = nvm_type::open(std::move(*inner), FixedKey{}, GetrandomEntropy{});
        REQUIRE(code(r) == no_error);
        return std::move(*r);
    }
};

template <class Config>
using FlashTokenModel = DeviceTokenModel<ChipMount<SpiNorNvm>, Config>;
template <class Config>
using EepromTokenModel = DeviceTokenModel<ChipMount<At24lc256Nvm>, Config>;
template <class Config>
using SealedFlashTokenModel = DeviceTokenModel<SealedChipMount, Config>;

}  // namespace p11tls::test
