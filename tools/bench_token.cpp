// SPDX-License-Identifier: MIT
// p11tls-bench-token: the host SoftToken, driven through its Cryptoki C ABI
// (cryptoki::Module<Provider>), against plain mbedTLS doing the same work in the same run.
// Prints one `name=value` line per figure; times are the median over batches of the mean
// time per operation; `*_ratio` is token / plain. `--quick` is a smoke run (few iterations).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fmt/core.h>
#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/board.hpp>
#include <p11tls/cryptoki/module.hpp>
#include <p11tls/detail/mbedtls/crypto.hpp>
#include <p11tls/nvm/ram_nvm.hpp>
#include <p11tls/token/template.hpp>

#include "bench_common.hpp"

namespace {

using namespace p11tls::bench;

// --- failure handling ----------------------------------------------------------------------

void ck(CK_RV rv, const char* what) {
    if (rv != CKR_OK) [[unlikely]]
        die(fmt::format("{} failed with CKR 0x{:08x}", what, rv));
}

// --- plain mbedTLS helpers ------------------------------------------------------------------

// A self-signed X.509 v3 certificate (DER) with a realistic device subject and extensions.
std::vector<unsigned char> make_cert(Pk& key, int index, PlainDrbg& rng) {
    mbedtls_x509write_cert c;
    mbedtls_x509write_crt_init(&c);
    mbedtls_mpi serial;
    mbedtls_mpi_init(&serial);
    unsigned char serial_bytes[16];
    mb(mbedtls_ctr_drbg_random(&rng.ctx, serial_bytes, sizeof serial_bytes), "ctr_drbg_random");
    serial_bytes[0] &= 0x7F;
    mb(mbedtls_mpi_read_binary(&serial, serial_bytes, sizeof serial_bytes), "mpi_read_binary");
    const std::string subject = fmt::format(
        "CN=p11tls bench device {:06d},OU=Provisioning line 7,O=p11tls Benchmark Devices Ltd,L=Berlin,C=DE", index);
    mbedtls_x509write_crt_set_version(&c, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&c, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&c, &key.pk);
    mbedtls_x509write_crt_set_issuer_key(&c, &key.pk);
    mb(mbedtls_x509write_crt_set_subject_name(&c, subject.c_str()), "set_subject_name");
    mb(mbedtls_x509write_crt_set_issuer_name(&c, "CN=p11tls Benchmark Device CA 2024,O=p11tls Benchmark Devices Ltd,C=DE"),
       "set_issuer_name");
    mb(mbedtls_x509write_crt_set_serial(&c, &serial), "set_serial");
    mb(mbedtls_x509write_crt_set_validity(&c, "20240101000000", "20340101000000"), "set_validity");
    mb(mbedtls_x509write_crt_set_basic_constraints(&c, 0, -1), "set_basic_constraints");
    mb(mbedtls_x509write_crt_set_subject_key_identifier(&c), "set_subject_key_identifier");
    mb(mbedtls_x509write_crt_set_authority_key_identifier(&c), "set_authority_key_identifier");
    mb(mbedtls_x509write_crt_set_key_usage(&c, MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_AGREEMENT),
       "set_key_usage");
    unsigned char buf[4096];
    const int n = mbedtls_x509write_crt_der(&c, buf, sizeof buf, mbedtls_ctr_drbg_random, &rng.ctx);
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&c);
    if (n < 0) mb(n, "x509write_crt_der");
    return {buf + sizeof buf - n, buf + sizeof buf};  // the DER is written at the buffer's end
}

// r||s of a DER ECDSA-Sig-Value, each left-padded to 32 bytes.
std::array<unsigned char, 64> raw_signature(const unsigned char* der, std::size_t len) {
    std::array<unsigned char, 64> out{};
    unsigned char* p = const_cast<unsigned char*>(der);
    const unsigned char* end = der + len;
    std::size_t seq = 0;
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    mb(mbedtls_asn1_get_tag(&p, end, &seq, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE), "asn1_get_tag");
    mb(mbedtls_asn1_get_mpi(&p, end, &r), "asn1_get_mpi");
    mb(mbedtls_asn1_get_mpi(&p, end, &s), "asn1_get_mpi");
    mb(mbedtls_mpi_write_binary(&r, out.data(), 32), "mpi_write_binary");
    mb(mbedtls_mpi_write_binary(&s, out.data() + 32, 32), "mpi_write_binary");
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return out;
}

