// SPDX-License-Identifier: MIT
#pragma once
// Building blocks for table-driven tests of a Cryptoki module through its C ABI: the names and
// offsets of the 68 CK_FUNCTION_LIST entries, CK_RV names for failure messages, and a row type
// whose call records which list entries it went through (so a row cannot claim a function it
// never called).
#include <cstddef>
#include <cstdio>
#include <iterator>
#include <set>
#include <string>

#include <p11tls/token/pkcs11.hpp>

namespace p11tls::test {

/// One CK_FUNCTION_LIST entry: its name and byte offset in the list.
struct ListEntry {
    const char* name;
    std::size_t offset;
};

#define P11TLS_TEST_ENTRY(fn) ::p11tls::test::ListEntry{#fn, offsetof(CK_FUNCTION_LIST, fn)}

/// Every function entry of CK_FUNCTION_LIST in the order of the v2.40 header.
inline constexpr ListEntry function_list_entries[] = {
    P11TLS_TEST_ENTRY(C_Initialize),        P11TLS_TEST_ENTRY(C_Finalize),
    P11TLS_TEST_ENTRY(C_GetInfo),           P11TLS_TEST_ENTRY(C_GetFunctionList),
    P11TLS_TEST_ENTRY(C_GetSlotList),       P11TLS_TEST_ENTRY(C_GetSlotInfo),
    P11TLS_TEST_ENTRY(C_GetTokenInfo),      P11TLS_TEST_ENTRY(C_GetMechanismList),
    P11TLS_TEST_ENTRY(C_GetMechanismInfo),  P11TLS_TEST_ENTRY(C_InitToken),
    P11TLS_TEST_ENTRY(C_InitPIN),           P11TLS_TEST_ENTRY(C_SetPIN),
    P11TLS_TEST_ENTRY(C_OpenSession),       P11TLS_TEST_ENTRY(C_CloseSession),
    P11TLS_TEST_ENTRY(C_CloseAllSessions),  P11TLS_TEST_ENTRY(C_GetSessionInfo),
    P11TLS_TEST_ENTRY(C_GetOperationState), P11TLS_TEST_ENTRY(C_SetOperationState),
    P11TLS_TEST_ENTRY(C_Login),             P11TLS_TEST_ENTRY(C_Logout),
    P11TLS_TEST_ENTRY(C_CreateObject),      P11TLS_TEST_ENTRY(C_CopyObject),
    P11TLS_TEST_ENTRY(C_DestroyObject),     P11TLS_TEST_ENTRY(C_GetObjectSize),
    P11TLS_TEST_ENTRY(C_GetAttributeValue), P11TLS_TEST_ENTRY(C_SetAttributeValue),
    P11TLS_TEST_ENTRY(C_FindObjectsInit),   P11TLS_TEST_ENTRY(C_FindObjects),
    P11TLS_TEST_ENTRY(C_FindObjectsFinal),  P11TLS_TEST_ENTRY(C_EncryptInit),
    P11TLS_TEST_ENTRY(C_Encrypt),           P11TLS_TEST_ENTRY(C_EncryptUpdate),
    P11TLS_TEST_ENTRY(C_EncryptFinal),      P11TLS_TEST_ENTRY(C_DecryptInit),
    P11TLS_TEST_ENTRY(C_Decrypt),           P11TLS_TEST_ENTRY(C_DecryptUpdate),
    P11TLS_TEST_ENTRY(C_DecryptFinal),      P11TLS_TEST_ENTRY(C_DigestInit),
    P11TLS_TEST_ENTRY(C_Digest),            P11TLS_TEST_ENTRY(C_DigestUpdate),
    P11TLS_TEST_ENTRY(C_DigestKey),         P11TLS_TEST_ENTRY(C_DigestFinal),
    P11TLS_TEST_ENTRY(C_SignInit),          P11TLS_TEST_ENTRY(C_Sign),
    P11TLS_TEST_ENTRY(C_SignUpdate),        P11TLS_TEST_ENTRY(C_SignFinal),
    P11TLS_TEST_ENTRY(C_SignRecoverInit),   P11TLS_TEST_ENTRY(C_SignRecover),
    P11TLS_TEST_ENTRY(C_VerifyInit),        P11TLS_TEST_ENTRY(C_Verify),
    P11TLS_TEST_ENTRY(C_VerifyUpdate),      P11TLS_TEST_ENTRY(C_VerifyFinal),
    P11TLS_TEST_ENTRY(C_VerifyRecoverInit), P11TLS_TEST_ENTRY(C_VerifyRecover),
    P11TLS_TEST_ENTRY(C_DigestEncryptUpdate), P11TLS_TEST_ENTRY(C_DecryptDigestUpdate),
    P11TLS_TEST_ENTRY(C_SignEncryptUpdate), P11TLS_TEST_ENTRY(C_DecryptVerifyUpdate),
    P11TLS_TEST_ENTRY(C_GenerateKey),       P11TLS_TEST_ENTRY(C_GenerateKeyPair),
    P11TLS_TEST_ENTRY(C_WrapKey),           P11TLS_TEST_ENTRY(C_UnwrapKey),
    P11TLS_TEST_ENTRY(C_DeriveKey),         P11TLS_TEST_ENTRY(C_SeedRandom),
    P11TLS_TEST_ENTRY(C_GenerateRandom),    P11TLS_TEST_ENTRY(C_GetFunctionStatus),
    P11TLS_TEST_ENTRY(C_CancelFunction),    P11TLS_TEST_ENTRY(C_WaitForSlotEvent),
};
static_assert(std::size(function_list_entries) == 68);
static_assert((sizeof(CK_FUNCTION_LIST) - offsetof(CK_FUNCTION_LIST, C_Initialize)) / sizeof(void (*)()) == 68);

/// The symbolic name of a CK_RV (hex for codes not listed), for failure messages.
inline std::string ckr_name(CK_RV rv) {
    switch (rv) {
#define P11TLS_TEST_CKR(x) \
    case x: return #x;
        P11TLS_TEST_CKR(CKR_OK)
        P11TLS_TEST_CKR(CKR_HOST_MEMORY)
        P11TLS_TEST_CKR(CKR_SLOT_ID_INVALID)
        P11TLS_TEST_CKR(CKR_GENERAL_ERROR)
        P11TLS_TEST_CKR(CKR_FUNCTION_FAILED)
        P11TLS_TEST_CKR(CKR_ARGUMENTS_BAD)
        P11TLS_TEST_CKR(CKR_NO_EVENT)
        P11TLS_TEST_CKR(CKR_CANT_LOCK)
        P11TLS_TEST_CKR(CKR_ATTRIBUTE_READ_ONLY)
        P11TLS_TEST_CKR(CKR_ATTRIBUTE_SENSITIVE)
        P11TLS_TEST_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
        P11TLS_TEST_CKR(CKR_ATTRIBUTE_VALUE_INVALID)
        P11TLS_TEST_CKR(CKR_ACTION_PROHIBITED)
        P11TLS_TEST_CKR(CKR_DATA_INVALID)
        P11TLS_TEST_CKR(CKR_DATA_LEN_RANGE)
        P11TLS_TEST_CKR(CKR_DEVICE_ERROR)
        P11TLS_TEST_CKR(CKR_DEVICE_MEMORY)
        P11TLS_TEST_CKR(CKR_FUNCTION_NOT_PARALLEL)
        P11TLS_TEST_CKR(CKR_FUNCTION_NOT_SUPPORTED)
        P11TLS_TEST_CKR(CKR_KEY_HANDLE_INVALID)
        P11TLS_TEST_CKR(CKR_KEY_SIZE_RANGE)
        P11TLS_TEST_CKR(CKR_KEY_TYPE_INCONSISTENT)
        P11TLS_TEST_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
        P11TLS_TEST_CKR(CKR_MECHANISM_INVALID)
        P11TLS_TEST_CKR(CKR_MECHANISM_PARAM_INVALID)
        P11TLS_TEST_CKR(CKR_OBJECT_HANDLE_INVALID)
        P11TLS_TEST_CKR(CKR_OPERATION_ACTIVE)
        P11TLS_TEST_CKR(CKR_OPERATION_NOT_INITIALIZED)
        P11TLS_TEST_CKR(CKR_PIN_INCORRECT)
        P11TLS_TEST_CKR(CKR_PIN_LEN_RANGE)
        P11TLS_TEST_CKR(CKR_PIN_LOCKED)
        P11TLS_TEST_CKR(CKR_SESSION_COUNT)
        P11TLS_TEST_CKR(CKR_SESSION_HANDLE_INVALID)
        P11TLS_TEST_CKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
        P11TLS_TEST_CKR(CKR_SESSION_READ_ONLY)
        P11TLS_TEST_CKR(CKR_SESSION_EXISTS)
        P11TLS_TEST_CKR(CKR_SESSION_READ_ONLY_EXISTS)
        P11TLS_TEST_CKR(CKR_SESSION_READ_WRITE_SO_EXISTS)
        P11TLS_TEST_CKR(CKR_SIGNATURE_INVALID)
        P11TLS_TEST_CKR(CKR_SIGNATURE_LEN_RANGE)
        P11TLS_TEST_CKR(CKR_TEMPLATE_INCOMPLETE)
        P11TLS_TEST_CKR(CKR_TEMPLATE_INCONSISTENT)
        P11TLS_TEST_CKR(CKR_TOKEN_NOT_RECOGNIZED)
        P11TLS_TEST_CKR(CKR_USER_ALREADY_LOGGED_IN)
        P11TLS_TEST_CKR(CKR_USER_NOT_LOGGED_IN)
        P11TLS_TEST_CKR(CKR_USER_PIN_NOT_INITIALIZED)
        P11TLS_TEST_CKR(CKR_USER_TYPE_INVALID)
        P11TLS_TEST_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
        P11TLS_TEST_CKR(CKR_BUFFER_TOO_SMALL)
        P11TLS_TEST_CKR(CKR_RANDOM_SEED_NOT_SUPPORTED)
        P11TLS_TEST_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
        P11TLS_TEST_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef P11TLS_TEST_CKR
    default: break;
    }
    char hex[32];
    std::snprintf(hex, sizeof hex, "CKR 0x%lx", static_cast<unsigned long>(rv));
    return hex;
}

/// Which of the 68 list entries a call went through.
class EntryLog {
public:
    void use(std::size_t offset) { used_.insert(offset); }
    void clear() { used_.clear(); }
    [[nodiscard]] bool used(std::size_t offset) const { return used_.count(offset) != 0; }

private:
    std::set<std::size_t> used_;
};

}  // namespace p11tls::test
