// SPDX-License-Identifier: MIT
#pragma once
/// SoftToken<Nvm, Entropy, Config>: a PKCS#11 v2.40 token in software on mbedTLS whose token
/// objects persist in an Nvm. All objects are held in RAM (a fixed pool, no heap), so searches
/// never touch the Nvm; every change to a token object is written through before it is
/// visible. Thread-safe: every call takes the token's lock (Config::Mutex).
#include <array>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <utility>

#include <mbedtls/platform_util.h>

#include <p11tls/concepts/entropy.hpp>
#include <p11tls/concepts/nvm.hpp>
#include <p11tls/concepts/token.hpp>
#include <p11tls/detail/mbedtls/crypto.hpp>
#include <p11tls/detail/mbedtls/drbg.hpp>
#include <p11tls/token/mechanisms.hpp>
#include <p11tls/token/object.hpp>
#include <p11tls/token/policy.hpp>

namespace p11tls {

/// A lock that does nothing, for single-threaded firmware.
struct NullMutex {
    void lock() noexcept {}
    void unlock() noexcept {}
};

/// Compile-time settings of a SoftToken. Boards derive from it and override members.
struct SoftTokenConfig {
    static constexpr std::size_t max_objects = 64;       ///< session + token objects
    static constexpr std::size_t max_object_size = 4096; ///< encoded attributes of one object
    static constexpr std::size_t max_sessions = 32;
    /// false: the FreeRTOS-compatible mode; private objects are usable without C_Login.
    static constexpr bool login_required = true;
    static constexpr unsigned pin_iterations = 10000;  ///< PBKDF2-HMAC-SHA256 rounds
    /// A stored state naming more rounds than this is refused as corrupt at load: a tampered
    /// count would otherwise make every C_Login run for hours.
    static constexpr unsigned max_pin_iterations = 1000000;
    static constexpr unsigned max_pin_failures = 10;   ///< then the PIN is locked
    static constexpr std::size_t min_pin_len = 4;
    static constexpr std::size_t max_pin_len = 64;
    static constexpr const char* manufacturer = "p11tls";
    static constexpr const char* model = "SoftToken";
    /// The DRBG reseeds from the board's Entropy after this many requests (key generation
    /// always reseeds first).
    static constexpr int drbg_reseed_interval = MBEDTLS_CTR_DRBG_RESEED_INTERVAL;
    // A C++ library without threads (newlib's bare-metal libstdc++) has no std::mutex: a board
    // for it names its Mutex (NullMutex, or its RTOS's lock); SoftToken's static_assert says so.
#if !defined(__GLIBCXX__) || defined(_GLIBCXX_HAS_GTHREADS)
    using Mutex = std::mutex;
#endif
};

template <Nvm N, Entropy E, class Config = SoftTokenConfig>
class SoftToken {
    static_assert(requires { typename Config::Mutex; },
                  "this C++ library has no std::mutex: the token config must name a Mutex (NullMutex for "
                  "single-threaded firmware)");

public:
    using Handle = CK_ULONG;
    using config = Config;
    static constexpr RecordId meta_record = 0;
    /// Record ids from here up belong to the board (entropy seed, ...): the token neither loads
    /// nor erases them, so a board may keep its own records in the token's Nvm.
    static constexpr RecordId first_platform_record = 0x80000000u;

    /// An Entropy that keeps a board record in the Nvm (NvSeeded: `bind(N&)`) gets this token's.
    SoftToken(N nvm, E entropy) noexcept : nvm_(std::move(nvm)), entropy_(std::move(entropy)), drbg_(entropy_) {
        if constexpr (requires { entropy_.bind(nvm_); }) entropy_.bind(nvm_);
    }
    SoftToken(const SoftToken&) = delete;
    SoftToken& operator=(const SoftToken&) = delete;
    ~SoftToken() {
        for (auto& s : sessions_) end_ops(s);
        mbedtls_platform_zeroize(objects_.data(), sizeof objects_);
        mbedtls_platform_zeroize(&meta_, sizeof meta_);
        mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
    }

    /// Seeds the DRBG and loads the token state and all token objects from the Nvm. Records
    /// that fail their checks are skipped (and left in place, never overwritten); their
    /// number is `corrupt_records()`.
    [[nodiscard]] Result<void> load() {
        std::lock_guard lock(mutex_);
        static constexpr char personal[] = "p11tls SoftToken";
        P11TLS_TRY(drbg_.seed(std::as_bytes(std::span(personal)), Config::drbg_reseed_interval));
        P11TLS_TRY(load_meta());
        return load_objects();
    }

    [[nodiscard]] N& nvm() noexcept { return nvm_; }
    /// The token's Entropy, e.g. for the board to reset() a source whose health test failed.
    [[nodiscard]] E& entropy() noexcept { return entropy_; }
    [[nodiscard]] std::size_t corrupt_records() const noexcept { return corrupt_; }

    // --- slot and token information -------------------------------------------------------

    void slot_info(CK_SLOT_INFO& info) const {
        std::memset(&info, 0, sizeof info);
        pad(info.slotDescription, "p11tls software token slot");
        pad(info.manufacturerID, Config::manufacturer);
        info.flags = CKF_TOKEN_PRESENT;
        info.hardwareVersion = {0, 1};
        info.firmwareVersion = {0, 1};
    }

