// SPDX-License-Identifier: MIT
// Provisioning over SoftToken<RamNvm>: keys generated in the token and their PKCS#10 requests,
// imported keys and certificates, and bad input that must leave the store exactly as it was.
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_csr.h>

#include <p11tls/provision/provision.hpp>
#include <p11tls/tls/session.hpp>

#include "support/tls_peer.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::test;
using namespace p11tls::test::tls;
namespace pv = p11tls::provision;

// --- fixtures ------------------------------------------------------------------------------

/// A fresh, initialized token (RamNvm with `Slots` records) with the user logged in.
template <std::size_t Slots = 64>
struct Fresh {
    using Nvm = RamNvm<Slots, 8192>;
    using Tok = SoftToken<Nvm, GetrandomEntropy, TestConfig>;
    std::unique_ptr<Tok> token = std::make_unique<Tok>(Nvm{}, GetrandomEntropy{});
    CK_ULONG s = 0;
    Fresh() {
        REQUIRE(code(token->load()) == no_error);
        init_token(*token);
        s = login_user(*token);
    }
    Tok& operator*() noexcept { return *token; }
    Tok* operator->() noexcept { return token.get(); }
};

/// Every record of an Nvm, id and bytes, in id order: "the store" compared before and after.
template <class N>
std::vector<std::pair<RecordId, Bytes>> snapshot(const N& nvm) {
    std::vector<std::pair<RecordId, Bytes>> all;
    for (RecordId id : record_ids(nvm)) {
        Bytes b(N::max_record_size);
        auto n = nvm.load(id, as_out(b));
        REQUIRE(code(n) == no_error);
        b.resize(*n);
        all.emplace_back(id, std::move(b));
    }
    return all;
}

std::span<const std::byte> bytes_of(const Bytes& b) { return as_span(b); }
std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

KeyKind kind_of(pv::KeyType t) {
    switch (t) {
    case pv::KeyType::ec_p256: return KeyKind::p256;
    case pv::KeyType::ec_p384: return KeyKind::p384;
    default: return KeyKind::rsa2048;
    }
}

template <class Tok>
CK_ULONG only_object(Tok& t, CK_ULONG s, CK_OBJECT_CLASS cls, std::string_view label) {
    auto hits = find_all(t, s, Template{}.add(CKA_CLASS, cls).add(CKA_LABEL, label));
    REQUIRE(hits.size() == 1);
    return hits[0];
}

template <class Tok>
std::size_t count_objects(Tok& t, CK_ULONG s, CK_OBJECT_CLASS cls, std::string_view label) {
    return find_all(t, s, Template{}.add(CKA_CLASS, cls).add(CKA_LABEL, label)).size();
}

/// A parsed PKCS#10 request.
struct Csr {
    mbedtls_x509_csr csr;
    explicit Csr(const Bytes& der) {
        mbedtls_x509_csr_init(&csr);
        REQUIRE(mbedtls_x509_csr_parse_der(&csr, der.data(), der.size()) == 0);
    }
    ~Csr() { mbedtls_x509_csr_free(&csr); }
    Csr(const Csr&) = delete;
    Csr& operator=(const Csr&) = delete;

    /// The signature checked with the request's own public key.
    bool verifies() {
        const mbedtls_md_info_t* md = mbedtls_md_info_from_type(csr.sig_md);
        unsigned char hash[64];
        if (!md || mbedtls_md(md, csr.cri.p, csr.cri.len, hash) != 0) return false;
        return mbedtls_pk_verify_ext(csr.sig_pk, csr.sig_opts, &csr.pk, csr.sig_md, hash, mbedtls_md_get_size(md),
                                     csr.sig.p, csr.sig.len) == 0;
    }
    std::string subject() {
        char buf[256];
        REQUIRE(mbedtls_x509_dn_gets(buf, sizeof buf, &csr.subject) > 0);
        return buf;
    }
};

