// SPDX-License-Identifier: MIT
// Power loss at every instant: a SoftToken workload of creates, label updates and destroys runs
// over each store on each simulated part, and the power is cut at every program, erase or
// EEPROM write of the workload in turn (every one, not a sample). After each cut the store is
// mounted again and every object must hold its old or its new value, no other object may have
// changed, no record may be reported corrupt, and the store must keep working. Writes done by
// the remount itself (formatting a half-erased sector, finishing a collection) are cut in turn
// too. Each sweep prints its counts; the failure count must be 0.
//
// This is its own executable (meson test 'powerloss', suite 'powerloss'): a sweep mounts the
// token three times per cut point.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/device/power_cut.hpp>

#include "support/nvm_models.hpp"
#include "support/token_fixture.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

// A small token: a sweep builds tens of thousands of them.
struct SweepConfig : SoftTokenConfig {
    static constexpr std::size_t max_objects = 32;
    static constexpr std::size_t max_object_size = 1024;
    static constexpr std::size_t max_sessions = 2;
    static constexpr bool login_required = false;
    static constexpr unsigned pin_iterations = 1000;
    using Mutex = NullMutex;
};

// --- rigs: a chip, its power supply, snapshots, and the store mounted through the cut wrapper ---

template <class Part, std::size_t First, std::size_t Count>
struct FlashRig {
    using Chip = SimFlashChip<Part>;
    using Device = PowerCutFlash<SimFlash<Part>>;
    using Store = FlashNvm<Device, First, Count>;
    static constexpr std::size_t from = Part::sector_offset(First);
    static constexpr std::size_t to = Part::sector_offset(First + Count - 1) + Part::sector_size(First + Count - 1);
    static constexpr const char* name = Part::name;
    static constexpr const char* store_name = "FlashNvm";
    static std::string sectors() { return std::to_string(First) + "-" + std::to_string(First + Count - 1); }
    static constexpr std::size_t probe_size = 1024;
    static constexpr std::size_t probe_writes = (to - from) / probe_size + 2;

    struct Snapshot {
        std::vector<std::byte> bytes;
        std::vector<std::uint8_t> programmed;
    };

    std::unique_ptr<Chip> chip = std::make_unique<Chip>();
    PowerSupply supply{0x5EED};

    Result<Store> mount() { return Store::mount(Device(SimFlash<Part>(*chip), supply)); }
    void save(Snapshot& s) const {
        auto b = chip->bytes().subspan(from, to - from);
        s.bytes.assign(b.begin(), b.end());
        auto p = chip->programmed().subspan(from / Part::program_unit, (to - from) / Part::program_unit);
        s.programmed.assign(p.begin(), p.end());
    }
    void restore(const Snapshot& s) {
        std::copy(s.bytes.begin(), s.bytes.end(), chip->bytes().begin() + from);
        std::copy(s.programmed.begin(), s.programmed.end(), chip->programmed().begin() + from / Part::program_unit);
    }
    std::uint64_t collections() const { return chip->stats().erases; }
};

struct EepromRig {
    using Chip = SimEepromChip<parts::At24lc256>;
    using Device = PowerCutEeprom<SimEeprom<parts::At24lc256>>;
    using Store = EepromNvm<Device>;
    static constexpr const char* name = parts::At24lc256::name;
    static constexpr const char* store_name = "EepromNvm";
    static std::string sectors() { return "all"; }
    static constexpr std::size_t probe_size = 1024;
    static constexpr std::size_t probe_writes = 4;

    struct Snapshot {
        std::vector<std::byte> bytes;
    };

    std::unique_ptr<Chip> chip = std::make_unique<Chip>();
    PowerSupply supply{0xEE};

    Result<Store> mount() { return Store::mount(Device(SimEeprom<parts::At24lc256>(*chip), supply)); }
    void save(Snapshot& s) const { s.bytes.assign(chip->bytes().begin(), chip->bytes().end()); }
    void restore(const Snapshot& s) { std::copy(s.bytes.begin(), s.bytes.end(), chip->bytes().begin()); }
    std::uint64_t collections() const { return 0; }
};

// A sealed store over a flash rig: the cut lands in the inner store's device.
template <class Rig>
struct SealedRig : Rig {
    using Store = SealedNvm<typename Rig::Store, FixedKey, GetrandomEntropy>;
    static constexpr const char* store_name = "SealedNvm<FlashNvm>";
    Result<Store> mount() {
        auto inner = Rig::mount();
        if (!inner) return fail(inner.error());
        return Store::open(std::move(*inner), FixedKey{}, GetrandomEntropy{});
    }
};

