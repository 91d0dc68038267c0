// SPDX-License-Identifier: MIT
// Sensitive-data hygiene: no private key byte is left in freed memory, and none reaches the
// program's output. Every block freed while a watch is on is kept and, at the end, searched
// for the private keys' secret components (EC d; RSA d, p, q, dp, dq, qinv) in big-endian and
// in mbedtls_mpi limb order (freed_memory.hpp). The watch covers import (C_CreateObject),
// generation inside the token (C_GenerateKeyPair: the value is learnt from the token's own
// stored record, the keys stay sensitive), every sign mechanism, attribute reads and changes,
// reloading the token from its store, destruction, and TLS handshakes signed by the token.
// The first test case shows the scanner finds what it is meant to find.
//
// The test keeps its own copies of the keys in static storage (never the heap) and wipes them.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>

#include <p11tls/cryptoki/module.hpp>
#include <p11tls/tls/session.hpp>

#include "freed_memory.hpp"
#include "support/tls_peer.hpp"

using namespace p11tls;
using namespace p11tls::test;
namespace hygiene = p11tls::test::hygiene;

namespace {

/// Secret values the test knows, in static storage.
class SecretStore {
public:
    std::span<unsigned char> add(std::string_view name, std::size_t len) {
        REQUIRE(count_ < slots_.size());
        REQUIRE(len <= sizeof(Slot::bytes));
        Slot& s = slots_[count_++];
        std::memset(s.name, 0, sizeof s.name);
        std::memcpy(s.name, name.data(), std::min(name.size(), sizeof s.name - 1));
        s.len = len;
        return {s.bytes, len};
    }
    [[nodiscard]] std::vector<hygiene::Secret> list() const {
        std::vector<hygiene::Secret> v;
        for (std::size_t i = 0; i < count_; ++i) v.push_back({slots_[i].name, {slots_[i].bytes, slots_[i].len}});
        return v;
    }
    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    void wipe() noexcept {
        mbedtls_platform_zeroize(slots_.data(), sizeof slots_);
        count_ = 0;
    }

private:
    struct Slot {
        char name[48];
        unsigned char bytes[512];
        std::size_t len;
    };
    std::array<Slot, 32> slots_{};
    std::size_t count_ = 0;
};

SecretStore secrets;

// Bytes of stack below the test's frame searched after each round of token calls.
constexpr std::size_t stack_depth = 64 * 1024;

/// What the dead-stack scans found, by round.
struct StackFindings {
    int scans = 0;
    std::size_t hits = 0;
    std::string found;
    void note(const hygiene::StackScan& r, const std::vector<hygiene::Secret>& known, std::string what) {
        ++scans;
        hits += r.hits;
        if (r.hits && found.size() < 2000)
            found += "\n  after " + what + ": " + std::to_string(r.hits) + " windows, first " +
                     known[r.first_secret].name + (r.little_endian ? " (mpi limbs)" : " (big-endian)") + " " +
                     std::to_string(r.first_depth) + " bytes below";
    }
    [[nodiscard]] std::string text() const { return std::to_string(hits) + " hits" + found; }
};

std::string describe(const hygiene::Scan& scan) {
    std::string s = std::to_string(scan.blocks) + " freed blocks (" + std::to_string(scan.bytes) + " bytes) searched for " +
                    std::to_string(scan.windows) + " key windows: " + std::to_string(scan.hits.size()) + " hits";
    for (std::size_t i = 0; i < scan.hits.size() && i < 10; ++i)
        s += "\n  " + scan.hits[i].secret + (scan.hits[i].little_endian ? " (mpi limbs)" : " (big-endian)") +
             " in a freed block of " + std::to_string(scan.hits[i].block_size) + " bytes at offset " +
             std::to_string(scan.hits[i].offset);
    return s;
}

/// Everything written to stdout and stderr (fds 1 and 2) while it lives.
class OutputCapture {
public:
    explicit OutputCapture(const std::string& dir) : path_(dir + "/output") {
        std::cout.flush();
        std::fflush(nullptr);
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd_ >= 0);
        saved_out_ = ::dup(1);
        saved_err_ = ::dup(2);
        REQUIRE(::dup2(fd_, 1) == 1);
        REQUIRE(::dup2(fd_, 2) == 2);
    }
    ~OutputCapture() { restore(); }
    OutputCapture(const OutputCapture&) = delete;
    OutputCapture& operator=(const OutputCapture&) = delete;

