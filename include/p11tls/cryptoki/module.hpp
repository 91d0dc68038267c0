// SPDX-License-Identifier: MIT
#pragma once
/// cryptoki::Module<Provider>: turns a Token model into a complete PKCS#11 v2.40
/// CK_FUNCTION_LIST. Every entry is non-NULL; functions the token does not offer return
/// CKR_FUNCTION_NOT_SUPPORTED. The module checks the C ABI (library state, NULL pointers,
/// slot ids, output-length conventions); the token implements the semantics.
///
/// `Provider` supplies the token:
///   using token_type = ...;                         // a SoftToken-like Token model
///   static Result<token_type*> open();             // at C_Initialize
///   static void close(token_type*) noexcept;       // at C_Finalize
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include <p11tls/concepts/token.hpp>
#include <p11tls/cryptoki/errors.hpp>

namespace p11tls::cryptoki {

inline constexpr CK_SLOT_ID slot_id = 0;

template <class Provider>
    requires Token<typename Provider::token_type>
class Module {
public:
    using T = typename Provider::token_type;

    [[nodiscard]] static CK_FUNCTION_LIST* function_list() noexcept { return &list_; }

private:
    static inline T* token_ = nullptr;
    static inline std::shared_mutex lifecycle_;

    static CK_RV rv(const Result<void>& r) noexcept { return r ? CKR_OK : to_ckr(r.error().code); }

    // Runs `f(token)` while the library stays initialized.
    template <class F>
    static CK_RV with_token(F&& f) noexcept {
        std::shared_lock lock(lifecycle_);
        if (!token_) return CKR_CRYPTOKI_NOT_INITIALIZED;
        return f(*token_);
    }

    template <class P>
    static std::span<const std::byte> in(P* p, CK_ULONG len) noexcept {
        return {reinterpret_cast<const std::byte*>(p), static_cast<std::size_t>(len)};
    }
    static std::span<const char> pin(CK_UTF8CHAR_PTR p, CK_ULONG len) noexcept {
        return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(len)};
    }
    template <class A>
    static std::span<A> attrs(A* p, CK_ULONG n) noexcept {
        return {p, static_cast<std::size_t>(n)};
    }
    // Output with PKCS#11's length convention: a NULL buffer asks for the length.
    static CK_RV out(const Result<std::size_t>& r, CK_ULONG_PTR len) noexcept {
        if (r) {
            *len = *r;
            return CKR_OK;
        }
        if (r.error().code == Errc::buffer_too_small) *len = static_cast<CK_ULONG>(r.error().native);
        return to_ckr(r.error().code);
    }
    static std::span<std::byte> out_buf(CK_BYTE_PTR p, CK_ULONG_PTR len) noexcept {
        return {reinterpret_cast<std::byte*>(p), p ? static_cast<std::size_t>(*len) : 0};
    }

    // --- general ---

    static CK_RV C_Initialize(CK_VOID_PTR init_args) noexcept {
        if (init_args) {
            CK_C_INITIALIZE_ARGS a;
            std::memcpy(&a, init_args, sizeof a);
            if (a.pReserved) return CKR_ARGUMENTS_BAD;
            const int given = !!a.CreateMutex + !!a.DestroyMutex + !!a.LockMutex + !!a.UnlockMutex;
            if (given != 0 && given != 4) return CKR_ARGUMENTS_BAD;
            // With CKF_OS_LOCKING_OK the library may use the OS's primitives, which it does;
            // without it, callbacks would have to replace them, which this library cannot.
            if (given == 4 && !(a.flags & CKF_OS_LOCKING_OK)) return CKR_CANT_LOCK;
        }
        std::unique_lock lock(lifecycle_);
        if (token_) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
        auto t = Provider::open();
        if (!t) return to_ckr(t.error().code);
        token_ = *t;
        return CKR_OK;
    }

    static CK_RV C_Finalize(CK_VOID_PTR reserved) noexcept {
        if (reserved) return CKR_ARGUMENTS_BAD;
        std::unique_lock lock(lifecycle_);
        if (!token_) return CKR_CRYPTOKI_NOT_INITIALIZED;
        token_->close_all_sessions();
        Provider::close(token_);
        token_ = nullptr;
        return CKR_OK;
    }

    static CK_RV C_GetInfo(CK_INFO_PTR info) noexcept {
        if (!info) return CKR_ARGUMENTS_BAD;
        return with_token([&](T&) {
            std::memset(info, 0, sizeof *info);
            info->cryptokiVersion = {2, 40};
            std::memset(info->manufacturerID, ' ', sizeof info->manufacturerID);
            std::memcpy(info->manufacturerID, "p11tls", 6);
            std::memset(info->libraryDescription, ' ', sizeof info->libraryDescription);
            std::memcpy(info->libraryDescription, "p11tls PKCS#11 module", 21);
            info->libraryVersion = {0, 1};
            return CKR_OK;
        });
    }