/// SubjectPublicKeyInfo DER of an mbedTLS pk (public part).
Bytes spki(mbedtls_pk_context& pk) {
    unsigned char buf[1024];
    int len = mbedtls_pk_write_pubkey_der(&pk, buf, sizeof buf);
    REQUIRE(len > 0);
    return Bytes(buf + sizeof buf - len, buf + sizeof buf);
}

bool contains(const Bytes& hay, const Bytes& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

/// A request for the default key, DER.
template <class Tok>
Bytes csr_der(Tok& t, CK_ULONG s, const pv::CsrOptions& o) {
    pv::CsrOptions der = o;
    der.encoding = pv::Encoding::der;
    Bytes out(4096);
    auto n = pv::write_csr(t, s, der, as_out(out));
    REQUIRE(code(n) == no_error);
    out.resize(*n);
    return out;
}

/// A certificate for the key of request `csr`, issued by the TLS tests' root CA.
Bytes issue_for(const Bytes& csr, const char* subject, int serial = 100) {
    Csr parsed(csr);
    return issue({subject, &parsed.csr.pk, ca_name, world().ca_key->get(), false, serial}, world().rng);
}

Bytes pem(const char* what, const Bytes& der) {
    std::string begin = std::string("-----BEGIN ") + what + "-----\n", end = std::string("-----END ") + what + "-----\n";
    Bytes out(der.size() * 2 + 200);
    std::size_t olen = 0;
    REQUIRE(mbedtls_pem_write_buffer(begin.c_str(), end.c_str(), der.data(), der.size(), out.data(), out.size(), &olen) == 0);
    out.resize(olen - 1);  // without the NUL
    return out;
}

// --- keys made outside the token -----------------------------------------------------------

/// DER TLV with a definite length.
Bytes tlv(unsigned char tag, const Bytes& content) {
    Bytes out{tag};
    std::size_t n = content.size();
    if (n < 0x80) {
        out.push_back(static_cast<unsigned char>(n));
    } else {
        Bytes len;
        for (; n; n >>= 8) len.insert(len.begin(), static_cast<unsigned char>(n & 0xFF));
        out.push_back(static_cast<unsigned char>(0x80 | len.size()));
        out.insert(out.end(), len.begin(), len.end());
    }
    out.insert(out.end(), content.begin(), content.end());
    return out;
}
Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

/// SEC1 (EC) or PKCS#1 (RSA) DER of a software key, as mbedTLS writes it.
Bytes traditional_der(mbedtls_pk_context& pk) {
    Bytes buf(8192);
    int len = mbedtls_pk_write_key_der(&pk, buf.data(), buf.size());
    REQUIRE(len > 0);
    return Bytes(buf.end() - len, buf.end());
}

/// PKCS#8 PrivateKeyInfo around the traditional encoding (mbedTLS 2.28 writes no PKCS#8).
Bytes pkcs8_der(mbedtls_pk_context& pk) {
    Bytes alg;
    if (mbedtls_pk_get_type(&pk) == MBEDTLS_PK_RSA) {
        alg = tlv(0x30, cat({{0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01}, {0x05, 0x00}}));
    } else {
        Bytes curve = mbedtls_pk_ec(pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1 ? p256_params() : p384_params();
        alg = tlv(0x30, cat({{0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01}, curve}));
    }
    return tlv(0x30, cat({{0x02, 0x01, 0x00}, alg, tlv(0x04, traditional_der(pk))}));
}

std::unique_ptr<Pk> ec_key(mbedtls_ecp_group_id curve) {
    auto pk = std::make_unique<Pk>();
    REQUIRE(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0);
    REQUIRE(mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(*pk->get()), &TestRng::f, world().rng.p()) == 0);
    return pk;
}

/// The 2048-bit RSA key of the token tests, as an mbedTLS pk.
std::unique_ptr<Pk> rsa_key() {
    const RsaComponents& k = test_rsa_key();
    auto pk = std::make_unique<Pk>();
    REQUIRE(mbedtls_pk_setup(pk->get(), mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) == 0);
    mbedtls_rsa_context* rsa = mbedtls_pk_rsa(*pk->get());
    REQUIRE(mbedtls_rsa_import_raw(rsa, k.n.data(), k.n.size(), k.p.data(), k.p.size(), k.q.data(), k.q.size(),
                                   k.d.data(), k.d.size(), k.e.data(), k.e.size()) == 0);
    REQUIRE(mbedtls_rsa_complete(rsa) == 0);
    return pk;
}

/// CKA_EC_POINT form (OCTET STRING around 04||X||Y) of a software EC key's public point.
Bytes ec_point_of(mbedtls_pk_context& pk) {
    const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(pk);
    unsigned char raw[100];
    std::size_t len = 0;
    REQUIRE(mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, raw, sizeof raw) == 0);
    return cat({{0x04, static_cast<unsigned char>(len)}, Bytes(raw, raw + len)});
}

