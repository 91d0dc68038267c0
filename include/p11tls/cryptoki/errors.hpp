// SPDX-License-Identifier: MIT
#pragma once
/// The one mapping between p11tls Errc values and PKCS#11 CK_RV codes.
#include <p11tls/result.hpp>
#include <p11tls/token/pkcs11.hpp>

namespace p11tls::cryptoki {

[[nodiscard]] constexpr CK_RV to_ckr(Errc e) noexcept {
    switch (e) {
    case Errc::invalid_argument: return CKR_ARGUMENTS_BAD;
    case Errc::buffer_too_small: return CKR_BUFFER_TOO_SMALL;
    case Errc::not_supported: return CKR_FUNCTION_NOT_SUPPORTED;
    case Errc::out_of_memory: return CKR_HOST_MEMORY;
    case Errc::crypto_failed: return CKR_FUNCTION_FAILED;
    case Errc::bad_encoding: return CKR_DATA_INVALID;
    case Errc::nvm_io: return CKR_DEVICE_ERROR;
    case Errc::nvm_not_found: return CKR_GENERAL_ERROR;
    case Errc::nvm_full: return CKR_DEVICE_MEMORY;
    case Errc::nvm_corrupt: return CKR_DEVICE_ERROR;
    case Errc::nvm_record_too_large: return CKR_DEVICE_MEMORY;
    case Errc::entropy_failed: return CKR_FUNCTION_FAILED;
    case Errc::not_initialized: return CKR_CRYPTOKI_NOT_INITIALIZED;
    case Errc::already_initialized: return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    case Errc::slot_invalid: return CKR_SLOT_ID_INVALID;
    case Errc::session_handle_invalid: return CKR_SESSION_HANDLE_INVALID;
    case Errc::session_count: return CKR_SESSION_COUNT;
    case Errc::session_read_only: return CKR_SESSION_READ_ONLY;
    case Errc::session_read_only_exists: return CKR_SESSION_READ_ONLY_EXISTS;
    case Errc::session_exists: return CKR_SESSION_EXISTS;
    case Errc::object_handle_invalid: return CKR_OBJECT_HANDLE_INVALID;
    case Errc::key_handle_invalid: return CKR_KEY_HANDLE_INVALID;
    case Errc::attribute_type_invalid: return CKR_ATTRIBUTE_TYPE_INVALID;
    case Errc::attribute_value_invalid: return CKR_ATTRIBUTE_VALUE_INVALID;
    case Errc::attribute_read_only: return CKR_ATTRIBUTE_READ_ONLY;
    case Errc::attribute_sensitive: return CKR_ATTRIBUTE_SENSITIVE;
    case Errc::template_incomplete: return CKR_TEMPLATE_INCOMPLETE;
    case Errc::template_inconsistent: return CKR_TEMPLATE_INCONSISTENT;
    case Errc::action_prohibited: return CKR_ACTION_PROHIBITED;
    case Errc::mechanism_invalid: return CKR_MECHANISM_INVALID;
    case Errc::mechanism_param_invalid: return CKR_MECHANISM_PARAM_INVALID;
    case Errc::key_type_inconsistent: return CKR_KEY_TYPE_INCONSISTENT;
    case Errc::key_function_not_permitted: return CKR_KEY_FUNCTION_NOT_PERMITTED;
    case Errc::key_size_range: return CKR_KEY_SIZE_RANGE;
    case Errc::operation_active: return CKR_OPERATION_ACTIVE;
    case Errc::operation_not_initialized: return CKR_OPERATION_NOT_INITIALIZED;
    case Errc::data_len_range: return CKR_DATA_LEN_RANGE;
    case Errc::signature_invalid: return CKR_SIGNATURE_INVALID;
    case Errc::signature_len_range: return CKR_SIGNATURE_LEN_RANGE;
    case Errc::pin_incorrect: return CKR_PIN_INCORRECT;
    case Errc::pin_locked: return CKR_PIN_LOCKED;
    case Errc::pin_len_range: return CKR_PIN_LEN_RANGE;
    case Errc::user_not_logged_in: return CKR_USER_NOT_LOGGED_IN;
    case Errc::user_already_logged_in: return CKR_USER_ALREADY_LOGGED_IN;
    case Errc::another_user_logged_in: return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
    case Errc::user_type_invalid: return CKR_USER_TYPE_INVALID;
    case Errc::user_pin_not_initialized: return CKR_USER_PIN_NOT_INITIALIZED;
    case Errc::token_not_initialized: return CKR_TOKEN_NOT_RECOGNIZED;
    case Errc::token_full: return CKR_DEVICE_MEMORY;
    case Errc::device_error: return CKR_DEVICE_ERROR;
    case Errc::function_not_supported: return CKR_FUNCTION_NOT_SUPPORTED;
    case Errc::random_seed_not_supported: return CKR_RANDOM_SEED_NOT_SUPPORTED;
    case Errc::cant_lock: return CKR_CANT_LOCK;
    case Errc::session_read_write_so_exists: return CKR_SESSION_READ_WRITE_SO_EXISTS;
    default: break;  // transport and TLS errors do not cross the Cryptoki boundary
    }
    return CKR_GENERAL_ERROR;
}

/// The Errc a CK_RV from an external module stands for (used by ModuleToken).
[[nodiscard]] constexpr Errc from_ckr(CK_RV rv) noexcept {
    constexpr Errc all[] = {
        Errc::invalid_argument, Errc::buffer_too_small, Errc::out_of_memory, Errc::crypto_failed, Errc::bad_encoding,
        Errc::not_initialized, Errc::already_initialized, Errc::slot_invalid, Errc::session_handle_invalid,
        Errc::session_count, Errc::session_read_only, Errc::session_read_only_exists, Errc::session_exists,
        Errc::object_handle_invalid, Errc::key_handle_invalid, Errc::attribute_type_invalid,
        Errc::attribute_value_invalid, Errc::attribute_read_only, Errc::attribute_sensitive,
        Errc::template_incomplete, Errc::template_inconsistent, Errc::action_prohibited, Errc::mechanism_invalid,
        Errc::mechanism_param_invalid, Errc::key_type_inconsistent, Errc::key_function_not_permitted,
        Errc::key_size_range, Errc::operation_active, Errc::operation_not_initialized, Errc::data_len_range,
        Errc::signature_invalid, Errc::signature_len_range, Errc::pin_incorrect, Errc::pin_locked,
        Errc::pin_len_range, Errc::user_not_logged_in, Errc::user_already_logged_in, Errc::another_user_logged_in,
        Errc::user_type_invalid, Errc::user_pin_not_initialized, Errc::token_not_initialized, Errc::device_error,
        Errc::function_not_supported, Errc::random_seed_not_supported, Errc::cant_lock, Errc::nvm_full, Errc::session_read_write_so_exists};
    for (Errc e : all)
        if (to_ckr(e) == rv) return e;
    return Errc::device_error;
}

}  // namespace p11tls::cryptoki
