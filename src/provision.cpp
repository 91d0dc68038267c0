// SPDX-License-Identifier: MIT
// Provisioning with mbedTLS: token keys as pks with a software public half, PKCS#10 requests
// signed by the token, private key and certificate parsing. Secret temporaries live in mbedTLS
// contexts whose free functions zeroize them, or in buffers zeroized here.
#include <cstdio>
#include <cstring>

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_csr.h>

#include <p11tls/detail/mbedtls/error.hpp>
#include <p11tls/detail/mbedtls/provision.hpp>

namespace p11tls::detail::mbed {

namespace {

unsigned char* u8(std::span<std::byte> s) { return reinterpret_cast<unsigned char*>(s.data()); }
const unsigned char* u8(std::span<const std::byte> s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// mbedTLS writes DER backwards from the end of a buffer; this moves the `len` bytes written
// there to the front.
std::size_t to_front(std::span<std::byte> out, int len) {
    const auto n = static_cast<std::size_t>(len);
    std::memmove(out.data(), out.data() + out.size() - n, n);
    return n;
}

Result<std::size_t> no_signer(void*, CK_ULONG, CK_ULONG, CK_MECHANISM_TYPE, std::span<const std::byte>,
                              std::span<std::byte>) {
    return fail(Errc::key_function_not_permitted);
}

struct Pk {
    mbedtls_pk_context k;
    Pk() { mbedtls_pk_init(&k); }
    ~Pk() { mbedtls_pk_free(&k); }
};
struct Mpi {
    mbedtls_mpi m;
    Mpi() { mbedtls_mpi_init(&m); }
    ~Mpi() { mbedtls_mpi_free(&m); }
};

}  // namespace

// --- TokenPk ------------------------------------------------------------------------------

TokenPk::TokenPk() noexcept {
    mbedtls_pk_init(&pk_);
    key_.ref = &ref_;
    ref_.sign = no_signer;
}

TokenPk::~TokenPk() { reset(); }

void TokenPk::reset() noexcept {
    mbedtls_pk_free(&pk_);  // the token pk's free callback does nothing; the key is ours
    mbedtls_pk_init(&pk_);
    if (loaded_) {
        if (ref_.key_type == CKK_EC) mbedtls_ecp_keypair_free(&key_.ec);
        else mbedtls_rsa_free(&key_.rsa);
    }
    loaded_ = false;
    curve_.reset();
}

Result<void> TokenPk::load(const PublicKeyParts& pub) noexcept {
    reset();
    int ret = 0;
    if (pub.key_type == CKK_EC) {
        auto c = curve_from_params(pub.ec_params);
        if (!c) return fail(Errc::unsupported_key);
        auto raw = ec_point_raw(*c, pub.ec_point);
        if (!raw) return fail(raw.error());
        mbedtls_ecp_keypair_init(&key_.ec);
        loaded_ = true;
        ref_.key_type = CKK_EC;
        ret = mbedtls_ecp_group_load(&key_.ec.grp, *c == Curve::p256 ? MBEDTLS_ECP_DP_SECP256R1 : MBEDTLS_ECP_DP_SECP384R1);
        if (ret == 0) ret = mbedtls_ecp_point_read_binary(&key_.ec.grp, &key_.ec.Q, u8(*raw), raw->size());
        if (ret == 0) ret = mbedtls_ecp_check_pubkey(&key_.ec.grp, &key_.ec.Q);
        if (ret != 0) {
            reset();
            return fail(Errc::attribute_value_invalid, ret);
        }
        curve_ = *c;
        ref_.bits = curve_bytes(*c) * 8;
    } else if (pub.key_type == CKK_RSA) {
        if (pub.modulus.empty() || pub.exponent.empty()) return fail(Errc::attribute_value_invalid);
        mbedtls_rsa_init(&key_.rsa, MBEDTLS_RSA_PKCS_V15, 0);
        loaded_ = true;
        ref_.key_type = CKK_RSA;
        ret = mbedtls_rsa_import_raw(&key_.rsa, u8(pub.modulus), pub.modulus.size(), nullptr, 0, nullptr, 0, nullptr, 0,
                                     u8(pub.exponent), pub.exponent.size());
        if (ret == 0) ret = mbedtls_rsa_complete(&key_.rsa);
        if (ret == 0) ret = mbedtls_rsa_check_pubkey(&key_.rsa);
        if (ret != 0) {
            reset();
            return fail(Errc::attribute_value_invalid, ret);
        }
        const std::size_t bits = mbedtls_mpi_bitlen(&key_.rsa.N);
        if (bits < 2048 || bits > rsa_max_bits) {
            reset();
            return fail(Errc::unsupported_key);
        }
        ref_.bits = bits;
    } else {
        return fail(Errc::unsupported_key);
    }
    token_pk_setup(pk_, key_);
    return {};
}

Result<std::size_t> TokenPk::spki_der(std::span<std::byte> out) noexcept {
    if (!loaded_) return fail(Errc::invalid_argument);
    int len = mbedtls_pk_write_pubkey_der(&pk_, u8(out), out.size());
    if (len < 0) return fail(Errc::buffer_too_small, len);
    return to_front(out, len);
}

Result<std::size_t> TokenPk::spki_pem(std::span<char> out) noexcept {
    if (!loaded_) return fail(Errc::invalid_argument);
    int ret = mbedtls_pk_write_pubkey_pem(&pk_, reinterpret_cast<unsigned char*>(out.data()), out.size());
    if (ret != 0) return fail(Errc::buffer_too_small, ret);
    return std::strlen(out.data());
}

// --- PKCS#10 ------------------------------------------------------------------------------

namespace {

struct Csr {
    mbedtls_x509write_csr w;
    Csr() { mbedtls_x509write_csr_init(&w); }
    ~Csr() { mbedtls_x509write_csr_free(&w); }
};
struct ParsedCsr {
    mbedtls_x509_csr c;
    ParsedCsr() { mbedtls_x509_csr_init(&c); }
    ~ParsedCsr() { mbedtls_x509_csr_free(&c); }
};

// Every "type=value" of a subject in mbedTLS's syntax has a value (and no NUL ends the text
// early). mbedTLS 2.28 (asn1write.c,
// mbedtls_asn1_store_named_data) frees the value of a type given twice when the second is
// empty ("O=a,O=") but keeps its old length, and mbedtls_x509write_csr_der then copies from
// NULL: refused here, with the same scan of escapes and separators as mbedTLS's parser.
bool subject_values_present(std::string_view subject) {
    if (subject.find('\0') != std::string_view::npos) return false;  // mbedTLS would stop there
    bool in_value = false;
    std::size_t value_len = 0;
    for (std::size_t i = 0; i < subject.size(); ++i) {
        const char c = subject[i];
        if (!in_value) {
            if (c == '=') {
                in_value = true;
                value_len = 0;
            }
        } else if (c == '\\' && i + 1 < subject.size()) {
            ++i;
            ++value_len;
        } else if (c == ',') {
            if (value_len == 0) return false;
            in_value = false;
        } else {
            ++value_len;
        }
    }
    return !in_value || value_len > 0;
}

bool valid_dns_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    for (char ch : name) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7F) return false;  // IA5String, no spaces or controls
    }
    return true;
}

