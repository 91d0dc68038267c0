// SPDX-License-Identifier: MIT
#pragma once
// Keys and certificates made by plain mbedTLS from a fixed seed, so every run makes the same
// bytes: the TLS target rebuilds its PKI at start-up and the server flights recorded in its
// seeds stay valid; the other targets' seed generators take their keys and certificates here.
#include <memory>
#include <string_view>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pem.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "common.hpp"

namespace p11tls::fuzz::pki {

/// A CTR_DRBG seeded from DetEntropy and a label: the same label gives the same stream.
class Rng {
public:
    explicit Rng(std::string_view label) {
        mbedtls_ctr_drbg_init(&drbg_);
        if (mbedtls_ctr_drbg_seed(&drbg_, &entropy, &source_, reinterpret_cast<const unsigned char*>(label.data()),
                                  label.size()) != 0)
            std::abort();
    }
    ~Rng() { mbedtls_ctr_drbg_free(&drbg_); }
    Rng(const Rng&) = delete;
    Rng& operator=(const Rng&) = delete;
    static int f(void* p, unsigned char* out, std::size_t n) { return mbedtls_ctr_drbg_random(p, out, n); }
    void* p() noexcept { return &drbg_; }

private:
    static int entropy(void* ctx, unsigned char* out, std::size_t n) {
        return static_cast<DetEntropy*>(ctx)->fill({reinterpret_cast<std::byte*>(out), n}) ? 0 : -1;
    }
    DetEntropy source_;
    mbedtls_ctr_drbg_context drbg_;
};

/// An owned mbedtls_pk_context.
class Pk {
public:
    Pk() noexcept { mbedtls_pk_init(&pk_); }
    ~Pk() { mbedtls_pk_free(&pk_); }
    Pk(const Pk&) = delete;
    Pk& operator=(const Pk&) = delete;
    mbedtls_pk_context* get() noexcept { return &pk_; }

private:
    mbedtls_pk_context pk_;
};

inline void must(int ret) {
    if (ret != 0) {
        std::fprintf(stderr, "pki: mbedTLS error -0x%04x\n", static_cast<unsigned>(-ret));
        std::abort();
    }
}

inline std::unique_ptr<Pk> ec_key(Rng& rng, mbedtls_ecp_group_id curve = MBEDTLS_ECP_DP_SECP256R1) {
    auto pk = std::make_unique<Pk>();
    must(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)));
    must(mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(*pk->get()), &Rng::f, rng.p()));
    return pk;
}

inline std::unique_ptr<Pk> rsa_key(Rng& rng, unsigned bits = 2048) {
    auto pk = std::make_unique<Pk>();
    must(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)));
    must(mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk->get()), &Rng::f, rng.p(), bits, 65537));
    return pk;
}

struct CertSpec {
    const char* subject;
    mbedtls_pk_context* subject_key;
    const char* issuer;
    mbedtls_pk_context* issuer_key;
    bool ca = false;
    int serial = 1;
    const char* san_dns = nullptr;  ///< one subjectAltName dNSName, or none
};

/// A DER X.509 v3 certificate, SHA-256 signed, valid 2024-2044.
inline Bytes issue(const CertSpec& c, Rng& rng) {
    mbedtls_x509write_cert crt;
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi sn;
    mbedtls_mpi_init(&sn);
    must(mbedtls_mpi_lset(&sn, c.serial));
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, c.subject_key);
    mbedtls_x509write_crt_set_issuer_key(&crt, c.issuer_key);
    must(mbedtls_x509write_crt_set_subject_name(&crt, c.subject));
    must(mbedtls_x509write_crt_set_issuer_name(&crt, c.issuer));
    must(mbedtls_x509write_crt_set_serial(&crt, &sn));
    must(mbedtls_x509write_crt_set_validity(&crt, "20240101000000", "20440101000000"));
    must(mbedtls_x509write_crt_set_basic_constraints(&crt, c.ca ? 1 : 0, -1));
    must(mbedtls_x509write_crt_set_key_usage(
        &crt, c.ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN : MBEDTLS_X509_KU_DIGITAL_SIGNATURE));
    if (c.san_dns) {
        // SEQUENCE { [2] dNSName }
        const std::size_t n = std::strlen(c.san_dns);
        Bytes san{0x30, static_cast<std::uint8_t>(n + 2), 0x82, static_cast<std::uint8_t>(n)};
        san.insert(san.end(), c.san_dns, c.san_dns + n);
        must(mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, san.data(), san.size()));
    }
    unsigned char buf[4096];
    int len = mbedtls_x509write_crt_der(&crt, buf, sizeof buf, &Rng::f, rng.p());
    mbedtls_mpi_free(&sn);
    mbedtls_x509write_crt_free(&crt);
    if (len <= 0) must(len < 0 ? len : -1);
    return Bytes(buf + sizeof buf - len, buf + sizeof buf);
}

/// A private key as DER (SEC1 or PKCS#1) or PEM (NUL not included).
inline Bytes key_der(mbedtls_pk_context* pk) {
    unsigned char buf[4096];
    int len = mbedtls_pk_write_key_der(pk, buf, sizeof buf);
    if (len <= 0) must(len < 0 ? len : -1);
    return Bytes(buf + sizeof buf - len, buf + sizeof buf);
}
inline Bytes key_pem(mbedtls_pk_context* pk) {
    unsigned char buf[8192];
    must(mbedtls_pk_write_key_pem(pk, buf, sizeof buf));
    return Bytes(buf, buf + std::strlen(reinterpret_cast<char*>(buf)));
}
inline Bytes cert_pem(const Bytes& der) {
    unsigned char buf[8192];
    std::size_t olen = 0;
    must(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der.data(), der.size(),
                                  buf, sizeof buf, &olen));
    return Bytes(buf, buf + std::strlen(reinterpret_cast<char*>(buf)));
}

inline Bytes concat(std::initializer_list<const Bytes*> parts) {
    Bytes out;
    for (const Bytes* p : parts) out.insert(out.end(), p->begin(), p->end());
    return out;
}

}  // namespace p11tls::fuzz::pki
