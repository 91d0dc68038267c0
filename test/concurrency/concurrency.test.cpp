// SPDX-License-Identifier: MIT
// Concurrency through the Cryptoki C ABI: 8 threads x 1,000 mixed operations (sign, verify,
// find, create, destroy, attribute reads, session open/close) on ONE token, once over a
// SoftToken in this process (cryptoki::Module, RamNvm store) and once through the built
// libp11tls-pkcs11.so loaded with dlopen (FileNvm store in a temp dir via P11TLS_STORE).
//
// Each thread names its objects uniquely (CKA_LABEL "c<thread>-<serial>", CKA_ID the same
// bytes) and records what it created and destroyed, so the expected final object set is known
// whatever the interleaving. Threads never call Catch2 (it is not thread-safe): they record
// failures as text and the main thread asserts on them after the join.
//
// Built into its own executable so that the ThreadSanitizer build (scripts/test.sh, stage 2)
// can build and run it alone.
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/cryptoki/module.hpp>

#include "support/token_fixture.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

constexpr int thread_count = 8;
constexpr int ops_per_thread = 1000;
// Objects a thread keeps alive at most (a key pair counts two): 8 x 5 plus the 6 shared key
// objects stay below the 64-object pool of the default config, which the .so uses.
constexpr std::size_t max_live_per_thread = 5;

// --- the in-process module: SoftToken over a RamNvm that survives C_Finalize ---------------

struct RamProvider {
    using token_type = SoftToken<RamNvm<>, GetrandomEntropy, TestConfig>;
    static inline std::unique_ptr<RamNvm<>> store;

    static Result<token_type*> open() {
        if (!store) store = std::make_unique<RamNvm<>>();
        auto t = std::make_unique<token_type>(*store, GetrandomEntropy{});
        if (auto r = t->load(); !r) return fail(r.error());
        return t.release();
    }
    static void close(token_type* t) noexcept {
        *store = t->nvm();
        delete t;
    }
};
using RamModule = cryptoki::Module<RamProvider>;

// --- small C ABI helpers (no Catch2: threads use them) ------------------------------------

CK_UTF8CHAR* utf8(std::string_view s) { return reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(s.data())); }
CK_ULONG ulen(std::string_view s) { return static_cast<CK_ULONG>(s.size()); }

std::string rv_text(CK_RV rv) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(rv));
    return buf;
}

/// All handles `tmpl` finds in `s`; `rv` gets the first failure, if any.
std::vector<CK_OBJECT_HANDLE> find_objects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, std::vector<CK_ATTRIBUTE> tmpl,
                                           CK_RV& rv) {
    std::vector<CK_OBJECT_HANDLE> all;
    rv = f->C_FindObjectsInit(s, tmpl.empty() ? nullptr : tmpl.data(), static_cast<CK_ULONG>(tmpl.size()));
    if (rv != CKR_OK) return all;
    CK_OBJECT_HANDLE batch[4];
    for (;;) {
        CK_ULONG n = 0;
        rv = f->C_FindObjects(s, batch, 4, &n);
        if (rv != CKR_OK) break;
        if (n == 0) break;
        all.insert(all.end(), batch, batch + n);
    }
    CK_RV fin = f->C_FindObjectsFinal(s);
    if (rv == CKR_OK) rv = fin;
    return all;
}

/// An attribute's bytes by a length query then a read.
CK_RV get_attr(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, Bytes& out) {
    CK_ATTRIBUTE a{t, nullptr, 0};
    CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1);
    if (rv != CKR_OK) return rv;
    out.assign(a.ulValueLen, 0);
    a.pValue = out.data();
    rv = f->C_GetAttributeValue(s, o, &a, 1);
    out.resize(a.ulValueLen);
    return rv;
}

std::string object_label(int thread, unsigned serial) { return "c" + std::to_string(thread) + "-" + std::to_string(serial); }

// --- shared keys every thread signs with ---------------------------------------------------

enum class KeyKind { ec256, ec384, rsa };

struct SignKey {
    KeyKind kind;
    std::string label;
    CK_OBJECT_HANDLE pub = 0, priv = 0;
    Bytes ec_point, n, e;  // public key bytes read through the ABI, for mbedTLS
};