// What a plain-mbedTLS device does to store a certificate durably: check it parses, then
// replace the file atomically (write, fsync, rename, fsync of the directory).
void plain_store_cert(int dirfd, const std::vector<unsigned char>& der) {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    mb(mbedtls_x509_crt_parse_der(&crt, der.data(), der.size()), "x509_crt_parse_der");
    mbedtls_x509_crt_free(&crt);
    const int fd = ::openat(dirfd, ".cert.der.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) die("plain store: openat failed");
    bool ok = ::write(fd, der.data(), der.size()) == static_cast<ssize_t>(der.size()) && ::fsync(fd) == 0;
    ok = ::close(fd) == 0 && ok;
    if (!ok || ::renameat(dirfd, ".cert.der.tmp", dirfd, "cert.der") != 0 || ::fsync(dirfd) != 0)
        die("plain store: write/fsync/rename failed");
}

void plain_remove_cert(int dirfd) {
    if (::unlinkat(dirfd, "cert.der", 0) != 0 || ::fsync(dirfd) != 0) die("plain store: unlink failed");
}

// --- the tokens, through the Cryptoki C ABI ---------------------------------------------------

// The host board's token (SoftToken over FileNvm: durable, fsync) in the scratch directory.
struct FileProvider {
    using token_type = p11tls::board::Token;
    static inline std::string store;
    static p11tls::Result<token_type*> open() {
        auto t = p11tls::board::open_token(store);
        if (!t) return p11tls::fail(t.error());
        return t->release();
    }
    static void close(token_type* t) noexcept { delete t; }
};

// The same token over a RamNvm, whose read counter shows what a search costs the Nvm.
using RamNvm = p11tls::RamNvm<>;
using RamToken = p11tls::SoftToken<RamNvm, p11tls::board::Entropy, p11tls::board::TokenConfig>;
struct RamProvider {
    using token_type = RamToken;
    static inline token_type* token = nullptr;
    static p11tls::Result<token_type*> open() {
        auto t = std::make_unique<RamToken>(RamNvm{}, p11tls::board::Entropy{});
        if (auto r = t->load(); !r) return p11tls::fail(r.error());
        token = t.release();
        return token;
    }
    static void close(token_type* t) noexcept {
        delete t;
        token = nullptr;
    }
};

using FileModule = p11tls::cryptoki::Module<FileProvider>;
using RamModule = p11tls::cryptoki::Module<RamProvider>;

constexpr unsigned char p256_params[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
constexpr unsigned char rsa_exponent[] = {0x01, 0x00, 0x01};

using Template = p11tls::token::Template<16, 2048>;  // room for a certificate's DER

// The template's attributes for a C call; a template that overflowed is a bug here.
std::span<CK_ATTRIBUTE> attrs(Template& t) {
    if (!t.ok()) die("attribute template overflow");
    return t.view();
}

// Initializes the library and a fresh token (SO and user PINs) and returns an R/W session
// logged in as the user.
CK_SESSION_HANDLE open_user_session(CK_FUNCTION_LIST* f) {
    static constexpr char so_pin[] = "bench-so-pin", user_pin[] = "bench-user-pin";
    auto pin = [](const char* p) { return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(p)); };
    ck(f->C_Initialize(nullptr), "C_Initialize");
    CK_SLOT_ID slot;
    CK_ULONG nslots = 1;
    ck(f->C_GetSlotList(CK_TRUE, &slot, &nslots), "C_GetSlotList");
    CK_UTF8CHAR label[32];
    std::memset(label, ' ', sizeof label);
    std::memcpy(label, "p11tls-bench", 12);
    ck(f->C_InitToken(slot, pin(so_pin), sizeof so_pin - 1, label), "C_InitToken");
    CK_SESSION_HANDLE s;
    ck(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s), "C_OpenSession");
    ck(f->C_Login(s, CKU_SO, pin(so_pin), sizeof so_pin - 1), "C_Login(SO)");
    ck(f->C_InitPIN(s, pin(user_pin), sizeof user_pin - 1), "C_InitPIN");
    ck(f->C_Logout(s), "C_Logout");
    ck(f->C_Login(s, CKU_USER, pin(user_pin), sizeof user_pin - 1), "C_Login(user)");
    return s;
}

