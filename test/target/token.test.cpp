// SPDX-License-Identifier: MIT
// The board's token on the target: provisioning, signatures checked by plain mbedTLS, key
// generation, persistence across a remount of the board's flash store, and token initialisation.
#include <array>
#include <cstring>
#include <optional>

#include <mbedtls/ecdsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "check.hpp"
#include "device.hpp"

using namespace p11tls;
using p11tls::target::bytes;

namespace {

// The board's token on its flash store, mounted and loaded before main().
board::Token& tok = *board::open_token().value();

constexpr const char message[] = "firmware says hello";

std::array<std::byte, 32> digest_of(const char* text) {
    std::array<std::byte, 32> h;
    mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(text), std::strlen(text),
                       reinterpret_cast<unsigned char*>(h.data()), 0);
    return h;
}

// Verifies a raw r||s P-256 signature with the public key of a DER certificate, in plain mbedTLS.
bool verify_with_cert(std::span<const unsigned char> cert_der, std::span<const std::byte> digest,
                      std::span<const std::byte> rs) {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    bool ok = mbedtls_x509_crt_parse_der(&crt, cert_der.data(), cert_der.size()) == 0 && rs.size() == 64 &&
              mbedtls_mpi_read_binary(&r, reinterpret_cast<const unsigned char*>(rs.data()), 32) == 0 &&
              mbedtls_mpi_read_binary(&s, reinterpret_cast<const unsigned char*>(rs.data()) + 32, 32) == 0;
    if (ok) {
        const mbedtls_ecp_keypair* ec = mbedtls_pk_ec(crt.pk);
        ok = mbedtls_ecdsa_verify(const_cast<mbedtls_ecp_group*>(&ec->grp), reinterpret_cast<const unsigned char*>(digest.data()),
                                  digest.size(), &ec->Q, &r, &s) == 0;
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_x509_crt_free(&crt);
    return ok;
}

Result<CK_ULONG> find_one(board::Token& t, CK_ULONG s, CK_OBJECT_CLASS cls, const char* label) {
    token::Template<2, 64> q;
    q.add(CKA_CLASS, cls).add(CKA_LABEL, label);
    P11TLS_TRY(t.find_init(s, q.view()));
    std::array<CK_ULONG, 2> h;
    auto n = t.find(s, h);
    (void)t.find_final(s);
    if (!n) return fail(n.error());
    if (*n != 1) return fail(Errc::object_handle_invalid);
    return h[0];
}

}  // namespace

TARGET_TEST("provisioning stores the device key, its certificate and the root CA in the board's Nvm") {
    auto s = tok.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    REQUIRE_OK(s);
    REQUIRE_OK(target::provision_device(tok, *s));
    REQUIRE_OK(find_one(tok, *s, CKO_PRIVATE_KEY, "Device Priv TLS Key"));
    REQUIRE_OK(find_one(tok, *s, CKO_CERTIFICATE, "Device Cert"));
    REQUIRE_OK(find_one(tok, *s, CKO_CERTIFICATE, "Root Cert"));
    std::array<RecordId, 16> ids;
    auto n = tok.nvm().list(ids);
    REQUIRE_OK(n);
    CHECK(*n == 4);  // token state and three objects
    CHECK(tok.nvm().device().chip().stats().programs > 0);  // written to the emulated flash
    REQUIRE_OK(tok.close_session(*s));
}