// --- the workload ---

struct Object {
    std::string label;
    Bytes value;
    friend bool operator==(const Object&, const Object&) = default;
};
using State = std::map<std::string, Object>;  // by CKA_APPLICATION, the object's identity

struct Op {
    enum Kind { create, update, destroy } kind;
    std::string app;
    Object obj;  // create: the object; update: the new label in obj.label
};

class Workload {
public:
    explicit Workload(std::uint64_t seed) : rng_(seed) {}

    Op next(const State& s) {
        const std::size_t n = s.size();
        const unsigned pick = static_cast<unsigned>(rng_.random(100));
        Op op;
        if (n < 6 || (n < 14 && pick < 30)) {
            op.kind = Op::create;
            op.app = "obj-" + std::to_string(serial_++);
            op.obj.label = text(1 + rng_.random(40));
            op.obj.value.resize(16 + rng_.random(150));
            for (auto& b : op.obj.value) b = static_cast<unsigned char>(rng_.random(256));
        } else if (n > 14 || pick >= 80) {
            op.kind = Op::destroy;
            op.app = nth(s, rng_.random(n));
        } else {
            op.kind = Op::update;
            op.app = nth(s, rng_.random(n));
            op.obj.label = text(1 + rng_.random(60));
        }
        return op;
    }

private:
    static std::string nth(const State& s, std::uint64_t i) { return std::next(s.begin(), static_cast<std::ptrdiff_t>(i))->first; }
    std::string text(std::uint64_t len) {
        std::string t(len, ' ');
        for (auto& c : t) c = static_cast<char>('a' + rng_.random(26));
        return t;
    }
    PowerSupply rng_;  // its generator only
    unsigned serial_ = 0;
};

State apply_to(State s, const Op& op) {
    switch (op.kind) {
    case Op::create: s[op.app] = op.obj; break;
    case Op::update: s[op.app].label = op.obj.label; break;
    case Op::destroy: s.erase(op.app); break;
    }
    return s;
}

// --- the token side, without Catch assertions in the hot loop ---

template <class Store>
struct Token {
    using type = SoftToken<Store, GetrandomEntropy, SweepConfig>;
    std::unique_ptr<type> token;
    CK_ULONG session = 0;

    // Mounts the store and loads a token over it; an error if any step fails.
    template <class Rig>
    Result<void> open(Rig& rig) {
        token.reset();
        auto store = rig.mount();
        if (!store) return fail(store.error());
        token = std::make_unique<type>(std::move(*store), GetrandomEntropy{});
        P11TLS_TRY(token->load());
        auto s = token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
        if (!s) return fail(s.error());
        session = *s;
        return {};
    }

    std::optional<CK_ULONG> handle(const std::string& app) {
        CK_ATTRIBUTE a{CKA_APPLICATION, const_cast<char*>(app.data()), app.size()};
        if (!token->find_init(session, std::span(&a, 1))) return std::nullopt;
        std::array<CK_ULONG, 2> hits{};
        auto n = token->find(session, hits);
        (void)token->find_final(session);
        if (!n || *n != 1) return std::nullopt;
        return hits[0];
    }

    Result<void> run(const Op& op) {
        if (op.kind == Op::create) {
            Template t;
            t.add(CKA_CLASS, CKO_DATA).add(CKA_TOKEN, true).add(CKA_APPLICATION, std::string_view(op.app)).add(CKA_LABEL, std::string_view(op.obj.label))
                .add(CKA_VALUE, op.obj.value);
            auto h = token->create_object(session, t);
            if (!h) return fail(h.error());
            return {};
        }
        auto h = handle(op.app);
        if (!h) return fail(Errc::object_handle_invalid);
        if (op.kind == Op::destroy) return token->destroy_object(session, *h);
        CK_ATTRIBUTE a{CKA_LABEL, const_cast<char*>(op.obj.label.data()), op.obj.label.size()};
        return token->set_attributes(session, *h, std::span(&a, 1));
    }