struct KeyPair {
    CK_OBJECT_HANDLE pub, priv;
};

KeyPair generate(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_MECHANISM_TYPE type, Template& pub, Template& priv) {
    CK_MECHANISM mech{type, nullptr, 0};
    auto p = attrs(pub), k = attrs(priv);
    KeyPair kp;
    ck(f->C_GenerateKeyPair(s, &mech, p.data(), p.size(), k.data(), k.size(), &kp.pub, &kp.priv), "C_GenerateKeyPair");
    return kp;
}

// Templates of a P-256 key pair labelled `label`-pub and `label`-priv.
void p256_templates(Template& pub, Template& priv, bool token, const std::string& label, bool extractable = false) {
    pub.add(CKA_EC_PARAMS, std::as_bytes(std::span(p256_params)))
        .add(CKA_TOKEN, token)
        .add(CKA_VERIFY, true)
        .add(CKA_LABEL, label + "-pub");
    priv.add(CKA_TOKEN, token)
        .add(CKA_PRIVATE, true)
        .add(CKA_SIGN, true)
        .add(CKA_LABEL, label + "-priv")
        .add(CKA_SENSITIVE, !extractable)
        .add(CKA_EXTRACTABLE, extractable);
}

KeyPair generate_p256(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, bool token, const std::string& label,
                      bool extractable = false) {
    Template pub, priv;
    p256_templates(pub, priv, token, label, extractable);
    return generate(f, s, CKM_EC_KEY_PAIR_GEN, pub, priv);
}

void cert_template(Template& t, const std::string& label, const std::vector<unsigned char>& der) {
    t.add(CKA_CLASS, CKO_CERTIFICATE)
        .add(CKA_CERTIFICATE_TYPE, CKC_X_509)
        .add(CKA_TOKEN, true)
        .add(CKA_LABEL, label)
        .add(CKA_VALUE, std::as_bytes(std::span(der)));
}

CK_OBJECT_HANDLE create(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, Template& t) {
    auto a = attrs(t);
    CK_OBJECT_HANDLE h;
    ck(f->C_CreateObject(s, a.data(), a.size(), &h), "C_CreateObject");
    return h;
}

CK_OBJECT_HANDLE create_cert(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const std::string& label,
                             const std::vector<unsigned char>& der) {
    Template t;
    cert_template(t, label, der);
    return create(f, s, t);
}

CK_OBJECT_HANDLE create_data(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const std::string& label) {
    Template t;
    t.add(CKA_CLASS, CKO_DATA)
        .add(CKA_TOKEN, true)
        .add(CKA_LABEL, label)
        .add(CKA_APPLICATION, "p11tls-bench")
        .add(CKA_VALUE, "configuration blob for " + label);
    return create(f, s, t);
}

// --- configuration report -------------------------------------------------------------------

void print_config(bool quick, const std::string& parent) {
    using Config = p11tls::board::TokenConfig;
    print_build_config(quick);
    fmt::print("bench_store_fs={} ({})\n", fs_type(parent), parent);
    fmt::print("token_api=PKCS#11 C ABI: cryptoki::Module<Provider>::function_list()\n");
    fmt::print("token_sign_keygen_create=board::Token = SoftToken<FileNvm, GetrandomEntropy, board::TokenConfig>\n");
    fmt::print("token_find=SoftToken<RamNvm<{}, {}>, GetrandomEntropy, board::TokenConfig>\n", RamNvm::max_records,
               RamNvm::max_record_size);
    fmt::print("token_max_objects={}\n", Config::max_objects);
    fmt::print("token_max_object_size={}\n", Config::max_object_size);
    fmt::print("token_max_sessions={}\n", Config::max_sessions);
    fmt::print("token_login_required={}\n", Config::login_required ? 1 : 0);
    fmt::print("token_pin_iterations={}\n", Config::pin_iterations);
}

