// SPDX-License-Identifier: MIT
#pragma once
/// Board `mps2-an386`: ARM's AN386 FPGA image (Cortex-M4F, 25 MHz) as QEMU emulates it
/// (`qemu-system-arm -M mps2-an386`). Firmware, not a library host: the project's own startup
/// code and linker script (startup.cpp, linker.ld), newlib-nano with semihosting for the
/// console and the exit status, mbedTLS compiled from source with mbedtls_config.h.
///
/// The three policies:
/// - Nvm: FlashNvm on 128 KiB of emulated flash (SimFlash: RAM with flash rules, so a program
///   only clears bits, a unit is programmed once, erases are by 4 KiB sector) in the linker
///   script's `.flash_store` region. QEMU keeps nothing across runs: every boot starts blank.
/// - Entropy: EmulatorEntropy, a fixed-seed generator: QEMU's mps2-an386 has no TRNG.
///   Emulator-only and NOT secure; a release build (-Drelease=true) refuses this board.
/// - Token: SoftToken with small capacities and no lock (single-threaded firmware).
/// No network: TLS runs over a MemoryPipe against a server in the same image.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include <p11tls/device/sim_flash.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/token/soft_token.hpp>
#include <p11tls/tls/config.hpp>

namespace p11tls::board {

inline constexpr const char* name = "mps2-an386";

#ifdef P11TLS_RELEASE
inline constexpr bool release_build = true;
#else
inline constexpr bool release_build = false;
#endif

/// EMULATOR-ONLY, NOT SECURE. QEMU's mps2-an386 has no hardware RNG, and this is no
/// substitute for one: a SplitMix64 generator from a fixed seed, so every boot of an image
/// produces the same "random" bytes (TLS keys, token keys, nonces). It exists so the firmware
/// and its tests run under QEMU with repeatable instruction counts. A board for real hardware
/// supplies its TRNG here (NvSeeded<HealthTested<Trng>, Nvm>, see include/p11tls/entropy/).
class EmulatorEntropy {
public:
    static_assert(!release_build,
                  "board mps2-an386: EmulatorEntropy is emulator-only and NOT secure (QEMU's mps2-an386 has no "
                  "TRNG); a release build needs a board with a hardware entropy source");
    /// Tells tools and logs what this source is.
    static constexpr bool emulator_only = true;

    explicit EmulatorEntropy(std::uint64_t seed = 0x7031'3174'6c73'2d34) noexcept : state_(seed) {}

    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        while (!out.empty()) {
            std::uint64_t z = (state_ += 0x9E3779B97F4A7C15u);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
            z ^= z >> 31;
            const std::size_t n = out.size() < sizeof z ? out.size() : sizeof z;
            std::memcpy(out.data(), &z, n);
            out = out.subspan(n);
        }
        return {};
    }

private:
    std::uint64_t state_;
};
static_assert(p11tls::Entropy<EmulatorEntropy>);

/// Monotonic time from CMSDK APB timer 0 (0x40000000), a 32-bit down-counter at the 25 MHz
/// peripheral clock, free-running from initialize(). Under `qemu-system-arm -icount shift=0`
/// one instruction is one virtual nanosecond, so a tick is 40 instructions.
struct Clock {
    static constexpr std::uint32_t hz = 25'000'000;
    static constexpr std::uintptr_t base = 0x40000000;