    /// Restores the streams and returns what was written (also echoed, so nothing is lost).
    std::string finish() {
        restore();
        std::string text;
        char buf[4096];
        ::lseek(fd_, 0, SEEK_SET);
        for (ssize_t n; (n = ::read(fd_, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
        std::cout << text;
        return text;
    }

private:
    void restore() {
        if (saved_out_ < 0) return;
        std::cout.flush();
        std::fflush(nullptr);
        ::dup2(saved_out_, 1);
        ::dup2(saved_err_, 2);
        ::close(saved_out_);
        ::close(saved_err_);
        saved_out_ = saved_err_ = -1;
    }
    std::string path_;
    int fd_ = -1, saved_out_ = -1, saved_err_ = -1;
};

// --- keys made outside the token, straight into the secret store -----------------------------

struct EcKey {
    mbedtls_ecp_group_id curve;
    std::span<unsigned char> d;
    Bytes point_der;  // public
};

EcKey make_ec_key(TestRng& rng, mbedtls_ecp_group_id curve, std::string_view name) {
    mbedtls_ecp_keypair kp;
    mbedtls_ecp_keypair_init(&kp);
    REQUIRE(mbedtls_ecp_gen_key(curve, &kp, &TestRng::f, rng.p()) == 0);
    const std::size_t cb = mbedtls_mpi_size(&kp.grp.P);
    EcKey k{curve, secrets.add(name, cb), {}};
    REQUIRE(mbedtls_mpi_write_binary(&kp.d, k.d.data(), cb) == 0);
    unsigned char pt[1 + 2 * 48];
    std::size_t n = 0;
    REQUIRE(mbedtls_ecp_point_write_binary(&kp.grp, &kp.Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &n, pt, sizeof pt) == 0);
    k.point_der = {0x04, static_cast<unsigned char>(n)};
    k.point_der.insert(k.point_der.end(), pt, pt + n);
    mbedtls_ecp_keypair_free(&kp);
    return k;
}

struct RsaKeyParts {
    Bytes n, e;  // public
    std::span<unsigned char> d, p, q, dp, dq, qinv;
};

RsaKeyParts make_rsa_key(TestRng& rng, std::string_view name) {
    mbedtls_rsa_context rsa;
    mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, 0);
    REQUIRE(mbedtls_rsa_gen_key(&rsa, &TestRng::f, rng.p(), 2048, 65537) == 0);
    mbedtls_mpi parts[8];
    for (auto& x : parts) mbedtls_mpi_init(&x);
    REQUIRE(mbedtls_rsa_export(&rsa, &parts[0], &parts[3], &parts[4], &parts[2], &parts[1]) == 0);
    REQUIRE(mbedtls_rsa_export_crt(&rsa, &parts[5], &parts[6], &parts[7]) == 0);
    RsaKeyParts k;
    k.n = mpi_bytes(parts[0]);
    k.e = mpi_bytes(parts[1]);
    std::span<unsigned char>* secret_parts[] = {&k.d, &k.p, &k.q, &k.dp, &k.dq, &k.qinv};
    static constexpr const char* suffix[] = {" d", " p", " q", " dp", " dq", " qinv"};
    for (int i = 0; i < 6; ++i) {
        const mbedtls_mpi& x = parts[i + 2];
        *secret_parts[i] = secrets.add(std::string(name) + suffix[i], mbedtls_mpi_size(&x));
        REQUIRE(mbedtls_mpi_write_binary(&x, secret_parts[i]->data(), secret_parts[i]->size()) == 0);
    }
    for (auto& x : parts) mbedtls_mpi_free(&x);
    mbedtls_rsa_free(&rsa);
    return k;
}

/// The secret components of the private key labelled `label`, read from the token's own
/// stored record (the key itself is sensitive: the C ABI never returns them).
template <class N>
void learn_from_store(N& nvm, std::string_view label, std::string_view name) {
    std::array<RecordId, 256> ids;
    auto n = nvm.list(ids);
    REQUIRE(n);
    static std::array<std::byte, 16384> record;  // static: never the heap
    bool found = false;
    for (std::size_t i = 0; i < *n && !found; ++i) {
        auto len = nvm.load(ids[i], record);
        if (!len || *len < 4 || record[0] != std::byte{'O'}) continue;
        token::AttrList l(std::span<const std::byte>(record).subspan(4, *len - 4));
        auto lab = l.find(CKA_LABEL);
        if (l.ulong(CKA_CLASS) != CKO_PRIVATE_KEY || !lab ||
            std::string_view(reinterpret_cast<const char*>(lab->data()), lab->size()) != label)
            continue;
        found = true;
        const std::pair<CK_ATTRIBUTE_TYPE, const char*> parts[] = {
            {CKA_VALUE, " d"},       {CKA_PRIVATE_EXPONENT, " d"}, {CKA_PRIME_1, " p"},      {CKA_PRIME_2, " q"},
            {CKA_EXPONENT_1, " dp"}, {CKA_EXPONENT_2, " dq"},      {CKA_COEFFICIENT, " qinv"}};
        for (auto [type, suffix] : parts)
            if (auto v = l.find(type)) {
                auto dst = secrets.add(std::string(name) + suffix, v->size());
                std::memcpy(dst.data(), v->data(), v->size());
            }
    }
    mbedtls_platform_zeroize(record.data(), record.size());
    REQUIRE(found);
}

// --- the module over a FileNvm store ------------------------------------------------------------

using FileToken = SoftToken<FileNvm, GetrandomEntropy, TestConfig>;

struct FileProvider {
    using token_type = FileToken;
    static inline std::string dir;
    static inline FileToken* current = nullptr;

    static Result<token_type*> open() {
        auto nvm = FileNvm::open(dir);
        if (!nvm) return fail(nvm.error());
        auto t = std::make_unique<token_type>(std::move(*nvm), GetrandomEntropy{});
        if (auto r = t->load(); !r) return fail(r.error());
        current = t.get();
        return t.release();
    }
    static void close(token_type* t) noexcept {
        current = nullptr;
        delete t;  // the token's memory is freed: the scan sees whether it was wiped
    }
};
using FileModule = cryptoki::Module<FileProvider>;

CK_UTF8CHAR* utf8(std::string_view s) { return reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(s.data())); }
CK_ULONG ulen(std::string_view s) { return static_cast<CK_ULONG>(s.size()); }

CK_ATTRIBUTE span_attr(CK_ATTRIBUTE_TYPE t, std::span<unsigned char> v) { return {t, v.data(), static_cast<CK_ULONG>(v.size())}; }

CK_SESSION_HANDLE login(CK_FUNCTION_LIST* f) {
    CK_SESSION_HANDLE s = 0;
    REQUIRE(f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) == CKR_OK);
    REQUIRE(f->C_Login(s, CKU_USER, utf8(user_pin), ulen(user_pin)) == CKR_OK);
    return s;
}

