// SPDX-License-Identifier: MIT
// SoftToken against PKCS#11 v2.40, run over every Nvm model (RamNvm, FileNvm).
#include <atomic>
#include <cctype>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/token_fixture.hpp"

using namespace p11tls;
using namespace p11tls::test;

#define TOKEN_TEST(name, tags) TEMPLATE_LIST_TEST_CASE("SoftToken: " name, "[token]" tags, TokenModels)

namespace {

const Bytes message = to_bytes("The quick brown fox jumps over the lazy dog; a message long enough to be split.");

template <class Tok>
CK_TOKEN_INFO info_of(Tok& t) {
    CK_TOKEN_INFO info;
    t.token_info(info);
    return info;
}

/// A data object template (session object unless `token_object`).
Template data_template(std::string_view label, bool token_object = true, bool is_private = false) {
    Template t;
    t.add(CKA_CLASS, CKO_DATA).add(CKA_LABEL, label).add(CKA_TOKEN, token_object).add(CKA_PRIVATE, is_private)
        .add(CKA_VALUE, Bytes{1, 2, 3});
    return t;
}

template <class Tok>
CK_ULONG create(Tok& t, CK_ULONG session, std::span<const CK_ATTRIBUTE> tmpl) {
    auto h = t.create_object(session, tmpl);
    REQUIRE(code(h) == no_error);
    return *h;
}

bool contains(const std::vector<CK_ULONG>& v, CK_ULONG h) { return std::find(v.begin(), v.end(), h) != v.end(); }

// --- signing mechanisms ----------------------------------------------------------------

struct SignCase {
    const char* name;
    CK_MECHANISM_TYPE mech;
    mbedtls_md_type_t token_hash;  // hash the mechanism computes over the data; NONE: data signed as given
    bool pss;
};

constexpr SignCase ec_cases[] = {
    {"CKM_ECDSA", CKM_ECDSA, MBEDTLS_MD_NONE, false},
    {"CKM_ECDSA_SHA256", CKM_ECDSA_SHA256, MBEDTLS_MD_SHA256, false},
    {"CKM_ECDSA_SHA384", CKM_ECDSA_SHA384, MBEDTLS_MD_SHA384, false},
    {"CKM_ECDSA_SHA512", CKM_ECDSA_SHA512, MBEDTLS_MD_SHA512, false},
};
constexpr SignCase rsa_cases[] = {
    {"CKM_RSA_PKCS", CKM_RSA_PKCS, MBEDTLS_MD_NONE, false},
    {"CKM_SHA256_RSA_PKCS", CKM_SHA256_RSA_PKCS, MBEDTLS_MD_SHA256, false},
    {"CKM_SHA384_RSA_PKCS", CKM_SHA384_RSA_PKCS, MBEDTLS_MD_SHA384, false},
    {"CKM_SHA512_RSA_PKCS", CKM_SHA512_RSA_PKCS, MBEDTLS_MD_SHA512, false},
    {"CKM_RSA_PKCS_PSS", CKM_RSA_PKCS_PSS, MBEDTLS_MD_NONE, true},
    {"CKM_SHA256_RSA_PKCS_PSS", CKM_SHA256_RSA_PKCS_PSS, MBEDTLS_MD_SHA256, true},
    {"CKM_SHA384_RSA_PKCS_PSS", CKM_SHA384_RSA_PKCS_PSS, MBEDTLS_MD_SHA384, true},
    {"CKM_SHA512_RSA_PKCS_PSS", CKM_SHA512_RSA_PKCS_PSS, MBEDTLS_MD_SHA512, true},
};

CK_MECHANISM_TYPE digest_mechanism(mbedtls_md_type_t md) {
    switch (md) {
    case MBEDTLS_MD_SHA384: return CKM_SHA384;
    case MBEDTLS_MD_SHA512: return CKM_SHA512;
    default: return CKM_SHA256;
    }
}
CK_RSA_PKCS_MGF_TYPE mgf_of(mbedtls_md_type_t md) {
    switch (md) {
    case MBEDTLS_MD_SHA384: return CKG_MGF1_SHA384;
    case MBEDTLS_MD_SHA512: return CKG_MGF1_SHA512;
    default: return CKG_MGF1_SHA256;
    }
}

/// A mechanism with its parameters kept alive alongside.
struct Mech {
    CK_RSA_PKCS_PSS_PARAMS pss{};
    CK_MECHANISM m{};
    // The hash the signature covers (the PSS hashAlg, or the raw-input hash for raw mechanisms).
    mbedtls_md_type_t md = MBEDTLS_MD_SHA256;

    Mech(const SignCase& c, mbedtls_md_type_t raw_md) {
        md = c.token_hash != MBEDTLS_MD_NONE ? c.token_hash : raw_md;
        m = {c.mech, nullptr, 0};
        if (c.pss) {
            pss = {digest_mechanism(md), mgf_of(md), static_cast<CK_ULONG>(mbedtls_md_get_size(mbedtls_md_info_from_type(md)))};
            m.pParameter = &pss;
            m.ulParameterLen = sizeof pss;
        }
    }
    Mech(const Mech&) = delete;
};

template <class Tok>
Bytes sign_multipart(Tok& t, CK_ULONG s, const CK_MECHANISM& mech, CK_ULONG key, const Bytes& data) {
    REQUIRE(code(t.sign_init(s, mech, key)) == no_error);
    const std::size_t cut = data.size() / 3;
    REQUIRE(code(t.sign_update(s, std::as_bytes(std::span(data).first(cut)))) == no_error);
    REQUIRE(code(t.sign_update(s, std::as_bytes(std::span(data).subspan(cut)))) == no_error);
    Bytes sig(512);
    auto n = t.sign_final(s, as_out(sig));
    REQUIRE(code(n) == no_error);
    sig.resize(*n);
    return sig;
}

template <class Tok>
Errc verify(Tok& t, CK_ULONG s, const CK_MECHANISM& mech, CK_ULONG key, const Bytes& data, const Bytes& sig) {
    REQUIRE(code(t.verify_init(s, mech, key)) == no_error);
    return code(t.verify(s, as_span(data), as_span(sig)));
}

template <class Tok>
Errc verify_multipart(Tok& t, CK_ULONG s, const CK_MECHANISM& mech, CK_ULONG key, const Bytes& data, const Bytes& sig) {
    REQUIRE(code(t.verify_init(s, mech, key)) == no_error);
    const std::size_t cut = data.size() / 2;
    REQUIRE(code(t.verify_update(s, std::as_bytes(std::span(data).first(cut)))) == no_error);
    REQUIRE(code(t.verify_update(s, std::as_bytes(std::span(data).subspan(cut)))) == no_error);
    return code(t.verify_final(s, as_span(sig)));
}

// Signs with every EC mechanism, single-part (and multi-part where the mechanism hashes:
// PKCS#11 v2.40 makes raw CKM_ECDSA single-part only), and checks each signature with the
// token's verify and with plain mbedTLS.
template <class Tok>
void check_ec_mechanisms(Tok& t, CK_ULONG s, KeyPair kp, mbedtls_ecp_group_id curve, mbedtls_md_type_t raw_md) {
    const Bytes point = get_bytes(t, s, kp.public_key, CKA_EC_POINT);
    const std::size_t sig_len = curve == MBEDTLS_ECP_DP_SECP256R1 ? 64 : 96;
    for (const SignCase& c : ec_cases) {
        INFO(c.name);
        Mech mech(c, raw_md);
        const Bytes input = c.token_hash == MBEDTLS_MD_NONE ? hash(raw_md, message) : message;
        const Bytes digest = hash(mech.md, message);

        const Bytes sig = sign(t, s, mech.m, kp.private_key, input);
        CHECK(sig.size() == sig_len);
        CHECK(verify(t, s, mech.m, kp.public_key, input, sig) == no_error);
        CHECK(mbed_ecdsa_verify(curve, point, digest, sig));
        if (c.token_hash == MBEDTLS_MD_NONE) continue;
        const Bytes sig2 = sign_multipart(t, s, mech.m, kp.private_key, input);
        CHECK(sig2.size() == sig_len);
        CHECK(verify_multipart(t, s, mech.m, kp.public_key, input, sig2) == no_error);
        CHECK(verify(t, s, mech.m, kp.public_key, input, sig2) == no_error);
        CHECK(mbed_ecdsa_verify(curve, point, digest, sig2));
    }
}

// The same for RSA keys (raw CKM_RSA_PKCS and CKM_RSA_PKCS_PSS are single-part only).
template <class Tok>
void check_rsa_mechanisms(Tok& t, CK_ULONG s, KeyPair kp, std::size_t modulus_bytes) {
    const Bytes n = get_bytes(t, s, kp.public_key, CKA_MODULUS);
    const Bytes e = get_bytes(t, s, kp.public_key, CKA_PUBLIC_EXPONENT);
    REQUIRE(n.size() == modulus_bytes);
    for (const SignCase& c : rsa_cases) {
        INFO(c.name);
        Mech mech(c, MBEDTLS_MD_SHA256);
        const Bytes input = c.token_hash == MBEDTLS_MD_NONE ? hash(MBEDTLS_MD_SHA256, message) : message;
        const Bytes digest = hash(mech.md, message);
        const int salt = c.pss ? static_cast<int>(digest.size()) : -1;
        // CKM_RSA_PKCS signs its input as given: plain mbedTLS checks it as raw data.
        const mbedtls_md_type_t mbed_md = c.mech == CKM_RSA_PKCS ? MBEDTLS_MD_NONE : mech.md;

        const Bytes sig = sign(t, s, mech.m, kp.private_key, input);
        CHECK(sig.size() == modulus_bytes);
        CHECK(verify(t, s, mech.m, kp.public_key, input, sig) == no_error);
        CHECK(mbed_rsa_verify(n, e, mbed_md, mbed_md == MBEDTLS_MD_NONE ? input : digest, sig, salt, mech.md));
        if (c.token_hash == MBEDTLS_MD_NONE) continue;
        const Bytes sig2 = sign_multipart(t, s, mech.m, kp.private_key, input);
        CHECK(sig2.size() == modulus_bytes);
        CHECK(verify_multipart(t, s, mech.m, kp.public_key, input, sig2) == no_error);
        CHECK(mbed_rsa_verify(n, e, mbed_md, digest, sig2, salt, mech.md));
    }
}

// Creates the RSA key pair from test_rsa_key() as token objects: private with every CRT
// component, public from N and E.
template <class Tok>
KeyPair import_rsa_key(Tok& t, CK_ULONG s, std::string_view label = "imported rsa") {
    const RsaComponents& k = test_rsa_key();
    Template priv;
    priv.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_RSA).add(CKA_TOKEN, true)
        .add(CKA_LABEL, label).add(CKA_SIGN, true).add(CKA_MODULUS, k.n).add(CKA_PUBLIC_EXPONENT, k.e)
        .add(CKA_PRIVATE_EXPONENT, k.d).add(CKA_PRIME_1, k.p).add(CKA_PRIME_2, k.q).add(CKA_EXPONENT_1, k.dp)
        .add(CKA_EXPONENT_2, k.dq).add(CKA_COEFFICIENT, k.qinv);
    Template pub;
    pub.add(CKA_CLASS, CKO_PUBLIC_KEY).add(CKA_KEY_TYPE, CKK_RSA).add(CKA_TOKEN, true)
        .add(CKA_LABEL, label).add(CKA_VERIFY, true).add(CKA_MODULUS, k.n).add(CKA_PUBLIC_EXPONENT, k.e);
    return {create(t, s, pub), create(t, s, priv)};
}

