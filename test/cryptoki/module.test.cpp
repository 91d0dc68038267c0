// SPDX-License-Identifier: MIT
// cryptoki::Module through its C ABI (CK_FUNCTION_LIST), with a SoftToken over a RamNvm that
// outlives C_Finalize, as flash outlives a reset.
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/cryptoki/module.hpp>

#include "support/token_fixture.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

struct TestProvider {
    using token_type = SoftToken<RamNvm<>, GetrandomEntropy, TestConfig>;

    static inline std::unique_ptr<RamNvm<>> store;
    static inline int open_count = 0;

    static Result<token_type*> open() {
        if (!store) store = std::make_unique<RamNvm<>>();
        auto t = std::make_unique<token_type>(*store, GetrandomEntropy{});
        if (auto r = t->load(); !r) return fail(r.error());
        ++open_count;
        return t.release();
    }
    static void close(token_type* t) noexcept {
        *store = t->nvm();
        delete t;
    }
    /// A blank store for the next C_Initialize.
    static void wipe() { store = std::make_unique<RamNvm<>>(); }
};

using TestModule = cryptoki::Module<TestProvider>;

CK_FUNCTION_LIST* functions() { return TestModule::function_list(); }

/// Initializes the module over a blank store for one test and finalizes it afterwards, also
/// when an assertion ends the test early.
struct Initialized {
    CK_FUNCTION_LIST* f = functions();
    Initialized() {
        TestProvider::wipe();
        REQUIRE(f->C_Initialize(nullptr) == CKR_OK);
    }
    ~Initialized() { (void)f->C_Finalize(nullptr); }
    Initialized(const Initialized&) = delete;
    Initialized& operator=(const Initialized&) = delete;
};

CK_UTF8CHAR* utf8(std::string_view s) { return reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(s.data())); }
CK_ULONG len(std::string_view s) { return static_cast<CK_ULONG>(s.size()); }

/// C_InitToken and C_InitPIN, then a R/W session with the user logged in.
CK_SESSION_HANDLE user_session(CK_FUNCTION_LIST* f) {
    auto label = token_label("module test");
    REQUIRE(f->C_InitToken(cryptoki::slot_id, utf8(so_pin), len(so_pin), reinterpret_cast<CK_UTF8CHAR*>(label.data())) ==
            CKR_OK);
    CK_SESSION_HANDLE s = 0;
    REQUIRE(f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) == CKR_OK);
    REQUIRE(f->C_Login(s, CKU_SO, utf8(so_pin), len(so_pin)) == CKR_OK);
    REQUIRE(f->C_InitPIN(s, utf8(user_pin), len(user_pin)) == CKR_OK);
    REQUIRE(f->C_Logout(s) == CKR_OK);
    REQUIRE(f->C_Login(s, CKU_USER, utf8(user_pin), len(user_pin)) == CKR_OK);
    return s;
}

struct Keys {
    CK_OBJECT_HANDLE pub = 0, priv = 0;
};

Keys generate_ec(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, std::string_view label = "module key") {
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    Bytes params = p256_params();
    Bytes lab = to_bytes(label);
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params), attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab)};
    CK_ATTRIBUTE priv[] = {attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab), attr(CKA_SIGN, yes)};
    Keys k;
    REQUIRE(f->C_GenerateKeyPair(s, &mech, pub, 3, priv, 3, &k.pub, &k.priv) == CKR_OK);
    return k;
}

std::vector<CK_OBJECT_HANDLE> find(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> tmpl) {
    REQUIRE(f->C_FindObjectsInit(s, tmpl.empty() ? nullptr : tmpl.data(), static_cast<CK_ULONG>(tmpl.size())) == CKR_OK);
    std::vector<CK_OBJECT_HANDLE> all;
    CK_OBJECT_HANDLE batch[3];
    for (;;) {
        CK_ULONG n = 99;
        REQUIRE(f->C_FindObjects(s, batch, 3, &n) == CKR_OK);
        if (n == 0) break;
        all.insert(all.end(), batch, batch + n);
    }
    REQUIRE(f->C_FindObjectsFinal(s) == CKR_OK);
    return all;
}

