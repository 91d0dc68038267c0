// SPDX-License-Identifier: MIT
// PKCS#11 negative paths through the C ABI: one table over all 68 CK_FUNCTION_LIST entries.
// A row names the list entry, the case, the state the module starts from, the call (made
// through the function list, as an application does), the CK_RV the PKCS#11 v2.40 base
// specification asks for, and what must hold afterwards where the spec says so (a length
// written back, an operation still active, nothing changed).
//
// Sections cited are those of OASIS pkcs11-base-v2.40: §4.1.1 creating objects, §4.1.2
// modifying objects, §5 (intro) stubs, §5.1.2 session-handle codes, §5.1.6 the codes of all
// functions, §5.1.7 precedence, §5.2 variable-length output, then one section per function:
// §5.4 general purpose, §5.5 slots and tokens, §5.6 sessions, §5.7 objects, §5.8 encrypt,
// §5.9 decrypt, §5.10 digest, §5.11 sign, §5.12 verify, §5.13 dual-purpose, §5.14 keys,
// §5.15 random, §5.16 parallel (legacy).
//
// Where the spec admits several codes, the row takes the most specific one:
// - Before C_Initialize and after C_Finalize every entry but C_Initialize and C_GetFunctionList
//   answers CKR_CRYPTOKI_NOT_INITIALIZED (§5.1.6), the stubs too. A stub "simply returns
//   CKR_FUNCTION_NOT_SUPPORTED" (§5), but both codes are §5.1.6 codes, so §5.1.7 leaves the
//   order open; the library state is the more specific answer (the call fails for it whatever
//   the function), and the legacy entries (§5.16) and C_WaitForSlotEvent answer so as well.
// - Once initialized a stub answers CKR_FUNCTION_NOT_SUPPORTED whatever its arguments, so the
//   session-handle cases cover the entries the module implements.
// - A handle that names an object which is not a key, given as a key, is
//   CKR_KEY_HANDLE_INVALID (§5.1.6: "a valid handle for an object which is not a key").
// - A key of the wrong class or type for the mechanism is CKR_KEY_TYPE_INCONSISTENT; a key of
//   the right type whose CKA_SIGN/CKA_VERIFY is false is CKR_KEY_FUNCTION_NOT_PERMITTED.
// - Private objects are invisible without a user login: searches skip them, and their handles
//   die at C_Logout even if the user logs in again (§5.6.8), so using such a handle is
//   CKR_OBJECT_HANDLE_INVALID / CKR_KEY_HANDLE_INVALID. CKR_USER_NOT_LOGGED_IN is for creating
//   private objects without a login (§5.1.6's own example) and for generating a private key.
// - C_Digest*, C_Sign* and C_Verify* end their operation on every error but
//   CKR_BUFFER_TOO_SMALL (§5.10-§5.12 "always terminates"), CKR_ARGUMENTS_BAD included.
// - A template attribute the spec defines for other classes but not the object's (CKA_MODULUS
//   on a data object) is CKR_TEMPLATE_INCONSISTENT (§4.1.1 item 7's own example); a type
//   neither the spec nor the vendor defines is CKR_ATTRIBUTE_TYPE_INVALID (§4.1.1 item 3).
#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/cryptoki/module.hpp>

#include "support/cryptoki_table.hpp"
#include "support/token_fixture.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

// The Module keeps one token per Provider type: this file's own, over a RamNvm that outlives
// C_Finalize.
struct NegativeProvider {
    using token_type = SoftToken<RamNvm<>, GetrandomEntropy, TestConfig>;
    static inline std::unique_ptr<RamNvm<>> store;

    static Result<token_type*> open() {
        if (!store) store = std::make_unique<RamNvm<>>();
        auto t = std::make_unique<token_type>(*store, GetrandomEntropy{});
        if (auto r = t->load(); !r) return fail(r.error());
        return t.release();
    }
    static void close(token_type* t) noexcept {
        *store = t->nvm();
        delete t;
    }
    static void wipe() { store = std::make_unique<RamNvm<>>(); }
};

using NegativeModule = cryptoki::Module<NegativeProvider>;

constexpr CK_SLOT_ID slot = cryptoki::slot_id;
constexpr CK_SLOT_ID bad_slot = cryptoki::slot_id + 7;
// Index 17 is a real session slot; generation 0x7E5A is never reached in a test.
constexpr CK_SESSION_HANDLE never_issued = (CK_SESSION_HANDLE{0x7E5A} << 16) | 17;
constexpr CK_ATTRIBUTE_TYPE undefined_attribute = CKA_VENDOR_DEFINED | 0x5A5A;
constexpr std::size_t ecdsa_p256_len = 64;
constexpr std::size_t sha256_len = 32;

CK_UTF8CHAR* utf8(std::string_view s) { return reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(s.data())); }
CK_ULONG ulen(std::string_view s) { return static_cast<CK_ULONG>(s.size()); }

const std::string message = "negative paths: the data to sign and digest";
CK_BYTE* msg() { return reinterpret_cast<CK_BYTE*>(const_cast<char*>(message.data())); }
CK_ULONG msg_len() { return static_cast<CK_ULONG>(message.size()); }
Bytes msg_bytes() { return to_bytes(message); }

CK_MECHANISM mech(CK_MECHANISM_TYPE t) { return {t, nullptr, 0}; }

/// Everything a row may refer to: the function list, the handles the state created, and
/// output buffers that outlive the call so `post` can inspect them.
struct Ctx {
    CK_FUNCTION_LIST* f = NegativeModule::function_list();
    EntryLog log;
    CK_SESSION_HANDLE rw = 0, ro = 0, closed = 0;
    CK_OBJECT_HANDLE pub = 0, priv = 0, data = 0, destroyed = 0;
    CK_OBJECT_HANDLE extra = 0, extra2 = 0;
    std::array<CK_UTF8CHAR, 32> label{};
    std::array<unsigned char, 512> out{};
    CK_ULONG out_len = 0;
    CK_ULONG count = 0;
    std::array<CK_OBJECT_HANDLE, 8> found{};
    std::array<CK_ATTRIBUTE, 4> attrs{};
    std::array<std::array<unsigned char, 128>, 4> values{};
    CK_ULONG ul = 0;
    CK_INFO info{};
    CK_SLOT_INFO slot_info{};
    CK_TOKEN_INFO token_info{};
    CK_SESSION_INFO session_info{};
    CK_MECHANISM_INFO mech_info{};
    CK_FUNCTION_LIST* list = nullptr;
    CK_SLOT_ID event_slot = 0;

    Ctx() {
        auto l = token_label("negative paths");
        std::memcpy(label.data(), l.data(), label.size());
    }
    ~Ctx() { (void)f->C_Finalize(nullptr); }
    Ctx(const Ctx&) = delete;
    Ctx& operator=(const Ctx&) = delete;
};

// Calls a list entry and records that the row went through it.
#define CALL(fn) (c.log.use(offsetof(CK_FUNCTION_LIST, fn)), c.f->fn)

// --- the states a row starts from ------------------------------------------------------------

enum class State {
    never_initialized,  ///< C_Initialize not called (or undone by C_Finalize before the row)
    finalized,          ///< the `user` state, then C_Finalize; its handles are stale
    blank,              ///< initialized over a blank store: token not initialized, no session
    public_session,     ///< token and user PIN set, keys made; R/W `rw` and R/O `ro` open; no login
    user,               ///< `public_session` with the user logged in
    so,                 ///< token set up, only `rw` open, the SO logged in
};

CK_OBJECT_HANDLE create_data(Ctx& c, CK_SESSION_HANDLE s, std::string_view label, bool token, bool priv = false,
                             bool modifiable = true, bool destroyable = true) {
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE, pr = priv ? CK_TRUE : CK_FALSE;
    CK_BBOOL mod = modifiable ? CK_TRUE : CK_FALSE, des = destroyable ? CK_TRUE : CK_FALSE;
    Bytes lab = to_bytes(label), value = to_bytes("value");
    CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_TOKEN, tok),      attr(CKA_PRIVATE, pr), attr(CKA_LABEL, lab),
                        attr(CKA_VALUE, value), attr(CKA_MODIFIABLE, mod), attr(CKA_DESTROYABLE, des)};
    CK_OBJECT_HANDLE h = 0;
    REQUIRE(ckr_name(c.f->C_CreateObject(s, t, 7, &h)) == "CKR_OK");
    return h;
}

struct KeyHandles {
    CK_OBJECT_HANDLE pub = 0, priv = 0;
};

/// An EC P-256 pair; the private key is CKA_PRIVATE (the default).
KeyHandles generate_keys(Ctx& c, CK_SESSION_HANDLE s, std::string_view label, bool token, bool usable = true) {
    CK_MECHANISM m = mech(CKM_EC_KEY_PAIR_GEN);
    Bytes params = p256_params(), lab = to_bytes(label);
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE, use = usable ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params), attr(CKA_TOKEN, tok), attr(CKA_LABEL, lab), attr(CKA_VERIFY, use)};
    CK_ATTRIBUTE priv[] = {attr(CKA_TOKEN, tok), attr(CKA_LABEL, lab), attr(CKA_SIGN, use)};
    KeyHandles k;
    REQUIRE(ckr_name(c.f->C_GenerateKeyPair(s, &m, pub, 4, priv, 3, &k.pub, &k.priv)) == "CKR_OK");
    return k;
}

void login(Ctx& c, CK_SESSION_HANDLE s, CK_USER_TYPE who) {
    const std::string_view p = who == CKU_SO ? so_pin : user_pin;
    REQUIRE(ckr_name(c.f->C_Login(s, who, utf8(p), ulen(p))) == "CKR_OK");
}

void logout(Ctx& c, CK_SESSION_HANDLE s) { REQUIRE(ckr_name(c.f->C_Logout(s)) == "CKR_OK"); }

CK_SESSION_HANDLE open(Ctx& c, bool rw) {
    CK_SESSION_HANDLE s = 0;
    REQUIRE(ckr_name(c.f->C_OpenSession(slot, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), nullptr, nullptr, &s)) ==
            "CKR_OK");
    return s;
}

void enter(Ctx& c, State st) {
    (void)c.f->C_Finalize(nullptr);  // a row before may have left it initialized
    if (st == State::never_initialized) return;
    NegativeProvider::wipe();
    REQUIRE(ckr_name(c.f->C_Initialize(nullptr)) == "CKR_OK");
    if (st == State::blank) return;
    REQUIRE(ckr_name(c.f->C_InitToken(slot, utf8(so_pin), ulen(so_pin), c.label.data())) == "CKR_OK");
    c.rw = open(c, true);
    login(c, c.rw, CKU_SO);
    REQUIRE(ckr_name(c.f->C_InitPIN(c.rw, utf8(user_pin), ulen(user_pin))) == "CKR_OK");
    logout(c, c.rw);
    login(c, c.rw, CKU_USER);
    const KeyHandles k = generate_keys(c, c.rw, "negative key", true);
    c.pub = k.pub;
    c.priv = k.priv;
    c.data = create_data(c, c.rw, "negative data", true);
    c.destroyed = create_data(c, c.rw, "destroyed", true);
    REQUIRE(ckr_name(c.f->C_DestroyObject(c.rw, c.destroyed)) == "CKR_OK");
    c.closed = open(c, false);
    REQUIRE(ckr_name(c.f->C_CloseSession(c.closed)) == "CKR_OK");
    if (st == State::so) {
        logout(c, c.rw);
        login(c, c.rw, CKU_SO);
        return;
    }
    c.ro = open(c, false);
    if (st == State::public_session) logout(c, c.rw);
    if (st == State::finalized) REQUIRE(ckr_name(c.f->C_Finalize(nullptr)) == "CKR_OK");
}

// --- row helpers used by prep and post steps ---------------------------------------------------

void sign_init(Ctx& c, CK_SESSION_HANDLE s) {
    CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
    REQUIRE(ckr_name(c.f->C_SignInit(s, &m, c.priv)) == "CKR_OK");
}
void verify_init(Ctx& c, CK_SESSION_HANDLE s) {
    CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
    REQUIRE(ckr_name(c.f->C_VerifyInit(s, &m, c.pub)) == "CKR_OK");
}
void digest_init(Ctx& c, CK_SESSION_HANDLE s) {
    CK_MECHANISM m = mech(CKM_SHA256);
    REQUIRE(ckr_name(c.f->C_DigestInit(s, &m)) == "CKR_OK");
}

