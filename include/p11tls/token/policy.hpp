// SPDX-License-Identifier: MIT
#pragma once
/// Which attributes each object class and key type has, which a template may set, which are
/// required, secret or modifiable, and their defaults (PKCS#11 v2.40 §4). One table, used by
/// object creation, key generation, C_GetAttributeValue and C_SetAttributeValue.
#include <optional>
#include <span>

#include <p11tls/token/object.hpp>

namespace p11tls::token {

enum RuleFlag : std::uint8_t {
    allowed = 1,     ///< may appear in a creation template
    required = 2,    ///< must appear in a creation template (unless generated)
    sensitive = 4,   ///< secret: never revealed when CKA_SENSITIVE or !CKA_EXTRACTABLE
    modifiable = 8,  ///< may change through C_SetAttributeValue
    generated = 16,  ///< produced by key generation; not in a generation template
    computed = 32,   ///< always set by the token; read-only
    gen_input = 64,  ///< accepted in a generation template only (CKA_MODULUS_BITS)
};

struct Rule {
    CK_ATTRIBUTE_TYPE type;
    std::uint8_t flags;
};

/// The class and (for keys) key type an object template describes.
struct Kind {
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_KEY_TYPE key_type = CK_UNAVAILABLE_INFORMATION;
};

namespace detail {
inline constexpr Rule common_rules[] = {
    {CKA_CLASS, allowed | required}, {CKA_TOKEN, allowed},       {CKA_PRIVATE, allowed},
    {CKA_MODIFIABLE, allowed},       {CKA_LABEL, allowed | modifiable}, {CKA_COPYABLE, allowed},
    {CKA_DESTROYABLE, allowed},
};
inline constexpr Rule data_rules[] = {
    {CKA_APPLICATION, allowed}, {CKA_OBJECT_ID, allowed}, {CKA_VALUE, allowed}, {CKA_ID, allowed | modifiable},
};
inline constexpr Rule cert_rules[] = {
    {CKA_CERTIFICATE_TYPE, allowed | required}, {CKA_TRUSTED, allowed}, {CKA_CERTIFICATE_CATEGORY, allowed},
    {CKA_CHECK_VALUE, allowed}, {CKA_START_DATE, allowed}, {CKA_END_DATE, allowed}, {CKA_PUBLIC_KEY_INFO, allowed},
    {CKA_SUBJECT, allowed}, {CKA_ID, allowed | modifiable}, {CKA_ISSUER, allowed}, {CKA_SERIAL_NUMBER, allowed},
    {CKA_VALUE, allowed | required}, {CKA_URL, allowed}, {CKA_HASH_OF_SUBJECT_PUBLIC_KEY, allowed},
    {CKA_HASH_OF_ISSUER_PUBLIC_KEY, allowed}, {CKA_JAVA_MIDP_SECURITY_DOMAIN, allowed},
    {CKA_NAME_HASH_ALGORITHM, allowed},
};
inline constexpr Rule key_rules[] = {
    {CKA_KEY_TYPE, allowed | required}, {CKA_ID, allowed | modifiable}, {CKA_START_DATE, allowed},
    {CKA_END_DATE, allowed}, {CKA_DERIVE, allowed}, {CKA_LOCAL, computed}, {CKA_KEY_GEN_MECHANISM, computed},
    {CKA_ALLOWED_MECHANISMS, allowed}, {CKA_SUBJECT, allowed | modifiable}, {CKA_PUBLIC_KEY_INFO, allowed},
};
inline constexpr Rule public_rules[] = {
    {CKA_ENCRYPT, allowed}, {CKA_VERIFY, allowed}, {CKA_VERIFY_RECOVER, allowed}, {CKA_WRAP, allowed},
    {CKA_TRUSTED, allowed},
};
inline constexpr Rule private_rules[] = {
    {CKA_SENSITIVE, allowed}, {CKA_DECRYPT, allowed}, {CKA_SIGN, allowed}, {CKA_SIGN_RECOVER, allowed},
    {CKA_UNWRAP, allowed}, {CKA_EXTRACTABLE, allowed}, {CKA_ALWAYS_SENSITIVE, computed},
    {CKA_NEVER_EXTRACTABLE, computed}, {CKA_WRAP_WITH_TRUSTED, allowed}, {CKA_ALWAYS_AUTHENTICATE, allowed},
};
inline constexpr Rule ec_public_rules[] = {
    {CKA_EC_PARAMS, allowed | required}, {CKA_EC_POINT, allowed | required | generated},
};
inline constexpr Rule ec_private_rules[] = {
    {CKA_EC_PARAMS, allowed | required}, {CKA_VALUE, allowed | required | sensitive | generated},
    {CKA_EC_POINT, allowed | generated},
};
inline constexpr Rule rsa_public_rules[] = {
    {CKA_MODULUS, allowed | required | generated}, {CKA_MODULUS_BITS, computed | gen_input},
    {CKA_PUBLIC_EXPONENT, allowed | required},
};
inline constexpr Rule rsa_private_rules[] = {
    {CKA_MODULUS, allowed | required | generated},
    {CKA_PUBLIC_EXPONENT, allowed | generated},
    {CKA_PRIVATE_EXPONENT, allowed | required | sensitive | generated},
    {CKA_PRIME_1, allowed | sensitive | generated},
    {CKA_PRIME_2, allowed | sensitive | generated},
    {CKA_EXPONENT_1, allowed | sensitive | generated},
    {CKA_EXPONENT_2, allowed | sensitive | generated},
    {CKA_COEFFICIENT, allowed | sensitive | generated},
};

template <class F>
constexpr void for_each_rule(Kind k, F&& f) {
    auto each = [&](std::span<const Rule> rs) {
        for (const Rule& r : rs) f(r);
    };
    each(common_rules);
    switch (k.cls) {
    case CKO_DATA: each(data_rules); break;
    case CKO_CERTIFICATE: each(cert_rules); break;
    case CKO_PUBLIC_KEY:
        each(key_rules);
        each(public_rules);
        each(k.key_type == CKK_EC ? std::span<const Rule>(ec_public_rules) : std::span<const Rule>(rsa_public_rules));
        break;
    case CKO_PRIVATE_KEY:
        each(key_rules);
        each(private_rules);
        each(k.key_type == CKK_EC ? std::span<const Rule>(ec_private_rules) : std::span<const Rule>(rsa_private_rules));
        break;
    default: break;
    }
}
}  // namespace detail

/// The rule for attribute `t` of objects of kind `k`, if the kind has that attribute.
[[nodiscard]] constexpr std::optional<Rule> rule_for(Kind k, CK_ATTRIBUTE_TYPE t) noexcept {
    std::optional<Rule> found;
    detail::for_each_rule(k, [&](const Rule& r) {
        if (r.type == t) found = r;
    });
    return found;
}

[[nodiscard]] constexpr bool supported_kind(Kind k) noexcept {
    switch (k.cls) {
    case CKO_DATA:
    case CKO_CERTIFICATE: return true;
    case CKO_PUBLIC_KEY:
    case CKO_PRIVATE_KEY: return k.key_type == CKK_EC || k.key_type == CKK_RSA;
    default: return false;
    }
}

/// The error for a template attribute that objects of kind `k` do not have (PKCS#11 v2.40
/// §4.1.1): an attribute the spec defines for other objects this token holds makes the
/// template inconsistent (CKR_TEMPLATE_INCONSISTENT, "appropriate for ... but not for" this
/// class); a type defined for none of them is invalid (CKR_ATTRIBUTE_TYPE_INVALID).
[[nodiscard]] constexpr Errc absent_attribute_error(CK_ATTRIBUTE_TYPE t) noexcept {
    constexpr Kind kinds[] = {{CKO_DATA, CK_UNAVAILABLE_INFORMATION}, {CKO_CERTIFICATE, CK_UNAVAILABLE_INFORMATION},
                              {CKO_PUBLIC_KEY, CKK_EC},  {CKO_PUBLIC_KEY, CKK_RSA},
                              {CKO_PRIVATE_KEY, CKK_EC}, {CKO_PRIVATE_KEY, CKK_RSA}};
    for (const Kind& k : kinds)
        if (rule_for(k, t)) return Errc::template_inconsistent;
    return Errc::attribute_type_invalid;
}

enum class Mode : std::uint8_t { create, generate };

/// The value of attribute `t` in a caller template, if present.
[[nodiscard]] inline const CK_ATTRIBUTE* find_in(std::span<const CK_ATTRIBUTE> tmpl, CK_ATTRIBUTE_TYPE t) noexcept {
    for (const CK_ATTRIBUTE& a : tmpl)
        if (a.type == t) return &a;
    return nullptr;
}

/// Reads a CK_ULONG attribute of a caller template.
[[nodiscard]] inline Result<std::optional<CK_ULONG>> ulong_in(std::span<const CK_ATTRIBUTE> tmpl, CK_ATTRIBUTE_TYPE t) noexcept {
    const CK_ATTRIBUTE* a = find_in(tmpl, t);
    if (!a) return std::optional<CK_ULONG>{};
    if (a->pValue == nullptr || a->ulValueLen != sizeof(CK_ULONG)) return fail(Errc::attribute_value_invalid);
    CK_ULONG v;
    std::memcpy(&v, a->pValue, sizeof v);
    return std::optional<CK_ULONG>{v};
}

/// Works out the kind of a template; `implied` is the kind key generation dictates, which the
/// template may repeat but not contradict.
[[nodiscard]] inline Result<Kind> classify(std::span<const CK_ATTRIBUTE> tmpl, std::optional<Kind> implied = {}) noexcept {
    auto cls = ulong_in(tmpl, CKA_CLASS);
    if (!cls) return fail(cls.error());
    auto kt = ulong_in(tmpl, CKA_KEY_TYPE);
    if (!kt) return fail(kt.error());
    Kind k;
    if (implied) {
        if ((*cls && **cls != implied->cls) || (*kt && **kt != implied->key_type)) return fail(Errc::template_inconsistent);
        k = *implied;
    } else {
        if (!*cls) return fail(Errc::template_incomplete);
        k.cls = **cls;
        if (k.cls == CKO_PUBLIC_KEY || k.cls == CKO_PRIVATE_KEY) {
            if (!*kt) return fail(Errc::template_incomplete);
            k.key_type = **kt;
        } else if (*kt) {
            return fail(Errc::template_inconsistent);
        }
    }
    if (!supported_kind(k)) return fail(Errc::attribute_value_invalid);
    return k;
}

/// Checks each attribute's presence, length and permission for `mode`. Nothing is stored.
[[nodiscard]] inline Result<void> check_template(Kind k, std::span<const CK_ATTRIBUTE> tmpl, Mode mode) noexcept {
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        const CK_ATTRIBUTE& a = tmpl[i];
        for (std::size_t j = 0; j < i; ++j)
            if (tmpl[j].type == a.type) return fail(Errc::template_inconsistent);
        auto rule = rule_for(k, a.type);
        if (!rule) return fail(absent_attribute_error(a.type));
        if (!canonical(a)) return fail(Errc::attribute_value_invalid);  // also checks CKA_ALLOWED_MECHANISMS
        bool ok_here = mode == Mode::create ? (rule->flags & allowed) != 0
                                            : ((rule->flags & allowed) && !(rule->flags & generated)) ||
                                                  (rule->flags & gen_input);
        if (!ok_here) return fail((rule->flags & (computed | generated)) ? Errc::attribute_read_only : Errc::template_inconsistent);
    }
    Result<void> missing;
    detail::for_each_rule(k, [&](const Rule& r) {
        if (!(r.flags & required) || find_in(tmpl, r.type)) return;
        if (mode == Mode::generate && (r.flags & generated)) return;
        // Key generation implies class and key type, takes the private key's curve from the
        // public template and defaults the public exponent.
        if (mode == Mode::generate && (r.type == CKA_CLASS || r.type == CKA_KEY_TYPE || r.type == CKA_PUBLIC_EXPONENT ||
                                       (r.type == CKA_EC_PARAMS && k.cls == CKO_PRIVATE_KEY)))
            return;
        if (mode == Mode::create && k.cls == CKO_CERTIFICATE && r.type == CKA_SUBJECT) return;
        missing = fail(Errc::template_incomplete);
    });
    if (!missing) return missing;
    if (mode == Mode::generate && k.cls == CKO_PUBLIC_KEY && k.key_type == CKK_RSA && !find_in(tmpl, CKA_MODULUS_BITS))
        return fail(Errc::template_incomplete);
    // Context-specific login is not offered, so a key demanding it could never be used.
    if (const CK_ATTRIBUTE* a = find_in(tmpl, CKA_ALWAYS_AUTHENTICATE); a && *static_cast<const CK_BBOOL*>(a->pValue))
        return fail(Errc::attribute_value_invalid);
    return {};
}

