// SPDX-License-Identifier: MIT
// EepromNvm beyond the Nvm contract: two copies per slot, moves, a full part, torn page
// writes at every step, damaged contents.
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
using Part = parts::At24lc256;

struct CutRig {
    using Device = PowerCutEeprom<SimEeprom<Part>>;
    using Store = EepromNvm<Device>;
    std::unique_ptr<SimEepromChip<Part>> chip = std::make_unique<SimEepromChip<Part>>();
    PowerSupply supply{21};
    Store mount() {
        auto r = Store::mount(Device(SimEeprom<Part>(*chip), supply));
        REQUIRE(code(r) == no_error);
        return std::move(*r);
    }
};

}  // namespace

TEST_CASE("EepromNvm: records and removals persist across a remount", "[nvm][eeprom_nvm]") {
    EepromModel<> m;
    REQUIRE(code(m.nvm().store(1, pattern(100, 1))) == no_error);
    REQUIRE(code(m.nvm().store(2, pattern(10, 2))) == no_error);
    REQUIRE(code(m.nvm().store(3, pattern(1000, 3))) == no_error);
    REQUIRE(code(m.nvm().store(1, pattern(50, 4))) == no_error);
    REQUIRE(code(m.nvm().store(3, pattern(2000, 5))) == no_error);  // moves to a bigger slot
    REQUIRE(code(m.nvm().remove(2)) == no_error);
    m.remount();
    CHECK(m.nvm().mount_report().records == 2);
    CHECK(m.nvm().mount_report().slots_freed == 0);
    CHECK(contents(m.nvm()) == std::map<RecordId, Bytes>{{1, pattern(50, 4)}, {3, pattern(2000, 5)}});
}

TEST_CASE("EepromNvm: updates alternate between the two copies", "[nvm][eeprom_nvm][wear]") {
    EepromModel<> m;
    REQUIRE(code(m.nvm().store(1, pattern(100, 0))) == no_error);  // 2 pages a copy: A0 B0 A1 B1
    m.chip->reset_stats();
    for (unsigned i = 1; i <= 100; ++i) REQUIRE(code(m.nvm().store(1, pattern(100, i))) == no_error);
    const auto& w = m.chip->stats().page_writes;
    CHECK(w[0] == 100);  // A0: its payload part and its header, 50 times
    CHECK(w[1] == 100);
    CHECK(w[2] == 50);
    CHECK(w[3] == 50);
    m.remount();
    CHECK(load_all(m.nvm(), 1) == pattern(100, 100));
}