/// What a signature must verify against, checked by mbedTLS after the join.
struct SignatureRecord {
    KeyKind kind;
    CK_MECHANISM_TYPE mech;
    Bytes public_key;  // CKA_EC_POINT, or the modulus
    Bytes e;
    Bytes message;
    Bytes sig;
};

/// One thread's object as it believes it to be.
struct Live {
    std::string label;
    CK_OBJECT_HANDLE handle = 0;      // the data object or the private key
    CK_OBJECT_HANDLE pub = 0;         // key pairs only
    bool key_pair = false;
    Bytes value;                      // data objects
    Bytes ec_point;                   // key pairs
};

struct ThreadResult {
    std::vector<std::string> errors;
    std::vector<Live> live;
    std::vector<std::string> destroyed;
    std::vector<SignatureRecord> signatures;
    unsigned long calls = 0;  // C_ functions called
    unsigned long ops[9] = {};
    void error(std::string s) {
        if (errors.size() < 20) errors.push_back(std::move(s));
    }
};

constexpr const char* op_names[9] = {"sign", "verify", "find", "create", "destroy", "get-attribute", "session", "peek",
                                     "generate"};

/// Other threads' objects, published as (handle << 32 | serial) for the "peek" operation.
struct Published {
    std::atomic<std::uint64_t> slot[thread_count][max_live_per_thread];
};

CK_MECHANISM pss_mechanism(CK_RSA_PKCS_PSS_PARAMS& p) {
    p = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    return {CKM_SHA256_RSA_PKCS_PSS, &p, sizeof p};
}

class Worker {
public:
    Worker(CK_FUNCTION_LIST* f, int index, const std::vector<SignKey>& keys, Published& pub, ThreadResult& out)
        : f_(f), index_(index), keys_(keys), pub_(pub), r_(out), rng_(0x5eed0000u + static_cast<unsigned>(index)) {}

    void run() {
        if (!call(f_->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s_),
                  "C_OpenSession"))
            return;
        for (int i = 0; i < ops_per_thread; ++i) step();
        publish_all();
        call(f_->C_CloseSession(s_), "C_CloseSession");
    }

