// SPDX-License-Identifier: MIT
// Fuzz target: PKCS#11 templates through the C ABI (CK_FUNCTION_LIST of cryptoki::Module over
// a SoftToken on a RamNvm): C_CreateObject, C_FindObjectsInit/C_FindObjects,
// C_GetAttributeValue, C_SetAttributeValue and C_DestroyObject with templates built from the
// input, including wrong lengths, NULL values with lengths, unknown types and stale handles.
//
// Input: a sequence of ops {op u8, session u8, handle u8 [u32], template}; a template is
// {count u8, entries: {type u8 [u32], mode u8, value...}}. Every value lives in a heap buffer of
// exactly its declared length, so ASan sees any read or write outside it.
// Invariants: a created or changed object reads back what the template said (or refuses as
// sensitive); found objects match the search template; C_GetAttributeValue keeps PKCS#11's
// length rules; after C_Finalize and C_Initialize over the same store, the token objects are
// the same ones with the same attributes.
#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include <p11tls/cryptoki/module.hpp>
#include <p11tls/token/template.hpp>

#include "common.hpp"
#include "pki.hpp"
#include "token_config.hpp"

using namespace p11tls;
using namespace p11tls::fuzz;

namespace {

struct Provider {
    using token_type = FuzzToken;
    static inline std::unique_ptr<FuzzNvm> store;  // outlives C_Finalize, as flash does
    static Result<token_type*> open() {
        auto t = std::make_unique<token_type>(*store, DetEntropy{});
        if (auto r = t->load(); !r) return fail(r.error());
        return t.release();
    }
    static void close(token_type* t) noexcept {
        *store = t->nvm();
        delete t;
    }
};
using Module = cryptoki::Module<Provider>;

// The store every run starts from: an initialized token with a user PIN, an EC key pair and
// a certificate.
std::unique_ptr<FuzzNvm> pristine;

constexpr CK_ATTRIBUTE_TYPE types[] = {
    CKA_CLASS,           CKA_TOKEN,         CKA_PRIVATE,        CKA_LABEL,           CKA_APPLICATION,
    CKA_VALUE,           CKA_OBJECT_ID,     CKA_CERTIFICATE_TYPE, CKA_ISSUER,        CKA_SERIAL_NUMBER,
    CKA_TRUSTED,         CKA_CERTIFICATE_CATEGORY, CKA_CHECK_VALUE, CKA_KEY_TYPE,    CKA_SUBJECT,
    CKA_ID,              CKA_SENSITIVE,     CKA_ENCRYPT,        CKA_DECRYPT,         CKA_WRAP,
    CKA_UNWRAP,          CKA_SIGN,          CKA_SIGN_RECOVER,   CKA_VERIFY,          CKA_DERIVE,
    CKA_START_DATE,      CKA_END_DATE,      CKA_MODULUS,        CKA_MODULUS_BITS,    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT, CKA_PRIME_1,      CKA_PRIME_2,        CKA_EXPONENT_1,      CKA_EXPONENT_2,
    CKA_COEFFICIENT,     CKA_EXTRACTABLE,   CKA_LOCAL,          CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE,
    CKA_KEY_GEN_MECHANISM, CKA_MODIFIABLE,  CKA_COPYABLE,       CKA_DESTROYABLE,     CKA_EC_PARAMS,
    CKA_EC_POINT,        CKA_ALWAYS_AUTHENTICATE, CKA_WRAP_WITH_TRUSTED, CKA_ALLOWED_MECHANISMS, CKA_PUBLIC_KEY_INFO,
    CKA_URL,             CKA_HASH_OF_SUBJECT_PUBLIC_KEY, CKA_NAME_HASH_ALGORITHM, CKA_VALUE_LEN, CKA_VENDOR_DEFINED,
};
constexpr std::size_t type_count = std::size(types);

/// A template whose values the fuzzer chose, each in a buffer of exactly its length.
struct Tmpl {
    std::vector<CK_ATTRIBUTE> attrs;
    std::vector<std::unique_ptr<std::uint8_t[]>> values;

