// SPDX-License-Identifier: MIT
#pragma once
// SoftToken fixtures for tests: one model per Nvm that builds a token and can reload it
// from the same store, PKCS#11 template building, and plain-mbedTLS references (certificates,
// RSA keys, hashes, signature verification) that check the token from outside.
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/nvm/file_nvm.hpp>
#include <p11tls/nvm/ram_nvm.hpp>
#include <p11tls/token/soft_token.hpp>
#include <p11tls/token/template.hpp>

#include "support/device_token_models.hpp"
#include "support/result.hpp"
#include "support/temp_dir.hpp"

namespace p11tls::test {

using Bytes = std::vector<unsigned char>;

/// Token settings for tests: PBKDF2 cut to the minimum the token accepts, to keep tests fast.
struct TestConfig : SoftTokenConfig {
    static constexpr unsigned pin_iterations = 1000;
};
/// The FreeRTOS-compatible mode: private objects usable without C_Login.
struct NoLoginConfig : TestConfig {
    static constexpr bool login_required = false;
};

inline constexpr std::string_view so_pin = "so-secret-1";
inline constexpr std::string_view user_pin = "user-1234";
inline constexpr std::string_view wrong_pin = "not-the-pin";

inline std::span<const char> pin(std::string_view p) noexcept { return {p.data(), p.size()}; }

/// A 32-character blank-padded token label.
inline std::array<char, 32> token_label(std::string_view text) {
    std::array<char, 32> l;
    l.fill(' ');
    std::memcpy(l.data(), text.data(), std::min(text.size(), l.size()));
    return l;
}

/// Bytes of a string (no terminator).
inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::span<const std::byte> as_span(const Bytes& b) noexcept { return std::as_bytes(std::span(b)); }
inline std::span<std::byte> as_out(Bytes& b) noexcept { return std::as_writable_bytes(std::span(b)); }

// --- CK_ATTRIBUTE construction -------------------------------------------------------------

/// A CK_ATTRIBUTE pointing at caller-owned storage.
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, CK_BBOOL& v) noexcept { return {type, &v, sizeof v}; }
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, CK_ULONG& v) noexcept { return {type, &v, sizeof v}; }
inline CK_ATTRIBUTE attr(CK_ATTRIBUTE_TYPE type, Bytes& v) noexcept {
    return {type, v.empty() ? nullptr : v.data(), static_cast<CK_ULONG>(v.size())};
}

/// The library's token::Template, held on the heap so a test can return, move and chain it,
/// with `Bytes` values and an implicit conversion to the span the token takes:
/// `t.create_object(s, Template{}.add(CKA_CLASS, CKO_DATA).add(CKA_TOKEN, true))`.
class Template {
public:
    using Builder = token::Template<24, 4096>;

    Template() : t_(std::make_unique<Builder>()) {}

    template <class V>
    Template& add(CK_ATTRIBUTE_TYPE type, const V& v) {
        t_->add(type, v);
        REQUIRE(t_->ok());
        return *this;
    }
    Template& add(CK_ATTRIBUTE_TYPE type, const Bytes& v) { return add(type, std::as_bytes(std::span(v))); }

    [[nodiscard]] std::span<const CK_ATTRIBUTE> span() const noexcept { return std::as_const(*t_).view(); }
    operator std::span<const CK_ATTRIBUTE>() const noexcept { return span(); }

private:
    std::unique_ptr<Builder> t_;
};

/// DER OBJECT IDENTIFIERs for CKA_EC_PARAMS.
inline Bytes p256_params() { return {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07}; }
inline Bytes p384_params() { return {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22}; }

// --- token helpers ------------------------------------------------------------------------

template <class Tok>
CK_ULONG open_session(Tok& t, bool rw = true) {
    auto h = t.open_session(CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0));
    REQUIRE(code(h) == no_error);
    return *h;
}