private:
    bool call(CK_RV rv, const char* what, CK_RV want = CKR_OK) {
        ++r_.calls;
        if (rv == want) return true;
        r_.error("thread " + std::to_string(index_) + ": " + what + " returned " + rv_text(rv) + ", expected " +
                 rv_text(want));
        return false;
    }
    std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

    void step() {
        const std::size_t roll = pick(100);
        int op;
        if (roll < 24) op = 0;
        else if (roll < 36) op = 1;
        else if (roll < 50) op = 2;
        else if (roll < 64) op = 3;
        else if (roll < 76) op = 4;
        else if (roll < 86) op = 5;
        else if (roll < 92) op = 6;
        else if (roll < 97) op = 7;
        else op = 8;
        if ((op == 3 || op == 8) && live_count() + (op == 8 ? 2 : 1) > max_live_per_thread) op = 4;
        if (op == 4 && r_.live.empty()) op = 3;
        ++r_.ops[op];
        switch (op) {
        case 0: sign(); break;
        case 1: verify(); break;
        case 2: find(); break;
        case 3: create(); break;
        case 4: destroy(); break;
        case 5: get_attribute(); break;
        case 6: session(); break;
        case 7: peek(); break;
        case 8: generate(); break;
        }
    }

    std::size_t live_count() const {
        std::size_t n = 0;
        for (const Live& l : r_.live) n += l.key_pair ? 2 : 1;
        return n;
    }

    Bytes message() {
        Bytes m(16 + pick(200));
        for (auto& b : m) b = static_cast<unsigned char>(rng_());
        return m;
    }

    // Signs with a shared key or one of this thread's own key pairs, by a single part call
    // (sometimes after a length query) or by SignUpdate/SignFinal; keeps the signature for
    // the token and mbedTLS to verify.
    void sign() {
        std::vector<const Live*> own;
        for (const Live& l : r_.live)
            if (l.key_pair) own.push_back(&l);
        SignatureRecord rec;
        CK_OBJECT_HANDLE key;
        CK_RSA_PKCS_PSS_PARAMS pss;
        CK_MECHANISM mech{};
        rec.message = message();
        if (!own.empty() && pick(5) == 0) {
            const Live& l = *own[pick(own.size())];
            key = l.handle;
            rec.kind = KeyKind::ec256;
            rec.public_key = l.ec_point;
            mech = {CKM_ECDSA_SHA256, nullptr, 0};
        } else {
            const SignKey& k = keys_[pick(keys_.size())];
            key = k.priv;
            rec.kind = k.kind;
            if (k.kind == KeyKind::rsa) {
                rec.public_key = k.n;
                rec.e = k.e;
                mech = pick(2) ? pss_mechanism(pss) : CK_MECHANISM{CKM_SHA256_RSA_PKCS, nullptr, 0};
            } else {
                rec.public_key = k.ec_point;
                if (pick(2)) {
                    // CKM_ECDSA signs a digest the caller made.
                    rec.message = hash(k.kind == KeyKind::ec256 ? MBEDTLS_MD_SHA256 : MBEDTLS_MD_SHA384, rec.message);
                    mech = {CKM_ECDSA, nullptr, 0};
                } else {
                    mech = {CKM_ECDSA_SHA256, nullptr, 0};
                }
            }
        }
        rec.mech = mech.mechanism;
        if (!call(f_->C_SignInit(s_, &mech, key), "C_SignInit")) return;
        Bytes sig(512);
        CK_ULONG len = sig.size();
        if (mech.mechanism != CKM_ECDSA && pick(3) == 0) {
            const std::size_t half = rec.message.size() / 2;
            if (!call(f_->C_SignUpdate(s_, rec.message.data(), static_cast<CK_ULONG>(half)), "C_SignUpdate")) return;
            if (!call(f_->C_SignUpdate(s_, rec.message.data() + half, static_cast<CK_ULONG>(rec.message.size() - half)),
                      "C_SignUpdate"))
                return;
            if (!call(f_->C_SignFinal(s_, sig.data(), &len), "C_SignFinal")) return;
        } else {
            if (pick(2)) {
                CK_ULONG need = 0;
                if (!call(f_->C_Sign(s_, rec.message.data(), static_cast<CK_ULONG>(rec.message.size()), nullptr, &need),
                          "C_Sign (length)"))
                    return;
                len = need;
            }
            if (!call(f_->C_Sign(s_, rec.message.data(), static_cast<CK_ULONG>(rec.message.size()), sig.data(), &len),
                      "C_Sign"))
                return;
        }
        sig.resize(len);
        rec.sig = std::move(sig);
        if (rec.kind != KeyKind::rsa && rec.sig.size() != 2 * (rec.kind == KeyKind::ec384 ? 48u : 32u))
            r_.error("thread " + std::to_string(index_) + ": ECDSA signature of " + std::to_string(rec.sig.size()) + " bytes");
        r_.signatures.push_back(std::move(rec));
    }

    // The token verifies one of this thread's signatures made with a shared key, and refuses
    // the same signature with one bit flipped.
    void verify() {
        std::vector<std::size_t> shared;
        for (std::size_t i = 0; i < r_.signatures.size(); ++i)
            for (const SignKey& k : keys_)
                if (r_.signatures[i].public_key == (k.kind == KeyKind::rsa ? k.n : k.ec_point)) shared.push_back(i);
        if (shared.empty()) {
            sign();
            return;
        }
        const SignatureRecord& rec = r_.signatures[shared[pick(shared.size())]];
        const SignKey* key = nullptr;
        for (const SignKey& k : keys_)
            if (rec.public_key == (k.kind == KeyKind::rsa ? k.n : k.ec_point)) key = &k;
        CK_RSA_PKCS_PSS_PARAMS pss;
        CK_MECHANISM mech = rec.mech == CKM_SHA256_RSA_PKCS_PSS ? pss_mechanism(pss) : CK_MECHANISM{rec.mech, nullptr, 0};
        Bytes msg = rec.message, sig = rec.sig;
        if (!call(f_->C_VerifyInit(s_, &mech, key->pub), "C_VerifyInit")) return;
        if (!call(f_->C_Verify(s_, msg.data(), static_cast<CK_ULONG>(msg.size()), sig.data(),
                               static_cast<CK_ULONG>(sig.size())),
                  "C_Verify"))
            return;
        sig[pick(sig.size())] ^= static_cast<unsigned char>(1u << pick(8));
        if (!call(f_->C_VerifyInit(s_, &mech, key->pub), "C_VerifyInit")) return;
        call(f_->C_Verify(s_, msg.data(), static_cast<CK_ULONG>(msg.size()), sig.data(), static_cast<CK_ULONG>(sig.size())),
             "C_Verify (tampered)", CKR_SIGNATURE_INVALID);
    }

    // Finds one of this thread's live objects by label (exactly its handle, twice for a key
    // pair) and, when there is one, a destroyed label (nothing).
    void find() {
        CK_RV rv;
        if (!r_.live.empty()) {
            const Live& l = r_.live[pick(r_.live.size())];
            Bytes lab = to_bytes(l.label);
            auto hits = find_objects(f_, s_, {attr(CKA_LABEL, lab)}, rv);
            if (!call(rv, "C_FindObjects")) return;
            std::vector<CK_OBJECT_HANDLE> want{l.handle};
            if (l.key_pair) want.push_back(l.pub);
            std::sort(hits.begin(), hits.end());
            std::sort(want.begin(), want.end());
            if (hits != want) r_.error("thread " + std::to_string(index_) + ": find " + l.label + " found " +
                                       std::to_string(hits.size()) + " handles, not its own");
            CK_OBJECT_CLASS cls = CKO_DATA;
            auto by_id = find_objects(f_, s_, {attr(CKA_ID, lab), attr(CKA_CLASS, cls)}, rv);
            if (!call(rv, "C_FindObjects (id)")) return;
            if (by_id.size() != (l.key_pair ? 0u : 1u))
                r_.error("thread " + std::to_string(index_) + ": find by id " + l.label + " found " + std::to_string(by_id.size()));
        }
        if (!r_.destroyed.empty()) {
            Bytes lab = to_bytes(r_.destroyed[pick(r_.destroyed.size())]);
            auto hits = find_objects(f_, s_, {attr(CKA_LABEL, lab)}, rv);
            if (!call(rv, "C_FindObjects (destroyed)")) return;
            if (!hits.empty()) r_.error("thread " + std::to_string(index_) + ": a destroyed label was found");
        }
    }

    void create() {
        Live l;
        l.label = object_label(index_, serial_++);
        l.value = message();
        Bytes lab = to_bytes(l.label);
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_BBOOL yes = CK_TRUE, priv = pick(2) ? CK_TRUE : CK_FALSE;
        CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_TOKEN, yes), attr(CKA_PRIVATE, priv), attr(CKA_LABEL, lab),
                            attr(CKA_ID, lab), attr(CKA_VALUE, l.value)};
        if (!call(f_->C_CreateObject(s_, t, 6, &l.handle), "C_CreateObject")) return;
        r_.live.push_back(std::move(l));
        publish_all();
    }

    void generate() {
        Live l;
        l.label = object_label(index_, serial_++);
        l.key_pair = true;
        Bytes lab = to_bytes(l.label), params = p256_params();
        CK_BBOOL yes = CK_TRUE;
        CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
        CK_ATTRIBUTE pub[] = {attr(CKA_EC_PARAMS, params), attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab), attr(CKA_VERIFY, yes)};
        CK_ATTRIBUTE priv[] = {attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab), attr(CKA_SIGN, yes), attr(CKA_PRIVATE, yes)};
        if (!call(f_->C_GenerateKeyPair(s_, &mech, pub, 4, priv, 4, &l.pub, &l.handle), "C_GenerateKeyPair")) return;
        if (!call(get_attr(f_, s_, l.pub, CKA_EC_POINT, l.ec_point), "C_GetAttributeValue (EC point)")) return;
        r_.live.push_back(std::move(l));
        publish_all();
    }

    void destroy() {
        const std::size_t i = pick(r_.live.size());
        Live l = r_.live[i];
        r_.live.erase(r_.live.begin() + static_cast<std::ptrdiff_t>(i));
        publish_all();
        bool ok = call(f_->C_DestroyObject(s_, l.handle), "C_DestroyObject");
        if (l.key_pair) ok = call(f_->C_DestroyObject(s_, l.pub), "C_DestroyObject (public)") && ok;
        if (ok) r_.destroyed.push_back(l.label);
        // The handle is stale now: the token must say so rather than reach another object.
        Bytes v;
        call(get_attr(f_, s_, l.handle, CKA_LABEL, v), "C_GetAttributeValue (destroyed)", CKR_OBJECT_HANDLE_INVALID);
    }

    // Reads back what this thread wrote; a private key's value is sensitive.
    void get_attribute() {
        if (r_.live.empty()) {
            create();
            return;
        }
        const Live& l = r_.live[pick(r_.live.size())];
        Bytes v;
        if (!call(get_attr(f_, s_, l.handle, CKA_LABEL, v), "C_GetAttributeValue (label)")) return;
        if (v != to_bytes(l.label)) r_.error("thread " + std::to_string(index_) + ": label of " + l.label + " changed");
        if (l.key_pair) {
            CK_ATTRIBUTE a{CKA_VALUE, nullptr, 0};
            call(f_->C_GetAttributeValue(s_, l.handle, &a, 1), "C_GetAttributeValue (private value)", CKR_ATTRIBUTE_SENSITIVE);
            if (a.ulValueLen != CK_UNAVAILABLE_INFORMATION)
                r_.error("thread " + std::to_string(index_) + ": private value length was reported");
        } else {
            if (!call(get_attr(f_, s_, l.handle, CKA_VALUE, v), "C_GetAttributeValue (value)")) return;
            if (v != l.value) r_.error("thread " + std::to_string(index_) + ": value of " + l.label + " changed");
        }
    }

    // A second session: it is in the user's state, sees the user's login, finds this thread's object,
    // and a session object made in it is gone when it closes.
    void session() {
        CK_SESSION_HANDLE s2 = 0;
        if (!call(f_->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s2),
                  "C_OpenSession"))
            return;
        CK_SESSION_INFO info{};
        if (call(f_->C_GetSessionInfo(s2, &info), "C_GetSessionInfo") && info.state != CKS_RW_USER_FUNCTIONS)
            r_.error("thread " + std::to_string(index_) + ": new session not in the user's state");
        const std::string label = object_label(index_, serial_++) + "-session";
        Bytes lab = to_bytes(label), value = message();
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_BBOOL no = CK_FALSE;
        CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_TOKEN, no), attr(CKA_LABEL, lab), attr(CKA_VALUE, value)};
        CK_OBJECT_HANDLE h = 0;
        call(f_->C_CreateObject(s2, t, 4, &h), "C_CreateObject (session object)");
        CK_RV rv;
        if (!r_.live.empty()) {
            Bytes own = to_bytes(r_.live.back().label);
            auto hits = find_objects(f_, s2, {attr(CKA_LABEL, own)}, rv);
            if (call(rv, "C_FindObjects (second session)") && hits.size() != (r_.live.back().key_pair ? 2u : 1u))
                r_.error("thread " + std::to_string(index_) + ": second session does not see the thread's object");
        }
        call(f_->C_CloseSession(s2), "C_CloseSession");
        auto gone = find_objects(f_, s_, {attr(CKA_LABEL, lab)}, rv);
        if (call(rv, "C_FindObjects (closed session's object)") && !gone.empty())
            r_.error("thread " + std::to_string(index_) + ": a closed session's object outlived it");
        call(f_->C_CloseSession(s2), "C_CloseSession (closed)", CKR_SESSION_HANDLE_INVALID);
    }

    // Reads another thread's published object: its own label, or CKR_OBJECT_HANDLE_INVALID
    // if it was destroyed meanwhile; never another object's attributes.
    void peek() {
        const int other = static_cast<int>(pick(thread_count));
        const std::uint64_t v = pub_.slot[other][pick(max_live_per_thread)].load(std::memory_order_acquire);
        if (v == 0) return;
        const CK_OBJECT_HANDLE h = static_cast<CK_OBJECT_HANDLE>(v >> 32);
        const std::string want = object_label(other, static_cast<unsigned>(v & 0xFFFFFFFFu));
        Bytes got;
        ++r_.calls;
        CK_RV rv = get_attr(f_, s_, h, CKA_LABEL, got);
        if (rv == CKR_OK && got != to_bytes(want))
            r_.error("thread " + std::to_string(index_) + ": handle of " + want + " read another object's label");
        else if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID)
            r_.error("thread " + std::to_string(index_) + ": peek returned " + rv_text(rv));
    }

    void publish_all() {
        for (std::size_t i = 0; i < max_live_per_thread; ++i) {
            std::uint64_t v = 0;
            if (i < r_.live.size()) {
                const Live& l = r_.live[i];
                const auto dash = l.label.find('-');
                v = (std::uint64_t{l.handle} << 32) | std::stoul(l.label.substr(dash + 1));
            }
            pub_.slot[index_][i].store(v, std::memory_order_release);
        }
    }

    CK_FUNCTION_LIST* f_;
    int index_;
    const std::vector<SignKey>& keys_;
    Published& pub_;
    ThreadResult& r_;
    std::mt19937_64 rng_;
    CK_SESSION_HANDLE s_ = 0;
    unsigned serial_ = 0;
};

