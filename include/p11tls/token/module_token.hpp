// SPDX-License-Identifier: MIT
#pragma once
/// ModuleToken: a Token model over any external PKCS#11 module (a secure element vendor's
/// library, SoftHSMv2, or p11tls's own module), loaded with dlopen. Host only.
#include <cstring>
#include <memory>
#include <string_view>

#include <dlfcn.h>

#include <p11tls/concepts/token.hpp>
#include <p11tls/cryptoki/errors.hpp>

namespace p11tls {

class ModuleToken {
public:
    using Handle = CK_ULONG;

    struct KeyPair {
        Handle public_key;
        Handle private_key;
    };

    /// Loads `path`, initializes it, and picks the slot whose token label is `token_label`
    /// (blank-padded comparison), or the first slot with a token when the label is empty.
    [[nodiscard]] static Result<std::unique_ptr<ModuleToken>> open(const char* path, std::string_view token_label = {}) {
        void* lib = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib) return fail(Errc::not_supported);
        auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"));
        CK_FUNCTION_LIST_PTR f = nullptr;
        if (!get || get(&f) != CKR_OK || !f) {
            ::dlclose(lib);
            return fail(Errc::not_supported);
        }
        std::unique_ptr<ModuleToken> t(new ModuleToken(lib, f));
        CK_C_INITIALIZE_ARGS args{};
        args.flags = CKF_OS_LOCKING_OK;
        if (CK_RV rv = f->C_Initialize(&args); rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
            return fail(cryptoki::from_ckr(rv), static_cast<std::int32_t>(rv));
        t->initialized_ = true;
        CK_SLOT_ID slots[32];
        CK_ULONG n = 32;
        if (CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n); rv != CKR_OK) return fail(cryptoki::from_ckr(rv), static_cast<std::int32_t>(rv));
        for (CK_ULONG i = 0; i < n; ++i) {
            CK_TOKEN_INFO info;
            if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
            if (!token_label.empty() && !label_is(info.label, token_label)) continue;
            t->slot_ = slots[i];
            return t;
        }
        return fail(Errc::slot_invalid);
    }

    ModuleToken(const ModuleToken&) = delete;
    ModuleToken& operator=(const ModuleToken&) = delete;
    ~ModuleToken() {
        if (initialized_) f_->C_Finalize(nullptr);
        ::dlclose(lib_);
    }

    [[nodiscard]] CK_SLOT_ID slot() const noexcept { return slot_; }
    [[nodiscard]] CK_FUNCTION_LIST_PTR functions() const noexcept { return f_; }

    /// Logs the user in through a session this object keeps open (login is token-wide).
    [[nodiscard]] Result<void> login_user(std::string_view pin) {
        if (!login_session_) {
            auto s = open_session(CKF_SERIAL_SESSION);
            if (!s) return fail(s.error());
            login_session_ = *s;
        }
        auto r = login(login_session_, CKU_USER, {pin.data(), pin.size()});
        if (!r && r.error().code == Errc::user_already_logged_in) return {};
        return r;
    }

    [[nodiscard]] Result<Handle> open_session(CK_FLAGS flags) {
        Handle h = 0;
        P11TLS_TRY(check(f_->C_OpenSession(slot_, flags | CKF_SERIAL_SESSION, nullptr, nullptr, &h)));
        return h;
    }
    [[nodiscard]] Result<void> close_session(Handle s) { return check(f_->C_CloseSession(s)); }
    [[nodiscard]] Result<void> login(Handle s, CK_USER_TYPE user, std::span<const char> pin) {
        return check(f_->C_Login(s, user, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())), pin.size()));
    }
    [[nodiscard]] Result<void> logout(Handle s) { return check(f_->C_Logout(s)); }
    [[nodiscard]] Result<void> find_init(Handle s, std::span<const CK_ATTRIBUTE> t) {
        return check(f_->C_FindObjectsInit(s, const_cast<CK_ATTRIBUTE_PTR>(t.data()), t.size()));
    }
    [[nodiscard]] Result<std::size_t> find(Handle s, std::span<Handle> out) {
        CK_ULONG n = 0;
        P11TLS_TRY(check(f_->C_FindObjects(s, out.data(), out.size(), &n)));
        return static_cast<std::size_t>(n);
    }
    [[nodiscard]] Result<void> find_final(Handle s) { return check(f_->C_FindObjectsFinal(s)); }
    [[nodiscard]] Result<void> get_attributes(Handle s, Handle o, std::span<CK_ATTRIBUTE> t) {
        return check(f_->C_GetAttributeValue(s, o, t.data(), t.size()));
    }
    [[nodiscard]] Result<Handle> create_object(Handle s, std::span<const CK_ATTRIBUTE> t) {
        Handle h = 0;
        P11TLS_TRY(check(f_->C_CreateObject(s, const_cast<CK_ATTRIBUTE_PTR>(t.data()), t.size(), &h)));
        return h;
    }
    [[nodiscard]] Result<void> destroy_object(Handle s, Handle o) { return check(f_->C_DestroyObject(s, o)); }
    [[nodiscard]] Result<void> sign_init(Handle s, const CK_MECHANISM& m, Handle key) {
        return check(f_->C_SignInit(s, const_cast<CK_MECHANISM_PTR>(&m), key));
    }
    [[nodiscard]] Result<std::size_t> sign(Handle s, std::span<const std::byte> in, std::span<std::byte> out) {
        CK_ULONG len = out.size();
        CK_RV rv = f_->C_Sign(s, reinterpret_cast<CK_BYTE_PTR>(const_cast<std::byte*>(in.data())), in.size(),
                              reinterpret_cast<CK_BYTE_PTR>(out.data()), &len);
        if (rv == CKR_BUFFER_TOO_SMALL) return fail(Errc::buffer_too_small, static_cast<std::int32_t>(len));
        P11TLS_TRY(check(rv));
        return static_cast<std::size_t>(len);
    }
    [[nodiscard]] Result<KeyPair> generate_key_pair(Handle s, const CK_MECHANISM& m, std::span<const CK_ATTRIBUTE> pub,
                                                    std::span<const CK_ATTRIBUTE> priv) {
        KeyPair kp{};
        P11TLS_TRY(check(f_->C_GenerateKeyPair(s, const_cast<CK_MECHANISM_PTR>(&m), const_cast<CK_ATTRIBUTE_PTR>(pub.data()),
                                               pub.size(), const_cast<CK_ATTRIBUTE_PTR>(priv.data()), priv.size(),
                                               &kp.public_key, &kp.private_key)));
        return kp;
    }
    [[nodiscard]] Result<void> generate_random(Handle s, std::span<std::byte> out) {
        return check(f_->C_GenerateRandom(s, reinterpret_cast<CK_BYTE_PTR>(out.data()), out.size()));
    }

private:
    ModuleToken(void* lib, CK_FUNCTION_LIST_PTR f) noexcept : lib_(lib), f_(f) {}
    static Result<void> check(CK_RV rv) noexcept {
        if (rv == CKR_OK) return {};
        return fail(cryptoki::from_ckr(rv), static_cast<std::int32_t>(rv));
    }
    static bool label_is(const unsigned char (&field)[32], std::string_view want) noexcept {
        std::size_t n = 32;
        while (n > 0 && field[n - 1] == ' ') --n;
        return want.size() == n && std::memcmp(field, want.data(), n) == 0;
    }

    void* lib_;
    CK_FUNCTION_LIST_PTR f_;
    CK_SLOT_ID slot_ = 0;
    Handle login_session_ = 0;
    bool initialized_ = false;
};

static_assert(Token<ModuleToken>);

}  // namespace p11tls
