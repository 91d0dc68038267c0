// SPDX-License-Identifier: MIT
// FlashNvm beyond the Nvm contract: persistence across mounts, collections, a full store,
// wear, repair at mount, and damaged contents (random images, every single-bit flip).
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/device/power_cut.hpp>

#include "support/nvm_contents.hpp"
#include "support/nvm_models.hpp"
#include "support/result.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

using Bytes = RecordBytes;
// STM32F4 sectors 3 and 4: 16 and 64 KiB.
using MixedF4Nvm = FlashNvm<SimFlash<parts::Stm32f4Flash>, 3, 2>;
using TwoSectorNor = FlashNvm<SimFlash<parts::SpiNorFlash>, 0, 2>;

using FlashModels = std::tuple<FlashModel<Stm32f4Nvm>, FlashModel<Nrf52840Nvm>, FlashModel<SpiNorNvm>,
                               FlashModel<MixedF4Nvm>, FlashModel<TwoSectorNor>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("FlashNvm: records and removals persist across a remount", "[nvm][flash_nvm]", FlashModels) {
    TestType m;
    REQUIRE(code(m.nvm().store(1, pattern(100, 1))) == no_error);
    REQUIRE(code(m.nvm().store(2, pattern(10, 2))) == no_error);
    REQUIRE(code(m.nvm().store(3, pattern(1000, 3))) == no_error);
    REQUIRE(code(m.nvm().store(1, pattern(50, 4))) == no_error);
    REQUIRE(code(m.nvm().remove(2)) == no_error);
    m.remount();
    CHECK(m.nvm().mount_report().records == 2);
    CHECK(m.nvm().mount_report().damaged_regions == 0);
    CHECK(contents(m.nvm()) == std::map<RecordId, Bytes>{{1, pattern(50, 4)}, {3, pattern(1000, 3)}});
}

TEMPLATE_LIST_TEST_CASE("FlashNvm: thousands of random stores and removes with remounts match a reference", "[nvm][flash_nvm]",
                        FlashModels) {
    using N = typename TestType::nvm_type;
    TestType m;
    std::mt19937 rng(42);
    std::map<RecordId, Bytes> ref;
    std::size_t fulls = 0;
    // As many ids as the partition holds comfortably; a few large records among small ones.
    const RecordId ids = std::max<RecordId>(4, N::smallest_sector * N::sector_count / 2048);
    const std::size_t large = std::min<std::size_t>(N::max_record_size, N::smallest_sector / 3);
    for (int op = 0; op < 4000; ++op) {
        const RecordId id = rng() % ids;
        if (rng() % 5 == 0) {
            REQUIRE(code(m.nvm().remove(id)) == no_error);
            ref.erase(id);
        } else {
            const std::size_t len = rng() % 4 == 0 ? rng() % large : rng() % 200;
            const Bytes v = pattern(len, static_cast<unsigned>(op));
            auto r = m.nvm().store(id, v);
            if (code(r) == Errc::nvm_full) {
                ++fulls;
            } else {
                REQUIRE(code(r) == no_error);
                ref[id] = v;
            }
        }
        if (op % 400 == 399) m.remount();
    }
    CHECK(contents(m.nvm()) == ref);
    m.remount();
    CHECK(contents(m.nvm()) == ref);
    CHECK(m.nvm().mount_report().damaged_regions == 0);
    INFO("stores refused as full: " << fulls);
    CHECK(fulls < 400);
}

TEMPLATE_LIST_TEST_CASE("FlashNvm: a full store refuses with nvm_full, keeps everything and still removes", "[nvm][flash_nvm]",
                        FlashModels) {
    TestType m;
    std::map<RecordId, Bytes> ref;
    RecordId id = 0;
    for (;; ++id) {
        auto r = m.nvm().store(id, pattern(900, id));
        if (code(r) == Errc::nvm_full) break;
        REQUIRE(code(r) == no_error);
        ref[id] = pattern(900, id);
        REQUIRE(id < 1000);
    }
    CHECK(id > 1);
    // Nothing was lost, also not by the refused store, and growing a record is refused too.
    CHECK(contents(m.nvm()) == ref);
    CHECK(code(m.nvm().store(0, pattern(2000, 9))) == Errc::nvm_full);
    m.remount();
    CHECK(contents(m.nvm()) == ref);
    // Every record can be removed from the full store, and then it takes records again.
    for (auto& [rid, v] : ref) REQUIRE(code(m.nvm().remove(rid)) == no_error);
    CHECK(contents(m.nvm()).empty());
    for (RecordId k = 0; k < id; ++k) REQUIRE(code(m.nvm().store(k, pattern(900, k + 50))) == no_error);
    m.remount();
    CHECK(contents(m.nvm()).size() == id);
}