/// An EC P-256 key made with plain mbedTLS: the scalar and the CKA_EC_POINT (DER).
struct EcKey {
    Bytes d, point;
};
EcKey make_ec_key() {
    TestRng rng;
    mbedtls_ecp_keypair kp;
    mbedtls_ecp_keypair_init(&kp);
    REQUIRE(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, &kp, &TestRng::f, rng.p()) == 0);
    EcKey k{mpi_bytes(kp.d, 32), Bytes(67)};
    std::size_t olen = 0;
    k.point[0] = 0x04;
    k.point[1] = 65;
    REQUIRE(mbedtls_ecp_point_write_binary(&kp.grp, &kp.Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, k.point.data() + 2, 65) == 0);
    REQUIRE(olen == 65);
    mbedtls_ecp_keypair_free(&kp);
    return k;
}

Template ec_private_template(const Bytes& d, std::string_view label = "imported ec") {
    Template t;
    t.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true).add(CKA_LABEL, label)
        .add(CKA_SIGN, true).add(CKA_EC_PARAMS, p256_params()).add(CKA_VALUE, d);
    return t;
}

Template ec_public_template(const Bytes& point, std::string_view label) {
    Template t;
    t.add(CKA_CLASS, CKO_PUBLIC_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true).add(CKA_LABEL, label)
        .add(CKA_VERIFY, true).add(CKA_EC_PARAMS, p256_params()).add(CKA_EC_POINT, point);
    return t;
}

}  // namespace

// --- token state, PINs and login ------------------------------------------------------------

TOKEN_TEST("a fresh token is uninitialized and has a 16-character hex serial number", "[pin]") {
    TestType m;
    const CK_TOKEN_INFO info = info_of(*m);
    CHECK_FALSE(info.flags & CKF_TOKEN_INITIALIZED);
    CHECK_FALSE(info.flags & CKF_USER_PIN_INITIALIZED);
    CHECK(info.flags & CKF_LOGIN_REQUIRED);
    CHECK(info.flags & CKF_RNG);
    const std::string serial(reinterpret_cast<const char*>(info.serialNumber), sizeof info.serialNumber);
    CHECK(serial.size() == 16);
    CHECK(std::all_of(serial.begin(), serial.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }));
    CHECK(std::string(reinterpret_cast<const char*>(info.label), 32) == std::string(32, ' '));
}

TOKEN_TEST("the serial number survives a reload and differs between tokens", "[pin]") {
    TestType m, other;
    const CK_TOKEN_INFO before = info_of(*m);
    m.reload();
    const CK_TOKEN_INFO after = info_of(*m);
    CHECK(std::memcmp(before.serialNumber, after.serialNumber, 16) == 0);
    CHECK(std::memcmp(before.serialNumber, info_of(*other).serialNumber, 16) != 0);
}

TEST_CASE("SoftToken: a stored PIN round count outside 1000..max_pin_iterations is refused, the store unchanged",
          "[token][pin]") {
    RamTokenModel<> m;
    REQUIRE(code((*m).init_token(pin(so_pin), token_label("t"))) == no_error);
    std::array<std::byte, 512> meta{};
    auto n = m.nvm().load(0, meta);
    REQUIRE(code(n) == no_error);
    for (std::uint32_t rounds : {std::uint32_t{999}, std::uint32_t{TestConfig::max_pin_iterations + 1}, 0xFFFFFFFFu}) {
        INFO("rounds " << rounds);
        auto tampered = meta;
        for (int i = 0; i < 4; ++i) tampered[60 + i] = std::byte(static_cast<unsigned char>(rounds >> (8 * i)));
        RamNvm<> store(m.nvm());
        REQUIRE(code(store.store(0, std::span(tampered).first(*n))) == no_error);
        SoftToken<RamNvm<>, GetrandomEntropy, TestConfig> t(std::move(store), GetrandomEntropy{});
        CHECK(code(t.load()) == Errc::nvm_corrupt);
        std::array<std::byte, 512> after{};
        auto k = t.nvm().load(0, after);
        REQUIRE(code(k) == no_error);
        CHECK(std::equal(after.begin(), after.begin() + *k, tampered.begin(), tampered.begin() + *n));
    }
    m.reload();  // the untampered state still loads
}

TOKEN_TEST("init_token, init_pin and user login give a user session", "[pin]") {
    TestType m;
    auto& t = *m;
    REQUIRE(code(t.init_token(pin(so_pin), token_label("my token"))) == no_error);
    CK_TOKEN_INFO info = info_of(t);
    CHECK(info.flags & CKF_TOKEN_INITIALIZED);
    CHECK_FALSE(info.flags & CKF_USER_PIN_INITIALIZED);
    CHECK(std::memcmp(info.label, token_label("my token").data(), 32) == 0);

    CK_ULONG s = open_session(t);
    REQUIRE(code(t.login(s, CKU_SO, pin(so_pin))) == no_error);
    CHECK(t.session_info(s)->state == CKS_RW_SO_FUNCTIONS);
    REQUIRE(code(t.init_pin(s, pin(user_pin))) == no_error);
    CHECK(info_of(t).flags & CKF_USER_PIN_INITIALIZED);
    REQUIRE(code(t.logout(s)) == no_error);
    CHECK(t.session_info(s)->state == CKS_RW_PUBLIC_SESSION);
    REQUIRE(code(t.login(s, CKU_USER, pin(user_pin))) == no_error);
    CHECK(t.session_info(s)->state == CKS_RW_USER_FUNCTIONS);
}

TOKEN_TEST("user login before the user PIN is set gives user_pin_not_initialized", "[pin]") {
    TestType m;
    auto& t = *m;
    REQUIRE(code(t.init_token(pin(so_pin), token_label("t"))) == no_error);
    CK_ULONG s = open_session(t);
    CHECK(code(t.login(s, CKU_USER, pin(user_pin))) == Errc::user_pin_not_initialized);
}

TOKEN_TEST("init_pin without an SO login gives user_not_logged_in", "[pin]") {
    TestType m;
    auto& t = *m;
    REQUIRE(code(t.init_token(pin(so_pin), token_label("t"))) == no_error);
    CK_ULONG s = open_session(t);
    CHECK(code(t.init_pin(s, pin(user_pin))) == Errc::user_not_logged_in);
    CHECK_FALSE(info_of(t).flags & CKF_USER_PIN_INITIALIZED);
}

TOKEN_TEST("a wrong PIN gives pin_incorrect and sets CKF_USER_PIN_COUNT_LOW", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = open_session(t);
    CHECK_FALSE(info_of(t).flags & CKF_USER_PIN_COUNT_LOW);
    CHECK(code(t.login(s, CKU_USER, pin(wrong_pin))) == Errc::pin_incorrect);
    CHECK(info_of(t).flags & CKF_USER_PIN_COUNT_LOW);
    CHECK(t.session_info(s)->state == CKS_RW_PUBLIC_SESSION);
}

TOKEN_TEST("a successful login clears the PIN failure flags", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = open_session(t);
    CHECK(code(t.login(s, CKU_USER, pin(wrong_pin))) == Errc::pin_incorrect);
    REQUIRE(code(t.login(s, CKU_USER, pin(user_pin))) == no_error);
    CHECK_FALSE(info_of(t).flags & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED));
}