/// C_InitToken, then the SO sets the user PIN; no sessions are left open, nobody logged in.
template <class Tok>
void init_token(Tok& t) {
    REQUIRE(code(t.init_token(pin(so_pin), token_label("p11tls test"))) == no_error);
    CK_ULONG s = open_session(t);
    REQUIRE(code(t.login(s, CKU_SO, pin(so_pin))) == no_error);
    REQUIRE(code(t.init_pin(s, pin(user_pin))) == no_error);
    REQUIRE(code(t.close_session(s)) == no_error);
}

/// Opens a R/W session and logs the user in (the token must be initialized).
template <class Tok>
CK_ULONG login_user(Tok& t) {
    CK_ULONG s = open_session(t);
    REQUIRE(code(t.login(s, CKU_USER, pin(user_pin))) == no_error);
    return s;
}

/// All handles a find with `tmpl` returns.
template <class Tok>
std::vector<CK_ULONG> find_all(Tok& t, CK_ULONG session, std::span<const CK_ATTRIBUTE> tmpl) {
    REQUIRE(code(t.find_init(session, tmpl)) == no_error);
    std::vector<CK_ULONG> all;
    std::array<CK_ULONG, 4> batch;
    for (;;) {
        auto n = t.find(session, batch);
        REQUIRE(code(n) == no_error);
        if (*n == 0) break;
        all.insert(all.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    REQUIRE(code(t.find_final(session)) == no_error);
    return all;
}

/// The handle of the one object with this label (fails the test if there are not exactly one).
template <class Tok>
CK_ULONG find_by_label(Tok& t, CK_ULONG session, std::string_view label) {
    auto hits = find_all(t, session, Template{}.add(CKA_LABEL, label));
    REQUIRE(hits.size() == 1);
    return hits[0];
}

/// An attribute's value, by a length query then a read.
template <class Tok>
Bytes get_bytes(Tok& t, CK_ULONG session, CK_ULONG object, CK_ATTRIBUTE_TYPE type) {
    CK_ATTRIBUTE a{type, nullptr, 0};
    REQUIRE(code(t.get_attributes(session, object, std::span(&a, 1))) == no_error);
    Bytes v(a.ulValueLen);
    a.pValue = v.data();
    REQUIRE(code(t.get_attributes(session, object, std::span(&a, 1))) == no_error);
    v.resize(a.ulValueLen);
    return v;
}

template <class Tok>
CK_ULONG get_ulong(Tok& t, CK_ULONG session, CK_ULONG object, CK_ATTRIBUTE_TYPE type) {
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = attr(type, v);
    REQUIRE(code(t.get_attributes(session, object, std::span(&a, 1))) == no_error);
    return v;
}

template <class Tok>
bool get_bool(Tok& t, CK_ULONG session, CK_ULONG object, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a = attr(type, v);
    REQUIRE(code(t.get_attributes(session, object, std::span(&a, 1))) == no_error);
    return v != CK_FALSE;
}

struct KeyPair {
    CK_ULONG public_key;
    CK_ULONG private_key;
};

/// Generates an EC key pair on `params` (p256_params() or p384_params()); both objects carry
/// `label` and `id`.
template <class Tok>
KeyPair generate_ec_key_pair(Tok& t, CK_ULONG session, const Bytes& params, std::string_view label = "ec key",
                             bool token_objects = true, const Bytes& id = {0x01}) {
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    Template pub, priv;
    pub.add(CKA_EC_PARAMS, params).add(CKA_TOKEN, token_objects).add(CKA_LABEL, label).add(CKA_ID, id).add(CKA_VERIFY, true);
    priv.add(CKA_TOKEN, token_objects).add(CKA_LABEL, label).add(CKA_ID, id).add(CKA_SIGN, true).add(CKA_PRIVATE, true);
    auto kp = t.generate_key_pair(session, mech, pub, priv);
    REQUIRE(code(kp) == no_error);
    return {kp->public_key, kp->private_key};
}

template <class Tok>
KeyPair generate_rsa_key_pair(Tok& t, CK_ULONG session, CK_ULONG bits, std::string_view label = "rsa key",
                              bool token_objects = true) {
    CK_MECHANISM mech{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    Template pub, priv;
    pub.add(CKA_MODULUS_BITS, bits).add(CKA_PUBLIC_EXPONENT, Bytes{0x01, 0x00, 0x01}).add(CKA_TOKEN, token_objects)
        .add(CKA_LABEL, label).add(CKA_VERIFY, true);
    priv.add(CKA_TOKEN, token_objects).add(CKA_LABEL, label).add(CKA_SIGN, true);
    auto kp = t.generate_key_pair(session, mech, pub, priv);
    REQUIRE(code(kp) == no_error);
    return {kp->public_key, kp->private_key};
}

/// Single-part sign; fails the test on error.
template <class Tok>
Bytes sign(Tok& t, CK_ULONG session, const CK_MECHANISM& mech, CK_ULONG key, const Bytes& data) {
    REQUIRE(code(t.sign_init(session, mech, key)) == no_error);
    Bytes sig(512);
    auto n = t.sign(session, as_span(data), as_out(sig));
    REQUIRE(code(n) == no_error);
    sig.resize(*n);
    return sig;
}

/// The record ids in a token's Nvm.
template <class N>
std::vector<RecordId> record_ids(const N& nvm) {
    std::vector<RecordId> ids(512);
    auto n = nvm.list(ids);
    REQUIRE(code(n) == no_error);
    ids.resize(*n);
    std::sort(ids.begin(), ids.end());
    return ids;
}

// --- token models: one per Nvm ------------------------------------------------------------

/// A SoftToken over a RamNvm. `reload()` copies the store out, destroys the token and loads a
/// new one over the copy, like a reset of a board whose RAM store survived.
template <class Config = TestConfig>
struct RamTokenModel {
    using nvm_type = RamNvm<>;
    using token_type = SoftToken<nvm_type, GetrandomEntropy, Config>;
    static constexpr bool injectable = true;

    std::unique_ptr<token_type> token;

    RamTokenModel() { load(std::make_unique<nvm_type>()); }
    void reload() {
        auto saved = std::make_unique<nvm_type>(token->nvm());
        token.reset();
        load(std::move(saved));
    }
    nvm_type& nvm() { return token->nvm(); }
    token_type& operator*() { return *token; }

private:
    void load(std::unique_ptr<nvm_type> nvm) {
        token = std::make_unique<token_type>(std::move(*nvm), GetrandomEntropy{});
        REQUIRE(code(token->load()) == no_error);
    }
};

/// A SoftToken over a FileNvm in a fresh temp directory. `reload()` destroys the token
/// (closing the store) and opens the directory again.
template <class Config = TestConfig>
struct FileTokenModel {
    using nvm_type = FileNvm;
    using token_type = SoftToken<nvm_type, GetrandomEntropy, Config>;
    static constexpr bool injectable = false;

    TempDir dir;
    std::unique_ptr<token_type> token;

    FileTokenModel() { load(); }
    void reload() {
        token.reset();
        load();
    }
    nvm_type& nvm() { return token->nvm(); }
    token_type& operator*() { return *token; }

private:
    void load() {
        auto nvm = FileNvm::open(dir.path());
        REQUIRE(code(nvm) == no_error);
        token = std::make_unique<token_type>(std::move(*nvm), GetrandomEntropy{});
        REQUIRE(code(token->load()) == no_error);
    }
};

using TokenModels = std::tuple<RamTokenModel<>, FileTokenModel<>, FlashTokenModel<TestConfig>, EepromTokenModel<TestConfig>,
                               SealedFlashTokenModel<TestConfig>>;
using NoLoginTokenModels = std::tuple<RamTokenModel<NoLoginConfig>, FileTokenModel<NoLoginConfig>,
                                      FlashTokenModel<NoLoginConfig>, EepromTokenModel<NoLoginConfig>>;

// --- plain mbedTLS references -------------------------------------------------------------

/// A CTR_DRBG for test-side key and certificate generation.
class TestRng {
public:
    TestRng() {
        mbedtls_entropy_init(&entropy_);
        mbedtls_ctr_drbg_init(&drbg_);
        static constexpr unsigned char personal[] = "p11tls tests";
        REQUIRE(mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, personal, sizeof personal) == 0);
    }
    ~TestRng() {
        mbedtls_ctr_drbg_free(&drbg_);
        mbedtls_entropy_free(&entropy_);
    }
    TestRng(const TestRng&) = delete;
    TestRng& operator=(const TestRng&) = delete;
    static int f(void* p, unsigned char* out, std::size_t n) { return mbedtls_ctr_drbg_random(p, out, n); }
    void* p() noexcept { return &drbg_; }

private:
    mbedtls_entropy_context entropy_;
    mbedtls_ctr_drbg_context drbg_;
};

/// The hash of `data` by plain mbedTLS; empty on failure. Uses no Catch2 macros, so threads
/// may call it.
inline Bytes hash(mbedtls_md_type_t md, const Bytes& data) {
    const mbedtls_md_info_t* info = mbedtls_md_info_from_type(md);
    if (!info) return {};
    Bytes out(mbedtls_md_get_size(info));
    if (mbedtls_md(info, data.data(), data.size(), out.data()) != 0) return {};
    return out;
}

inline Bytes mpi_bytes(const mbedtls_mpi& x, std::size_t len = 0) {
    Bytes b(len ? len : mbedtls_mpi_size(&x));
    REQUIRE(mbedtls_mpi_write_binary(&x, b.data(), b.size()) == 0);
    return b;
}

/// DER encoding of an X.509 Name written from its string form, e.g. "CN=a,O=b".
inline Bytes name_der(const char* name) {
    mbedtls_asn1_named_data* head = nullptr;
    REQUIRE(mbedtls_x509_string_to_names(&head, name) == 0);
    unsigned char buf[512];
    unsigned char* p = buf + sizeof buf;
    int len = mbedtls_x509_write_names(&p, buf, head);
    mbedtls_asn1_free_named_data_list(&head);
    REQUIRE(len > 0);
    return Bytes(p, p + len);
}

/// A DER X.509 v3 certificate for a fresh P-256 key, made with mbedtls_x509write_crt.
inline Bytes make_certificate(const char* subject, const char* issuer, std::uint32_t serial) {
    TestRng rng;
    mbedtls_pk_context key;
    mbedtls_pk_init(&key);
    REQUIRE(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0);
    REQUIRE(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), &TestRng::f, rng.p()) == 0);
    mbedtls_x509write_cert crt;
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi sn;
    mbedtls_mpi_init(&sn);
    REQUIRE(mbedtls_mpi_lset(&sn, static_cast<mbedtls_mpi_sint>(serial)) == 0);
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, &key);
    mbedtls_x509write_crt_set_issuer_key(&crt, &key);
    REQUIRE(mbedtls_x509write_crt_set_subject_name(&crt, subject) == 0);
    REQUIRE(mbedtls_x509write_crt_set_issuer_name(&crt, issuer) == 0);
    REQUIRE(mbedtls_x509write_crt_set_serial(&crt, &sn) == 0);
    REQUIRE(mbedtls_x509write_crt_set_validity(&crt, "20240101000000", "20440101000000") == 0);
    unsigned char buf[2048];
    int len = mbedtls_x509write_crt_der(&crt, buf, sizeof buf, &TestRng::f, rng.p());
    mbedtls_mpi_free(&sn);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
    REQUIRE(len > 0);
    return Bytes(buf + sizeof buf - len, buf + sizeof buf);
}