// --- main-thread checks (Catch2 from here on) -----------------------------------------------

CK_SESSION_HANDLE open_rw(CK_FUNCTION_LIST* f) {
    CK_SESSION_HANDLE s = 0;
    REQUIRE(f->C_OpenSession(cryptoki::slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) == CKR_OK);
    return s;
}

CK_SESSION_HANDLE init_and_login(CK_FUNCTION_LIST* f) {
    auto label = token_label("concurrency");
    REQUIRE(f->C_InitToken(cryptoki::slot_id, utf8(so_pin), ulen(so_pin), reinterpret_cast<CK_UTF8CHAR*>(label.data())) ==
            CKR_OK);
    CK_SESSION_HANDLE s = open_rw(f);
    REQUIRE(f->C_Login(s, CKU_SO, utf8(so_pin), ulen(so_pin)) == CKR_OK);
    REQUIRE(f->C_InitPIN(s, utf8(user_pin), ulen(user_pin)) == CKR_OK);
    REQUIRE(f->C_Logout(s) == CKR_OK);
    REQUIRE(f->C_Login(s, CKU_USER, utf8(user_pin), ulen(user_pin)) == CKR_OK);
    return s;
}

SignKey make_key(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, KeyKind kind, std::string label) {
    SignKey k;
    k.kind = kind;
    k.label = std::move(label);
    Bytes lab = to_bytes(k.label);
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG bits = 2048;
    Bytes params = kind == KeyKind::ec384 ? p384_params() : p256_params(), e{0x01, 0x00, 0x01};
    CK_MECHANISM mech{kind == KeyKind::rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    std::vector<CK_ATTRIBUTE> pub{attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab), attr(CKA_VERIFY, yes)};
    if (kind == KeyKind::rsa) {
        pub.push_back(attr(CKA_MODULUS_BITS, bits));
        pub.push_back(attr(CKA_PUBLIC_EXPONENT, e));
    } else {
        pub.push_back(attr(CKA_EC_PARAMS, params));
    }
    CK_ATTRIBUTE priv[] = {attr(CKA_TOKEN, yes), attr(CKA_LABEL, lab), attr(CKA_SIGN, yes), attr(CKA_PRIVATE, yes)};
    REQUIRE(f->C_GenerateKeyPair(s, &mech, pub.data(), static_cast<CK_ULONG>(pub.size()), priv, 4, &k.pub, &k.priv) ==
            CKR_OK);
    if (kind == KeyKind::rsa) {
        REQUIRE(get_attr(f, s, k.pub, CKA_MODULUS, k.n) == CKR_OK);
        REQUIRE(get_attr(f, s, k.pub, CKA_PUBLIC_EXPONENT, k.e) == CKR_OK);
    } else {
        REQUIRE(get_attr(f, s, k.pub, CKA_EC_POINT, k.ec_point) == CKR_OK);
    }
    return k;
}