// --- the benchmarks ---------------------------------------------------------------------------

struct Plans {
    Plan sign, find, create, keygen;
    int rsa_runs;
};

// 1. ECDSA P-256 over a SHA-256 digest. The token's key is generated inside the token,
// non-sensitive and extractable only so plain mbedTLS can sign with the very same scalar:
// with RFC 6979 nonces both then compute the same signature, which is checked.
void bench_sign(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const Plan& plan, PlainDrbg& rng) {
    const KeyPair kp = generate_p256(f, s, true, "bench-sign", true);
    std::array<unsigned char, 32> d{};
    CK_ATTRIBUTE value{CKA_VALUE, d.data(), d.size()};
    ck(f->C_GetAttributeValue(s, kp.priv, &value, 1), "C_GetAttributeValue(CKA_VALUE)");
    if (value.ulValueLen != 32) die("unexpected P-256 scalar length");
    Pk key, ecdsa_key;
    load_ec_key(key, d, rng);
    load_ec_key(ecdsa_key, d, rng, MBEDTLS_PK_ECDSA);

    static constexpr char message[] = "TLS 1.2 CertificateVerify handshake transcript stand-in";
    std::array<unsigned char, 32> digest;
    mb(mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(message), sizeof message - 1, digest.data(), 0),
       "sha256");

    unsigned char token_sig[64];
    unsigned char plain_sig[MBEDTLS_ECDSA_MAX_LEN];
    std::size_t plain_len = 0;
    CK_MECHANISM ecdsa{CKM_ECDSA, nullptr, 0};
    auto token_sign = [&] {
        ck(f->C_SignInit(s, &ecdsa, kp.priv), "C_SignInit");
        CK_ULONG len = sizeof token_sig;
        ck(f->C_Sign(s, digest.data(), digest.size(), token_sig, &len), "C_Sign");
    };
    auto plain_sign = [&] {
        mb(mbedtls_pk_sign(&key.pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), plain_sig, &plain_len,
                           mbedtls_ctr_drbg_random, &rng.ctx),
           "pk_sign");
    };
    // mbedtls_pk_sign on an ECKEY context (above, what mbedtls_pk_parse_key gives) signs with a
    // fresh copy of the key's group each call (eckey_sign_wrap -> mbedtls_ecdsa_from_keypair),
    // so it recomputes the comb table of the generator every time. An ECDSA context keeps its
    // group, and with it the table, from one signature to the next, as the token's EcGroups do.
    unsigned char cached_sig[MBEDTLS_ECDSA_MAX_LEN];
    std::size_t cached_len = 0;
    auto cached_sign = [&] {
        mb(mbedtls_pk_sign(&ecdsa_key.pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), cached_sig, &cached_len,
                           mbedtls_ctr_drbg_random, &rng.ctx),
           "pk_sign(ECDSA context)");
    };
    // Breakdown: the token's mbedTLS core alone (detail::mbed::ec_sign on kept groups: scalar
    // read, sign, r||s write), the bare deterministic sign on a loaded key, the same on a group
    // loaded for each call (the comb table recomputed: what ECKEY contexts pay), and the
    // group load by itself.
    p11tls::detail::mbed::EcGroups core_groups;
    auto core_sign = [&] {
        unsigned char sig[64];
        auto r = p11tls::detail::mbed::ec_sign(core_groups, p11tls::detail::mbed::Curve::p256, std::as_bytes(std::span(d)),
                                               std::as_bytes(std::span(digest)), std::as_writable_bytes(std::span(sig)),
                                               {&mbedtls_ctr_drbg_random, &rng.ctx});
        if (!r) die("detail::mbed::ec_sign failed");
        escape(sig);
    };
    auto det_sign = [&] {
        mbedtls_mpi r, s2;
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s2);
        mb(mbedtls_ecdsa_sign_det_ext(&key.ec().grp, &r, &s2, &key.ec().d, digest.data(), digest.size(),
                                      MBEDTLS_MD_SHA256, mbedtls_ctr_drbg_random, &rng.ctx),
           "ecdsa_sign_det_ext");
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&s2);
    };
    auto fresh_sign = [&] {
        mbedtls_ecp_group g;
        mbedtls_mpi r, s2;
        mbedtls_ecp_group_init(&g);
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s2);
        mb(mbedtls_ecp_group_load(&g, MBEDTLS_ECP_DP_SECP256R1), "ecp_group_load");
        mb(mbedtls_ecdsa_sign_det_ext(&g, &r, &s2, &key.ec().d, digest.data(), digest.size(), MBEDTLS_MD_SHA256,
                                      mbedtls_ctr_drbg_random, &rng.ctx),
           "ecdsa_sign_det_ext");
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&s2);
        mbedtls_ecp_group_free(&g);
    };
    auto group_load = [&] {
        mbedtls_ecp_group g;
        mbedtls_ecp_group_init(&g);
        mb(mbedtls_ecp_group_load(&g, MBEDTLS_ECP_DP_SECP256R1), "ecp_group_load");
        escape(&g);
        mbedtls_ecp_group_free(&g);
    };

    token_sign();
    plain_sign();
    cached_sign();
    const bool same = raw_signature(plain_sig, plain_len) == std::to_array(token_sig) &&
                      raw_signature(cached_sig, cached_len) == std::to_array(token_sig);

    auto t = measure(plan, {batch(token_sign), batch(plain_sign), batch(cached_sign), batch(core_sign), batch(det_sign),
                            batch(fresh_sign)});
    Plan small = plan;
    small.per_batch *= 50;
    const double load = measure(small, {batch(group_load)})[0];

    print_plan("sign", plan);
    fmt::print("sign_key=P-256, C_GenerateKeyPair in the token (CKA_TOKEN), made extractable so plain mbedTLS "
               "signs with the same scalar\n");
    fmt::print("sign_same_signature={}\n", same ? 1 : 0);
    print_us("sign_token_us", t[0]);
    print_us("sign_mbedtls_us", t[1]);
    print_ratio("sign_overhead_ratio", t[0] / t[1]);
    print_us("sign_mbedtls_cached_group_us", t[2]);
    print_ratio("sign_vs_cached_group_ratio", t[0] / t[2]);
    print_us("sign_breakdown_token_core_us", t[3]);
    print_us("sign_breakdown_det_ext_cached_group_us", t[4]);
    print_us("sign_breakdown_det_ext_fresh_group_us", t[5]);
    print_us("sign_breakdown_group_load_call_us", load);
}