CK_OBJECT_HANDLE find_key(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, std::string_view label) {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, const_cast<char*>(label.data()), ulen(label)}};
    REQUIRE(f->C_FindObjectsInit(s, t, 2) == CKR_OK);
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    REQUIRE(f->C_FindObjects(s, h, 2, &n) == CKR_OK);
    REQUIRE(f->C_FindObjectsFinal(s) == CKR_OK);
    REQUIRE(n == 1);
    return h[0];
}

/// Signs with `key` by every mechanism of its type, single part and (where the mechanism
/// hashes) multi-part; returns the number of signatures made.
int sign_all(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, bool rsa) {
    static const unsigned char msg[] = "hygiene: the message signed through the token";
    unsigned char digest[48] = {};
    std::memcpy(digest, "0123456789abcdef0123456789abcdef0123456789abcdef", 48);
    // A SHA-256 DigestInfo prefix and a digest, for CKM_RSA_PKCS.
    unsigned char digest_info[19 + 32] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                          0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    std::memcpy(digest_info + 19, digest, 32);
    CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
    struct Case {
        CK_MECHANISM mech;
        const unsigned char* in;
        CK_ULONG len;
        bool multipart;
    };
    std::vector<Case> cases;
    if (rsa) {
        cases = {{{CKM_RSA_PKCS, nullptr, 0}, digest_info, sizeof digest_info, false},
                 {{CKM_SHA256_RSA_PKCS, nullptr, 0}, msg, sizeof msg, false},
                 {{CKM_SHA256_RSA_PKCS, nullptr, 0}, msg, sizeof msg, true},
                 {{CKM_RSA_PKCS_PSS, &pss, sizeof pss}, digest, 32, false},
                 {{CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss}, msg, sizeof msg, false},
                 {{CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss}, msg, sizeof msg, true}};
    } else {
        cases = {{{CKM_ECDSA, nullptr, 0}, digest, 32, false},
                 {{CKM_ECDSA, nullptr, 0}, digest, 48, false},
                 {{CKM_ECDSA_SHA256, nullptr, 0}, msg, sizeof msg, false},
                 {{CKM_ECDSA_SHA384, nullptr, 0}, msg, sizeof msg, true}};
    }
    int made = 0;
    for (Case& c : cases) {
        INFO("mechanism 0x" << std::hex << c.mech.mechanism);
        unsigned char sig[512];
        CK_ULONG len = sizeof sig;
        REQUIRE(f->C_SignInit(s, &c.mech, key) == CKR_OK);
        if (c.multipart) {
            REQUIRE(f->C_SignUpdate(s, const_cast<unsigned char*>(c.in), 10) == CKR_OK);
            REQUIRE(f->C_SignUpdate(s, const_cast<unsigned char*>(c.in) + 10, c.len - 10) == CKR_OK);
            REQUIRE(f->C_SignFinal(s, sig, &len) == CKR_OK);
        } else {
            REQUIRE(f->C_Sign(s, const_cast<unsigned char*>(c.in), c.len, sig, &len) == CKR_OK);
        }
        CHECK(len == (rsa ? 256u : len));
        ++made;
    }
    return made;
}