TOKEN_TEST("after max_pin_failures wrong PINs the user PIN is locked, even for the right PIN", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = open_session(t);
    constexpr unsigned max = TestConfig::max_pin_failures;
    for (unsigned i = 0; i + 1 < max; ++i) REQUIRE(code(t.login(s, CKU_USER, pin(wrong_pin))) == Errc::pin_incorrect);
    CHECK(info_of(t).flags & CKF_USER_PIN_FINAL_TRY);
    CHECK(code(t.login(s, CKU_USER, pin(wrong_pin))) == Errc::pin_incorrect);
    CHECK(info_of(t).flags & CKF_USER_PIN_LOCKED);
    CHECK(code(t.login(s, CKU_USER, pin(user_pin))) == Errc::pin_locked);
    // The lock is stored: a reset does not give the guesser another round.
    REQUIRE(code(t.close_session(s)) == no_error);
    m.reload();
    s = open_session(*m);
    CHECK(code((*m).login(s, CKU_USER, pin(user_pin))) == Errc::pin_locked);
}

TOKEN_TEST("the SO's init_pin unlocks a locked user PIN", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = open_session(t);
    for (unsigned i = 0; i < TestConfig::max_pin_failures; ++i) (void)t.login(s, CKU_USER, pin(wrong_pin));
    REQUIRE(code(t.login(s, CKU_USER, pin(user_pin))) == Errc::pin_locked);
    REQUIRE(code(t.login(s, CKU_SO, pin(so_pin))) == no_error);
    REQUIRE(code(t.init_pin(s, pin("new-user-pin"))) == no_error);
    REQUIRE(code(t.logout(s)) == no_error);
    CHECK_FALSE(info_of(t).flags & CKF_USER_PIN_LOCKED);
    CHECK(code(t.login(s, CKU_USER, pin("new-user-pin"))) == no_error);
}

TOKEN_TEST("set_pin replaces the user PIN after checking the old one", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    CHECK(code(t.set_pin(s, pin(wrong_pin), pin("changed-pin"))) == Errc::pin_incorrect);
    CHECK(code(t.set_pin(s, pin(user_pin), pin("abc"))) == Errc::pin_len_range);
    REQUIRE(code(t.set_pin(s, pin(user_pin), pin("changed-pin"))) == no_error);
    REQUIRE(code(t.logout(s)) == no_error);
    CHECK(code(t.login(s, CKU_USER, pin(user_pin))) == Errc::pin_incorrect);
    CHECK(code(t.login(s, CKU_USER, pin("changed-pin"))) == no_error);
}

TOKEN_TEST("PINs persist across a reload", "[pin]") {
    TestType m;
    init_token(*m);
    m.reload();
    CK_ULONG s = open_session(*m);
    CHECK(code((*m).login(s, CKU_USER, pin(wrong_pin))) == Errc::pin_incorrect);
    CHECK(code((*m).login(s, CKU_USER, pin(user_pin))) == no_error);
}

TOKEN_TEST("init_token with a session open gives session_exists", "[pin]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    CHECK(code(t.init_token(pin(so_pin), token_label("t"))) == Errc::session_exists);
    REQUIRE(code(t.close_session(s)) == no_error);
    CHECK(code(t.init_token(pin(so_pin), token_label("t"))) == no_error);
}

TOKEN_TEST("re-initializing needs the SO PIN and destroys every token object", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    create(t, s, data_template("doomed"));
    REQUIRE(record_ids(m.nvm()).size() == 2);  // token state + the object
    REQUIRE(code(t.close_session(s)) == no_error);
    CHECK(code(t.init_token(pin(wrong_pin), token_label("again"))) == Errc::pin_incorrect);
    REQUIRE(code(t.init_token(pin(so_pin), token_label("again"))) == no_error);
    CHECK(record_ids(m.nvm()) == std::vector<RecordId>{0});
    s = open_session(t);
    CHECK(find_all(t, s, Template{}).empty());
    CHECK_FALSE(info_of(t).flags & CKF_USER_PIN_INITIALIZED);
}

TOKEN_TEST("SO login with a read-only session open gives session_read_only_exists", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG ro = open_session(t, false);
    CHECK(code(t.login(ro, CKU_SO, pin(so_pin))) == Errc::session_read_only_exists);
}

TOKEN_TEST("a read-only session while the SO is logged in gives session_read_write_so_exists", "[pin]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = open_session(t);
    REQUIRE(code(t.login(s, CKU_SO, pin(so_pin))) == no_error);
    CHECK(code(t.open_session(CKF_SERIAL_SESSION)) == Errc::session_read_write_so_exists);
    CHECK(code(t.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION)) == no_error);
}

TOKEN_TEST("the session table full gives session_count", "[pin]") {
    TestType m;
    auto& t = *m;
    for (std::size_t i = 0; i < TestConfig::max_sessions; ++i) open_session(t, i % 2 == 0);
    CHECK(code(t.open_session(CKF_SERIAL_SESSION)) == Errc::session_count);
    CK_TOKEN_INFO info = info_of(t);
    CHECK(info.ulSessionCount == TestConfig::max_sessions);
    CHECK(info.ulRwSessionCount == TestConfig::max_sessions / 2);
}

// --- visibility and rights --------------------------------------------------------------------

TOKEN_TEST("private objects are invisible to find and get_attributes before login, visible after", "[objects]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const CK_ULONG secret = create(t, s, data_template("secret", true, true));
    const CK_ULONG open = create(t, s, data_template("public", true, false));
    REQUIRE(code(t.logout(s)) == no_error);

    const auto hits = find_all(t, s, Template{});
    CHECK(contains(hits, open));
    CHECK_FALSE(contains(hits, secret));
    CHECK(find_all(t, s, Template{}.add(CKA_LABEL, "secret")).empty());
    Bytes label(16);
    CK_ATTRIBUTE a = attr(CKA_LABEL, label);
    CHECK(code(t.get_attributes(s, secret, std::span(&a, 1))) == Errc::object_handle_invalid);

    REQUIRE(code(t.login(s, CKU_USER, pin(user_pin))) == no_error);
    // v2.40 §5.6.8: a handle from before the logout stays invalid; a search finds the object.
    CHECK(code(t.get_attributes(s, secret, std::span(&a, 1))) == Errc::object_handle_invalid);
    CHECK(get_bytes(t, s, find_by_label(t, s, "secret"), CKA_LABEL) == to_bytes("secret"));
}

TOKEN_TEST("a token object in a read-only session gives session_read_only", "[objects]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG rw = login_user(t);
    CK_ULONG ro = open_session(t, false);
    CHECK(code(t.create_object(ro, data_template("token obj", true))) == Errc::session_read_only);
    CHECK(code(t.create_object(ro, data_template("session obj", false))) == no_error);
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    Template pub, priv;
    pub.add(CKA_EC_PARAMS, p256_params()).add(CKA_TOKEN, true);
    priv.add(CKA_TOKEN, true);
    CHECK(code(t.generate_key_pair(ro, mech, pub, priv)) == Errc::session_read_only);
    CHECK(find_all(t, rw, Template{}.add(CKA_TOKEN, true)).empty());
    CHECK(record_ids(m.nvm()) == std::vector<RecordId>{0});
}

TOKEN_TEST("a private object without a user login gives user_not_logged_in", "[objects]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = open_session(t);
    CHECK(code(t.create_object(s, data_template("secret", true, true))) == Errc::user_not_logged_in);
    CHECK(code(t.create_object(s, ec_private_template(make_ec_key().d))) == Errc::user_not_logged_in);
}

// --- object templates ---------------------------------------------------------------------------

TOKEN_TEST("a template without CKA_CLASS gives template_incomplete", "[objects]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    CHECK(code(t.create_object(s, Template{}.add(CKA_LABEL, "x").add(CKA_VALUE, Bytes{1}))) == Errc::template_incomplete);
    CHECK(code(t.create_object(s, Template{}.add(CKA_CLASS, CKO_PUBLIC_KEY).add(CKA_EC_PARAMS, p256_params()))) ==
          Errc::template_incomplete);  // no CKA_KEY_TYPE
}

TOKEN_TEST("an attribute of other classes is inconsistent, an undefined one invalid (v2.40 4.1.1)", "[objects]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    CHECK(code(t.create_object(s, data_template("d", false).add(CKA_MODULUS, Bytes{1, 2}))) == Errc::template_inconsistent);
    CHECK(code(t.create_object(s, data_template("d", false).add(CKA_SIGN, true))) == Errc::template_inconsistent);
    CHECK(code(t.create_object(s, data_template("d", false).add(0x80001234ul, Bytes{1}))) == Errc::attribute_type_invalid);
    CHECK(code(t.create_object(s, data_template("d", false).add(0x00000FFFul, Bytes{1}))) == Errc::attribute_type_invalid);
    auto d = t.create_object(s, data_template("d", false));
    REQUIRE(code(d) == no_error);
    CHECK(code(t.set_attributes(s, *d, Template{}.add(CKA_SIGN, true))) == Errc::template_inconsistent);
    CHECK(code(t.set_attributes(s, *d, Template{}.add(0x80001234ul, Bytes{1}))) == Errc::attribute_type_invalid);
}

TOKEN_TEST("a boolean attribute of the wrong length gives attribute_value_invalid", "[objects]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    const CK_ULONG four = 1;
    Template tmpl;
    tmpl.add(CKA_CLASS, CKO_DATA).add(CKA_TOKEN, std::as_bytes(std::span(&four, 1)));
    CHECK(code(t.create_object(s, tmpl)) == Errc::attribute_value_invalid);
    const unsigned char one = 1;
    Template bad_class;
    bad_class.add(CKA_CLASS, std::as_bytes(std::span(&one, 1)));
    CHECK(code(t.create_object(s, bad_class)) == Errc::attribute_value_invalid);
}

TOKEN_TEST("an attribute given twice gives template_inconsistent", "[objects]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    CHECK(code(t.create_object(s, data_template("d", false).add(CKA_LABEL, "again"))) == Errc::template_inconsistent);
}