// SubjectAltName ::= GeneralNames, written backwards into [start, *p).
int write_san(unsigned char** p, unsigned char* start, const CsrFields& f) {
    std::size_t len = 0;
    int ret;
    for (std::size_t i = f.ips.size(); i-- > 0;) {
        const IpAddress& ip = f.ips[i];
        std::size_t one = 0;
        MBEDTLS_ASN1_CHK_ADD(one, mbedtls_asn1_write_raw_buffer(p, start, reinterpret_cast<const unsigned char*>(ip.bytes.data()), ip.len));
        MBEDTLS_ASN1_CHK_ADD(one, mbedtls_asn1_write_len(p, start, one));
        MBEDTLS_ASN1_CHK_ADD(one, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7));
        len += one;
    }
    for (std::size_t i = f.dns.size(); i-- > 0;) {
        std::string_view d = f.dns[i];
        std::size_t one = 0;
        MBEDTLS_ASN1_CHK_ADD(one, mbedtls_asn1_write_raw_buffer(p, start, reinterpret_cast<const unsigned char*>(d.data()), d.size()));
        MBEDTLS_ASN1_CHK_ADD(one, mbedtls_asn1_write_len(p, start, one));
        MBEDTLS_ASN1_CHK_ADD(one, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2));
        len += one;
    }
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(p, start, len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return static_cast<int>(len);
}

