// SPDX-License-Identifier: MIT
#pragma once
// The token stores of the boards whose flash images p11tls-provision reads and writes, each as
// the board's board.hpp defines it: the part's geometry, the FlashNvm partition and limits, and
// the token's capacities, over an image file instead of the part. A board header cannot be
// included next to the host board's, so these mirror them; test/provision/image_layout_check.cpp
// compiles each against its board.hpp, and the build fails when they differ.
#include <cstddef>

#include <p11tls/device/image_flash.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/token/soft_token.hpp>

namespace image_boards {

/// boards/mps2-an386/board.hpp: FlashPart, Nvm, TokenConfig.
struct Mps2An386Part {
    static constexpr const char* name = "mps2-an386 emulated flash";
    static constexpr std::size_t size = 128 * 1024;
    static constexpr std::size_t sector_count = 32;
    static constexpr std::size_t sector_size(std::size_t) noexcept { return 4096; }
    static constexpr std::size_t sector_offset(std::size_t i) noexcept { return i * 4096; }
    static constexpr std::size_t program_unit = 8;
    static constexpr std::size_t program_page = 0;
    static constexpr std::byte erased_value{0xFF};
};
struct Mps2An386 {
    static constexpr const char* name = "mps2-an386";
    using Part = Mps2An386Part;
    using Nvm = p11tls::FlashNvm<p11tls::ImageFlash<Part>, 0, Part::sector_count, 32, 2056>;
    struct TokenConfig : p11tls::SoftTokenConfig {
        static constexpr std::size_t max_objects = 8;
        static constexpr std::size_t max_object_size = 2048;
        static constexpr std::size_t max_sessions = 4;
        static constexpr bool login_required = false;
        static constexpr const char* model = "SoftToken M4";
        using Mutex = p11tls::NullMutex;
    };
};
static_assert(p11tls::FlashDevice<p11tls::ImageFlash<Mps2An386::Part>>);

}  // namespace image_boards