TEMPLATE_LIST_TEST_CASE("FlashNvm: erases spread evenly over the sectors", "[nvm][flash_nvm][wear]", FlashModels) {
    using N = typename TestType::nvm_type;
    TestType m;
    // Static records (a key, a certificate) and one record updated over and over.
    REQUIRE(code(m.nvm().store(1, pattern(120, 1))) == no_error);
    REQUIRE(code(m.nvm().store(2, pattern(900, 2))) == no_error);
    for (unsigned i = 0; i < 3000; ++i) REQUIRE(code(m.nvm().store(3, pattern(200, i))) == no_error);
    const auto& erases = m.chip->stats().sector_erases;
    double sum = 0, max = 0;
    for (std::size_t s = 0; s < N::sector_count; ++s) {
        sum += erases[N::first_sector + s];
        max = std::max<double>(max, erases[N::first_sector + s]);
    }
    const double spread = max / (sum / N::sector_count);
    INFO("max/mean erases " << spread);
    CHECK(spread <= 1.5);
    CHECK(m.nvm().collections() > 0);
    CHECK(contents(m.nvm()).size() == 3);
}

TEST_CASE("FlashNvm: storing the bytes a record already holds programs nothing", "[nvm][flash_nvm][wear]") {
    FlashModel<SpiNorNvm> m;
    REQUIRE(code(m.nvm().store(5, pattern(500, 5))) == no_error);
    const auto programmed = m.chip->stats().bytes_programmed;
    REQUIRE(code(m.nvm().store(5, pattern(500, 5))) == no_error);
    CHECK(m.chip->stats().bytes_programmed == programmed);
    REQUIRE(code(m.nvm().store(5, pattern(500, 6))) == no_error);
    CHECK(m.chip->stats().bytes_programmed > programmed);
}

TEST_CASE("FlashNvm: a blank part is formatted at the first mount", "[nvm][flash_nvm]") {
    FlashModel<Stm32f4Nvm> m;
    CHECK(m.nvm().mount_report().sectors_formatted == 3);
    CHECK(m.chip->stats().sector_erases[1] == 1);
    CHECK(m.chip->stats().sector_erases[4] == 0);  // outside the partition
    m.remount();
    CHECK(m.nvm().mount_report().sectors_formatted == 0);
    CHECK(m.chip->stats().erases == 3);
}

// --- power cuts at chosen points ----------------------------------------------------------------

namespace {

template <class Part, std::size_t First, std::size_t Count>
struct CutRig {
    using Device = PowerCutFlash<SimFlash<Part>>;
    using Store = FlashNvm<Device, First, Count>;
    std::unique_ptr<SimFlashChip<Part>> chip = std::make_unique<SimFlashChip<Part>>();
    PowerSupply supply{77};
    Store mount() {
        auto r = Store::mount(Device(SimFlash<Part>(*chip), supply));
        REQUIRE(code(r) == no_error);
        return std::move(*r);
    }
};

}  // namespace

TEST_CASE("FlashNvm: after a failed device operation the store refuses work until mounted again", "[nvm][flash_nvm]") {
    CutRig<parts::SpiNorFlash, 0, 4> rig;
    auto nvm = rig.mount();
    REQUIRE(code(nvm.store(1, pattern(40, 1))) == no_error);
    rig.supply.cut_after(1);
    CHECK(code(nvm.store(2, pattern(40, 2))) == Errc::nvm_io);
    rig.supply.restore();
    CHECK(code(nvm.store(3, pattern(40, 3))) == Errc::nvm_io);
    CHECK(code(nvm.size(1)) == Errc::nvm_io);
    auto again = rig.mount();
    CHECK(load_all(again, 1) == pattern(40, 1));
    CHECK(code(again.store(3, pattern(40, 3))) == no_error);
}

TEST_CASE("FlashNvm: a record torn at any point is ignored, with no corruption reported", "[nvm][flash_nvm]") {
    CutRig<parts::Nrf52840Flash, 0, 2> rig;
    {
        auto nvm = rig.mount();
        REQUIRE(code(nvm.store(1, pattern(300, 1))) == no_error);
    }
    std::size_t steps = 0;
    {
        auto probe = rig.mount();
        rig.supply.reset_count();
        REQUIRE(code(probe.store(1, pattern(300, 2))) == no_error);
        steps = rig.supply.operations();
        REQUIRE(code(probe.store(1, pattern(300, 1))) == no_error);
    }
    CHECK(steps >= 3);  // fields, payload, commit
    for (std::size_t cut = 0; cut < steps; ++cut) {
        auto nvm = rig.mount();
        rig.supply.cut_after(cut);
        CHECK(code(nvm.store(1, pattern(300, 2))) == Errc::nvm_io);
        rig.supply.restore();
        auto after = rig.mount();
        CHECK(after.mount_report().corrupt_records == 0);
        auto v = load_all(after, 1);
        REQUIRE(v);
        CHECK((*v == pattern(300, 1) || *v == pattern(300, 2)));
        // Later records append after the torn one and survive a remount.
        REQUIRE(code(after.store(2, pattern(64, cut))) == no_error);
        REQUIRE(code(after.store(1, pattern(300, 1))) == no_error);
        auto again = rig.mount();
        CHECK(load_all(again, 2) == pattern(64, cut));
        CHECK(load_all(again, 1) == pattern(300, 1));
    }
}