// The request's signature checked with the public key it carries.
Result<void> verify_csr(std::span<const std::byte> der) {
    ParsedCsr csr;
    int ret = mbedtls_x509_csr_parse_der(&csr.c, u8(der), der.size());
    if (ret != 0) return fail(Errc::crypto_failed, ret);
    const mbedtls_md_info_t* md = mbedtls_md_info_from_type(csr.c.sig_md);
    unsigned char hash[64];
    if (!md) return fail(Errc::crypto_failed);
    ret = mbedtls_md(md, csr.c.cri.p, csr.c.cri.len, hash);
    if (ret == 0)
        ret = mbedtls_pk_verify_ext(csr.c.sig_pk, csr.c.sig_opts, &csr.c.pk, csr.c.sig_md, hash, mbedtls_md_get_size(md),
                                    csr.c.sig.p, csr.c.sig.len);
    if (ret != 0) return fail(Errc::tls_key_cert_mismatch, ret);
    return {};
}

}  // namespace

Result<std::size_t> write_csr(TokenPk& key, const CsrFields& f, Rng rng, Encoding enc, std::span<std::byte> out) noexcept {
    Csr csr;
    char subject[512];
    if (f.subject.empty() || f.subject.size() >= sizeof subject || !subject_values_present(f.subject))
        return fail(Errc::invalid_argument);
    std::memcpy(subject, f.subject.data(), f.subject.size());
    subject[f.subject.size()] = '\0';
    // mbedTLS takes text without any "type=value" as an empty name.
    if (int ret = mbedtls_x509write_csr_set_subject_name(&csr.w, subject); ret != 0 || !csr.w.subject)
        return fail(Errc::invalid_argument, ret);
    for (std::string_view d : f.dns)
        if (!valid_dns_name(d)) return fail(Errc::invalid_argument);
    for (const IpAddress& ip : f.ips)
        if (ip.len != 4 && ip.len != 16) return fail(Errc::invalid_argument);
    mbedtls_x509write_csr_set_md_alg(&csr.w, key.curve() == Curve::p384 ? MBEDTLS_MD_SHA384 : MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&csr.w, &key.pk());
    if (!f.dns.empty() || !f.ips.empty()) {
        unsigned char san[2048];
        unsigned char* p = san + sizeof san;
        int len = write_san(&p, san, f);
        if (len < 0) return fail(Errc::invalid_argument, len);
        if (int ret = mbedtls_x509write_csr_set_extension(&csr.w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                          MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), p,
                                                          static_cast<std::size_t>(len));
            ret != 0)
            return fail(to_error(ret));
    }

    std::byte der[4096];
    key.ref().last_error = {};
    int len = mbedtls_x509write_csr_der(&csr.w, reinterpret_cast<unsigned char*>(der), sizeof der, rng.f, rng.p);
    if (len < 0) {
        // A refused signature is the token's error, not mbedTLS's.
        if (key.ref().last_error.code != Errc{}) return fail(key.ref().last_error);
        return fail(len == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL ? Errc::invalid_argument : to_error(len).code, len);
    }
    std::span<const std::byte> request(der + sizeof der - len, static_cast<std::size_t>(len));
    P11TLS_TRY(verify_csr(request));

    if (enc == Encoding::der) {
        if (out.size() < request.size()) return fail(Errc::buffer_too_small, static_cast<std::int32_t>(request.size()));
        std::memcpy(out.data(), request.data(), request.size());
        return request.size();
    }
    std::size_t olen = 0;
    int ret = mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE REQUEST-----\n", "-----END CERTIFICATE REQUEST-----\n",
                                       u8(request), request.size(), u8(out), out.size(), &olen);
    if (ret != 0) return fail(Errc::buffer_too_small, static_cast<std::int32_t>(olen));
    return olen - 1;  // without the NUL
}

// --- private keys -----------------------------------------------------------------------------

ParsedKey::~ParsedKey() { clear(); }

void ParsedKey::clear() noexcept {
    mbedtls_platform_zeroize(buf_.data(), buf_.size());
    mbedtls_platform_zeroize(point_der_.data(), point_der_.size());
    used_ = 0;
    point_der_len_ = 0;
    at_.fill(0);
    len_.fill(0);
    curve_.reset();
    bits_ = 0;
}

void ParsedKey::put_bytes(Part p, std::span<const std::byte> v) noexcept {
    P11TLS_ASSERT(v.size() <= buf_.size() - used_, "ParsedKey: component too large");
    std::memcpy(buf_.data() + used_, v.data(), v.size());
    at_[p] = used_;
    len_[p] = v.size();
    used_ += v.size();
}

