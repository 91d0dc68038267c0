// SPDX-License-Identifier: MIT
// The board's flash store on the target: FlashNvm on the emulated flash keeps records across a
// remount, and a power cut at any program or erase of an update (a plain one, and one that
// makes the store collect a sector) leaves the old or the new value and every other record.
#include <array>
#include <cstring>
#include <memory>

#include <p11tls/device/power_cut.hpp>

#include "check.hpp"
#include "device.hpp"

using namespace p11tls;

namespace {

using CutFlash = PowerCutFlash<board::Flash>;
using CutNvm = FlashNvm<CutFlash, 0, board::Nvm::sector_count, board::Nvm::max_records, 2056>;

board::Flash::chip_type chip;  // a second array, so the token's store is not touched
PowerSupply supply;

// A blank part, erased in place (the array is larger than the stack).
void blank() {
    std::destroy_at(&chip);
    std::construct_at(&chip);
    supply.restore();
}

std::array<std::byte, 1500> value(int version) {
    std::array<std::byte, 1500> v;
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::byte(i * 31 + version * 7);
    return v;
}

// The record holds exactly one of the versions in `allowed`.
bool holds(CutNvm& nvm, RecordId id, std::initializer_list<int> allowed) {
    std::array<std::byte, 1500> out;
    auto n = nvm.load(id, out);
    if (!n || *n != out.size()) return false;
    for (int v : allowed)
        if (out == value(v)) return true;
    return false;
}

}  // namespace

TARGET_TEST("records survive a remount of the emulated flash") {
    blank();
    {
        auto nvm = CutNvm::mount(CutFlash(board::Flash(chip), supply));
        REQUIRE_OK(nvm);
        REQUIRE_OK(nvm->store(1, value(1)));
        REQUIRE_OK(nvm->store(2, value(2)));
        REQUIRE_OK(nvm->remove(2));
    }
    auto nvm = CutNvm::mount(CutFlash(board::Flash(chip), supply));
    REQUIRE_OK(nvm);
    CHECK(holds(*nvm, 1, {1}));
    std::array<std::byte, 8> small;
    CHECK(nvm->load(2, small).error().code == Errc::nvm_not_found);
}

// Runs `updates` stores of record 1 (versions 2, 3, ...) with record 2 beside it, cutting the
// power at operation `cut` of the last update; then remounts and checks.
static bool cut_run(int updates, std::size_t cut, std::size_t& ops_of_last) {
    blank();
    auto nvm = CutNvm::mount(CutFlash(board::Flash(chip), supply));
    if (!nvm || !nvm->store(1, value(1)) || !nvm->store(2, value(100))) return false;
    for (int v = 2; v < updates + 1; ++v)
        if (!nvm->store(1, value(v))) return false;
    const std::size_t before = supply.operations();
    supply.cut_after(cut);
    (void)nvm->store(1, value(updates + 1));
    ops_of_last = supply.operations() - before;
    supply.restore();
    auto again = CutNvm::mount(CutFlash(board::Flash(chip), supply));
    return again && holds(*again, 1, {updates, updates + 1}) && holds(*again, 2, {100});
}

TARGET_TEST("a power cut at every program of an update keeps the old or the new record") {
    std::size_t ops = 0;
    REQUIRE(cut_run(1, PowerSupply::never, ops));
    REQUIRE(ops > 0);
    for (std::size_t cut = 0; cut < ops; ++cut) {
        std::size_t seen;
        const bool ok = cut_run(1, cut, seen);
        if (!ok) std::printf("  cut at operation %u of %u\n", unsigned(cut), unsigned(ops));
        CHECK(ok);
    }
    std::printf("  %u cuts\n", unsigned(ops));
}

TARGET_TEST("a power cut at every operation of an update that collects a sector keeps both records") {
    // Two 1.5 KiB versions fit in a 4 KiB sector: find the first update that erases a sector.
    int updates = 0;
    std::size_t ops = 0;
    for (int u = 1; u < 80 && !updates; ++u) {
        blank();
        auto nvm = CutNvm::mount(CutFlash(board::Flash(chip), supply));
        REQUIRE_OK(nvm);
        REQUIRE_OK(nvm->store(1, value(1)));
        REQUIRE_OK(nvm->store(2, value(100)));
        for (int v = 2; v <= u; ++v) REQUIRE_OK(nvm->store(1, value(v)));
        const std::size_t erases = supply.erases(), before = supply.operations();
        REQUIRE_OK(nvm->store(1, value(u + 1)));
        if (supply.erases() > erases) {
            updates = u;
            ops = supply.operations() - before;
        }
    }
    REQUIRE(updates > 0);
    for (std::size_t cut = 0; cut < ops; ++cut) {
        std::size_t seen;
        CHECK(cut_run(updates, cut, seen));
    }
    std::printf("  update %d collects; %u cuts\n", updates + 1, unsigned(ops));
}

int main() {
    board::initialize();
    std::printf("board %s: flash store tests\n", board::name);
    return target::run_all();
}