/// Template for a certificate object.
inline Template certificate_template(const Bytes& der, std::string_view label, bool token_object = true) {
    Template t;
    t.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_VALUE, der)
        .add(CKA_LABEL, label).add(CKA_TOKEN, token_object);
    return t;
}

/// RSA key components, big-endian, as a test generates them outside the token.
struct RsaComponents {
    Bytes n, e, d, p, q, dp, dq, qinv;
};

/// A 2048-bit RSA key made with mbedtls_rsa_gen_key, once per test run (generation is slow).
inline const RsaComponents& test_rsa_key() {
    static const RsaComponents key = [] {
        TestRng rng;
        mbedtls_rsa_context rsa;
        mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, 0);
        REQUIRE(mbedtls_rsa_gen_key(&rsa, &TestRng::f, rng.p(), 2048, 65537) == 0);
        mbedtls_mpi parts[8];
        for (auto& x : parts) mbedtls_mpi_init(&x);
        REQUIRE(mbedtls_rsa_export(&rsa, &parts[0], &parts[3], &parts[4], &parts[2], &parts[1]) == 0);
        REQUIRE(mbedtls_rsa_export_crt(&rsa, &parts[5], &parts[6], &parts[7]) == 0);
        RsaComponents k{mpi_bytes(parts[0]), mpi_bytes(parts[1]), mpi_bytes(parts[2]), mpi_bytes(parts[3]),
                        mpi_bytes(parts[4]), mpi_bytes(parts[5]), mpi_bytes(parts[6]), mpi_bytes(parts[7])};
        for (auto& x : parts) mbedtls_mpi_free(&x);
        mbedtls_rsa_free(&rsa);
        return k;
    }();
    return key;
}