/// (label, class) of every object the session sees, sorted.
std::vector<std::pair<std::string, CK_ULONG>> object_set(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s) {
    CK_RV rv;
    auto all = find_objects(f, s, {}, rv);
    REQUIRE(rv == CKR_OK);
    std::vector<std::pair<std::string, CK_ULONG>> set;
    for (CK_OBJECT_HANDLE h : all) {
        Bytes lab;
        REQUIRE(get_attr(f, s, h, CKA_LABEL, lab) == CKR_OK);
        CK_OBJECT_CLASS cls = 0;
        CK_ATTRIBUTE a = attr(CKA_CLASS, cls);
        REQUIRE(f->C_GetAttributeValue(s, h, &a, 1) == CKR_OK);
        set.emplace_back(std::string(lab.begin(), lab.end()), cls);
    }
    std::sort(set.begin(), set.end());
    return set;
}

/// Free object slots, counted the only way the ABI allows: session objects are created in a
/// fresh session until the token reports CKR_DEVICE_MEMORY; closing the session frees them.
std::size_t free_object_slots(CK_FUNCTION_LIST* f) {
    CK_SESSION_HANDLE s = open_rw(f);
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    Bytes lab = to_bytes("free-slot probe");
    CK_ATTRIBUTE t[] = {attr(CKA_CLASS, cls), attr(CKA_TOKEN, no), attr(CKA_LABEL, lab)};
    std::size_t n = 0;
    CK_RV rv = CKR_OK;
    for (; n < 10000; ++n) {
        CK_OBJECT_HANDLE h;
        rv = f->C_CreateObject(s, t, 3, &h);
        if (rv != CKR_OK) break;
    }
    CHECK(rv == CKR_DEVICE_MEMORY);
    REQUIRE(f->C_CloseSession(s) == CKR_OK);
    return n;
}

