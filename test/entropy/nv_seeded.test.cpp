// SPDX-License-Identifier: MIT
// NvSeeded: boards with identical TRNGs differ by their unique ids; a board whose TRNG replays
// after every reset never repeats a DRBG block; a power cut during the seed update never leads
// to a replayed stream; a failing source or a corrupt record fails closed.
#include <algorithm>
#include <optional>
#include <set>

#include <catch2/catch.hpp>

#include <p11tls/token/soft_token.hpp>

#include "entropy/sim_board.hpp"
#include "support/token_fixture.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;

constexpr std::size_t output_bytes = 1024;  // 64 blocks per boot

std::array<std::byte, BoardEntropy::record_size> seed_record(const SimNvm& nvm) {
    std::array<std::byte, BoardEntropy::record_size> r{};
    auto n = nvm.load(BoardEntropy::record_id, r);
    REQUIRE(code(n) == no_error);
    REQUIRE(*n == r.size());
    return r;
}

}  // namespace

TEST_CASE("two boards with identical TRNG sequences and different unique ids share no output block", "[entropy][nvseed]") {
    SimBoard a("board-0001", 77), b("board-0002", 77);
    auto ea = a.entropy();
    auto eb = b.entropy();
    auto out_a = drbg_output(ea, output_bytes);
    auto out_b = drbg_output(eb, output_bytes);
    REQUIRE(out_a.size() == output_bytes);
    REQUIRE(out_b.size() == output_bytes);
    std::set<Block> seen;
    for (const Block& x : blocks(out_a)) seen.insert(x);
    for (const Block& x : blocks(out_b)) CHECK(seen.count(x) == 0);

    SECTION("the unique id is what tells them apart: a clone of board a repeats it") {
        SimBoard clone("board-0001", 77);
        auto ec = clone.entropy();
        CHECK(drbg_output(ec, output_bytes) == out_a);
    }
}

TEST_CASE("one board reset 100 times with a replaying TRNG never repeats a DRBG output block", "[entropy][nvseed]") {
    SimBoard board("board-0100", 5);
    std::set<Block> seen;
    for (std::uint64_t boot = 1; boot <= 100; ++boot) {
        auto e = board.entropy();
        auto out = drbg_output(e, output_bytes);
        REQUIRE(out.size() == output_bytes);
        CHECK(e.boot_count() == boot);
        for (const Block& x : blocks(out)) seen.insert(x);
    }
    CHECK(seen.size() == 100 * output_bytes / 16);

    SECTION("without the seed record the same board repeats itself after a reset") {
        // The control: only the board's source feeds the DRBG, so the replaying TRNG alone
        // gives the same stream every boot. (Were the OS's /dev/urandom mixed in, this would
        // differ and the test above would prove nothing.)
        BoardTrng first(SimTrng<>{board.trng_sequence}), second(SimTrng<>{board.trng_sequence});
        CHECK(drbg_output(first, output_bytes) == drbg_output(second, output_bytes));
    }
}

TEST_CASE("the seed record is replaced before the first byte of a boot is handed out", "[entropy][nvseed]") {
    SimBoard board("board-0200", 6);
    auto e1 = board.entropy();
    REQUIRE(code(e1.boot()) == no_error);
    const auto after_first = seed_record(board.nvm);
    CHECK(board.nvm.writes() == 1);

    auto e2 = board.entropy();
    std::array<std::byte, 32> out;
    REQUIRE(code(e2.fill(out)) == no_error);  // fill boots: the store comes first
    CHECK(board.nvm.writes() == 2);
    CHECK(seed_record(board.nvm) != after_first);
    CHECK(e2.boot_count() == 2);
    // Later fills do not touch the Nvm.
    for (int i = 0; i < 10; ++i) REQUIRE(code(e2.fill(out)) == no_error);
    CHECK(board.nvm.writes() == 2);
}

TEST_CASE("a power cut during the seed update never leads to a replayed stream after the next boot", "[entropy][nvseed]") {
    // For each boot k of a run of boots, the seed store of boot k fails (RamNvm::fail_after(0):
    // the atomic store leaves the old record) and the board loses power; then it boots again.
    // Also a boot that commits the seed but dies before handing anything out. Every block of
    // every boot that handed out bytes is new.
    const int cut_at = GENERATE(range(0, 8));
    const bool die_after_commit = GENERATE(false, true);
    SimBoard board("board-0300", 9);
    std::set<Block> seen;
    std::size_t handed_out = 0;
    for (int boot = 0; boot < 10; ++boot) {
        if (boot == cut_at) {
            std::optional<std::array<std::byte, BoardEntropy::record_size>> old;
            if (code(board.nvm.size(BoardEntropy::record_id)) == no_error) old = seed_record(board.nvm);
            board.nvm.fail_after(0);
            auto e = board.entropy();
            Errc failed = no_error;
            CHECK(drbg_output(e, output_bytes, &failed).empty());
            CHECK(failed == Errc::entropy_failed);
            board.nvm.clear_failure();
            // The record is what it was: the cut store changed nothing.
            if (old) CHECK(seed_record(board.nvm) == *old);
            else CHECK(code(board.nvm.size(BoardEntropy::record_id)) == Errc::nvm_not_found);
            continue;
        }
        auto e = board.entropy();
        if (die_after_commit && boot == cut_at + 1) {
            REQUIRE(code(e.boot()) == no_error);  // committed, then the power goes
            continue;
        }
        auto out = drbg_output(e, output_bytes);
        REQUIRE(out.size() == output_bytes);
        for (const Block& x : blocks(out)) seen.insert(x);
        handed_out += out.size() / 16;
    }
    CHECK(seen.size() == handed_out);
}

