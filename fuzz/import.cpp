// SPDX-License-Identifier: MIT
// Fuzz target: PEM and DER import, the parsers and the token import on top of them.
//
// Input: {what u8} then the file's bytes. what % 6:
//   0 parse_private_key       3 provision::import_private_key into a token
//   1 CertList::parse         4 provision::import_certificate into a token
//   2 parse_certs (TLS)       5 provision::import_root into a token
// Invariants: a parsed key has the sizes its type and curve say; each parsed certificate's
// parts lie inside it and describe_certificate accepts it; an imported key pair signs and its
// public key verifies the signature; an import that fails leaves the token's store as it was;
// imported certificates are stored byte for byte under their label.
#include <memory>

#include <p11tls/provision/provision.hpp>

#include "common.hpp"
#include "pki.hpp"
#include "token_config.hpp"

using namespace p11tls;
using namespace p11tls::fuzz;
namespace pv = p11tls::provision;
namespace m = p11tls::detail::mbed;

namespace {

bool same_store(const FuzzNvm& a, const FuzzNvm& b) {
    std::array<RecordId, 64> ia, ib;
    auto na = a.list(ia), nb = b.list(ib);
    if (!na || !nb || *na != *nb) return false;
    static std::array<std::byte, 8192> ba, bb;
    for (std::size_t i = 0; i < *na; ++i) {
        auto la = a.load(ia[i], ba), lb = b.load(ia[i], bb);
        if (!la || !lb || *la != *lb || std::memcmp(ba.data(), bb.data(), *la) != 0) return false;
    }
    return true;
}

void check_key(const m::ParsedKey& k) {
    using P = m::ParsedKey;
    if (k.key_type() == CKK_EC) {
        P11TLS_FUZZ_CHECK(k.curve().has_value());
        const std::size_t cb = m::curve_bytes(*k.curve());
        P11TLS_FUZZ_CHECK(k.part(P::ec_d).size() == cb);
        P11TLS_FUZZ_CHECK(k.ec_point_der().size() == 2 + 1 + 2 * cb);
        P11TLS_FUZZ_CHECK(m::ec_check_private(*k.curve(), k.part(P::ec_d)));
    } else {
        P11TLS_FUZZ_CHECK(k.key_type() == CKK_RSA);
        P11TLS_FUZZ_CHECK(k.bits() >= 2048 && k.bits() <= 4096);
        for (auto p : {P::rsa_n, P::rsa_e, P::rsa_d, P::rsa_p, P::rsa_q}) P11TLS_FUZZ_CHECK(!k.part(p).empty());
    }
}

void check_certs(const m::CertList& certs) {
    P11TLS_FUZZ_CHECK(certs.size() > 0);
    for (std::size_t i = 0; i < certs.size(); ++i) {
        auto der = certs.der(i);
        P11TLS_FUZZ_CHECK(!der.empty());
        auto inside = [&](std::span<const std::byte> part) {
            return part.data() >= der.data() && part.data() + part.size() <= der.data() + der.size();
        };
        P11TLS_FUZZ_CHECK(inside(certs.subject_der(i)) && inside(certs.issuer_der(i)));
        std::array<std::byte, 130> serial;
        (void)certs.serial_der(i, serial);
        std::array<std::byte, 600> spki;
        (void)certs.spki_der(i, spki);
        (void)certs.is_ca(i);
        std::array<char, 64> subject, issuer;
        std::array<char, 16> until;
        P11TLS_FUZZ_CHECK(m::describe_certificate(der, subject, issuer, until));
        P11TLS_FUZZ_CHECK(std::memchr(subject.data(), '\0', subject.size()) && std::memchr(until.data(), '\0', until.size()));
    }
}

/// A fresh token (objects may be created) and an R/W session on it.
struct TokenRun {
    std::unique_ptr<FuzzToken> token = std::make_unique<FuzzToken>(FuzzNvm{}, DetEntropy{});
    CK_ULONG session = 0;
    TokenRun() {
        P11TLS_FUZZ_CHECK(token->load());
        auto s = token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
        P11TLS_FUZZ_CHECK(s.has_value());
        session = *s;
    }
};

// An imported key pair signs, and its public half verifies what it signed.
void signs_and_verifies(FuzzToken& t, CK_ULONG s, const pv::KeyPair& kp) {
    CK_ULONG kt = 0;
    CK_ATTRIBUTE a{CKA_KEY_TYPE, &kt, sizeof kt};
    P11TLS_FUZZ_CHECK(t.get_attributes(s, kp.private_key, std::span(&a, 1)));
    CK_MECHANISM mech{kt == CKK_EC ? CKM_ECDSA_SHA256 : CKM_SHA256_RSA_PKCS, nullptr, 0};
    static constexpr std::byte msg[] = {std::byte{'k'}, std::byte{'e'}, std::byte{'y'}};
    std::array<std::byte, 512> sig;
    P11TLS_FUZZ_CHECK(t.sign_init(s, mech, kp.private_key));
    auto n = t.sign(s, msg, sig);
    P11TLS_FUZZ_CHECK(n.has_value());
    P11TLS_FUZZ_CHECK(t.verify_init(s, mech, kp.public_key));
    P11TLS_FUZZ_CHECK(t.verify(s, msg, std::span(sig).first(*n)));
}

// The certificates under `label` are `count` objects whose values are certificates of `certs`.
void stored(FuzzToken& t, CK_ULONG s, std::string_view label, std::size_t count, const m::CertList& certs) {
    token::Template<2, 256> q;
    q.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_LABEL, label);
    std::array<CK_ULONG, 32> hits;
    P11TLS_FUZZ_CHECK(t.find_init(s, std::as_const(q).view()));
    auto n = t.find(s, hits);
    P11TLS_FUZZ_CHECK(n && t.find_final(s));
    P11TLS_FUZZ_CHECK(*n == count && count == certs.size());
    static std::array<std::byte, 8192> buf;
    for (std::size_t i = 0; i < *n; ++i) {
        CK_ATTRIBUTE a{CKA_VALUE, buf.data(), buf.size()};
        P11TLS_FUZZ_CHECK(t.get_attributes(s, hits[i], std::span(&a, 1)));
        bool found = false;
        for (std::size_t j = 0; j < certs.size(); ++j)
            found |= certs.der(j).size() == a.ulValueLen && std::memcmp(certs.der(j).data(), buf.data(), a.ulValueLen) == 0;
        P11TLS_FUZZ_CHECK(found);
    }
}