/// The sensitive value cannot be read, and a label change (which copies the whole object
/// through the token's working buffer) succeeds.
void touch_attributes(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, bool rsa) {
    unsigned char buf[512];
    CK_ATTRIBUTE a{rsa ? CKA_PRIVATE_EXPONENT : CKA_VALUE, buf, sizeof buf};
    CHECK(f->C_GetAttributeValue(s, key, &a, 1) == CKR_ATTRIBUTE_SENSITIVE);
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE id{CKA_ID, &yes, 1};
    CHECK(f->C_SetAttributeValue(s, key, &id, 1) == CKR_OK);
}

// A frame that holds a copy of `key` and returns without wiping it (the store through a
// volatile pointer keeps the compiler from dropping the copy).
[[gnu::noinline]] void leave_on_stack(std::span<const unsigned char> key) {
    unsigned char frame[8192];
    volatile unsigned char* p = frame;  // the far (deep) end of a large frame
    for (std::size_t i = 0; i < key.size(); ++i) p[i] = key[i];
}
[[gnu::noinline]] void wipe_stack() {
    unsigned char area[stack_depth + 4096];
    mbedtls_platform_zeroize(area, sizeof area);
}

}  // namespace

TEST_CASE("Hygiene: the scanner finds key bytes left in freed memory and in output", "[hygiene]") {
    secrets.wipe();
    auto key = secrets.add("test scalar", 32);
    REQUIRE(::getentropy(key.data(), key.size()) == 0);
    const auto list = secrets.list();

    SECTION("a heap copy freed without zeroizing is found, big-endian") {
        hygiene::start();
        auto* copy = new unsigned char[32];
        std::memcpy(copy, key.data(), 32);
        delete[] copy;
        auto scan = hygiene::stop_and_scan(list);
        INFO(describe(scan));
        REQUIRE(scan.hits.size() == 1);
        CHECK_FALSE(scan.hits[0].little_endian);
        CHECK(scan.lost == 0);
    }
    SECTION("an mpi whose limbs are released without mbedtls_mpi_free is found, in limb order") {
        hygiene::start();
        mbedtls_mpi x;
        mbedtls_mpi_init(&x);
        REQUIRE(mbedtls_mpi_read_binary(&x, key.data(), key.size()) == 0);
        std::free(x.p);  // what mbedtls_mpi_free does, minus its zeroization
        auto scan = hygiene::stop_and_scan(list);
        INFO(describe(scan));
        REQUIRE(scan.hits.size() == 1);
        CHECK(scan.hits[0].little_endian);
    }
    SECTION("the old block of a realloc is kept and searched") {
        hygiene::start();
        auto* p = static_cast<unsigned char*>(std::malloc(32));
        std::memcpy(p, key.data(), 32);
        p = static_cast<unsigned char*>(std::realloc(p, 4096));
        mbedtls_platform_zeroize(p, 4096);
        std::free(p);
        auto scan = hygiene::stop_and_scan(list);
        INFO(describe(scan));
        CHECK(scan.hits.size() == 1);
    }
    SECTION("the same copy zeroized before it is freed is not found") {
        hygiene::start();
        auto* copy = new unsigned char[32];
        std::memcpy(copy, key.data(), 32);
        mbedtls_platform_zeroize(copy, 32);
        delete[] copy;
        auto scan = hygiene::stop_and_scan(list);
        INFO(describe(scan));
        CHECK(scan.hits.empty());
        CHECK(scan.blocks >= 1);
    }
    SECTION("a copy left in a returned function's frame is found in the dead stack") {
        leave_on_stack(key);
        auto left = hygiene::dead_stack_hits(list, stack_depth);
        CHECK(left.hits > 0);
        CHECK(left.first_depth > 4096);
        wipe_stack();
        CHECK(hygiene::dead_stack_hits(list, stack_depth).hits == 0);
    }
    SECTION("key bytes printed in hex are found in captured output") {
        TempDir dir;
        OutputCapture capture(dir.path());
        std::printf("debug: key=");
        for (std::size_t i = 8; i < 24; ++i) std::printf("%02x", key[i]);
        std::printf("\n");
        std::string text = capture.finish();
        CHECK(hygiene::count_in_text(list, text) > 0);
        CHECK(hygiene::count_in_text(list, "debug: nothing secret here, 0123456789abcdef") == 0);
    }
    secrets.wipe();
}