Bytes ec_point(Ctx& c, CK_OBJECT_HANDLE pub) {
    Bytes v(128);
    CK_ATTRIBUTE a{CKA_EC_POINT, v.data(), static_cast<CK_ULONG>(v.size())};
    REQUIRE(ckr_name(c.f->C_GetAttributeValue(c.rw, pub, &a, 1)) == "CKR_OK");
    v.resize(a.ulValueLen);
    return v;
}

/// The signature in c.out (c.out_len bytes) verifies over `message` with c.pub, checked by
/// plain mbedTLS.
void check_signature(Ctx& c) {
    REQUIRE(c.out_len == ecdsa_p256_len);
    const Bytes sig(c.out.begin(), c.out.begin() + static_cast<std::ptrdiff_t>(c.out_len));
    CHECK(mbed_ecdsa_verify(MBEDTLS_ECP_DP_SECP256R1, ec_point(c, c.pub), hash(MBEDTLS_MD_SHA256, msg_bytes()), sig));
}

/// A fresh signature over `message` by c.priv.
Bytes signature(Ctx& c) {
    sign_init(c, c.rw);
    Bytes sig(ecdsa_p256_len);
    CK_ULONG n = static_cast<CK_ULONG>(sig.size());
    REQUIRE(ckr_name(c.f->C_Sign(c.rw, msg(), msg_len(), sig.data(), &n)) == "CKR_OK");
    return sig;
}

/// c.out holds SHA-256(message).
void check_digest(Ctx& c) {
    REQUIRE(c.out_len == sha256_len);
    CHECK(Bytes(c.out.begin(), c.out.begin() + sha256_len) == hash(MBEDTLS_MD_SHA256, msg_bytes()));
}

std::size_t count_by_label(Ctx& c, CK_SESSION_HANDLE s, std::string_view label) {
    Bytes lab = to_bytes(label);
    CK_ATTRIBUTE t = attr(CKA_LABEL, lab);
    REQUIRE(ckr_name(c.f->C_FindObjectsInit(s, &t, 1)) == "CKR_OK");
    CK_OBJECT_HANDLE h[8];
    CK_ULONG n = 0;
    REQUIRE(ckr_name(c.f->C_FindObjects(s, h, 8, &n)) == "CKR_OK");
    REQUIRE(ckr_name(c.f->C_FindObjectsFinal(s)) == "CKR_OK");
    return n;
}

std::string label_of(Ctx& c, CK_OBJECT_HANDLE o) {
    char v[64];
    CK_ATTRIBUTE a{CKA_LABEL, v, sizeof v};
    REQUIRE(ckr_name(c.f->C_GetAttributeValue(c.rw, o, &a, 1)) == "CKR_OK");
    return std::string(v, a.ulValueLen);
}

void check_no_search(Ctx& c, CK_SESSION_HANDLE s) {
    CK_ULONG n = 0;
    CHECK(ckr_name(c.f->C_FindObjects(s, c.found.data(), 1, &n)) == "CKR_OPERATION_NOT_INITIALIZED");
}
void check_no_sign(Ctx& c) {
    CK_ULONG n = static_cast<CK_ULONG>(c.out.size());
    CHECK(ckr_name(c.f->C_Sign(c.rw, msg(), msg_len(), c.out.data(), &n)) == "CKR_OPERATION_NOT_INITIALIZED");
}
void check_no_verify(Ctx& c) {
    Bytes sig(ecdsa_p256_len);
    CHECK(ckr_name(c.f->C_Verify(c.rw, msg(), msg_len(), sig.data(), ecdsa_p256_len)) == "CKR_OPERATION_NOT_INITIALIZED");
}
void check_no_digest(Ctx& c) {
    CK_ULONG n = static_cast<CK_ULONG>(c.out.size());
    CHECK(ckr_name(c.f->C_Digest(c.rw, msg(), msg_len(), c.out.data(), &n)) == "CKR_OPERATION_NOT_INITIALIZED");
}

// --- the table -----------------------------------------------------------------------------

/// The case kinds (table columns). Not every kind applies to every function.
enum class Case {
    not_initialized,
    finalized,
    init_args,
    null_pointer,
    session_zero,
    session_never_issued,
    session_closed,
    session_after_close_all,
    slot_invalid,
    object_handle,
    read_only,
    operation_not_initialized,
    operation_active,
    output_length,
    mechanism,
    login_state,
    private_objects,
    template_error,
    not_offered,
};
constexpr std::size_t case_kinds = static_cast<std::size_t>(Case::not_offered) + 1;

struct Row {
    ListEntry fn;
    Case kind;
    std::string name;
    std::string spec;
    State state;
    std::function<void(Ctx&)> prep;
    std::function<CK_RV(Ctx&)> call;
    CK_RV expected;
    std::function<void(Ctx&)> post;
};

#define ENTRY(fn) P11TLS_TEST_ENTRY(fn)

// What an entry is, for the generated columns.
enum class Kind {
    entry,    ///< C_Initialize, C_GetFunctionList: usable before C_Initialize
    library,  ///< no slot, no session
    slot,     ///< takes a slot id
    session,  ///< takes a session handle; implemented
    stub,     ///< not offered: CKR_FUNCTION_NOT_SUPPORTED (§5)
    legacy,   ///< C_GetFunctionStatus, C_CancelFunction: CKR_FUNCTION_NOT_PARALLEL (§5.16)
};

/// One plausible call per entry, valid but for the session handle `s` and the library state.
struct Probe {
    ListEntry fn;
    Kind kind;
    const char* spec;
    CK_RV (*call)(Ctx&, CK_SESSION_HANDLE);
};

CK_RV probe_create(Ctx& c, CK_SESSION_HANDLE s) {
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls)};
    return CALL(C_CreateObject)(s, t, 1, &c.extra);
}
CK_RV probe_generate(Ctx& c, CK_SESSION_HANDLE s) {
    CK_MECHANISM m = mech(CKM_EC_KEY_PAIR_GEN);
    Bytes params = p256_params();
    CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params)};
    return CALL(C_GenerateKeyPair)(s, &m, pub, 1, nullptr, 0, &c.extra, &c.extra2);
}

const std::vector<Probe>& probes() {
    using C = Ctx;
    using H = CK_SESSION_HANDLE;
    static const std::vector<Probe> p = {
        {ENTRY(C_Initialize), Kind::entry, "§5.4.1", [](C& c, H) { return CALL(C_Initialize)(nullptr); }},
        {ENTRY(C_Finalize), Kind::library, "§5.4.2", [](C& c, H) { return CALL(C_Finalize)(nullptr); }},
        {ENTRY(C_GetInfo), Kind::library, "§5.4.3", [](C& c, H) { return CALL(C_GetInfo)(&c.info); }},
        {ENTRY(C_GetFunctionList), Kind::entry, "§5.4.4", [](C& c, H) { return CALL(C_GetFunctionList)(&c.list); }},
        {ENTRY(C_GetSlotList), Kind::slot, "§5.5.1", [](C& c, H) { return CALL(C_GetSlotList)(CK_TRUE, nullptr, &c.count); }},
        {ENTRY(C_GetSlotInfo), Kind::slot, "§5.5.2", [](C& c, H) { return CALL(C_GetSlotInfo)(slot, &c.slot_info); }},
        {ENTRY(C_GetTokenInfo), Kind::slot, "§5.5.3", [](C& c, H) { return CALL(C_GetTokenInfo)(slot, &c.token_info); }},
        {ENTRY(C_WaitForSlotEvent), Kind::stub, "§5.5.4",
         [](C& c, H) { return CALL(C_WaitForSlotEvent)(CKF_DONT_BLOCK, &c.event_slot, nullptr); }},
        {ENTRY(C_GetMechanismList), Kind::slot, "§5.5.5",
         [](C& c, H) { return CALL(C_GetMechanismList)(slot, nullptr, &c.count); }},
        {ENTRY(C_GetMechanismInfo), Kind::slot, "§5.5.6",
         [](C& c, H) { return CALL(C_GetMechanismInfo)(slot, CKM_ECDSA, &c.mech_info); }},
        {ENTRY(C_InitToken), Kind::slot, "§5.5.7",
         [](C& c, H) { return CALL(C_InitToken)(slot, utf8(so_pin), ulen(so_pin), c.label.data()); }},
        {ENTRY(C_InitPIN), Kind::session, "§5.5.8",
         [](C& c, H s) { return CALL(C_InitPIN)(s, utf8(user_pin), ulen(user_pin)); }},
        {ENTRY(C_SetPIN), Kind::session, "§5.5.9",
         [](C& c, H s) { return CALL(C_SetPIN)(s, utf8(user_pin), ulen(user_pin), utf8(user_pin), ulen(user_pin)); }},
        {ENTRY(C_OpenSession), Kind::slot, "§5.6.1",
         [](C& c, H) { return CALL(C_OpenSession)(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &c.extra); }},
        {ENTRY(C_CloseSession), Kind::session, "§5.6.2", [](C& c, H s) { return CALL(C_CloseSession)(s); }},
        {ENTRY(C_CloseAllSessions), Kind::slot, "§5.6.3", [](C& c, H) { return CALL(C_CloseAllSessions)(slot); }},
        {ENTRY(C_GetSessionInfo), Kind::session, "§5.6.4",
         [](C& c, H s) { return CALL(C_GetSessionInfo)(s, &c.session_info); }},
        {ENTRY(C_GetOperationState), Kind::stub, "§5.6.5", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_GetOperationState)(s, c.out.data(), &c.out_len);
         }},
        {ENTRY(C_SetOperationState), Kind::stub, "§5.6.6",
         [](C& c, H s) { return CALL(C_SetOperationState)(s, c.out.data(), 16, 0, 0); }},
        {ENTRY(C_Login), Kind::session, "§5.6.7",
         [](C& c, H s) { return CALL(C_Login)(s, CKU_USER, utf8(user_pin), ulen(user_pin)); }},
        {ENTRY(C_Logout), Kind::session, "§5.6.8", [](C& c, H s) { return CALL(C_Logout)(s); }},
        {ENTRY(C_CreateObject), Kind::session, "§5.7.1", probe_create},
        {ENTRY(C_CopyObject), Kind::stub, "§5.7.2",
         [](C& c, H s) { return CALL(C_CopyObject)(s, c.data, nullptr, 0, &c.extra); }},
        {ENTRY(C_DestroyObject), Kind::session, "§5.7.3", [](C& c, H s) { return CALL(C_DestroyObject)(s, c.data); }},
        {ENTRY(C_GetObjectSize), Kind::stub, "§5.7.4", [](C& c, H s) { return CALL(C_GetObjectSize)(s, c.data, &c.ul); }},
        {ENTRY(C_GetAttributeValue), Kind::session, "§5.7.5", [](C& c, H s) {
             c.attrs[0] = {CKA_LABEL, c.values[0].data(), static_cast<CK_ULONG>(c.values[0].size())};
             return CALL(C_GetAttributeValue)(s, c.data, c.attrs.data(), 1);
         }},
        {ENTRY(C_SetAttributeValue), Kind::session, "§5.7.6", [](C& c, H s) {
             Bytes lab = to_bytes("renamed");
             CK_ATTRIBUTE a = attr(CKA_LABEL, lab);
             return CALL(C_SetAttributeValue)(s, c.data, &a, 1);
         }},
        {ENTRY(C_FindObjectsInit), Kind::session, "§5.7.7",
         [](C& c, H s) { return CALL(C_FindObjectsInit)(s, nullptr, 0); }},
        {ENTRY(C_FindObjects), Kind::session, "§5.7.8", [](C& c, H s) {
             return CALL(C_FindObjects)(s, c.found.data(), static_cast<CK_ULONG>(c.found.size()), &c.count);
         }},
        {ENTRY(C_FindObjectsFinal), Kind::session, "§5.7.9", [](C& c, H s) { return CALL(C_FindObjectsFinal)(s); }},
        {ENTRY(C_EncryptInit), Kind::stub, "§5.8.1", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_RSA_PKCS);
             return CALL(C_EncryptInit)(s, &m, c.pub);
         }},
        {ENTRY(C_Encrypt), Kind::stub, "§5.8.2", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_Encrypt)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_EncryptUpdate), Kind::stub, "§5.8.3", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_EncryptUpdate)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_EncryptFinal), Kind::stub, "§5.8.4", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_EncryptFinal)(s, c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DecryptInit), Kind::stub, "§5.9.1", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_RSA_PKCS);
             return CALL(C_DecryptInit)(s, &m, c.priv);
         }},
        {ENTRY(C_Decrypt), Kind::stub, "§5.9.2", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_Decrypt)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DecryptUpdate), Kind::stub, "§5.9.3", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_DecryptUpdate)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DecryptFinal), Kind::stub, "§5.9.4", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_DecryptFinal)(s, c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DigestInit), Kind::session, "§5.10.1", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_SHA256);
             return CALL(C_DigestInit)(s, &m);
         }},
        {ENTRY(C_Digest), Kind::session, "§5.10.2", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_Digest)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DigestUpdate), Kind::session, "§5.10.3",
         [](C& c, H s) { return CALL(C_DigestUpdate)(s, msg(), msg_len()); }},
        {ENTRY(C_DigestKey), Kind::stub, "§5.10.4", [](C& c, H s) { return CALL(C_DigestKey)(s, c.pub); }},
        {ENTRY(C_DigestFinal), Kind::session, "§5.10.5", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_DigestFinal)(s, c.out.data(), &c.out_len);
         }},
        {ENTRY(C_SignInit), Kind::session, "§5.11.1", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
             return CALL(C_SignInit)(s, &m, c.priv);
         }},
        {ENTRY(C_Sign), Kind::session, "§5.11.2", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_Sign)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_SignUpdate), Kind::session, "§5.11.3", [](C& c, H s) { return CALL(C_SignUpdate)(s, msg(), msg_len()); }},
        {ENTRY(C_SignFinal), Kind::session, "§5.11.4", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_SignFinal)(s, c.out.data(), &c.out_len);
         }},
        {ENTRY(C_SignRecoverInit), Kind::stub, "§5.11.5", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_RSA_PKCS);
             return CALL(C_SignRecoverInit)(s, &m, c.priv);
         }},
        {ENTRY(C_SignRecover), Kind::stub, "§5.11.6", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_SignRecover)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_VerifyInit), Kind::session, "§5.12.1", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
             return CALL(C_VerifyInit)(s, &m, c.pub);
         }},
        {ENTRY(C_Verify), Kind::session, "§5.12.2",
         [](C& c, H s) { return CALL(C_Verify)(s, msg(), msg_len(), c.out.data(), ecdsa_p256_len); }},
        {ENTRY(C_VerifyUpdate), Kind::session, "§5.12.3",
         [](C& c, H s) { return CALL(C_VerifyUpdate)(s, msg(), msg_len()); }},
        {ENTRY(C_VerifyFinal), Kind::session, "§5.12.4",
         [](C& c, H s) { return CALL(C_VerifyFinal)(s, c.out.data(), ecdsa_p256_len); }},
        {ENTRY(C_VerifyRecoverInit), Kind::stub, "§5.12.5", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_RSA_PKCS);
             return CALL(C_VerifyRecoverInit)(s, &m, c.pub);
         }},
        {ENTRY(C_VerifyRecover), Kind::stub, "§5.12.6", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_VerifyRecover)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DigestEncryptUpdate), Kind::stub, "§5.13.1", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_DigestEncryptUpdate)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DecryptDigestUpdate), Kind::stub, "§5.13.2", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_DecryptDigestUpdate)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_SignEncryptUpdate), Kind::stub, "§5.13.3", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_SignEncryptUpdate)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_DecryptVerifyUpdate), Kind::stub, "§5.13.4", [](C& c, H s) {
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_DecryptVerifyUpdate)(s, msg(), msg_len(), c.out.data(), &c.out_len);
         }},
        {ENTRY(C_GenerateKey), Kind::stub, "§5.14.1", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_AES_KEY_GEN);
             return CALL(C_GenerateKey)(s, &m, nullptr, 0, &c.extra);
         }},
        {ENTRY(C_GenerateKeyPair), Kind::session, "§5.14.2", probe_generate},
        {ENTRY(C_WrapKey), Kind::stub, "§5.14.3", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_RSA_PKCS);
             c.out_len = static_cast<CK_ULONG>(c.out.size());
             return CALL(C_WrapKey)(s, &m, c.pub, c.priv, c.out.data(), &c.out_len);
         }},
        {ENTRY(C_UnwrapKey), Kind::stub, "§5.14.4", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_RSA_PKCS);
             return CALL(C_UnwrapKey)(s, &m, c.priv, c.out.data(), 16, nullptr, 0, &c.extra);
         }},
        {ENTRY(C_DeriveKey), Kind::stub, "§5.14.5", [](C& c, H s) {
             CK_MECHANISM m = mech(CKM_ECDH1_DERIVE);
             return CALL(C_DeriveKey)(s, &m, c.priv, nullptr, 0, &c.extra);
         }},
        {ENTRY(C_SeedRandom), Kind::session, "§5.15.1", [](C& c, H s) { return CALL(C_SeedRandom)(s, c.out.data(), 8); }},
        {ENTRY(C_GenerateRandom), Kind::session, "§5.15.2",
         [](C& c, H s) { return CALL(C_GenerateRandom)(s, c.out.data(), 16); }},
        {ENTRY(C_GetFunctionStatus), Kind::legacy, "§5.16.1", [](C& c, H s) { return CALL(C_GetFunctionStatus)(s); }},
        {ENTRY(C_CancelFunction), Kind::legacy, "§5.16.2", [](C& c, H s) { return CALL(C_CancelFunction)(s); }},
    };
    return p;
}

