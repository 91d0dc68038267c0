// SPDX-License-Identifier: MIT
// Built with -fno-exceptions -fno-rtti: the storage headers and every model instantiated.
#include <p11tls/concepts/eeprom_device.hpp>
#include <p11tls/concepts/flash_device.hpp>
#include <p11tls/concepts/key_source.hpp>
#include <p11tls/device/image_flash.hpp>
#include <p11tls/device/parts.hpp>
#include <p11tls/device/power_cut.hpp>
#include <p11tls/device/sim_eeprom.hpp>
#include <p11tls/device/sim_flash.hpp>
#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/nvm/eeprom_nvm.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/nvm/key_file.hpp>
#include <p11tls/nvm/keys.hpp>
#include <p11tls/nvm/sealed_nvm.hpp>
#include <p11tls/token/soft_token.hpp>

namespace {
struct Hal {
    static p11tls::Result<void> derive_hardware_key(std::span<const std::byte>, std::span<std::byte, 32>) {
        return p11tls::fail(p11tls::Errc::not_supported);
    }
};
}  // namespace

namespace p11tls {
template class FlashNvm<SimFlash<parts::Stm32f4Flash>, 1, 3>;
template class FlashNvm<PowerCutFlash<SimFlash<parts::SpiNorFlash>>, 0, 8>;
template class FlashNvm<ImageFlash<parts::Nrf52840Flash>, 248, 8>;
template class EepromNvm<PowerCutEeprom<SimEeprom<parts::At24lc256>>>;
template class SealedNvm<FlashNvm<SimFlash<parts::Stm32f4Flash>, 1, 3>, KeyFile, GetrandomEntropy>;
template class SealedNvm<EepromNvm<SimEeprom<parts::At24lc256>>, HardwareKey<Hal>, GetrandomEntropy>;
template class SealedNvm<FlashNvm<SimFlash<parts::Nrf52840Flash>, 248, 8>, PinKey<>, GetrandomEntropy>;
static_assert(Nvm<FlashNvm<SimFlash<parts::Stm32f4Flash>, 1, 3>>);
static_assert(Nvm<EepromNvm<SimEeprom<parts::At24lc256>>>);
static_assert(Nvm<SealedNvm<EepromNvm<SimEeprom<parts::At24lc256>>, HardwareKey<Hal>, GetrandomEntropy>>);
static_assert(KeySource<PinKey<>> && KeySource<HardwareKey<Hal>>);
static_assert(Token<SoftToken<SealedNvm<FlashNvm<SimFlash<parts::Stm32f4Flash>, 1, 3>, PinKey<>, GetrandomEntropy>,
                              GetrandomEntropy>>);
}  // namespace p11tls
