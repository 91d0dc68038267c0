// SPDX-License-Identifier: MIT
// Key operations for SoftToken on raw components. Secret temporaries live in mbedTLS mpi/ctx
// objects whose free functions zeroize them; local byte buffers are zeroized explicitly.
#include <cstring>

#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/detail/mbedtls/crypto.hpp>
#include <p11tls/detail/mbedtls/error.hpp>

namespace p11tls::detail::mbed {

Error to_error(int ret) noexcept {
    switch (ret) {
    case MBEDTLS_ERR_ENTROPY_SOURCE_FAILED:
    case MBEDTLS_ERR_ENTROPY_NO_SOURCES_DEFINED:
    case MBEDTLS_ERR_ENTROPY_NO_STRONG_SOURCE:
    case MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED:
        return {Errc::entropy_failed, ret};
    case MBEDTLS_ERR_MPI_ALLOC_FAILED:
    case MBEDTLS_ERR_ECP_ALLOC_FAILED:
    case MBEDTLS_ERR_MD_ALLOC_FAILED:
        return {Errc::out_of_memory, ret};
    case MBEDTLS_ERR_ECP_VERIFY_FAILED:
    case MBEDTLS_ERR_RSA_VERIFY_FAILED:
        return {Errc::signature_invalid, ret};
    case MBEDTLS_ERR_ECP_INVALID_KEY:
    case MBEDTLS_ERR_RSA_KEY_CHECK_FAILED:
        return {Errc::attribute_value_invalid, ret};
    case MBEDTLS_ERR_RSA_BAD_INPUT_DATA:
        return {Errc::data_len_range, ret};
    case MBEDTLS_ERR_RSA_RNG_FAILED:
        return {Errc::entropy_failed, ret};
    default:
        return {Errc::crypto_failed, ret};
    }
}

namespace {

constexpr unsigned char oid_p256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
constexpr unsigned char oid_p384[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22};

const unsigned char* u8(std::span<const std::byte> s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* u8(std::span<std::byte> s) { return reinterpret_cast<unsigned char*>(s.data()); }

// RAII holders so every exit path frees (and thereby zeroizes) secret state.
struct Group {
    mbedtls_ecp_group g;
    Group() { mbedtls_ecp_group_init(&g); }
    ~Group() { mbedtls_ecp_group_free(&g); }
    int load(Curve c) { return mbedtls_ecp_group_load(&g, c == Curve::p256 ? MBEDTLS_ECP_DP_SECP256R1 : MBEDTLS_ECP_DP_SECP384R1); }
};
struct Mpi {
    mbedtls_mpi m;
    Mpi() { mbedtls_mpi_init(&m); }
    ~Mpi() { mbedtls_mpi_free(&m); }
};
struct Point {
    mbedtls_ecp_point p;
    Point() { mbedtls_ecp_point_init(&p); }
    ~Point() { mbedtls_ecp_point_free(&p); }
};
struct Rsa {
    mbedtls_rsa_context r;
    Rsa() { mbedtls_rsa_init(&r, MBEDTLS_RSA_PKCS_V15, 0); }
    ~Rsa() { mbedtls_rsa_free(&r); }
};

const unsigned char* opt(std::span<const std::byte> s) { return s.empty() ? nullptr : u8(s); }

// mbedTLS 2.28's deterministic ECDSA seeds its HMAC_DRBG from a local buffer holding d || H(m)
// and returns without wiping it (ecdsa_sign_det_restartable): the private scalar stays in the
// dead frame just below its caller until something reuses that stack. Called right after, from
// the same frame, this overwrites the stack that call used (the hygiene test finds d there
// without it, and nothing in 64 KiB below with it).
[[gnu::noinline]] void wipe_stack_below_caller() noexcept {
    unsigned char area[2048];
    mbedtls_platform_zeroize(area, sizeof area);
}

int rsa_load(Rsa& k, const RsaKey& key) {
    int ret = mbedtls_rsa_import_raw(&k.r, opt(key.n), key.n.size(), opt(key.p), key.p.size(), opt(key.q),
                                     key.q.size(), opt(key.d), key.d.size(), opt(key.e), key.e.size());
    if (ret == 0) ret = mbedtls_rsa_complete(&k.r);
    return ret;
}

}  // namespace

std::optional<Curve> curve_from_params(std::span<const std::byte> der) noexcept {
    auto eq = [&](const auto& oid) { return der.size() == sizeof oid && std::memcmp(der.data(), oid, sizeof oid) == 0; };
    if (eq(oid_p256)) return Curve::p256;
    if (eq(oid_p384)) return Curve::p384;
    return std::nullopt;
}

std::span<const std::byte> curve_params(Curve c) noexcept {
    if (c == Curve::p256) return std::as_bytes(std::span(oid_p256));
    return std::as_bytes(std::span(oid_p384));
}

Result<std::span<const std::byte>> ec_point_raw(Curve c, std::span<const std::byte> v) noexcept {
    const std::size_t raw_len = 1 + 2 * curve_bytes(c);
    if (v.size() == raw_len && v[0] == std::byte{0x04}) return v;  // bare point
    // DER OCTET STRING; raw_len is below 128 for both curves, so the length is one byte.
    if (v.size() == raw_len + 2 && v[0] == std::byte{0x04} && std::to_integer<std::size_t>(v[1]) == raw_len &&
        v[2] == std::byte{0x04})
        return v.subspan(2);
    return fail(Errc::attribute_value_invalid);
}

std::size_t ec_point_der(std::span<const std::byte> raw, std::span<std::byte> out) noexcept {
    if (raw.size() > 127 || out.size() < raw.size() + 2) return 0;
    out[0] = std::byte{0x04};
    out[1] = std::byte(raw.size());
    std::memcpy(out.data() + 2, raw.data(), raw.size());
    return raw.size() + 2;
}

mbedtls_ecp_group* EcGroups::get(Curve c) noexcept {
    mbedtls_ecp_group& g = groups_[c == Curve::p256 ? 0 : 1];
    if (g.id == MBEDTLS_ECP_DP_NONE &&
        mbedtls_ecp_group_load(&g, c == Curve::p256 ? MBEDTLS_ECP_DP_SECP256R1 : MBEDTLS_ECP_DP_SECP384R1) != 0) {
        mbedtls_ecp_group_free(&g);
        mbedtls_ecp_group_init(&g);
        return nullptr;
    }
    return &g;
}

Result<void> ec_check_private(Curve c, std::span<const std::byte> d) noexcept {
    if (d.empty() || d.size() > curve_bytes(c)) return fail(Errc::attribute_value_invalid);
    Group g;
    Mpi x;
    int ret = g.load(c);
    if (ret == 0) ret = mbedtls_mpi_read_binary(&x.m, u8(d), d.size());
    if (ret == 0) ret = mbedtls_ecp_check_privkey(&g.g, &x.m);
    return ret == 0 ? Result<void>{} : fail(Errc::attribute_value_invalid, ret);
}

Result<void> ec_check_public(Curve c, std::span<const std::byte> raw) noexcept {
    Group g;
    Point q;
    int ret = g.load(c);
    if (ret == 0) ret = mbedtls_ecp_point_read_binary(&g.g, &q.p, u8(raw), raw.size());
    if (ret == 0) ret = mbedtls_ecp_check_pubkey(&g.g, &q.p);
    return ret == 0 ? Result<void>{} : fail(Errc::attribute_value_invalid, ret);
}

Result<void> ec_generate(EcGroups& groups, Curve c, Rng rng, std::span<std::byte> d, std::span<std::byte> point) noexcept {
    const std::size_t cb = curve_bytes(c);
    P11TLS_ASSERT(d.size() >= cb && point.size() >= 1 + 2 * cb, "ec_generate: output too small");
    mbedtls_ecp_group* g = groups.get(c);
    if (!g) return fail(Errc::out_of_memory);
    Mpi x;
    Point q;
    std::size_t olen = 0;
    int ret = mbedtls_ecp_gen_keypair(g, &x.m, &q.p, rng.f, rng.p);
    if (ret == 0) ret = mbedtls_mpi_write_binary(&x.m, u8(d), cb);
    if (ret == 0) ret = mbedtls_ecp_point_write_binary(g, &q.p, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, u8(point), point.size());
    if (ret != 0) mbedtls_platform_zeroize(d.data(), d.size());
    return check(ret);
}

Result<void> ec_public_from_private(Curve c, std::span<const std::byte> d, std::span<std::byte> point) noexcept {
    Group g;
    Mpi x;
    Point q;
    std::size_t olen = 0;
    int ret = g.load(c);
    if (ret == 0) ret = mbedtls_mpi_read_binary(&x.m, u8(d), d.size());
    if (ret == 0) ret = mbedtls_ecp_mul(&g.g, &q.p, &x.m, &g.g.G, nullptr, nullptr);
    if (ret == 0) ret = mbedtls_ecp_point_write_binary(&g.g, &q.p, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, u8(point), point.size());
    return check(ret);
}

Result<void> ec_sign(EcGroups& groups, Curve c, std::span<const std::byte> d, std::span<const std::byte> hash,
                     std::span<std::byte> sig, Rng rng) noexcept {
    const std::size_t cb = curve_bytes(c);
    P11TLS_ASSERT(sig.size() >= 2 * cb, "ec_sign: signature buffer too small");
    mbedtls_ecp_group* g = groups.get(c);
    if (!g) return fail(Errc::out_of_memory);
    Mpi x, r, s;
    int ret = mbedtls_mpi_read_binary(&x.m, u8(d), d.size());
    if (ret == 0)
        ret = mbedtls_ecdsa_sign_det_ext(g, &r.m, &s.m, &x.m, u8(hash), hash.size(),
                                         c == Curve::p256 ? MBEDTLS_MD_SHA256 : MBEDTLS_MD_SHA384, rng.f, rng.p);
    wipe_stack_below_caller();
    // PKCS#11 ECDSA signatures are r||s, each left-padded to the order's length.
    if (ret == 0) ret = mbedtls_mpi_write_binary(&r.m, u8(sig), cb);
    if (ret == 0) ret = mbedtls_mpi_write_binary(&s.m, u8(sig) + cb, cb);
    return check(ret);
}

Result<void> ec_verify(EcGroups& groups, Curve c, std::span<const std::byte> raw_point,
                       std::span<const std::byte> hash, std::span<const std::byte> sig) noexcept {
    const std::size_t cb = curve_bytes(c);
    if (sig.size() != 2 * cb) return fail(Errc::signature_len_range);
    mbedtls_ecp_group* g = groups.get(c);
    if (!g) return fail(Errc::out_of_memory);
    Point q;
    Mpi r, s;
    int ret = mbedtls_ecp_point_read_binary(g, &q.p, u8(raw_point), raw_point.size());
    if (ret == 0) ret = mbedtls_mpi_read_binary(&r.m, u8(sig), cb);
    if (ret == 0) ret = mbedtls_mpi_read_binary(&s.m, u8(sig) + cb, cb);
    if (ret != 0) return check(ret);
    ret = mbedtls_ecdsa_verify(g, u8(hash), hash.size(), &q.p, &r.m, &s.m);
    if (ret != 0) return fail(Errc::signature_invalid, ret);
    return {};
}

Result<unsigned> rsa_check_public(std::span<const std::byte> n, std::span<const std::byte> e) noexcept {
    Rsa k;
    int ret = rsa_load(k, RsaKey{n, e, {}, {}, {}});
    if (ret == 0) ret = mbedtls_rsa_check_pubkey(&k.r);
    if (ret != 0) return fail(Errc::attribute_value_invalid, ret);
    unsigned bits = static_cast<unsigned>(mbedtls_mpi_bitlen(&k.r.N));
    if (bits < rsa_min_bits || bits > rsa_max_bits) return fail(Errc::key_size_range);
    return bits;
}

Result<void> rsa_check_private(const RsaKey& key) noexcept {
    Rsa k;
    int ret = rsa_load(k, key);
    if (ret == 0) ret = mbedtls_rsa_check_privkey(&k.r);
    if (ret != 0) return fail(Errc::attribute_value_invalid, ret);
    auto bits = mbedtls_mpi_bitlen(&k.r.N);
    if (bits < rsa_min_bits || bits > rsa_max_bits) return fail(Errc::key_size_range);
    return {};
}

Result<std::size_t> rsa_sign(const RsaKey& key, const RsaScheme& s, std::span<const std::byte> in,
                             std::span<std::byte> sig, Rng rng) noexcept {
    Rsa k;
    int ret = rsa_load(k, key);
    if (ret != 0) return fail(Errc::crypto_failed, ret);
    const std::size_t len = mbedtls_rsa_get_len(&k.r);
    P11TLS_ASSERT(sig.size() >= len, "rsa_sign: signature buffer too small");
    if (s.pad == RsaPad::pkcs1) {
        if (s.md == MBEDTLS_MD_NONE && in.size() + 11 > len) return fail(Errc::data_len_range);
        ret = mbedtls_rsa_pkcs1_sign(&k.r, rng.f, rng.p, MBEDTLS_RSA_PRIVATE, s.md,
                                     static_cast<unsigned>(in.size()), u8(in), u8(sig));
    } else {
        if (in.size() != md_size(s.md)) return fail(Errc::data_len_range);
        if (s.salt + md_size(s.md) + 2 > len) return fail(Errc::mechanism_param_invalid);
        mbedtls_rsa_set_padding(&k.r, MBEDTLS_RSA_PKCS_V21, s.mgf);
        ret = mbedtls_rsa_rsassa_pss_sign_ext(&k.r, rng.f, rng.p, s.md, static_cast<unsigned>(in.size()), u8(in),
                                              static_cast<int>(s.salt), u8(sig));
    }
    if (ret != 0) return fail(to_error(ret));
    return len;
}

Result<void> rsa_verify(const RsaKey& key, const RsaScheme& s, std::span<const std::byte> in,
                        std::span<const std::byte> sig) noexcept {
    Rsa k;
    int ret = rsa_load(k, RsaKey{key.n, key.e, {}, {}, {}});
    if (ret != 0) return fail(Errc::crypto_failed, ret);
    if (sig.size() != mbedtls_rsa_get_len(&k.r)) return fail(Errc::signature_len_range);
    if (s.pad == RsaPad::pkcs1) {
        ret = mbedtls_rsa_pkcs1_verify(&k.r, nullptr, nullptr, MBEDTLS_RSA_PUBLIC, s.md,
                                       static_cast<unsigned>(in.size()), u8(in), u8(sig));
    } else {
        if (in.size() != md_size(s.md)) return fail(Errc::data_len_range);
        ret = mbedtls_rsa_rsassa_pss_verify_ext(&k.r, nullptr, nullptr, MBEDTLS_RSA_PUBLIC, s.md,
                                                static_cast<unsigned>(in.size()), u8(in), s.mgf,
                                                static_cast<int>(s.salt), u8(sig));
    }
    if (ret != 0) return fail(Errc::signature_invalid, ret);
    return {};
}

Result<void> rsa_generate(unsigned bits, std::uint32_t e, Rng rng, RsaSink sink, void* ctx) noexcept {
    if (bits < 2048 || bits > rsa_max_bits || bits % 8 != 0) return fail(Errc::key_size_range);
    if (e < 3 || (e & 1u) == 0 || e > 0x7FFFFFFFu) return fail(Errc::template_inconsistent);
    Rsa k;
    int ret = mbedtls_rsa_gen_key(&k.r, rng.f, rng.p, bits, static_cast<int>(e));
    if (ret != 0) return check(ret);
    Mpi parts[8];
    ret = mbedtls_rsa_export(&k.r, &parts[0].m, &parts[3].m, &parts[4].m, &parts[2].m, &parts[1].m);
    if (ret == 0) ret = mbedtls_rsa_export_crt(&k.r, &parts[5].m, &parts[6].m, &parts[7].m);
    if (ret != 0) return check(ret);
    unsigned char buf[rsa_max_bits / 8];
    for (int i = 0; i < 8 && ret == 0; ++i) {
        std::size_t n = mbedtls_mpi_size(&parts[i].m);
        ret = mbedtls_mpi_write_binary(&parts[i].m, buf, n);
        if (ret == 0) sink(ctx, static_cast<RsaPart>(i), std::as_bytes(std::span(buf, n)));
        mbedtls_platform_zeroize(buf, sizeof buf);
    }
    return check(ret);
}

std::size_t md_size(mbedtls_md_type_t t) noexcept {
    const mbedtls_md_info_t* info = mbedtls_md_info_from_type(t);
    return info ? mbedtls_md_get_size(info) : 0;
}

Result<void> hash(mbedtls_md_type_t t, std::span<const std::byte> in, std::span<std::byte> out) noexcept {
    const mbedtls_md_info_t* info = mbedtls_md_info_from_type(t);
    if (!info) return fail(Errc::mechanism_invalid);
    P11TLS_ASSERT(out.size() >= mbedtls_md_get_size(info), "hash: output too small");
    return check(mbedtls_md(info, u8(in), in.size(), u8(out)));
}

Result<void> pbkdf2_sha256(std::span<const std::byte> pin, std::span<const std::byte> salt, unsigned iterations,
                           std::span<std::byte> out) noexcept {
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    int ret = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1);
    if (ret == 0)
        ret = mbedtls_pkcs5_pbkdf2_hmac(&ctx, u8(pin), pin.size(), u8(salt), salt.size(), iterations,
                                        static_cast<std::uint32_t>(out.size()), u8(out));
    mbedtls_md_free(&ctx);
    return check(ret);
}

Result<void> x509_parts(std::span<const std::byte> der, X509Sink sink, void* ctx) noexcept {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ret = mbedtls_x509_crt_parse_der(&crt, u8(der), der.size());
    if (ret == 0 && crt.serial.len < 127) {
        sink(ctx, CertPart::subject, std::as_bytes(std::span(crt.subject_raw.p, crt.subject_raw.len)));
        sink(ctx, CertPart::issuer, std::as_bytes(std::span(crt.issuer_raw.p, crt.issuer_raw.len)));
        unsigned char serial[129] = {0x02, static_cast<unsigned char>(crt.serial.len)};
        std::memcpy(serial + 2, crt.serial.p, crt.serial.len);
        sink(ctx, CertPart::serial, std::as_bytes(std::span(serial, crt.serial.len + 2)));
    } else if (ret == 0) {
        ret = MBEDTLS_ERR_X509_INVALID_SERIAL;
    }
    mbedtls_x509_crt_free(&crt);
    if (ret != 0) return fail(Errc::attribute_value_invalid, ret);
    return {};
}

Result<void> Md::start(mbedtls_md_type_t t) noexcept {
    reset();
    const mbedtls_md_info_t* info = mbedtls_md_info_from_type(t);
    if (!info) return fail(Errc::mechanism_invalid);
    int ret = mbedtls_md_setup(&ctx_, info, 0);
    if (ret == 0) ret = mbedtls_md_starts(&ctx_);
    return check(ret);
}

Result<void> Md::update(std::span<const std::byte> in) noexcept { return check(mbedtls_md_update(&ctx_, u8(in), in.size())); }

Result<void> Md::finish(std::span<std::byte> out) noexcept {
    int ret = mbedtls_md_finish(&ctx_, u8(out));
    reset();
    return check(ret);
}

}  // namespace p11tls::detail::mbed