// --- key generation and requests -----------------------------------------------------------

TEST_CASE("provision: a generated key's request verifies and carries the token's public key", "[provision]") {
    const pv::KeyType type = GENERATE(pv::KeyType::ec_p256, pv::KeyType::ec_p384, pv::KeyType::rsa_2048);
    CAPTURE(name(kind_of(type)));
    Fresh<> f;
    auto kp = pv::generate_key(*f, f.s, type);
    REQUIRE(code(kp) == no_error);
    CHECK(kp->private_key == only_object(*f, f.s, CKO_PRIVATE_KEY, "Device Priv TLS Key"));
    CHECK(kp->public_key == only_object(*f, f.s, CKO_PUBLIC_KEY, "Device Pub TLS Key"));
    CHECK(get_bool(*f, f.s, kp->private_key, CKA_LOCAL));
    CHECK(get_bool(*f, f.s, kp->private_key, CKA_SENSITIVE));
    CHECK_FALSE(get_bool(*f, f.s, kp->private_key, CKA_EXTRACTABLE));

    const std::string_view dns[] = {"device-0042.example.com", "localhost"};
    pv::IpAddress ip;
    ip.bytes[0] = std::byte{127};
    ip.bytes[3] = std::byte{1};
    ip.len = 4;
    const Bytes der = csr_der(*f, f.s, {.subject = "CN=device-0042,O=p11tls", .dns = dns, .ips = std::span(&ip, 1)});
    Csr csr(der);
    CHECK(csr.verifies());
    CHECK(csr.subject() == "CN=device-0042, O=p11tls");
    auto token_pub = token_public_key(*f, f.s, kp->public_key, kind_of(type));
    CHECK(spki(csr.csr.pk) == spki(*token_pub->get()));
    // subjectAltName: [2] dNSName and [7] iPAddress entries.
    CHECK(contains(der, cat({{0x82, 23}, to_bytes("device-0042.example.com")})));
    CHECK(contains(der, {0x87, 0x04, 127, 0, 0, 1}));
    CHECK(csr.csr.sig_md == (type == pv::KeyType::ec_p384 ? MBEDTLS_MD_SHA384 : MBEDTLS_MD_SHA256));

    // PEM: the same request text-wrapped (ECDSA signatures differ run to run, so parse it).
    Bytes text(4096);
    auto n = pv::write_csr(*f, f.s, {.subject = "CN=device-0042"}, as_out(text));
    REQUIRE(code(n) == no_error);
    text.resize(*n);
    CHECK(std::string(text.begin(), text.begin() + 36) == "-----BEGIN CERTIFICATE REQUEST-----\n");
    text.push_back(0);
    mbedtls_x509_csr from_pem;
    mbedtls_x509_csr_init(&from_pem);
    CHECK(mbedtls_x509_csr_parse(&from_pem, text.data(), text.size()) == 0);
    mbedtls_x509_csr_free(&from_pem);
}