CK_ULONG session_count(CK_FUNCTION_LIST* f) {
    CK_TOKEN_INFO info{};
    REQUIRE(f->C_GetTokenInfo(cryptoki::slot_id, &info) == CKR_OK);
    return info.ulSessionCount;
}

bool mbed_verify(const SignatureRecord& r) {
    switch (r.mech) {
    case CKM_ECDSA:
        return mbed_ecdsa_verify(r.kind == KeyKind::ec384 ? MBEDTLS_ECP_DP_SECP384R1 : MBEDTLS_ECP_DP_SECP256R1,
                                 r.public_key, r.message, r.sig);
    case CKM_ECDSA_SHA256:
        return mbed_ecdsa_verify(r.kind == KeyKind::ec384 ? MBEDTLS_ECP_DP_SECP384R1 : MBEDTLS_ECP_DP_SECP256R1,
                                 r.public_key, hash(MBEDTLS_MD_SHA256, r.message), r.sig);
    case CKM_SHA256_RSA_PKCS:
        return mbed_rsa_verify(r.public_key, r.e, MBEDTLS_MD_SHA256, hash(MBEDTLS_MD_SHA256, r.message), r.sig);
    case CKM_SHA256_RSA_PKCS_PSS:
        return mbed_rsa_verify(r.public_key, r.e, MBEDTLS_MD_SHA256, hash(MBEDTLS_MD_SHA256, r.message), r.sig, 32,
                               MBEDTLS_MD_SHA256);
    default: return false;
    }
}