    bool get(CK_ULONG h, CK_ATTRIBUTE_TYPE type, Bytes& out) {
        CK_ATTRIBUTE a{type, nullptr, 0};
        if (!token->get_attributes(session, h, std::span(&a, 1))) return false;
        out.resize(a.ulValueLen);
        a.pValue = out.data();
        return static_cast<bool>(token->get_attributes(session, h, std::span(&a, 1)));
    }

    // What the token holds now, or nullopt if it cannot be read back.
    std::optional<State> state() {
        if (!token->find_init(session, {})) return std::nullopt;
        std::vector<CK_ULONG> all;
        for (std::array<CK_ULONG, 8> batch;;) {
            auto n = token->find(session, batch);
            if (!n) return std::nullopt;
            if (*n == 0) break;
            all.insert(all.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(*n));
        }
        (void)token->find_final(session);
        State s;
        Bytes app, label, value;
        for (CK_ULONG h : all) {
            if (!get(h, CKA_APPLICATION, app) || !get(h, CKA_LABEL, label) || !get(h, CKA_VALUE, value)) return std::nullopt;
            s[std::string(app.begin(), app.end())] = Object{std::string(label.begin(), label.end()), value};
        }
        return s;
    }
};

struct Counts {
    std::size_t ops = 0, creates = 0, updates = 0, destroys = 0;
    std::size_t cut_points = 0, erase_cut_points = 0, recovery_cut_points = 0, failures = 0;
    std::size_t landed_old = 0, landed_new = 0;
};

// P11TLS_POWERLOSS_SEED=n runs the sweeps with other workloads (and other tears).
std::uint64_t seed_offset() {
    const char* s = std::getenv("P11TLS_POWERLOSS_SEED");
    return s ? std::strtoull(s, nullptr, 10) : 0;
}