// 2. C_FindObjectsInit(class + label) + C_FindObjects + C_FindObjectsFinal among 20 token
// objects, on the RamNvm token so that its read counter shows the Nvm is not touched.
void bench_find(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const Plan& plan, PlainDrbg& rng) {
    struct PlainObject {
        CK_OBJECT_CLASS cls;
        std::string label;
        CK_OBJECT_HANDLE handle;
    };
    std::vector<PlainObject> objects;
    Pk cert_key;
    load_ec_key(cert_key, {}, rng);
    for (int i = 0; i < 6; ++i) {
        std::string label = fmt::format("bench-cert-{:02d}", i);
        auto h = create_cert(f, s, label, make_cert(cert_key, i, rng));
        objects.push_back({CKO_CERTIFICATE, std::move(label), h});
    }
    for (int i = 0; i < 4; ++i) {
        const std::string label = fmt::format("bench-key-{:02d}", i);
        const KeyPair kp = generate_p256(f, s, true, label);
        objects.push_back({CKO_PUBLIC_KEY, label + "-pub", kp.pub});
        objects.push_back({CKO_PRIVATE_KEY, label + "-priv", kp.priv});
    }
    for (int i = 0; i < 6; ++i) {
        std::string label = fmt::format("bench-data-{:02d}", i);
        auto h = create_data(f, s, label);
        objects.push_back({CKO_DATA, std::move(label), h});
    }

    const CK_OBJECT_CLASS want_cls = CKO_CERTIFICATE;
    const std::string want_label = "bench-cert-03";
    Template query;
    query.add(CKA_CLASS, want_cls).add(CKA_LABEL, want_label);
    const auto tmpl = attrs(query);
    CK_OBJECT_HANDLE hits[20];
    CK_ULONG found = 0;
    auto token_find = [&] {
        ck(f->C_FindObjectsInit(s, tmpl.data(), tmpl.size()), "C_FindObjectsInit");
        ck(f->C_FindObjects(s, hits, std::size(hits), &found), "C_FindObjects");
        ck(f->C_FindObjectsFinal(s), "C_FindObjectsFinal");
    };
    std::size_t scan_found = 0;
    auto linear_scan = [&] {
        escape(objects.data());
        escape(&want_label);
        CK_OBJECT_HANDLE out[20];
        std::size_t n = 0;
        const std::string_view want = want_label;
        for (const PlainObject& o : objects)
            if (o.cls == want_cls && o.label == want) out[n++] = o.handle;
        escape(out);
        scan_found = n;
    };

    const std::size_t reads_before = RamProvider::token->nvm().reads();
    auto t = measure(plan, {batch(token_find), batch(linear_scan)});
    const std::size_t reads = RamProvider::token->nvm().reads() - reads_before;
    if (found != 1 || scan_found != 1 || hits[0] != objects[3].handle) die("find: wrong result");

    print_plan("find", plan);
    fmt::print("find_token_objects={}\n", objects.size());
    print_us("find_20_us", t[0]);
    fmt::print("find_nvm_reads={}\n", reads);
    print_us("find_linear_scan_us", t[1]);
    fmt::print("find_linear_scan_ns={:.1f}\n", t[1] * 1000);
    print_ratio("find_ratio", t[0] / t[1]);
}

