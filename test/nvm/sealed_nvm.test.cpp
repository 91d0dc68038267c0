// SPDX-License-Identifier: MIT
// SealedNvm: records at rest are encrypted and authenticated; the key sources; a raw dump of a
// token's flash holds no byte run of its private keys, and a changed record is refused.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>

#include <p11tls/nvm/keys.hpp>

#include "support/nvm_contents.hpp"
#include "support/nvm_models.hpp"
#include "support/token_fixture.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

using Raw = RecordBytes;

/// Whether any `window`-byte run of `needle` occurs in `hay`.
template <class Hay, class Needle>
bool contains_window(const Hay& hay, const Needle& needle, std::size_t window = 8) {
    auto h = std::as_bytes(std::span(hay));
    auto n = std::as_bytes(std::span(needle));
    for (std::size_t i = 0; i + window <= n.size(); ++i)
        if (std::search(h.begin(), h.end(), n.begin() + static_cast<std::ptrdiff_t>(i),
                        n.begin() + static_cast<std::ptrdiff_t>(i + window)) != h.end())
            return true;
    return false;
}

struct FailingEntropy {
    bool fail_now = false;
    [[nodiscard]] Result<void> fill(std::span<std::byte> out) {
        if (fail_now) return fail(Errc::entropy_failed);
        std::fill(out.begin(), out.end(), std::byte{0x42});
        return {};
    }
};

using Sealed = SealedNvm<At24lc256Nvm, FixedKey, GetrandomEntropy>;

Sealed open_sealed(SimEepromChip<parts::At24lc256>& chip, FixedKey key = {}) {
    auto inner = At24lc256Nvm::mount(SimEeprom<parts::At24lc256>(chip));
    REQUIRE(code(inner) == no_error);
    auto s = Sealed::open(std::move(*inner), key, GetrandomEntropy{});
    REQUIRE(code(s) == no_error);
    return std::move(*s);
}

Raw inner_record(Sealed& s, RecordId id) {
    Raw r(At24lc256Nvm::max_record_size);
    auto n = s.inner().load(id, r);
    REQUIRE(code(n) == no_error);
    r.resize(*n);
    return r;
}

}  // namespace

TEST_CASE("SealedNvm: the device holds no run of the plaintext", "[nvm][sealed]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    auto s = open_sealed(*chip);
    const Raw secret = pattern(1000, 3);
    REQUIRE(code(s.store(1, secret)) == no_error);
    REQUIRE(code(s.size(1)) == no_error);
    CHECK(*s.size(1) == 1000);
    CHECK(inner_record(s, 1).size() == 1000 + Sealed::overhead);
    CHECK_FALSE(contains_window(chip->bytes(), secret));
    Raw out(1000);
    REQUIRE(code(s.load(1, out)) == no_error);
    CHECK(out == secret);
}

TEST_CASE("SealedNvm: every store has a fresh IV", "[nvm][sealed]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    auto s = open_sealed(*chip);
    const Raw v = pattern(64, 1);
    REQUIRE(code(s.store(1, v)) == no_error);
    const Raw first = inner_record(s, 1);
    REQUIRE(code(s.store(1, v)) == no_error);
    const Raw second = inner_record(s, 1);
    CHECK(first != second);
    CHECK(!std::equal(first.begin() + 4, first.begin() + 16, second.begin() + 4));
}

TEST_CASE("SealedNvm: a change to any byte of a sealed record makes it corrupt, never other data", "[nvm][sealed]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    auto s = open_sealed(*chip);
    const Raw v = pattern(40, 7);
    REQUIRE(code(s.store(9, v)) == no_error);
    const Raw rec = inner_record(s, 9);
    for (std::size_t i = 0; i < rec.size(); ++i) {
        Raw bad = rec;
        bad[i] ^= std::byte{0x01};
        REQUIRE(code(s.inner().store(9, bad)) == no_error);  // a fresh CRC: only the tag can tell
        Raw out(64, std::byte{0xEE});
        CHECK(code(s.load(9, out)) == Errc::nvm_corrupt);
        CHECK(!contains_window(out, v, 4));
    }
    Raw shorter(rec.begin(), rec.end() - 1);
    REQUIRE(code(s.inner().store(9, shorter)) == no_error);
    Raw out(64);
    CHECK(code(s.load(9, out)) == Errc::nvm_corrupt);
    REQUIRE(code(s.inner().store(9, Raw(10))) == no_error);
    CHECK(code(s.load(9, out)) == Errc::nvm_corrupt);
    CHECK(code(s.size(9)) == Errc::nvm_corrupt);
}