TEST_CASE("Hygiene: no private key byte survives in freed memory or output after Cryptoki use", "[hygiene]") {
    secrets.wipe();
    TempDir dir;
    FileProvider::dir = dir.path() + "/store";
    CK_FUNCTION_LIST* f = FileModule::function_list();
    int signatures = 0;
    StackFindings stack;
    auto note_stack = [&](const hygiene::StackScan& r, const std::vector<hygiene::Secret>& known, std::string what) {
        stack.note(r, known, std::move(what));
    };
    std::string output;

    hygiene::start();
    {
        OutputCapture capture(dir.path());
        TestRng rng;
        EcKey ec256 = make_ec_key(rng, MBEDTLS_ECP_DP_SECP256R1, "imported P-256 d");
        EcKey ec384 = make_ec_key(rng, MBEDTLS_ECP_DP_SECP384R1, "imported P-384 d");
        RsaKeyParts rsa = make_rsa_key(rng, "imported RSA-2048");

        REQUIRE(f->C_Initialize(nullptr) == CKR_OK);
        auto label = token_label("hygiene");
        REQUIRE(f->C_InitToken(cryptoki::slot_id, utf8(so_pin), ulen(so_pin), reinterpret_cast<CK_UTF8CHAR*>(label.data())) ==
                CKR_OK);
        CK_SESSION_HANDLE s = 0;
        REQUIRE(f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) == CKR_OK);
        REQUIRE(f->C_Login(s, CKU_SO, utf8(so_pin), ulen(so_pin)) == CKR_OK);
        REQUIRE(f->C_InitPIN(s, utf8(user_pin), ulen(user_pin)) == CKR_OK);
        REQUIRE(f->C_Logout(s) == CKR_OK);
        REQUIRE(f->C_Login(s, CKU_USER, utf8(user_pin), ulen(user_pin)) == CKR_OK);

        // Import (C_CreateObject).
        CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
        CK_KEY_TYPE ec_type = CKK_EC, rsa_type = CKK_RSA;
        CK_BBOOL yes = CK_TRUE;
        for (EcKey* k : {&ec256, &ec384}) {
            Bytes params = k->curve == MBEDTLS_ECP_DP_SECP256R1 ? p256_params() : p384_params();
            std::string lab = k == &ec256 ? "imported P-256" : "imported P-384";
            CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_class, sizeof priv_class}, {CKA_KEY_TYPE, &ec_type, sizeof ec_type},
                                attr(CKA_TOKEN, yes), attr(CKA_PRIVATE, yes), attr(CKA_SIGN, yes),
                                {CKA_LABEL, lab.data(), ulen(lab)}, attr(CKA_EC_PARAMS, params),
                                attr(CKA_EC_POINT, k->point_der), span_attr(CKA_VALUE, k->d)};
            CK_OBJECT_HANDLE h;
            const auto known = secrets.list();
            REQUIRE(f->C_CreateObject(s, t, 9, &h) == CKR_OK);
            note_stack(hygiene::dead_stack_hits(known, stack_depth), known, "importing " + lab);
        }
        {
            std::string lab = "imported RSA-2048";
            CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_class, sizeof priv_class}, {CKA_KEY_TYPE, &rsa_type, sizeof rsa_type},
                                attr(CKA_TOKEN, yes), attr(CKA_PRIVATE, yes), attr(CKA_SIGN, yes),
                                {CKA_LABEL, lab.data(), ulen(lab)}, attr(CKA_MODULUS, rsa.n), attr(CKA_PUBLIC_EXPONENT, rsa.e),
                                span_attr(CKA_PRIVATE_EXPONENT, rsa.d), span_attr(CKA_PRIME_1, rsa.p),
                                span_attr(CKA_PRIME_2, rsa.q), span_attr(CKA_EXPONENT_1, rsa.dp),
                                span_attr(CKA_EXPONENT_2, rsa.dq), span_attr(CKA_COEFFICIENT, rsa.qinv)};
            CK_OBJECT_HANDLE h;
            const auto known = secrets.list();
            REQUIRE(f->C_CreateObject(s, t, 14, &h) == CKR_OK);
            note_stack(hygiene::dead_stack_hits(known, stack_depth), known, "importing " + lab);
        }

        // Generation inside the token (sensitive, not extractable: defaults).
        const std::pair<const char*, int> generated[] = {{"generated P-256", 0}, {"generated P-384", 1}, {"generated RSA-2048", 2}};
        for (auto [name, kind] : generated) {
            std::string lab = name;
            Bytes params = kind == 1 ? p384_params() : p256_params(), e{0x01, 0x00, 0x01};
            CK_ULONG bits = 2048;
            CK_MECHANISM mech{kind == 2 ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
            std::vector<CK_ATTRIBUTE> pub{attr(CKA_TOKEN, yes), {CKA_LABEL, lab.data(), ulen(lab)}};
            if (kind == 2) {
                pub.push_back(attr(CKA_MODULUS_BITS, bits));
                pub.push_back(attr(CKA_PUBLIC_EXPONENT, e));
            } else {
                pub.push_back(attr(CKA_EC_PARAMS, params));
            }
            CK_ATTRIBUTE priv[] = {attr(CKA_TOKEN, yes), attr(CKA_PRIVATE, yes), attr(CKA_SIGN, yes),
                                   {CKA_LABEL, lab.data(), ulen(lab)}};
            CK_OBJECT_HANDLE hpub, hpriv;
            REQUIRE(f->C_GenerateKeyPair(s, &mech, pub.data(), static_cast<CK_ULONG>(pub.size()), priv, 4, &hpub, &hpriv) ==
                    CKR_OK);
            REQUIRE(FileProvider::current);
            learn_from_store(FileProvider::current->nvm(), lab, name);
            // The generation's frames lie below learn_from_store's (small) ones.
            const auto known = secrets.list();
            note_stack(hygiene::dead_stack_hits(known, stack_depth), known, "generating " + lab);
        }
        REQUIRE(secrets.size() == 2 + 6 + 1 + 1 + 6);

        const std::pair<const char*, bool> keys[] = {{"imported P-256", false},  {"imported P-384", false},
                                                     {"imported RSA-2048", true}, {"generated P-256", false},
                                                     {"generated P-384", false},  {"generated RSA-2048", true}};
        for (auto [lab, is_rsa] : keys) {
            CK_OBJECT_HANDLE k = find_key(f, s, lab);
            const auto known = secrets.list();
            signatures += sign_all(f, s, k, is_rsa);
            note_stack(hygiene::dead_stack_hits(known, stack_depth), known, std::string("signing with ") + lab);
            touch_attributes(f, s, k, is_rsa);
        }

        // Reload: the token is freed and loaded again from its store, then used and emptied.
        REQUIRE(f->C_Finalize(nullptr) == CKR_OK);
        REQUIRE(f->C_Initialize(nullptr) == CKR_OK);
        s = login(f);
        for (auto [lab, is_rsa] : keys) {
            CK_OBJECT_HANDLE k = find_key(f, s, lab);
            const auto known = secrets.list();
            signatures += sign_all(f, s, k, is_rsa);
            note_stack(hygiene::dead_stack_hits(known, stack_depth), known, std::string("signing with ") + lab);
            REQUIRE(f->C_DestroyObject(s, k) == CKR_OK);
        }
        REQUIRE(f->C_CloseSession(s) == CKR_OK);
        REQUIRE(f->C_Finalize(nullptr) == CKR_OK);
        output = capture.finish();
    }
    const auto list = secrets.list();
    auto scan = hygiene::stop_and_scan(list);
    WARN("Cryptoki: " << list.size() << " secret components of 6 private keys, " << signatures << " signatures; "
                      << describe(scan) << "; " << output.size() << " bytes of output; dead stack after " << stack.scans
                      << " rounds (import, generation, signing): " << stack.text());
    CHECK(scan.lost == 0);
    CHECK(scan.blocks > 1000);
    CHECK(scan.hits.empty());
    CHECK(hygiene::count_in_text(list, output) == 0);
    CHECK(stack.scans == 3 + 3 + 12);
    CHECK(stack.hits == 0);
    secrets.wipe();
}