/// Verifies an r||s ECDSA signature over `digest` with plain mbedTLS, the public key taken
/// from a CKA_EC_POINT (DER OCTET STRING around 04||X||Y). Uses no Catch2 macros, so
/// threads may call it.
inline bool mbed_ecdsa_verify(mbedtls_ecp_group_id curve, const Bytes& ec_point, const Bytes& digest, const Bytes& sig) {
    if (ec_point.size() < 4 || ec_point[0] != 0x04 || ec_point[1] != ec_point.size() - 2 || ec_point[2] != 0x04)
        return false;
    mbedtls_ecp_group g;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&g);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    const std::size_t half = sig.size() / 2;
    int ret = mbedtls_ecp_group_load(&g, curve);
    if (ret == 0) ret = mbedtls_ecp_point_read_binary(&g, &q, ec_point.data() + 2, ec_point.size() - 2);
    if (ret == 0 && sig.size() != 2 * mbedtls_mpi_size(&g.N)) ret = -1;
    if (ret == 0) ret = mbedtls_mpi_read_binary(&r, sig.data(), half);
    if (ret == 0) ret = mbedtls_mpi_read_binary(&s, sig.data() + half, half);
    if (ret == 0) ret = mbedtls_ecdsa_verify(&g, digest.data(), digest.size(), &q, &r, &s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&g);
    return ret == 0;
}