TOKEN_TEST("a certificate object gets CKA_SUBJECT, CKA_ISSUER and CKA_SERIAL_NUMBER from its value", "[objects][cert]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const char* subject = "CN=device-0001,O=p11tls,C=DE";
    const char* issuer = "CN=p11tls Test CA,O=p11tls,C=DE";
    const Bytes der = make_certificate(subject, issuer, 0x01020304);
    const CK_ULONG cert = create(t, s, certificate_template(der, "Device Cert"));
    CHECK(get_bytes(t, s, cert, CKA_SUBJECT) == name_der(subject));
    CHECK(get_bytes(t, s, cert, CKA_ISSUER) == name_der(issuer));
    CHECK(get_bytes(t, s, cert, CKA_SERIAL_NUMBER) == Bytes{0x02, 0x04, 0x01, 0x02, 0x03, 0x04});
    CHECK(get_bytes(t, s, cert, CKA_VALUE) == der);
    CHECK(get_ulong(t, s, cert, CKA_CERTIFICATE_TYPE) == CKC_X_509);
    // The derived attributes are searchable, as a TLS stack looking up an issuer needs.
    CHECK(find_all(t, s, Template{}.add(CKA_SUBJECT, name_der(subject))) == std::vector<CK_ULONG>{cert});
}

TOKEN_TEST("a certificate whose value does not parse gives attribute_value_invalid and stores nothing", "[objects][cert]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    Bytes der = make_certificate("CN=a", "CN=a", 7);
    der.resize(der.size() / 2);
    CHECK(code(t.create_object(s, certificate_template(der, "truncated"))) == Errc::attribute_value_invalid);
    CHECK(code(t.create_object(s, certificate_template(to_bytes("not a certificate"), "garbage"))) ==
          Errc::attribute_value_invalid);
    CHECK(find_all(t, s, Template{}).empty());
    CHECK(record_ids(m.nvm()) == std::vector<RecordId>{0});
}

TOKEN_TEST("the FreeRTOS object labels are ordinary labels", "[objects][freertos]") {
    TestType m;
    init_token(*m);
    {
        auto& t = *m;
        CK_ULONG s = login_user(t);
        CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
        Template pub, priv;
        pub.add(CKA_EC_PARAMS, p256_params()).add(CKA_TOKEN, true).add(CKA_LABEL, "Device Pub TLS Key");
        priv.add(CKA_TOKEN, true).add(CKA_LABEL, "Device Priv TLS Key");
        auto kp = t.generate_key_pair(s, mech, pub, priv);
        REQUIRE(code(kp) == no_error);
        create(t, s, certificate_template(make_certificate("CN=device", "CN=ca", 1), "Device Cert"));
        create(t, s, certificate_template(make_certificate("CN=ca", "CN=ca", 2), "Root Cert"));
        create(t, s, certificate_template(make_certificate("CN=jitp", "CN=ca", 3), "JITP Cert"));
        create(t, s, ec_public_template(get_bytes(t, s, kp->public_key, CKA_EC_POINT), "Code Verify Key"));
    }
    m.reload();
    auto& t = *m;
    CK_ULONG s = login_user(t);
    const std::pair<const char*, CK_OBJECT_CLASS> expected[] = {
        {"Device Priv TLS Key", CKO_PRIVATE_KEY}, {"Device Pub TLS Key", CKO_PUBLIC_KEY},
        {"Device Cert", CKO_CERTIFICATE},         {"Root Cert", CKO_CERTIFICATE},
        {"Code Verify Key", CKO_PUBLIC_KEY},      {"JITP Cert", CKO_CERTIFICATE},
    };
    for (const auto& [label, cls] : expected) {
        INFO(label);
        const CK_ULONG h = find_by_label(t, s, label);
        CHECK(get_ulong(t, s, h, CKA_CLASS) == cls);
        CHECK(get_bytes(t, s, h, CKA_LABEL) == to_bytes(label));
    }
    CHECK(find_all(t, s, Template{}).size() == 6);
}

TOKEN_TEST("a full object table gives token_full and changes nothing", "[objects]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    for (std::size_t i = 0; i < TestConfig::max_objects; ++i) create(t, s, data_template("filler", false));
    CHECK(code(t.create_object(s, data_template("one too many", false))) == Errc::token_full);
    CHECK(find_all(t, s, Template{}).size() == TestConfig::max_objects);
    CHECK(find_all(t, s, Template{}.add(CKA_LABEL, "one too many")).empty());
}

// --- find ----------------------------------------------------------------------------------------

namespace {
struct Population {
    CK_ULONG session;
    KeyPair ec;
    CK_ULONG cert, data, session_data;
};

// An EC key pair and a certificate with CKA_ID 01, a data object, a session data object.
template <class Tok>
Population populate(Tok& t) {
    init_token(t);
    Population p{};
    p.session = login_user(t);
    p.ec = generate_ec_key_pair(t, p.session, p256_params(), "device key", true, Bytes{0x01});
    p.cert = create(t, p.session, certificate_template(make_certificate("CN=dev", "CN=ca", 9), "device cert").add(CKA_ID, Bytes{0x01}));
    p.data = create(t, p.session, data_template("config"));
    p.session_data = create(t, p.session, data_template("scratch", false));
    return p;
}
}  // namespace

TOKEN_TEST("find by class returns the objects of that class", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    CHECK(find_all(t, p.session, Template{}.add(CKA_CLASS, CKO_PRIVATE_KEY)) == std::vector<CK_ULONG>{p.ec.private_key});
    CHECK(find_all(t, p.session, Template{}.add(CKA_CLASS, CKO_CERTIFICATE)) == std::vector<CK_ULONG>{p.cert});
    auto data = find_all(t, p.session, Template{}.add(CKA_CLASS, CKO_DATA));
    std::sort(data.begin(), data.end());
    auto want = std::vector<CK_ULONG>{p.data, p.session_data};
    std::sort(want.begin(), want.end());
    CHECK(data == want);
}

TOKEN_TEST("find by label returns the objects with that label", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    CHECK(find_all(t, p.session, Template{}.add(CKA_LABEL, "config")) == std::vector<CK_ULONG>{p.data});
    CHECK(find_all(t, p.session, Template{}.add(CKA_LABEL, "device key")).size() == 2);
    CHECK(find_all(t, p.session, Template{}.add(CKA_LABEL, "device")).empty());  // no prefix matching
}

TOKEN_TEST("find by CKA_ID and class pairs a certificate with its key", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    CHECK(find_all(t, p.session, Template{}.add(CKA_ID, Bytes{0x01})).size() == 3);
    CHECK(find_all(t, p.session, Template{}.add(CKA_ID, Bytes{0x01}).add(CKA_CLASS, CKO_PRIVATE_KEY)) ==
          std::vector<CK_ULONG>{p.ec.private_key});
    CHECK(find_all(t, p.session, Template{}.add(CKA_ID, Bytes{0x02})).empty());
}

TOKEN_TEST("find by key type returns the keys of that type", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    auto keys = find_all(t, p.session, Template{}.add(CKA_KEY_TYPE, CKK_EC));
    std::sort(keys.begin(), keys.end());
    auto want = std::vector<CK_ULONG>{p.ec.public_key, p.ec.private_key};
    std::sort(want.begin(), want.end());
    CHECK(keys == want);
    CHECK(find_all(t, p.session, Template{}.add(CKA_KEY_TYPE, CKK_RSA)).empty());
}

TOKEN_TEST("find by any attribute, e.g. CKA_SIGN true", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    CHECK(find_all(t, p.session, Template{}.add(CKA_SIGN, true)) == std::vector<CK_ULONG>{p.ec.private_key});
    CHECK(find_all(t, p.session, Template{}.add(CKA_TOKEN, false)) == std::vector<CK_ULONG>{p.session_data});
}

TOKEN_TEST("find never matches on the value of a sensitive attribute", "[objects][find]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const EcKey k = make_ec_key();
    create(t, s, ec_private_template(k.d));
    CHECK(find_all(t, s, Template{}.add(CKA_VALUE, k.d)).empty());
}

TOKEN_TEST("find with an empty template returns every visible object", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    auto all = find_all(t, p.session, Template{});
    std::sort(all.begin(), all.end());
    auto want = std::vector<CK_ULONG>{p.ec.public_key, p.ec.private_key, p.cert, p.data, p.session_data};
    std::sort(want.begin(), want.end());
    CHECK(all == want);
}

TOKEN_TEST("find hands out results in batches", "[objects][find]") {
    TestType m;
    auto& t = *m;
    const Population p = populate(t);
    REQUIRE(code(t.find_init(p.session, Template{})) == no_error);
    std::array<CK_ULONG, 2> batch{};
    std::vector<CK_ULONG> seen;
    std::vector<std::size_t> sizes;
    for (;;) {
        auto n = t.find(p.session, batch);
        REQUIRE(code(n) == no_error);
        sizes.push_back(*n);
        seen.insert(seen.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(*n));
        if (*n == 0) break;
    }
    CHECK(sizes == std::vector<std::size_t>{2, 2, 1, 0});
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    CHECK(seen.size() == 5);
    REQUIRE(code(t.find_final(p.session)) == no_error);
}

TOKEN_TEST("find needs find_init, and a second find_init gives operation_active", "[objects][find]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    std::array<CK_ULONG, 2> batch{};
    CHECK(code(t.find(s, batch)) == Errc::operation_not_initialized);
    CHECK(code(t.find_final(s)) == Errc::operation_not_initialized);
    REQUIRE(code(t.find_init(s, Template{})) == no_error);
    CHECK(code(t.find_init(s, Template{})) == Errc::operation_active);
    REQUIRE(code(t.find_final(s)) == no_error);
    CHECK(code(t.find_init(s, Template{})) == no_error);
}