// 3. Storing a certificate durably: C_CreateObject of a token certificate on the FileNvm token
// (C_DestroyObject afterwards, outside the timed part) against parse + atomic durable write.
void bench_create(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const Plan& plan, PlainDrbg& rng,
                  const std::string& plain_dir) {
    Pk cert_key;
    load_ec_key(cert_key, {}, rng);
    const std::vector<unsigned char> der = make_cert(cert_key, 42, rng);
    const std::string label = "bench-device-cert";
    Template cert;
    cert_template(cert, label, der);
    auto token_create = [&]() -> Clock::duration {
        const auto t0 = Clock::now();
        const CK_OBJECT_HANDLE h = create(f, s, cert);
        const auto t1 = Clock::now();
        ck(f->C_DestroyObject(s, h), "C_DestroyObject");
        return t1 - t0;
    };
    const int dirfd = ::open(plain_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) die("cannot open the plain store directory");
    auto plain_create = [&]() -> Clock::duration {
        const auto t0 = Clock::now();
        plain_store_cert(dirfd, der);
        const auto t1 = Clock::now();
        plain_remove_cert(dirfd);
        return t1 - t0;
    };
    auto parse = [&] {
        mbedtls_x509_crt crt;
        mbedtls_x509_crt_init(&crt);
        mb(mbedtls_x509_crt_parse_der(&crt, der.data(), der.size()), "x509_crt_parse_der");
        mbedtls_x509_crt_free(&crt);
    };
    auto t = measure(plan, {batch(token_create), batch(plain_create)});
    Plan parse_plan = plan;
    parse_plan.per_batch *= 20;
    const double parse_us = measure(parse_plan, {batch(parse)})[0];
    ::close(dirfd);

    print_plan("create_cert", plan);
    fmt::print("create_cert_der_bytes={}\n", der.size());
    print_us("create_cert_token_us", t[0]);
    print_us("create_cert_plain_us", t[1]);
    print_ratio("create_cert_ratio", t[0] / t[1]);
    print_us("create_cert_breakdown_x509_parse_us", parse_us);
}

