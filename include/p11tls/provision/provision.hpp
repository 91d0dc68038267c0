// SPDX-License-Identifier: MIT
#pragma once
/// Provisioning over any Token (SoftToken, ModuleToken): key pairs generated inside the token,
/// PKCS#10 requests signed by the token key, imported certificates, root CAs and private keys,
/// and the token's object list. Default labels are FreeRTOS's, so firmware written against
/// them finds what a factory stored.
///
///   namespace pv = p11tls::provision;
///   auto keys = pv::generate_key(token, session, pv::KeyType::ec_p256);
///   std::array<std::byte, 4096> csr;
///   auto n = pv::write_csr(token, session, {.subject = "CN=device-0042,O=Acme"}, csr);
///   ... a CA signs the request ...
///   auto stored = pv::import_certificate(token, session, device_cert_pem);
///   auto roots = pv::import_root(token, session, ca_pem);
///
/// Every function takes a read/write session in which the user is logged in. Bad input (a
/// malformed file, an unsupported key, a certificate for another key, a label in use) is
/// refused before anything is stored; a store that fails midway is rolled back (objects
/// created by the call are destroyed again), so a failed call leaves the token as it was,
/// unless the store also refuses the rollback (a dead flash part).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>

#include <p11tls/concepts/token.hpp>
#include <p11tls/detail/mbedtls/provision.hpp>
#include <p11tls/detail/mbedtls/tls.hpp>
#include <p11tls/token/template.hpp>

