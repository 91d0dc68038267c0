// SPDX-License-Identifier: MIT
// Fuzz target: the certificate-request and certificate paths of provisioning, over a token
// that holds keys: provision::write_csr with fuzzed subject, subjectAltNames, key reference,
// encoding and output size; public_key_pem; import_certificate when the token holds the key
// (the certificate must be for it); describe_certificate with fuzzed output sizes.
//
// Input: {what u8} then, by what % 4:
//   0 CSR:  {key u8, encoding u8, out size u16, subject chunk, dns count u8, dns chunks,
//            ip count u8, ips {len u8, 16 bytes}}
//   1 public key PEM: {key u8, out size u16}
//   2 certificate import: {key u8, existing u8} then the certificate bytes
//   3 describe: {subject size u8, issuer size u8, date size u8} then DER bytes
// Output buffers have exactly the size asked for, so ASan sees any write past them.
// Invariants: a request written parses and carries the public key of the token key it names
// (never a mismatch between the token's key and public key); PEM output is NUL-terminated at the length returned; a too-small buffer is
// Errc::buffer_too_small; an imported certificate holds the token key's public key; a refused
// import changes nothing; describe_certificate's strings end inside their buffers.
#include <memory>

#include <mbedtls/x509_csr.h>

#include <p11tls/provision/provision.hpp>

#include "common.hpp"
#include "pki.hpp"
#include "token_config.hpp"

using namespace p11tls;
using namespace p11tls::fuzz;
namespace pv = p11tls::provision;
namespace m = p11tls::detail::mbed;