TEST_CASE("FlashNvm: mount finishes a collection cut at any point, also when a torn copy took its room",
          "[nvm][flash_nvm]") {
    // Two 4 KiB sectors. The first holds a 3000-byte record and a removed one; the next store
    // does not fit, so the record is copied into the second sector and the first erased. A cut
    // in the middle of the copy leaves a torn copy that takes the room the copy needs: mount
    // then erases the second sector and starts from the state before.
    CutRig<parts::SpiNorFlash, 0, 2> rig;
    const Bytes kept = pattern(3000, 1);
    auto prepare = [&] {
        rig.chip = std::make_unique<SimFlashChip<parts::SpiNorFlash>>();
        auto nvm = rig.mount();
        REQUIRE(code(nvm.store(1, kept)) == no_error);
        REQUIRE(code(nvm.store(2, pattern(500, 2))) == no_error);
        REQUIRE(code(nvm.remove(2)) == no_error);
        return nvm;
    };
    std::size_t steps = 0;
    {
        auto nvm = prepare();
        rig.supply.reset_count();
        REQUIRE(code(nvm.store(3, pattern(600, 3))) == no_error);
        steps = rig.supply.operations();
        REQUIRE(nvm.collections() == 1);
    }
    std::size_t finished = 0, started_over = 0;
    for (std::size_t cut = 0; cut < steps; ++cut) {
        {
            auto nvm = prepare();
            rig.supply.cut_after(cut);
            CHECK(code(nvm.store(3, pattern(600, 3))) == Errc::nvm_io);
            rig.supply.restore();
        }
        auto after = rig.mount();
        finished += after.mount_report().gc_finished ? 1 : 0;
        started_over += after.mount_report().sectors_formatted > 0 && !after.mount_report().gc_finished ? 1 : 0;
        CHECK(load_all(after, 1) == kept);
        CHECK(code(after.size(2)) == Errc::nvm_not_found);
        CHECK(after.mount_report().corrupt_records == 0);
        REQUIRE(code(after.store(3, pattern(600, 3))) == no_error);
        auto again = rig.mount();
        CHECK(contents(again) == std::map<RecordId, Bytes>{{1, kept}, {3, pattern(600, 3)}});
    }
    CHECK(finished > 0);
    CHECK(started_over > 0);
}

// --- damaged contents ------------------------------------------------------------------------

TEST_CASE("FlashNvm: a partition of random bytes mounts as an empty, formatted store", "[nvm][flash_nvm][damage]") {
    FlashModel<Stm32f4Nvm> m;
    std::mt19937 rng(9);
    for (int round = 0; round < 20; ++round) {
        auto bytes = m.chip->bytes().subspan(parts::Stm32f4Flash::sector_offset(1), 3 * 16 * 1024);
        for (auto& b : bytes) b = std::byte(static_cast<unsigned char>(rng()));
        std::fill(m.chip->programmed().begin(), m.chip->programmed().end(), 1);
        m.remount();
        CHECK(m.nvm().mount_report().sectors_formatted == 3);
        CHECK(contents(m.nvm()).empty());
        REQUIRE(code(m.nvm().store(1, pattern(100, 1))) == no_error);
        m.remount();
        CHECK(load_all(m.nvm(), 1) == pattern(100, 1));
    }
}

TEST_CASE("FlashNvm: garbage after the last record is skipped, not taken for records", "[nvm][flash_nvm][damage]") {
    FlashModel<SpiNorNvm> m;
    REQUIRE(code(m.nvm().store(1, pattern(100, 1))) == no_error);
    REQUIRE(code(m.nvm().store(2, pattern(100, 2))) == no_error);
    // Random bytes in the erased part of the head sector (where sector 0 ends).
    std::mt19937 rng(3);
    for (std::size_t i = 2048; i < 2600; ++i) m.chip->bytes()[i] = std::byte(static_cast<unsigned char>(rng()));
    std::fill(m.chip->programmed().begin() + 2048, m.chip->programmed().begin() + 2600, 1);
    m.remount();
    CHECK(m.nvm().mount_report().damaged_regions == 1);
    CHECK(contents(m.nvm()) == std::map<RecordId, Bytes>{{1, pattern(100, 1)}, {2, pattern(100, 2)}});
    // New records go after the garbage and survive.
    for (unsigned i = 0; i < 40; ++i) REQUIRE(code(m.nvm().store(3, pattern(100, i))) == no_error);
    m.remount();
    CHECK(load_all(m.nvm(), 3) == pattern(100, 39));
}