TARGET_TEST("the private value of the device key cannot be read") {
    auto s = tok.open_session(CKF_SERIAL_SESSION);
    REQUIRE_OK(s);
    auto key = find_one(tok, *s, CKO_PRIVATE_KEY, "Device Priv TLS Key");
    REQUIRE_OK(key);
    std::array<std::byte, 64> value;
    CK_ATTRIBUTE a{CKA_VALUE, value.data(), value.size()};
    CHECK(!tok.get_attributes(*s, *key, std::span(&a, 1)));
    CHECK(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    REQUIRE_OK(tok.close_session(*s));
}

TARGET_TEST("CKM_ECDSA with the device key verifies against the device certificate") {
    auto s = tok.open_session(CKF_SERIAL_SESSION);
    REQUIRE_OK(s);
    auto key = find_one(tok, *s, CKO_PRIVATE_KEY, "Device Priv TLS Key");
    REQUIRE_OK(key);
    const auto digest = digest_of(message);
    CK_MECHANISM ecdsa{CKM_ECDSA, nullptr, 0};
    REQUIRE_OK(tok.sign_init(*s, ecdsa, *key));
    std::array<std::byte, 64> sig;
    auto n = tok.sign(*s, digest, sig);
    REQUIRE_OK(n);
    REQUIRE(*n == 64);
    CHECK(verify_with_cert(test_client_cert, digest, sig));
    auto wrong = digest_of("firmware says goodbye");
    CHECK(!verify_with_cert(test_client_cert, wrong, sig));
    REQUIRE_OK(tok.close_session(*s));
}

TARGET_TEST("a P-256 key pair generated in the token signs, and the token verifies it") {
    auto s = tok.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    REQUIRE_OK(s);
    token::Template<6, 64> pub, priv;
    pub.add(CKA_EC_PARAMS, std::as_bytes(std::span(target::p256_oid))).add(CKA_TOKEN, true).add(CKA_LABEL, "spare").add(CKA_VERIFY, true);
    priv.add(CKA_TOKEN, true).add(CKA_LABEL, "spare").add(CKA_SIGN, true).add(CKA_PRIVATE, true);
    CK_MECHANISM gen{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    auto kp = tok.generate_key_pair(*s, gen, pub.view(), priv.view());
    REQUIRE_OK(kp);
    const auto digest = digest_of(message);
    CK_MECHANISM ecdsa{CKM_ECDSA, nullptr, 0};
    REQUIRE_OK(tok.sign_init(*s, ecdsa, kp->private_key));
    std::array<std::byte, 64> sig;
    auto n = tok.sign(*s, digest, sig);
    REQUIRE_OK(n);
    REQUIRE_OK(tok.verify_init(*s, ecdsa, kp->public_key));
    REQUIRE_OK(tok.verify(*s, digest, std::span<const std::byte>(sig).first(*n)));
    sig[5] ^= std::byte{1};
    REQUIRE_OK(tok.verify_init(*s, ecdsa, kp->public_key));
    CHECK(tok.verify(*s, digest, std::span<const std::byte>(sig).first(*n)).error().code == Errc::signature_invalid);
    REQUIRE_OK(tok.close_session(*s));
}

TARGET_TEST("a token loaded from the same Nvm after a reset has the objects and signs") {
    // A second store mounted on the same flash, as after a reset: everything comes from flash.
    auto nvm = board::Nvm::mount(board::Flash(board::flash_chip()));
    REQUIRE_OK(nvm);
    static std::optional<board::Token> reloaded;
    reloaded.emplace(std::move(*nvm), board::Entropy{});
    board::Token& again = *reloaded;
    REQUIRE_OK(again.load());
    CHECK(again.corrupt_records() == 0);
    auto s = again.open_session(CKF_SERIAL_SESSION);
    REQUIRE_OK(s);
    auto key = find_one(again, *s, CKO_PRIVATE_KEY, "Device Priv TLS Key");
    REQUIRE_OK(key);
    REQUIRE_OK(find_one(again, *s, CKO_PRIVATE_KEY, "spare"));
    const auto digest = digest_of(message);
    CK_MECHANISM ecdsa{CKM_ECDSA, nullptr, 0};
    REQUIRE_OK(again.sign_init(*s, ecdsa, *key));
    std::array<std::byte, 64> sig;
    auto n = again.sign(*s, digest, sig);
    REQUIRE_OK(n);
    CHECK(verify_with_cert(test_client_cert, digest, std::span<const std::byte>(sig).first(*n)));
    REQUIRE_OK(again.close_session(*s));
}

TARGET_TEST("C_InitToken with an SO PIN erases every object from the Nvm") {
    std::array<char, 32> label;
    label.fill(' ');
    std::memcpy(label.data(), "m4 token", 8);
    static constexpr char so_pin[] = "so-pin-1234";
    REQUIRE_OK(tok.init_token(std::span(so_pin, sizeof so_pin - 1), label));
    std::array<RecordId, 16> ids;
    auto n = tok.nvm().list(ids);
    REQUIRE_OK(n);
    CHECK(*n == 1);  // the token state only
    auto s = tok.open_session(CKF_SERIAL_SESSION);
    REQUIRE_OK(s);
    CHECK(find_one(tok, *s, CKO_PRIVATE_KEY, "Device Priv TLS Key").error().code == Errc::object_handle_invalid);
    REQUIRE_OK(tok.close_session(*s));
}

int main() {
    board::initialize();
    std::printf("board %s: token tests\n", board::name);
    return target::run_all();
}