    CK_ATTRIBUTE* data() noexcept { return attrs.empty() ? nullptr : attrs.data(); }
    CK_ULONG size() const noexcept { return static_cast<CK_ULONG>(attrs.size()); }
};

std::uint8_t* place(Tmpl& t, std::span<const std::uint8_t> v) {
    auto buf = std::make_unique<std::uint8_t[]>(v.size());
    if (!v.empty()) std::memcpy(buf.get(), v.data(), v.size());
    std::uint8_t* p = buf.get();
    t.values.push_back(std::move(buf));
    return p;
}

CK_ATTRIBUTE_TYPE read_type(Reader& in) {
    const std::uint8_t sel = in.u8();
    return sel < type_count ? types[sel] : sel == 0xFF ? CK_ATTRIBUTE_TYPE{in.u32()} : types[sel % type_count];
}

/// Input values for C_CreateObject, C_FindObjectsInit and C_SetAttributeValue.
Tmpl read_input_template(Reader& in) {
    Tmpl t;
    const unsigned n = in.u8() % 10;
    for (unsigned i = 0; i < n; ++i) {
        CK_ATTRIBUTE a{read_type(in), nullptr, 0};
        switch (in.u8() % 6) {
        case 0: break;  // NULL, length 0
        case 1: a.ulValueLen = in.u16() + 1; break;  // NULL with a length
        case 2: {  // a CK_BBOOL
            const std::uint8_t b = in.u8();
            a.pValue = place(t, std::span(&b, 1));
            a.ulValueLen = 1;
            break;
        }
        case 3: {  // a CK_ULONG
            CK_ULONG v = in.u32();
            if (v == 0xFFFFFFFFu) v = CK_UNAVAILABLE_INFORMATION;
            a.pValue = place(t, std::span(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
            a.ulValueLen = sizeof v;
            break;
        }
        default: {  // bytes of any length (the key material, DER, labels)
            auto v = in.chunk();
            a.pValue = v.empty() ? nullptr : place(t, v);
            a.ulValueLen = v.size();
            break;
        }
        }
        t.attrs.push_back(a);
    }
    return t;
}

/// Output buffers for C_GetAttributeValue: a length query, a buffer of some size, or none.
Tmpl read_output_template(Reader& in) {
    Tmpl t;
    const unsigned n = in.u8() % 10;
    for (unsigned i = 0; i < n; ++i) {
        CK_ATTRIBUTE a{read_type(in), nullptr, 0};
        const std::uint8_t mode = in.u8();
        if (mode % 3 != 0) {
            a.ulValueLen = mode % 3 == 1 ? in.u8() : in.u16() % 1200;
            static const std::uint8_t fill[1200] = {};
            a.pValue = a.ulValueLen ? place(t, std::span(fill, a.ulValueLen)) : nullptr;
        } else if (mode & 0x80) {
            a.ulValueLen = in.u16();  // a length with a NULL buffer: still a query
        }
        t.attrs.push_back(a);
    }
    return t;
}

/// An attribute's value read back through the C ABI: nullopt when it cannot be read.
std::optional<Bytes> get(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, CK_RV* rv = nullptr) {
    CK_ATTRIBUTE a{type, nullptr, 0};
    CK_RV r = f->C_GetAttributeValue(s, h, &a, 1);
    if (rv) *rv = r;
    if (r != CKR_OK) {
        P11TLS_FUZZ_CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
        return std::nullopt;
    }
    P11TLS_FUZZ_CHECK(a.ulValueLen != CK_UNAVAILABLE_INFORMATION && a.ulValueLen < 1u << 20);
    Bytes v(a.ulValueLen);
    a.pValue = v.empty() ? nullptr : v.data();
    const CK_ULONG want = a.ulValueLen;
    P11TLS_FUZZ_CHECK(f->C_GetAttributeValue(s, h, &a, 1) == CKR_OK);
    P11TLS_FUZZ_CHECK(a.ulValueLen == want);
    return v;
}

/// The value `a` sets, as C_GetAttributeValue gives it back (booleans become CK_TRUE/FALSE).
Bytes expected(const CK_ATTRIBUTE& a) {
    const auto* p = static_cast<const std::uint8_t*>(a.pValue);
    Bytes v(p, p + (p ? a.ulValueLen : 0));
    if (token::attr_kind(a.type) == token::AttrKind::boolean && v.size() == 1) v[0] = v[0] ? CK_TRUE : CK_FALSE;
    return v;
}

/// Every attribute of `t` reads back as given, unless the token hides it as sensitive.
void reads_back(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const Tmpl& t) {
    for (const CK_ATTRIBUTE& a : t.attrs) {
        CK_RV rv;
        auto v = get(f, s, h, a.type, &rv);
        if (!v) {
            P11TLS_FUZZ_CHECK(rv == CKR_ATTRIBUTE_SENSITIVE);
            continue;
        }
        P11TLS_FUZZ_CHECK(*v == expected(a));
    }
}

/// C_GetAttributeValue's rules for each entry after a call that returned `rv`.
void check_get(CK_RV rv, const Tmpl& asked, const Tmpl& answered) {
    P11TLS_FUZZ_CHECK(rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
                      rv == CKR_BUFFER_TOO_SMALL || rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_SESSION_HANDLE_INVALID ||
                      rv == CKR_ARGUMENTS_BAD);
    if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_ARGUMENTS_BAD) return;
    bool any_unavailable = false;
    for (std::size_t i = 0; i < asked.attrs.size(); ++i) {
        const CK_ULONG len = answered.attrs[i].ulValueLen;
        if (len == CK_UNAVAILABLE_INFORMATION) {
            any_unavailable = true;
            continue;
        }
        // A buffer given was large enough; a query got a length.
        if (asked.attrs[i].pValue) P11TLS_FUZZ_CHECK(len <= asked.attrs[i].ulValueLen);
    }
    P11TLS_FUZZ_CHECK(any_unavailable == (rv != CKR_OK));
}

/// All objects the session sees, through C_FindObjects in batches of `batch`.
std::vector<CK_OBJECT_HANDLE> find(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, Tmpl& t, CK_ULONG batch, CK_RV& rv) {
    std::vector<CK_OBJECT_HANDLE> all;
    rv = f->C_FindObjectsInit(s, t.data(), t.size());
    if (rv != CKR_OK) return all;
    auto out = std::make_unique<CK_OBJECT_HANDLE[]>(batch ? batch : 1);
    for (int round = 0; round < 200; ++round) {
        CK_ULONG n = 0;
        P11TLS_FUZZ_CHECK(f->C_FindObjects(s, out.get(), batch, &n) == CKR_OK);
        P11TLS_FUZZ_CHECK(n <= batch);
        if (n == 0) break;
        all.insert(all.end(), out.get(), out.get() + n);
    }
    P11TLS_FUZZ_CHECK(f->C_FindObjectsFinal(s) == CKR_OK);
    return all;
}

using Snapshot = std::map<Bytes, std::size_t>;  // token objects by their attribute bytes, counted

// The token objects as C_GetAttributeValue shows them, for comparing across a C_Finalize.
Snapshot token_objects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s) {
    CK_BBOOL yes = CK_TRUE;
    Tmpl q;
    q.attrs.push_back({CKA_TOKEN, &yes, sizeof yes});
    CK_RV rv;
    Snapshot snap;
    for (CK_OBJECT_HANDLE h : find(f, s, q, 8, rv)) {
        Bytes all;
        for (CK_ATTRIBUTE_TYPE t : types) {
            auto v = get(f, s, h, t);
            Writer w;
            w.u32(static_cast<std::uint32_t>(t)).u8(v ? 1 : 0);
            if (v) w.chunk(std::span<const std::uint8_t>(*v));
            all.insert(all.end(), w.data().begin(), w.data().end());
        }
        ++snap[all];
    }
    P11TLS_FUZZ_CHECK(rv == CKR_OK);
    return snap;
}

void run(Reader& in) {
    CK_FUNCTION_LIST* f = Module::function_list();
    Provider::store = std::make_unique<FuzzNvm>(*pristine);
    P11TLS_FUZZ_CHECK(f->C_Initialize(nullptr) == CKR_OK);
    std::array<CK_SESSION_HANDLE, 2> sessions{};
    P11TLS_FUZZ_CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &sessions[0]) == CKR_OK);
    P11TLS_FUZZ_CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &sessions[1]) == CKR_OK);
    Tmpl none;
    CK_RV rv;
    std::vector<CK_OBJECT_HANDLE> handles = find(f, sessions[0], none, 16, rv);
    P11TLS_FUZZ_CHECK(rv == CKR_OK);

    for (int ops = 0; ops < 24 && !in.empty(); ++ops) {
        const std::uint8_t op = in.u8();
        const std::uint8_t ssel = in.u8();
        const CK_SESSION_HANDLE s = ssel < 0xF0 ? sessions[ssel % 2] : CK_SESSION_HANDLE{in.u32()};
        const std::uint8_t hsel = in.u8();
        const CK_OBJECT_HANDLE h = hsel < 0xF0 && !handles.empty() ? handles[hsel % handles.size()] : CK_OBJECT_HANDLE{in.u32()};
        switch (op % 5) {
        case 0: {
            Tmpl t = read_input_template(in);
            CK_OBJECT_HANDLE created = 0;
            rv = f->C_CreateObject(s, t.data(), t.size(), &created);
            if (rv == CKR_OK) {
                reads_back(f, s, created, t);
                handles.push_back(created);
            }
            break;
        }
        case 1: {
            Tmpl t = read_input_template(in);
            const CK_ULONG batch = in.u8() % 9;
            if (batch == 0) {  // a zero-size batch finds nothing and ends nothing
                if (f->C_FindObjectsInit(s, t.data(), t.size()) == CKR_OK) {
                    CK_OBJECT_HANDLE dummy;
                    CK_ULONG n = 7;
                    P11TLS_FUZZ_CHECK(f->C_FindObjects(s, &dummy, 0, &n) == CKR_OK && n == 0);
                    P11TLS_FUZZ_CHECK(f->C_FindObjectsFinal(s) == CKR_OK);
                }
                break;
            }
            for (CK_OBJECT_HANDLE hit : find(f, s, t, batch, rv)) {
                for (const CK_ATTRIBUTE& a : t.attrs) {
                    auto v = get(f, s, hit, a.type);
                    P11TLS_FUZZ_CHECK(v && *v == expected(a));  // a hit matches every attribute searched for
                }
                if (std::find(handles.begin(), handles.end(), hit) == handles.end()) handles.push_back(hit);
            }
            break;
        }
        case 2: {
            Tmpl asked = read_output_template(in);
            Tmpl answered;
            answered.attrs = asked.attrs;
            rv = f->C_GetAttributeValue(s, h, answered.data(), answered.size());
            check_get(rv, asked, answered);
            break;
        }
        case 3: {
            Tmpl t = read_input_template(in);
            rv = f->C_SetAttributeValue(s, h, t.data(), t.size());
            if (rv == CKR_OK) reads_back(f, s, h, t);
            break;
        }
        case 4:
            (void)f->C_DestroyObject(s, h);
            break;
        }
    }
    // The token objects survive C_Finalize and a new C_Initialize unchanged.
    const Snapshot before = token_objects(f, sessions[0]);
    P11TLS_FUZZ_CHECK(f->C_Finalize(nullptr) == CKR_OK);
    P11TLS_FUZZ_CHECK(f->C_Initialize(nullptr) == CKR_OK);
    CK_SESSION_HANDLE s = 0;
    P11TLS_FUZZ_CHECK(f->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK);
    P11TLS_FUZZ_CHECK(token_objects(f, s) == before);
    P11TLS_FUZZ_CHECK(f->C_Finalize(nullptr) == CKR_OK);
}