TEST_CASE("provision: requests are refused without a key, with two keys, or with a bad subject", "[provision]") {
    Fresh<> f;
    Bytes out(4096);
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "CN=x"}, as_out(out))) == Errc::object_not_found);
    generate_ec_key_pair(*f, f.s, p256_params(), "twice");
    generate_ec_key_pair(*f, f.s, p256_params(), "twice");
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "CN=x", .key = {.label = "twice"}}, as_out(out))) ==
          Errc::object_ambiguous);
    REQUIRE(code(pv::generate_key(*f, f.s)) == no_error);
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "no equals sign"}, as_out(out))) == Errc::invalid_argument);
    CHECK(code(pv::write_csr(*f, f.s, {.subject = ""}, as_out(out))) == Errc::invalid_argument);
    const std::string_view bad_dns[] = {"two words"};
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "CN=x", .dns = bad_dns}, as_out(out))) == Errc::invalid_argument);
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "CN=x"}, as_out(out).first(100))) == Errc::buffer_too_small);
}

TEST_CASE("provision: a request whose public key is another key's is caught before it is returned", "[provision]") {
    Fresh<> f;
    auto a = ec_key(MBEDTLS_ECP_DP_SECP256R1), b = ec_key(MBEDTLS_ECP_DP_SECP256R1);
    Bytes der_a = traditional_der(*a->get()), der_b = traditional_der(*b->get());
    REQUIRE(code(pv::import_private_key(*f, f.s, as_span(der_a), {.private_label = "a", .public_label = "a pub"})) == no_error);
    REQUIRE(code(pv::import_private_key(*f, f.s, as_span(der_b), {.private_label = "b", .public_label = "b pub"})) == no_error);
    Bytes out(4096);
    // Key "a" signs; its public half is taken from b's public key object.
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "CN=x", .key = {.label = "a", .public_label = "b pub"}}, as_out(out))) ==
          Errc::tls_key_cert_mismatch);
    CHECK(code(pv::write_csr(*f, f.s, {.subject = "CN=x", .key = {.label = "a", .public_label = "a pub"}}, as_out(out))) ==
          no_error);
}

TEST_CASE("provision: an existing key label is refused, or replaced on request", "[provision]") {
    Fresh<> f;
    auto first = pv::generate_key(*f, f.s);
    REQUIRE(code(first) == no_error);
    const Bytes first_point = get_bytes(*f, f.s, first->public_key, CKA_EC_POINT);
    const auto before = snapshot(f->nvm());
    CHECK(code(pv::generate_key(*f, f.s, pv::KeyType::ec_p384)) == Errc::object_exists);
    CHECK(snapshot(f->nvm()) == before);

    auto second = pv::generate_key(*f, f.s, pv::KeyType::ec_p384, {.existing = pv::Existing::replace});
    REQUIRE(code(second) == no_error);
    CHECK(only_object(*f, f.s, CKO_PRIVATE_KEY, "Device Priv TLS Key") == second->private_key);
    CHECK(get_bytes(*f, f.s, only_object(*f, f.s, CKO_PUBLIC_KEY, "Device Pub TLS Key"), CKA_EC_POINT) != first_point);
    CHECK(record_ids(f->nvm()).size() == before.size());  // two records out, two in
}

// --- imported keys ---------------------------------------------------------------------------

struct KeyCase {
    const char* name;
    std::unique_ptr<Pk> (*make)();
    Bytes (*encode)(mbedtls_pk_context&);
};

