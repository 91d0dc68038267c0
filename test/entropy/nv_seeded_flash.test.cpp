// SPDX-License-Identifier: MIT
// NvSeeded over FlashNvm with power-loss injection: the power is cut at every program and
// erase of every boot's seed update (sector openings and garbage collections included, as
// the ring wraps), and no timeline ever hands out a DRBG block twice.
#include <memory>
#include <set>

#include <catch2/catch.hpp>

#include <p11tls/device/parts.hpp>
#include <p11tls/device/power_cut.hpp>
#include <p11tls/device/sim_flash.hpp>
#include <p11tls/nvm/flash_nvm.hpp>

#include "entropy/sim_board.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;

using Part = parts::Nrf52840Flash;  // 4 KiB pages, 32-bit program units
using Chip = SimFlashChip<Part>;
using Device = PowerCutFlash<SimFlash<Part>>;
using Store = FlashNvm<Device, 0, 3, 16, 256>;  // three sectors: the ring wraps every ~100 boots
using FlashEntropy = NvSeeded<BoardTrng, Store>;

constexpr std::uint64_t trng_sequence = 4242;  // replayed at every power-up
constexpr std::byte uid[] = {std::byte{0xF1}, std::byte{0xA5}, std::byte{0x40}};
constexpr std::size_t output_bytes = 256;

/// One power-up: mount, boot the entropy, hand out `output_bytes`. Empty if the boot failed
/// (the cut hit it); a failed boot never hands anything out (drbg_output checks the buffer).
std::vector<Block> power_up(Chip& chip, PowerSupply& power) {
    auto store = Store::mount(Device(SimFlash<Part>(chip), power));
    if (!store) return {};
    FlashEntropy e(BoardTrng(SimTrng<>{trng_sequence}), uid, &*store);
    Errc failed = no_error;
    auto out = drbg_output(e, output_bytes, &failed);
    if (out.empty()) {
        CHECK(failed == Errc::entropy_failed);
        return {};
    }
    return blocks(out);
}

}  // namespace

TEST_CASE("a power cut at any program or erase of the seed update never replays a stream (FlashNvm)", "[entropy][nvseed][flash]") {
    auto chip = std::make_unique<Chip>();
    auto saved = std::make_unique<Chip>();
    PowerSupply power(7);
    std::set<Block> handed_out;  // everything the main timeline handed out so far
    std::size_t cuts = 0, failed_boots = 0;
    constexpr int boots = 240;  // past two turns of the ring: openings, collections, erases
    for (int boot = 0; boot < boots; ++boot) {
        *saved = *chip;
        // This boot without a cut, on a copy, to count its memory operations.
        power.reset_count();
        const auto clean = power_up(*chip, power);
        REQUIRE(clean.size() == output_bytes / 16);
        const std::size_t ops = power.operations();
        REQUIRE(ops >= 1);
        // Every one of them cut in turn, each an alternative timeline from the same state.
        for (std::size_t j = 0; j < ops; ++j) {
            *chip = *saved;
            power.cut_after(j);
            const auto cut_boot = power_up(*chip, power);
            ++cuts;
            power.restore();
            if (cut_boot.empty()) ++failed_boots;
            std::set<Block> timeline = handed_out;
            for (const Block& b : cut_boot) CHECK(timeline.insert(b).second);
            // The next two boots after the cut: fresh streams.
            for (int k = 0; k < 2; ++k) {
                const auto next = power_up(*chip, power);
                REQUIRE(next.size() == output_bytes / 16);
                for (const Block& b : next) CHECK(timeline.insert(b).second);
            }
        }
        // The main timeline goes on from the uncut boot.
        *chip = *saved;
        const auto out = power_up(*chip, power);
        REQUIRE(out == clean);
        for (const Block& b : out) REQUIRE(handed_out.insert(b).second);
    }
    INFO("cuts: " << cuts << ", boots that failed on their cut: " << failed_boots);
    CHECK(handed_out.size() == boots * output_bytes / 16);
    CHECK(cuts >= 2 * boots);
    CHECK(failed_boots == cuts);   // every cut operation belonged to the seed update
    CHECK(chip->stats().erases >= 2);  // the ring wrapped: collections and erases were cut too
}