// --- seeds ---

struct Keys {
    Bytes ec_d, ec_point, cert;
};

const Keys& keys() {
    static const Keys k = [] {
        pki::Rng rng("cryptoki-templates");
        auto key = pki::ec_key(rng);
        const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(*key->get());
        Keys out;
        out.ec_d.resize(32);
        pki::must(mbedtls_mpi_write_binary(&ec->d, out.ec_d.data(), 32));
        unsigned char q[65];
        std::size_t len = 0;
        pki::must(mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, q, sizeof q));
        out.ec_point = {0x04, 65};
        out.ec_point.insert(out.ec_point.end(), q, q + len);
        out.cert = pki::issue({"CN=fuzz,O=p11tls", key->get(), "CN=fuzz,O=p11tls", key->get(), false, 3}, rng);
        return out;
    }();
    return k;
}

void make_pristine() {
    auto t = std::make_unique<FuzzToken>(FuzzNvm{}, DetEntropy{});
    must(t->load(), "load");
    must(t->init_token(pin(so_pin), label32("fuzz token")), "init_token");
    auto s = t->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    must(s, "open_session");
    must(t->login(*s, CKU_SO, pin(so_pin)), "SO login");
    must(t->init_pin(*s, pin(user_pin)), "init_pin");
    must(t->logout(*s), "logout");
    const Keys& k = keys();
    const auto params = detail::mbed::curve_params(detail::mbed::Curve::p256);
    token::Template<10, 512> priv;
    priv.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true).add(CKA_LABEL, "key")
        .add(CKA_ID, std::string_view("\x01")).add(CKA_EC_PARAMS, params).add(CKA_VALUE, as_bytes(k.ec_d)).add(CKA_SIGN, true);
    must(t->create_object(*s, std::as_const(priv).view()), "private key");
    token::Template<10, 512> pub;
    pub.add(CKA_CLASS, CKO_PUBLIC_KEY).add(CKA_KEY_TYPE, CKK_EC).add(CKA_TOKEN, true).add(CKA_LABEL, "key")
        .add(CKA_EC_PARAMS, params).add(CKA_EC_POINT, as_bytes(k.ec_point));
    must(t->create_object(*s, std::as_const(pub).view()), "public key");
    token::Template<6, 2048> cert;
    cert.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_TOKEN, true)
        .add(CKA_LABEL, "cert").add(CKA_VALUE, as_bytes(k.cert));
    must(t->create_object(*s, std::as_const(cert).view()), "certificate");
    pristine = std::make_unique<FuzzNvm>(t->nvm());
}