/// The columns every entry of a kind shares: library state, session handles, stubs.
void generated_rows(std::vector<Row>& rows) {
    for (const Probe& p : probes()) {
        const std::string spec = p.spec;
        auto with = [call = p.call](CK_SESSION_HANDLE Ctx::*s) {
            return [call, s](Ctx& c) { return call(c, c.*s); };
        };
        if (p.kind == Kind::entry) {
            if (std::strcmp(p.fn.name, "C_GetFunctionList") == 0) {
                auto same_list = [](Ctx& c) { CHECK(c.list == c.f); };
                rows.push_back({p.fn, Case::not_initialized, "works before C_Initialize", spec, State::never_initialized, {},
                                with(&Ctx::rw), CKR_OK, same_list});
                rows.push_back({p.fn, Case::finalized, "works after C_Finalize", spec, State::finalized, {}, with(&Ctx::rw),
                                CKR_OK, same_list});
            }
            continue;  // C_Initialize's rows are written out below
        }
        rows.push_back({p.fn, Case::not_initialized, "before C_Initialize", "§5.1.6; " + spec, State::never_initialized,
                        {}, with(&Ctx::rw), CKR_CRYPTOKI_NOT_INITIALIZED, {}});
        rows.push_back({p.fn, Case::finalized, "after C_Finalize", "§5.1.6; " + spec, State::finalized, {},
                        with(&Ctx::rw), CKR_CRYPTOKI_NOT_INITIALIZED, {}});
        if (p.kind == Kind::session) {
            const std::string s = "§5.1.2; " + spec;
            rows.push_back({p.fn, Case::session_zero, "session handle CK_INVALID_HANDLE", s, State::user, {},
                            [call = p.call](Ctx& c) { return call(c, CK_INVALID_HANDLE); }, CKR_SESSION_HANDLE_INVALID, {}});
            rows.push_back({p.fn, Case::session_never_issued, "session handle never issued", s, State::user, {},
                            [call = p.call](Ctx& c) { return call(c, never_issued); }, CKR_SESSION_HANDLE_INVALID, {}});
            rows.push_back({p.fn, Case::session_closed, "closed session handle", s + "; §5.6.2", State::user, {},
                            with(&Ctx::closed), CKR_SESSION_HANDLE_INVALID, {}});
            rows.push_back({p.fn, Case::session_after_close_all, "session handle after C_CloseAllSessions",
                            s + "; §5.6.3", State::user,
                            [](Ctx& c) { REQUIRE(ckr_name(c.f->C_CloseAllSessions(slot)) == "CKR_OK"); },
                            with(&Ctx::rw), CKR_SESSION_HANDLE_INVALID, {}});
        }
        if (p.kind == Kind::stub)
            rows.push_back({p.fn, Case::not_offered, "not offered: stub", "§5 (stubs); " + spec, State::user, {},
                            with(&Ctx::rw), CKR_FUNCTION_NOT_SUPPORTED, {}});
        if (p.kind == Kind::legacy)
            rows.push_back({p.fn, Case::not_offered, "legacy: never parallel", spec, State::user, {}, with(&Ctx::rw),
                            CKR_FUNCTION_NOT_PARALLEL, {}});
    }
}

CK_RV mutex_create(CK_VOID_PTR_PTR m) {
    *m = nullptr;
    return CKR_OK;
}
CK_RV mutex_op(CK_VOID_PTR) { return CKR_OK; }

void check_not_initialized(Ctx& c) { CHECK(ckr_name(c.f->C_GetInfo(&c.info)) == "CKR_CRYPTOKI_NOT_INITIALIZED"); }
void check_rw_session_alive(Ctx& c) { CHECK(ckr_name(c.f->C_GetSessionInfo(c.rw, &c.session_info)) == "CKR_OK"); }

