// SPDX-License-Identifier: MIT
#pragma once
/// The Token concept: a PKCS#11 token in C++ terms. Handles, attributes and mechanisms are
/// PKCS#11's; results are p11tls Results (cryptoki/ maps each Errc to one CKR_ value).
#include <concepts>
#include <cstddef>
#include <span>

#include <p11tls/result.hpp>
#include <p11tls/token/pkcs11.hpp>

namespace p11tls {

/// What the TLS session, provisioning and the Cryptoki module need of a token.
/// - Sessions: `open_session(flags) -> Result<Handle>`, `close_session`, `login`, `logout`.
/// - Objects: `find_init(session, template)`, `find(session, span<Handle>) -> Result<size_t>`,
///   `find_final`, `get_attributes(session, object, span<CK_ATTRIBUTE>)` with
///   C_GetAttributeValue's rules, `create_object`, `destroy_object`.
/// - Keys: `sign_init(session, mechanism, key)` then `sign(session, in, out) -> Result<size_t>`
///   (a null `out` asks for the length), `generate_key_pair`, `generate_random`.
template <class T>
concept Token = requires(T& t, CK_ULONG h, CK_FLAGS flags, CK_USER_TYPE user, std::span<const char> pin,
                         std::span<const CK_ATTRIBUTE> ctmpl, std::span<CK_ATTRIBUTE> tmpl,
                         std::span<CK_ULONG> handles, const CK_MECHANISM& mech, std::span<const std::byte> in,
                         std::span<std::byte> out) {
    { t.open_session(flags) } -> std::same_as<Result<CK_ULONG>>;
    { t.close_session(h) } -> std::same_as<Result<void>>;
    { t.login(h, user, pin) } -> std::same_as<Result<void>>;
    { t.logout(h) } -> std::same_as<Result<void>>;
    { t.find_init(h, ctmpl) } -> std::same_as<Result<void>>;
    { t.find(h, handles) } -> std::same_as<Result<std::size_t>>;
    { t.find_final(h) } -> std::same_as<Result<void>>;
    { t.get_attributes(h, h, tmpl) } -> std::same_as<Result<void>>;
    { t.create_object(h, ctmpl) } -> std::same_as<Result<CK_ULONG>>;
    { t.destroy_object(h, h) } -> std::same_as<Result<void>>;
    { t.sign_init(h, mech, h) } -> std::same_as<Result<void>>;
    { t.sign(h, in, out) } -> std::same_as<Result<std::size_t>>;
    { t.generate_key_pair(h, mech, ctmpl, ctmpl) };
    { t.generate_random(h, out) } -> std::same_as<Result<void>>;
};

}  // namespace p11tls