/// Seed templates in the input format.
struct SeedTmpl {
    explicit SeedTmpl(Writer& out) : w(out) {}
    Writer& w;
    std::vector<std::function<void()>> entries;
    SeedTmpl& boolean(std::uint8_t type_index, bool v) {
        entries.push_back([this, type_index, v] { w.u8(type_index).u8(2).u8(v ? 1 : 0); });
        return *this;
    }
    SeedTmpl& ulong(std::uint8_t type_index, std::uint32_t v) {
        entries.push_back([this, type_index, v] { w.u8(type_index).u8(3).u32(v); });
        return *this;
    }
    SeedTmpl& bytes(std::uint8_t type_index, Bytes v) {
        entries.push_back([this, type_index, v] { w.u8(type_index).u8(4).chunk(std::span<const std::uint8_t>(v)); });
        return *this;
    }
    void write() {
        w.u8(static_cast<unsigned>(entries.size()));
        for (auto& e : entries) e();
    }
};

std::uint8_t ix(CK_ATTRIBUTE_TYPE t) {
    for (std::size_t i = 0; i < type_count; ++i)
        if (types[i] == t) return static_cast<std::uint8_t>(i);
    std::abort();
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

void make_seeds(const std::string& dir) {
    const Keys& k = keys();
    const auto params = detail::mbed::curve_params(detail::mbed::Curve::p256);
    const Bytes p256(reinterpret_cast<const std::uint8_t*>(params.data()), reinterpret_cast<const std::uint8_t*>(params.data()) + params.size());
    auto op = [](Writer& w, unsigned code, unsigned session = 0, unsigned handle = 0) { w.u8(code).u8(session).u8(handle); };
    {
        Writer w;
        op(w, 0);
        SeedTmpl(w).ulong(ix(CKA_CLASS), CKO_DATA).boolean(ix(CKA_TOKEN), true).bytes(ix(CKA_LABEL), text("data"))
            .bytes(ix(CKA_VALUE), text("payload")).write();
        op(w, 1);
        SeedTmpl(w).bytes(ix(CKA_LABEL), text("data")).write();
        w.u8(4);
        op(w, 2, 0, 3);
        w.u8(3).u8(ix(CKA_VALUE)).u8(0).u8(ix(CKA_LABEL)).u8(1).u8(2).u8(ix(CKA_CLASS)).u8(2).u16(8);
        op(w, 3, 0, 3);
        SeedTmpl(w).bytes(ix(CKA_LABEL), text("renamed")).write();
        op(w, 4, 0, 3);
        write_seed(dir, "data-object", w.data());
    }
    {
        Writer w;
        op(w, 0);
        SeedTmpl(w).ulong(ix(CKA_CLASS), CKO_PRIVATE_KEY).ulong(ix(CKA_KEY_TYPE), CKK_EC).boolean(ix(CKA_TOKEN), true)
            .bytes(ix(CKA_EC_PARAMS), p256).bytes(ix(CKA_VALUE), k.ec_d).boolean(ix(CKA_SENSITIVE), true)
            .bytes(ix(CKA_LABEL), text("imported")).write();
        op(w, 0);
        SeedTmpl(w).ulong(ix(CKA_CLASS), CKO_PUBLIC_KEY).ulong(ix(CKA_KEY_TYPE), CKK_EC).bytes(ix(CKA_EC_PARAMS), p256)
            .bytes(ix(CKA_EC_POINT), k.ec_point).write();
        op(w, 2, 0, 3);
        w.u8(2).u8(ix(CKA_VALUE)).u8(2).u16(64).u8(ix(CKA_EC_POINT)).u8(0);
        write_seed(dir, "ec-keys", w.data());
    }
    {
        Writer w;
        op(w, 0, 1);
        SeedTmpl(w).ulong(ix(CKA_CLASS), CKO_CERTIFICATE).ulong(ix(CKA_CERTIFICATE_TYPE), CKC_X_509)
            .bytes(ix(CKA_VALUE), k.cert).bytes(ix(CKA_ID), {1, 2}).write();
        op(w, 1, 1);
        SeedTmpl(w).ulong(ix(CKA_CLASS), CKO_CERTIFICATE).write();
        w.u8(2);
        write_seed(dir, "certificate", w.data());
    }
    {
        Writer w;
        op(w, 1);
        SeedTmpl(w).write();
        w.u8(1);
        op(w, 2, 0, 1);
        w.u8(4).u8(ix(CKA_VALUE)).u8(0).u8(ix(CKA_EC_PARAMS)).u8(1).u8(3).u8(ix(CKA_LABEL)).u8(0x80).u16(100).u8(0xFF).u32(0x12345).u8(0);
        op(w, 3, 1, 0);
        SeedTmpl(w).boolean(ix(CKA_SENSITIVE), true).boolean(ix(CKA_EXTRACTABLE), false).write();
        write_seed(dir, "queries", w.data());
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    seed_mode(make_seeds);
    make_pristine();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    run(in);
    return 0;
}