namespace p11tls::provision {

inline constexpr std::string_view private_key_label = "Device Priv TLS Key";
inline constexpr std::string_view public_key_label = "Device Pub TLS Key";
inline constexpr std::string_view certificate_label = "Device Cert";
inline constexpr std::string_view root_label = "Root Cert";

enum class KeyType : std::uint8_t { ec_p256, ec_p384, rsa_2048, rsa_3072 };

/// What to do when an object with the label (of the same class) is already in the token.
enum class Existing : std::uint8_t {
    refuse,   ///< Errc::object_exists; nothing changes
    replace,  ///< the new objects are stored first, then the old ones are destroyed
};

/// The objects of a key pair: labels, CKA_ID (empty: none) and the label policy.
struct KeyLabels {
    std::string_view private_label = private_key_label;
    std::string_view public_label = public_key_label;
    std::span<const std::byte> id{};
    Existing existing = Existing::refuse;
};

struct KeyPair {
    CK_ULONG public_key = 0;
    CK_ULONG private_key = 0;
};

/// A private key in the token: by CKA_ID when `id` is not empty, else by label. Its public
/// half is read from the private key object when it carries it, else from the public key
/// object with the same CKA_ID, else the one labelled `public_label`.
struct KeyRef {
    std::string_view label = private_key_label;
    std::span<const std::byte> id{};
    std::string_view public_label = public_key_label;
};

using detail::mbed::Encoding;
using detail::mbed::IpAddress;

/// A PKCS#10 request: subject in mbedTLS's syntax ("CN=device-1,O=Acme,C=DE") and optional
/// subjectAltName entries.
struct CsrOptions {
    std::string_view subject{};
    std::span<const std::string_view> dns{};
    std::span<const IpAddress> ips{};
    KeyRef key{};
    Encoding encoding = Encoding::pem;
};

/// A device certificate, optionally followed by its chain (leaf first), all stored under
/// `label`. When the token holds the key `key` names, the leaf must be its certificate
/// (Errc::tls_key_cert_mismatch otherwise) and the certificates take its CKA_ID.
struct CertOptions {
    std::string_view label = certificate_label;
    KeyRef key{};
    Existing existing = Existing::refuse;
};

/// One or more root CA certificates (each must be a CA), all stored under `label`.
struct RootOptions {
    std::string_view label = root_label;
    Existing existing = Existing::refuse;
};

/// Objects to destroy: those of class `cls` (any when empty) with this label and/or id; at
/// least one of label and id must be given.
struct Selector {
    std::optional<CK_OBJECT_CLASS> cls{};
    std::string_view label{};
    std::span<const std::byte> id{};
};

/// One object as list_objects() reports it. Views point into the lister's buffers and are
/// valid during the callback only.
struct ObjectInfo {
    CK_ULONG handle = 0;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_KEY_TYPE key_type = CK_UNAVAILABLE_INFORMATION;  ///< keys only
    std::string_view label;
    std::span<const std::byte> id;
    unsigned bits = 0;                    ///< keys: modulus or curve size
    std::optional<bool> is_private;       ///< CKA_PRIVATE
    std::optional<bool> sensitive;        ///< private keys: CKA_SENSITIVE
    std::optional<bool> extractable;      ///< private keys: CKA_EXTRACTABLE
    std::optional<bool> local;            ///< keys: CKA_LOCAL (generated in the token)
};

namespace detail {

namespace mbed = p11tls::detail::mbed;

/// Handles collected before they are acted on (the find is closed by then).
template <std::size_t N>
struct Handles {
    std::array<CK_ULONG, N> h{};
    std::size_t size = 0;
    [[nodiscard]] std::span<const CK_ULONG> view() const noexcept { return {h.data(), size}; }
};

template <Token T>
Result<std::size_t> find(T& t, CK_ULONG s, std::span<const CK_ATTRIBUTE> query, std::span<CK_ULONG> out) {
    P11TLS_TRY(t.find_init(s, query));
    auto n = t.find(s, out);
    (void)t.find_final(s);
    return n;
}

/// Objects of `cls` labelled `label`, or with CKA_ID `id` when it is not empty.
template <Token T>
Result<std::size_t> find_by(T& t, CK_ULONG s, CK_OBJECT_CLASS cls, std::string_view label,
                            std::span<const std::byte> id, std::span<CK_ULONG> out) {
    token::Template<4, 512> q;
    q.add(CKA_CLASS, cls);
    if (!id.empty()) q.add(CKA_ID, id);
    else q.add(CKA_LABEL, label);
    if (!q.ok()) return fail(Errc::invalid_argument);
    return find(t, s, std::as_const(q).view(), out);
}

/// Adds the objects of `cls` labelled `label` to `out`.
template <Token T, std::size_t N>
Result<void> collect(T& t, CK_ULONG s, CK_OBJECT_CLASS cls, std::string_view label, Handles<N>& out) {
    if (label.empty()) return {};
    auto n = find_by(t, s, cls, label, {}, std::span(out.h).subspan(out.size));
    if (!n) return fail(n.error());
    out.size += *n;
    return {};
}

/// An attribute's bytes, read into `buf`.
template <Token T>
Result<std::span<const std::byte>> attribute(T& t, CK_ULONG s, CK_ULONG obj, CK_ATTRIBUTE_TYPE type,
                                             std::span<std::byte> buf) {
    CK_ATTRIBUTE a{type, buf.data(), static_cast<CK_ULONG>(buf.size())};
    P11TLS_TRY(t.get_attributes(s, obj, std::span(&a, 1)));
    if (a.ulValueLen > buf.size()) return fail(Errc::buffer_too_small);
    return std::span<const std::byte>(buf.first(a.ulValueLen));
}

template <Token T>
Result<CK_ULONG> ulong_attribute(T& t, CK_ULONG s, CK_ULONG obj, CK_ATTRIBUTE_TYPE type) {
    CK_ULONG v = 0;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    P11TLS_TRY(t.get_attributes(s, obj, std::span(&a, 1)));
    if (a.ulValueLen != sizeof v) return fail(Errc::attribute_value_invalid);
    return v;
}

template <Token T>
std::optional<bool> bool_attribute(T& t, CK_ULONG s, CK_ULONG obj, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    if (!t.get_attributes(s, obj, std::span(&a, 1)) || a.ulValueLen != sizeof v) return std::nullopt;
    return v != CK_FALSE;
}

/// The one object a search must find: Errc::object_not_found for none, object_ambiguous for more.
inline Result<CK_ULONG> only(Result<std::size_t> n, std::span<const CK_ULONG> hits) {
    if (!n) return fail(n.error());
    if (*n == 0) return fail(Errc::object_not_found);
    if (*n > 1) return fail(Errc::object_ambiguous);
    return hits[0];
}

/// Loads the public half of key object `key` (public or private) into `pk`; see KeyRef.
template <Token T>
Result<void> load_public(T& t, CK_ULONG s, CK_ULONG key, std::string_view public_label, mbed::TokenPk& pk) {
    std::array<std::byte, 16> params_buf;
    std::array<std::byte, 520> a_buf, b_buf;
    auto type = ulong_attribute(t, s, key, CKA_KEY_TYPE);
    if (!type) return fail(type.error());
    mbed::PublicKeyParts parts;
    parts.key_type = *type;
    auto from = [&](CK_ULONG obj) -> bool {
        if (*type == CKK_EC) {
            auto params = attribute(t, s, obj, CKA_EC_PARAMS, params_buf);
            auto point = attribute(t, s, obj, CKA_EC_POINT, a_buf);
            if (!params || !point || point->empty()) return false;
            parts.ec_params = *params;
            parts.ec_point = *point;
            return true;
        }
        auto n = attribute(t, s, obj, CKA_MODULUS, a_buf);
        auto e = attribute(t, s, obj, CKA_PUBLIC_EXPONENT, b_buf);
        if (!n || !e || n->empty() || e->empty()) return false;
        parts.modulus = *n;
        parts.exponent = *e;
        return true;
    };
    if (*type != CKK_EC && *type != CKK_RSA) return fail(Errc::unsupported_key);
    if (!from(key)) {
        // A private key that does not carry its public half: the public key object.
        std::array<std::byte, 128> id_buf;
        std::array<CK_ULONG, 2> hits;
        std::optional<CK_ULONG> pub;
        if (auto id = attribute(t, s, key, CKA_ID, id_buf); id && !id->empty())
            if (auto h = only(find_by(t, s, CKO_PUBLIC_KEY, {}, *id, hits), hits)) pub = *h;
        if (!pub && !public_label.empty())
            if (auto h = only(find_by(t, s, CKO_PUBLIC_KEY, public_label, {}, hits), hits)) pub = *h;
        if (!pub) return fail(Errc::object_not_found);
        if (!from(*pub)) return fail(Errc::attribute_value_invalid);
        if (*type == CKK_EC) {
            // The public object's curve must be the private key's.
            std::array<std::byte, 16> own;
            auto p = attribute(t, s, key, CKA_EC_PARAMS, own);
            if (!p || p->size() != parts.ec_params.size() ||
                std::memcmp(p->data(), parts.ec_params.data(), p->size()) != 0)
                return fail(Errc::tls_key_cert_mismatch);
        }
    }
    return pk.load(parts);
}

/// Makes `pk` sign with key object `key` through `t`.
template <Token T>
void bind_signer(T& t, CK_ULONG s, CK_ULONG key, mbed::TokenPk& pk) {
    pk.ref().token = &t;
    pk.ref().sign = &mbed::token_sign<T>;
    pk.ref().session = s;
    pk.ref().key = key;
}

/// The token's DRBG as an mbedTLS random callback.
template <Token T>
struct TokenRandom {
    T* token;
    CK_ULONG session;
    static int fill(void* ctx, unsigned char* out, std::size_t n) {
        auto& self = *static_cast<TokenRandom*>(ctx);
        auto r = self.token->generate_random(self.session, {reinterpret_cast<std::byte*>(out), n});
        return r ? 0 : MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
    }
    [[nodiscard]] mbed::Rng rng() noexcept { return {&fill, this}; }
};

/// Destroys `created` after a failed call; their destruction may itself fail (a dead store).
template <Token T>
void roll_back(T& t, CK_ULONG s, std::span<const CK_ULONG> created) {
    for (CK_ULONG h : created) (void)t.destroy_object(s, h);
}

template <Token T>
Result<void> destroy_all(T& t, CK_ULONG s, std::span<const CK_ULONG> handles) {
    for (CK_ULONG h : handles) P11TLS_TRY(t.destroy_object(s, h));
    return {};
}

/// A template holding key material: zeroized when it goes.
template <std::size_t MaxAttrs, std::size_t Bytes>
struct SecretTemplate {
    token::Template<MaxAttrs, Bytes> t;
    SecretTemplate() = default;
    SecretTemplate(const SecretTemplate&) = delete;
    SecretTemplate& operator=(const SecretTemplate&) = delete;
    ~SecretTemplate() { mbedtls_platform_zeroize(&t, sizeof t); }
};

/// Common attributes of a token object created here.
template <class Tmpl>
void add_identity(Tmpl& t, CK_OBJECT_CLASS cls, std::string_view label, std::span<const std::byte> id) {
    t.add(CKA_CLASS, cls).add(CKA_TOKEN, true).add(CKA_LABEL, label);
    if (!id.empty()) t.add(CKA_ID, id);
}

/// Certificates of `certs` stored under `label` with CKA_ID `id`; rolled back on failure.
template <Token T, std::size_t N>
Result<void> store_certificates(T& t, CK_ULONG s, const mbed::CertList& certs, std::string_view label,
                                std::span<const std::byte> id, bool roots, Handles<N>& created) {
    for (std::size_t i = 0; i < certs.size(); ++i) {
        token::Template<12, 6144> c;
        std::array<std::byte, 130> serial;
        auto serial_len = certs.serial_der(i, serial);
        if (!serial_len) return fail(serial_len.error());
        add_identity(c, CKO_CERTIFICATE, label, id);
        // CKA_CERTIFICATE_CATEGORY: 1 token user (the device), 2 authority (chain and roots).
        c.add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_PRIVATE, false)
            .add(CKA_CERTIFICATE_CATEGORY, CK_ULONG{roots || i > 0 ? 2u : 1u})
            .add(CKA_SUBJECT, certs.subject_der(i)).add(CKA_ISSUER, certs.issuer_der(i))
            .add(CKA_SERIAL_NUMBER, std::span<const std::byte>(serial).first(*serial_len))
            .add(CKA_VALUE, certs.der(i));
        if (!c.ok()) return fail(Errc::invalid_argument);
        if (created.size == N) return fail(Errc::invalid_argument);
        auto h = t.create_object(s, std::as_const(c).view());
        if (!h) return fail(h.error());
        created.h[created.size++] = *h;
    }
    return {};
}

}  // namespace detail