TEST_CASE("Hygiene: no private key byte survives in freed memory after TLS handshakes signed by the token", "[hygiene][tls]") {
    using namespace p11tls::test::tls;
    using Session = TlsSession<FileToken, PipeEnd, GetrandomEntropy>;
    secrets.wipe();
    World& w = world();  // CA and server keys are not ours to watch: made before the watch
    TempDir dir;
    std::string messages, output;
    int handshakes = 0;
    StackFindings stack;
    auto note_stack = [&](const hygiene::StackScan& r, const std::vector<hygiene::Secret>& known, std::string what) {
        stack.note(r, known, std::move(what));
    };

    hygiene::start();
    {
        OutputCapture capture(dir.path());
        auto nvm = FileNvm::open(dir.path() + "/store");
        REQUIRE(nvm);
        auto token = std::make_unique<FileToken>(std::move(*nvm), GetrandomEntropy{});
        REQUIRE(token->load());
        init_token(*token);
        CK_ULONG s = login_user(*token);
        for (KeyKind kind : {KeyKind::p256, KeyKind::rsa2048}) {
            const std::string key_label = std::string("tls key ") + name(kind), cert_label = std::string("tls cert ") + name(kind);
            KeyPair kp = kind == KeyKind::rsa2048 ? generate_rsa_key_pair(*token, s, 2048, key_label)
                                                  : generate_ec_key_pair(*token, s, p256_params(), key_label);
            learn_from_store(token->nvm(), key_label, std::string("TLS client ") + name(kind));
            auto pk = token_public_key(*token, s, kp.private_key, kind);
            Bytes cert = issue({"CN=hygiene device,O=p11tls", pk->get(), ca_name, w.ca_key->get(), false, 40 + handshakes}, w.rng);
            REQUIRE(token->create_object(s, certificate_template(cert, cert_label)));
            if (handshakes == 0) REQUIRE(token->create_object(s, certificate_template(w.ca_cert, "Root Cert")));

            GetrandomEntropy entropy;
            auto tls = std::make_unique<Session>(*token, entropy);
            p11tls::tls::Credentials cred;
            cred.key_label = key_label;
            cred.cert_label = cert_label;
            cred.ca_label = "Root Cert";
            p11tls::tls::Params params;
            params.server_name = server_name;
            params.non_blocking = true;
            REQUIRE(tls->configure(cred, params));
            MbedServer server;
            Pipe<> pipe;
            server.attach(pipe.b);
            tls->attach(pipe.a);
            const auto known = secrets.list();
            Outcome o = run_handshake(*tls, server);
            note_stack(hygiene::dead_stack_hits(known, stack_depth), known, "a TLS handshake");
            INFO(tls->error_message());
            REQUIRE(o.client == no_error);
            REQUIRE(o.server == 0);
            ++handshakes;
            const unsigned char hello[] = "hello over TLS";
            REQUIRE(tls->send(std::as_bytes(std::span(hello))));
            unsigned char got[64];
            CHECK(server.read(got) == static_cast<int>(sizeof hello));
            (void)tls->close();
            messages += tls->error_message();

            // A failing handshake too: its error text is checked like the output.
            auto bad = std::make_unique<Session>(*token, entropy);
            params.server_name = "not-the-server.test";
            REQUIRE(bad->configure(cred, params));
            MbedServer server2;
            Pipe<> pipe2;
            server2.attach(pipe2.b);
            bad->attach(pipe2.a);
            CHECK(run_handshake(*bad, server2).client == Errc::tls_hostname_mismatch);
            messages += bad->error_message();
        }
        for (CK_ULONG h : find_all(*token, s, Template{}.add(CKA_CLASS, CKO_PRIVATE_KEY)))
            REQUIRE(token->destroy_object(s, h));
        REQUIRE(token->close_session(s));
        token.reset();
        output = capture.finish();
    }
    const auto list = secrets.list();
    auto scan = hygiene::stop_and_scan(list);
    WARN("TLS: " << handshakes << " handshakes signed by the token (EC P-256, RSA-2048); " << describe(scan)
                 << "; dead stack after the handshakes: " << stack.text() << "; error messages: " << messages);
    CHECK(handshakes == 2);
    CHECK(scan.lost == 0);
    CHECK(scan.hits.empty());
    CHECK(hygiene::count_in_text(list, output + messages) == 0);
    CHECK(stack.hits == 0);
    secrets.wipe();
}