bool ParsedKey::put(Part p, const mbedtls_mpi& x, std::size_t len) noexcept {
    const std::size_t n = len ? len : mbedtls_mpi_size(&x);
    if (n > buf_.size() - used_) return false;
    if (mbedtls_mpi_write_binary(&x, reinterpret_cast<unsigned char*>(buf_.data() + used_), n) != 0) return false;
    at_[p] = used_;
    len_[p] = n;
    used_ += n;
    return true;
}

namespace {

Error parse_error(int ret) {
    switch (ret) {
    case MBEDTLS_ERR_PK_UNKNOWN_PK_ALG:
    case MBEDTLS_ERR_PK_UNKNOWN_NAMED_CURVE:
    case MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE:
    case MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE:
        return {Errc::unsupported_key, ret};
    default:
        return {Errc::bad_encoding, ret};
    }
}

}  // namespace

Result<void> parse_private_key(std::span<const std::byte> data, ParsedKey& out) noexcept {
    out.clear();
    if (data.empty()) return fail(Errc::bad_encoding);
    Pk pk;
    int ret;
    if (looks_like_pem(data)) {
        // mbedTLS wants PEM NUL-terminated with the NUL counted; the copy holds the key.
        auto* copy = static_cast<unsigned char*>(mbedtls_calloc(1, data.size() + 1));
        if (!copy) return fail(Errc::out_of_memory);
        std::memcpy(copy, data.data(), data.size());
        ret = mbedtls_pk_parse_key(&pk.k, copy, data.size() + 1, nullptr, 0);
        mbedtls_platform_zeroize(copy, data.size() + 1);
        mbedtls_free(copy);
    } else {
        ret = mbedtls_pk_parse_key(&pk.k, u8(data), data.size(), nullptr, 0);
    }
    if (ret != 0) return fail(parse_error(ret));

    const mbedtls_pk_type_t type = mbedtls_pk_get_type(&pk.k);
    if (type == MBEDTLS_PK_ECKEY || type == MBEDTLS_PK_ECDSA) {
        const mbedtls_ecp_keypair& ec = *mbedtls_pk_ec(pk.k);
        Curve c;
        if (ec.grp.id == MBEDTLS_ECP_DP_SECP256R1) c = Curve::p256;
        else if (ec.grp.id == MBEDTLS_ECP_DP_SECP384R1) c = Curve::p384;
        else return fail(Errc::unsupported_key);
        const std::size_t cb = curve_bytes(c);
        out.key_type_ = CKK_EC;
        out.curve_ = c;
        out.bits_ = static_cast<unsigned>(cb * 8);
        if (!out.put(ParsedKey::ec_d, ec.d, cb)) {
            out.clear();
            return fail(Errc::bad_encoding);
        }
        // The public point must be d*G: a file whose point belongs to another key would store
        // a public key object that does not match the private key.
        unsigned char point[1 + 2 * 48], derived[1 + 2 * 48];
        std::size_t plen = 0;
        ret = mbedtls_ecp_point_write_binary(&ec.grp, &ec.Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &plen, point, sizeof point);
        auto d = out.part(ParsedKey::ec_d);
        auto r = ret == 0 ? ec_public_from_private(c, d, std::as_writable_bytes(std::span(derived, 1 + 2 * cb)))
                          : Result<void>(fail(Errc::bad_encoding, ret));
        if (!r || plen != 1 + 2 * cb || std::memcmp(point, derived, plen) != 0) {
            out.clear();
            return fail(Errc::bad_encoding, ret);
        }
        out.put_bytes(ParsedKey::ec_point, std::as_bytes(std::span(point, plen)));
        out.point_der_len_ = ec_point_der(std::as_bytes(std::span(point, plen)), out.point_der_);
        return {};
    }
    if (type == MBEDTLS_PK_RSA) {
        mbedtls_rsa_context& rsa = *mbedtls_pk_rsa(pk.k);
        if ((ret = mbedtls_rsa_check_privkey(&rsa)) != 0) return fail(Errc::bad_encoding, ret);
        const std::size_t bits = mbedtls_mpi_bitlen(&rsa.N);
        if (bits < 2048 || bits > rsa_max_bits) return fail(Errc::unsupported_key);
        out.key_type_ = CKK_RSA;
        out.bits_ = static_cast<unsigned>(bits);
        Mpi n, p, q, d, e, dp, dq, qp;
        ret = mbedtls_rsa_export(&rsa, &n.m, &p.m, &q.m, &d.m, &e.m);
        if (ret == 0) ret = mbedtls_rsa_export_crt(&rsa, &dp.m, &dq.m, &qp.m);
        bool ok = ret == 0 && out.put(ParsedKey::rsa_n, n.m) && out.put(ParsedKey::rsa_e, e.m) &&
                  out.put(ParsedKey::rsa_d, d.m) && out.put(ParsedKey::rsa_p, p.m) && out.put(ParsedKey::rsa_q, q.m) &&
                  out.put(ParsedKey::rsa_dp, dp.m) && out.put(ParsedKey::rsa_dq, dq.m) &&
                  out.put(ParsedKey::rsa_qinv, qp.m);
        if (!ok) {
            out.clear();
            return fail(Errc::bad_encoding, ret);
        }
        return {};
    }
    return fail(Errc::unsupported_key);
}