    void token_info(CK_TOKEN_INFO& info) {
        std::lock_guard lock(mutex_);
        std::memset(&info, 0, sizeof info);
        std::memcpy(info.label, meta_.label, sizeof info.label);
        pad(info.manufacturerID, Config::manufacturer);
        pad(info.model, Config::model);
        std::memcpy(info.serialNumber, meta_.serial, sizeof info.serialNumber);
        info.flags = CKF_RNG | CKF_RESTORE_KEY_NOT_NEEDED;
        if (Config::login_required) info.flags |= CKF_LOGIN_REQUIRED;
        if (meta_.initialized) info.flags |= CKF_TOKEN_INITIALIZED;
        if (meta_.user_pin_set) info.flags |= CKF_USER_PIN_INITIALIZED;
        info.flags |= pin_flags(meta_.user_failures, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
        info.flags |= pin_flags(meta_.so_failures, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
        info.ulMaxSessionCount = Config::max_sessions;
        info.ulMaxRwSessionCount = Config::max_sessions;
        for (const auto& s : sessions_) {
            if (!s.used) continue;
            ++info.ulSessionCount;
            if (s.rw) ++info.ulRwSessionCount;
        }
        info.ulMaxPinLen = Config::max_pin_len;
        info.ulMinPinLen = Config::min_pin_len;
        info.ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
        info.ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
        info.hardwareVersion = {0, 1};
        info.firmwareVersion = {0, 1};
        std::memset(info.utcTime, ' ', sizeof info.utcTime);
    }

    [[nodiscard]] static std::span<const token::MechanismInfo> mechanisms() noexcept { return token::mechanism_table; }

    // --- token and PIN management ---------------------------------------------------------

    /// C_InitToken: (re)initializes with an SO PIN and label, destroying every token object.
    /// A token already initialized needs its current SO PIN.
    [[nodiscard]] Result<void> init_token(std::span<const char> so_pin, std::span<const char, 32> label) {
        std::lock_guard lock(mutex_);
        P11TLS_TRY(check_pin_len(so_pin));
        for (const auto& s : sessions_)
            if (s.used) return fail(Errc::session_exists);
        if (meta_.initialized) P11TLS_TRY(verify_pin(so_pin, Who::so));
        // Destroy objects first: if power fails midway, the old SO PIN still guards the token.
        for (std::size_t i = 0; i < objects_.size(); ++i) {
            Object& o = objects_[i];
            if (!o.used || !o.token) continue;
            P11TLS_TRY(nvm_.remove(o.record));
            release(o);
        }
        // Records skipped at load (corrupt_records()) may still hold the old owner's keys.
        std::array<RecordId, Config::max_objects + 16> ids;
        auto n = nvm_.list(ids);
        if (!n) return fail(n.error());
        for (std::size_t i = 0; i < *n; ++i)
            if (ids[i] != meta_record && ids[i] < first_platform_record) P11TLS_TRY(nvm_.remove(ids[i]));
        corrupt_ = 0;
        Meta m = meta_;
        m.initialized = true;
        m.user_pin_set = false;
        std::memcpy(m.label, label.data(), sizeof m.label);
        P11TLS_TRY(fresh_pin_hash(so_pin, m.so_salt, m.so_hash));
        std::memset(m.user_salt, 0, sizeof m.user_salt);
        std::memset(m.user_hash, 0, sizeof m.user_hash);
        m.so_failures = 0;
        m.user_failures = 0;
        return commit_meta(m);
    }

    /// C_InitPIN: the SO sets the user PIN (and thereby unlocks it).
    [[nodiscard]] Result<void> init_pin(Handle session, std::span<const char> pin) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (login_ != Who::so) return fail(Errc::user_not_logged_in);
        if (!s->rw) return fail(Errc::session_read_only);
        P11TLS_TRY(check_pin_len(pin));
        Meta m = meta_;
        P11TLS_TRY(fresh_pin_hash(pin, m.user_salt, m.user_hash));
        m.user_pin_set = true;
        m.user_failures = 0;
        return commit_meta(m);
    }

    /// C_SetPIN: changes the PIN of the logged-in user (or the user PIN when not logged in).
    [[nodiscard]] Result<void> set_pin(Handle session, std::span<const char> old_pin, std::span<const char> new_pin) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (!s->rw) return fail(Errc::session_read_only);
        P11TLS_TRY(check_pin_len(new_pin));
        Who who = login_ == Who::so ? Who::so : Who::user;
        if (who == Who::user && !meta_.user_pin_set) return fail(Errc::user_pin_not_initialized);
        P11TLS_TRY(verify_pin(old_pin, who));
        Meta m = meta_;
        if (who == Who::so) P11TLS_TRY(fresh_pin_hash(new_pin, m.so_salt, m.so_hash));
        else P11TLS_TRY(fresh_pin_hash(new_pin, m.user_salt, m.user_hash));
        return commit_meta(m);
    }

    // --- sessions and login -----------------------------------------------------------------

    [[nodiscard]] Result<Handle> open_session(CK_FLAGS flags) {
        std::lock_guard lock(mutex_);
        if (!(flags & CKF_SERIAL_SESSION)) return fail(Errc::function_not_supported);  // legacy parallel
        if (!(flags & CKF_RW_SESSION) && login_ == Who::so) return fail(Errc::session_read_write_so_exists);
        for (std::size_t i = 0; i < sessions_.size(); ++i) {
            Session& s = sessions_[i];
            if (s.used) continue;
            s.used = true;
            s.rw = (flags & CKF_RW_SESSION) != 0;
            s.gen = next_gen(s.gen);
            return make_handle(i, s.gen);
        }
        return fail(Errc::session_count);
    }

    [[nodiscard]] Result<void> close_session(Handle session) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        close(*s, session);
        return {};
    }