TEST_CASE("provision: an imported key signs, and its secret parts cannot be read back", "[provision]") {
    static const KeyCase cases[] = {
        {"EC P-256, PKCS#8 PEM", [] { return ec_key(MBEDTLS_ECP_DP_SECP256R1); },
         [](mbedtls_pk_context& k) { return pem("PRIVATE KEY", pkcs8_der(k)); }},
        {"EC P-384, SEC1 DER", [] { return ec_key(MBEDTLS_ECP_DP_SECP384R1); }, traditional_der},
        {"EC P-256, SEC1 PEM", [] { return ec_key(MBEDTLS_ECP_DP_SECP256R1); },
         [](mbedtls_pk_context& k) { return pem("EC PRIVATE KEY", traditional_der(k)); }},
        {"RSA-2048, PKCS#1 PEM", rsa_key, [](mbedtls_pk_context& k) { return pem("RSA PRIVATE KEY", traditional_der(k)); }},
        {"RSA-2048, PKCS#8 DER", rsa_key, pkcs8_der},
    };
    const KeyCase& c = cases[GENERATE(range(0, 5))];
    CAPTURE(c.name);
    Fresh<> f;
    auto key = c.make();
    const Bytes file = c.encode(*key->get());
    auto kp = pv::import_private_key(*f, f.s, as_span(file), {.id = bytes_of(Bytes{0x42})});
    REQUIRE(code(kp) == no_error);
    CHECK(kp->private_key == only_object(*f, f.s, CKO_PRIVATE_KEY, "Device Priv TLS Key"));
    CHECK(kp->public_key == only_object(*f, f.s, CKO_PUBLIC_KEY, "Device Pub TLS Key"));
    CHECK(get_bytes(*f, f.s, kp->private_key, CKA_ID) == Bytes{0x42});
    CHECK(get_bool(*f, f.s, kp->private_key, CKA_SENSITIVE));
    CHECK_FALSE(get_bool(*f, f.s, kp->private_key, CKA_EXTRACTABLE));
    CHECK_FALSE(get_bool(*f, f.s, kp->private_key, CKA_LOCAL));

    const Bytes msg = to_bytes("factory test message");
    const Bytes digest = hash(MBEDTLS_MD_SHA256, msg);
    const bool rsa = mbedtls_pk_get_type(key->get()) == MBEDTLS_PK_RSA;
    std::vector<CK_ATTRIBUTE_TYPE> secrets;
    if (rsa) {
        const RsaComponents& k = test_rsa_key();
        Bytes sig = sign(*f, f.s, CK_MECHANISM{CKM_SHA256_RSA_PKCS, nullptr, 0}, kp->private_key, msg);
        CHECK(mbed_rsa_verify(k.n, k.e, MBEDTLS_MD_SHA256, digest, sig));
        CHECK(get_bytes(*f, f.s, kp->public_key, CKA_MODULUS) == k.n);
        secrets = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT};
    } else {
        const auto curve = mbedtls_pk_ec(*key->get())->grp.id;
        Bytes sig = sign(*f, f.s, CK_MECHANISM{CKM_ECDSA_SHA256, nullptr, 0}, kp->private_key, msg);
        CHECK(mbed_ecdsa_verify(curve, ec_point_of(*key->get()), digest, sig));
        CHECK(get_bytes(*f, f.s, kp->public_key, CKA_EC_POINT) == ec_point_of(*key->get()));
        secrets = {CKA_VALUE};
    }
    for (CK_ATTRIBUTE_TYPE type : secrets) {
        CAPTURE(type);
        Bytes buf(1024, 0xEE);
        CK_ATTRIBUTE a{type, buf.data(), static_cast<CK_ULONG>(buf.size())};
        CHECK(code(f->get_attributes(f.s, kp->private_key, std::span(&a, 1))) == Errc::attribute_sensitive);
        CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
        CHECK(std::all_of(buf.begin(), buf.end(), [](unsigned char b) { return b == 0xEE; }));
    }
    // Nor may the key be made readable afterwards.
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE unprotect[] = {{CKA_SENSITIVE, &no, sizeof no}};
    CHECK(code(f->set_attributes(f.s, kp->private_key, unprotect)) == Errc::attribute_read_only);
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE extract[] = {{CKA_EXTRACTABLE, &yes, sizeof yes}};
    CHECK(code(f->set_attributes(f.s, kp->private_key, extract)) == Errc::attribute_read_only);
}

// --- certificates ------------------------------------------------------------------------------