// --- certificates -----------------------------------------------------------------------------

CertList::CertList() noexcept { mbedtls_x509_crt_init(&chain_); }
CertList::~CertList() { mbedtls_x509_crt_free(&chain_); }

Result<void> CertList::parse(std::span<const std::byte> data) noexcept {
    mbedtls_x509_crt_free(&chain_);
    mbedtls_x509_crt_init(&chain_);
    if (auto r = parse_certs(chain_, data); !r) {
        mbedtls_x509_crt_free(&chain_);
        mbedtls_x509_crt_init(&chain_);
        return fail(Errc::bad_encoding, r.error().native);
    }
    return {};
}

std::size_t CertList::size() const noexcept {
    std::size_t n = 0;
    for (const mbedtls_x509_crt* c = &chain_; c && c->raw.p; c = c->next) ++n;
    return n;
}

const mbedtls_x509_crt& CertList::at(std::size_t i) const noexcept {
    const mbedtls_x509_crt* c = &chain_;
    while (i-- > 0 && c->next) c = c->next;
    return *c;
}

std::span<const std::byte> CertList::der(std::size_t i) const noexcept {
    const auto& c = at(i);
    return {reinterpret_cast<const std::byte*>(c.raw.p), c.raw.len};
}
std::span<const std::byte> CertList::subject_der(std::size_t i) const noexcept {
    const auto& c = at(i);
    return {reinterpret_cast<const std::byte*>(c.subject_raw.p), c.subject_raw.len};
}
std::span<const std::byte> CertList::issuer_der(std::size_t i) const noexcept {
    const auto& c = at(i);
    return {reinterpret_cast<const std::byte*>(c.issuer_raw.p), c.issuer_raw.len};
}

Result<std::size_t> CertList::serial_der(std::size_t i, std::span<std::byte> out) const noexcept {
    const auto& c = at(i);
    if (c.serial.len > 126 || out.size() < c.serial.len + 2) return fail(Errc::buffer_too_small);
    out[0] = std::byte{0x02};
    out[1] = std::byte(c.serial.len);
    std::memcpy(out.data() + 2, c.serial.p, c.serial.len);
    return c.serial.len + 2;
}

bool CertList::is_ca(std::size_t i) const noexcept { return at(i).ca_istrue != 0; }

Result<std::size_t> CertList::spki_der(std::size_t i, std::span<std::byte> out) const noexcept {
    auto& pk = const_cast<mbedtls_pk_context&>(at(i).pk);  // mbedTLS 2.28 takes a non-const pk
    int len = mbedtls_pk_write_pubkey_der(&pk, u8(out), out.size());
    if (len < 0) return fail(Errc::buffer_too_small, len);
    return to_front(out, len);
}

Result<void> describe_certificate(std::span<const std::byte> der, std::span<char> subject, std::span<char> issuer,
                                  std::span<char> not_after) noexcept {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ret = mbedtls_x509_crt_parse_der(&crt, u8(der), der.size());
    if (ret == 0) {
        if (mbedtls_x509_dn_gets(subject.data(), subject.size(), &crt.subject) < 0 && !subject.empty()) subject[0] = '\0';
        if (mbedtls_x509_dn_gets(issuer.data(), issuer.size(), &crt.issuer) < 0 && !issuer.empty()) issuer[0] = '\0';
        std::snprintf(not_after.data(), not_after.size(), "%04d-%02d-%02d", crt.valid_to.year, crt.valid_to.mon,
                      crt.valid_to.day);
    }
    mbedtls_x509_crt_free(&crt);
    if (ret != 0) return fail(Errc::bad_encoding, ret);
    return {};
}

}  // namespace p11tls::detail::mbed