const Bytes data = to_bytes("data signed through the C ABI");

}  // namespace

TEST_CASE("Module: every CK_FUNCTION_LIST entry is set", "[cryptoki]") {
    const CK_FUNCTION_LIST* f = functions();
    CHECK(f->version.major == 2);
    CHECK(f->version.minor == 40);
    using Fn = void (*)();
    constexpr std::size_t first = offsetof(CK_FUNCTION_LIST, C_Initialize);
    constexpr std::size_t count = (sizeof(CK_FUNCTION_LIST) - first) / sizeof(Fn);
    STATIC_REQUIRE(count == 68);
    for (std::size_t i = 0; i < count; ++i) {
        INFO("entry " << i);
        Fn p;
        std::memcpy(&p, reinterpret_cast<const unsigned char*>(f) + first + i * sizeof(Fn), sizeof p);
        CHECK(p != nullptr);
    }
    CK_FUNCTION_LIST* again = nullptr;
    REQUIRE(f->C_GetFunctionList(&again) == CKR_OK);
    CHECK(again == f);
}

namespace {
CK_RV create_mutex(CK_VOID_PTR_PTR m) {
    *m = nullptr;
    return CKR_OK;
}
CK_RV mutex_op(CK_VOID_PTR) { return CKR_OK; }
}  // namespace

TEST_CASE("Module: C_Initialize checks its CK_C_INITIALIZE_ARGS", "[cryptoki]") {
    CK_FUNCTION_LIST* f = functions();
    TestProvider::wipe();
    CK_C_INITIALIZE_ARGS args{};
    SECTION("CKF_OS_LOCKING_OK is accepted") {
        args.flags = CKF_OS_LOCKING_OK;
        CHECK(f->C_Initialize(&args) == CKR_OK);
        CHECK(f->C_Finalize(nullptr) == CKR_OK);
    }
    SECTION("all four callbacks with CKF_OS_LOCKING_OK are accepted") {
        args = {&create_mutex, &mutex_op, &mutex_op, &mutex_op, CKF_OS_LOCKING_OK, nullptr};
        CHECK(f->C_Initialize(&args) == CKR_OK);
        CHECK(f->C_Finalize(nullptr) == CKR_OK);
    }
    SECTION("a non-NULL pReserved gives CKR_ARGUMENTS_BAD") {
        int reserved = 0;
        args.flags = CKF_OS_LOCKING_OK;
        args.pReserved = &reserved;
        CHECK(f->C_Initialize(&args) == CKR_ARGUMENTS_BAD);
    }
    SECTION("only some mutex callbacks give CKR_ARGUMENTS_BAD") {
        args.CreateMutex = &create_mutex;
        args.LockMutex = &mutex_op;
        CHECK(f->C_Initialize(&args) == CKR_ARGUMENTS_BAD);
    }
    SECTION("callbacks the library would have to use instead of OS locks give CKR_CANT_LOCK") {
        args = {&create_mutex, &mutex_op, &mutex_op, &mutex_op, 0, nullptr};
        CHECK(f->C_Initialize(&args) == CKR_CANT_LOCK);
    }
    // A refused C_Initialize leaves the library uninitialized.
    CHECK(f->C_Finalize(nullptr) == CKR_CRYPTOKI_NOT_INITIALIZED);
}

TEST_CASE("Module: C_GetInfo reports Cryptoki 2.40", "[cryptoki]") {
    Initialized m;
    CK_INFO info;
    REQUIRE(m.f->C_GetInfo(&info) == CKR_OK);
    CHECK(info.cryptokiVersion.major == 2);
    CHECK(info.cryptokiVersion.minor == 40);
    CHECK(std::memcmp(info.manufacturerID, "p11tls", 6) == 0);
}