TEST_CASE("provision: the factory flow in one process ends in a mutual-TLS handshake", "[provision][tls]") {
    const pv::KeyType type = GENERATE(pv::KeyType::ec_p256, pv::KeyType::rsa_2048);
    CAPTURE(name(kind_of(type)));
    Fresh<> f;
    REQUIRE(code(pv::generate_key(*f, f.s, type, {.id = bytes_of(Bytes{0x01})})) == no_error);
    const Bytes cert = issue_for(csr_der(*f, f.s, {.subject = "CN=device-7,O=p11tls"}), "CN=device-7,O=p11tls");
    auto stored = pv::import_certificate(*f, f.s, as_span(pem("CERTIFICATE", cert)));
    REQUIRE(code(stored) == no_error);
    CHECK(*stored == 1);
    const CK_ULONG c = only_object(*f, f.s, CKO_CERTIFICATE, "Device Cert");
    CHECK(get_bytes(*f, f.s, c, CKA_VALUE) == cert);
    CHECK(get_bytes(*f, f.s, c, CKA_ID) == Bytes{0x01});  // the key's id
    CHECK(get_ulong(*f, f.s, c, CKA_CERTIFICATE_CATEGORY) == 1);
    REQUIRE(code(pv::import_root(*f, f.s, as_span(world().ca_cert))) == no_error);
    CHECK(get_ulong(*f, f.s, only_object(*f, f.s, CKO_CERTIFICATE, "Root Cert"), CKA_CERTIFICATE_CATEGORY) == 2);

    // TlsSession with its default labels: "Device Priv TLS Key", "Device Cert", "Root Cert".
    GetrandomEntropy entropy;
    auto tls_session = std::make_unique<TlsSession<typename Fresh<>::Tok, PipeEnd, GetrandomEntropy>>(*f, entropy);
    p11tls::tls::Params params;
    params.server_name = server_name;
    params.non_blocking = true;
    REQUIRE(code(tls_session->configure({}, params)) == no_error);
    MbedServer server;
    auto pipe = std::make_unique<Pipe<>>();
    server.attach(pipe->b);
    tls_session->attach(pipe->a);
    Outcome o = run_handshake(*tls_session, server);
    INFO(tls_session->error_message());
    CHECK(o.client == no_error);
    CHECK(o.server == 0);
    REQUIRE(server.peer_cert());
    CHECK(Bytes(server.peer_cert()->raw.p, server.peer_cert()->raw.p + server.peer_cert()->raw.len) == cert);
}

TEST_CASE("provision: a chain is stored leaf first under one label; roots must be CAs", "[provision]") {
    Fresh<> f;
    REQUIRE(code(pv::generate_key(*f, f.s)) == no_error);
    const Bytes leaf = issue_for(csr_der(*f, f.s, {.subject = "CN=leaf"}), "CN=leaf");
    const Bytes chain = cat({pem("CERTIFICATE", leaf), pem("CERTIFICATE", world().ca_cert)});
    auto n = pv::import_certificate(*f, f.s, as_span(chain));
    REQUIRE(code(n) == no_error);
    CHECK(*n == 2);
    CHECK(count_objects(*f, f.s, CKO_CERTIFICATE, "Device Cert") == 2);

    const auto before = snapshot(f->nvm());
    const Bytes not_ca = make_certificate("CN=not a ca", "CN=not a ca", 9);
    CHECK(code(pv::import_root(*f, f.s, as_span(not_ca))) == Errc::not_a_ca);
    // A bundle with one bad member stores none of it.
    const Bytes bundle = cat({pem("CERTIFICATE", world().ca_cert), pem("CERTIFICATE", not_ca)});
    CHECK(code(pv::import_root(*f, f.s, as_span(bundle))) == Errc::not_a_ca);
    CHECK(snapshot(f->nvm()) == before);
    auto roots = pv::import_root(*f, f.s, as_span(cat({pem("CERTIFICATE", world().ca_cert), pem("CERTIFICATE", world().other_ca_cert)})));
    REQUIRE(code(roots) == no_error);
    CHECK(*roots == 2);
}