// 4. Key-pair generation into session objects (destroyed outside the timed part) against
// mbedtls_ecp_gen_key / mbedtls_rsa_gen_key with a CTR_DRBG.
void bench_keygen(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const Plan& plan, int rsa_runs, PlainDrbg& rng) {
    Template pub, priv;
    p256_templates(pub, priv, false, "bench-keygen");
    auto token_p256 = [&]() -> Clock::duration {
        const auto t0 = Clock::now();
        const KeyPair kp = generate(f, s, CKM_EC_KEY_PAIR_GEN, pub, priv);
        const auto t1 = Clock::now();
        ck(f->C_DestroyObject(s, kp.pub), "C_DestroyObject");
        ck(f->C_DestroyObject(s, kp.priv), "C_DestroyObject");
        return t1 - t0;
    };
    auto plain_p256 = [&]() -> Clock::duration {
        mbedtls_ecp_keypair kp;
        mbedtls_ecp_keypair_init(&kp);
        const auto t0 = Clock::now();
        mb(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, &kp, mbedtls_ctr_drbg_random, &rng.ctx), "ecp_gen_key");
        const auto t1 = Clock::now();
        mbedtls_ecp_keypair_free(&kp);
        return t1 - t0;
    };
    // For reference: generation on a group loaded once, whose comb table survives.
    mbedtls_ecp_group group;
    mbedtls_ecp_group_init(&group);
    mb(mbedtls_ecp_group_load(&group, MBEDTLS_ECP_DP_SECP256R1), "ecp_group_load");
    auto cached_p256 = [&]() -> Clock::duration {
        mbedtls_mpi d;
        mbedtls_ecp_point q;
        mbedtls_mpi_init(&d);
        mbedtls_ecp_point_init(&q);
        const auto t0 = Clock::now();
        mb(mbedtls_ecp_gen_keypair(&group, &d, &q, mbedtls_ctr_drbg_random, &rng.ctx), "ecp_gen_keypair");
        const auto t1 = Clock::now();
        mbedtls_ecp_point_free(&q);
        mbedtls_mpi_free(&d);
        return t1 - t0;
    };
    auto t = measure(plan, {batch(token_p256), batch(plain_p256), batch(cached_p256)});
    mbedtls_ecp_group_free(&group);
    print_plan("keygen_p256", plan);
    print_us("keygen_p256_token_us", t[0]);
    print_us("keygen_p256_mbedtls_us", t[1]);
    print_ratio("keygen_p256_ratio", t[0] / t[1]);
    print_us("keygen_p256_mbedtls_cached_group_us", t[2]);

    Template rsa_pub, rsa_priv;
    rsa_pub.add(CKA_MODULUS_BITS, 2048)
        .add(CKA_PUBLIC_EXPONENT, std::as_bytes(std::span(rsa_exponent)))
        .add(CKA_TOKEN, false)
        .add(CKA_VERIFY, true);
    rsa_priv.add(CKA_TOKEN, false).add(CKA_PRIVATE, true).add(CKA_SIGN, true);
    auto token_rsa = [&]() -> Clock::duration {
        const auto t0 = Clock::now();
        const KeyPair kp = generate(f, s, CKM_RSA_PKCS_KEY_PAIR_GEN, rsa_pub, rsa_priv);
        const auto t1 = Clock::now();
        ck(f->C_DestroyObject(s, kp.pub), "C_DestroyObject");
        ck(f->C_DestroyObject(s, kp.priv), "C_DestroyObject");
        return t1 - t0;
    };
    auto plain_rsa = [&]() -> Clock::duration {
        mbedtls_rsa_context rsa;
        mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, 0);
        const auto t0 = Clock::now();
        mb(mbedtls_rsa_gen_key(&rsa, mbedtls_ctr_drbg_random, &rng.ctx, 2048, 65537), "rsa_gen_key");
        const auto t1 = Clock::now();
        mbedtls_rsa_free(&rsa);
        return t1 - t0;
    };
    // One key per batch: prime search makes single runs vary widely, so the median of a few.
    const Plan rsa{0, rsa_runs, 1};
    auto runs = measure_batches(rsa, {batch(token_rsa), batch(plain_rsa)});
    const double tok = median(runs[0]), plain = median(runs[1]);
    print_plan("keygen_rsa2048", rsa);
    fmt::print("keygen_rsa2048_token_ms={:.2f}\n", tok / 1000);
    fmt::print("keygen_rsa2048_mbedtls_ms={:.2f}\n", plain / 1000);
    print_ratio("keygen_rsa2048_ratio", tok / plain);
    // The prime search draws a random number of candidates: single keys differ by tens of
    // percent, so a ratio within this spread says nothing. More runs: --rsa-runs.
    fmt::print("keygen_rsa2048_token_iqr_pct={:.0f}\n", iqr_pct(runs[0]));
    fmt::print("keygen_rsa2048_mbedtls_iqr_pct={:.0f}\n", iqr_pct(runs[1]));
}