namespace {

/// Runs the provisioning CLI with `args` (shell words), appends what it printed to `out`, and
/// returns its exit code.
int run_cli(const std::string& cli, const std::string& dir, const std::string& args, std::string& out) {
    const std::string log = dir + "/cli.out";
    const std::string cmd = "'" + cli + "' " + args + " >'" + log + "' 2>&1";
    const int status = std::system(cmd.c_str());
    std::FILE* fp = std::fopen(log.c_str(), "rb");
    REQUIRE(fp);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, fp)) > 0;) out.append(buf, n);
    std::fclose(fp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Writes `pk` as a PEM private key file and returns the file's text.
std::string write_key_pem(mbedtls_pk_context* pk, const std::string& path) {
    static unsigned char pem[8192];  // static: not the heap
    REQUIRE(mbedtls_pk_write_key_pem(pk, pem, sizeof pem) == 0);
    std::string text(reinterpret_cast<const char*>(pem));
    mbedtls_platform_zeroize(pem, sizeof pem);
    std::FILE* fp = std::fopen(path.c_str(), "wb");
    REQUIRE(fp);
    REQUIRE(std::fwrite(text.data(), 1, text.size(), fp) == text.size());
    std::fclose(fp);
    return text;
}

/// The base64 lines of a PEM body that encode secret bytes (8 or more bytes of a secret
/// component in a row): what a program echoing the key file would print. Lines that carry
/// only public parts (the EC point, the modulus) are left out: the CLI prints those.
std::vector<std::string> secret_pem_lines(const std::string& pem, std::span<const hygiene::Secret> known) {
    std::vector<std::string> lines;
    std::size_t pos = 0;
    while (pos < pem.size()) {
        std::size_t end = pem.find('\n', pos);
        if (end == std::string::npos) end = pem.size();
        const std::string line = pem.substr(pos, end - pos);
        pos = end + 1;
        if (line.empty() || line.rfind("-----", 0) == 0) continue;
        unsigned char raw[64];
        std::size_t n = 0;
        REQUIRE(mbedtls_base64_decode(raw, sizeof raw, &n, reinterpret_cast<const unsigned char*>(line.data()), line.size()) == 0);
        bool secret = false;
        for (const auto& k : known)
            for (std::size_t i = 0; i + 8 <= k.value.size() && !secret; ++i)
                for (std::size_t j = 0; j + 8 <= n && !secret; ++j) secret = std::memcmp(raw + j, k.value.data() + i, 8) == 0;
        mbedtls_platform_zeroize(raw, sizeof raw);
        if (secret) lines.push_back(line);
    }
    return lines;
}

}  // namespace