/// The whole scenario on one module: `reopen` is C_Finalize + C_Initialize over the same store.
void run_scenario(CK_FUNCTION_LIST* f) {
    REQUIRE(f->C_Initialize(nullptr) == CKR_OK);
    CK_SESSION_HANDLE main = init_and_login(f);
    std::vector<SignKey> keys;
    keys.push_back(make_key(f, main, KeyKind::ec256, "shared P-256"));
    keys.push_back(make_key(f, main, KeyKind::ec384, "shared P-384"));
    keys.push_back(make_key(f, main, KeyKind::rsa, "shared RSA-2048"));
    const auto before = object_set(f, main);
    REQUIRE(before.size() == 6);
    const std::size_t free_start = free_object_slots(f);
    REQUIRE(session_count(f) == 1);

    auto published = std::make_unique<Published>();
    for (auto& row : published->slot)
        for (auto& s : row) s.store(0);
    std::vector<ThreadResult> results(thread_count);
    const auto t0 = std::chrono::steady_clock::now();
    {
        std::vector<std::thread> threads;
        std::vector<std::unique_ptr<Worker>> workers;
        for (int i = 0; i < thread_count; ++i)
            workers.push_back(std::make_unique<Worker>(f, i, keys, *published, results[static_cast<std::size_t>(i)]));
        for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
        for (auto& t : threads) t.join();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    unsigned long calls = 0, ops[9] = {};
    std::size_t sigs = 0, mbed_ok = 0;
    std::vector<std::pair<std::string, CK_ULONG>> expected = before;
    std::size_t live_objects = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const ThreadResult& r = results[i];
        INFO("thread " << i);
        for (const auto& e : r.errors) FAIL_CHECK(e);
        CHECK(r.errors.empty());
        calls += r.calls;
        for (int k = 0; k < 9; ++k) ops[k] += r.ops[k];
        for (const SignatureRecord& s : r.signatures) {
            ++sigs;
            if (mbed_verify(s)) ++mbed_ok;
        }
        for (const Live& l : r.live) {
            if (l.key_pair) {
                expected.emplace_back(l.label, CKO_PUBLIC_KEY);
                expected.emplace_back(l.label, CKO_PRIVATE_KEY);
                live_objects += 2;
            } else {
                expected.emplace_back(l.label, CKO_DATA);
                live_objects += 1;
            }
        }
    }
    std::sort(expected.begin(), expected.end());
    std::string mix;
    for (int k = 0; k < 9; ++k) mix += std::string(" ") + op_names[k] + "=" + std::to_string(ops[k]);
    WARN(thread_count << " threads x " << ops_per_thread << " operations (" << calls << " C_ calls) in " << seconds
                      << " s;" << mix << "; " << sigs << " signatures, " << mbed_ok << " verified by mbedTLS; "
                      << live_objects << " thread objects left");

    CHECK(ops[0] + ops[1] + ops[2] + ops[3] + ops[4] + ops[5] + ops[6] + ops[7] + ops[8] ==
          unsigned(thread_count * ops_per_thread));
    CHECK(sigs > 0);
    CHECK(mbed_ok == sigs);  // every signature verifies with the public key, outside the token
    CHECK(session_count(f) == 1);  // each thread closed every session it opened
    CHECK(object_set(f, main) == expected);
    CHECK(free_object_slots(f) == free_start - live_objects);

    // The store holds exactly the same set: finalize and load the token again.
    REQUIRE(f->C_Finalize(nullptr) == CKR_OK);
    REQUIRE(f->C_Initialize(nullptr) == CKR_OK);
    CHECK(session_count(f) == 0);
    main = open_rw(f);
    REQUIRE(f->C_Login(main, CKU_USER, utf8(user_pin), ulen(user_pin)) == CKR_OK);
    CHECK(object_set(f, main) == expected);
    CHECK(free_object_slots(f) == free_start - live_objects);

    // Destroying what the threads left brings the pool back to where it started.
    CK_RV rv;
    for (const ThreadResult& r : results)
        for (const Live& l : r.live) {
            Bytes lab = to_bytes(l.label);
            for (CK_OBJECT_HANDLE h : find_objects(f, main, {attr(CKA_LABEL, lab)}, rv)) CHECK(f->C_DestroyObject(main, h) == CKR_OK);
            CHECK(rv == CKR_OK);
        }
    CHECK(object_set(f, main) == before);
    CHECK(free_object_slots(f) == free_start);
    REQUIRE(f->C_CloseSession(main) == CKR_OK);
    CHECK(session_count(f) == 0);
    REQUIRE(f->C_Finalize(nullptr) == CKR_OK);
}

}  // namespace