TEST_CASE("SealedNvm: a record copied to another id, or read with another key, is corrupt", "[nvm][sealed]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    Raw out(100);
    {
        auto s = open_sealed(*chip);
        REQUIRE(code(s.store(1, pattern(50, 1))) == no_error);
        REQUIRE(code(s.inner().store(2, inner_record(s, 1))) == no_error);
        CHECK(code(s.load(2, out)) == Errc::nvm_corrupt);
        CHECK(code(s.load(1, out)) == no_error);
    }
    auto other = open_sealed(*chip, FixedKey{std::byte{0x11}});
    CHECK(code(other.load(1, out)) == Errc::nvm_corrupt);
}

TEST_CASE("SealedNvm: a failing entropy source fails the store and changes nothing", "[nvm][sealed]") {
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    auto inner = At24lc256Nvm::mount(SimEeprom<parts::At24lc256>(*chip));
    REQUIRE(code(inner) == no_error);
    auto s = SealedNvm<At24lc256Nvm, FixedKey, FailingEntropy>::open(std::move(*inner), FixedKey{}, FailingEntropy{});
    REQUIRE(code(s) == no_error);
    REQUIRE(code(s->store(1, pattern(20, 1))) == no_error);
    const Raw before(chip->bytes().begin(), chip->bytes().end());
    // The entropy object lives in the store; reach it through a second store sharing the chip.
    auto inner2 = At24lc256Nvm::mount(SimEeprom<parts::At24lc256>(*chip));
    REQUIRE(code(inner2) == no_error);
    auto broken = SealedNvm<At24lc256Nvm, FixedKey, FailingEntropy>::open(std::move(*inner2), FixedKey{}, FailingEntropy{true});
    REQUIRE(code(broken) == no_error);
    CHECK(code(broken->store(1, pattern(20, 2))) == Errc::entropy_failed);
    CHECK(code(broken->store(2, pattern(20, 2))) == Errc::entropy_failed);
    CHECK(Raw(chip->bytes().begin(), chip->bytes().end()) == before);
    Raw out(20);
    REQUIRE(code(broken->load(1, out)) == no_error);
    CHECK(out == pattern(20, 1));
}

// --- key sources --------------------------------------------------------------------------------

TEST_CASE("KeyFile: created once with mode 0600 and 32 random bytes, then read back", "[nvm][sealed][keys]") {
    TempDir dir;
    const std::string path = dir.path() + "/kwk";
    KeyFile kf(path);
    std::array<std::byte, 32> a{}, b{};
    REQUIRE(code(kf.key(a)) == no_error);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(st.st_size == 32);
    REQUIRE(code(KeyFile(path).key(b)) == no_error);
    CHECK(a == b);
    CHECK(a != std::array<std::byte, 32>{});
    // No temporary files left behind.
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator{}) == 1);
    // Another file, another key.
    std::array<std::byte, 32> c{};
    REQUIRE(code(KeyFile(dir.path() + "/other").key(c)) == no_error);
    CHECK(a != c);
}

TEST_CASE("KeyFile: a key file others may read, of the wrong size, or a symlink is refused", "[nvm][sealed][keys]") {
    TempDir dir;
    const std::string path = dir.path() + "/kwk";
    std::array<std::byte, 32> k{};
    REQUIRE(code(KeyFile(path).key(k)) == no_error);
    SECTION("readable by the group") {
        REQUIRE(::chmod(path.c_str(), 0640) == 0);
        CHECK(code(KeyFile(path).key(k)) == Errc::invalid_argument);
    }
    SECTION("truncated") {
        std::filesystem::resize_file(path, 31);
        CHECK(code(KeyFile(path).key(k)) == Errc::bad_encoding);
    }
    SECTION("a symlink to it") {
        const std::string link = dir.path() + "/link";
        REQUIRE(::symlink(path.c_str(), link.c_str()) == 0);
        CHECK(code(KeyFile(link).key(k)) == Errc::nvm_io);
    }
}

