// SPDX-License-Identifier: MIT
// Fuzz target: SoftToken::load() over a store holding arbitrary records (the token state
// record, object records, board records), then every object it accepted is read and used.
//
// Input: {flags u8} then records until the input ends, each {id u8, len u16, bytes}; flags bit
// 0 signs with each private key and verifies with each public key (slow: RSA, ECDSA under
// the sanitizers), so most runs stay fast. Record id 0 is the token state
// record, 0xFF a board record (0x80000000 + the next byte), anything else an object record id.
// Invariants: load succeeds or reports nvm_corrupt/token_full; it changes no record (it only
// writes a fresh state record when there was none); every object record is either an object
// or counted in corrupt_records(); every attribute read obeys C_GetAttributeValue's lengths
// (exact-size buffers, so ASan sees any overrun); a zero signature never verifies; a
// destroyed object's record is gone.
#include <algorithm>
#include <array>
#include <map>
#include <memory>

#include <p11tls/token/template.hpp>

#include "common.hpp"
#include "pki.hpp"
#include "token_config.hpp"

using namespace p11tls;
using namespace p11tls::fuzz;

namespace {

constexpr CK_ATTRIBUTE_TYPE read_types[] = {
    CKA_CLASS,        CKA_KEY_TYPE,        CKA_LABEL,       CKA_ID,          CKA_VALUE,
    CKA_EC_PARAMS,    CKA_EC_POINT,        CKA_MODULUS,     CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,      CKA_SUBJECT,         CKA_ISSUER,      CKA_SERIAL_NUMBER, CKA_CERTIFICATE_TYPE,
    CKA_TOKEN,        CKA_PRIVATE,         CKA_SENSITIVE,   CKA_EXTRACTABLE, CKA_SIGN,
    CKA_VERIFY,       CKA_ALLOWED_MECHANISMS, CKA_MODULUS_BITS, CKA_LOCAL,   CKA_APPLICATION,
};

RecordId record_id(Reader& in, std::uint8_t sel) {
    if (sel == 0) return FuzzToken::meta_record;
    if (sel == 0xFF) return FuzzToken::first_platform_record + in.u8();
    return sel;
}

using Store = std::map<RecordId, Bytes>;

Store contents(const FuzzNvm& nvm) {
    Store s;
    std::array<RecordId, 64> ids;
    auto n = nvm.list(ids);
    P11TLS_FUZZ_CHECK(n.has_value());
    static std::array<std::byte, 8192> buf;
    for (std::size_t i = 0; i < *n; ++i) {
        auto len = nvm.load(ids[i], buf);
        P11TLS_FUZZ_CHECK(len.has_value());
        auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
        s[ids[i]] = Bytes(p, p + *len);
    }
    return s;
}

// Reads every attribute of `h` by a length query and then exact-size buffers.
void read_all(FuzzToken& t, CK_ULONG s, CK_ULONG h) {
    constexpr std::size_t n = std::size(read_types);
    std::array<CK_ATTRIBUTE, n> q;
    for (std::size_t i = 0; i < n; ++i) q[i] = {read_types[i], nullptr, 0};
    auto r = t.get_attributes(s, h, q);
    P11TLS_FUZZ_CHECK(r || r.error().code == Errc::attribute_sensitive || r.error().code == Errc::attribute_type_invalid);
    std::array<Bytes, n> bufs;
    std::array<CK_ATTRIBUTE, n> v;
    for (std::size_t i = 0; i < n; ++i) {
        const CK_ULONG len = q[i].ulValueLen;
        if (len != CK_UNAVAILABLE_INFORMATION) bufs[i].resize(len);
        v[i] = {read_types[i], len == CK_UNAVAILABLE_INFORMATION || len == 0 ? nullptr : bufs[i].data(), len == CK_UNAVAILABLE_INFORMATION ? 0 : len};
    }
    auto r2 = t.get_attributes(s, h, v);
    P11TLS_FUZZ_CHECK(r2 || r2.error().code == Errc::attribute_sensitive || r2.error().code == Errc::attribute_type_invalid);
    for (std::size_t i = 0; i < n; ++i)
        if (q[i].ulValueLen != CK_UNAVAILABLE_INFORMATION) P11TLS_FUZZ_CHECK(v[i].ulValueLen == q[i].ulValueLen);
}

CK_ULONG ulong_attr(FuzzToken& t, CK_ULONG s, CK_ULONG h, CK_ATTRIBUTE_TYPE type) {
    CK_ULONG v = CK_UNAVAILABLE_INFORMATION;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    if (!t.get_attributes(s, h, std::span(&a, 1))) return CK_UNAVAILABLE_INFORMATION;
    return v;
}

// Signs with a loaded private key: the length query's answer is the size the signature takes.
void use_private(FuzzToken& t, CK_ULONG s, CK_ULONG h, CK_KEY_TYPE kt) {
    CK_MECHANISM m{kt == CKK_RSA ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, nullptr, 0};
    if (!t.sign_init(s, m, h)) return;
    static constexpr std::byte msg[] = {std::byte{'f'}, std::byte{'u'}, std::byte{'z'}, std::byte{'z'}};
    auto len = t.sign(s, msg, std::span<std::byte>());
    P11TLS_FUZZ_CHECK(len.has_value());  // a length query keeps the operation
    std::vector<std::byte> sig(*len);
    auto n = t.sign(s, msg, sig);
    if (n) P11TLS_FUZZ_CHECK(*n == sig.size());
}

// A signature of zeros never verifies.
void use_public(FuzzToken& t, CK_ULONG s, CK_ULONG h, CK_KEY_TYPE kt) {
    CK_MECHANISM m{kt == CKK_RSA ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, nullptr, 0};
    if (!t.verify_init(s, m, h)) return;
    static constexpr std::byte msg[] = {std::byte{'f'}, std::byte{'u'}, std::byte{'z'}, std::byte{'z'}};
    std::array<std::byte, 512> zeros{};
    CK_ULONG bits = ulong_attr(t, s, h, CKA_MODULUS_BITS);
    std::size_t len = kt == CKK_RSA ? (bits != CK_UNAVAILABLE_INFORMATION && bits <= 4096 ? (bits + 7) / 8 : 256) : 64;
    P11TLS_FUZZ_CHECK(!t.verify(s, msg, std::span(zeros).first(std::min(len, zeros.size()))));
}

void run(Reader& in) {
    const bool use_keys = in.u8() & 1;
    auto nvm = std::make_unique<FuzzNvm>();
    while (!in.empty()) {
        const RecordId id = record_id(in, in.u8());
        auto v = in.chunk();
        if (v.size() > FuzzNvm::max_record_size) continue;
        if (!nvm->store(id, as_bytes(v))) return;  // more records than the store holds
    }
    const Store before = contents(*nvm);
    auto token = std::make_unique<FuzzToken>(std::move(*nvm), DetEntropy{});
    auto r = token->load();
    Store after = contents(token->nvm());
    // A store without a token state record gets a fresh one; no other record changes.
    if (!before.count(FuzzToken::meta_record) && after.count(FuzzToken::meta_record)) after.erase(FuzzToken::meta_record);
    P11TLS_FUZZ_CHECK(after == before);
    if (!r) {
        P11TLS_FUZZ_CHECK(r.error().code == Errc::nvm_corrupt || r.error().code == Errc::token_full);
        return;
    }
    std::size_t object_records = 0;
    for (const auto& [id, v] : before) object_records += id != FuzzToken::meta_record && id < FuzzToken::first_platform_record;

    auto s = token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    P11TLS_FUZZ_CHECK(s.has_value());
    std::array<CK_ULONG, FuzzTokenConfig::max_objects> hits;
    P11TLS_FUZZ_CHECK(token->find_init(*s, {}));
    auto n = token->find(*s, hits);
    P11TLS_FUZZ_CHECK(n && token->find_final(*s));
    P11TLS_FUZZ_CHECK(*n + token->corrupt_records() == object_records);

    for (std::size_t i = 0; i < *n; ++i) {
        read_all(*token, *s, hits[i]);
        const CK_ULONG cls = ulong_attr(*token, *s, hits[i], CKA_CLASS);
        const CK_ULONG kt = ulong_attr(*token, *s, hits[i], CKA_KEY_TYPE);
        if (use_keys && cls == CKO_PRIVATE_KEY) use_private(*token, *s, hits[i], kt);
        if (use_keys && cls == CKO_PUBLIC_KEY) use_public(*token, *s, hits[i], kt);
    }
    // Destroying an object removes its record, and nothing else.
    if (*n > 0) {
        const Store was = contents(token->nvm());
        auto d = token->destroy_object(*s, hits[0]);
        const Store now = contents(token->nvm());
        if (d) {
            P11TLS_FUZZ_CHECK(now.size() + 1 == was.size());
            for (const auto& [id, v] : now) P11TLS_FUZZ_CHECK(was.count(id) && was.at(id) == v);
        } else {
            P11TLS_FUZZ_CHECK(d.error().code == Errc::action_prohibited);
            P11TLS_FUZZ_CHECK(now == was);
        }
    }
}

// --- seeds: the records of tokens that the token API filled ---

void write_store(const std::string& dir, std::string_view name, const FuzzNvm& nvm, bool use_keys = false) {
    Writer w;
    w.u8(use_keys ? 1 : 0);
    for (const auto& [id, v] : contents(nvm)) {
        if (id >= FuzzToken::first_platform_record) w.u8(0xFF).u8(id & 0xFF);
        else w.u8(id);
        w.chunk(std::span<const std::uint8_t>(v));
    }
    write_seed(dir, name, w.data());
}

void make_seeds(const std::string& dir) {
    auto t = std::make_unique<FuzzToken>(FuzzNvm{}, DetEntropy{});
    must(t->load(), "load");
    write_store(dir, "blank", t->nvm());
    must(t->init_token(pin(so_pin), label32("fuzz token")), "init_token");
    auto s = t->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    must(s, "open_session");
    must(t->login(*s, CKU_SO, pin(so_pin)), "SO login");
    must(t->init_pin(*s, pin(user_pin)), "init_pin");
    must(t->logout(*s), "logout");
    write_store(dir, "initialized", t->nvm());
    must(t->login(*s, CKU_USER, pin(user_pin)), "user login");

    token::Template<8, 256> data;
    data.add(CKA_CLASS, CKO_DATA).add(CKA_TOKEN, true).add(CKA_LABEL, std::string_view("config"))
        .add(CKA_APPLICATION, std::string_view("fuzz")).add(CKA_VALUE, std::string_view("some bytes"));
    must(t->create_object(*s, std::as_const(data).view()), "data object");

    auto ec_pair = [&](std::span<const std::byte> params, std::string_view label, bool allowed) {
        CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
        token::Template<8, 256> pub, priv;
        pub.add(CKA_TOKEN, true).add(CKA_EC_PARAMS, params).add(CKA_LABEL, label).add(CKA_VERIFY, true);
        priv.add(CKA_TOKEN, true).add(CKA_LABEL, label).add(CKA_SIGN, true).add(CKA_PRIVATE, true);
        static constexpr CK_ULONG mechs[] = {CKM_ECDSA, CKM_ECDSA_SHA256};
        if (allowed) priv.add(CKA_ALLOWED_MECHANISMS, std::as_bytes(std::span(mechs)));
        must(t->generate_key_pair(*s, mech, std::as_const(pub).view(), std::as_const(priv).view()), "EC key pair");
    };
    ec_pair(detail::mbed::curve_params(detail::mbed::Curve::p256), "p256", false);
    write_store(dir, "ec-p256", t->nvm());
    ec_pair(detail::mbed::curve_params(detail::mbed::Curve::p384), "p384", true);

    pki::Rng rng("token-load seeds");
    auto key = pki::ec_key(rng);
    Bytes cert = pki::issue({"CN=fuzz device,O=p11tls", key->get(), "CN=fuzz device,O=p11tls", key->get(), true, 7}, rng);
    token::Template<8, 2048> c;
    c.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_TOKEN, true)
        .add(CKA_LABEL, std::string_view("Device Cert")).add(CKA_VALUE, as_bytes(std::span<const std::uint8_t>(cert)));
    must(t->create_object(*s, std::as_const(c).view()), "certificate");
    write_store(dir, "ec-and-cert", t->nvm());
    write_store(dir, "ec-and-cert-signing", t->nvm(), true);

    CK_MECHANISM rsa{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
    token::Template<8, 256> pub, priv;
    static constexpr std::byte f4[] = {std::byte{1}, std::byte{0}, std::byte{1}};
    pub.add(CKA_TOKEN, true).add(CKA_MODULUS_BITS, CK_ULONG{2048}).add(CKA_PUBLIC_EXPONENT, std::span<const std::byte>(f4))
        .add(CKA_LABEL, std::string_view("rsa")).add(CKA_VERIFY, true);
    priv.add(CKA_TOKEN, true).add(CKA_LABEL, std::string_view("rsa")).add(CKA_SIGN, true).add(CKA_PRIVATE, true);
    must(t->generate_key_pair(*s, rsa, std::as_const(pub).view(), std::as_const(priv).view()), "RSA key pair");
    auto store = std::make_unique<FuzzNvm>(t->nvm());
    static constexpr std::byte board_record[] = {std::byte{1}, std::byte{2}, std::byte{3}};
    must(store->store(FuzzToken::first_platform_record + 1, board_record), "board record");
    write_store(dir, "full", *store);
    write_store(dir, "full-signing", *store, true);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    seed_mode(make_seeds);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    run(in);
    return 0;
}