TEST_CASE("Concurrency: 8 threads x 1,000 mixed Cryptoki calls on one in-process token", "[cryptoki][concurrency]") {
    RamProvider::store = std::make_unique<RamNvm<>>();
    run_scenario(RamModule::function_list());
    RamProvider::store.reset();
}

TEST_CASE("Concurrency: 8 threads x 1,000 mixed Cryptoki calls on libp11tls-pkcs11.so", "[cryptoki][concurrency]") {
    const char* path = std::getenv("P11TLS_MODULE");
    INFO("P11TLS_MODULE names the built libp11tls-pkcs11.so (meson test sets it)");
    REQUIRE(path != nullptr);
    TempDir store;
    REQUIRE(::setenv("P11TLS_STORE", store.path().c_str(), 1) == 0);
    void* lib = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    INFO("dlopen: " << (lib ? "" : ::dlerror()));
    REQUIRE(lib != nullptr);
    using GetList = CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR);
    auto get = reinterpret_cast<GetList>(::dlsym(lib, "C_GetFunctionList"));
    REQUIRE(get != nullptr);
    CK_FUNCTION_LIST* f = nullptr;
    REQUIRE(get(&f) == CKR_OK);
    run_scenario(f);
    ::unsetenv("P11TLS_STORE");
    ::dlclose(lib);
}