/// Generates a key pair inside the token: the private key sensitive, not extractable, for
/// signing; the public key public. With Existing::refuse, a private key labelled
/// `labels.private_label` or a public key labelled `labels.public_label` is Errc::object_exists.
template <Token T>
[[nodiscard]] Result<KeyPair> generate_key(T& t, CK_ULONG s, KeyType type = KeyType::ec_p256,
                                           const KeyLabels& labels = {}) {
    detail::Handles<16> old;
    P11TLS_TRY(detail::collect(t, s, CKO_PRIVATE_KEY, labels.private_label, old));
    P11TLS_TRY(detail::collect(t, s, CKO_PUBLIC_KEY, labels.public_label, old));
    if (old.size && labels.existing == Existing::refuse) return fail(Errc::object_exists);

    token::Template<10, 768> pub, priv;
    detail::add_identity(pub, CKO_PUBLIC_KEY, labels.public_label, labels.id);
    detail::add_identity(priv, CKO_PRIVATE_KEY, labels.private_label, labels.id);
    pub.add(CKA_PRIVATE, false).add(CKA_VERIFY, true);
    priv.add(CKA_PRIVATE, true).add(CKA_SENSITIVE, true).add(CKA_EXTRACTABLE, false).add(CKA_SIGN, true);
    CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    switch (type) {
    case KeyType::ec_p256:
    case KeyType::ec_p384:
        pub.add(CKA_KEY_TYPE, CKK_EC)
            .add(CKA_EC_PARAMS, detail::mbed::curve_params(type == KeyType::ec_p256 ? detail::mbed::Curve::p256
                                                                                     : detail::mbed::Curve::p384));
        priv.add(CKA_KEY_TYPE, CKK_EC);
        break;
    case KeyType::rsa_2048:
    case KeyType::rsa_3072: {
        static constexpr std::byte f4[] = {std::byte{1}, std::byte{0}, std::byte{1}};
        mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        pub.add(CKA_KEY_TYPE, CKK_RSA).add(CKA_MODULUS_BITS, CK_ULONG{type == KeyType::rsa_2048 ? 2048u : 3072u})
            .add(CKA_PUBLIC_EXPONENT, std::span<const std::byte>(f4));
        priv.add(CKA_KEY_TYPE, CKK_RSA);
        break;
    }
    }
    if (!pub.ok() || !priv.ok()) return fail(Errc::invalid_argument);  // a label too long
    auto kp = t.generate_key_pair(s, mech, std::as_const(pub).view(), std::as_const(priv).view());
    if (!kp) return fail(kp.error());
    P11TLS_TRY(detail::destroy_all(t, s, old.view()));
    return KeyPair{kp->public_key, kp->private_key};
}