void run(Reader& in) {
    const unsigned what = in.u8() % 6;
    const auto data = as_bytes(in.rest());
    switch (what) {
    case 0: {
        m::ParsedKey key;
        if (m::parse_private_key(data, key)) check_key(key);
        break;
    }
    case 1: {
        m::CertList certs;
        if (certs.parse(data)) check_certs(certs);
        break;
    }
    case 2: {
        mbedtls_x509_crt chain;
        mbedtls_x509_crt_init(&chain);
        if (m::parse_certs(chain, data)) P11TLS_FUZZ_CHECK(chain.raw.len > 0);
        mbedtls_x509_crt_free(&chain);
        break;
    }
    default: {
        TokenRun tr;
        const FuzzNvm before = tr.token->nvm();
        bool ok = false;
        if (what == 3) {
            auto kp = pv::import_private_key(*tr.token, tr.session, data);
            ok = kp.has_value();
            if (ok) signs_and_verifies(*tr.token, tr.session, *kp);
        } else {
            m::CertList certs;
            const bool parses = certs.parse(data).has_value();
            auto n = what == 4 ? pv::import_certificate(*tr.token, tr.session, data)
                               : pv::import_root(*tr.token, tr.session, data);
            ok = n.has_value();
            if (ok) {
                P11TLS_FUZZ_CHECK(parses);
                stored(*tr.token, tr.session, what == 4 ? pv::certificate_label : pv::root_label, *n, certs);
            }
        }
        if (!ok) P11TLS_FUZZ_CHECK(same_store(before, tr.token->nvm()));  // a refused import stores nothing
        break;
    }
    }
}

void make_seeds(const std::string& dir) {
    pki::Rng rng("import seeds");
    auto ca = pki::ec_key(rng);
    auto p256 = pki::ec_key(rng);
    auto p384 = pki::ec_key(rng, MBEDTLS_ECP_DP_SECP384R1);
    auto rsa = pki::rsa_key(rng, 2048);
    const char* ca_name = "CN=fuzz root,O=p11tls";
    Bytes ca_cert = pki::issue({ca_name, ca->get(), ca_name, ca->get(), true, 1}, rng);
    Bytes leaf = pki::issue({"CN=device,O=p11tls", p256->get(), ca_name, ca->get(), false, 2, "device.example"}, rng);
    Bytes rsa_leaf = pki::issue({"CN=rsa device", rsa->get(), ca_name, ca->get(), false, 3}, rng);
    auto seed = [&](std::string_view name, unsigned what, const Bytes& v) {
        Writer w;
        w.u8(what).bytes(std::span<const std::uint8_t>(v));
        write_seed(dir, name, w.data());
    };
    for (unsigned what : {0u, 3u}) {
        const std::string p = what == 0 ? "parse-key-" : "import-key-";
        seed(p + "p256-pem", what, pki::key_pem(p256->get()));
        seed(p + "p256-der", what, pki::key_der(p256->get()));
        seed(p + "p384-der", what, pki::key_der(p384->get()));
        seed(p + "rsa2048-pem", what, pki::key_pem(rsa->get()));
    }
    const Bytes leaf_pem = pki::cert_pem(leaf), ca_pem = pki::cert_pem(ca_cert);
    const Bytes chain = pki::concat({&leaf_pem, &ca_pem});
    for (unsigned what : {1u, 2u, 4u}) {
        const std::string p = what == 1 ? "parse-certs-" : what == 2 ? "tls-certs-" : "import-cert-";
        seed(p + "leaf-der", what, leaf);
        seed(p + "chain-pem", what, chain);
        seed(p + "rsa-pem", what, pki::cert_pem(rsa_leaf));
    }
    seed("import-root-pem", 5, pki::cert_pem(ca_cert));
    seed("import-root-der", 5, ca_cert);
    seed("import-root-not-ca", 5, leaf);
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