template <class Rig>
Counts sweep(std::size_t ops, std::uint64_t seed) {
    seed += 1000 * seed_offset();
    using Store = typename Rig::Store;
    Rig rig;
    rig.supply = PowerSupply(seed * 0x9E3779B97F4A7C15ull + 1);
    Counts c;
    Token<Store> tok;
    std::vector<std::string> notes;
    auto failure = [&](std::string what) {
        if (notes.size() < 8) notes.push_back(std::move(what));
        ++c.failures;
    };

    REQUIRE(code(tok.open(rig)) == no_error);  // formats the blank part, writes the token state
    typename Rig::Snapshot before_op, after_op, after_cut;
    std::vector<std::byte> probe(Rig::probe_size, std::byte{0x3C});
    rig.save(before_op);
    State state;
    Workload work(seed);

    for (std::size_t i = 0; i < ops; ++i) {
        const Op op = work.next(state);
        const State next = apply_to(state, op);
        ++c.ops;
        (op.kind == Op::create ? c.creates : op.kind == Op::update ? c.updates : c.destroys)++;

        // The uncut run: how many device operations the token operation takes, and the state after.
        rig.restore(before_op);
        REQUIRE(code(tok.open(rig)) == no_error);
        rig.supply.reset_count();
        REQUIRE(code(tok.run(op)) == no_error);
        const std::size_t steps = rig.supply.operations();
        c.erase_cut_points += rig.supply.erases();
        rig.save(after_op);

        // Checks the token on the chip as it is now: old or new state, nothing corrupt.
        auto check = [&](const char* when, std::size_t cut, bool allow_old) -> int {
            auto got = tok.state();
            if (!got) {
                failure(std::string(when) + ": objects unreadable, op " + std::to_string(i) + " cut " + std::to_string(cut));
                return -1;
            }
            if (tok.token->corrupt_records() != 0) {
                failure(std::string(when) + ": corrupt record, op " + std::to_string(i) + " cut " + std::to_string(cut));
                return -1;
            }
            if (*got == next) return 1;
            if (allow_old && *got == state) return 0;
            std::string diff;
            for (const auto& [app, o] : next)
                if (!got->count(app)) diff += " missing " + app;
                else if (!(got->at(app) == o) && !(state.count(app) && got->at(app) == state.at(app))) diff += " changed " + app;
            for (const auto& [app, o] : *got)
                if (!next.count(app) && !state.count(app)) diff += " extra " + app;
                else if (!next.count(app)) diff += " resurrected " + app;
            failure(std::string(when) + ": neither old nor new state, op " + std::to_string(i) + " cut " + std::to_string(cut) +
                    " (op kind " + std::to_string(op.kind) + " on " + op.app + ":" + diff + ")");
            return -1;
        };

        for (std::size_t cut = 0; cut < steps; ++cut) {
            ++c.cut_points;
            rig.restore(before_op);
            if (!tok.open(rig)) {
                failure("reopen before cut");
                continue;
            }
            rig.supply.reset_count();
            rig.supply.cut_after(cut);
            if (tok.run(op) || rig.supply.on()) failure("operation survived its cut, op " + std::to_string(i));
            tok.token.reset();
            rig.supply.restore();
            rig.save(after_cut);

            // The remount may write (format a half-erased sector, finish a collection): cut those too.
            rig.supply.reset_count();
            if (auto r = tok.open(rig); !r) {
                failure("remount after cut " + std::to_string(cut) + " of op " + std::to_string(i) + ": " + describe(r.error().code));
                continue;
            }
            const std::size_t recovery = rig.supply.operations();
            for (std::size_t rc = 0; rc < recovery; ++rc) {
                ++c.recovery_cut_points;
                rig.restore(after_cut);
                rig.supply.reset_count();
                rig.supply.cut_after(rc);
                (void)tok.open(rig);  // fails: the power goes during the repair
                tok.token.reset();
                rig.supply.restore();
                if (auto r = tok.open(rig); !r) {
                    failure("remount after a cut repair, op " + std::to_string(i) + ": " + describe(r.error().code));
                    continue;
                }
                (void)check("after a cut repair", cut, true);
            }
            if (recovery > 0) {
                rig.restore(after_cut);
                if (!tok.open(rig)) {
                    failure("remount");
                    continue;
                }
            }

            const int landed = check("after the cut", cut, true);
            if (landed < 0) continue;
            (landed ? c.landed_new : c.landed_old)++;
            // The store keeps working: finish the operation if it did not land, write and remove
            // one more record, and read everything back after another remount.
            if (landed == 0 && !tok.run(op)) {
                failure("operation again after its cut, op " + std::to_string(i));
                continue;
            }
            // Enough writes of a board record to turn the whole ring of sectors (every sector
            // collected once), so a repair left half done would show.
            const RecordId probe_id = decltype(tok)::type::first_platform_record + 1;
            bool probe_ok = true;
            for (std::size_t k = 0; k < Rig::probe_writes && probe_ok; ++k) {
                probe[0] = std::byte(k);
                probe_ok = static_cast<bool>(tok.token->nvm().store(probe_id, probe));
            }
            if (!probe_ok || !tok.token->nvm().remove(probe_id)) {
                failure("probe writes after the cut, op " + std::to_string(i));
                continue;
            }
            if (!tok.open(rig)) {
                failure("third remount");
                continue;
            }
            (void)check("after finishing", cut, false);
        }

        rig.restore(after_op);
        std::swap(before_op, after_op);
        state = next;
    }
    for (const auto& n : notes) std::printf("powerloss failure: %s\n", n.c_str());
    std::printf("powerloss store=%s part=%s sectors=%s seed=%llu ops=%zu creates=%zu updates=%zu destroys=%zu cut_points=%zu "
                "(erases %zu) recovery_cut_points=%zu landed_old=%zu landed_new=%zu failures=%zu\n",
                Rig::store_name, Rig::name, Rig::sectors().c_str(), static_cast<unsigned long long>(seed), c.ops, c.creates, c.updates, c.destroys, c.cut_points, c.erase_cut_points,
                c.recovery_cut_points, c.landed_old, c.landed_new, c.failures);
    std::fflush(stdout);
    return c;
}