TEST_CASE("provision: list and destroy", "[provision]") {
    Fresh<> f;
    REQUIRE(code(pv::generate_key(*f, f.s, pv::KeyType::ec_p384, {.id = bytes_of(Bytes{7, 7})})) == no_error);
    REQUIRE(code(pv::import_root(*f, f.s, as_span(world().ca_cert))) == no_error);
    std::vector<std::string> seen;
    auto n = pv::list_objects(*f, f.s, [&](const pv::ObjectInfo& o) {
        std::string line = std::string(o.label) + "/" + std::to_string(o.cls);
        if (o.cls != CKO_CERTIFICATE) line += "/" + std::to_string(o.bits) + "/" + std::to_string(o.id.size());
        if (o.cls == CKO_PRIVATE_KEY) line += *o.sensitive && !*o.extractable && *o.local ? "/protected" : "/OPEN";
        seen.push_back(line);
        if (o.cls != CKO_CERTIFICATE) {
            char text[512];
            auto len = pv::public_key_pem(*f, f.s, o.handle, text);
            CHECK(code(len) == no_error);
            CHECK(std::string_view(text).starts_with("-----BEGIN PUBLIC KEY-----"));
        }
    });
    REQUIRE(code(n) == no_error);
    CHECK(*n == 3);
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::string>{"Device Priv TLS Key/3/384/2/protected", "Device Pub TLS Key/2/384/2", "Root Cert/1"});

    CHECK(code(pv::destroy_objects(*f, f.s, {.label = "no such"})) == Errc::object_not_found);
    CHECK(code(pv::destroy_objects(*f, f.s, {})) == Errc::invalid_argument);
    auto gone = pv::destroy_objects(*f, f.s, {.id = bytes_of(Bytes{7, 7})});
    REQUIRE(code(gone) == no_error);
    CHECK(*gone == 2);
    CHECK(record_ids(f->nvm()).size() == 2);  // token state and the root
}

// --- bad input changes nothing --------------------------------------------------------------

TEST_CASE("provision: bad input gets a clear error and leaves the store exactly as it was", "[provision]") {
    Fresh<> f;
    REQUIRE(code(pv::generate_key(*f, f.s)) == no_error);
    const Bytes device = issue_for(csr_der(*f, f.s, {.subject = "CN=device"}), "CN=device");
    REQUIRE(code(pv::import_certificate(*f, f.s, as_span(device))) == no_error);
    REQUIRE(code(pv::import_root(*f, f.s, as_span(world().ca_cert))) == no_error);
    auto p256 = ec_key(MBEDTLS_ECP_DP_SECP256R1);
    const auto before = snapshot(f->nvm());
    const pv::KeyLabels fresh_labels{.private_label = "new key", .public_label = "new key pub"};

    SECTION("malformed PEM private key") {
        const std::string junk = "-----BEGIN PRIVATE KEY-----\nMIIB!!!notbase64\n-----END PRIVATE KEY-----\n";
        CHECK(code(pv::import_private_key(*f, f.s, bytes_of(junk), fresh_labels)) == Errc::bad_encoding);
    }
    SECTION("truncated DER private key") {
        Bytes der = pkcs8_der(*p256->get());
        der.resize(der.size() / 2);
        CHECK(code(pv::import_private_key(*f, f.s, as_span(der), fresh_labels)) == Errc::bad_encoding);
    }
    SECTION("a certificate where a key belongs") {
        CHECK(code(pv::import_private_key(*f, f.s, as_span(pem("CERTIFICATE", device)), fresh_labels)) == Errc::bad_encoding);
    }
    SECTION("wrong key type: P-521") {
        auto p521 = ec_key(MBEDTLS_ECP_DP_SECP521R1);
        CHECK(code(pv::import_private_key(*f, f.s, as_span(traditional_der(*p521->get())), fresh_labels)) ==
              Errc::unsupported_key);
    }
    SECTION("wrong key type: RSA-1024") {
        Pk small;
        REQUIRE(mbedtls_pk_setup(small.get(), mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) == 0);
        REQUIRE(mbedtls_rsa_gen_key(mbedtls_pk_rsa(*small.get()), &TestRng::f, world().rng.p(), 1024, 65537) == 0);
        CHECK(code(pv::import_private_key(*f, f.s, as_span(traditional_der(*small.get())), fresh_labels)) ==
              Errc::unsupported_key);
    }
    SECTION("malformed certificate PEM") {
        Bytes bad = pem("CERTIFICATE", device);
        bad[40] = '*';
        CHECK(code(pv::import_certificate(*f, f.s, as_span(bad), {.label = "other cert"})) == Errc::bad_encoding);
        CHECK(code(pv::import_root(*f, f.s, as_span(bad), {.label = "other root"})) == Errc::bad_encoding);
    }
    SECTION("a certificate that does not match the key") {
        const Bytes foreign = issue({"CN=someone else", p256->get(), ca_name, world().ca_key->get(), false, 5}, world().rng);
        CHECK(code(pv::import_certificate(*f, f.s, as_span(foreign), {.existing = pv::Existing::replace})) ==
              Errc::tls_key_cert_mismatch);
    }
    SECTION("labels that already exist") {
        CHECK(code(pv::generate_key(*f, f.s)) == Errc::object_exists);
        CHECK(code(pv::import_private_key(*f, f.s, as_span(traditional_der(*p256->get())))) == Errc::object_exists);
        CHECK(code(pv::import_certificate(*f, f.s, as_span(device))) == Errc::object_exists);
        CHECK(code(pv::import_root(*f, f.s, as_span(world().ca_cert))) == Errc::object_exists);
    }
    SECTION("a store that fails every write") {
        f->nvm().fail_after(0);
        CHECK(code(pv::generate_key(*f, f.s, pv::KeyType::ec_p256, fresh_labels)) == Errc::nvm_io);
        CHECK(code(pv::import_private_key(*f, f.s, as_span(traditional_der(*p256->get())), fresh_labels)) == Errc::nvm_io);
        CHECK(code(pv::import_certificate(*f, f.s, as_span(device), {.label = "other cert"})) == Errc::nvm_io);
        CHECK(code(pv::import_root(*f, f.s, as_span(world().ca_cert), {.label = "other root"})) == Errc::nvm_io);
        f->nvm().clear_failure();
    }
    CHECK(snapshot(f->nvm()) == before);
}