    void close_all_sessions() {
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < sessions_.size(); ++i)
            if (sessions_[i].used) close(sessions_[i], make_handle(i, sessions_[i].gen));
    }

    [[nodiscard]] Result<CK_SESSION_INFO> session_info(Handle session) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        CK_SESSION_INFO info{};
        info.slotID = 0;
        info.flags = CKF_SERIAL_SESSION | (s->rw ? CKF_RW_SESSION : 0);
        switch (login_) {
        case Who::none: info.state = s->rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION; break;
        case Who::user: info.state = s->rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS; break;
        case Who::so: info.state = CKS_RW_SO_FUNCTIONS; break;
        }
        return info;
    }

    [[nodiscard]] Result<void> login(Handle session, CK_USER_TYPE user, std::span<const char> pin) {
        std::lock_guard lock(mutex_);
        if (!session_ptr(session)) return fail(Errc::session_handle_invalid);
        // No key may demand CKA_ALWAYS_AUTHENTICATE, so no operation ever waits for a
        // context-specific login: v2.40 §5.6.7 answers such a login CKR_OPERATION_NOT_INITIALIZED.
        if (user == CKU_CONTEXT_SPECIFIC) return fail(Errc::operation_not_initialized);
        if (user != CKU_SO && user != CKU_USER) return fail(Errc::user_type_invalid);
        Who who = user == CKU_SO ? Who::so : Who::user;
        if (login_ == who) return fail(Errc::user_already_logged_in);
        if (login_ != Who::none) return fail(Errc::another_user_logged_in);
        if (who == Who::so) {
            for (const auto& s : sessions_)
                if (s.used && !s.rw) return fail(Errc::session_read_only_exists);
            if (!meta_.initialized) return fail(Errc::token_not_initialized);
        } else if (!meta_.user_pin_set) {
            if (Config::login_required) return fail(Errc::user_pin_not_initialized);
            login_ = who;  // FreeRTOS-compatible mode: login is accepted without a PIN set
            return {};
        }
        P11TLS_TRY(verify_pin(pin, who));
        login_ = who;
        return {};
    }

    [[nodiscard]] Result<void> logout(Handle session) {
        std::lock_guard lock(mutex_);
        if (!session_ptr(session)) return fail(Errc::session_handle_invalid);
        if (login_ == Who::none) return fail(Errc::user_not_logged_in);
        logout_all();
        return {};
    }

    // --- objects ----------------------------------------------------------------------------

    /// C_CreateObject. Token objects reach the Nvm before the handle is returned.
    [[nodiscard]] Result<Handle> create_object(Handle session, std::span<const CK_ATTRIBUTE> tmpl) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        auto kind = token::classify(tmpl);
        if (!kind) return fail(kind.error());
        P11TLS_TRY(token::check_template(*kind, tmpl, token::Mode::create));
        P11TLS_TRY(check_create_rights(*s, tmpl, *kind));
        P11TLS_TRY(check_values(*kind, tmpl));

        Scrub scrub{scratch_};  // the template may carry key material
        token::AttrWriter w(scratch_);
        token::write_template(w, *kind, tmpl);
        P11TLS_TRY(add_derived(w, *kind));
        add_origin(w, *kind, CK_UNAVAILABLE_INFORMATION);
        token::write_defaults(w, *kind);
        if (!w.ok()) return fail(Errc::token_full);  // larger than max_object_size
        return insert(w.written(), session);
    }

    [[nodiscard]] Result<void> destroy_object(Handle session, Handle object) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Object* o = object_ptr(object);
        if (!o) return fail(Errc::object_handle_invalid);
        token::AttrList l = list(*o);
        if (o->token && !s->rw) return fail(Errc::session_read_only);
        if (!l.flag(CKA_DESTROYABLE, true)) return fail(Errc::action_prohibited);
        if (o->token) P11TLS_TRY(nvm_.remove(o->record));
        release(*o);
        return {};
    }

    /// C_GetAttributeValue: fills each template entry by the spec's rules (length queries,
    /// CK_UNAVAILABLE_INFORMATION for sensitive, absent or too-small entries) and returns
    /// the error the spec asks for, if any.
    [[nodiscard]] Result<void> get_attributes(Handle session, Handle object, std::span<CK_ATTRIBUTE> tmpl) {
        std::lock_guard lock(mutex_);
        if (!session_ptr(session)) return fail(Errc::session_handle_invalid);
        Object* o = object_ptr(object);
        if (!o) return fail(Errc::object_handle_invalid);
        token::AttrList l = list(*o);
        Result<void> result;
        for (CK_ATTRIBUTE& a : tmpl) {
            auto v = l.find(a.type);
            if (!v) {
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                result = fail(Errc::attribute_type_invalid);
            } else if (token::hidden(l, a.type)) {
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                result = fail(Errc::attribute_sensitive);
            } else if (auto r = token::export_value(a, *v); !r) {
                result = r;
            }
        }
        return result;
    }

    /// C_SetAttributeValue: label, id and subject may change; CKA_SENSITIVE only to true and
    /// CKA_EXTRACTABLE only to false. All or nothing.
    [[nodiscard]] Result<void> set_attributes(Handle session, Handle object, std::span<const CK_ATTRIBUTE> tmpl) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Object* o = object_ptr(object);
        if (!o) return fail(Errc::object_handle_invalid);
        token::AttrList l = list(*o);
        token::Kind kind = token::kind_of(l);
        if (o->token && !s->rw) return fail(Errc::session_read_only);
        if (!l.flag(CKA_MODIFIABLE, true)) return fail(Errc::action_prohibited);
        // A type given twice would be stored twice, and a record with a repeated attribute
        // fails AttrList::valid at the next load: the object would be lost.
        for (std::size_t i = 0; i < tmpl.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (tmpl[j].type == tmpl[i].type) return fail(Errc::template_inconsistent);
        for (const CK_ATTRIBUTE& a : tmpl) {
            auto rule = token::rule_for(kind, a.type);
            if (!rule) return fail(token::absent_attribute_error(a.type));
            auto c = token::canonical(a);
            if (!c) return fail(Errc::attribute_value_invalid);
            bool one_way = (a.type == CKA_SENSITIVE && c->value[0] == std::byte{1}) ||
                           (a.type == CKA_EXTRACTABLE && c->value[0] == std::byte{0});
            if (!(rule->flags & token::modifiable) && !one_way) return fail(Errc::attribute_read_only);
        }
        Scrub scrub{scratch_};  // the copy holds the object's secret attributes too
        token::AttrWriter w(scratch_);
        l.for_each([&](const token::AttrList::Entry& e) {
            if (!token::find_in(tmpl, e.type)) w.add(e.type, e.value);
        });
        for (const CK_ATTRIBUTE& a : tmpl) w.add(a.type, token::canonical(a)->value);
        if (!w.ok()) return fail(Errc::token_full);
        if (o->token) P11TLS_TRY(persist(o->record, w.written()));
        assign(*o, w.written());
        return {};
    }

    [[nodiscard]] Result<void> find_init(Handle session, std::span<const CK_ATTRIBUTE> tmpl) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (s->find.active) return fail(Errc::operation_active);
        for (const CK_ATTRIBUTE& a : tmpl)
            if (!token::canonical(a)) return fail(Errc::attribute_value_invalid);
        s->find = {};
        s->find.active = true;
        for (std::size_t i = 0; i < objects_.size(); ++i) {
            const Object& o = objects_[i];
            if (o.used && visible(o) && matches(o, tmpl)) s->find.hits[s->find.count++] = make_handle(i, o.gen);
        }
        return {};
    }

    [[nodiscard]] Result<std::size_t> find(Handle session, std::span<Handle> out) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (!s->find.active) return fail(Errc::operation_not_initialized);
        std::size_t n = 0;
        while (n < out.size() && s->find.pos < s->find.count) out[n++] = s->find.hits[s->find.pos++];
        return n;
    }

    [[nodiscard]] Result<void> find_final(Handle session) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (!s->find.active) return fail(Errc::operation_not_initialized);
        s->find.active = false;
        return {};
    }

    // --- digest -----------------------------------------------------------------------------

    [[nodiscard]] Result<void> digest_init(Handle session, const CK_MECHANISM& mech) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (s->digest.active) return fail(Errc::operation_active);
        auto md = token::digest_md(mech.mechanism);
        if (!md) return fail(Errc::mechanism_invalid);
        if (mech.pParameter || mech.ulParameterLen) return fail(Errc::mechanism_param_invalid);
        P11TLS_TRY(s->digest.md.start(*md));
        s->digest.active = true;
        s->digest.multipart = false;
        return {};
    }

    /// Single-part digest. `out.data() == nullptr` asks for the length and keeps the
    /// operation; a short `out` gives Errc::buffer_too_small with the length in `native`.
    [[nodiscard]] Result<std::size_t> digest(Handle session, std::span<const std::byte> in, std::span<std::byte> out) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (!s->digest.active) return fail(Errc::operation_not_initialized);
        if (s->digest.multipart) return end(s->digest, fail(Errc::operation_active));
        const std::size_t len = detail::mbed::md_size(s->digest.md.type());
        if (auto q = short_output(out, len)) return std::move(*q);
        auto r = s->digest.md.update(in);
        if (r) r = s->digest.md.finish(out.first(len));
        if (!r) return end(s->digest, fail(r.error()));
        end(s->digest);
        return len;
    }

    [[nodiscard]] Result<void> digest_update(Handle session, std::span<const std::byte> in) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (!s->digest.active) return fail(Errc::operation_not_initialized);
        s->digest.multipart = true;
        if (auto r = s->digest.md.update(in); !r) return end(s->digest, fail(r.error()));
        return {};
    }

    [[nodiscard]] Result<std::size_t> digest_final(Handle session, std::span<std::byte> out) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        if (!s->digest.active) return fail(Errc::operation_not_initialized);
        const std::size_t len = detail::mbed::md_size(s->digest.md.type());
        if (auto q = short_output(out, len)) return std::move(*q);
        auto r = s->digest.md.finish(out.first(len));
        end(s->digest);
        if (!r) return fail(r.error());
        return len;
    }

    // --- sign and verify ----------------------------------------------------------------------

    [[nodiscard]] Result<void> sign_init(Handle session, const CK_MECHANISM& mech, Handle key) {
        return crypto_init(session, mech, key, true);
    }
    /// Single-part sign, with digest()'s length-query and short-buffer rules.
    [[nodiscard]] Result<std::size_t> sign(Handle session, std::span<const std::byte> in, std::span<std::byte> out) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Op& op = s->sign;
        if (!op.active) return fail(Errc::operation_not_initialized);
        if (op.multipart) return end(op, fail(Errc::operation_active));
        if (auto q = short_output(out, op.sig_len)) return std::move(*q);
        if (auto r = absorb(op, in); !r) return end(op, fail(r.error()));
        return end(op, finish_sign(op, out));
    }
    [[nodiscard]] Result<void> sign_update(Handle session, std::span<const std::byte> in) {
        return crypto_update(session, in, true);
    }
    [[nodiscard]] Result<std::size_t> sign_final(Handle session, std::span<std::byte> out) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Op& op = s->sign;
        if (!op.active) return fail(Errc::operation_not_initialized);
        if (auto q = short_output(out, op.sig_len)) return std::move(*q);
        return end(op, finish_sign(op, out));
    }

    [[nodiscard]] Result<void> verify_init(Handle session, const CK_MECHANISM& mech, Handle key) {
        return crypto_init(session, mech, key, false);
    }
    [[nodiscard]] Result<void> verify(Handle session, std::span<const std::byte> in, std::span<const std::byte> sig) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Op& op = s->verify;
        if (!op.active) return fail(Errc::operation_not_initialized);
        if (op.multipart) return end(op, fail(Errc::operation_active));
        if (auto r = absorb(op, in); !r) return end(op, fail(r.error()));
        return end(op, finish_verify(op, sig));
    }
    [[nodiscard]] Result<void> verify_update(Handle session, std::span<const std::byte> in) {
        return crypto_update(session, in, false);
    }
    [[nodiscard]] Result<void> verify_final(Handle session, std::span<const std::byte> sig) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Op& op = s->verify;
        if (!op.active) return fail(Errc::operation_not_initialized);
        return end(op, finish_verify(op, sig));
    }

    /// End a session's digest, sign or verify operation without a result, for a call the
    /// Cryptoki layer refused before reaching the token: in PKCS#11 an error from C_Digest*,
    /// C_Sign* or C_Verify* ends the operation (v2.40 §5.10-§5.12), CKR_BUFFER_TOO_SMALL aside.
    /// Nothing happens for an unknown session or an operation not active.
    void end_digest(Handle session) { end_op(session, &Session::digest); }
    void end_sign(Handle session) { end_op(session, &Session::sign); }
    void end_verify(Handle session) { end_op(session, &Session::verify); }

    // --- key generation and random ------------------------------------------------------------

    struct KeyPair {
        Handle public_key;
        Handle private_key;
    };

    /// C_GenerateKeyPair for CKM_EC_KEY_PAIR_GEN (CKA_EC_PARAMS in the public template) and
    /// CKM_RSA_PKCS_KEY_PAIR_GEN (CKA_MODULUS_BITS, optional CKA_PUBLIC_EXPONENT). The private
    /// key is generated inside the token and is sensitive and not extractable by default.
    [[nodiscard]] Result<KeyPair> generate_key_pair(Handle session, const CK_MECHANISM& mech,
                                                    std::span<const CK_ATTRIBUTE> pub_tmpl,
                                                    std::span<const CK_ATTRIBUTE> priv_tmpl) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        CK_KEY_TYPE kt;
        if (mech.mechanism == CKM_EC_KEY_PAIR_GEN) kt = CKK_EC;
        else if (mech.mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN) kt = CKK_RSA;
        else return fail(Errc::mechanism_invalid);
        if (mech.pParameter || mech.ulParameterLen) return fail(Errc::mechanism_param_invalid);
        const token::Kind pub_kind{CKO_PUBLIC_KEY, kt}, priv_kind{CKO_PRIVATE_KEY, kt};
        P11TLS_TRY(token::classify(pub_tmpl, pub_kind));
        P11TLS_TRY(token::classify(priv_tmpl, priv_kind));
        P11TLS_TRY(token::check_template(pub_kind, pub_tmpl, token::Mode::generate));
        P11TLS_TRY(token::check_template(priv_kind, priv_tmpl, token::Mode::generate));
        P11TLS_TRY(check_create_rights(*s, pub_tmpl, pub_kind));
        P11TLS_TRY(check_create_rights(*s, priv_tmpl, priv_kind));
        // Fresh entropy for every key: a source that failed since the last reseed stops key
        // generation now, not one reseed interval later.
        P11TLS_TRY(drbg_.reseed({}));

        // Both objects are built in scratch_ (public first, private after it).
        const std::size_t half = scratch_.size() / 2;
        std::span<std::byte> buf(scratch_);
        token::AttrWriter pub(buf.first(half));
        token::AttrWriter priv(buf.subspan(half));
        token::write_template(pub, pub_kind, pub_tmpl);
        token::write_template(priv, priv_kind, priv_tmpl);
        Result<void> gen = kt == CKK_EC ? generate_ec(pub_tmpl, pub, priv) : generate_rsa(pub_tmpl, pub, priv);
        if (!gen) {
            mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
            return fail(gen.error());
        }
        add_origin(pub, pub_kind, mech.mechanism);
        add_origin(priv, priv_kind, mech.mechanism);
        token::write_defaults(pub, pub_kind);
        token::write_defaults(priv, priv_kind);
        if (!pub.ok() || !priv.ok()) {
            mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
            return fail(Errc::token_full);
        }
        auto h_pub = insert(pub.written(), session);
        if (!h_pub) {
            mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
            return fail(h_pub.error());
        }
        auto h_priv = insert(priv.written(), session);
        mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
        if (!h_priv) {
            Object* o = object_ptr(*h_pub);
            if (o->token) (void)nvm_.remove(o->record);
            release(*o);
            return fail(h_priv.error());
        }
        return KeyPair{*h_pub, *h_priv};
    }

    [[nodiscard]] Result<void> generate_random(Handle session, std::span<std::byte> out) {
        std::lock_guard lock(mutex_);
        if (!session_ptr(session)) return fail(Errc::session_handle_invalid);
        return drbg_.fill(out);
    }

    /// C_SeedRandom: mixes caller bytes into the DRBG with a reseed from the entropy source;
    /// caller bytes never replace entropy.
    [[nodiscard]] Result<void> seed_random(Handle session, std::span<const std::byte> seed) {
        std::lock_guard lock(mutex_);
        if (!session_ptr(session)) return fail(Errc::session_handle_invalid);
        return drbg_.reseed(seed);
    }