TEST_CASE("Module: C_GetSlotList answers length queries and reports a short buffer", "[cryptoki]") {
    Initialized m;
    CK_ULONG count = 0;
    REQUIRE(m.f->C_GetSlotList(CK_TRUE, nullptr, &count) == CKR_OK);
    CHECK(count == 1);
    CK_SLOT_ID none[1];
    CK_ULONG zero = 0;
    CHECK(m.f->C_GetSlotList(CK_TRUE, none, &zero) == CKR_BUFFER_TOO_SMALL);
    CHECK(zero == 1);
    CK_SLOT_ID slots[4] = {99, 99, 99, 99};
    CK_ULONG room = 4;
    REQUIRE(m.f->C_GetSlotList(CK_FALSE, slots, &room) == CKR_OK);
    CHECK(room == 1);
    CHECK(slots[0] == cryptoki::slot_id);
}

TEST_CASE("Module: a slot id other than the module's gives CKR_SLOT_ID_INVALID", "[cryptoki]") {
    Initialized m;
    const CK_SLOT_ID bad = cryptoki::slot_id + 1;
    CK_SLOT_INFO slot;
    CK_TOKEN_INFO token;
    CK_MECHANISM_INFO mech;
    CK_ULONG count = 0;
    CK_SESSION_HANDLE s = 0;
    CHECK(m.f->C_GetSlotInfo(bad, &slot) == CKR_SLOT_ID_INVALID);
    CHECK(m.f->C_GetTokenInfo(bad, &token) == CKR_SLOT_ID_INVALID);
    CHECK(m.f->C_GetMechanismList(bad, nullptr, &count) == CKR_SLOT_ID_INVALID);
    CHECK(m.f->C_GetMechanismInfo(bad, CKM_ECDSA, &mech) == CKR_SLOT_ID_INVALID);
    CHECK(m.f->C_OpenSession(bad, CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_SLOT_ID_INVALID);
    REQUIRE(m.f->C_GetSlotInfo(cryptoki::slot_id, &slot) == CKR_OK);
    CHECK(slot.flags & CKF_TOKEN_PRESENT);
}

TEST_CASE("Module: C_GetMechanismList lists the required mechanisms", "[cryptoki]") {
    Initialized m;
    CK_ULONG count = 0;
    REQUIRE(m.f->C_GetMechanismList(cryptoki::slot_id, nullptr, &count) == CKR_OK);
    REQUIRE(count >= 13);
    std::vector<CK_MECHANISM_TYPE> list(count);
    CK_ULONG short_count = count - 1;
    CHECK(m.f->C_GetMechanismList(cryptoki::slot_id, list.data(), &short_count) == CKR_BUFFER_TOO_SMALL);
    CHECK(short_count == count);
    REQUIRE(m.f->C_GetMechanismList(cryptoki::slot_id, list.data(), &count) == CKR_OK);
    for (CK_MECHANISM_TYPE required :
         {CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_RSA_PKCS,
          CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKM_SHA384,
          CKM_SHA512}) {
        INFO("mechanism 0x" << std::hex << required);
        CHECK(std::find(list.begin(), list.end(), required) != list.end());
    }
}

TEST_CASE("Module: C_GetMechanismInfo describes ECDSA as sign and verify", "[cryptoki]") {
    Initialized m;
    CK_MECHANISM_INFO info{};
    REQUIRE(m.f->C_GetMechanismInfo(cryptoki::slot_id, CKM_ECDSA, &info) == CKR_OK);
    CHECK((info.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));
    CHECK(info.ulMinKeySize == 256);
    CHECK(info.ulMaxKeySize == 384);
    REQUIRE(m.f->C_GetMechanismInfo(cryptoki::slot_id, CKM_EC_KEY_PAIR_GEN, &info) == CKR_OK);
    CHECK(info.flags & CKF_GENERATE_KEY_PAIR);
    CHECK(m.f->C_GetMechanismInfo(cryptoki::slot_id, CKM_AES_CBC, &info) == CKR_MECHANISM_INVALID);
}

TEST_CASE("Module: C_OpenSession without CKF_SERIAL_SESSION gives CKR_SESSION_PARALLEL_NOT_SUPPORTED", "[cryptoki]") {
    Initialized m;
    CK_SESSION_HANDLE s = 0;
    CHECK(m.f->C_OpenSession(cryptoki::slot_id, CKF_RW_SESSION, nullptr, nullptr, &s) ==
          CKR_SESSION_PARALLEL_NOT_SUPPORTED);
}

TEST_CASE("Module: C_CloseAllSessions closes every session and logs out", "[cryptoki]") {
    Initialized m;
    CK_SESSION_HANDLE s = user_session(m.f);
    CK_SESSION_HANDLE other = 0;
    REQUIRE(m.f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &other) == CKR_OK);
    REQUIRE(m.f->C_CloseAllSessions(cryptoki::slot_id) == CKR_OK);
    CK_SESSION_INFO info;
    CHECK(m.f->C_GetSessionInfo(s, &info) == CKR_SESSION_HANDLE_INVALID);
    CHECK(m.f->C_GetSessionInfo(other, &info) == CKR_SESSION_HANDLE_INVALID);
    REQUIRE(m.f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK);
    REQUIRE(m.f->C_GetSessionInfo(s, &info) == CKR_OK);
    CHECK(info.state == CKS_RO_PUBLIC_SESSION);
}

