// SPDX-License-Identifier: MIT
#pragma once
/// Result<T>, Error and Errc: p11tls's error model (no exceptions in library code).
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <p11tls/assert.hpp>

namespace p11tls {

/// Error codes, one range per module. The numeric values are stable and may be logged.
enum class Errc : std::uint16_t {
    // general 0x00xx
    invalid_argument = 0x0001,
    buffer_too_small = 0x0002,
    not_supported = 0x0003,
    out_of_memory = 0x0004,
    crypto_failed = 0x0005,
    bad_encoding = 0x0006,
    // nvm 0x01xx
    nvm_io = 0x0101,
    nvm_not_found = 0x0102,
    nvm_full = 0x0103,
    nvm_corrupt = 0x0104,
    nvm_record_too_large = 0x0105,
    // entropy 0x02xx
    entropy_failed = 0x0201,
    // token (PKCS#11 semantics; cryptoki/ maps each to exactly one CKR_ value) 0x03xx
    not_initialized = 0x0301,
    already_initialized = 0x0302,
    slot_invalid = 0x0303,
    session_handle_invalid = 0x0304,
    session_count = 0x0305,
    session_read_only = 0x0306,
    session_read_only_exists = 0x0307,
    session_exists = 0x0308,
    object_handle_invalid = 0x0309,
    key_handle_invalid = 0x030a,
    attribute_type_invalid = 0x030b,
    attribute_value_invalid = 0x030c,
    attribute_read_only = 0x030d,
    attribute_sensitive = 0x030e,
    template_incomplete = 0x030f,
    template_inconsistent = 0x0310,
    action_prohibited = 0x0311,
    mechanism_invalid = 0x0312,
    mechanism_param_invalid = 0x0313,
    key_type_inconsistent = 0x0314,
    key_function_not_permitted = 0x0315,
    key_size_range = 0x0316,
    operation_active = 0x0317,
    operation_not_initialized = 0x0318,
    data_len_range = 0x0319,
    signature_invalid = 0x031a,
    signature_len_range = 0x031b,
    pin_incorrect = 0x031c,
    pin_locked = 0x031d,
    pin_len_range = 0x031e,
    user_not_logged_in = 0x031f,
    user_already_logged_in = 0x0320,
    another_user_logged_in = 0x0321,
    user_type_invalid = 0x0322,
    user_pin_not_initialized = 0x0323,
    token_not_initialized = 0x0324,
    token_full = 0x0325,
    device_error = 0x0326,
    function_not_supported = 0x0327,
    random_seed_not_supported = 0x0328,
    cant_lock = 0x0329,
    session_read_write_so_exists = 0x032a,
    // transport 0x04xx
    would_block = 0x0401,
    timeout = 0x0402,
    connection_closed = 0x0403,
    connect_failed = 0x0404,
    transport_failed = 0x0405,
    // tls 0x05xx (TlsSession::error_message() adds the detail)
    tls_config = 0x0501,
    tls_key_not_found = 0x0502,
    tls_cert_not_found = 0x0503,
    tls_key_cert_mismatch = 0x0504,
    tls_bad_pem = 0x0505,
    tls_untrusted = 0x0506,
    tls_hostname_mismatch = 0x0507,
    tls_cert_expired = 0x0508,
    tls_no_shared_cipher = 0x0509,
    tls_peer_alert = 0x050a,
    tls_bad_message = 0x050b,
    tls_handshake_failed = 0x050c,
    tls_signing_failed = 0x050d,
    tls_not_connected = 0x050e,
    // provision 0x06xx (tls_key_cert_mismatch also serves a certificate import)
    object_exists = 0x0601,
    object_not_found = 0x0602,
    object_ambiguous = 0x0603,
    unsupported_key = 0x0604,
    not_a_ca = 0x0605,
};

/// A short English description of `e`, for people (CLI, logs); never contains secrets.
[[nodiscard]] constexpr const char* describe(Errc e) noexcept {
    switch (e) {
    case Errc::invalid_argument: return "invalid argument";
    case Errc::buffer_too_small: return "output buffer too small";
    case Errc::not_supported: return "not supported";
    case Errc::out_of_memory: return "out of memory";
    case Errc::crypto_failed: return "cryptographic operation failed";
    case Errc::bad_encoding: return "malformed encoding";
    case Errc::nvm_io: return "non-volatile storage I/O error";
    case Errc::nvm_not_found: return "record not found in storage";
    case Errc::nvm_full: return "non-volatile storage is full";
    case Errc::nvm_corrupt: return "stored record is corrupt (checksum or format)";
    case Errc::nvm_record_too_large: return "record too large for the store";
    case Errc::entropy_failed: return "entropy source failed";
    case Errc::not_initialized: return "library not initialized";
    case Errc::already_initialized: return "library already initialized";
    case Errc::slot_invalid: return "no such slot";
    case Errc::session_handle_invalid: return "invalid session handle";
    case Errc::session_count: return "too many open sessions";
    case Errc::session_read_only: return "session is read-only";
    case Errc::session_read_only_exists: return "a read-only session exists";
    case Errc::session_exists: return "sessions are open";
    case Errc::object_handle_invalid: return "invalid object handle";
    case Errc::key_handle_invalid: return "invalid key handle";
    case Errc::attribute_type_invalid: return "attribute not valid for this object";
    case Errc::attribute_value_invalid: return "invalid attribute value";
    case Errc::attribute_read_only: return "attribute is read-only";
    case Errc::attribute_sensitive: return "attribute is sensitive and cannot be revealed";
    case Errc::template_incomplete: return "template lacks a required attribute";
    case Errc::template_inconsistent: return "template attributes conflict";
    case Errc::action_prohibited: return "action prohibited on this object";
    case Errc::mechanism_invalid: return "mechanism not supported";
    case Errc::mechanism_param_invalid: return "invalid mechanism parameter";
    case Errc::key_type_inconsistent: return "key type does not fit the mechanism";
    case Errc::key_function_not_permitted: return "key may not be used for this function";
    case Errc::key_size_range: return "key size not supported";
    case Errc::operation_active: return "another operation is active";
    case Errc::operation_not_initialized: return "operation not initialized";
    case Errc::data_len_range: return "input length out of range";
    case Errc::signature_invalid: return "signature invalid";
    case Errc::signature_len_range: return "signature length wrong";
    case Errc::pin_incorrect: return "PIN incorrect";
    case Errc::pin_locked: return "PIN locked after too many failures";
    case Errc::pin_len_range: return "PIN length out of range";
    case Errc::user_not_logged_in: return "login required";
    case Errc::user_already_logged_in: return "user already logged in";
    case Errc::another_user_logged_in: return "another user is logged in";
    case Errc::user_type_invalid: return "invalid user type";
    case Errc::user_pin_not_initialized: return "user PIN not initialized";
    case Errc::token_not_initialized: return "token not initialized";
    case Errc::token_full: return "token object table is full";
    case Errc::device_error: return "device error";
    case Errc::function_not_supported: return "function not supported";
    case Errc::random_seed_not_supported: return "seeding not supported";
    case Errc::cant_lock: return "cannot provide the requested locking";
    case Errc::would_block: return "operation would block";
    case Errc::timeout: return "timed out";
    case Errc::connection_closed: return "connection closed by peer";
    case Errc::connect_failed: return "could not connect";
    case Errc::transport_failed: return "transport error";
    case Errc::tls_config: return "TLS configuration rejected";
    case Errc::tls_key_not_found: return "client private key not found in token";
    case Errc::tls_cert_not_found: return "certificate not found";
    case Errc::tls_key_cert_mismatch: return "client certificate does not match the private key";
    case Errc::tls_bad_pem: return "certificate data does not parse";
    case Errc::tls_untrusted: return "server certificate not trusted";
    case Errc::tls_hostname_mismatch: return "server certificate does not match the server name";
    case Errc::tls_cert_expired: return "server certificate expired or not yet valid";
    case Errc::tls_no_shared_cipher: return "no cipher suite or version in common with the server";
    case Errc::tls_peer_alert: return "server sent a fatal alert";
    case Errc::tls_bad_message: return "malformed message from the server";
    case Errc::tls_handshake_failed: return "TLS handshake failed";
    case Errc::tls_signing_failed: return "token could not sign the handshake";
    case Errc::tls_not_connected: return "TLS session not connected";
    case Errc::session_read_write_so_exists: return "the security officer is logged in (read-only session refused)";
    case Errc::object_exists: return "an object with that label already exists";
    case Errc::object_not_found: return "no such object in the token";
    case Errc::object_ambiguous: return "more than one object matches; name it by id";
    case Errc::unsupported_key: return "key type or size not supported (EC P-256/P-384, RSA 2048-4096)";
    case Errc::not_a_ca: return "certificate is not a CA certificate (basicConstraints CA:TRUE)";
    }
    return "unknown error";
}

/// An error: what failed (`code`) and, where a lower layer gave one, its raw code (`native`:
/// an mbedTLS error, an errno or a CK_RV). `native` is for diagnostics only.
struct Error {
    Errc code{};
    std::int32_t native = 0;
    friend constexpr bool operator==(const Error&, const Error&) = default;
};

template <class T>
class [[nodiscard]] Result;

namespace detail {
struct Unexpected {
    Error error;
};
}  // namespace detail

/// Makes an error result: `return fail(Errc::nvm_full);`.
[[nodiscard]] constexpr detail::Unexpected fail(Errc code, std::int32_t native = 0) noexcept {
    return {Error{code, native}};
}
[[nodiscard]] constexpr detail::Unexpected fail(Error e) noexcept { return {e}; }

/// The value of a fallible function, shaped like std::expected<T, Error>.
template <class T>
class [[nodiscard]] Result {
public:
    using value_type = T;
    template <class U = T>
        requires std::is_constructible_v<T, U&&>
    constexpr Result(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>)
        : ok_(true) {
        ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
    }
    constexpr Result(detail::Unexpected u) noexcept : error_(u.error), ok_(false) {}
    constexpr Result(const Result& o) : ok_(o.ok_) {
        if (ok_) ::new (static_cast<void*>(&value_)) T(o.value_);
        else error_ = o.error_;
    }
    constexpr Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(o.ok_) {
        if (ok_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
        else error_ = o.error_;
    }
    Result& operator=(const Result&) = delete;
    constexpr ~Result() {
        if (ok_) value_.~T();
    }

    [[nodiscard]] constexpr bool has_value() const noexcept { return ok_; }
    constexpr explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] constexpr T& value() & noexcept {
        P11TLS_ASSERT(ok_, "Result::value() on an error");
        return value_;
    }
    [[nodiscard]] constexpr const T& value() const& noexcept {
        P11TLS_ASSERT(ok_, "Result::value() on an error");
        return value_;
    }
    [[nodiscard]] constexpr T&& value() && noexcept {
        P11TLS_ASSERT(ok_, "Result::value() on an error");
        return std::move(value_);
    }
    constexpr T& operator*() & noexcept { return value(); }
    constexpr const T& operator*() const& noexcept { return value(); }
    constexpr T* operator->() noexcept { return &value(); }
    constexpr const T* operator->() const noexcept { return &value(); }
    [[nodiscard]] constexpr Error error() const noexcept {
        P11TLS_ASSERT(!ok_, "Result::error() on a value");
        return error_;
    }
    [[nodiscard]] constexpr T value_or(T alt) const { return ok_ ? value_ : alt; }

private:
    union {
        T value_;
        Error error_;
    };
    bool ok_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    using value_type = void;
    constexpr Result() noexcept = default;
    constexpr Result(detail::Unexpected u) noexcept : error_(u.error), ok_(false) {}
    [[nodiscard]] constexpr bool has_value() const noexcept { return ok_; }
    constexpr explicit operator bool() const noexcept { return ok_; }
    constexpr void value() const noexcept { P11TLS_ASSERT(ok_, "Result::value() on an error"); }
    [[nodiscard]] constexpr Error error() const noexcept {
        P11TLS_ASSERT(!ok_, "Result::error() on a value");
        return error_;
    }

private:
    Error error_{};
    bool ok_ = true;
};

}  // namespace p11tls

/// Evaluates a Result-returning expression and returns its error from the enclosing function.
#define P11TLS_TRY(expr)                                         \
    do {                                                         \
        if (auto p11tls_try_r_ = (expr); !p11tls_try_r_)         \
            return ::p11tls::fail(p11tls_try_r_.error());        \
    } while (0)