// --- get_attributes -----------------------------------------------------------------------------

TOKEN_TEST("get_attributes with a NULL pValue returns the length", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    const CK_ULONG h = create(t, s, data_template("twelve chars", false));
    CK_ATTRIBUTE a[] = {{CKA_LABEL, nullptr, 0}, {CKA_CLASS, nullptr, 0}, {CKA_TOKEN, nullptr, 0}};
    REQUIRE(code(t.get_attributes(s, h, a)) == no_error);
    CHECK(a[0].ulValueLen == 12);
    CHECK(a[1].ulValueLen == sizeof(CK_ULONG));
    CHECK(a[2].ulValueLen == sizeof(CK_BBOOL));
}

TOKEN_TEST("get_attributes into a too-small buffer gives buffer_too_small and CK_UNAVAILABLE_INFORMATION",
           "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    const CK_ULONG h = create(t, s, data_template("twelve chars", false));
    Bytes small(11);
    CK_ATTRIBUTE a = attr(CKA_LABEL, small);
    CHECK(code(t.get_attributes(s, h, std::span(&a, 1))) == Errc::buffer_too_small);
    CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
}

TOKEN_TEST("get_attributes of an attribute the object lacks gives attribute_type_invalid", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    const CK_ULONG h = create(t, s, data_template("d", false));
    Bytes buf(64);
    CK_ATTRIBUTE a = attr(CKA_MODULUS, buf);
    CHECK(code(t.get_attributes(s, h, std::span(&a, 1))) == Errc::attribute_type_invalid);
    CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
}

TOKEN_TEST("the private value of an EC key is sensitive", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_ATTRIBUTE a{CKA_VALUE, nullptr, 0};
    CHECK(code(t.get_attributes(s, kp.private_key, std::span(&a, 1))) == Errc::attribute_sensitive);
    CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    Bytes buf(64);
    CK_ATTRIBUTE b = attr(CKA_VALUE, buf);
    CHECK(code(t.get_attributes(s, kp.private_key, std::span(&b, 1))) == Errc::attribute_sensitive);
    CHECK(b.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CHECK(buf == Bytes(64, 0));
}

TOKEN_TEST("the private parts of an RSA key are sensitive", "[objects][attributes][rsa]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = import_rsa_key(t, s);
    for (CK_ATTRIBUTE_TYPE type : {CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2,
                                   CKA_COEFFICIENT}) {
        INFO("attribute 0x" << std::hex << type);
        Bytes buf(512);
        CK_ATTRIBUTE a = attr(type, buf);
        CHECK(code(t.get_attributes(s, kp.private_key, std::span(&a, 1))) == Errc::attribute_sensitive);
        CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    }
    CHECK(get_bytes(t, s, kp.private_key, CKA_MODULUS) == test_rsa_key().n);
}

TOKEN_TEST("get_attributes fills the other entries when one fails", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params(), "label");
    Bytes label(32), value(64), modulus(256);
    CK_ULONG key_type = 0;
    CK_ATTRIBUTE a[] = {attr(CKA_VALUE, value), attr(CKA_LABEL, label), attr(CKA_MODULUS, modulus),
                        attr(CKA_KEY_TYPE, key_type)};
    const Errc e = code(t.get_attributes(s, kp.private_key, a));
    CHECK((e == Errc::attribute_sensitive || e == Errc::attribute_type_invalid));
    CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CHECK(a[1].ulValueLen == 5);
    CHECK(Bytes(label.begin(), label.begin() + 5) == to_bytes("label"));
    CHECK(a[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);
    CHECK(a[3].ulValueLen == sizeof(CK_ULONG));
    CHECK(key_type == CKK_EC);
}

TOKEN_TEST("a generated private key is local, always sensitive and never extractable", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CHECK(get_bool(t, s, kp.private_key, CKA_LOCAL));
    CHECK(get_bool(t, s, kp.private_key, CKA_SENSITIVE));
    CHECK_FALSE(get_bool(t, s, kp.private_key, CKA_EXTRACTABLE));
    CHECK(get_bool(t, s, kp.private_key, CKA_ALWAYS_SENSITIVE));
    CHECK(get_bool(t, s, kp.private_key, CKA_NEVER_EXTRACTABLE));
    CHECK(get_bool(t, s, kp.private_key, CKA_PRIVATE));
    CHECK(get_ulong(t, s, kp.private_key, CKA_KEY_GEN_MECHANISM) == CKM_EC_KEY_PAIR_GEN);
    CHECK(get_bool(t, s, kp.public_key, CKA_LOCAL));
}

TOKEN_TEST("CKA_EC_POINT of a generated key is a DER OCTET STRING around 04||X||Y", "[objects][attributes][ec]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair k256 = generate_ec_key_pair(t, s, p256_params());
    const Bytes p256 = get_bytes(t, s, k256.public_key, CKA_EC_POINT);
    REQUIRE(p256.size() == 67);
    CHECK(Bytes(p256.begin(), p256.begin() + 3) == Bytes{0x04, 65, 0x04});
    CHECK(get_bytes(t, s, k256.public_key, CKA_EC_PARAMS) == p256_params());
    const KeyPair k384 = generate_ec_key_pair(t, s, p384_params());
    const Bytes p384 = get_bytes(t, s, k384.public_key, CKA_EC_POINT);
    REQUIRE(p384.size() == 99);
    CHECK(Bytes(p384.begin(), p384.begin() + 3) == Bytes{0x04, 97, 0x04});
}

// --- set_attributes -----------------------------------------------------------------------------

TOKEN_TEST("set_attributes changes label and id, and the change persists", "[objects][attributes]") {
    TestType m;
    init_token(*m);
    {
        auto& t = *m;
        CK_ULONG s = login_user(t);
        const KeyPair kp = generate_ec_key_pair(t, s, p256_params(), "old name");
        REQUIRE(code(t.set_attributes(s, kp.private_key, Template{}.add(CKA_LABEL, "new name").add(CKA_ID, Bytes{9, 9}))) ==
                no_error);
        CHECK(get_bytes(t, s, kp.private_key, CKA_LABEL) == to_bytes("new name"));
    }
    m.reload();
    auto& t = *m;
    CK_ULONG s = login_user(t);
    const CK_ULONG h = find_by_label(t, s, "new name");
    CHECK(get_ulong(t, s, h, CKA_CLASS) == CKO_PRIVATE_KEY);
    CHECK(get_bytes(t, s, h, CKA_ID) == Bytes{9, 9});
    CHECK(find_all(t, s, Template{}.add(CKA_LABEL, "old name")).size() == 1);  // the public key kept it
}

TOKEN_TEST("set_attributes of CKA_CLASS gives attribute_read_only and changes nothing", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    const CK_ULONG h = create(t, s, data_template("d", false));
    CHECK(code(t.set_attributes(s, h, Template{}.add(CKA_LABEL, "changed").add(CKA_CLASS, CKO_CERTIFICATE))) ==
          Errc::attribute_read_only);
    CHECK(get_ulong(t, s, h, CKA_CLASS) == CKO_DATA);
    CHECK(get_bytes(t, s, h, CKA_LABEL) == to_bytes("d"));
}

TOKEN_TEST("set_attributes with an attribute given twice gives template_inconsistent and changes nothing",
           "[objects][attributes]") {
    TestType m;
    init_token(*m);
    {
        auto& t = *m;
        CK_ULONG s = login_user(t);
        const CK_ULONG h = create(t, s, data_template("d"));
        CHECK(code(t.set_attributes(s, h, Template{}.add(CKA_LABEL, "a").add(CKA_LABEL, "b"))) ==
              Errc::template_inconsistent);
        CHECK(get_bytes(t, s, h, CKA_LABEL) == to_bytes("d"));
    }
    m.reload();
    CHECK((*m).corrupt_records() == 0);
    CK_ULONG s = login_user(*m);
    CHECK(find_all(*m, s, Template{}.add(CKA_LABEL, "d")).size() == 1);
}

TOKEN_TEST("CKA_SENSITIVE cannot be turned off", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CHECK(code(t.set_attributes(s, kp.private_key, Template{}.add(CKA_SENSITIVE, false))) == Errc::attribute_read_only);
    CHECK(code(t.set_attributes(s, kp.private_key, Template{}.add(CKA_EXTRACTABLE, true))) == Errc::attribute_read_only);
    CHECK(get_bool(t, s, kp.private_key, CKA_SENSITIVE));
    CHECK_FALSE(get_bool(t, s, kp.private_key, CKA_EXTRACTABLE));
}

TOKEN_TEST("set_attributes of a token object in a read-only session gives session_read_only", "[objects][attributes]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG rw = login_user(t);
    const CK_ULONG h = create(t, rw, data_template("d"));
    CK_ULONG ro = open_session(t, false);
    CHECK(code(t.set_attributes(ro, h, Template{}.add(CKA_LABEL, "x"))) == Errc::session_read_only);
    CHECK(code(t.destroy_object(ro, h)) == Errc::session_read_only);
    CHECK(get_bytes(t, rw, h, CKA_LABEL) == to_bytes("d"));
}

// --- sign and verify -----------------------------------------------------------------------------

TOKEN_TEST("EC P-256 keys sign and verify with every ECDSA mechanism", "[sign][ec]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    check_ec_mechanisms(t, s, generate_ec_key_pair(t, s, p256_params()), MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_MD_SHA256);
}

TOKEN_TEST("EC P-384 keys sign and verify with every ECDSA mechanism", "[sign][ec]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    check_ec_mechanisms(t, s, generate_ec_key_pair(t, s, p384_params()), MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_MD_SHA384);
}

TOKEN_TEST("RSA 2048 keys sign and verify with every RSA mechanism", "[sign][rsa]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_rsa_key_pair(t, s, 2048);
    CHECK(get_ulong(t, s, kp.public_key, CKA_MODULUS_BITS) == 2048);
    CHECK(get_bytes(t, s, kp.public_key, CKA_PUBLIC_EXPONENT) == Bytes{0x01, 0x00, 0x01});
    check_rsa_mechanisms(t, s, kp, 256);
}

TEST_CASE("SoftToken: RSA 3072 keys sign and verify", "[token][sign][rsa]") {
    RamTokenModel<> m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_rsa_key_pair(t, s, 3072);
    CHECK(get_ulong(t, s, kp.public_key, CKA_MODULUS_BITS) == 3072);
    check_rsa_mechanisms(t, s, kp, 384);
}

TOKEN_TEST("RSA key generation refuses unsupported sizes with key_size_range", "[sign][rsa]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    CK_MECHANISM mech{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    CHECK(code(t.generate_key_pair(s, mech, Template{}.add(CKA_MODULUS_BITS, 1024), Template{})) ==
          Errc::key_size_range);
    CHECK(find_all(t, s, Template{}).empty());
}