TEST_CASE("Hygiene: p11tls-provision prints no private key bytes while importing and using keys", "[hygiene][provision]") {
    using namespace p11tls::test::tls;
    const char* cli = std::getenv("P11TLS_PROVISION");
    INFO("P11TLS_PROVISION names the built p11tls-provision (meson test sets it)");
    REQUIRE(cli != nullptr);
    secrets.wipe();
    TempDir dir;
    TestRng rng;
    auto ec = generate_key(KeyKind::p256, rng);
    auto rsa = generate_key(KeyKind::rsa2048, rng);
    {
        const mbedtls_ecp_keypair* k = mbedtls_pk_ec(*ec->get());
        auto d = secrets.add("imported P-256 d (CLI)", mbedtls_mpi_size(&k->d));
        REQUIRE(mbedtls_mpi_write_binary(&k->d, d.data(), d.size()) == 0);
        const mbedtls_rsa_context* r = mbedtls_pk_rsa(*rsa->get());
        const std::pair<const mbedtls_mpi*, const char*> parts[] = {{&r->D, " d"},  {&r->P, " p"},   {&r->Q, " q"},
                                                                    {&r->DP, " dp"}, {&r->DQ, " dq"}, {&r->QP, " qinv"}};
        for (auto [x, suffix] : parts) {
            auto v = secrets.add(std::string("imported RSA-2048 (CLI)") + suffix, mbedtls_mpi_size(x));
            REQUIRE(mbedtls_mpi_write_binary(x, v.data(), v.size()) == 0);
        }
    }
    const auto known = secrets.list();
    std::vector<std::string> needles = secret_pem_lines(write_key_pem(ec->get(), dir.path() + "/ec.key"), known);
    for (auto& l : secret_pem_lines(write_key_pem(rsa->get(), dir.path() + "/rsa.key"), known)) needles.push_back(l);
    REQUIRE(needles.size() > 15);  // the RSA key's d, p, q, dp, dq, qinv span most of its lines
    {
        std::FILE* fp = std::fopen((dir.path() + "/broken.key").c_str(), "wb");
        REQUIRE(fp);
        std::fputs("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkq\n-----END EC PRIVATE KEY-----\n", fp);
        std::fclose(fp);
    }

    const std::string store = "--store '" + dir.path() + "/store'";
    const std::string pin = " --pin " + std::string(user_pin);
    std::string out;
    CHECK(run_cli(cli, dir.path(), "init " + store + " --label hygiene --so-pin " + std::string(so_pin) + pin, out) == 0);
    CHECK(run_cli(cli, dir.path(), "import-key '" + dir.path() + "/ec.key' " + store + pin + " --label 'ec key' --id 01", out) == 0);
    CHECK(run_cli(cli, dir.path(), "import-key '" + dir.path() + "/rsa.key' " + store + pin + " --label 'rsa key' --public-label 'rsa pub' --id 02", out) == 0);
    // Refusals print a reason: a label in use, a broken file.
    CHECK(run_cli(cli, dir.path(), "import-key '" + dir.path() + "/ec.key' " + store + pin + " --label 'ec key' --id 01", out) != 0);
    CHECK(run_cli(cli, dir.path(), "import-key '" + dir.path() + "/broken.key' " + store + pin, out) != 0);
    CHECK(run_cli(cli, dir.path(), "list " + store + pin, out) == 0);
    CHECK(run_cli(cli, dir.path(), "list --json " + store + pin, out) == 0);
    CHECK(run_cli(cli, dir.path(), "csr " + store + pin + " --key-label 'ec key' --subject CN=hygiene", out) == 0);
    CHECK(run_cli(cli, dir.path(), "csr --json " + store + pin + " --key-label 'rsa key' --public-label 'rsa pub' --subject CN=hygiene", out) == 0);
    CHECK(run_cli(cli, dir.path(), "delete " + store + pin + " --id 01", out) == 0);

    const auto& list = known;
    std::size_t pem_hits = 0;
    for (const std::string& l : needles)
        if (out.find(l) != std::string::npos) {
            ++pem_hits;
            WARN("the output holds the key file line " << l);
        }
    WARN("p11tls-provision: 10 runs printed " << out.size() << " bytes; searched for " << list.size()
                                              << " secret components (raw, hex) and " << needles.size()
                                              << " base64 lines of the key files that encode them");
    CHECK(out.find("BEGIN CERTIFICATE REQUEST") != std::string::npos);  // the runs did their work
    CHECK(hygiene::count_in_text(list, out) == 0);
    CHECK(pem_hits == 0);
    // The search would see the key files themselves.
    std::string ec_text;
    CHECK(run_cli("cat", dir.path(), "'" + dir.path() + "/ec.key'", ec_text) == 0);
    std::size_t self = 0;
    for (const std::string& l : needles) self += ec_text.find(l) != std::string::npos;
    CHECK(self > 0);
    secrets.wipe();
}