/// Rows for one function and case each, written out.
void written_rows(std::vector<Row>& rows) {
    const auto add = [&](ListEntry fn, Case kind, std::string name, std::string spec, State st,
                         std::function<void(Ctx&)> prep, std::function<CK_RV(Ctx&)> call, CK_RV expected,
                         std::function<void(Ctx&)> post = {}) {
        rows.push_back({fn, kind, std::move(name), std::move(spec), st, std::move(prep), std::move(call), expected,
                        std::move(post)});
    };
    const std::function<void(Ctx&)> none;

    // --- library state and C_Initialize arguments (§5.4.1, §5.4.2) ---
    add(ENTRY(C_Initialize), Case::init_args, "second C_Initialize", "§5.4.1", State::blank, none,
        [](Ctx& c) { return CALL(C_Initialize)(nullptr); }, CKR_CRYPTOKI_ALREADY_INITIALIZED);
    add(ENTRY(C_Initialize), Case::init_args, "three of the four mutex callbacks", "§5.4.1 (CK_C_INITIALIZE_ARGS)",
        State::never_initialized, none,
        [](Ctx& c) {
            CK_C_INITIALIZE_ARGS a{&mutex_create, nullptr, &mutex_op, &mutex_op, CKF_OS_LOCKING_OK, nullptr};
            return CALL(C_Initialize)(&a);
        },
        CKR_ARGUMENTS_BAD, check_not_initialized);
    add(ENTRY(C_Initialize), Case::init_args, "pReserved set in CK_C_INITIALIZE_ARGS", "§5.4.1 (CK_C_INITIALIZE_ARGS)",
        State::never_initialized, none,
        [](Ctx& c) {
            CK_C_INITIALIZE_ARGS a{nullptr, nullptr, nullptr, nullptr, CKF_OS_LOCKING_OK, &c.ul};
            return CALL(C_Initialize)(&a);
        },
        CKR_ARGUMENTS_BAD, check_not_initialized);
    add(ENTRY(C_Initialize), Case::finalized, "again after C_Finalize; old sessions are gone", "§5.4.1; §5.4.2",
        State::finalized, none, [](Ctx& c) { return CALL(C_Initialize)(nullptr); }, CKR_OK,
        [](Ctx& c) { CHECK(ckr_name(c.f->C_GetSessionInfo(c.rw, &c.session_info)) == "CKR_SESSION_HANDLE_INVALID"); });
    add(ENTRY(C_Finalize), Case::init_args, "pReserved not NULL", "§5.4.2", State::user, none,
        [](Ctx& c) { return CALL(C_Finalize)(&c.ul); }, CKR_ARGUMENTS_BAD, check_rw_session_alive);

    // --- NULL pointers: CKR_ARGUMENTS_BAD (§5.1.6) ---
    const auto null_row = [&](ListEntry fn, std::string what, std::string spec, State st, std::function<void(Ctx&)> prep,
                              std::function<CK_RV(Ctx&)> call, std::function<void(Ctx&)> post = {}) {
        add(fn, Case::null_pointer, "NULL " + what, "§5.1.6 CKR_ARGUMENTS_BAD; " + spec, st, std::move(prep),
            std::move(call), CKR_ARGUMENTS_BAD, std::move(post));
    };
    null_row(ENTRY(C_GetFunctionList), "ppFunctionList", "§5.4.4", State::never_initialized, none,
             [](Ctx& c) { return CALL(C_GetFunctionList)(nullptr); });
    null_row(ENTRY(C_GetInfo), "pInfo", "§5.4.3", State::user, none, [](Ctx& c) { return CALL(C_GetInfo)(nullptr); });
    null_row(ENTRY(C_GetSlotList), "pulCount", "§5.5.1", State::user, none,
             [](Ctx& c) { return CALL(C_GetSlotList)(CK_TRUE, nullptr, nullptr); });
    null_row(ENTRY(C_GetSlotInfo), "pInfo", "§5.5.2", State::user, none,
             [](Ctx& c) { return CALL(C_GetSlotInfo)(slot, nullptr); });
    null_row(ENTRY(C_GetTokenInfo), "pInfo", "§5.5.3", State::user, none,
             [](Ctx& c) { return CALL(C_GetTokenInfo)(slot, nullptr); });
    null_row(ENTRY(C_GetMechanismList), "pulCount", "§5.5.5", State::user, none,
             [](Ctx& c) { return CALL(C_GetMechanismList)(slot, nullptr, nullptr); });
    null_row(ENTRY(C_GetMechanismInfo), "pInfo", "§5.5.6", State::user, none,
             [](Ctx& c) { return CALL(C_GetMechanismInfo)(slot, CKM_ECDSA, nullptr); });
    null_row(ENTRY(C_InitToken), "pLabel", "§5.5.7", State::blank, none,
             [](Ctx& c) { return CALL(C_InitToken)(slot, utf8(so_pin), ulen(so_pin), nullptr); },
             [](Ctx& c) {
                 REQUIRE(ckr_name(c.f->C_GetTokenInfo(slot, &c.token_info)) == "CKR_OK");
                 CHECK_FALSE(c.token_info.flags & CKF_TOKEN_INITIALIZED);
             });
    null_row(ENTRY(C_InitPIN), "pPin with ulPinLen 8", "§5.5.8", State::so, none,
             [](Ctx& c) { return CALL(C_InitPIN)(c.rw, nullptr, 8); });
    null_row(ENTRY(C_SetPIN), "pOldPin with ulOldLen 8", "§5.5.9", State::user, none,
             [](Ctx& c) { return CALL(C_SetPIN)(c.rw, nullptr, 8, utf8(user_pin), ulen(user_pin)); });
    null_row(ENTRY(C_OpenSession), "phSession", "§5.6.1", State::user, none,
             [](Ctx& c) { return CALL(C_OpenSession)(slot, CKF_SERIAL_SESSION, nullptr, nullptr, nullptr); });
    null_row(ENTRY(C_GetSessionInfo), "pInfo", "§5.6.4", State::user, none,
             [](Ctx& c) { return CALL(C_GetSessionInfo)(c.rw, nullptr); });
    null_row(ENTRY(C_Login), "pPin with ulPinLen 8", "§5.6.7", State::public_session, none,
             [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_USER, nullptr, 8); });
    null_row(ENTRY(C_CreateObject), "pTemplate with ulCount 2", "§5.7.1", State::user, none,
             [](Ctx& c) { return CALL(C_CreateObject)(c.rw, nullptr, 2, &c.extra); });
    null_row(ENTRY(C_CreateObject), "phObject; nothing is created", "§5.7.1", State::user, none,
             [](Ctx& c) {
                 CK_OBJECT_CLASS cls = CKO_DATA;
                 Bytes lab = to_bytes("orphan");
                 CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_LABEL, lab)};
                 return CALL(C_CreateObject)(c.rw, t, 2, nullptr);
             },
             [](Ctx& c) { CHECK(count_by_label(c, c.rw, "orphan") == 0); });
    null_row(ENTRY(C_GetAttributeValue), "pTemplate with ulCount 1", "§5.7.5", State::user, none,
             [](Ctx& c) { return CALL(C_GetAttributeValue)(c.rw, c.pub, nullptr, 1); });
    null_row(ENTRY(C_SetAttributeValue), "pTemplate with ulCount 1", "§5.7.6", State::user, none,
             [](Ctx& c) { return CALL(C_SetAttributeValue)(c.rw, c.data, nullptr, 1); });
    null_row(ENTRY(C_FindObjectsInit), "pTemplate with ulCount 1; no search starts", "§5.7.7", State::user, none,
             [](Ctx& c) { return CALL(C_FindObjectsInit)(c.rw, nullptr, 1); },
             [](Ctx& c) { check_no_search(c, c.rw); });
    null_row(ENTRY(C_FindObjects), "pulObjectCount", "§5.7.8", State::user,
             [](Ctx& c) { REQUIRE(ckr_name(c.f->C_FindObjectsInit(c.rw, nullptr, 0)) == "CKR_OK"); },
             [](Ctx& c) { return CALL(C_FindObjects)(c.rw, c.found.data(), 4, nullptr); });
    null_row(ENTRY(C_FindObjects), "phObject", "§5.7.8", State::user,
             [](Ctx& c) { REQUIRE(ckr_name(c.f->C_FindObjectsInit(c.rw, nullptr, 0)) == "CKR_OK"); },
             [](Ctx& c) { return CALL(C_FindObjects)(c.rw, nullptr, 4, &c.count); });
    null_row(ENTRY(C_DigestInit), "pMechanism", "§5.10.1", State::user, none,
             [](Ctx& c) { return CALL(C_DigestInit)(c.rw, nullptr); });
    null_row(ENTRY(C_Digest), "pulDigestLen; the operation ends", "§5.10.2", State::user,
             [](Ctx& c) { digest_init(c, c.rw); },
             [](Ctx& c) { return CALL(C_Digest)(c.rw, msg(), msg_len(), c.out.data(), nullptr); }, check_no_digest);
    null_row(ENTRY(C_DigestUpdate), "pPart with ulPartLen 5; the operation ends", "§5.10.3", State::user,
             [](Ctx& c) { digest_init(c, c.rw); }, [](Ctx& c) { return CALL(C_DigestUpdate)(c.rw, nullptr, 5); },
             check_no_digest);
    null_row(ENTRY(C_DigestFinal), "pulDigestLen; the operation ends", "§5.10.5", State::user,
             [](Ctx& c) { digest_init(c, c.rw); },
             [](Ctx& c) { return CALL(C_DigestFinal)(c.rw, c.out.data(), nullptr); }, check_no_digest);
    null_row(ENTRY(C_SignInit), "pMechanism", "§5.11.1", State::user, none,
             [](Ctx& c) { return CALL(C_SignInit)(c.rw, nullptr, c.priv); });
    null_row(ENTRY(C_Sign), "pData with ulDataLen 5; the operation ends", "§5.11.2", State::user,
             [](Ctx& c) { sign_init(c, c.rw); },
             [](Ctx& c) {
                 c.out_len = static_cast<CK_ULONG>(c.out.size());
                 return CALL(C_Sign)(c.rw, nullptr, 5, c.out.data(), &c.out_len);
             },
             check_no_sign);
    null_row(ENTRY(C_Sign), "pulSignatureLen; the operation ends", "§5.11.2", State::user,
             [](Ctx& c) { sign_init(c, c.rw); },
             [](Ctx& c) { return CALL(C_Sign)(c.rw, msg(), msg_len(), c.out.data(), nullptr); }, check_no_sign);
    null_row(ENTRY(C_SignUpdate), "pPart with ulPartLen 5; the operation ends", "§5.11.3", State::user,
             [](Ctx& c) { sign_init(c, c.rw); }, [](Ctx& c) { return CALL(C_SignUpdate)(c.rw, nullptr, 5); },
             check_no_sign);
    null_row(ENTRY(C_SignFinal), "pulSignatureLen; the operation ends", "§5.11.4", State::user,
             [](Ctx& c) { sign_init(c, c.rw); },
             [](Ctx& c) { return CALL(C_SignFinal)(c.rw, c.out.data(), nullptr); }, check_no_sign);
    null_row(ENTRY(C_VerifyInit), "pMechanism", "§5.12.1", State::user, none,
             [](Ctx& c) { return CALL(C_VerifyInit)(c.rw, nullptr, c.pub); });
    null_row(ENTRY(C_Verify), "pSignature; the operation ends", "§5.12.2", State::user,
             [](Ctx& c) { verify_init(c, c.rw); },
             [](Ctx& c) { return CALL(C_Verify)(c.rw, msg(), msg_len(), nullptr, ecdsa_p256_len); }, check_no_verify);
    null_row(ENTRY(C_VerifyUpdate), "pPart with ulPartLen 5; the operation ends", "§5.12.3", State::user,
             [](Ctx& c) { verify_init(c, c.rw); }, [](Ctx& c) { return CALL(C_VerifyUpdate)(c.rw, nullptr, 5); },
             check_no_verify);
    null_row(ENTRY(C_VerifyFinal), "pSignature; the operation ends", "§5.12.4", State::user,
             [](Ctx& c) {
                 verify_init(c, c.rw);
                 REQUIRE(ckr_name(c.f->C_VerifyUpdate(c.rw, msg(), msg_len())) == "CKR_OK");
             },
             [](Ctx& c) { return CALL(C_VerifyFinal)(c.rw, nullptr, ecdsa_p256_len); }, check_no_verify);
    null_row(ENTRY(C_GenerateKeyPair), "pMechanism", "§5.14.2", State::user, none, [](Ctx& c) {
        Bytes params = p256_params();
        CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params)};
        return CALL(C_GenerateKeyPair)(c.rw, nullptr, pub, 1, nullptr, 0, &c.extra, &c.extra2);
    });
    null_row(ENTRY(C_GenerateKeyPair), "phPrivateKey", "§5.14.2", State::user, none, [](Ctx& c) {
        CK_MECHANISM m = mech(CKM_EC_KEY_PAIR_GEN);
        Bytes params = p256_params();
        CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params)};
        return CALL(C_GenerateKeyPair)(c.rw, &m, pub, 1, nullptr, 0, &c.extra, nullptr);
    });
    null_row(ENTRY(C_SeedRandom), "pSeed with ulSeedLen 8", "§5.15.1", State::user, none,
             [](Ctx& c) { return CALL(C_SeedRandom)(c.rw, nullptr, 8); });
    null_row(ENTRY(C_GenerateRandom), "RandomData with ulRandomLen 16", "§5.15.2", State::user, none,
             [](Ctx& c) { return CALL(C_GenerateRandom)(c.rw, nullptr, 16); });

    // --- slot ids (§5.1.3 CKR_SLOT_ID_INVALID) not covered in module.test.cpp ---
    add(ENTRY(C_InitToken), Case::slot_invalid, "unknown slot id", "§5.1.6; §5.5.7", State::blank, none,
        [](Ctx& c) { return CALL(C_InitToken)(bad_slot, utf8(so_pin), ulen(so_pin), c.label.data()); },
        CKR_SLOT_ID_INVALID);
    add(ENTRY(C_CloseAllSessions), Case::slot_invalid, "unknown slot id; sessions stay open", "§5.1.6; §5.6.3",
        State::user, none, [](Ctx& c) { return CALL(C_CloseAllSessions)(bad_slot); }, CKR_SLOT_ID_INVALID,
        check_rw_session_alive);

    // --- object and key handles (§5.1.6 CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID) ---
    add(ENTRY(C_DestroyObject), Case::object_handle, "object handle CK_INVALID_HANDLE", "§5.7.3", State::user, none,
        [](Ctx& c) { return CALL(C_DestroyObject)(c.rw, CK_INVALID_HANDLE); }, CKR_OBJECT_HANDLE_INVALID);
    add(ENTRY(C_DestroyObject), Case::object_handle, "destroyed object", "§5.7.3", State::user, none,
        [](Ctx& c) { return CALL(C_DestroyObject)(c.rw, c.destroyed); }, CKR_OBJECT_HANDLE_INVALID);
    add(ENTRY(C_GetAttributeValue), Case::object_handle, "object handle CK_INVALID_HANDLE", "§5.7.5", State::user, none,
        [](Ctx& c) {
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 128};
            return CALL(C_GetAttributeValue)(c.rw, CK_INVALID_HANDLE, c.attrs.data(), 1);
        },
        CKR_OBJECT_HANDLE_INVALID);
    add(ENTRY(C_GetAttributeValue), Case::object_handle, "destroyed object", "§5.7.5", State::user, none,
        [](Ctx& c) {
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 128};
            return CALL(C_GetAttributeValue)(c.rw, c.destroyed, c.attrs.data(), 1);
        },
        CKR_OBJECT_HANDLE_INVALID);
    add(ENTRY(C_GetAttributeValue), Case::object_handle, "session object of a closed session", "§5.6.2; §5.7.5",
        State::user,
        [](Ctx& c) {
            const CK_SESSION_HANDLE s = open(c, true);
            c.extra = create_data(c, s, "short-lived", false);
            REQUIRE(ckr_name(c.f->C_CloseSession(s)) == "CKR_OK");
        },
        [](Ctx& c) {
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 128};
            return CALL(C_GetAttributeValue)(c.rw, c.extra, c.attrs.data(), 1);
        },
        CKR_OBJECT_HANDLE_INVALID);
    add(ENTRY(C_SetAttributeValue), Case::object_handle, "destroyed object", "§5.7.6", State::user, none,
        [](Ctx& c) {
            Bytes lab = to_bytes("renamed");
            CK_ATTRIBUTE a = attr(CKA_LABEL, lab);
            return CALL(C_SetAttributeValue)(c.rw, c.destroyed, &a, 1);
        },
        CKR_OBJECT_HANDLE_INVALID);
    const auto key_row = [&](ListEntry fn, std::string name, bool sign, CK_OBJECT_HANDLE Ctx::*key) {
        add(fn, Case::object_handle, std::move(name), sign ? "§5.1.6; §5.11.1" : "§5.1.6; §5.12.1", State::user, none,
            [sign, key](Ctx& c) {
                CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
                return sign ? CALL(C_SignInit)(c.rw, &m, c.*key) : CALL(C_VerifyInit)(c.rw, &m, c.*key);
            },
            CKR_KEY_HANDLE_INVALID, [sign](Ctx& c) { sign ? check_no_sign(c) : check_no_verify(c); });
    };
    add(ENTRY(C_SignInit), Case::object_handle, "key handle CK_INVALID_HANDLE", "§5.1.6; §5.11.1", State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
            return CALL(C_SignInit)(c.rw, &m, CK_INVALID_HANDLE);
        },
        CKR_KEY_HANDLE_INVALID);
    add(ENTRY(C_VerifyInit), Case::object_handle, "key handle CK_INVALID_HANDLE", "§5.1.6; §5.12.1", State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
            return CALL(C_VerifyInit)(c.rw, &m, CK_INVALID_HANDLE);
        },
        CKR_KEY_HANDLE_INVALID);
    key_row(ENTRY(C_SignInit), "destroyed object as key", true, &Ctx::destroyed);
    key_row(ENTRY(C_VerifyInit), "destroyed object as key", false, &Ctx::destroyed);
    key_row(ENTRY(C_SignInit), "data object as key", true, &Ctx::data);
    key_row(ENTRY(C_VerifyInit), "data object as key", false, &Ctx::data);

    // --- read-only sessions (§5.1.6 CKR_SESSION_READ_ONLY; §5.6.7 CKR_SESSION_READ_ONLY_EXISTS) ---
    add(ENTRY(C_CreateObject), Case::read_only, "token object in a R/O session; nothing is created", "§5.7.1",
        State::user, none,
        [](Ctx& c) {
            CK_OBJECT_CLASS cls = CKO_DATA;
            CK_BBOOL yes = CK_TRUE;
            Bytes lab = to_bytes("ro made");
            CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab)};
            return CALL(C_CreateObject)(c.ro, t, 3, &c.extra);
        },
        CKR_SESSION_READ_ONLY, [](Ctx& c) { CHECK(count_by_label(c, c.rw, "ro made") == 0); });
    add(ENTRY(C_CreateObject), Case::read_only, "session object in a R/O session is allowed", "§5.7.1; §4.4",
        State::user, none,
        [](Ctx& c) {
            CK_OBJECT_CLASS cls = CKO_DATA;
            Bytes lab = to_bytes("ro session object");
            CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_LABEL, lab)};
            return CALL(C_CreateObject)(c.ro, t, 2, &c.extra);
        },
        CKR_OK, [](Ctx& c) { CHECK(count_by_label(c, c.rw, "ro session object") == 1); });
    add(ENTRY(C_DestroyObject), Case::read_only, "token object in a R/O session; it stays", "§5.7.3", State::user, none,
        [](Ctx& c) { return CALL(C_DestroyObject)(c.ro, c.data); }, CKR_SESSION_READ_ONLY,
        [](Ctx& c) { CHECK(count_by_label(c, c.rw, "negative data") == 1); });
    add(ENTRY(C_SetAttributeValue), Case::read_only, "token object in a R/O session; label unchanged", "§5.7.6",
        State::user, none,
        [](Ctx& c) {
            Bytes lab = to_bytes("renamed");
            CK_ATTRIBUTE a = attr(CKA_LABEL, lab);
            return CALL(C_SetAttributeValue)(c.ro, c.data, &a, 1);
        },
        CKR_SESSION_READ_ONLY, [](Ctx& c) { CHECK(label_of(c, c.data) == "negative data"); });
    add(ENTRY(C_GenerateKeyPair), Case::read_only, "token keys in a R/O session", "§5.14.2", State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_EC_KEY_PAIR_GEN);
            Bytes params = p256_params();
            CK_BBOOL yes = CK_TRUE;
            CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params), attr(CKA_TOKEN, yes)};
            CK_ATTRIBUTE priv[] = {attr(CKA_TOKEN, yes)};
            return CALL(C_GenerateKeyPair)(c.ro, &m, pub, 2, priv, 1, &c.extra, &c.extra2);
        },
        CKR_SESSION_READ_ONLY);
    add(ENTRY(C_SetPIN), Case::read_only, "R/O session", "§5.5.9", State::user, none,
        [](Ctx& c) { return CALL(C_SetPIN)(c.ro, utf8(user_pin), ulen(user_pin), utf8("new-pin-1"), 9); },
        CKR_SESSION_READ_ONLY);
    add(ENTRY(C_InitPIN), Case::read_only, "R/O session (only R/W SO Functions may)", "§5.5.8", State::user, none,
        [](Ctx& c) { return CALL(C_InitPIN)(c.ro, utf8(user_pin), ulen(user_pin)); }, CKR_USER_NOT_LOGGED_IN);
    add(ENTRY(C_Login), Case::read_only, "SO while a R/O session is open", "§5.6.7", State::public_session, none,
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_SO, utf8(so_pin), ulen(so_pin)); }, CKR_SESSION_READ_ONLY_EXISTS,
        [](Ctx& c) {
            REQUIRE(ckr_name(c.f->C_GetSessionInfo(c.rw, &c.session_info)) == "CKR_OK");
            CHECK(c.session_info.state == CKS_RW_PUBLIC_SESSION);
        });
    add(ENTRY(C_OpenSession), Case::read_only, "R/O session while the SO is logged in", "§5.6.1", State::so, none,
        [](Ctx& c) { return CALL(C_OpenSession)(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &c.extra); },
        CKR_SESSION_READ_WRITE_SO_EXISTS);

    // --- operation not initialized (§5.1.6 CKR_OPERATION_NOT_INITIALIZED) ---
    for (const Probe& p : probes()) {
        static const std::set<std::string> continuing = {
            "C_FindObjects", "C_FindObjectsFinal", "C_Digest", "C_DigestUpdate", "C_DigestFinal", "C_Sign",
            "C_SignUpdate",  "C_SignFinal",        "C_Verify", "C_VerifyUpdate", "C_VerifyFinal"};
        if (!continuing.count(p.fn.name)) continue;
        add(p.fn, Case::operation_not_initialized, "no operation started", p.spec, State::user, none,
            [call = p.call](Ctx& c) { return call(c, c.rw); }, CKR_OPERATION_NOT_INITIALIZED);
    }
    add(ENTRY(C_Sign), Case::operation_not_initialized, "after a C_Sign that succeeded", "§5.11.2", State::user,
        [](Ctx& c) { (void)signature(c); },
        [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            return CALL(C_Sign)(c.rw, msg(), msg_len(), c.out.data(), &c.out_len);
        },
        CKR_OPERATION_NOT_INITIALIZED);
    add(ENTRY(C_Verify), Case::operation_not_initialized, "after a C_Verify that found the signature invalid",
        "§5.12.2", State::user,
        [](Ctx& c) {
            verify_init(c, c.rw);
            Bytes bad(ecdsa_p256_len, 0x01);
            REQUIRE(ckr_name(c.f->C_Verify(c.rw, msg(), msg_len(), bad.data(), ecdsa_p256_len)) ==
                    "CKR_SIGNATURE_INVALID");
        },
        [](Ctx& c) {
            Bytes sig(ecdsa_p256_len);
            return CALL(C_Verify)(c.rw, msg(), msg_len(), sig.data(), ecdsa_p256_len);
        },
        CKR_OPERATION_NOT_INITIALIZED);
    add(ENTRY(C_DigestFinal), Case::operation_not_initialized, "after a C_Digest that succeeded", "§5.10.2; §5.10.5",
        State::user,
        [](Ctx& c) {
            digest_init(c, c.rw);
            CK_ULONG n = static_cast<CK_ULONG>(c.out.size());
            REQUIRE(ckr_name(c.f->C_Digest(c.rw, msg(), msg_len(), c.out.data(), &n)) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            return CALL(C_DigestFinal)(c.rw, c.out.data(), &c.out_len);
        },
        CKR_OPERATION_NOT_INITIALIZED);
    add(ENTRY(C_FindObjects), Case::operation_not_initialized, "after C_FindObjectsFinal", "§5.7.8; §5.7.9",
        State::user,
        [](Ctx& c) {
            REQUIRE(ckr_name(c.f->C_FindObjectsInit(c.rw, nullptr, 0)) == "CKR_OK");
            REQUIRE(ckr_name(c.f->C_FindObjectsFinal(c.rw)) == "CKR_OK");
        },
        [](Ctx& c) { return CALL(C_FindObjects)(c.rw, c.found.data(), 4, &c.count); }, CKR_OPERATION_NOT_INITIALIZED);
    // "A call to C_Sign/C_Verify always terminates the active operation unless it returns
    // CKR_BUFFER_TOO_SMALL or is a successful length query" (§5.11.2, §5.12.2).
    add(ENTRY(C_Sign), Case::operation_not_initialized, "CKM_ECDSA input longer than a hash; the operation ends",
        "§5.11.2", State::user,
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA);
            REQUIRE(ckr_name(c.f->C_SignInit(c.rw, &m, c.priv)) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            return CALL(C_Sign)(c.rw, c.values[0].data(), 65, c.out.data(), &c.out_len);
        },
        CKR_DATA_LEN_RANGE, check_no_sign);
    add(ENTRY(C_Verify), Case::operation_not_initialized, "signature one byte short; the operation ends", "§5.12.2",
        State::user, [](Ctx& c) { verify_init(c, c.rw); },
        [](Ctx& c) { return CALL(C_Verify)(c.rw, msg(), msg_len(), c.out.data(), ecdsa_p256_len - 1); },
        CKR_SIGNATURE_LEN_RANGE, check_no_verify);
    add(ENTRY(C_Login), Case::operation_not_initialized, "CKU_CONTEXT_SPECIFIC with no operation to authorize",
        "§5.6.7", State::user, none,
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_CONTEXT_SPECIFIC, utf8(user_pin), ulen(user_pin)); },
        CKR_OPERATION_NOT_INITIALIZED);

    // --- operation already active (§5.1.6 CKR_OPERATION_ACTIVE); the first one goes on ---
    add(ENTRY(C_FindObjectsInit), Case::operation_active, "search already running; it goes on", "§5.7.7", State::user,
        [](Ctx& c) { REQUIRE(ckr_name(c.f->C_FindObjectsInit(c.rw, nullptr, 0)) == "CKR_OK"); },
        [](Ctx& c) { return CALL(C_FindObjectsInit)(c.rw, nullptr, 0); }, CKR_OPERATION_ACTIVE, [](Ctx& c) {
            CK_ULONG n = 0;
            CHECK(ckr_name(c.f->C_FindObjects(c.rw, c.found.data(), 8, &n)) == "CKR_OK");
            CHECK(n == 3);  // public key, private key, data object
        });
    add(ENTRY(C_DigestInit), Case::operation_active, "digest already running; it goes on", "§5.10.1", State::user,
        [](Ctx& c) { digest_init(c, c.rw); },
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_SHA384);
            return CALL(C_DigestInit)(c.rw, &m);
        },
        CKR_OPERATION_ACTIVE, [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            REQUIRE(ckr_name(c.f->C_Digest(c.rw, msg(), msg_len(), c.out.data(), &c.out_len)) == "CKR_OK");
            check_digest(c);  // SHA-256, the first operation's
        });
    add(ENTRY(C_SignInit), Case::operation_active, "signing already running; it goes on", "§5.11.1", State::user,
        [](Ctx& c) { sign_init(c, c.rw); },
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA);
            return CALL(C_SignInit)(c.rw, &m, c.priv);
        },
        CKR_OPERATION_ACTIVE, [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            REQUIRE(ckr_name(c.f->C_Sign(c.rw, msg(), msg_len(), c.out.data(), &c.out_len)) == "CKR_OK");
            check_signature(c);  // ECDSA-SHA256, the first operation's
        });
    add(ENTRY(C_VerifyInit), Case::operation_active, "verification already running; it goes on", "§5.12.1",
        State::user,
        [](Ctx& c) {
            const Bytes sig = signature(c);
            std::copy(sig.begin(), sig.end(), c.out.begin());
            verify_init(c, c.rw);
        },
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA);
            return CALL(C_VerifyInit)(c.rw, &m, c.pub);
        },
        CKR_OPERATION_ACTIVE, [](Ctx& c) {
            CHECK(ckr_name(c.f->C_Verify(c.rw, msg(), msg_len(), c.out.data(), ecdsa_p256_len)) == "CKR_OK");
        });
    add(ENTRY(C_Sign), Case::operation_active, "single-part call inside a multi-part operation", "§5.11.2",
        State::user,
        [](Ctx& c) {
            sign_init(c, c.rw);
            REQUIRE(ckr_name(c.f->C_SignUpdate(c.rw, msg(), msg_len())) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            return CALL(C_Sign)(c.rw, msg(), msg_len(), c.out.data(), &c.out_len);
        },
        CKR_OPERATION_ACTIVE);
    add(ENTRY(C_Digest), Case::operation_active, "single-part call inside a multi-part operation", "§5.10.2",
        State::user,
        [](Ctx& c) {
            digest_init(c, c.rw);
            REQUIRE(ckr_name(c.f->C_DigestUpdate(c.rw, msg(), msg_len())) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = static_cast<CK_ULONG>(c.out.size());
            return CALL(C_Digest)(c.rw, msg(), msg_len(), c.out.data(), &c.out_len);
        },
        CKR_OPERATION_ACTIVE);

    // --- output length (§5.2): a short buffer gives CKR_BUFFER_TOO_SMALL with the needed length
    // and leaves the operation active; a NULL buffer asks for the length ---
    add(ENTRY(C_Sign), Case::output_length, "buffer too small; length written; operation goes on", "§5.2; §5.11.2",
        State::user, [](Ctx& c) { sign_init(c, c.rw); },
        [](Ctx& c) {
            c.out_len = 10;
            return CALL(C_Sign)(c.rw, msg(), msg_len(), c.out.data(), &c.out_len);
        },
        CKR_BUFFER_TOO_SMALL, [](Ctx& c) {
            CHECK(c.out_len == ecdsa_p256_len);
            REQUIRE(ckr_name(c.f->C_Sign(c.rw, msg(), msg_len(), c.out.data(), &c.out_len)) == "CKR_OK");
            check_signature(c);
        });
    add(ENTRY(C_SignFinal), Case::output_length, "buffer too small; length written; operation goes on",
        "§5.2; §5.11.4", State::user,
        [](Ctx& c) {
            sign_init(c, c.rw);
            REQUIRE(ckr_name(c.f->C_SignUpdate(c.rw, msg(), msg_len())) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = ecdsa_p256_len - 1;
            return CALL(C_SignFinal)(c.rw, c.out.data(), &c.out_len);
        },
        CKR_BUFFER_TOO_SMALL, [](Ctx& c) {
            CHECK(c.out_len == ecdsa_p256_len);
            REQUIRE(ckr_name(c.f->C_SignFinal(c.rw, c.out.data(), &c.out_len)) == "CKR_OK");
            check_signature(c);
        });
    add(ENTRY(C_Digest), Case::output_length, "buffer too small; length written; operation goes on",
        "§5.2; §5.10.2", State::user, [](Ctx& c) { digest_init(c, c.rw); },
        [](Ctx& c) {
            c.out_len = 16;
            return CALL(C_Digest)(c.rw, msg(), msg_len(), c.out.data(), &c.out_len);
        },
        CKR_BUFFER_TOO_SMALL, [](Ctx& c) {
            CHECK(c.out_len == sha256_len);
            REQUIRE(ckr_name(c.f->C_Digest(c.rw, msg(), msg_len(), c.out.data(), &c.out_len)) == "CKR_OK");
            check_digest(c);
        });
    add(ENTRY(C_DigestFinal), Case::output_length, "buffer too small; length written; operation goes on",
        "§5.2; §5.10.5", State::user,
        [](Ctx& c) {
            digest_init(c, c.rw);
            REQUIRE(ckr_name(c.f->C_DigestUpdate(c.rw, msg(), msg_len())) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = 0;
            return CALL(C_DigestFinal)(c.rw, c.out.data(), &c.out_len);
        },
        CKR_BUFFER_TOO_SMALL, [](Ctx& c) {
            CHECK(c.out_len == sha256_len);
            REQUIRE(ckr_name(c.f->C_DigestFinal(c.rw, c.out.data(), &c.out_len)) == "CKR_OK");
            check_digest(c);
        });
    add(ENTRY(C_Digest), Case::output_length, "NULL buffer asks for the length; operation goes on", "§5.2; §5.10.2",
        State::user, [](Ctx& c) { digest_init(c, c.rw); },
        [](Ctx& c) {
            c.out_len = 0;
            return CALL(C_Digest)(c.rw, msg(), msg_len(), nullptr, &c.out_len);
        },
        CKR_OK, [](Ctx& c) {
            CHECK(c.out_len == sha256_len);
            REQUIRE(ckr_name(c.f->C_Digest(c.rw, msg(), msg_len(), c.out.data(), &c.out_len)) == "CKR_OK");
            check_digest(c);
        });
    add(ENTRY(C_DigestFinal), Case::output_length, "NULL buffer asks for the length; operation goes on",
        "§5.2; §5.10.5", State::user,
        [](Ctx& c) {
            digest_init(c, c.rw);
            REQUIRE(ckr_name(c.f->C_DigestUpdate(c.rw, msg(), msg_len())) == "CKR_OK");
        },
        [](Ctx& c) {
            c.out_len = 0;
            return CALL(C_DigestFinal)(c.rw, nullptr, &c.out_len);
        },
        CKR_OK, [](Ctx& c) {
            CHECK(c.out_len == sha256_len);
            REQUIRE(ckr_name(c.f->C_DigestFinal(c.rw, c.out.data(), &c.out_len)) == "CKR_OK");
            check_digest(c);
        });
    add(ENTRY(C_GetAttributeValue), Case::output_length, "one value too long for its buffer; the others filled",
        "§5.7.5", State::user, none,
        [](Ctx& c) {
            c.ul = 0;
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 4};  // "negative key" needs 12
            c.attrs[1] = {CKA_KEY_TYPE, &c.ul, sizeof c.ul};
            return CALL(C_GetAttributeValue)(c.rw, c.pub, c.attrs.data(), 2);
        },
        CKR_BUFFER_TOO_SMALL, [](Ctx& c) {
            CHECK(c.attrs[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
            CHECK(c.attrs[1].ulValueLen == sizeof(CK_ULONG));
            CHECK(c.ul == CKK_EC);
        });

    // --- mechanism against key (§5.1.6; §5.11.1, §5.12.1, §5.10.1, §5.14.2) ---
    const auto init_row = [&](ListEntry fn, std::string name, bool sign, CK_MECHANISM_TYPE type, bool with_param,
                              CK_OBJECT_HANDLE Ctx::*key, CK_RV expected, std::function<void(Ctx&)> prep = {}) {
        add(fn, Case::mechanism, std::move(name), sign ? "§5.1.6; §5.11.1" : "§5.1.6; §5.12.1", State::user,
            std::move(prep),
            [sign, type, with_param, key](Ctx& c) {
                CK_MECHANISM m = mech(type);
                if (with_param) {
                    m.pParameter = c.values[3].data();
                    m.ulParameterLen = 8;
                }
                return sign ? CALL(C_SignInit)(c.rw, &m, c.*key) : CALL(C_VerifyInit)(c.rw, &m, c.*key);
            },
            expected, [sign](Ctx& c) { sign ? check_no_sign(c) : check_no_verify(c); });
    };
    const auto unusable_pair = [](Ctx& c) {
        const KeyHandles k = generate_keys(c, c.rw, "unusable", false, false);
        c.extra = k.priv;
        c.extra2 = k.pub;
    };
    init_row(ENTRY(C_SignInit), "RSA mechanism with an EC key", true, CKM_SHA256_RSA_PKCS, false, &Ctx::priv,
             CKR_KEY_TYPE_INCONSISTENT);
    init_row(ENTRY(C_SignInit), "public key", true, CKM_ECDSA, false, &Ctx::pub, CKR_KEY_TYPE_INCONSISTENT);
    init_row(ENTRY(C_SignInit), "private key with CKA_SIGN false", true, CKM_ECDSA, false, &Ctx::extra,
             CKR_KEY_FUNCTION_NOT_PERMITTED, unusable_pair);
    init_row(ENTRY(C_SignInit), "mechanism the token lacks", true, CKM_AES_CBC, false, &Ctx::priv,
             CKR_MECHANISM_INVALID);
    init_row(ENTRY(C_SignInit), "digest-only mechanism", true, CKM_SHA256, false, &Ctx::priv, CKR_MECHANISM_INVALID);
    init_row(ENTRY(C_SignInit), "CKM_ECDSA with a parameter", true, CKM_ECDSA, true, &Ctx::priv,
             CKR_MECHANISM_PARAM_INVALID);
    init_row(ENTRY(C_VerifyInit), "RSA mechanism with an EC key", false, CKM_SHA256_RSA_PKCS, false, &Ctx::pub,
             CKR_KEY_TYPE_INCONSISTENT);
    init_row(ENTRY(C_VerifyInit), "private key", false, CKM_ECDSA, false, &Ctx::priv, CKR_KEY_TYPE_INCONSISTENT);
    init_row(ENTRY(C_VerifyInit), "public key with CKA_VERIFY false", false, CKM_ECDSA, false, &Ctx::extra2,
             CKR_KEY_FUNCTION_NOT_PERMITTED, unusable_pair);
    init_row(ENTRY(C_VerifyInit), "mechanism the token lacks", false, CKM_AES_CBC, false, &Ctx::pub,
             CKR_MECHANISM_INVALID);
    add(ENTRY(C_DigestInit), Case::mechanism, "signature mechanism", "§5.1.6; §5.10.1", State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA);
            return CALL(C_DigestInit)(c.rw, &m);
        },
        CKR_MECHANISM_INVALID, check_no_digest);
    add(ENTRY(C_DigestInit), Case::mechanism, "CKM_SHA256 with a parameter", "§5.1.6; §5.10.1", State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m{CKM_SHA256, c.values[3].data(), 8};
            return CALL(C_DigestInit)(c.rw, &m);
        },
        CKR_MECHANISM_PARAM_INVALID, check_no_digest);
    add(ENTRY(C_GenerateKeyPair), Case::mechanism, "signature mechanism", "§5.1.6; §5.14.2", State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA);
            Bytes params = p256_params();
            CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params)};
            return CALL(C_GenerateKeyPair)(c.rw, &m, pub, 1, nullptr, 0, &c.extra, &c.extra2);
        },
        CKR_MECHANISM_INVALID);
    add(ENTRY(C_GenerateKeyPair), Case::mechanism, "CKM_EC_KEY_PAIR_GEN with a parameter", "§5.1.6; §5.14.2",
        State::user, none,
        [](Ctx& c) {
            CK_MECHANISM m{CKM_EC_KEY_PAIR_GEN, c.values[3].data(), 8};
            Bytes params = p256_params();
            CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params)};
            return CALL(C_GenerateKeyPair)(c.rw, &m, pub, 1, nullptr, 0, &c.extra, &c.extra2);
        },
        CKR_MECHANISM_PARAM_INVALID);

    // --- login state and PINs (§5.5.7–§5.5.9, §5.6.7, §5.6.8) ---
    const auto session_state = [](CK_STATE want) {
        return [want](Ctx& c) {
            REQUIRE(ckr_name(c.f->C_GetSessionInfo(c.rw, &c.session_info)) == "CKR_OK");
            CHECK(c.session_info.state == want);
        };
    };
    add(ENTRY(C_Login), Case::login_state, "user already logged in", "§5.6.7", State::user, none,
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_USER, utf8(user_pin), ulen(user_pin)); },
        CKR_USER_ALREADY_LOGGED_IN, session_state(CKS_RW_USER_FUNCTIONS));
    add(ENTRY(C_Login), Case::login_state, "SO while the user is logged in", "§5.6.7", State::user, none,
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_SO, utf8(so_pin), ulen(so_pin)); },
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN, session_state(CKS_RW_USER_FUNCTIONS));
    add(ENTRY(C_Login), Case::login_state, "wrong PIN; still public", "§5.6.7", State::public_session, none,
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_USER, utf8(wrong_pin), ulen(wrong_pin)); }, CKR_PIN_INCORRECT,
        session_state(CKS_RW_PUBLIC_SESSION));
    add(ENTRY(C_Login), Case::login_state, "right PIN once the PIN is locked", "§5.6.7", State::public_session,
        [](Ctx& c) {
            for (unsigned i = 0; i < TestConfig::max_pin_failures; ++i)
                REQUIRE(ckr_name(c.f->C_Login(c.rw, CKU_USER, utf8(wrong_pin), ulen(wrong_pin))) == "CKR_PIN_INCORRECT");
        },
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_USER, utf8(user_pin), ulen(user_pin)); }, CKR_PIN_LOCKED,
        [](Ctx& c) {
            REQUIRE(ckr_name(c.f->C_GetTokenInfo(slot, &c.token_info)) == "CKR_OK");
            CHECK(c.token_info.flags & CKF_USER_PIN_LOCKED);
        });
    add(ENTRY(C_Login), Case::login_state, "unknown user type", "§5.6.7", State::public_session, none,
        [](Ctx& c) { return CALL(C_Login)(c.rw, 7, utf8(user_pin), ulen(user_pin)); }, CKR_USER_TYPE_INVALID,
        session_state(CKS_RW_PUBLIC_SESSION));
    add(ENTRY(C_Login), Case::login_state, "user before the user PIN is set", "§5.6.7", State::blank,
        [](Ctx& c) {
            REQUIRE(ckr_name(c.f->C_InitToken(slot, utf8(so_pin), ulen(so_pin), c.label.data())) == "CKR_OK");
            c.rw = open(c, true);
        },
        [](Ctx& c) { return CALL(C_Login)(c.rw, CKU_USER, utf8(user_pin), ulen(user_pin)); },
        CKR_USER_PIN_NOT_INITIALIZED);
    add(ENTRY(C_Logout), Case::login_state, "nobody logged in", "§5.6.8", State::public_session, none,
        [](Ctx& c) { return CALL(C_Logout)(c.rw); }, CKR_USER_NOT_LOGGED_IN);
    add(ENTRY(C_InitPIN), Case::login_state, "by the user, not the SO", "§5.5.8", State::user, none,
        [](Ctx& c) { return CALL(C_InitPIN)(c.rw, utf8("other-pin"), 9); }, CKR_USER_NOT_LOGGED_IN);
    add(ENTRY(C_InitPIN), Case::login_state, "PIN shorter than ulMinPinLen; old PIN still works", "§5.5.8", State::so,
        none, [](Ctx& c) { return CALL(C_InitPIN)(c.rw, utf8("abc"), 3); }, CKR_PIN_LEN_RANGE, [](Ctx& c) {
            logout(c, c.rw);
            CHECK(ckr_name(c.f->C_Login(c.rw, CKU_USER, utf8(user_pin), ulen(user_pin))) == "CKR_OK");
        });
    add(ENTRY(C_InitPIN), Case::login_state, "PIN longer than ulMaxPinLen", "§5.5.8", State::so, none,
        [](Ctx& c) {
            const std::string long_pin(TestConfig::max_pin_len + 1, '7');
            return CALL(C_InitPIN)(c.rw, utf8(long_pin), ulen(long_pin));
        },
        CKR_PIN_LEN_RANGE);
    add(ENTRY(C_SetPIN), Case::login_state, "new PIN shorter than ulMinPinLen", "§5.5.9", State::user, none,
        [](Ctx& c) { return CALL(C_SetPIN)(c.rw, utf8(user_pin), ulen(user_pin), utf8("abc"), 3); },
        CKR_PIN_LEN_RANGE);
    add(ENTRY(C_SetPIN), Case::login_state, "wrong old PIN; PIN unchanged", "§5.5.9", State::user, none,
        [](Ctx& c) { return CALL(C_SetPIN)(c.rw, utf8(wrong_pin), ulen(wrong_pin), utf8("changed-pin"), 11); },
        CKR_PIN_INCORRECT, [](Ctx& c) {
            logout(c, c.rw);
            CHECK(ckr_name(c.f->C_Login(c.rw, CKU_USER, utf8(user_pin), ulen(user_pin))) == "CKR_OK");
        });
    add(ENTRY(C_InitToken), Case::login_state, "SO PIN shorter than ulMinPinLen", "§5.5.7", State::blank, none,
        [](Ctx& c) { return CALL(C_InitToken)(slot, utf8("abc"), 3, c.label.data()); }, CKR_PIN_LEN_RANGE);
    add(ENTRY(C_InitToken), Case::login_state, "a session is open", "§5.5.7", State::public_session, none,
        [](Ctx& c) { return CALL(C_InitToken)(slot, utf8(so_pin), ulen(so_pin), c.label.data()); }, CKR_SESSION_EXISTS,
        [](Ctx& c) { CHECK(count_by_label(c, c.rw, "negative data") == 1); });
    add(ENTRY(C_InitToken), Case::login_state, "wrong SO PIN; objects kept", "§5.5.7", State::public_session,
        [](Ctx& c) { REQUIRE(ckr_name(c.f->C_CloseAllSessions(slot)) == "CKR_OK"); },
        [](Ctx& c) { return CALL(C_InitToken)(slot, utf8(wrong_pin), ulen(wrong_pin), c.label.data()); },
        CKR_PIN_INCORRECT, [](Ctx& c) {
            c.rw = open(c, true);
            CHECK(count_by_label(c, c.rw, "negative data") == 1);
        });

    // --- private objects without a login (§4.4 CKA_PRIVATE, §5.6.8, §5.7.1, §5.14.2) ---
    const auto find_private_keys = [](Ctx& c) {
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE t = attr(CKA_CLASS, cls);
        REQUIRE(ckr_name(c.f->C_FindObjectsInit(c.rw, &t, 1)) == "CKR_OK");
    };
    const auto find_call = [](Ctx& c) { return CALL(C_FindObjects)(c.rw, c.found.data(), 8, &c.count); };
    add(ENTRY(C_FindObjects), Case::private_objects, "private key not found without login", "§4.4; §5.7.8",
        State::public_session, find_private_keys, find_call, CKR_OK, [](Ctx& c) { CHECK(c.count == 0); });
    add(ENTRY(C_FindObjects), Case::private_objects, "private key found once logged in (control)", "§4.4; §5.7.8",
        State::user, find_private_keys, find_call, CKR_OK, [](Ctx& c) {
            REQUIRE(c.count == 1);
            CHECK(c.found[0] == c.priv);
        });
    add(ENTRY(C_CreateObject), Case::private_objects, "private object without login", "§5.1.6; §5.7.1",
        State::public_session, none,
        [](Ctx& c) {
            CK_OBJECT_CLASS cls = CKO_DATA;
            CK_BBOOL yes = CK_TRUE;
            CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_PRIVATE, yes)};
            return CALL(C_CreateObject)(c.rw, t, 2, &c.extra);
        },
        CKR_USER_NOT_LOGGED_IN);
    add(ENTRY(C_GenerateKeyPair), Case::private_objects, "private key without login", "§5.1.6; §5.14.2",
        State::public_session, none, [](Ctx& c) { return probe_generate(c, c.rw); }, CKR_USER_NOT_LOGGED_IN);
    add(ENTRY(C_GetAttributeValue), Case::private_objects, "private key without login", "§5.6.8; §5.7.5",
        State::public_session, none,
        [](Ctx& c) {
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 128};
            return CALL(C_GetAttributeValue)(c.rw, c.priv, c.attrs.data(), 1);
        },
        CKR_OBJECT_HANDLE_INVALID);
    add(ENTRY(C_DestroyObject), Case::private_objects, "private key without login; it stays", "§5.6.8; §5.7.3",
        State::public_session, none, [](Ctx& c) { return CALL(C_DestroyObject)(c.rw, c.priv); },
        CKR_OBJECT_HANDLE_INVALID, [](Ctx& c) {
            login(c, c.rw, CKU_USER);
            CHECK(count_by_label(c, c.rw, "negative key") == 2);
        });
    add(ENTRY(C_SignInit), Case::private_objects, "private key handle from before C_Logout, after a new login",
        "§5.6.8; §5.11.1", State::user,
        [](Ctx& c) {
            logout(c, c.rw);
            login(c, c.rw, CKU_USER);
        },
        [](Ctx& c) {
            CK_MECHANISM m = mech(CKM_ECDSA_SHA256);
            return CALL(C_SignInit)(c.rw, &m, c.priv);
        },
        CKR_KEY_HANDLE_INVALID);
    add(ENTRY(C_GetAttributeValue), Case::private_objects, "private session object after C_Logout and a new login",
        "§5.6.8; §5.7.5", State::user,
        [](Ctx& c) {
            c.extra = create_data(c, c.rw, "private session data", false, true);
            logout(c, c.rw);
            login(c, c.rw, CKU_USER);
        },
        [](Ctx& c) {
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 128};
            return CALL(C_GetAttributeValue)(c.rw, c.extra, c.attrs.data(), 1);
        },
        CKR_OBJECT_HANDLE_INVALID, [](Ctx& c) { CHECK(count_by_label(c, c.rw, "private session data") == 0); });

    // --- templates (§4.1.1 creating, §4.1.2 modifying, §5.7.5 reading) ---
    const auto create_row = [&](std::string name, std::string spec, CK_RV expected,
                                std::function<std::vector<CK_ATTRIBUTE>(Ctx&)> tmpl) {
        add(ENTRY(C_CreateObject), Case::template_error, std::move(name), std::move(spec), State::user, none,
            [tmpl](Ctx& c) {
                std::vector<CK_ATTRIBUTE> t = tmpl(c);
                return CALL(C_CreateObject)(c.rw, t.data(), static_cast<CK_ULONG>(t.size()), &c.extra);
            },
            expected);
    };
    // Template values live in the Ctx so they outlive the template vector.
    struct Vals {
        static CK_ULONG& ul(Ctx& c, std::size_t i) { return *reinterpret_cast<CK_ULONG*>(c.values[i].data()); }
        static CK_BBOOL& yes(Ctx& c) {
            c.values[3][0] = CK_TRUE;
            return c.values[3][0];
        }
    };
    create_row("no CKA_CLASS", "§4.1.1", CKR_TEMPLATE_INCOMPLETE, [](Ctx& c) {
        std::memcpy(c.values[0].data(), "label", 5);
        return std::vector<CK_ATTRIBUTE>{{CKA_LABEL, c.values[0].data(), 5}};
    });
    create_row("public key without CKA_KEY_TYPE", "§4.1.1", CKR_TEMPLATE_INCOMPLETE, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_PUBLIC_KEY;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)}};
    });
    create_row("certificate without CKA_VALUE", "§4.1.1", CKR_TEMPLATE_INCOMPLETE, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_CERTIFICATE;
        Vals::ul(c, 1) = CKC_X_509;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                         {CKA_CERTIFICATE_TYPE, c.values[1].data(), sizeof(CK_ULONG)}};
    });
    create_row("data object with CKA_KEY_TYPE", "§4.1.1", CKR_TEMPLATE_INCONSISTENT, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_DATA;
        Vals::ul(c, 1) = CKK_EC;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                         {CKA_KEY_TYPE, c.values[1].data(), sizeof(CK_ULONG)}};
    });
    create_row("CKA_LABEL twice with different values", "§4.1.1", CKR_TEMPLATE_INCONSISTENT, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_DATA;
        std::memcpy(c.values[1].data(), "one", 3);
        std::memcpy(c.values[2].data(), "two", 3);
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                         {CKA_LABEL, c.values[1].data(), 3},
                                         {CKA_LABEL, c.values[2].data(), 3}};
    });
    create_row("attribute type no spec or vendor defines", "§4.1.1", CKR_ATTRIBUTE_TYPE_INVALID, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_DATA;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                         {undefined_attribute, c.values[1].data(), 4}};
    });
    create_row("attribute of another class (CKA_MODULUS on data)", "§4.1.1", CKR_TEMPLATE_INCONSISTENT, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_DATA;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                         {CKA_MODULUS, c.values[1].data(), 4}};
    });
    create_row("CKA_TOKEN four bytes long", "§4.1.1", CKR_ATTRIBUTE_VALUE_INVALID, [](Ctx& c) {
        Vals::ul(c, 0) = CKO_DATA;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                         {CKA_TOKEN, c.values[1].data(), 4}};
    });
    create_row("undefined object class", "§4.1.1", CKR_ATTRIBUTE_VALUE_INVALID, [](Ctx& c) {
        Vals::ul(c, 0) = 0x5A5A;
        return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)}};
    });
    create_row("EC public key with CKA_LOCAL", "§4.1.1; §4.7 (CKA_LOCAL set by the token)", CKR_ATTRIBUTE_READ_ONLY,
               [](Ctx& c) {
                   Vals::ul(c, 0) = CKO_PUBLIC_KEY;
                   Vals::ul(c, 1) = CKK_EC;
                   return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                                    {CKA_KEY_TYPE, c.values[1].data(), sizeof(CK_ULONG)},
                                                    {CKA_LOCAL, &Vals::yes(c), 1}};
               });
    create_row("EC private key with CKA_ALWAYS_SENSITIVE", "§4.1.1; §4.9 (set by the token)", CKR_ATTRIBUTE_READ_ONLY,
               [](Ctx& c) {
                   Vals::ul(c, 0) = CKO_PRIVATE_KEY;
                   Vals::ul(c, 1) = CKK_EC;
                   return std::vector<CK_ATTRIBUTE>{{CKA_CLASS, c.values[0].data(), sizeof(CK_ULONG)},
                                                    {CKA_KEY_TYPE, c.values[1].data(), sizeof(CK_ULONG)},
                                                    {CKA_ALWAYS_SENSITIVE, &Vals::yes(c), 1}};
               });
    const auto generate_row = [&](std::string name, CK_RV expected,
                                  std::function<std::vector<CK_ATTRIBUTE>(Ctx&)> pub_tmpl) {
        add(ENTRY(C_GenerateKeyPair), Case::template_error, std::move(name), "§4.1.1; §5.14.2", State::user, none,
            [pub_tmpl](Ctx& c) {
                CK_MECHANISM m = mech(CKM_EC_KEY_PAIR_GEN);
                std::vector<CK_ATTRIBUTE> t = pub_tmpl(c);
                return CALL(C_GenerateKeyPair)(c.rw, &m, t.data(), static_cast<CK_ULONG>(t.size()), nullptr, 0, &c.extra,
                                               &c.extra2);
            },
            expected);
    };
    generate_row("no CKA_EC_PARAMS", CKR_TEMPLATE_INCOMPLETE, [](Ctx& c) {
        std::memcpy(c.values[0].data(), "label", 5);
        return std::vector<CK_ATTRIBUTE>{{CKA_LABEL, c.values[0].data(), 5}};
    });
    generate_row("public template says CKO_PRIVATE_KEY", CKR_TEMPLATE_INCONSISTENT, [](Ctx& c) {
        const Bytes p = p256_params();
        std::copy(p.begin(), p.end(), c.values[0].begin());
        Vals::ul(c, 1) = CKO_PRIVATE_KEY;
        return std::vector<CK_ATTRIBUTE>{{CKA_EC_PARAMS, c.values[0].data(), static_cast<CK_ULONG>(p.size())},
                                         {CKA_CLASS, c.values[1].data(), sizeof(CK_ULONG)}};
    });
    generate_row("CKA_EC_POINT given (the token makes it)", CKR_ATTRIBUTE_READ_ONLY, [](Ctx& c) {
        const Bytes p = p256_params();
        std::copy(p.begin(), p.end(), c.values[0].begin());
        return std::vector<CK_ATTRIBUTE>{{CKA_EC_PARAMS, c.values[0].data(), static_cast<CK_ULONG>(p.size())},
                                         {CKA_EC_POINT, c.values[1].data(), 67}};
    });

    const auto set_row = [&](std::string name, std::string spec, CK_RV expected, CK_OBJECT_HANDLE Ctx::*object,
                             std::function<std::vector<CK_ATTRIBUTE>(Ctx&)> tmpl, std::function<void(Ctx&)> post = {},
                             std::function<void(Ctx&)> prep = {}) {
        add(ENTRY(C_SetAttributeValue), Case::template_error, std::move(name), std::move(spec), State::user,
            std::move(prep),
            [tmpl, object](Ctx& c) {
                std::vector<CK_ATTRIBUTE> t = tmpl(c);
                return CALL(C_SetAttributeValue)(c.rw, c.*object, t.data(), static_cast<CK_ULONG>(t.size()));
            },
            expected, std::move(post));
    };
    set_row("CKA_CLASS with a new label; nothing changes", "§4.1.2; §5.7.6", CKR_ATTRIBUTE_READ_ONLY, &Ctx::data,
            [](Ctx& c) {
                std::memcpy(c.values[0].data(), "renamed", 7);
                Vals::ul(c, 1) = CKO_DATA;
                return std::vector<CK_ATTRIBUTE>{{CKA_LABEL, c.values[0].data(), 7},
                                                 {CKA_CLASS, c.values[1].data(), sizeof(CK_ULONG)}};
            },
            [](Ctx& c) { CHECK(label_of(c, c.data) == "negative data"); });
    set_row("attribute type no spec or vendor defines", "§4.1.2; §5.7.6", CKR_ATTRIBUTE_TYPE_INVALID, &Ctx::data,
            [](Ctx& c) { return std::vector<CK_ATTRIBUTE>{{undefined_attribute, c.values[0].data(), 4}}; });
    set_row("attribute of another class (CKA_SIGN on data)", "§4.1.2; §4.1.1", CKR_TEMPLATE_INCONSISTENT, &Ctx::data,
            [](Ctx& c) { return std::vector<CK_ATTRIBUTE>{{CKA_SIGN, &Vals::yes(c), 1}}; });
    set_row("CKA_SENSITIVE four bytes long", "§4.1.2; §5.7.6", CKR_ATTRIBUTE_VALUE_INVALID, &Ctx::priv,
            [](Ctx& c) { return std::vector<CK_ATTRIBUTE>{{CKA_SENSITIVE, c.values[0].data(), 4}}; });
    set_row("CKA_SENSITIVE back to false", "§4.1.2; §4.9 (once true, read-only)", CKR_ATTRIBUTE_READ_ONLY, &Ctx::priv,
            [](Ctx& c) {
                c.values[0][0] = CK_FALSE;
                return std::vector<CK_ATTRIBUTE>{{CKA_SENSITIVE, c.values[0].data(), 1}};
            });
    set_row("CKA_EXTRACTABLE to true", "§4.1.2; §4.9 (once false, read-only)", CKR_ATTRIBUTE_READ_ONLY, &Ctx::priv,
            [](Ctx& c) { return std::vector<CK_ATTRIBUTE>{{CKA_EXTRACTABLE, &Vals::yes(c), 1}}; });
    set_row("object with CKA_MODIFIABLE false", "§5.7.6", CKR_ACTION_PROHIBITED, &Ctx::extra,
            [](Ctx& c) {
                std::memcpy(c.values[0].data(), "renamed", 7);
                return std::vector<CK_ATTRIBUTE>{{CKA_LABEL, c.values[0].data(), 7}};
            },
            [](Ctx& c) { CHECK(label_of(c, c.extra) == "fixed"); },
            [](Ctx& c) { c.extra = create_data(c, c.rw, "fixed", true, false, false); });
    add(ENTRY(C_DestroyObject), Case::template_error, "object with CKA_DESTROYABLE false; it stays", "§5.7.3",
        State::user, [](Ctx& c) { c.extra = create_data(c, c.rw, "permanent", true, false, true, false); },
        [](Ctx& c) { return CALL(C_DestroyObject)(c.rw, c.extra); }, CKR_ACTION_PROHIBITED,
        [](Ctx& c) { CHECK(count_by_label(c, c.rw, "permanent") == 1); });
    add(ENTRY(C_GetAttributeValue), Case::template_error, "sensitive value with others; the others filled", "§5.7.5",
        State::user, none,
        [](Ctx& c) {
            c.ul = 0;
            c.attrs[0] = {CKA_LABEL, c.values[0].data(), 128};
            c.attrs[1] = {CKA_VALUE, c.values[1].data(), 128};
            c.attrs[2] = {CKA_KEY_TYPE, &c.ul, sizeof c.ul};
            return CALL(C_GetAttributeValue)(c.rw, c.priv, c.attrs.data(), 3);
        },
        CKR_ATTRIBUTE_SENSITIVE, [](Ctx& c) {
            CHECK(c.attrs[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);
            REQUIRE(c.attrs[0].ulValueLen == 12);
            CHECK(std::memcmp(c.values[0].data(), "negative key", 12) == 0);
            CHECK(c.attrs[2].ulValueLen == sizeof(CK_ULONG));
            CHECK(c.ul == CKK_EC);
        });
    add(ENTRY(C_GetAttributeValue), Case::template_error, "attribute the object lacks; the others filled", "§5.7.5",
        State::user, none,
        [](Ctx& c) {
            c.attrs[0] = {CKA_MODULUS, c.values[0].data(), 128};
            c.attrs[1] = {CKA_EC_PARAMS, c.values[1].data(), 128};
            return CALL(C_GetAttributeValue)(c.rw, c.pub, c.attrs.data(), 2);
        },
        CKR_ATTRIBUTE_TYPE_INVALID, [](Ctx& c) {
            CHECK(c.attrs[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
            const Bytes p = p256_params();
            REQUIRE(c.attrs[1].ulValueLen == p.size());
            CHECK(Bytes(c.values[1].begin(), c.values[1].begin() + static_cast<std::ptrdiff_t>(p.size())) == p);
        });
    add(ENTRY(C_FindObjectsInit), Case::template_error, "CKA_TOKEN four bytes long; no search starts", "§5.7.7",
        State::user, none,
        [](Ctx& c) {
            CK_ATTRIBUTE t{CKA_TOKEN, c.values[0].data(), 4};
            return CALL(C_FindObjectsInit)(c.rw, &t, 1);
        },
        CKR_ATTRIBUTE_VALUE_INVALID, [](Ctx& c) { check_no_search(c, c.rw); });
}

const std::vector<Row>& table() {
    static const std::vector<Row> rows = [] {
        std::vector<Row> r;
        generated_rows(r);
        written_rows(r);
        return r;
    }();
    return rows;
}

void run(const Row& r) {
    Ctx c;
    enter(c, r.state);
    if (r.prep) r.prep(c);
    c.log.clear();
    const CK_RV got = r.call(c);
    INFO("spec: " << r.spec);
    CHECK(ckr_name(got) == ckr_name(r.expected));
    const bool call_went_through_the_named_entry = c.log.used(r.fn.offset);
    CHECK(call_went_through_the_named_entry);
    if (r.post) r.post(c);
}

}  // namespace

TEST_CASE("PKCS#11 negative paths: every row gives the CKR_ code of PKCS#11 v2.40", "[cryptoki][negative]") {
    for (const Row& r : table())
        DYNAMIC_SECTION(r.fn.name << ": " << r.name) { run(r); }
}

TEST_CASE("PKCS#11 negative paths: the table covers all 68 entries and has the rows it should", "[cryptoki][negative]") {
    const auto& rows = table();
    std::set<std::size_t> covered;
    std::set<std::string> names;
    std::set<Case> kinds;
    for (const Row& r : rows) {
        covered.insert(r.fn.offset);
        kinds.insert(r.kind);
        // DYNAMIC_SECTION merges sections of the same name: each must be unique.
        CHECK(names.insert(std::string(r.fn.name) + ": " + r.name).second);
    }
    for (const ListEntry& e : function_list_entries) {
        INFO(e.name);
        CHECK(covered.count(e.offset) == 1);
    }
    CHECK(covered.size() == 68);
    CHECK(kinds.size() == case_kinds);
    // Generated: 66 entries x (before C_Initialize, after C_Finalize) and C_GetFunctionList's
    // two, 4 session-handle cases per implemented session entry, one row per entry not offered.
    std::size_t session = 0, not_offered = 0;
    for (const Probe& p : probes()) {
        session += p.kind == Kind::session;
        not_offered += p.kind == Kind::stub || p.kind == Kind::legacy;
    }
    CHECK(probes().size() == 68);
    CHECK(session == 28);
    CHECK(not_offered == 28);
    constexpr std::size_t written = 158;
    CHECK(rows.size() == 2 * 66 + 2 + 4 * session + not_offered + written);
}

TEST_CASE("PKCS#11 negative paths: table size (prints functions x cases)", "[.][cryptoki][negative-size]") {
    const auto& rows = table();
    std::map<std::string, std::set<Case>> per_fn;
    for (const Row& r : rows) per_fn[r.fn.name].insert(r.kind);
    std::size_t cells = 0;
    for (const auto& [fn, ks] : per_fn) cells += ks.size();
    std::cout << "negative-path table: " << per_fn.size() << " functions x " << case_kinds << " case kinds, " << cells
              << " (function, case) cells filled, " << rows.size() << " rows\n";
    CHECK(per_fn.size() == 68);
}