TOKEN_TEST("a flipped signature byte gives signature_invalid", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    SECTION("ECDSA") {
        const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
        CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
        for (std::size_t i : {std::size_t{0}, std::size_t{31}, std::size_t{32}, std::size_t{63}}) {
            Bytes sig = sign(t, s, mech, kp.private_key, message);
            sig[i] ^= 0x01;
            CHECK(verify(t, s, mech, kp.public_key, message, sig) == Errc::signature_invalid);
        }
        Bytes other = message;
        other[0] ^= 0x01;
        CHECK(verify(t, s, mech, kp.public_key, other, sign(t, s, mech, kp.private_key, message)) ==
              Errc::signature_invalid);
    }
    SECTION("RSA") {
        const KeyPair kp = import_rsa_key(t, s);
        CK_MECHANISM mech{CKM_SHA256_RSA_PKCS, nullptr, 0};
        for (std::size_t i : {std::size_t{0}, std::size_t{100}, std::size_t{255}}) {
            Bytes sig = sign(t, s, mech, kp.private_key, message);
            sig[i] ^= 0x01;
            CHECK(verify(t, s, mech, kp.public_key, message, sig) == Errc::signature_invalid);
        }
    }
}

TOKEN_TEST("a signature of the wrong length gives signature_len_range", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    Bytes sig = sign(t, s, mech, kp.private_key, message);
    Bytes longer = sig;
    longer.push_back(0);
    CHECK(verify(t, s, mech, kp.public_key, message, longer) == Errc::signature_len_range);
    sig.pop_back();
    CHECK(verify(t, s, mech, kp.public_key, message, sig) == Errc::signature_len_range);
    CHECK(verify_multipart(t, s, mech, kp.public_key, message, sig) == Errc::signature_len_range);
}

TOKEN_TEST("a sign length query returns the length and keeps the operation", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p384_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA384, nullptr, 0};
    REQUIRE(code(t.sign_init(s, mech, kp.private_key)) == no_error);
    auto len = t.sign(s, as_span(message), std::span<std::byte>{});
    REQUIRE(code(len) == no_error);
    CHECK(*len == 96);
    Bytes sig(*len);
    auto n = t.sign(s, as_span(message), as_out(sig));
    REQUIRE(code(n) == no_error);
    CHECK(*n == 96);
    CHECK(verify(t, s, mech, kp.public_key, message, sig) == no_error);
    // The operation ended with the signature.
    CHECK(code(t.sign(s, as_span(message), as_out(sig))) == Errc::operation_not_initialized);
}

TOKEN_TEST("a sign_final length query returns the length and keeps the operation", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    REQUIRE(code(t.sign_init(s, mech, kp.private_key)) == no_error);
    REQUIRE(code(t.sign_update(s, as_span(message))) == no_error);
    auto len = t.sign_final(s, std::span<std::byte>{});
    REQUIRE(code(len) == no_error);
    CHECK(*len == 64);
    Bytes sig(*len);
    REQUIRE(code(t.sign_final(s, as_out(sig))) == no_error);
    CHECK(verify(t, s, mech, kp.public_key, message, sig) == no_error);
}

TOKEN_TEST("a too-small signature buffer gives buffer_too_small with the length and keeps the operation", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    REQUIRE(code(t.sign_init(s, mech, kp.private_key)) == no_error);
    Bytes small(63);
    auto r = t.sign(s, as_span(message), as_out(small));
    REQUIRE(code(r) == Errc::buffer_too_small);
    CHECK(r.error().native == 64);
    Bytes sig(64);
    auto n = t.sign(s, as_span(message), as_out(sig));
    REQUIRE(code(n) == no_error);
    CHECK(verify(t, s, mech, kp.public_key, message, sig) == no_error);
}

TOKEN_TEST("sign_init with a public key gives key_type_inconsistent", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    CHECK(code(t.sign_init(s, mech, kp.public_key)) == Errc::key_type_inconsistent);
    CHECK(code(t.verify_init(s, mech, kp.private_key)) == Errc::key_type_inconsistent);
}

TOKEN_TEST("sign_init with an RSA mechanism on an EC key gives key_type_inconsistent", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    for (CK_MECHANISM_TYPE type : {CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS}) {
        CK_MECHANISM mech{type, nullptr, 0};
        CHECK(code(t.sign_init(s, mech, kp.private_key)) == Errc::key_type_inconsistent);
    }
    // The failed init left no operation behind.
    CHECK(code(t.sign(s, as_span(message), std::span<std::byte>{})) == Errc::operation_not_initialized);
}

TOKEN_TEST("sign_init with a digest or unknown mechanism gives mechanism_invalid", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    for (CK_MECHANISM_TYPE type : {CKM_SHA256, CKM_EC_KEY_PAIR_GEN, CKM_AES_CBC}) {
        CK_MECHANISM mech{type, nullptr, 0};
        CHECK(code(t.sign_init(s, mech, kp.private_key)) == Errc::mechanism_invalid);
    }
}

TOKEN_TEST("PSS without valid CK_RSA_PKCS_PSS_PARAMS gives mechanism_param_invalid", "[sign][rsa]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = import_rsa_key(t, s);
    CK_MECHANISM none{CKM_SHA256_RSA_PKCS_PSS, nullptr, 0};
    CHECK(code(t.sign_init(s, none, kp.private_key)) == Errc::mechanism_param_invalid);
    CK_RSA_PKCS_PSS_PARAMS mismatched{CKM_SHA384, CKG_MGF1_SHA256, 32};  // hashAlg must be the mechanism's hash
    CK_MECHANISM bad{CKM_SHA256_RSA_PKCS_PSS, &mismatched, sizeof mismatched};
    CHECK(code(t.sign_init(s, bad, kp.private_key)) == Errc::mechanism_param_invalid);
    CK_RSA_PKCS_PSS_PARAMS params{CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM extra{CKM_SHA256_RSA_PKCS, &params, sizeof params};  // v1.5 takes no parameter
    CHECK(code(t.sign_init(s, extra, kp.private_key)) == Errc::mechanism_param_invalid);
}

TOKEN_TEST("a key with CKA_SIGN false gives key_function_not_permitted", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    Template tmpl;
    tmpl.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_SIGN, false)
        .add(CKA_EC_PARAMS, p256_params()).add(CKA_VALUE, make_ec_key().d);
    const CK_ULONG no_sign = create(t, s, tmpl);
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    CHECK(code(t.sign_init(s, mech, no_sign)) == Errc::key_function_not_permitted);
}

TOKEN_TEST("CKA_ALLOWED_MECHANISMS limits the mechanisms a key signs with, also after a reload", "[sign]") {
    TestType m;
    init_token(*m);
    {
        CK_ULONG s = login_user(*m);
        const CK_MECHANISM_TYPE allowed[] = {CKM_ECDSA_SHA256, CKM_ECDSA_SHA384};
        create(*m, s, ec_private_template(make_ec_key().d, "restricted").add(CKA_ALLOWED_MECHANISMS, std::as_bytes(std::span(allowed))));
    }
    m.reload();
    auto& t = *m;
    CK_ULONG s = login_user(t);
    const CK_ULONG key = find_by_label(t, s, "restricted");
    CK_MECHANISM raw{CKM_ECDSA, nullptr, 0}, sha256{CKM_ECDSA_SHA256, nullptr, 0}, sha384{CKM_ECDSA_SHA384, nullptr, 0};
    CHECK(code(t.sign_init(s, raw, key)) == Errc::mechanism_invalid);
    CHECK(sign(t, s, sha256, key, message).size() == 64);
    CHECK(sign(t, s, sha384, key, message).size() == 64);
    const Bytes stored = get_bytes(t, s, key, CKA_ALLOWED_MECHANISMS);
    REQUIRE(stored.size() == 2 * sizeof(CK_MECHANISM_TYPE));
    CK_MECHANISM_TYPE back[2];
    std::memcpy(back, stored.data(), sizeof back);
    CHECK(back[0] == CKM_ECDSA_SHA256);
    CHECK(back[1] == CKM_ECDSA_SHA384);
}

TOKEN_TEST("a second sign_init gives operation_active and keeps the first operation", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    REQUIRE(code(t.sign_init(s, mech, kp.private_key)) == no_error);
    CHECK(code(t.sign_init(s, mech, kp.private_key)) == Errc::operation_active);
    REQUIRE(code(t.verify_init(s, mech, kp.public_key)) == no_error);
    CHECK(code(t.verify_init(s, mech, kp.public_key)) == Errc::operation_active);
    Bytes sig(64);
    REQUIRE(code(t.sign(s, as_span(message), as_out(sig))) == no_error);
    CHECK(code(t.verify(s, as_span(message), as_span(sig))) == no_error);
}