private:
    enum class Who : std::uint8_t { none, user, so };

    // Zeroizes a working buffer when the scope ends, on every path.
    struct Scrub {
        std::span<std::byte> buf;
        ~Scrub() { mbedtls_platform_zeroize(buf.data(), buf.size()); }
    };

    struct Meta {
        bool initialized = false;
        bool user_pin_set = false;
        char label[32];
        char serial[16];
        std::uint32_t iterations = Config::pin_iterations;
        std::byte so_salt[16]{}, so_hash[32]{}, user_salt[16]{}, user_hash[32]{};
        std::uint32_t so_failures = 0, user_failures = 0;
    };
    static constexpr std::size_t meta_size = 4 + 4 + 4 + 32 + 16 + 4 + 16 + 32 + 16 + 32 + 4 + 4;

    struct Object {
        bool used = false;
        bool token = false;
        bool priv = false;
        std::uint16_t gen = 0;
        RecordId record = 0;
        Handle owner = 0;  // session that created a session object
        std::size_t len = 0;
        std::array<std::byte, Config::max_object_size> data;
    };

    struct Op {
        bool active = false;
        bool multipart = false;
        bool sign = false;
        const token::MechanismInfo* mech = nullptr;
        Handle key = 0;
        std::size_t sig_len = 0;
        detail::mbed::RsaScheme rsa;
        detail::mbed::Md md;
        std::size_t buf_len = 0;
        std::array<std::byte, 512> buf;  // raw input for mechanisms that do not hash
    };
    struct Find {
        bool active = false;
        std::size_t count = 0, pos = 0;
        std::array<Handle, Config::max_objects> hits;
    };
    struct Session {
        bool used = false;
        bool rw = false;
        std::uint16_t gen = 0;
        Find find;
        Op sign, verify;
        Op digest;
    };

    // Handles carry a generation so a stale handle is rejected rather than aliasing a new
    // object in a reused slot.
    static Handle make_handle(std::size_t index, std::uint16_t gen) noexcept {
        return (Handle{gen} << 16) | static_cast<Handle>(index + 1);
    }
    static std::uint16_t next_gen(std::uint16_t g) noexcept { return static_cast<std::uint16_t>(g % 0x7FFF + 1); }
    template <class T, std::size_t M>
    static T* slot(std::array<T, M>& a, Handle h) noexcept {
        std::size_t idx = (h & 0xFFFF);
        if (idx == 0 || idx > M || (h >> 16) > 0xFFFF) return nullptr;
        T& t = a[idx - 1];
        return t.used && t.gen == (h >> 16) ? &t : nullptr;
    }
    Session* session_ptr(Handle h) noexcept { return slot(sessions_, h); }
    Object* object_ptr(Handle h) noexcept {
        Object* o = slot(objects_, h);
        return o && visible(*o) ? o : nullptr;
    }
    bool user_ok() const noexcept { return login_ == Who::user || !Config::login_required; }
    bool visible(const Object& o) const noexcept { return !o.priv || user_ok(); }
    token::AttrList list(const Object& o) const noexcept { return token::AttrList({o.data.data(), o.len}); }

    template <std::size_t M>
    static void pad(unsigned char (&field)[M], const char* text) noexcept {
        std::memset(field, ' ', M);
        std::size_t n = std::strlen(text);
        std::memcpy(field, text, n < M ? n : M);
    }
    static CK_FLAGS pin_flags(std::uint32_t failures, CK_FLAGS low, CK_FLAGS final_try, CK_FLAGS locked) noexcept {
        if (failures == 0) return 0;
        if (failures >= Config::max_pin_failures) return locked;
        if (failures + 1 == Config::max_pin_failures) return low | final_try;
        return low;
    }

    static Result<void> check_pin_len(std::span<const char> pin) noexcept {
        if (pin.size() < Config::min_pin_len || pin.size() > Config::max_pin_len) return fail(Errc::pin_len_range);
        return {};
    }

    Result<void> fresh_pin_hash(std::span<const char> pin, std::byte (&salt)[16], std::byte (&hash)[32]) {
        P11TLS_TRY(drbg_.fill(salt));
        return detail::mbed::pbkdf2_sha256(std::as_bytes(pin), salt, meta_.iterations, hash);
    }

    // The failure counter is raised in the Nvm before the PIN is checked, so cutting the power
    // during a guess still counts the guess.
    Result<void> verify_pin(std::span<const char> pin, Who who) {
        std::uint32_t& failures = who == Who::so ? meta_.so_failures : meta_.user_failures;
        if (failures >= Config::max_pin_failures) return fail(Errc::pin_locked);
        if (pin.size() > Config::max_pin_len) return fail(Errc::pin_incorrect);
        Meta m = meta_;
        (who == Who::so ? m.so_failures : m.user_failures) = failures + 1;
        P11TLS_TRY(commit_meta(m));
        std::byte hash[32];
        P11TLS_TRY(detail::mbed::pbkdf2_sha256(std::as_bytes(pin), who == Who::so ? meta_.so_salt : meta_.user_salt,
                                               meta_.iterations, hash));
        const std::byte* want = who == Who::so ? meta_.so_hash : meta_.user_hash;
        unsigned char diff = 0;
        for (std::size_t i = 0; i < sizeof hash; ++i) diff |= std::to_integer<unsigned char>(hash[i] ^ want[i]);
        mbedtls_platform_zeroize(hash, sizeof hash);
        if (diff != 0) return fail(Errc::pin_incorrect);
        m = meta_;
        (who == Who::so ? m.so_failures : m.user_failures) = 0;
        return commit_meta(m);
    }

    void logout_all() noexcept {
        const bool user = login_ == Who::user;
        login_ = Who::none;
        // Operations started with private keys lose their right to continue.
        for (auto& s : sessions_) {
            if (!s.used) continue;
            if (s.find.active) s.find.active = false;
            end_ops(s);
        }
        // v2.40 §5.6.8: private session objects are destroyed, and handles to private objects
        // stay invalid even after the user logs in again, so private token objects take a new
        // generation (new handles, found again by a search). Without login_required private
        // objects never depended on the login.
        if (!user || !Config::login_required) return;
        for (Object& o : objects_) {
            if (!o.used || !o.priv) continue;
            if (o.token) o.gen = next_gen(o.gen);
            else release(o);
        }
    }

    void close(Session& s, Handle h) noexcept {
        end_ops(s);
        s.find.active = false;
        for (Object& o : objects_)
            if (o.used && !o.token && o.owner == h) release(o);
        s.used = false;
        bool any = false;
        for (const auto& t : sessions_) any |= t.used;
        if (!any) login_ = Who::none;
    }
    void end_op(Handle session, Op Session::*which) {
        std::lock_guard lock(mutex_);
        if (Session* s = session_ptr(session)) end(s->*which);
    }
    void end_ops(Session& s) noexcept {
        end(s.sign);
        end(s.verify);
        end(s.digest);
    }
    static void end(Op& op) noexcept {
        op.active = false;
        op.multipart = false;
        op.md.reset();
        mbedtls_platform_zeroize(op.buf.data(), op.buf_len);
        op.buf_len = 0;
    }
    template <class R>
    static R end(Op& op, R r) noexcept {
        end(op);
        return r;
    }

    // The answer when `out` cannot take a result of `len` bytes: the length itself for a
    // length query (out.data() == nullptr; the operation stays active), or buffer_too_small
    // carrying the length in `native`. nullopt when `out` is big enough.
    static std::optional<Result<std::size_t>> short_output(std::span<std::byte> out, std::size_t len) noexcept {
        if (out.data() == nullptr) return Result<std::size_t>(len);
        if (out.size() < len) return Result<std::size_t>(fail(Errc::buffer_too_small, static_cast<std::int32_t>(len)));
        return std::nullopt;
    }

    // --- state persistence ---

    void encode_meta(const Meta& m, std::byte* p) const noexcept {
        std::memcpy(p, "P11M", 4);
        detail::put_le32(p + 4, 1);
        detail::put_le32(p + 8, (m.initialized ? 1u : 0u) | (m.user_pin_set ? 2u : 0u));
        std::memcpy(p + 12, m.label, 32);
        std::memcpy(p + 44, m.serial, 16);
        detail::put_le32(p + 60, m.iterations);
        std::memcpy(p + 64, m.so_salt, 16);
        std::memcpy(p + 80, m.so_hash, 32);
        std::memcpy(p + 112, m.user_salt, 16);
        std::memcpy(p + 128, m.user_hash, 32);
        detail::put_le32(p + 160, m.so_failures);
        detail::put_le32(p + 164, m.user_failures);
    }
    static_assert(Config::pin_iterations >= 1000 && Config::pin_iterations <= Config::max_pin_iterations,
                  "SoftTokenConfig: pin_iterations must be between 1000 and max_pin_iterations");
    static bool decode_meta(const std::byte* p, Meta& m) noexcept {
        if (std::memcmp(p, "P11M", 4) != 0 || detail::get_le32(p + 4) != 1) return false;
        std::uint32_t flags = detail::get_le32(p + 8);
        m.initialized = flags & 1u;
        m.user_pin_set = flags & 2u;
        std::memcpy(m.label, p + 12, 32);
        std::memcpy(m.serial, p + 44, 16);
        m.iterations = detail::get_le32(p + 60);
        std::memcpy(m.so_salt, p + 64, 16);
        std::memcpy(m.so_hash, p + 80, 32);
        std::memcpy(m.user_salt, p + 112, 16);
        std::memcpy(m.user_hash, p + 128, 32);
        m.so_failures = detail::get_le32(p + 160);
        m.user_failures = detail::get_le32(p + 164);
        return m.iterations >= 1000 && m.iterations <= Config::max_pin_iterations;
    }
    Result<void> commit_meta(const Meta& m) {
        std::byte buf[meta_size];
        encode_meta(m, buf);
        P11TLS_TRY(nvm_.store(meta_record, buf));
        meta_ = m;
        return {};
    }
    Result<void> load_meta() {
        std::byte buf[meta_size];
        auto r = nvm_.load(meta_record, buf);
        if (r && *r == meta_size && decode_meta(buf, meta_)) return {};
        if (r || r.error().code != Errc::nvm_not_found) return fail(Errc::nvm_corrupt, r ? 0 : r.error().native);
        // A blank store: a new, uninitialized token with a random serial number.
        Meta m;
        std::memset(m.label, ' ', sizeof m.label);
        std::byte rnd[8];
        P11TLS_TRY(drbg_.fill(rnd));
        static constexpr char hex[] = "0123456789abcdef";
        for (int i = 0; i < 8; ++i) {
            m.serial[2 * i] = hex[std::to_integer<int>(rnd[i]) >> 4];
            m.serial[2 * i + 1] = hex[std::to_integer<int>(rnd[i]) & 15];
        }
        return commit_meta(m);
    }

    static constexpr std::size_t record_header = 4;  // "O", format version, 2 reserved bytes

    Result<void> load_objects() {
        std::array<RecordId, Config::max_objects + 16> ids;
        auto n = nvm_.list(ids);
        if (!n) return fail(n.error() == Error{Errc::buffer_too_small} ? Errc::token_full : n.error().code);
        for (std::size_t i = 0; i < *n; ++i) {
            if (ids[i] == meta_record || ids[i] >= first_platform_record) continue;
            Object* o = free_object();
            if (!o) return fail(Errc::token_full);
            auto len = nvm_.load(ids[i], scratch_);
            if (!len || *len < record_header || scratch_[0] != std::byte{'O'} || scratch_[1] != std::byte{1} ||
                *len - record_header > o->data.size() ||
                !token::AttrList::valid(std::span(scratch_).subspan(record_header, *len - record_header)) ||
                !token::supported_kind(token::kind_of(token::AttrList(std::span(scratch_).subspan(record_header, *len - record_header))))) {
                ++corrupt_;
                continue;
            }
            assign(*o, std::span(scratch_).subspan(record_header, *len - record_header));
            o->used = true;
            o->token = true;
            o->record = ids[i];
            o->gen = next_gen(o->gen);
        }
        mbedtls_platform_zeroize(scratch_.data(), scratch_.size());
        return {};
    }

    Result<void> persist(RecordId id, std::span<const std::byte> attrs) {
        if (attrs.size() + record_header > N::max_record_size) return fail(Errc::token_full);
        // Reuses the tail of scratch_ when attrs live in it; otherwise a stack frame is fine.
        std::array<std::byte, Config::max_object_size + record_header> rec;
        rec[0] = std::byte{'O'};
        rec[1] = std::byte{1};
        rec[2] = rec[3] = std::byte{0};
        std::memcpy(rec.data() + record_header, attrs.data(), attrs.size());
        auto r = nvm_.store(id, std::span(rec).first(attrs.size() + record_header));
        mbedtls_platform_zeroize(rec.data(), rec.size());
        return r;
    }

    Object* free_object() noexcept {
        for (Object& o : objects_)
            if (!o.used) return &o;
        return nullptr;
    }
    void assign(Object& o, std::span<const std::byte> attrs) noexcept {
        if (o.len > attrs.size()) mbedtls_platform_zeroize(o.data.data() + attrs.size(), o.len - attrs.size());
        std::memmove(o.data.data(), attrs.data(), attrs.size());
        o.len = attrs.size();
        o.priv = list(o).flag(CKA_PRIVATE, false);
    }
    void release(Object& o) noexcept {
        mbedtls_platform_zeroize(o.data.data(), o.len);
        o.len = 0;
        o.used = false;
        o.token = false;
    }

    // Picks an unused record id: not held by a loaded object nor present in the Nvm (a record
    // skipped as corrupt keeps its id and is never overwritten).
    Result<RecordId> free_record() {
        for (RecordId id = 1; id < 0x10000; ++id) {
            bool taken = false;
            for (const Object& o : objects_) taken |= o.used && o.token && o.record == id;
            if (taken) continue;
            auto s = nvm_.size(id);
            if (!s && s.error().code == Errc::nvm_not_found) return id;
        }
        return fail(Errc::token_full);
    }

    Result<Handle> insert(std::span<const std::byte> attrs, Handle session) {
        Object* o = free_object();
        if (!o) return fail(Errc::token_full);
        if (attrs.size() > o->data.size()) return fail(Errc::token_full);
        bool is_token = token::AttrList(attrs).flag(CKA_TOKEN, false);
        RecordId rec = 0;
        if (is_token) {
            auto id = free_record();
            if (!id) return fail(id.error());
            rec = *id;
            P11TLS_TRY(persist(rec, attrs));
        }
        assign(*o, attrs);
        o->used = true;
        o->token = is_token;
        o->record = rec;
        o->owner = is_token ? 0 : session;
        o->gen = next_gen(o->gen);
        return make_handle(static_cast<std::size_t>(o - objects_.data()), o->gen);
    }

    // --- object creation rules ---

    Result<void> check_create_rights(const Session& s, std::span<const CK_ATTRIBUTE> tmpl, token::Kind k) const {
        auto flag = [&](CK_ATTRIBUTE_TYPE t, bool dflt) {
            const CK_ATTRIBUTE* a = token::find_in(tmpl, t);
            return a ? *static_cast<const CK_BBOOL*>(a->pValue) != CK_FALSE : dflt;
        };
        if (flag(CKA_TOKEN, false) && !s.rw) return fail(Errc::session_read_only);
        if (flag(CKA_PRIVATE, k.cls == CKO_PRIVATE_KEY) && !user_ok()) return fail(Errc::user_not_logged_in);
        if (flag(CKA_TRUSTED, false) && login_ != Who::so) return fail(Errc::attribute_read_only);
        return {};
    }

    static std::span<const std::byte> value_of(std::span<const CK_ATTRIBUTE> tmpl, CK_ATTRIBUTE_TYPE t) noexcept {
        const CK_ATTRIBUTE* a = token::find_in(tmpl, t);
        if (!a) return {};
        return {static_cast<const std::byte*>(a->pValue), static_cast<std::size_t>(a->ulValueLen)};
    }

    // Checks that key material and certificates are what they claim before they are stored.
    static Result<void> check_values(token::Kind k, std::span<const CK_ATTRIBUTE> tmpl) {
        namespace m = detail::mbed;
        if (k.cls == CKO_CERTIFICATE) {
            auto type = token::ulong_in(tmpl, CKA_CERTIFICATE_TYPE);
            if (!type || !*type || **type != CKC_X_509) return fail(Errc::attribute_value_invalid);
            return m::x509_parts(value_of(tmpl, CKA_VALUE), [](void*, m::CertPart, std::span<const std::byte>) {}, nullptr);
        }
        if (k.key_type == CKK_EC) {
            auto curve = m::curve_from_params(value_of(tmpl, CKA_EC_PARAMS));
            if (!curve) return fail(Errc::attribute_value_invalid);
            if (k.cls == CKO_PRIVATE_KEY) P11TLS_TRY(m::ec_check_private(*curve, value_of(tmpl, CKA_VALUE)));
            if (token::find_in(tmpl, CKA_EC_POINT)) {
                auto raw = m::ec_point_raw(*curve, value_of(tmpl, CKA_EC_POINT));
                if (!raw) return fail(raw.error());
                P11TLS_TRY(m::ec_check_public(*curve, *raw));
            }
        } else if (k.key_type == CKK_RSA) {
            if (k.cls == CKO_PUBLIC_KEY) {
                auto bits = m::rsa_check_public(value_of(tmpl, CKA_MODULUS), value_of(tmpl, CKA_PUBLIC_EXPONENT));
                if (!bits) return fail(bits.error());
            } else {
                P11TLS_TRY(m::rsa_check_private({value_of(tmpl, CKA_MODULUS), value_of(tmpl, CKA_PUBLIC_EXPONENT),
                                                 value_of(tmpl, CKA_PRIVATE_EXPONENT), value_of(tmpl, CKA_PRIME_1),
                                                 value_of(tmpl, CKA_PRIME_2)}));
            }
        }
        return {};
    }

    // Attributes the token derives from the value: certificate names and serial, RSA size.
    static Result<void> add_derived(token::AttrWriter& w, token::Kind k) {
        token::AttrList l(w.written());
        if (k.cls == CKO_CERTIFICATE) {
            return detail::mbed::x509_parts(
                *l.find(CKA_VALUE),
                [](void* ctx, detail::mbed::CertPart part, std::span<const std::byte> der) {
                    auto& wr = *static_cast<token::AttrWriter*>(ctx);
                    CK_ATTRIBUTE_TYPE t = part == detail::mbed::CertPart::subject  ? CKA_SUBJECT
                                          : part == detail::mbed::CertPart::issuer ? CKA_ISSUER
                                                                                   : CKA_SERIAL_NUMBER;
                    if (!wr.has(t)) wr.add(t, der);
                },
                &w);
        }
        if (k.cls == CKO_PUBLIC_KEY && k.key_type == CKK_RSA) {
            auto n = *l.find(CKA_MODULUS);
            std::size_t lead = 0;
            while (lead < n.size() && n[lead] == std::byte{0}) ++lead;
            std::size_t bits = (n.size() - lead) * 8;
            if (lead < n.size())
                for (auto b = std::to_integer<unsigned>(n[lead]); b < 0x80; b <<= 1) --bits;
            w.add_ulong(CKA_MODULUS_BITS, bits);
        }
        return {};
    }

    static void add_origin(token::AttrWriter& w, token::Kind k, CK_MECHANISM_TYPE gen_mech) {
        if (k.cls != CKO_PUBLIC_KEY && k.cls != CKO_PRIVATE_KEY) return;
        const bool generated = gen_mech != CK_UNAVAILABLE_INFORMATION;
        w.add_bool(CKA_LOCAL, generated);
        w.add_ulong(CKA_KEY_GEN_MECHANISM, gen_mech);
        if (k.cls == CKO_PRIVATE_KEY) {
            token::AttrList l(w.written());
            w.add_bool(CKA_ALWAYS_SENSITIVE, generated && l.flag(CKA_SENSITIVE, true));
            w.add_bool(CKA_NEVER_EXTRACTABLE, generated && !l.flag(CKA_EXTRACTABLE, false));
        }
    }

    Result<void> generate_ec(std::span<const CK_ATTRIBUTE> pub_tmpl, token::AttrWriter& pub, token::AttrWriter& priv) {
        namespace m = detail::mbed;
        auto params = value_of(pub_tmpl, CKA_EC_PARAMS);
        auto curve = m::curve_from_params(params);
        if (!curve) return fail(params.empty() ? Errc::template_incomplete : Errc::attribute_value_invalid);
        if (!priv.has(CKA_EC_PARAMS)) priv.add(CKA_EC_PARAMS, params);
        else if (!std::ranges::equal(*token::AttrList(priv.written()).find(CKA_EC_PARAMS), params))
            return fail(Errc::template_inconsistent);
        std::byte d[48], point[97], der[99];
        const std::size_t cb = m::curve_bytes(*curve);
        auto r = m::ec_generate(groups_, *curve, drbg_.rng(), std::span(d).first(cb), std::span(point).first(1 + 2 * cb));
        if (r) {
            std::size_t n = m::ec_point_der(std::span(point).first(1 + 2 * cb), der);
            pub.add(CKA_EC_POINT, std::span(der).first(n));
            priv.add(CKA_EC_POINT, std::span(der).first(n));
            priv.add(CKA_VALUE, std::span(d).first(cb));
        }
        mbedtls_platform_zeroize(d, sizeof d);
        return r;
    }

    Result<void> generate_rsa(std::span<const CK_ATTRIBUTE> pub_tmpl, token::AttrWriter& pub, token::AttrWriter& priv) {
        namespace m = detail::mbed;
        auto bits = token::ulong_in(pub_tmpl, CKA_MODULUS_BITS);
        if (!bits) return fail(bits.error());
        if (**bits != 2048 && **bits != 3072 && **bits != 4096) return fail(Errc::key_size_range);
        std::uint32_t e = 65537;
        if (auto ev = value_of(pub_tmpl, CKA_PUBLIC_EXPONENT); !ev.empty()) {
            if (ev.size() > 4) return fail(Errc::attribute_value_invalid);
            e = 0;
            for (std::byte b : ev) e = (e << 8) | std::to_integer<std::uint32_t>(b);
        }
        struct Sinks {
            token::AttrWriter* pub;
            token::AttrWriter* priv;
        } sinks{&pub, &priv};
        P11TLS_TRY(m::rsa_generate(static_cast<unsigned>(**bits), e, drbg_.rng(),
                                   [](void* ctx, m::RsaPart part, std::span<const std::byte> v) {
                                       auto& s = *static_cast<Sinks*>(ctx);
                                       static constexpr CK_ATTRIBUTE_TYPE types[] = {
                                           CKA_MODULUS,  CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                           CKA_PRIME_2,  CKA_EXPONENT_1,      CKA_EXPONENT_2,       CKA_COEFFICIENT};
                                       auto t = types[static_cast<int>(part)];
                                       if (t == CKA_MODULUS || t == CKA_PUBLIC_EXPONENT) {
                                           if (!s.pub->has(t)) s.pub->add(t, v);
                                       }
                                       s.priv->add(t, v);
                                   },
                                   &sinks));
        pub.add_ulong(CKA_MODULUS_BITS, **bits);
        return {};
    }

    // --- sign / verify plumbing ---

    Result<void> crypto_init(Handle session, const CK_MECHANISM& mech, Handle key, bool sign) {
        namespace m = detail::mbed;
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Op& op = sign ? s->sign : s->verify;
        if (op.active) return fail(Errc::operation_active);
        const token::MechanismInfo* mi = token::find_sign_mechanism(mech.mechanism);
        if (!mi) return fail(Errc::mechanism_invalid);
        Object* o = object_ptr(key);
        if (!o) return fail(Errc::key_handle_invalid);
        token::AttrList l = list(*o);
        token::Kind k = token::kind_of(l);
        // v2.40 §5.1.6: a valid handle of an object that is not a key is CKR_KEY_HANDLE_INVALID.
        if (k.cls != CKO_PRIVATE_KEY && k.cls != CKO_PUBLIC_KEY && k.cls != CKO_SECRET_KEY)
            return fail(Errc::key_handle_invalid);
        if (k.cls != (sign ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY) || k.key_type != mi->key_type)
            return fail(Errc::key_type_inconsistent);
        if (!l.flag(sign ? CKA_SIGN : CKA_VERIFY, true)) return fail(Errc::key_function_not_permitted);
        // A non-empty CKA_ALLOWED_MECHANISMS lists the only mechanisms the key may be used with.
        if (auto allowed = l.find(CKA_ALLOWED_MECHANISMS); allowed && !allowed->empty()) {
            bool listed = false;
            for (std::size_t i = 0; i + 4 <= allowed->size(); i += 4)  // stored as u32 entries
                listed |= detail::get_le32(allowed->data() + i) == mech.mechanism;
            if (!listed) return fail(Errc::mechanism_invalid);
        }

        m::RsaScheme scheme;
        scheme.md = mi->hash;
        if (mi->pss) {
            if (!mech.pParameter || mech.ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
                return fail(Errc::mechanism_param_invalid);
            CK_RSA_PKCS_PSS_PARAMS p;
            std::memcpy(&p, mech.pParameter, sizeof p);
            auto h = token::digest_md(p.hashAlg);
            auto g = token::mgf_md(p.mgf);
            if (!h || !g || (mi->hash != MBEDTLS_MD_NONE && *h != mi->hash)) return fail(Errc::mechanism_param_invalid);
            scheme = {m::RsaPad::pss, *h, *g, static_cast<std::size_t>(p.sLen)};
        } else if (mech.pParameter || mech.ulParameterLen) {
            return fail(Errc::mechanism_param_invalid);
        }
        std::size_t sig_len;
        if (k.key_type == CKK_EC) {
            auto curve = m::curve_from_params(l.find(CKA_EC_PARAMS).value_or(std::span<const std::byte>{}));
            if (!curve) return fail(Errc::key_handle_invalid);
            sig_len = 2 * m::curve_bytes(*curve);
        } else {
            auto n = l.find(CKA_MODULUS).value_or(std::span<const std::byte>{});
            std::size_t lead = 0;
            while (lead < n.size() && n[lead] == std::byte{0}) ++lead;
            sig_len = n.size() - lead;
        }
        end(op);
        if (mi->hash != MBEDTLS_MD_NONE) P11TLS_TRY(op.md.start(mi->hash));
        op.active = true;
        op.sign = sign;
        op.mech = mi;
        op.key = key;
        op.rsa = scheme;
        op.sig_len = sig_len;
        return {};
    }

    Result<void> crypto_update(Handle session, std::span<const std::byte> in, bool sign) {
        std::lock_guard lock(mutex_);
        Session* s = session_ptr(session);
        if (!s) return fail(Errc::session_handle_invalid);
        Op& op = sign ? s->sign : s->verify;
        if (!op.active) return fail(Errc::operation_not_initialized);
        op.multipart = true;
        if (auto r = absorb(op, in); !r) return end(op, r);
        return {};
    }

    static Result<void> absorb(Op& op, std::span<const std::byte> in) {
        if (op.mech->hash != MBEDTLS_MD_NONE) return op.md.update(in);
        if (in.size() > op.buf.size() - op.buf_len) return fail(Errc::data_len_range);
        std::memcpy(op.buf.data() + op.buf_len, in.data(), in.size());
        op.buf_len += in.size();
        return {};
    }

    // The input the key operation sees: the hash computed here, or the raw bytes given.
    Result<std::span<const std::byte>> message(Op& op, std::span<std::byte, 64> hash_buf) {
        if (op.mech->hash == MBEDTLS_MD_NONE) {
            std::span<const std::byte> in(op.buf.data(), op.buf_len);
            if (op.mech->key_type == CKK_EC && (in.empty() || in.size() > 64)) return fail(Errc::data_len_range);
            return in;
        }
        const std::size_t n = detail::mbed::md_size(op.mech->hash);
        P11TLS_TRY(op.md.finish(hash_buf.first(n)));
        return std::span<const std::byte>(hash_buf.first(n));
    }

    Result<std::size_t> finish_sign(Op& op, std::span<std::byte> out) {
        namespace m = detail::mbed;
        Object* o = object_ptr(op.key);
        if (!o) return fail(Errc::key_handle_invalid);
        token::AttrList l = list(*o);
        std::byte hash_buf[64];
        auto msg = message(op, hash_buf);
        if (!msg) return fail(msg.error());
        auto get = [&](CK_ATTRIBUTE_TYPE t) { return l.find(t).value_or(std::span<const std::byte>{}); };
        if (op.mech->key_type == CKK_EC) {
            auto curve = m::curve_from_params(get(CKA_EC_PARAMS));
            P11TLS_TRY(m::ec_sign(groups_, *curve, get(CKA_VALUE), *msg, out.first(op.sig_len), drbg_.rng()));
            return op.sig_len;
        }
        return m::rsa_sign({get(CKA_MODULUS), get(CKA_PUBLIC_EXPONENT), get(CKA_PRIVATE_EXPONENT), get(CKA_PRIME_1),
                            get(CKA_PRIME_2)},
                           op.rsa, *msg, out, drbg_.rng());
    }

    Result<void> finish_verify(Op& op, std::span<const std::byte> sig) {
        namespace m = detail::mbed;
        Object* o = object_ptr(op.key);
        if (!o) return fail(Errc::key_handle_invalid);
        token::AttrList l = list(*o);
        if (sig.size() != op.sig_len) return fail(Errc::signature_len_range);
        std::byte hash_buf[64];
        auto msg = message(op, hash_buf);
        if (!msg) return fail(msg.error());
        auto get = [&](CK_ATTRIBUTE_TYPE t) { return l.find(t).value_or(std::span<const std::byte>{}); };
        if (op.mech->key_type == CKK_EC) {
            auto curve = m::curve_from_params(get(CKA_EC_PARAMS));
            auto raw = m::ec_point_raw(*curve, get(CKA_EC_POINT));
            if (!raw) return fail(Errc::key_handle_invalid);
            return m::ec_verify(groups_, *curve, *raw, *msg, sig);
        }
        return m::rsa_verify({get(CKA_MODULUS), get(CKA_PUBLIC_EXPONENT), {}, {}, {}}, op.rsa, *msg, sig);
    }

    // --- search ---

    bool matches(const Object& o, std::span<const CK_ATTRIBUTE> tmpl) const noexcept {
        token::AttrList l = list(o);
        for (const CK_ATTRIBUTE& a : tmpl) {
            auto want = token::canonical(a);
            auto have = l.find(a.type);
            if (!have || token::hidden(l, a.type)) return false;
            if (have->size() != want->value.size() ||
                (!have->empty() && std::memcmp(have->data(), want->value.data(), have->size()) != 0))
                return false;
        }
        return true;
    }

    N nvm_;
    E entropy_;
    detail::mbed::Drbg<E> drbg_;
    detail::mbed::EcGroups groups_;
    typename Config::Mutex mutex_;
    Meta meta_{};
    Who login_ = Who::none;
    std::size_t corrupt_ = 0;
    std::array<Object, Config::max_objects> objects_{};
    std::array<Session, Config::max_sessions> sessions_{};
    std::array<std::byte, 2 * Config::max_object_size> scratch_{};
};

}  // namespace p11tls