    static CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR pp) noexcept {
        if (!pp) return CKR_ARGUMENTS_BAD;
        *pp = &list_;
        return CKR_OK;
    }

    // --- slots and tokens ---

    static CK_RV C_GetSlotList(CK_BBOOL, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count) noexcept {
        if (!count) return CKR_ARGUMENTS_BAD;
        return with_token([&](T&) {
            if (slots && *count < 1) {
                *count = 1;
                return CKR_BUFFER_TOO_SMALL;
            }
            if (slots) slots[0] = slot_id;
            *count = 1;
            return CKR_OK;
        });
    }

    static CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) noexcept {
        if (!info) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            t.slot_info(*info);
            return CKR_OK;
        });
    }

    static CK_RV C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) noexcept {
        if (!info) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            t.token_info(*info);
            return CKR_OK;
        });
    }

    static CK_RV C_WaitForSlotEvent(CK_FLAGS, CK_SLOT_ID_PTR, CK_VOID_PTR) noexcept {
        return with_token([](T&) { return CKR_FUNCTION_NOT_SUPPORTED; });
    }

    static CK_RV C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) noexcept {
        if (!count) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            auto mechs = t.mechanisms();
            if (list && *count < mechs.size()) {
                *count = mechs.size();
                return CKR_BUFFER_TOO_SMALL;
            }
            if (list)
                for (std::size_t i = 0; i < mechs.size(); ++i) list[i] = mechs[i].type;
            *count = mechs.size();
            return CKR_OK;
        });
    }

    static CK_RV C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info) noexcept {
        if (!info) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            for (const auto& m : t.mechanisms()) {
                if (m.type != type) continue;
                info->ulMinKeySize = m.min_key;
                info->ulMaxKeySize = m.max_key;
                info->flags = m.flags;
                return CKR_OK;
            }
            return CKR_MECHANISM_INVALID;
        });
    }

    static CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR so_pin, CK_ULONG len, CK_UTF8CHAR_PTR label) noexcept {
        if (!so_pin || !label) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            return rv(t.init_token(pin(so_pin, len), std::span<const char, 32>(reinterpret_cast<const char*>(label), 32)));
        });
    }

    static CK_RV C_InitPIN(CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR p, CK_ULONG len) noexcept {
        if (!p && len) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.init_pin(s, pin(p, len))); });
    }

    static CK_RV C_SetPIN(CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR o, CK_ULONG olen, CK_UTF8CHAR_PTR n, CK_ULONG nlen) noexcept {
        if ((!o && olen) || (!n && nlen)) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.set_pin(s, pin(o, olen), pin(n, nlen))); });
    }

    // --- sessions ---

    static CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY, CK_SESSION_HANDLE_PTR ph) noexcept {
        if (!ph) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
            auto h = t.open_session(flags);
            if (!h) return to_ckr(h.error().code);
            *ph = *h;
            return CKR_OK;
        });
    }

    static CK_RV C_CloseSession(CK_SESSION_HANDLE s) noexcept {
        return with_token([&](T& t) { return rv(t.close_session(s)); });
    }

    static CK_RV C_CloseAllSessions(CK_SLOT_ID slot) noexcept {
        return with_token([&](T& t) {
            if (slot != slot_id) return CKR_SLOT_ID_INVALID;
            t.close_all_sessions();
            return CKR_OK;
        });
    }

    static CK_RV C_GetSessionInfo(CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info) noexcept {
        if (!info) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            auto i = t.session_info(s);
            if (!i) return to_ckr(i.error().code);
            *info = *i;
            return CKR_OK;
        });
    }

    static CK_RV C_Login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR p, CK_ULONG len) noexcept {
        if (!p && len) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.login(s, user, pin(p, len))); });
    }

    static CK_RV C_Logout(CK_SESSION_HANDLE s) noexcept {
        return with_token([&](T& t) { return rv(t.logout(s)); });
    }

    // --- objects ---

    static CK_RV C_CreateObject(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ph) noexcept {
        if ((!tmpl && n) || !ph) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            auto h = t.create_object(s, attrs<const CK_ATTRIBUTE>(tmpl, n));
            if (!h) return to_ckr(h.error().code);
            *ph = *h;
            return CKR_OK;
        });
    }

    static CK_RV C_DestroyObject(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o) noexcept {
        return with_token([&](T& t) { return rv(t.destroy_object(s, o)); });
    }

    static CK_RV C_GetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) noexcept {
        if (!tmpl && n) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.get_attributes(s, o, attrs(tmpl, n))); });
    }

    static CK_RV C_SetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) noexcept {
        if (!tmpl && n) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.set_attributes(s, o, attrs<const CK_ATTRIBUTE>(tmpl, n))); });
    }

    static CK_RV C_FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) noexcept {
        if (!tmpl && n) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.find_init(s, attrs<const CK_ATTRIBUTE>(tmpl, n))); });
    }

    static CK_RV C_FindObjects(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR ph, CK_ULONG max, CK_ULONG_PTR count) noexcept {
        if (!ph || !count) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            auto n = t.find(s, std::span<CK_ULONG>(ph, static_cast<std::size_t>(max)));
            if (!n) return to_ckr(n.error().code);
            *count = *n;
            return CKR_OK;
        });
    }

    static CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE s) noexcept {
        return with_token([&](T& t) { return rv(t.find_final(s)); });
    }

    // --- digest, sign, verify ---

    // An error from a digest, sign or verify call ends the operation (v2.40 §5.10-§5.12: "always
    // terminates ... unless it returns CKR_BUFFER_TOO_SMALL"), arguments refused here included.
    enum class Running : std::uint8_t { digest, sign, verify };
    static CK_RV bad_arguments(CK_SESSION_HANDLE s, Running op) noexcept {
        return with_token([&](T& t) {
            if constexpr (requires { t.end_digest(s); t.end_sign(s); t.end_verify(s); }) {
                if (op == Running::digest) t.end_digest(s);
                else if (op == Running::sign) t.end_sign(s);
                else t.end_verify(s);
            }
            return CKR_ARGUMENTS_BAD;
        });
    }

    static CK_RV C_DigestInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m) noexcept {
        if (!m) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.digest_init(s, *m)); });
    }
    static CK_RV C_Digest(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR o, CK_ULONG_PTR olen) noexcept {
        if ((!d && n) || !olen) return bad_arguments(s, Running::digest);
        return with_token([&](T& t) { return out(t.digest(s, in(d, n), out_buf(o, olen)), olen); });
    }
    static CK_RV C_DigestUpdate(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n) noexcept {
        if (!d && n) return bad_arguments(s, Running::digest);
        return with_token([&](T& t) { return rv(t.digest_update(s, in(d, n))); });
    }
    static CK_RV C_DigestFinal(CK_SESSION_HANDLE s, CK_BYTE_PTR o, CK_ULONG_PTR olen) noexcept {
        if (!olen) return bad_arguments(s, Running::digest);
        return with_token([&](T& t) { return out(t.digest_final(s, out_buf(o, olen)), olen); });
    }

    static CK_RV C_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) noexcept {
        if (!m) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.sign_init(s, *m, k)); });
    }
    static CK_RV C_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR o, CK_ULONG_PTR olen) noexcept {
        if ((!d && n) || !olen) return bad_arguments(s, Running::sign);
        return with_token([&](T& t) { return out(t.sign(s, in(d, n), out_buf(o, olen)), olen); });
    }
    static CK_RV C_SignUpdate(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n) noexcept {
        if (!d && n) return bad_arguments(s, Running::sign);
        return with_token([&](T& t) { return rv(t.sign_update(s, in(d, n))); });
    }
    static CK_RV C_SignFinal(CK_SESSION_HANDLE s, CK_BYTE_PTR o, CK_ULONG_PTR olen) noexcept {
        if (!olen) return bad_arguments(s, Running::sign);
        return with_token([&](T& t) { return out(t.sign_final(s, out_buf(o, olen)), olen); });
    }

    static CK_RV C_VerifyInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k) noexcept {
        if (!m) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.verify_init(s, *m, k)); });
    }
    static CK_RV C_Verify(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR sig, CK_ULONG slen) noexcept {
        if ((!d && n) || !sig) return bad_arguments(s, Running::verify);
        return with_token([&](T& t) { return rv(t.verify(s, in(d, n), in(sig, slen))); });
    }
    static CK_RV C_VerifyUpdate(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n) noexcept {
        if (!d && n) return bad_arguments(s, Running::verify);
        return with_token([&](T& t) { return rv(t.verify_update(s, in(d, n))); });
    }
    static CK_RV C_VerifyFinal(CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG slen) noexcept {
        if (!sig) return bad_arguments(s, Running::verify);
        return with_token([&](T& t) { return rv(t.verify_final(s, in(sig, slen))); });
    }

    // --- keys and random ---

    static CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
                                   CK_ATTRIBUTE_PTR priv, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR hpub,
                                   CK_OBJECT_HANDLE_PTR hpriv) noexcept {
        if (!m || (!pub && npub) || (!priv && npriv) || !hpub || !hpriv) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            auto kp = t.generate_key_pair(s, *m, attrs<const CK_ATTRIBUTE>(pub, npub), attrs<const CK_ATTRIBUTE>(priv, npriv));
            if (!kp) return to_ckr(kp.error().code);
            *hpub = kp->public_key;
            *hpriv = kp->private_key;
            return CKR_OK;
        });
    }

    static CK_RV C_SeedRandom(CK_SESSION_HANDLE s, CK_BYTE_PTR seed, CK_ULONG n) noexcept {
        if (!seed && n) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) { return rv(t.seed_random(s, in(seed, n))); });
    }

    static CK_RV C_GenerateRandom(CK_SESSION_HANDLE s, CK_BYTE_PTR out_p, CK_ULONG n) noexcept {
        if (!out_p && n) return CKR_ARGUMENTS_BAD;
        return with_token([&](T& t) {
            return rv(t.generate_random(s, {reinterpret_cast<std::byte*>(out_p), static_cast<std::size_t>(n)}));
        });
    }

    static CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE) noexcept {
        return with_token([](T&) { return CKR_FUNCTION_NOT_PARALLEL; });
    }
    static CK_RV C_CancelFunction(CK_SESSION_HANDLE) noexcept {
        return with_token([](T&) { return CKR_FUNCTION_NOT_PARALLEL; });
    }

    // --- not offered: a typed function for each entry, so no entry is NULL ---

    // Before C_Initialize a stub answers CKR_CRYPTOKI_NOT_INITIALIZED like every entry but
    // C_Initialize and C_GetFunctionList (v2.40 §5.1.6); both codes are §5.1.6 codes, and the
    // library state is the answer that holds whatever the function.
    template <class... Args>
    static CK_RV unsupported(Args...) noexcept {
        return with_token([](T&) { return CKR_FUNCTION_NOT_SUPPORTED; });
    }

    static inline CK_FUNCTION_LIST list_ = {
        {2, 40},
        &C_Initialize,
        &C_Finalize,
        &C_GetInfo,
        &C_GetFunctionList,
        &C_GetSlotList,
        &C_GetSlotInfo,
        &C_GetTokenInfo,
        &C_GetMechanismList,
        &C_GetMechanismInfo,
        &C_InitToken,
        &C_InitPIN,
        &C_SetPIN,
        &C_OpenSession,
        &C_CloseSession,
        &C_CloseAllSessions,
        &C_GetSessionInfo,
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_GetOperationState
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>,  // C_SetOperationState
        &C_Login,
        &C_Logout,
        &C_CreateObject,
        &unsupported<CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR>,  // C_CopyObject
        &C_DestroyObject,
        &unsupported<CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ULONG_PTR>,  // C_GetObjectSize
        &C_GetAttributeValue,
        &C_SetAttributeValue,
        &C_FindObjectsInit,
        &C_FindObjects,
        &C_FindObjectsFinal,
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE>,  // C_EncryptInit
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_Encrypt
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_EncryptUpdate
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_EncryptFinal
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE>,  // C_DecryptInit
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_Decrypt
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_DecryptUpdate
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_DecryptFinal
        &C_DigestInit,
        &C_Digest,
        &C_DigestUpdate,
        &unsupported<CK_SESSION_HANDLE, CK_OBJECT_HANDLE>,  // C_DigestKey
        &C_DigestFinal,
        &C_SignInit,
        &C_Sign,
        &C_SignUpdate,
        &C_SignFinal,
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE>,  // C_SignRecoverInit
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_SignRecover
        &C_VerifyInit,
        &C_Verify,
        &C_VerifyUpdate,
        &C_VerifyFinal,
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE>,  // C_VerifyRecoverInit
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_VerifyRecover
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_DigestEncryptUpdate
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_DecryptDigestUpdate
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_SignEncryptUpdate
        &unsupported<CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_DecryptVerifyUpdate
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR>,  // C_GenerateKey
        &C_GenerateKeyPair,
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR>,  // C_WrapKey
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_ATTRIBUTE_PTR,
                     CK_ULONG, CK_OBJECT_HANDLE_PTR>,  // C_UnwrapKey
        &unsupported<CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG,
                     CK_OBJECT_HANDLE_PTR>,  // C_DeriveKey
        &C_SeedRandom,
        &C_GenerateRandom,
        &C_GetFunctionStatus,
        &C_CancelFunction,
        &C_WaitForSlotEvent,
    };
};

}  // namespace p11tls::cryptoki