TOKEN_TEST("sign, verify and their parts without init give operation_not_initialized", "[sign]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    Bytes sig(64);
    CHECK(code(t.sign(s, as_span(message), as_out(sig))) == Errc::operation_not_initialized);
    CHECK(code(t.sign_update(s, as_span(message))) == Errc::operation_not_initialized);
    CHECK(code(t.sign_final(s, as_out(sig))) == Errc::operation_not_initialized);
    CHECK(code(t.verify(s, as_span(message), as_span(sig))) == Errc::operation_not_initialized);
    CHECK(code(t.verify_update(s, as_span(message))) == Errc::operation_not_initialized);
    CHECK(code(t.verify_final(s, as_span(sig))) == Errc::operation_not_initialized);
}

TOKEN_TEST("single-part sign after sign_update gives an error and ends the operation", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    REQUIRE(code(t.sign_init(s, mech, kp.private_key)) == no_error);
    REQUIRE(code(t.sign_update(s, as_span(message))) == no_error);
    Bytes sig(64);
    CHECK(code(t.sign(s, as_span(message), as_out(sig))) != no_error);
    CHECK(code(t.sign_final(s, as_out(sig))) == Errc::operation_not_initialized);
}

TOKEN_TEST("logout ends a sign operation and hides the private key", "[sign]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    REQUIRE(code(t.sign_init(s, mech, kp.private_key)) == no_error);
    REQUIRE(code(t.logout(s)) == no_error);
    Bytes sig(64);
    CHECK(code(t.sign(s, as_span(message), as_out(sig))) == Errc::operation_not_initialized);
    CHECK(code(t.sign_init(s, mech, kp.private_key)) == Errc::key_handle_invalid);
}

// --- digest and random ---------------------------------------------------------------------------

TOKEN_TEST("digest equals mbedTLS's SHA-256, SHA-384 and SHA-512, single and multi-part", "[digest]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t, false);
    const std::pair<CK_MECHANISM_TYPE, mbedtls_md_type_t> cases[] = {
        {CKM_SHA256, MBEDTLS_MD_SHA256}, {CKM_SHA384, MBEDTLS_MD_SHA384}, {CKM_SHA512, MBEDTLS_MD_SHA512}};
    for (const auto& [type, md] : cases) {
        INFO("mechanism 0x" << std::hex << type);
        const Bytes want = hash(md, message);
        CK_MECHANISM mech{type, nullptr, 0};

        REQUIRE(code(t.digest_init(s, mech)) == no_error);
        auto len = t.digest(s, as_span(message), std::span<std::byte>{});
        REQUIRE(code(len) == no_error);
        CHECK(*len == want.size());
        Bytes single(*len);
        REQUIRE(code(t.digest(s, as_span(message), as_out(single))) == no_error);
        CHECK(single == want);

        REQUIRE(code(t.digest_init(s, mech)) == no_error);
        REQUIRE(code(t.digest_update(s, std::as_bytes(std::span(message).first(10)))) == no_error);
        REQUIRE(code(t.digest_update(s, std::as_bytes(std::span(message).subspan(10)))) == no_error);
        Bytes multi(want.size());
        auto n = t.digest_final(s, as_out(multi));
        REQUIRE(code(n) == no_error);
        CHECK(*n == want.size());
        CHECK(multi == want);
    }
}

TOKEN_TEST("a too-small digest buffer gives buffer_too_small and keeps the operation", "[digest]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t, false);
    CK_MECHANISM mech{CKM_SHA256, nullptr, 0};
    REQUIRE(code(t.digest_init(s, mech)) == no_error);
    Bytes small(31);
    auto r = t.digest(s, as_span(message), as_out(small));
    REQUIRE(code(r) == Errc::buffer_too_small);
    CHECK(r.error().native == 32);
    Bytes out(32);
    REQUIRE(code(t.digest(s, as_span(message), as_out(out))) == no_error);
    CHECK(out == hash(MBEDTLS_MD_SHA256, message));
}

TOKEN_TEST("generate_random gives different outputs", "[random]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t, false);
    Bytes a(32), b(32);
    REQUIRE(code(t.generate_random(s, as_out(a))) == no_error);
    REQUIRE(code(t.generate_random(s, as_out(b))) == no_error);
    CHECK(a != b);
    CHECK(a != Bytes(32, 0));
    Bytes big(5000);  // longer than one DRBG request
    REQUIRE(code(t.generate_random(s, as_out(big))) == no_error);
    CHECK(Bytes(big.end() - 32, big.end()) != Bytes(32, 0));
}

// --- persistence ---------------------------------------------------------------------------------

TOKEN_TEST("token objects survive a reload and their keys still sign", "[persistence]") {
    TestType m;
    init_token(*m);
    Bytes point;
    {
        auto& t = *m;
        CK_ULONG s = login_user(t);
        const KeyPair kp = generate_ec_key_pair(t, s, p256_params(), "kept key");
        point = get_bytes(t, s, kp.public_key, CKA_EC_POINT);
        create(t, s, certificate_template(make_certificate("CN=kept", "CN=ca", 5), "kept cert"));
    }
    m.reload();
    auto& t = *m;
    CK_ULONG s = login_user(t);
    CHECK(find_all(t, s, Template{}).size() == 3);
    CHECK(find_all(t, s, Template{}.add(CKA_LABEL, "kept cert")).size() == 1);
    const CK_ULONG priv = find_all(t, s, Template{}.add(CKA_LABEL, "kept key").add(CKA_CLASS, CKO_PRIVATE_KEY)).at(0);
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    const Bytes sig = sign(t, s, mech, priv, message);
    CHECK(mbed_ecdsa_verify(MBEDTLS_ECP_DP_SECP256R1, point, hash(MBEDTLS_MD_SHA256, message), sig));
}

TOKEN_TEST("session objects vanish when their session closes and are not stored", "[persistence]") {
    TestType m;
    auto& t = *m;
    CK_ULONG a = open_session(t);
    CK_ULONG b = open_session(t);
    const CK_ULONG h = create(t, a, data_template("ephemeral", false));
    CHECK(contains(find_all(t, b, Template{}), h));  // visible to every session meanwhile
    CHECK(record_ids(m.nvm()) == std::vector<RecordId>{0});
    REQUIRE(code(t.close_session(a)) == no_error);
    CHECK(find_all(t, b, Template{}).empty());
    Bytes label(16);
    CK_ATTRIBUTE attrib = attr(CKA_LABEL, label);
    CHECK(code(t.get_attributes(b, h, std::span(&attrib, 1))) == Errc::object_handle_invalid);
}

TOKEN_TEST("destroy_object of a token object removes its record", "[persistence]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const auto before = record_ids(m.nvm());
    const CK_ULONG h = create(t, s, data_template("d"));
    REQUIRE(record_ids(m.nvm()).size() == before.size() + 1);
    REQUIRE(code(t.destroy_object(s, h)) == no_error);
    CHECK(record_ids(m.nvm()) == before);
    CHECK(code(t.destroy_object(s, h)) == Errc::object_handle_invalid);
    m.reload();
    CK_ULONG s2 = login_user(*m);
    CHECK(find_all(*m, s2, Template{}).empty());
}

TOKEN_TEST("a destroyed object's handle is not reused for a new object", "[persistence]") {
    TestType m;
    auto& t = *m;
    CK_ULONG s = open_session(t);
    const CK_ULONG old = create(t, s, data_template("first", false));
    REQUIRE(code(t.destroy_object(s, old)) == no_error);
    const CK_ULONG fresh = create(t, s, data_template("second", false));
    CHECK(fresh != old);
    Bytes label(16);
    CK_ATTRIBUTE a = attr(CKA_LABEL, label);
    CHECK(code(t.get_attributes(s, old, std::span(&a, 1))) == Errc::object_handle_invalid);
}

TEST_CASE("SoftToken: a failing Nvm leaves the token and the store unchanged", "[token][persistence]") {
    RamTokenModel<> m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const CK_ULONG kept = create(t, s, data_template("kept"));
    const auto records = record_ids(m.nvm());
    const auto objects = find_all(t, s, Template{});

    SECTION("create_object") {
        m.nvm().fail_after(0);
        CHECK(code(t.create_object(s, data_template("new"))) == Errc::nvm_io);
        m.nvm().clear_failure();
        CHECK(find_all(t, s, Template{}.add(CKA_LABEL, "new")).empty());
    }
    SECTION("generate_key_pair") {
        m.nvm().fail_after(0);
        CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
        Template pub, priv;
        pub.add(CKA_EC_PARAMS, p256_params()).add(CKA_TOKEN, true);
        priv.add(CKA_TOKEN, true);
        CHECK(code(t.generate_key_pair(s, mech, pub, priv)) == Errc::nvm_io);
        m.nvm().clear_failure();
    }
    SECTION("destroy_object") {
        m.nvm().fail_after(0);
        CHECK(code(t.destroy_object(s, kept)) == Errc::nvm_io);
        m.nvm().clear_failure();
        CHECK(get_bytes(t, s, kept, CKA_LABEL) == to_bytes("kept"));
    }
    SECTION("set_attributes") {
        m.nvm().fail_after(0);
        CHECK(code(t.set_attributes(s, kept, Template{}.add(CKA_LABEL, "renamed"))) == Errc::nvm_io);
        m.nvm().clear_failure();
        CHECK(get_bytes(t, s, kept, CKA_LABEL) == to_bytes("kept"));
        m.reload();
        s = login_user(*m);
        CHECK(find_all(*m, s, Template{}.add(CKA_LABEL, "kept")).size() == 1);
    }
    CHECK(record_ids(m.nvm()) == records);
    CHECK(find_all(*m, s, Template{}).size() == objects.size());
}