// Histories with many faults: the workload runs on from whatever a cut left, cuts fall at
// random operations (also into the repair a remount does), and the state is checked after each.
template <class Rig>
std::size_t chaos(std::size_t ops, std::uint64_t seed) {
    using Store = typename Rig::Store;
    seed += 1000 * seed_offset();
    Rig rig;
    rig.supply = PowerSupply(seed);
    PowerSupply dice(seed + 1);
    Token<Store> tok;
    REQUIRE(code(tok.open(rig)) == no_error);
    State state;
    Workload work(seed);
    std::size_t cuts = 0, failures = 0;
    for (std::size_t i = 0; i < ops; ++i) {
        const Op op = work.next(state);
        const State next = apply_to(state, op);
        if (dice.random(4) != 0) {
            if (auto r = tok.run(op); !r) {
                ++failures;
                std::printf("chaos failure: op %zu failed without a cut: %s\n", i, describe(r.error().code));
                REQUIRE(code(tok.open(rig)) == no_error);
                continue;
            }
            state = next;
            continue;
        }
        ++cuts;
        rig.supply.reset_count();
        rig.supply.cut_after(dice.random(12));
        const bool done = static_cast<bool>(tok.run(op));
        rig.supply.disarm();
        tok.token.reset();
        rig.supply.restore();
        // Sometimes the power goes again while the store repairs itself at mount.
        while (dice.random(3) == 0) {
            rig.supply.cut_after(dice.random(6));
            (void)tok.open(rig);
            rig.supply.disarm();
            tok.token.reset();
            rig.supply.restore();
        }
        REQUIRE(code(tok.open(rig)) == no_error);
        auto got = tok.state();
        REQUIRE(got);
        if (tok.token->corrupt_records() != 0 || !(*got == next || (!done && *got == state))) {
            ++failures;
            std::printf("chaos failure: op %zu, cut %zu: neither old nor new state\n", i, cuts);
            state = *got;  // go on from what is there
            continue;
        }
        state = *got;
    }
    std::printf("chaos store=%s part=%s sectors=%s seed=%llu ops=%zu cuts=%zu failures=%zu\n", Rig::store_name, Rig::name,
                Rig::sectors().c_str(), static_cast<unsigned long long>(seed), ops, cuts, failures);
    std::fflush(stdout);
    return failures;
}

constexpr std::size_t workload_ops = 1000;

}  // namespace

TEST_CASE("Power loss at every flash operation: STM32F4 sectors 1-3", "[powerloss][flash]") {
    const Counts c = sweep<FlashRig<parts::Stm32f4Flash, 1, 3>>(workload_ops, 1);
    CHECK(c.ops >= 1000);
    CHECK(c.cut_points > c.ops);
    CHECK(c.failures == 0);
}

TEST_CASE("Power loss at every flash operation: STM32F4 sectors 3-4 (16 and 64 KiB)", "[powerloss][flash]") {
    const Counts c = sweep<FlashRig<parts::Stm32f4Flash, 3, 2>>(workload_ops, 6);
    CHECK(c.ops >= 1000);
    CHECK(c.failures == 0);
}

TEST_CASE("Power loss at every flash operation: nRF52840 pages 248-255", "[powerloss][flash]") {
    const Counts c = sweep<FlashRig<parts::Nrf52840Flash, 248, 8>>(workload_ops, 2);
    CHECK(c.ops >= 1000);
    CHECK(c.failures == 0);
}

TEST_CASE("Power loss at every flash operation: SPI NOR sectors 0-7", "[powerloss][flash]") {
    const Counts c = sweep<FlashRig<parts::SpiNorFlash, 0, 8>>(workload_ops, 3);
    CHECK(c.ops >= 1000);
    CHECK(c.failures == 0);
}

TEST_CASE("Power loss at every EEPROM write: 24LC256", "[powerloss][eeprom]") {
    const Counts c = sweep<EepromRig>(workload_ops, 4);
    CHECK(c.ops >= 1000);
    CHECK(c.failures == 0);
}

TEST_CASE("Power loss at every flash operation under SealedNvm: SPI NOR sectors 0-7", "[powerloss][sealed]") {
    const Counts c = sweep<SealedRig<FlashRig<parts::SpiNorFlash, 0, 8>>>(workload_ops, 5);
    CHECK(c.ops >= 1000);
    CHECK(c.failures == 0);
}

TEST_CASE("Power loss, many times over: random cuts in operations and in repairs, on every store", "[powerloss][chaos]") {
    CHECK(chaos<FlashRig<parts::Stm32f4Flash, 1, 3>>(20000, 11) == 0);
    CHECK(chaos<FlashRig<parts::Stm32f4Flash, 3, 2>>(20000, 12) == 0);
    CHECK(chaos<FlashRig<parts::Nrf52840Flash, 248, 8>>(20000, 13) == 0);
    CHECK(chaos<FlashRig<parts::SpiNorFlash, 0, 4>>(20000, 14) == 0);
    CHECK(chaos<EepromRig>(20000, 15) == 0);
    CHECK(chaos<SealedRig<FlashRig<parts::SpiNorFlash, 0, 8>>>(20000, 16) == 0);
}