void usage(std::FILE* to) {
    fmt::print(to, "usage: p11tls-bench-token [--quick] [--only sign|find|create|keygen] [--rsa-runs N] [--dir PARENT]\n"
               "  Benchmarks the host SoftToken through its PKCS#11 C ABI against plain mbedTLS in\n"
               "  the same run and prints name=value lines (times in microseconds, ratios token/plain).\n"
               "  --quick       a fast smoke run with few iterations (figures are not stable)\n"
               "  --only NAME   run one benchmark (e.g. under valgrind --tool=callgrind)\n"
               "  --rsa-runs N  RSA-2048 keys generated on each side (default 9, quick 1)\n"
               "  --dir PARENT  where the scratch token store is created (default $TMPDIR or /tmp);\n"
               "                its file system decides what fsync costs\n");
}

}  // namespace

int main(int argc, char** argv) {
    program = "p11tls-bench-token";
    int rsa_runs = 0;
    Args args;
    const int stop = parse_args(argc, argv, args, usage, {"sign", "find", "create", "keygen"}, true, [&](int& i) {
        if (std::string_view(argv[i]) != "--rsa-runs" || i + 1 >= argc || std::atoi(argv[i + 1]) <= 0) return false;
        rsa_runs = std::atoi(argv[++i]);
        return true;
    });
    if (stop >= 0) return stop;
    const bool quick = args.quick;
    const std::string& parent = args.parent;
    make_scratch(parent);
    FileProvider::store = scratch_dir + "/token";
    const std::string plain_dir = scratch_dir + "/plain";
    if (std::error_code ec; !std::filesystem::create_directory(plain_dir, ec)) die("cannot create " + plain_dir);

    // Certificate creation is fsync-bound and fsync latency jitters with other I/O on the disk,
    // so it is measured in many small interleaved batches.
    Plans plans = quick ? Plans{{2, 3, 3}, {10, 3, 100}, {1, 3, 2}, {1, 3, 2}, 1}
                              : Plans{{20, 15, 20}, {2000, 21, 2000}, {3, 51, 2}, {5, 21, 6}, 9};
    if (rsa_runs > 0) plans.rsa_runs = rsa_runs;
    print_config(quick, parent);

    PlainDrbg rng;
    CK_FUNCTION_LIST* file = FileModule::function_list();
    CK_FUNCTION_LIST* ram = RamModule::function_list();
    const CK_SESSION_HANDLE fs = open_user_session(file);
    const CK_SESSION_HANDLE rs = open_user_session(ram);

    auto want = [&](std::string_view name) { return args.want(name); };
    if (want("sign")) bench_sign(file, fs, plans.sign, rng);
    if (want("find")) bench_find(ram, rs, plans.find, rng);
    if (want("create")) bench_create(file, fs, plans.create, rng, plain_dir);
    if (want("keygen")) bench_keygen(file, fs, plans.keygen, plans.rsa_runs, rng);

    fmt::print("bench_loadavg_end={}\n", load_average());
    ck(file->C_Finalize(nullptr), "C_Finalize");
    ck(ram->C_Finalize(nullptr), "C_Finalize");
    return 0;
}
