// SPDX-License-Identifier: MIT
#pragma once
/// The mechanisms SoftToken implements, as one table: C_GetMechanismList/Info and the sign,
/// verify and digest paths all read it.
#include <optional>
#include <span>

#include <mbedtls/md.h>

#include <p11tls/token/pkcs11.hpp>

namespace p11tls::token {

struct MechanismInfo {
    CK_MECHANISM_TYPE type;
    CK_KEY_TYPE key_type;     ///< CK_UNAVAILABLE_INFORMATION for digests
    mbedtls_md_type_t hash;   ///< hash the token computes over the input; NONE: input is used as is
    bool pss;                 ///< takes CK_RSA_PKCS_PSS_PARAMS
    CK_ULONG min_key, max_key;
    CK_FLAGS flags;
};

inline constexpr CK_FLAGS ec_flags = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
inline constexpr CK_ULONG na = CK_UNAVAILABLE_INFORMATION;

inline constexpr MechanismInfo mechanism_table[] = {
    {CKM_EC_KEY_PAIR_GEN, CKK_EC, MBEDTLS_MD_NONE, false, 256, 384, CKF_GENERATE_KEY_PAIR | ec_flags},
    {CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, MBEDTLS_MD_NONE, false, 2048, 4096, CKF_GENERATE_KEY_PAIR},
    {CKM_ECDSA, CKK_EC, MBEDTLS_MD_NONE, false, 256, 384, CKF_SIGN | CKF_VERIFY | ec_flags},
    {CKM_ECDSA_SHA256, CKK_EC, MBEDTLS_MD_SHA256, false, 256, 384, CKF_SIGN | CKF_VERIFY | ec_flags},
    {CKM_ECDSA_SHA384, CKK_EC, MBEDTLS_MD_SHA384, false, 256, 384, CKF_SIGN | CKF_VERIFY | ec_flags},
    {CKM_ECDSA_SHA512, CKK_EC, MBEDTLS_MD_SHA512, false, 256, 384, CKF_SIGN | CKF_VERIFY | ec_flags},
    {CKM_RSA_PKCS, CKK_RSA, MBEDTLS_MD_NONE, false, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA256_RSA_PKCS, CKK_RSA, MBEDTLS_MD_SHA256, false, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA384_RSA_PKCS, CKK_RSA, MBEDTLS_MD_SHA384, false, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA512_RSA_PKCS, CKK_RSA, MBEDTLS_MD_SHA512, false, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_RSA_PKCS_PSS, CKK_RSA, MBEDTLS_MD_NONE, true, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA256_RSA_PKCS_PSS, CKK_RSA, MBEDTLS_MD_SHA256, true, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA384_RSA_PKCS_PSS, CKK_RSA, MBEDTLS_MD_SHA384, true, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA512_RSA_PKCS_PSS, CKK_RSA, MBEDTLS_MD_SHA512, true, 1024, 4096, CKF_SIGN | CKF_VERIFY},
    {CKM_SHA256, na, MBEDTLS_MD_SHA256, false, 0, 0, CKF_DIGEST},
    {CKM_SHA384, na, MBEDTLS_MD_SHA384, false, 0, 0, CKF_DIGEST},
    {CKM_SHA512, na, MBEDTLS_MD_SHA512, false, 0, 0, CKF_DIGEST},
};

[[nodiscard]] constexpr const MechanismInfo* find_mechanism(CK_MECHANISM_TYPE t) noexcept {
    for (const auto& m : mechanism_table)
        if (m.type == t) return &m;
    return nullptr;
}

[[nodiscard]] constexpr const MechanismInfo* find_sign_mechanism(CK_MECHANISM_TYPE t) noexcept {
    const MechanismInfo* m = find_mechanism(t);
    return m && (m->flags & CKF_SIGN) ? m : nullptr;
}

/// The mbedTLS hash of a digest mechanism (also PSS's hashAlg).
[[nodiscard]] constexpr std::optional<mbedtls_md_type_t> digest_md(CK_MECHANISM_TYPE t) noexcept {
    const MechanismInfo* m = find_mechanism(t);
    if (m && (m->flags & CKF_DIGEST)) return m->hash;
    return std::nullopt;
}

/// The hash of an MGF1 generator for PSS.
[[nodiscard]] constexpr std::optional<mbedtls_md_type_t> mgf_md(CK_RSA_PKCS_MGF_TYPE g) noexcept {
    switch (g) {
    case CKG_MGF1_SHA256: return MBEDTLS_MD_SHA256;
    case CKG_MGF1_SHA384: return MBEDTLS_MD_SHA384;
    case CKG_MGF1_SHA512: return MBEDTLS_MD_SHA512;
    default: return std::nullopt;
    }
}

}  // namespace p11tls::token