TEST_CASE("Module: C_Sign answers a length query, then signs into a buffer of that length", "[cryptoki]") {
    Initialized m;
    CK_SESSION_HANDLE s = user_session(m.f);
    const Keys k = generate_ec(m.f, s);
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    Bytes in = data;
    REQUIRE(m.f->C_SignInit(s, &mech, k.priv) == CKR_OK);
    CK_ULONG sig_len = 0;
    REQUIRE(m.f->C_Sign(s, in.data(), static_cast<CK_ULONG>(in.size()), nullptr, &sig_len) == CKR_OK);
    CHECK(sig_len == 64);
    Bytes sig(sig_len);
    REQUIRE(m.f->C_Sign(s, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), &sig_len) == CKR_OK);
    CHECK(sig_len == 64);
    REQUIRE(m.f->C_VerifyInit(s, &mech, k.pub) == CKR_OK);
    CHECK(m.f->C_Verify(s, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), sig_len) == CKR_OK);
    sig[5] ^= 0x80;
    REQUIRE(m.f->C_VerifyInit(s, &mech, k.pub) == CKR_OK);
    CHECK(m.f->C_Verify(s, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), sig_len) == CKR_SIGNATURE_INVALID);
}

TEST_CASE("Module: C_SignUpdate and C_SignFinal follow the same length rules", "[cryptoki]") {
    Initialized m;
    CK_SESSION_HANDLE s = user_session(m.f);
    const Keys k = generate_ec(m.f, s);
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    Bytes in = data;
    REQUIRE(m.f->C_SignInit(s, &mech, k.priv) == CKR_OK);
    REQUIRE(m.f->C_SignUpdate(s, in.data(), 5) == CKR_OK);
    REQUIRE(m.f->C_SignUpdate(s, in.data() + 5, static_cast<CK_ULONG>(in.size() - 5)) == CKR_OK);
    CK_ULONG sig_len = 0;
    REQUIRE(m.f->C_SignFinal(s, nullptr, &sig_len) == CKR_OK);
    CHECK(sig_len == 64);
    Bytes sig(sig_len);
    REQUIRE(m.f->C_SignFinal(s, sig.data(), &sig_len) == CKR_OK);
    REQUIRE(m.f->C_VerifyInit(s, &mech, k.pub) == CKR_OK);
    CHECK(m.f->C_Verify(s, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), sig_len) == CKR_OK);
}