/// Copies template attributes (canonical form) into `w`, skipping generation-only inputs.
inline void write_template(AttrWriter& w, Kind k, std::span<const CK_ATTRIBUTE> tmpl) noexcept {
    for (const CK_ATTRIBUTE& a : tmpl) {
        auto rule = rule_for(k, a.type);
        if (rule && (rule->flags & gen_input)) continue;
        if (auto c = canonical(a)) w.add(a.type, c->value);
    }
}

/// Adds the default of every attribute of kind `k` still absent from `w`.
inline void write_defaults(AttrWriter& w, Kind k) noexcept {
    auto b = [&](CK_ATTRIBUTE_TYPE t, bool v) {
        if (!w.has(t)) w.add_bool(t, v);
    };
    auto empty = [&](CK_ATTRIBUTE_TYPE t) {
        if (!w.has(t)) w.add(t, {});
    };
    if (!w.has(CKA_CLASS)) w.add_ulong(CKA_CLASS, k.cls);
    b(CKA_TOKEN, false);
    b(CKA_PRIVATE, k.cls == CKO_PRIVATE_KEY);
    b(CKA_MODIFIABLE, true);
    b(CKA_COPYABLE, true);
    b(CKA_DESTROYABLE, true);
    empty(CKA_LABEL);
    switch (k.cls) {
    case CKO_DATA:
        empty(CKA_APPLICATION);
        empty(CKA_OBJECT_ID);
        empty(CKA_VALUE);
        break;
    case CKO_CERTIFICATE:
        b(CKA_TRUSTED, false);
        if (!w.has(CKA_CERTIFICATE_CATEGORY)) w.add_ulong(CKA_CERTIFICATE_CATEGORY, 0);
        empty(CKA_ID);
        empty(CKA_START_DATE);
        empty(CKA_END_DATE);
        break;
    case CKO_PUBLIC_KEY:
    case CKO_PRIVATE_KEY:
        if (!w.has(CKA_KEY_TYPE)) w.add_ulong(CKA_KEY_TYPE, k.key_type);
        empty(CKA_ID);
        empty(CKA_START_DATE);
        empty(CKA_END_DATE);
        empty(CKA_SUBJECT);
        b(CKA_DERIVE, false);
        if (k.cls == CKO_PUBLIC_KEY) {
            b(CKA_ENCRYPT, false);
            b(CKA_VERIFY, true);
            b(CKA_VERIFY_RECOVER, false);
            b(CKA_WRAP, false);
            b(CKA_TRUSTED, false);
        } else {
            b(CKA_SENSITIVE, true);
            b(CKA_DECRYPT, false);
            b(CKA_SIGN, true);
            b(CKA_SIGN_RECOVER, false);
            b(CKA_UNWRAP, false);
            b(CKA_EXTRACTABLE, false);
            b(CKA_WRAP_WITH_TRUSTED, false);
            b(CKA_ALWAYS_AUTHENTICATE, false);
        }
        break;
    default: break;
    }
}

/// The kind of a stored object.
[[nodiscard]] inline Kind kind_of(const AttrList& l) noexcept {
    return {l.ulong(CKA_CLASS).value_or(CKO_DATA), l.ulong(CKA_KEY_TYPE).value_or(CK_UNAVAILABLE_INFORMATION)};
}

/// True if attribute `t` of stored object `l` must not be revealed.
[[nodiscard]] inline bool hidden(const AttrList& l, CK_ATTRIBUTE_TYPE t) noexcept {
    auto rule = rule_for(kind_of(l), t);
    if (!rule || !(rule->flags & sensitive)) return false;
    return l.flag(CKA_SENSITIVE, true) || !l.flag(CKA_EXTRACTABLE, false);
}

}  // namespace p11tls::token