    static void start() noexcept {
        reg(0x0) = 0;           // CTRL: stop
        reg(0x8) = 0xFFFFFFFF;  // RELOAD
        reg(0x4) = 0xFFFFFFFF;  // VALUE
        reg(0x0) = 1;           // CTRL: enable, no interrupt
    }
    /// Ticks since start() (wraps after 171 s).
    [[nodiscard]] static std::uint32_t ticks() noexcept { return 0xFFFFFFFFu - reg(0x4); }
    [[nodiscard]] static std::uint32_t milliseconds() noexcept { return ticks() / (hz / 1000); }

private:
    static volatile std::uint32_t& reg(std::uintptr_t off) noexcept {
        return *reinterpret_cast<volatile std::uint32_t*>(base + off);
    }
};

/// The emulated flash: 32 sectors of 4 KiB, 8-byte program units (as parts with ECC), erased to 0xFF.
struct FlashPart {
    static constexpr const char* name = "mps2-an386 emulated flash";
    static constexpr std::size_t size = 128 * 1024;
    static constexpr std::size_t sector_count = 32;
    static constexpr std::size_t sector_size(std::size_t) noexcept { return 4096; }
    static constexpr std::size_t sector_offset(std::size_t i) noexcept { return i * 4096; }
    static constexpr std::size_t program_unit = 8;
    static constexpr std::size_t program_page = 0;
    static constexpr std::byte erased_value{0xFF};
};
using Flash = SimFlash<FlashPart>;
static_assert(FlashDevice<Flash>);

/// The flash array, in linker.ld's `.flash_store` region (erased when first used after reset).
[[nodiscard]] inline Flash::chip_type& flash_chip() noexcept {
    [[gnu::section(".flash_store")]] static Flash::chip_type chip;
    return chip;
}

/// The token's store: the whole emulated flash, up to 32 records of a token object's size.
using Nvm = FlashNvm<Flash, 0, FlashPart::sector_count, 32, 2056>;
using Entropy = EmulatorEntropy;

/// A few objects (device key, its certificate, a root CA, a spare pair), no lock, and the
/// FreeRTOS-compatible mode: the firmware is the token's only user, so private objects are
/// usable without C_Login (they stay sensitive and non-extractable).
struct TokenConfig : SoftTokenConfig {
    static constexpr std::size_t max_objects = 8;
    static constexpr std::size_t max_object_size = 2048;
    static constexpr std::size_t max_sessions = 4;
    static constexpr bool login_required = false;
    static constexpr const char* model = "SoftToken M4";
    using Mutex = NullMutex;
};
using Token = SoftToken<Nvm, Entropy, TokenConfig>;
static_assert(p11tls::Token<Token>);

/// 4 KiB records both ways (mbedtls_config.h sizes the buffers): the client asks the server
/// for max_fragment_length 4096, so a server that honours it never sends a larger record.
/// No error sentences (as mbedtls_config.h has no mbedTLS error strings): failures keep their
/// Errc and native code, and error_message() prints those numbers.
/// Every optional feature stays on (resumption on reconnect, ALPN, PEM certificate input), as
/// mbedtls_config.h has what they need (MBEDTLS_SSL_SESSION_TICKETS, MBEDTLS_SSL_ALPN,
/// MBEDTLS_PEM_PARSE_C): the board shows the whole client, e.g. ALPN for MQTT on port 443.
/// Firmware that uses fewer derives from this and switches them off (tools/m4_report's
/// p11tls image does, to match the plain mbedTLS client).
struct TlsConfig : tls::TlsConfig {
    static constexpr unsigned char max_fragment_length = MBEDTLS_SSL_MAX_FRAG_LEN_4096;
    static constexpr bool error_texts = false;
    static_assert(MBEDTLS_SSL_IN_CONTENT_LEN >= 4096 && MBEDTLS_SSL_OUT_CONTENT_LEN >= 4096);
};

/// Mounts the token's store on the emulated flash and loads the token, once; later calls
/// return the same token.
[[nodiscard]] inline Result<Token*> open_token() {
    static std::optional<Token> token;
    if (token) return &*token;
    auto nvm = Nvm::mount(Flash(flash_chip()));
    if (!nvm) return fail(nvm.error());
    token.emplace(std::move(*nvm), Entropy{});
    if (auto r = token->load(); !r) {
        token.reset();
        return fail(r.error());
    }
    return &*token;
}

/// Starts the clock. The reset handler (startup.cpp) already set up memory, the FPU and the C
/// and C++ runtimes.
inline void initialize() { Clock::start(); }

}  // namespace p11tls::board