TEST_CASE("provision: a store that fills up midway is rolled back", "[provision]") {
    // Five records: the token's state, the key pair and the root leave one free.
    Fresh<5> f;
    REQUIRE(code(pv::generate_key(*f, f.s)) == no_error);
    REQUIRE(code(pv::import_root(*f, f.s, as_span(world().ca_cert))) == no_error);
    REQUIRE(record_ids(f->nvm()).size() == 4);
    const auto before = snapshot(f->nvm());

    SECTION("an imported key pair: the private key fits, the public key does not") {
        auto key = ec_key(MBEDTLS_ECP_DP_SECP256R1);
        CHECK(code(pv::import_private_key(*f, f.s, as_span(traditional_der(*key->get())),
                                          {.private_label = "k2", .public_label = "k2 pub"})) == Errc::nvm_full);
    }
    SECTION("a generated key pair") {
        CHECK(code(pv::generate_key(*f, f.s, pv::KeyType::ec_p256, {.private_label = "k2", .public_label = "k2 pub"})) ==
              Errc::nvm_full);
    }
    SECTION("a certificate and its chain: the leaf fits, the CA does not") {
        const Bytes leaf = issue_for(csr_der(*f, f.s, {.subject = "CN=leaf"}), "CN=leaf");
        const Bytes chain = cat({pem("CERTIFICATE", leaf), pem("CERTIFICATE", world().ca_cert)});
        CHECK(code(pv::import_certificate(*f, f.s, as_span(chain))) == Errc::nvm_full);
    }
    SECTION("replacing a key needs room for the new one first") {
        CHECK(code(pv::generate_key(*f, f.s, pv::KeyType::ec_p256, {.existing = pv::Existing::replace})) == Errc::nvm_full);
    }
    CHECK(snapshot(f->nvm()) == before);
    CHECK(count_objects(*f, f.s, CKO_PRIVATE_KEY, "k2") == 0);
}

}  // namespace