TOKEN_TEST("an imported RSA private key signs", "[sign][rsa][import]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = import_rsa_key(t, s);
    const RsaComponents& k = test_rsa_key();
    CHECK_FALSE(get_bool(t, s, kp.private_key, CKA_LOCAL));
    CHECK_FALSE(get_bool(t, s, kp.private_key, CKA_ALWAYS_SENSITIVE));
    CHECK(get_ulong(t, s, kp.public_key, CKA_MODULUS_BITS) == 2048);

    CK_MECHANISM v15{CKM_SHA256_RSA_PKCS, nullptr, 0};
    CHECK(mbed_rsa_verify(k.n, k.e, MBEDTLS_MD_SHA256, hash(MBEDTLS_MD_SHA256, message), sign(t, s, v15, kp.private_key, message)));
    CK_RSA_PKCS_PSS_PARAMS params{CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM pss{CKM_SHA256_RSA_PKCS_PSS, &params, sizeof params};
    CHECK(mbed_rsa_verify(k.n, k.e, MBEDTLS_MD_SHA256, hash(MBEDTLS_MD_SHA256, message), sign(t, s, pss, kp.private_key, message),
                          32, MBEDTLS_MD_SHA256));
}

TOKEN_TEST("an RSA private key whose parts do not match gives attribute_value_invalid", "[rsa][import]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const RsaComponents& k = test_rsa_key();
    Bytes d = k.d;
    d.back() ^= 0x02;
    Template priv;
    priv.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_RSA).add(CKA_MODULUS, k.n)
        .add(CKA_PUBLIC_EXPONENT, k.e).add(CKA_PRIVATE_EXPONENT, d).add(CKA_PRIME_1, k.p).add(CKA_PRIME_2, k.q);
    CHECK(code(t.create_object(s, priv)) == Errc::attribute_value_invalid);
}

TOKEN_TEST("an imported EC private key signs", "[sign][ec][import]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const EcKey k = make_ec_key();
    const CK_ULONG priv = create(t, s, ec_private_template(k.d));
    const CK_ULONG pub = create(t, s, ec_public_template(k.point, "imported ec pub"));
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    const Bytes sig = sign(t, s, mech, priv, message);
    CHECK(mbed_ecdsa_verify(MBEDTLS_ECP_DP_SECP256R1, k.point, hash(MBEDTLS_MD_SHA256, message), sig));
    CHECK(verify(t, s, mech, pub, message, sig) == no_error);
    CHECK(get_bool(t, s, priv, CKA_SENSITIVE));
}

TOKEN_TEST("an EC private scalar of 0 or at least the group order gives attribute_value_invalid", "[ec][import]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const Bytes order = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                         0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};
    Bytes order_plus_one = order;
    order_plus_one.back() += 1;
    for (const Bytes& d : {Bytes(32, 0x00), order, order_plus_one, Bytes(32, 0xFF), Bytes{}, Bytes(33, 0x01)}) {
        CHECK(code(t.create_object(s, ec_private_template(d))) == Errc::attribute_value_invalid);
    }
    CHECK(find_all(t, s, Template{}).empty());
    Bytes below = order;
    below.back() -= 1;  // n - 1 is the largest valid scalar
    CHECK(code(t.create_object(s, ec_private_template(below))) == no_error);
}

TOKEN_TEST("an EC public key whose point is not on the curve gives attribute_value_invalid", "[ec][import]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    Bytes point = make_ec_key().point;
    point.back() ^= 0x01;
    CHECK(code(t.create_object(s, ec_public_template(point, "off curve"))) == Errc::attribute_value_invalid);
}

TOKEN_TEST("a corrupted object record is skipped at load and left in the store", "[persistence]") {
    TestType m;
    init_token(*m);
    {
        CK_ULONG s = login_user(*m);
        create(*m, s, data_template("one"));
        create(*m, s, data_template("two"));
        create(*m, s, data_template("three"));
    }
    auto ids = record_ids(m.nvm());
    REQUIRE(ids.size() == 4);
    const RecordId victim = ids[2];
    Bytes rec(8192);
    auto len = m.nvm().load(victim, as_out(rec));
    REQUIRE(code(len) == no_error);
    rec.resize(*len - 3);  // the last attribute now runs past the end
    REQUIRE(code(m.nvm().store(victim, as_span(rec))) == no_error);

    m.reload();
    CHECK((*m).corrupt_records() == 1);
    CK_ULONG s = login_user(*m);
    CHECK(find_all(*m, s, Template{}.add(CKA_CLASS, CKO_DATA)).size() == 2);
    CHECK(record_ids(m.nvm()) == ids);
    Bytes after(8192);
    auto len2 = m.nvm().load(victim, as_out(after));
    REQUIRE(code(len2) == no_error);
    after.resize(*len2);
    CHECK(after == rec);
    // New objects get other records: the damaged one is never overwritten.
    create(*m, s, data_template("four"));
    CHECK(record_ids(m.nvm()).size() == 5);
}

TOKEN_TEST("re-initializing also erases object records that failed to load", "[persistence][pin]") {
    TestType m;
    init_token(*m);
    {
        CK_ULONG s = login_user(*m);
        create(*m, s, ec_private_template(make_ec_key().d, "old key"));
    }
    auto ids = record_ids(m.nvm());
    REQUIRE(ids.size() == 2);
    Bytes rec(8192);
    auto len = m.nvm().load(ids[1], as_out(rec));
    REQUIRE(code(len) == no_error);
    rec[0] = 'X';  // not an object record any more, but the key bytes are still in it
    rec.resize(*len);
    REQUIRE(code(m.nvm().store(ids[1], as_span(rec))) == no_error);
    m.reload();
    REQUIRE((*m).corrupt_records() == 1);
    REQUIRE(code((*m).init_token(pin(so_pin), token_label("fresh owner"))) == no_error);
    CHECK(record_ids(m.nvm()) == std::vector<RecordId>{0});
    CHECK((*m).corrupt_records() == 0);
}

TOKEN_TEST("records in the board's id range are neither loaded nor erased by the token", "[persistence]") {
    TestType m;
    init_token(*m);
    const RecordId seed = std::remove_reference_t<decltype(*m)>::first_platform_record + 7;
    const Bytes board_data{0xB0, 0xA4, 0xD0};
    REQUIRE(code(m.nvm().store(seed, as_span(board_data))) == no_error);
    m.reload();
    CHECK((*m).corrupt_records() == 0);
    REQUIRE(code((*m).init_token(pin(so_pin), token_label("fresh owner"))) == no_error);
    CHECK(record_ids(m.nvm()) == std::vector<RecordId>{0, seed});
    Bytes after(16);
    auto len = m.nvm().load(seed, as_out(after));
    REQUIRE(code(len) == no_error);
    after.resize(*len);
    CHECK(after == board_data);
}

TEMPLATE_LIST_TEST_CASE("SoftToken: with login_required false, private objects are usable without login",
                        "[token][freertos]", NoLoginTokenModels) {
    TestType m;
    auto& t = *m;
    CHECK_FALSE(info_of(t).flags & CKF_LOGIN_REQUIRED);
    CK_ULONG s = open_session(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params(), "Device Priv TLS Key");
    CHECK(get_bool(t, s, kp.private_key, CKA_PRIVATE));
    CHECK(find_all(t, s, Template{}.add(CKA_CLASS, CKO_PRIVATE_KEY)) == std::vector<CK_ULONG>{kp.private_key});
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    CHECK(verify(t, s, mech, kp.public_key, message, sign(t, s, mech, kp.private_key, message)) == no_error);
    // Still sensitive without a login.
    CK_ATTRIBUTE a{CKA_VALUE, nullptr, 0};
    CHECK(code(t.get_attributes(s, kp.private_key, std::span(&a, 1))) == Errc::attribute_sensitive);
}

TOKEN_TEST("concurrent signing on separate sessions with one shared key", "[sign][threads]") {
    TestType m;
    auto& t = *m;
    init_token(t);
    CK_ULONG s = login_user(t);
    const KeyPair kp = generate_ec_key_pair(t, s, p256_params());
    const Bytes point = get_bytes(t, s, kp.public_key, CKA_EC_POINT);

    constexpr int threads = 8, per_thread = 200;
    std::atomic<int> signed_ok{0}, verified{0}, failures{0};
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            auto h = t.open_session(CKF_SERIAL_SESSION);
            if (!h) {
                failures += per_thread;
                return;
            }
            const CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
            for (int j = 0; j < per_thread; ++j) {
                const Bytes msg = to_bytes("thread " + std::to_string(i) + " message " + std::to_string(j));
                Bytes sig(64);
                if (!t.sign_init(*h, mech, kp.private_key)) {
                    ++failures;
                    continue;
                }
                auto n = t.sign(*h, as_span(msg), as_out(sig));
                if (!n || *n != 64) {
                    ++failures;
                    continue;
                }
                ++signed_ok;
                if (mbed_ecdsa_verify(MBEDTLS_ECP_DP_SECP256R1, point, hash(MBEDTLS_MD_SHA256, msg), sig)) ++verified;
            }
            if (!t.close_session(*h)) ++failures;
        });
    }
    for (auto& th : pool) th.join();
    CHECK(failures == 0);
    CHECK(signed_ok == threads * per_thread);
    CHECK(verified == threads * per_thread);
}