/// Imports a private key (PEM or DER; PKCS#8, SEC1 or PKCS#1; not encrypted) as a sensitive,
/// non-extractable signing key, and its public key as a second object. EC P-256/P-384 and RSA
/// 2048-4096 only (Errc::unsupported_key). Parsed key material is zeroized before return.
template <Token T>
[[nodiscard]] Result<KeyPair> import_private_key(T& t, CK_ULONG s, std::span<const std::byte> data,
                                                 const KeyLabels& labels = {}) {
    namespace m = p11tls::detail::mbed;
    m::ParsedKey key;
    P11TLS_TRY(m::parse_private_key(data, key));
    detail::Handles<16> old;
    P11TLS_TRY(detail::collect(t, s, CKO_PRIVATE_KEY, labels.private_label, old));
    P11TLS_TRY(detail::collect(t, s, CKO_PUBLIC_KEY, labels.public_label, old));
    if (old.size && labels.existing == Existing::refuse) return fail(Errc::object_exists);

    detail::SecretTemplate<18, 3072> priv;
    token::Template<12, 1024> pub;
    detail::add_identity(priv.t, CKO_PRIVATE_KEY, labels.private_label, labels.id);
    detail::add_identity(pub, CKO_PUBLIC_KEY, labels.public_label, labels.id);
    priv.t.add(CKA_KEY_TYPE, key.key_type()).add(CKA_PRIVATE, true).add(CKA_SENSITIVE, true)
        .add(CKA_EXTRACTABLE, false).add(CKA_SIGN, true);
    pub.add(CKA_KEY_TYPE, key.key_type()).add(CKA_PRIVATE, false).add(CKA_VERIFY, true);
    using P = m::ParsedKey;
    if (key.key_type() == CKK_EC) {
        auto params = m::curve_params(*key.curve());
        priv.t.add(CKA_EC_PARAMS, params).add(CKA_VALUE, key.part(P::ec_d));
        pub.add(CKA_EC_PARAMS, params).add(CKA_EC_POINT, key.ec_point_der());
    } else {
        priv.t.add(CKA_MODULUS, key.part(P::rsa_n)).add(CKA_PUBLIC_EXPONENT, key.part(P::rsa_e))
            .add(CKA_PRIVATE_EXPONENT, key.part(P::rsa_d)).add(CKA_PRIME_1, key.part(P::rsa_p))
            .add(CKA_PRIME_2, key.part(P::rsa_q)).add(CKA_EXPONENT_1, key.part(P::rsa_dp))
            .add(CKA_EXPONENT_2, key.part(P::rsa_dq)).add(CKA_COEFFICIENT, key.part(P::rsa_qinv));
        pub.add(CKA_MODULUS, key.part(P::rsa_n)).add(CKA_PUBLIC_EXPONENT, key.part(P::rsa_e));
    }
    if (!priv.t.ok() || !pub.ok()) return fail(Errc::invalid_argument);  // a label too long
    auto h_priv = t.create_object(s, std::as_const(priv.t).view());
    if (!h_priv) return fail(h_priv.error());
    auto h_pub = t.create_object(s, std::as_const(pub).view());
    if (!h_pub) {
        detail::roll_back(t, s, std::span(&*h_priv, 1));
        return fail(h_pub.error());
    }
    P11TLS_TRY(detail::destroy_all(t, s, old.view()));
    return KeyPair{*h_pub, *h_priv};
}