/// Verifies an RSA signature with plain mbedTLS. `pss_salt < 0` means PKCS#1 v1.5; `md`
/// is the hash `input` is (MBEDTLS_MD_NONE: raw input, v1.5 only).
inline bool mbed_rsa_verify(const Bytes& n, const Bytes& e, mbedtls_md_type_t md, const Bytes& input, const Bytes& sig,
                            int pss_salt = -1, mbedtls_md_type_t mgf = MBEDTLS_MD_NONE) {
    mbedtls_rsa_context rsa;
    mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, 0);
    int ret = mbedtls_rsa_import_raw(&rsa, n.data(), n.size(), nullptr, 0, nullptr, 0, nullptr, 0, e.data(), e.size());
    if (ret == 0) ret = mbedtls_rsa_complete(&rsa);
    if (ret == 0 && sig.size() != mbedtls_rsa_get_len(&rsa)) ret = -1;
    if (ret == 0 && pss_salt < 0)
        ret = mbedtls_rsa_pkcs1_verify(&rsa, nullptr, nullptr, MBEDTLS_RSA_PUBLIC, md,
                                       static_cast<unsigned>(input.size()), input.data(), sig.data());
    else if (ret == 0)
        ret = mbedtls_rsa_rsassa_pss_verify_ext(&rsa, nullptr, nullptr, MBEDTLS_RSA_PUBLIC, md,
                                                static_cast<unsigned>(input.size()), input.data(), mgf, pss_salt,
                                                sig.data());
    mbedtls_rsa_free(&rsa);
    return ret == 0;
}

}  // namespace p11tls::test