TEST_CASE("PinKey: PBKDF2-HMAC-SHA256 of the PIN and salt", "[nvm][sealed][keys]") {
    const Raw salt = pattern(16, 5);
    const std::string pin = "1234-secret";
    PinKey<1000> k(std::span(pin.data(), pin.size()), salt);
    std::array<std::byte, 32> got{}, want{};
    REQUIRE(code(k.key(got)) == no_error);
    mbedtls_md_context_t md;
    mbedtls_md_init(&md);
    REQUIRE(mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) == 0);
    REQUIRE(mbedtls_pkcs5_pbkdf2_hmac(&md, reinterpret_cast<const unsigned char*>(pin.data()), pin.size(),
                                      reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), 1000, 32,
                                      reinterpret_cast<unsigned char*>(want.data())) == 0);
    mbedtls_md_free(&md);
    CHECK(got == want);
    std::array<std::byte, 32> other{};
    REQUIRE(code(PinKey<1000>(std::span(pin.data(), pin.size()), pattern(16, 6)).key(other)) == no_error);
    CHECK(other != got);
}

namespace {
struct FakeHal {
    static inline std::string last_context;
    static inline bool fail_next = false;
    static Result<void> derive_hardware_key(std::span<const std::byte> context, std::span<std::byte, 32> out) {
        if (fail_next) return fail(Errc::device_error);
        last_context.assign(reinterpret_cast<const char*>(context.data()), context.size());
        std::fill(out.begin(), out.end(), std::byte{0x77});
        return {};
    }
};
}  // namespace

TEST_CASE("HardwareKey: derives through the board's HAL with a fixed context; a failure fails open",
          "[nvm][sealed][keys]") {
    std::array<std::byte, 32> k{};
    REQUIRE(code(HardwareKey<FakeHal>{}.key(k)) == no_error);
    CHECK(FakeHal::last_context == "p11tls sealed nvm v1");
    FakeHal::fail_next = true;
    auto chip = std::make_unique<SimEepromChip<parts::At24lc256>>();
    auto inner = At24lc256Nvm::mount(SimEeprom<parts::At24lc256>(*chip));
    REQUIRE(code(inner) == no_error);
    auto s = SealedNvm<At24lc256Nvm, HardwareKey<FakeHal>, GetrandomEntropy>::open(std::move(*inner), {}, {});
    CHECK(code(s) == Errc::device_error);
    FakeHal::fail_next = false;
}

// --- the token's keys at rest -------------------------------------------------------------------

namespace {

using F4 = parts::Stm32f4Flash;
using PlainF4 = FlashNvm<SimFlash<F4>, 1, 3>;
using SealedF4 = SealedNvm<PlainF4, FixedKey, GetrandomEntropy>;

// A known P-256 private scalar (any value in [1, n-1]).
const Bytes known_d = {0x3c, 0x91, 0x5a, 0x07, 0xe2, 0x48, 0x1f, 0xb6, 0x6d, 0x20, 0xc4, 0x83, 0x95, 0x7e, 0x0a, 0x51,
                       0xd8, 0x2f, 0x64, 0xbb, 0x13, 0xa9, 0x70, 0x4e, 0xc6, 0x39, 0x8d, 0xf2, 0x05, 0x5b, 0xe7, 0x1a};

template <class N>
struct TokenOnChip {
    using token_type = SoftToken<N, GetrandomEntropy, TestConfig>;
    std::unique_ptr<SimFlashChip<F4>> chip = std::make_unique<SimFlashChip<F4>>();
    std::unique_ptr<token_type> token;

    TokenOnChip() { reload(); }
    void reload() {
        token.reset();
        auto plain = PlainF4::mount(SimFlash<F4>(*chip));
        REQUIRE(code(plain) == no_error);
        if constexpr (std::is_same_v<N, PlainF4>) {
            token = std::make_unique<token_type>(std::move(*plain), GetrandomEntropy{});
        } else {
            auto sealed = SealedF4::open(std::move(*plain), FixedKey{}, GetrandomEntropy{});
            REQUIRE(code(sealed) == no_error);
            token = std::make_unique<token_type>(std::move(*sealed), GetrandomEntropy{});
        }
        REQUIRE(code(token->load()) == no_error);
    }

    // Imports the known EC key and the test RSA key; returns the RSA secret parts.
    std::vector<Bytes> import_keys() {
        init_token(*token);
        CK_ULONG s = login_user(*token);
        Template ec;
        ec.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true).add(CKA_LABEL, "device key")
            .add(CKA_SIGN, true).add(CKA_EC_PARAMS, p256_params()).add(CKA_VALUE, known_d);
        REQUIRE(code(token->create_object(s, ec)) == no_error);
        const RsaComponents& k = test_rsa_key();
        Template rsa;
        rsa.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_RSA).add(CKA_TOKEN, true).add(CKA_LABEL, "rsa key")
            .add(CKA_SIGN, true).add(CKA_MODULUS, k.n).add(CKA_PUBLIC_EXPONENT, k.e).add(CKA_PRIVATE_EXPONENT, k.d)
            .add(CKA_PRIME_1, k.p).add(CKA_PRIME_2, k.q).add(CKA_EXPONENT_1, k.dp).add(CKA_EXPONENT_2, k.dq)
            .add(CKA_COEFFICIENT, k.qinv);
        REQUIRE(code(token->create_object(s, rsa)) == no_error);
        REQUIRE(code(token->close_session(s)) == no_error);
        return {known_d, k.d, k.p, k.q, k.dp, k.dq, k.qinv};
    }

    std::span<const std::byte> image() const { return chip->bytes(); }
};

}  // namespace