/// Writes a PKCS#10 request for the key `o.key` names, signed by the token, into `out`
/// (PEM NUL-terminated, length without the NUL; or DER). The request is verified with its own
/// public key before it is returned. Errc::object_not_found without the key,
/// object_ambiguous with several.
template <Token T>
[[nodiscard]] Result<std::size_t> write_csr(T& t, CK_ULONG s, const CsrOptions& o, std::span<std::byte> out) {
    std::array<CK_ULONG, 2> hits;
    auto key = detail::only(detail::find_by(t, s, CKO_PRIVATE_KEY, o.key.label, o.key.id, hits), hits);
    if (!key) return fail(key.error());
    detail::mbed::TokenPk pk;
    P11TLS_TRY(detail::load_public(t, s, *key, o.key.public_label, pk));
    detail::bind_signer(t, s, *key, pk);
    detail::TokenRandom<T> random{&t, s};
    return detail::mbed::write_csr(pk, {o.subject, o.dns, o.ips}, random.rng(), o.encoding, out);
}

/// The public key of key object `key` (public or private; see KeyRef for where its public
/// half comes from) as a PEM SubjectPublicKeyInfo, NUL-terminated; returns the length.
template <Token T>
[[nodiscard]] Result<std::size_t> public_key_pem(T& t, CK_ULONG s, CK_ULONG key, std::span<char> out,
                                                 std::string_view public_label = public_key_label) {
    detail::mbed::TokenPk pk;
    P11TLS_TRY(detail::load_public(t, s, key, public_label, pk));
    return pk.spki_pem(out);
}