TEST_CASE("EepromNvm: thousands of random stores and removes with remounts match a reference", "[nvm][eeprom_nvm]") {
    EepromModel<> m;
    std::mt19937 rng(7);
    std::map<RecordId, Bytes> ref;
    std::size_t fulls = 0;
    for (int op = 0; op < 4000; ++op) {
        const RecordId id = rng() % 20;
        if (rng() % 5 == 0) {
            REQUIRE(code(m.nvm().remove(id)) == no_error);
            ref.erase(id);
        } else {
            const std::size_t len = rng() % 4 == 0 ? rng() % 2000 : rng() % 200;
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
    INFO("stores refused as full: " << fulls);
    CHECK(fulls < 400);
}

TEST_CASE("EepromNvm: a full part refuses with nvm_full, keeps everything and still removes", "[nvm][eeprom_nvm]") {
    EepromModel<> m;
    std::map<RecordId, Bytes> ref;
    RecordId id = 0;
    for (;; ++id) {
        auto r = m.nvm().store(id, pattern(900, id));
        if (code(r) == Errc::nvm_full) break;
        REQUIRE(code(r) == no_error);
        ref[id] = pattern(900, id);
    }
    CHECK(id == 17);  // 15 pages per copy, 30 per slot: 17 slots in 512 pages
    CHECK(code(m.nvm().store(0, pattern(1000, 1))) == Errc::nvm_full);  // would need a bigger slot
    m.remount();
    CHECK(contents(m.nvm()) == ref);
    for (auto& [rid, v] : ref) REQUIRE(code(m.nvm().remove(rid)) == no_error);
    CHECK(contents(m.nvm()).empty());
    REQUIRE(code(m.nvm().store(1, pattern(900, 1))) == no_error);
}

TEST_CASE("EepromNvm: an update, a move or a removal cut at any write keeps the old or the new value",
          "[nvm][eeprom_nvm]") {
    CutRig rig;
    const Bytes old_value = pattern(300, 1), neighbour = pattern(80, 9);
    struct Case {
        const char* name;
        std::optional<Bytes> next;  // nullopt: remove
    };
    for (const Case& c : {Case{"update", pattern(300, 2)}, Case{"move to a bigger slot", pattern(900, 3)},
                          Case{"remove", std::nullopt}}) {
        INFO(c.name);
        rig.chip = std::make_unique<SimEepromChip<Part>>();
        {
            auto nvm = rig.mount();
            REQUIRE(code(nvm.store(1, old_value)) == no_error);
            REQUIRE(code(nvm.store(2, neighbour)) == no_error);
        }
        const Bytes base(rig.chip->bytes().begin(), rig.chip->bytes().end());
        auto run = [&](auto& nvm) { return c.next ? nvm.store(1, *c.next) : nvm.remove(1); };
        std::size_t steps = 0;
        {
            auto nvm = rig.mount();
            rig.supply.reset_count();
            REQUIRE(code(run(nvm)) == no_error);
            steps = rig.supply.operations();
        }
        CHECK(steps >= 2);
        for (std::size_t cut = 0; cut < steps; ++cut) {
            std::copy(base.begin(), base.end(), rig.chip->bytes().begin());
            {
                auto nvm = rig.mount();
                rig.supply.cut_after(cut);
                CHECK(code(run(nvm)) == Errc::nvm_io);
                rig.supply.restore();
            }
            auto after = rig.mount();
            CHECK(after.mount_report().corrupt_records == 0);
            Errc err{};
            auto v = load_all(after, 1, &err);
            const bool is_old = v && *v == old_value;
            const bool is_new = c.next ? v && *v == *c.next : !v && err == Errc::nvm_not_found;
            CHECK((is_old || is_new));
            CHECK(load_all(after, 2) == neighbour);
            // The store keeps working: finish the operation, remount, read back.
            REQUIRE(code(run(after)) == no_error);
            auto again = rig.mount();
            CHECK(again.mount_report().slots_freed == 0);
            CHECK(load_all(again, 1) == c.next);
            CHECK(load_all(again, 2) == neighbour);
        }
    }
}

TEST_CASE("EepromNvm: a part of random bytes mounts without crashing and takes records", "[nvm][eeprom_nvm][damage]") {
    EepromModel<> m;
    std::mt19937 rng(5);
    for (int round = 0; round < 20; ++round) {
        for (auto& b : m.chip->bytes()) b = std::byte(static_cast<unsigned char>(rng()));
        m.remount();
        CHECK(contents(m.nvm()).empty());
        REQUIRE(code(m.nvm().store(1, pattern(100, 1))) == no_error);
        m.remount();
        CHECK(load_all(m.nvm(), 1) == pattern(100, 1));
    }
}

TEST_CASE("EepromNvm: every single-bit flip in a store is detected or harmless, never a wrong value",
          "[nvm][eeprom_nvm][damage]") {
    EepromModel<> m;
    std::map<RecordId, std::vector<Bytes>> versions;
    auto put = [&](RecordId id, Bytes v) {
        REQUIRE(code(m.nvm().store(id, v)) == no_error);
        versions[id].push_back(std::move(v));
    };
    for (RecordId id = 1; id <= 5; ++id) put(id, pattern(30 + 40 * id, id));
    put(2, pattern(90, 20));
    put(4, pattern(150, 40));
    const Bytes image(m.chip->bytes().begin(), m.chip->bytes().end());
    std::size_t used = 0;  // pages up to the last slot
    for (std::size_t i = 0; i < image.size(); ++i)
        if (image[i] != std::byte{0xFF}) used = i + 1;
    used = std::min<std::size_t>((used / Part::page_size + 2) * Part::page_size, image.size());

    std::size_t flips = 0, harmless = 0, reported = 0, older = 0, wrong = 0;
    for (std::size_t byte = 0; byte < used; ++byte) {
        for (unsigned bit = 0; bit < 8; ++bit) {
            std::copy(image.begin(), image.end(), m.chip->bytes().begin());
            m.chip->bytes()[byte] ^= std::byte(1u << bit);
            m.remount();
            ++flips;
            bool all_current = true, any_older = false, any_wrong = false;
            for (auto& [id, vs] : versions) {
                Errc err{};
                auto v = load_all(m.nvm(), id, &err);
                if (v && *v == vs.back()) continue;
                all_current = false;
                if (v && std::find(vs.begin(), vs.end(), *v) != vs.end()) any_older = true;  // the other copy
                else if (!v && (err == Errc::nvm_corrupt || err == Errc::nvm_not_found)) continue;
                else any_wrong = true;
            }
            const auto& rep = m.nvm().mount_report();
            if (any_wrong) ++wrong;
            else if (all_current) ++harmless;
            else if (any_older) ++older;
            else if (rep.corrupt_records + rep.damaged_copies > 0) ++reported;
            else ++wrong;  // a record lost without a word
        }
    }
    std::printf("eeprom bitflip flips=%zu harmless=%zu previous_copy=%zu damaged_and_reported=%zu wrong=%zu\n", flips,
                harmless, older, reported, wrong);
    CHECK(flips > 8000);
    CHECK(wrong == 0);
    CHECK(reported > 0);
}