TEST_CASE("SealedNvm: a dump of the token's flash holds no 8-byte run of its private keys", "[nvm][sealed][token]") {
    SECTION("control: without sealing, the dump holds them (the search works)") {
        TokenOnChip<PlainF4> t;
        const auto secrets = t.import_keys();
        CHECK(contains_window(t.image(), secrets[0]));
        for (const Bytes& secret : secrets) CHECK(contains_window(t.image(), secret));
    }
    SECTION("sealed") {
        TokenOnChip<SealedF4> t;
        const auto secrets = t.import_keys();
        for (const Bytes& secret : secrets) CHECK_FALSE(contains_window(t.image(), secret));
        // The keys are still there for the token after a reset.
        t.reload();
        CK_ULONG s = login_user(*t.token);
        const CK_ULONG key = find_by_label(*t.token, s, "device key");
        const Bytes digest(32, 0xAB);
        CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
        CHECK(sign(*t.token, s, mech, key, digest).size() == 64);
    }
}

TEST_CASE("SealedNvm: a flipped bit in a sealed key record makes the key unusable with a clear error",
          "[nvm][sealed][token]") {
    TokenOnChip<SealedF4> t;
    init_token(*t.token);
    const auto before = record_ids(t.token->nvm());
    {
        CK_ULONG s = login_user(*t.token);
        Template ec;
        ec.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true).add(CKA_LABEL, "device key")
            .add(CKA_SIGN, true).add(CKA_EC_PARAMS, p256_params()).add(CKA_VALUE, known_d);
        REQUIRE(code(t.token->create_object(s, ec)) == no_error);
        Template data;
        data.add(CKA_CLASS, CKO_DATA).add(CKA_TOKEN, true).add(CKA_LABEL, "kept").add(CKA_VALUE, Bytes{1, 2, 3});
        REQUIRE(code(t.token->create_object(s, data)) == no_error);
    }
    auto after = record_ids(t.token->nvm());
    REQUIRE(after.size() == before.size() + 2);
    std::vector<RecordId> added;
    std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(added));
    const RecordId key_record = added[0];

    SECTION("a bit flipped in the flash: the record's checks fail") {
        // Find the key record's ciphertext in the image and flip one bit of it.
        Raw sealed(PlainF4::max_record_size);
        auto n = t.token->nvm().inner().load(key_record, sealed);
        REQUIRE(code(n) == no_error);
        sealed.resize(*n);
        auto img = t.chip->bytes();
        auto at = std::search(img.begin(), img.end(), sealed.begin() + 16, sealed.begin() + 48);
        REQUIRE(at != img.end());
        *(at + 5) ^= std::byte{0x10};
    }
    SECTION("a record rewritten with a valid checksum: the GCM tag fails") {
        Raw sealed(PlainF4::max_record_size);
        auto n = t.token->nvm().inner().load(key_record, sealed);
        REQUIRE(code(n) == no_error);
        sealed.resize(*n);
        sealed[20] ^= std::byte{0x10};
        REQUIRE(code(t.token->nvm().inner().store(key_record, sealed)) == no_error);
    }
    t.reload();
    CHECK(t.token->corrupt_records() == 1);
    Raw out(SealedF4::max_record_size);
    const auto err = t.token->nvm().load(key_record, out);
    REQUIRE(code(err) == Errc::nvm_corrupt);
    CHECK(std::string(describe(err.error().code)) == "stored record is corrupt (checksum or format)");
    CK_ULONG s = login_user(*t.token);
    CHECK(find_all(*t.token, s, Template{}.add(CKA_LABEL, "device key")).empty());
    CHECK(find_all(*t.token, s, Template{}.add(CKA_LABEL, "kept")).size() == 1);
    // The damaged record stays (never overwritten), so a new key goes elsewhere.
    CHECK(record_ids(t.token->nvm()) == after);
}