/// Imports a device certificate (PEM or DER; a PEM may add its chain after it). Returns the
/// number of certificates stored.
template <Token T>
[[nodiscard]] Result<std::size_t> import_certificate(T& t, CK_ULONG s, std::span<const std::byte> data,
                                                     const CertOptions& o = {}) {
    detail::mbed::CertList certs;
    P11TLS_TRY(certs.parse(data));
    std::array<std::byte, 128> id_buf;
    std::span<const std::byte> id = o.key.id;
    std::array<CK_ULONG, 2> hits;
    auto n = detail::find_by(t, s, CKO_PRIVATE_KEY, o.key.label, o.key.id, hits);
    if (!n) return fail(n.error());
    if (*n > 1) return fail(Errc::object_ambiguous);
    if (*n == 1) {
        // The token has the key: the certificate must be for it.
        detail::mbed::TokenPk pk;
        P11TLS_TRY(detail::load_public(t, s, hits[0], o.key.public_label, pk));
        std::array<std::byte, 600> mine, theirs;
        auto a = pk.spki_der(mine);
        auto b = certs.spki_der(0, theirs);
        if (!a || !b) return fail(!a ? a.error() : b.error());
        if (*a != *b || std::memcmp(mine.data(), theirs.data(), *a) != 0) return fail(Errc::tls_key_cert_mismatch);
        if (id.empty())
            if (auto key_id = detail::attribute(t, s, hits[0], CKA_ID, id_buf)) id = *key_id;
    }
    detail::Handles<16> old;
    P11TLS_TRY(detail::collect(t, s, CKO_CERTIFICATE, o.label, old));
    if (old.size && o.existing == Existing::refuse) return fail(Errc::object_exists);
    detail::Handles<16> created;
    if (auto r = detail::store_certificates(t, s, certs, o.label, id, false, created); !r) {
        detail::roll_back(t, s, created.view());
        return fail(r.error());
    }
    P11TLS_TRY(detail::destroy_all(t, s, old.view()));
    return created.size;
}

/// Imports root CA certificates (PEM, one or more, or DER); each must be a CA
/// (Errc::not_a_ca). Returns the number stored.
template <Token T>
[[nodiscard]] Result<std::size_t> import_root(T& t, CK_ULONG s, std::span<const std::byte> data,
                                              const RootOptions& o = {}) {
    detail::mbed::CertList certs;
    P11TLS_TRY(certs.parse(data));
    for (std::size_t i = 0; i < certs.size(); ++i)
        if (!certs.is_ca(i)) return fail(Errc::not_a_ca, static_cast<std::int32_t>(i));
    detail::Handles<16> old;
    P11TLS_TRY(detail::collect(t, s, CKO_CERTIFICATE, o.label, old));
    if (old.size && o.existing == Existing::refuse) return fail(Errc::object_exists);
    detail::Handles<16> created;
    if (auto r = detail::store_certificates(t, s, certs, o.label, {}, true, created); !r) {
        detail::roll_back(t, s, created.view());
        return fail(r.error());
    }
    P11TLS_TRY(detail::destroy_all(t, s, old.view()));
    return created.size;
}