TEST_CASE("a failing source stops NvSeeded at boot without rewriting the seed, and later fills", "[entropy][nvseed]") {
    SimBoard board("board-0400", 10);
    {
        auto e = board.entropy();
        REQUIRE(code(e.boot()) == no_error);
    }
    const auto record = seed_record(board.nvm);
    const auto writes = board.nvm.writes();

    SECTION("stuck at boot: no seed update, no output") {
        auto e = board.entropy();
        e.source().source().stick_at(0x33);
        std::array<std::byte, 64> out;
        out.fill(std::byte{0xEE});
        REQUIRE(code(e.fill(out)) == Errc::entropy_failed);
        CHECK(std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0}; }));
        CHECK(board.nvm.writes() == writes);
        CHECK(seed_record(board.nvm) == record);
    }
    SECTION("stuck after boot: the seed never stands in for the source") {
        auto e = board.entropy();
        std::array<std::byte, 64> out;
        REQUIRE(code(e.fill(out)) == no_error);
        e.source().source().stick_at(0x33);
        REQUIRE(code(e.fill(out)) == Errc::entropy_failed);
        CHECK(std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0}; }));
        REQUIRE(code(e.fill(out)) == Errc::entropy_failed);  // latched in HealthTested
        e.source().source().heal();
        REQUIRE(code(e.reset()) == no_error);  // the board re-initializes the TRNG
        REQUIRE(code(e.fill(out)) == no_error);
    }
}

TEST_CASE("a corrupt seed record fails closed until the board provisions a new seed", "[entropy][nvseed]") {
    SimBoard board("board-0500", 11);
    const std::byte junk[7] = {};
    REQUIRE(code(board.nvm.store(BoardEntropy::record_id, junk)) == no_error);
    auto e = board.entropy();
    std::array<std::byte, 32> out;
    auto r = e.fill(out);
    REQUIRE(code(r) == Errc::entropy_failed);
    CHECK(r.error().native == static_cast<int>(Errc::nvm_corrupt));

    const std::byte factory_seed[32] = {std::byte{1}, std::byte{2}, std::byte{3}};
    REQUIRE(code(e.provision(factory_seed)) == no_error);
    REQUIRE(code(e.fill(out)) == no_error);
    CHECK(e.boot_count() == 1);
}

namespace {

using SeededToken = SoftToken<RamNvm<>, NvSeeded<BoardTrng, RamNvm<>>, TestConfig>;

std::unique_ptr<SeededToken> boot_token(const RamNvm<>& persisted, std::uint64_t trng_sequence) {
    static constexpr std::byte uid[] = {std::byte{0xB0}, std::byte{0xA7}, std::byte{0x01}};
    auto nvm = std::make_unique<RamNvm<>>(persisted);
    return std::make_unique<SeededToken>(std::move(*nvm),
                                         NvSeeded<BoardTrng, RamNvm<>>(BoardTrng(SimTrng<>{trng_sequence}), uid));
}

}  // namespace

TEST_CASE("a token on NvSeeded keeps its seed in the token's Nvm: C_GenerateRandom never repeats across resets", "[entropy][nvseed][token]") {
    auto store = std::make_unique<RamNvm<>>();
    std::set<Block> seen;
    constexpr int boots = 20;
    for (int boot = 0; boot < boots; ++boot) {
        auto token = boot_token(*store, 99);
        REQUIRE(code(token->load()) == no_error);
        if (boot == 0) init_token(*token);  // init_token leaves the board's record alone
        CK_ULONG s = open_session(*token);
        Bytes out(256);
        REQUIRE(code(token->generate_random(s, as_out(out))) == no_error);
        for (const Block& x : blocks(std::as_bytes(std::span(out)))) seen.insert(x);
        REQUIRE(code(token->close_session(s)) == no_error);
        *store = token->nvm();
    }
    CHECK(seen.size() == boots * 256 / 16);
    auto ids = record_ids(*store);
    CHECK(std::count(ids.begin(), ids.end(), RecordId{0x80000001}) == 1);
}

TEST_CASE("a token whose seed update is cut by a power failure does not load, then boots fresh", "[entropy][nvseed][token]") {
    auto store = std::make_unique<RamNvm<>>();
    std::set<Block> seen;
    auto take = [&](SeededToken& t) {
        CK_ULONG s = open_session(t);
        Bytes out(256);
        REQUIRE(code(t.generate_random(s, as_out(out))) == no_error);
        for (const Block& x : blocks(std::as_bytes(std::span(out)))) CHECK(seen.insert(x).second);
        REQUIRE(code(t.close_session(s)) == no_error);
    };
    {
        auto t = boot_token(*store, 3);
        REQUIRE(code(t->load()) == no_error);
        take(*t);
        *store = t->nvm();
    }
    {
        auto t = boot_token(*store, 3);
        t->nvm().fail_after(0);  // the first store of this boot is the seed update: cut
        REQUIRE(code(t->load()) == Errc::entropy_failed);
        CK_ULONG s = open_session(*t);
        Bytes out(64, 0xEE);
        REQUIRE(code(t->generate_random(s, as_out(out))) == Errc::entropy_failed);
        CHECK(out == Bytes(64, 0xEE));
    }
    for (int i = 0; i < 3; ++i) {
        auto t = boot_token(*store, 3);
        REQUIRE(code(t->load()) == no_error);
        take(*t);
        *store = t->nvm();
    }
}