namespace {

constexpr std::byte p384_id[] = {std::byte{0x38}, std::byte{0x34}};

struct Material {
    std::unique_ptr<pki::Pk> ca, p256, p384, other;
    Bytes p256_cert, p384_cert, other_cert, ca_cert;
    std::unique_ptr<FuzzNvm> store;  // a token holding the P-256 key (default labels) and the P-384 key (by id)
};

Material& material() {
    static Material* mt = [] {
        auto* x = new Material();
        pki::Rng rng("csr-cert");
        x->ca = pki::ec_key(rng);
        x->p256 = pki::ec_key(rng);
        x->p384 = pki::ec_key(rng, MBEDTLS_ECP_DP_SECP384R1);
        x->other = pki::ec_key(rng);
        const char* ca_name = "CN=fuzz root,O=p11tls";
        x->ca_cert = pki::issue({ca_name, x->ca->get(), ca_name, x->ca->get(), true, 1}, rng);
        x->p256_cert = pki::issue({"CN=device p256,O=p11tls", x->p256->get(), ca_name, x->ca->get(), false, 2, "d.example"}, rng);
        x->p384_cert = pki::issue({"CN=device p384,O=p11tls", x->p384->get(), ca_name, x->ca->get(), false, 3}, rng);
        x->other_cert = pki::issue({"CN=someone else", x->other->get(), ca_name, x->ca->get(), false, 4}, rng);

        FuzzToken t(FuzzNvm{}, DetEntropy{});
        must(t.load(), "load");
        auto s = t.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
        must(s, "open_session");
        const Bytes k256 = pki::key_der(x->p256->get()), k384 = pki::key_der(x->p384->get());
        must(pv::import_private_key(t, *s, as_bytes(k256)), "import P-256 key");
        must(pv::import_private_key(t, *s, as_bytes(k384),
                                    {.private_label = "p384 key", .public_label = "p384 public", .id = p384_id}),
             "import P-384 key");
        x->store = std::make_unique<FuzzNvm>(t.nvm());
        return x;
    }();
    return *mt;
}

pv::KeyRef key_ref(std::uint8_t sel) {
    switch (sel % 3) {
    case 0: return {};                                                  // "Device Priv TLS Key"
    case 1: return {.label = "unused", .id = p384_id, .public_label = "p384 public"};
    default: return {.label = "no such key"};
    }
}

/// The public key of `pk` as SubjectPublicKeyInfo DER.
Bytes spki(mbedtls_pk_context* pk) {
    unsigned char buf[600];
    int len = mbedtls_pk_write_pubkey_der(pk, buf, sizeof buf);
    P11TLS_FUZZ_CHECK(len > 0);
    return Bytes(buf + sizeof buf - len, buf + sizeof buf);
}

struct TokenRun {
    std::unique_ptr<FuzzToken> token = std::make_unique<FuzzToken>(*material().store, DetEntropy{});
    CK_ULONG session = 0;
    TokenRun() {
        P11TLS_FUZZ_CHECK(token->load());
        auto s = token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
        P11TLS_FUZZ_CHECK(s.has_value());
        session = *s;
    }
};

std::string_view text(std::span<const std::uint8_t> v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

void csr(Reader& in) {
    const std::uint8_t key = in.u8();
    const auto enc = in.u8() % 2 ? m::Encoding::der : m::Encoding::pem;
    const std::size_t out_size = in.u16() % 6000;
    const std::string subject(text(in.chunk()));
    std::vector<std::string> dns_text(in.u8() % 4);
    for (auto& d : dns_text) d = text(in.chunk());
    std::vector<std::string_view> dns(dns_text.begin(), dns_text.end());
    std::vector<m::IpAddress> ips(in.u8() % 3);
    for (auto& ip : ips) {
        ip.len = in.u8();
        auto b = in.bytes(16);
        std::memcpy(ip.bytes.data(), b.data(), b.size());
    }
    TokenRun tr;
    auto out = std::make_unique<std::byte[]>(out_size);
    pv::CsrOptions o{.subject = subject, .dns = dns, .ips = ips, .key = key_ref(key), .encoding = enc};
    auto n = pv::write_csr(*tr.token, tr.session, o, std::span(out.get(), out_size));
    if (!n) {
        P11TLS_FUZZ_CHECK(n.error().code != Errc::tls_key_cert_mismatch);  // the token's key and public key agree
        return;
    }
    P11TLS_FUZZ_CHECK(*n <= out_size);
    mbedtls_x509_csr parsed;
    mbedtls_x509_csr_init(&parsed);
    const auto* p = reinterpret_cast<const unsigned char*>(out.get());
    if (enc == m::Encoding::pem) {
        P11TLS_FUZZ_CHECK(*n < out_size && out[*n] == std::byte{0});
        P11TLS_FUZZ_CHECK(mbedtls_x509_csr_parse(&parsed, p, *n + 1) == 0);
    } else {
        P11TLS_FUZZ_CHECK(mbedtls_x509_csr_parse_der(&parsed, p, *n) == 0);
    }
    // The request carries the public key of the key it names.
    Material& mt = material();
    P11TLS_FUZZ_CHECK(spki(&parsed.pk) == spki(key % 3 == 0 ? mt.p256->get() : mt.p384->get()));
    mbedtls_x509_csr_free(&parsed);
}

void public_pem(Reader& in) {
    const std::uint8_t key = in.u8();
    const std::size_t out_size = in.u16() % 1200;
    TokenRun tr;
    std::array<CK_ULONG, 2> hits;
    const pv::KeyRef ref = key_ref(key);
    token::Template<2, 256> q;
    q.add(CKA_CLASS, CKO_PRIVATE_KEY);
    if (!ref.id.empty()) q.add(CKA_ID, ref.id);
    else q.add(CKA_LABEL, ref.label);
    P11TLS_FUZZ_CHECK(tr.token->find_init(tr.session, std::as_const(q).view()));
    auto found = tr.token->find(tr.session, hits);
    P11TLS_FUZZ_CHECK(found && tr.token->find_final(tr.session));
    if (*found == 0) return;
    auto out = std::make_unique<char[]>(out_size);
    auto n = pv::public_key_pem(*tr.token, tr.session, hits[0], std::span(out.get(), out_size), ref.public_label);
    if (!n) {
        P11TLS_FUZZ_CHECK(n.error().code == Errc::buffer_too_small);
        return;
    }
    P11TLS_FUZZ_CHECK(*n < out_size && out[*n] == '\0');
    pki::Pk pk;
    P11TLS_FUZZ_CHECK(mbedtls_pk_parse_public_key(pk.get(), reinterpret_cast<const unsigned char*>(out.get()), *n + 1) == 0);
    Material& mt = material();
    P11TLS_FUZZ_CHECK(spki(pk.get()) == spki(key % 3 == 0 ? mt.p256->get() : mt.p384->get()));
}

void import_cert(Reader& in) {
    const std::uint8_t key = in.u8();
    const std::uint8_t existing = in.u8();
    const auto data = as_bytes(in.rest());
    TokenRun tr;
    const FuzzNvm before = tr.token->nvm();
    pv::CertOptions o{.key = key_ref(key), .existing = existing % 2 ? pv::Existing::replace : pv::Existing::refuse};
    auto n = pv::import_certificate(*tr.token, tr.session, data, o);
    if (!n) {
        // Nothing stored: the same records with the same bytes.
        std::array<RecordId, 64> ia, ib;
        auto na = before.list(ia), nb = tr.token->nvm().list(ib);
        P11TLS_FUZZ_CHECK(na && nb && *na == *nb);
        static std::array<std::byte, 8192> ba, bb;
        for (std::size_t i = 0; i < *na; ++i) {
            auto la = before.load(ia[i], ba), lb = tr.token->nvm().load(ia[i], bb);
            P11TLS_FUZZ_CHECK(la && lb && *la == *lb && std::memcmp(ba.data(), bb.data(), *la) == 0);
        }
        return;
    }
    // A key the token holds took a certificate for that key, and nothing else.
    if (key % 3 != 2) {
        m::CertList certs;
        P11TLS_FUZZ_CHECK(certs.parse(data));
        std::array<std::byte, 600> theirs;
        auto len = certs.spki_der(0, theirs);
        P11TLS_FUZZ_CHECK(len.has_value());
        Material& mt = material();
        const Bytes mine = spki(key % 3 == 0 ? mt.p256->get() : mt.p384->get());
        P11TLS_FUZZ_CHECK(*len == mine.size() && std::memcmp(theirs.data(), mine.data(), *len) == 0);
    }
}

void describe(Reader& in) {
    const std::size_t ns = in.u8(), ni = in.u8(), nd = in.u8() % 24;
    const auto der = as_bytes(in.rest());
    auto subject = std::make_unique<char[]>(ns), issuer = std::make_unique<char[]>(ni), date = std::make_unique<char[]>(nd);
    std::span<char> s(subject.get(), ns), i(issuer.get(), ni), d(date.get(), nd);
    if (!m::describe_certificate(der, s, i, d)) return;
    if (ns) P11TLS_FUZZ_CHECK(std::memchr(subject.get(), '\0', ns));
    if (ni) P11TLS_FUZZ_CHECK(std::memchr(issuer.get(), '\0', ni));
    if (nd) P11TLS_FUZZ_CHECK(std::memchr(date.get(), '\0', nd));
}

void make_seeds(const std::string& dir) {
    Material& mt = material();
    auto csr_seed = [&](std::string_view name, unsigned key, unsigned enc, unsigned size, std::string_view subject,
                        std::initializer_list<std::string_view> dns, std::initializer_list<Bytes> ips) {
        Writer w;
        w.u8(0).u8(key).u8(enc).u16(size).chunk(subject).u8(static_cast<unsigned>(dns.size()));
        for (auto d : dns) w.chunk(d);
        w.u8(static_cast<unsigned>(ips.size()));
        for (const Bytes& ip : ips) {
            Bytes b = ip;
            b.resize(16);
            w.u8(static_cast<unsigned>(ip.size())).bytes(std::span<const std::uint8_t>(b));
        }
        write_seed(dir, name, w.data());
    };
    csr_seed("csr-p256-pem", 0, 0, 4096, "CN=device-0042,O=Acme,C=DE", {}, {});
    csr_seed("csr-p384-der-san", 1, 1, 4096, "CN=device-7,OU=fleet", {"device-7.example", "alt.example"},
             {Bytes{192, 0, 2, 7}, Bytes(16, 0x20)});
    csr_seed("csr-small-buffer", 0, 0, 100, "CN=small", {"a.example"}, {});
    for (unsigned key : {0u, 1u}) {
        Writer w;
        w.u8(1).u8(key).u16(key ? 300 : 1000);
        write_seed(dir, key ? "pubkey-p384-pem" : "pubkey-p256-pem", w.data());
    }
    auto cert_seed = [&](std::string_view name, unsigned key, unsigned existing, const Bytes& v) {
        Writer w;
        w.u8(2).u8(key).u8(existing).bytes(std::span<const std::uint8_t>(v));
        write_seed(dir, name, w.data());
    };
    cert_seed("import-p256-der", 0, 0, mt.p256_cert);
    const Bytes chain_a = pki::cert_pem(mt.p384_cert), chain_b = pki::cert_pem(mt.ca_cert);
    cert_seed("import-p384-chain-pem", 1, 1, pki::concat({&chain_a, &chain_b}));
    cert_seed("import-mismatch", 0, 0, mt.other_cert);
    Writer d;
    d.u8(3).u8(64).u8(20).u8(11).bytes(std::span<const std::uint8_t>(mt.p256_cert));
    write_seed(dir, "describe", d.data());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)material();
    seed_mode(make_seeds);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    switch (in.u8() % 4) {
    case 0: csr(in); break;
    case 1: public_pem(in); break;
    case 2: import_cert(in); break;
    case 3: describe(in); break;
    }
    return 0;
}
