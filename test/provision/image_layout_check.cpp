// SPDX-License-Identifier: MIT
// p11tls-provision writes board flash images with the layouts of tools/provision/
// image_boards.hpp; each must be its board's. This compiles each layout against the board's
// own board.hpp (host-compilable: nothing here runs), so a change to a board that the tool
// does not follow fails the build instead of writing images the board cannot read.
#include "../../boards/mps2-an386/board.hpp"
#include "../../tools/provision/image_boards.hpp"

namespace {

template <class Mirror, class Real>
constexpr bool same_part() {
    if (Mirror::size != Real::size || Mirror::sector_count != Real::sector_count ||
        Mirror::program_unit != Real::program_unit || Mirror::program_page != Real::program_page ||
        Mirror::erased_value != Real::erased_value)
        return false;
    for (std::size_t i = 0; i < Real::sector_count; ++i)
        if (Mirror::sector_size(i) != Real::sector_size(i) || Mirror::sector_offset(i) != Real::sector_offset(i))
            return false;
    return true;
}

template <class Mirror, class Real>
constexpr bool same_store() {
    return Mirror::first_sector == Real::first_sector && Mirror::sector_count == Real::sector_count &&
           Mirror::max_records == Real::max_records && Mirror::max_record_size == Real::max_record_size &&
           Mirror::format_version == Real::format_version;
}

template <class Mirror, class Real>
constexpr bool same_token() {
    return Mirror::max_objects == Real::max_objects && Mirror::max_object_size == Real::max_object_size &&
           Mirror::login_required == Real::login_required;
}

using Mirror = image_boards::Mps2An386;
namespace real = p11tls::board;
static_assert(same_part<Mirror::Part, real::FlashPart>(), "mps2-an386: the flash part differs from board.hpp");
static_assert(same_store<Mirror::Nvm, real::Nvm>(), "mps2-an386: the FlashNvm layout differs from board.hpp");
static_assert(same_token<Mirror::TokenConfig, real::TokenConfig>(), "mps2-an386: the token capacities differ from board.hpp");

}  // namespace