TEST_CASE("FlashNvm: a free sector with stray bytes in its body is erased again before it takes records",
          "[nvm][flash_nvm][damage]") {
    FlashModel<SpiNorNvm> m;
    for (std::size_t i = 3 * 4096 + 1000; i < 3 * 4096 + 1010; ++i) {
        m.chip->bytes()[i] = std::byte{0x00};
        m.chip->programmed()[i] = 1;
    }
    m.remount();
    const auto erases = m.chip->stats().sector_erases[3];
    for (unsigned i = 0; i < 20; ++i) REQUIRE(code(m.nvm().store(i, pattern(900, i))) == no_error);
    CHECK(m.chip->stats().sector_erases[3] == erases + 1);
    m.remount();
    CHECK(contents(m.nvm()).size() == 20);
}

TEST_CASE("FlashNvm: every single-bit flip in a store is detected or harmless, never a wrong value",
          "[nvm][flash_nvm][damage]") {
    using N = FlashNvm<SimFlash<parts::SpiNorFlash>, 0, 3>;
    FlashModel<N> m;
    // Records with history (older versions still in the log) and a removal.
    std::map<RecordId, std::vector<Bytes>> versions;
    auto put = [&](RecordId id, Bytes v) {
        REQUIRE(code(m.nvm().store(id, v)) == no_error);
        versions[id].push_back(std::move(v));
    };
    for (RecordId id = 1; id <= 6; ++id) put(id, pattern(40 + 30 * id, id));
    put(2, pattern(90, 20));
    put(4, pattern(60, 40));
    put(7, pattern(30, 70));
    REQUIRE(code(m.nvm().remove(7)) == no_error);
    // The records sit in the first sector: flip every bit of them and a little beyond, and of the
    // other (free) sectors' headers.
    const std::vector<std::byte> image(m.chip->bytes().begin(), m.chip->bytes().begin() + 3 * 4096);
    const std::vector<std::uint8_t> flags(m.chip->programmed().begin(), m.chip->programmed().begin() + 3 * 4096);
    auto last_used = std::find_if(image.rbegin() + static_cast<std::ptrdiff_t>(image.size() - 4096), image.rend(),
                                  [](std::byte b) { return b != std::byte{0xFF}; });
    const std::size_t end0 = static_cast<std::size_t>(image.rend() - last_used) + 64;

    std::size_t flips = 0, harmless = 0, reported = 0, wrong = 0, unreported = 0;
    auto check_flip = [&](std::size_t byte, unsigned bit) {
        std::copy(image.begin(), image.end(), m.chip->bytes().begin());
        std::copy(flags.begin(), flags.end(), m.chip->programmed().begin());
        m.chip->bytes()[byte] ^= std::byte(1u << bit);
        m.remount();
        ++flips;
        bool all_current = true, any_wrong = false;
        for (auto& [id, vs] : versions) {
            Errc err{};
            auto v = load_all(m.nvm(), id, &err);
            const bool removed = id == 7;
            if (removed ? !v && err == Errc::nvm_not_found : v && *v == vs.back()) continue;
            all_current = false;
            if (v && std::find(vs.begin(), vs.end(), *v) != vs.end()) continue;  // an older version came back
            if (!v && (err == Errc::nvm_corrupt || err == Errc::nvm_not_found)) continue;
            any_wrong = true;
        }
        const auto& rep = m.nvm().mount_report();
        const bool was_reported = rep.damaged_regions + rep.corrupt_records + rep.sectors_formatted > 0;
        if (any_wrong) ++wrong;
        else if (all_current) ++harmless;
        else if (was_reported) ++reported;
        else ++unreported;
        if (flips % 97 == 0) {  // the store keeps working
            REQUIRE(code(m.nvm().store(100, pattern(50, 1))) == no_error);
            REQUIRE(code(m.nvm().remove(100)) == no_error);
        }
    };
    REQUIRE(end0 < 4096);
    for (std::size_t byte = 0; byte < end0; ++byte)
        for (unsigned bit = 0; bit < 8; ++bit) check_flip(byte, bit);
    for (std::size_t sector = 1; sector < 3; ++sector)
        for (std::size_t byte = sector * 4096; byte < sector * 4096 + 32; ++byte)
            for (unsigned bit = 0; bit < 8; ++bit) check_flip(byte, bit);
    std::printf("bitflip flips=%zu harmless=%zu damaged_and_reported=%zu unreported=%zu wrong_value=%zu\n", flips, harmless,
                reported, unreported, wrong);
    CHECK(flips > 8000);
    CHECK(wrong == 0);
    CHECK(unreported == 0);
    CHECK(reported > 0);
}