TEST_CASE("Module: C_GetAttributeValue follows the PKCS#11 length conventions", "[cryptoki]") {
    Initialized m;
    CK_SESSION_HANDLE s = user_session(m.f);
    const Keys k = generate_ec(m.f, s, "attrs");
    CK_ATTRIBUTE q{CKA_EC_POINT, nullptr, 0};
    REQUIRE(m.f->C_GetAttributeValue(s, k.pub, &q, 1) == CKR_OK);
    CHECK(q.ulValueLen == 67);
    unsigned char small[10];
    CK_ATTRIBUTE a{CKA_EC_POINT, small, sizeof small};
    CHECK(m.f->C_GetAttributeValue(s, k.pub, &a, 1) == CKR_BUFFER_TOO_SMALL);
    CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    unsigned char secret[48];
    CK_ATTRIBUTE v{CKA_VALUE, secret, sizeof secret};
    CHECK(m.f->C_GetAttributeValue(s, k.priv, &v, 1) == CKR_ATTRIBUTE_SENSITIVE);
    CHECK(v.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CK_ATTRIBUTE absent{CKA_MODULUS, nullptr, 0};
    CHECK(m.f->C_GetAttributeValue(s, k.pub, &absent, 1) == CKR_ATTRIBUTE_TYPE_INVALID);
}

TEST_CASE("Module: a wrong PIN gives CKR_PIN_INCORRECT and an unknown session CKR_SESSION_HANDLE_INVALID",
          "[cryptoki]") {
    Initialized m;
    CK_SESSION_HANDLE s = user_session(m.f);
    REQUIRE(m.f->C_Logout(s) == CKR_OK);
    CHECK(m.f->C_Login(s, CKU_USER, utf8(wrong_pin), len(wrong_pin)) == CKR_PIN_INCORRECT);
    CHECK(m.f->C_Login(s + 12345, CKU_USER, utf8(user_pin), len(user_pin)) == CKR_SESSION_HANDLE_INVALID);
    CHECK(m.f->C_Logout(s) == CKR_USER_NOT_LOGGED_IN);
    CK_TOKEN_INFO info;
    REQUIRE(m.f->C_GetTokenInfo(cryptoki::slot_id, &info) == CKR_OK);
    CHECK(info.flags & CKF_USER_PIN_COUNT_LOW);
}

TEST_CASE("Module: token objects are found again after C_Finalize and C_Initialize", "[cryptoki]") {
    CK_FUNCTION_LIST* f = functions();
    Bytes point;
    {
        Initialized m;
        CK_SESSION_HANDLE s = user_session(f);
        const Keys k = generate_ec(f, s, "survivor");
        CK_ATTRIBUTE q{CKA_EC_POINT, nullptr, 0};
        REQUIRE(f->C_GetAttributeValue(s, k.pub, &q, 1) == CKR_OK);
        point.resize(q.ulValueLen);
        q.pValue = point.data();
        REQUIRE(f->C_GetAttributeValue(s, k.pub, &q, 1) == CKR_OK);
        REQUIRE(f->C_Finalize(nullptr) == CKR_OK);
        REQUIRE(f->C_Initialize(nullptr) == CKR_OK);  // over the same store; ~Initialized finalizes
        CK_SESSION_HANDLE s2 = 0;
        CK_SESSION_INFO info;
        CHECK(f->C_GetSessionInfo(s, &info) == CKR_SESSION_HANDLE_INVALID);
        REQUIRE(f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &s2) == CKR_OK);
        REQUIRE(f->C_Login(s2, CKU_USER, utf8(user_pin), len(user_pin)) == CKR_OK);
        Bytes label = to_bytes("survivor");
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        const auto hits = find(f, s2, {attr(CKA_LABEL, label), attr(CKA_CLASS, cls)});
        REQUIRE(hits.size() == 1);
        CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
        Bytes in = data;
        Bytes sig(64);
        CK_ULONG sig_len = 64;
        REQUIRE(f->C_SignInit(s2, &mech, hits[0]) == CKR_OK);
        REQUIRE(f->C_Sign(s2, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), &sig_len) == CKR_OK);
        CHECK(mbed_ecdsa_verify(MBEDTLS_ECP_DP_SECP256R1, point, hash(MBEDTLS_MD_SHA256, data), sig));
    }
}