/// Destroys the objects `sel` names; returns how many (Errc::object_not_found for none).
template <Token T>
[[nodiscard]] Result<std::size_t> destroy_objects(T& t, CK_ULONG s, const Selector& sel) {
    if (sel.label.empty() && sel.id.empty()) return fail(Errc::invalid_argument);
    token::Template<4, 512> q;
    if (sel.cls) q.add(CKA_CLASS, *sel.cls);
    if (!sel.label.empty()) q.add(CKA_LABEL, sel.label);
    if (!sel.id.empty()) q.add(CKA_ID, sel.id);
    if (!q.ok()) return fail(Errc::invalid_argument);
    detail::Handles<64> found;
    auto n = detail::find(t, s, std::as_const(q).view(), found.h);
    if (!n) return fail(n.error());
    if (*n == 0) return fail(Errc::object_not_found);
    found.size = *n;
    P11TLS_TRY(detail::destroy_all(t, s, found.view()));
    return *n;
}

/// Calls `visit(const ObjectInfo&)` for each object the session sees (of class `cls` when
/// given), at most MaxObjects; returns how many. `visit` may use the token.
template <std::size_t MaxObjects = 256, Token T, class F>
[[nodiscard]] Result<std::size_t> list_objects(T& t, CK_ULONG s, F&& visit, std::optional<CK_OBJECT_CLASS> cls = {}) {
    token::Template<1, 16> q;
    if (cls) q.add(CKA_CLASS, *cls);
    detail::Handles<MaxObjects> all;
    auto n = detail::find(t, s, std::as_const(q).view(), all.h);
    if (!n) return fail(n.error());
    all.size = *n;
    std::array<std::byte, 256> label_buf;
    std::array<std::byte, 128> id_buf;
    std::array<std::byte, 520> buf;
    for (CK_ULONG h : all.view()) {
        ObjectInfo info;
        info.handle = h;
        auto c = detail::ulong_attribute(t, s, h, CKA_CLASS);
        if (!c) continue;  // gone since the search, or unreadable
        info.cls = *c;
        if (auto l = detail::attribute(t, s, h, CKA_LABEL, label_buf))
            info.label = {reinterpret_cast<const char*>(l->data()), l->size()};
        if (auto i = detail::attribute(t, s, h, CKA_ID, id_buf)) info.id = *i;
        info.is_private = detail::bool_attribute(t, s, h, CKA_PRIVATE);
        if (info.cls == CKO_PRIVATE_KEY || info.cls == CKO_PUBLIC_KEY) {
            info.key_type = detail::ulong_attribute(t, s, h, CKA_KEY_TYPE).value_or(CK_UNAVAILABLE_INFORMATION);
            info.local = detail::bool_attribute(t, s, h, CKA_LOCAL);
            if (info.key_type == CKK_EC) {
                auto p = detail::attribute(t, s, h, CKA_EC_PARAMS, buf);
                auto curve = p ? detail::mbed::curve_from_params(*p) : std::nullopt;
                if (curve) info.bits = static_cast<unsigned>(detail::mbed::curve_bytes(*curve) * 8);
            } else if (info.key_type == CKK_RSA) {
                if (auto m = detail::attribute(t, s, h, CKA_MODULUS, buf)) {
                    std::size_t lead = 0;
                    while (lead < m->size() && (*m)[lead] == std::byte{0}) ++lead;
                    info.bits = static_cast<unsigned>((m->size() - lead) * 8);
                }
            }
        }
        if (info.cls == CKO_PRIVATE_KEY) {
            info.sensitive = detail::bool_attribute(t, s, h, CKA_SENSITIVE);
            info.extractable = detail::bool_attribute(t, s, h, CKA_EXTRACTABLE);
        }
        visit(static_cast<const ObjectInfo&>(info));
    }
    return all.size;
}

}  // namespace p11tls::provision
