// SPDX-License-Identifier: MIT
// token_demo: the board's PKCS#11 token from C++. Initializes the token (first run), logs in,
// generates the device key inside the token under the FreeRTOS labels, signs and verifies, shows
// that the private key cannot be read out, and reopens the token to show the key persisted.
//
//   token_demo [--store DIR] [--pin PIN] [--so-pin PIN]
#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/core.h>

#include <p11tls/board.hpp>
#include <p11tls/token/template.hpp>

namespace {

using p11tls::token::Template;
using Token = p11tls::board::Token;

constexpr std::string_view priv_label = "Device Priv TLS Key";
constexpr std::string_view pub_label = "Device Pub TLS Key";

[[noreturn]] void die(std::string_view what, p11tls::Error e) {
    fmt::print(stderr, "token_demo: {}: {}\n", what, p11tls::describe(e.code));
    std::exit(1);
}

template <class T>
T check(p11tls::Result<T> r, std::string_view what) {
    if (!r) die(what, r.error());
    if constexpr (!std::is_void_v<T>) return std::move(*r);
}

CK_OBJECT_HANDLE find_one(Token& t, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, std::string_view label) {
    Template<> q;
    q.add(CKA_CLASS, cls).add(CKA_LABEL, label);
    check(t.find_init(s, q.view()), "find");
    std::array<CK_OBJECT_HANDLE, 1> h{};
    std::size_t n = check(t.find(s, h), "find");
    check(t.find_final(s), "find");
    return n ? h[0] : CK_INVALID_HANDLE;
}

std::string hex(std::span<const std::byte> b, std::size_t max = 16) {
    std::string s;
    for (std::size_t i = 0; i < b.size() && i < max; ++i) s += fmt::format("{:02x}", std::to_integer<unsigned>(b[i]));
    if (b.size() > max) s += "...";
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    std::string store = p11tls::board::store_directory(), pin = "1234", so_pin = "so-pin-5678";
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if ((a == "--store" || a == "--pin" || a == "--so-pin") && i + 1 < argc) {
            (a == "--store" ? store : a == "--pin" ? pin : so_pin) = argv[++i];
        } else {
            fmt::print(stderr, "usage: token_demo [--store DIR] [--pin PIN] [--so-pin PIN]\n");
            return 2;
        }
    }
    p11tls::board::initialize();
    fmt::print("[1] opening the {} board's token, store {}\n", p11tls::board::name, store);
    auto token = check(p11tls::board::open_token(store), "open token");
    CK_TOKEN_INFO info;
    token->token_info(info);
    fmt::print("    serial {}, {}\n", std::string_view(reinterpret_cast<char*>(info.serialNumber), 16),
               (info.flags & CKF_TOKEN_INITIALIZED) ? "initialized" : "not initialized yet");

    if (!(info.flags & CKF_TOKEN_INITIALIZED)) {
        fmt::print("[2] initializing: label \"p11tls demo\", SO PIN, then the user PIN\n");
        std::array<char, 32> label;
        label.fill(' ');
        std::memcpy(label.data(), "p11tls demo", 11);
        check(token->init_token(so_pin, label), "C_InitToken");
        auto s = check(token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION), "open session");
        check(token->login(s, CKU_SO, so_pin), "SO login");
        check(token->init_pin(s, pin), "C_InitPIN");
        check(token->close_session(s), "close session");
    } else {
        fmt::print("[2] token already initialized; keeping its objects\n");
    }

    auto s = check(token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION), "open session");
    check(token->login(s, CKU_USER, pin), "user login");
    fmt::print("[3] logged in as user\n");

    CK_OBJECT_HANDLE priv = find_one(*token, s, CKO_PRIVATE_KEY, priv_label);
    CK_OBJECT_HANDLE pub = find_one(*token, s, CKO_PUBLIC_KEY, pub_label);
    if (priv == CK_INVALID_HANDLE || pub == CK_INVALID_HANDLE) {
        fmt::print("[4] generating an EC P-256 key pair inside the token: \"{}\" / \"{}\"\n", priv_label, pub_label);
        static constexpr unsigned char p256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
        Template<> pt, kt;
        pt.add(CKA_TOKEN, true).add(CKA_LABEL, pub_label).add(CKA_EC_PARAMS, std::as_bytes(std::span(p256)));
        kt.add(CKA_TOKEN, true).add(CKA_LABEL, priv_label).add(CKA_PRIVATE, true).add(CKA_SIGN, true);
        CK_MECHANISM gen{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
        auto kp = check(token->generate_key_pair(s, gen, pt.view(), kt.view()), "C_GenerateKeyPair");
        priv = kp.private_key;
        pub = kp.public_key;
    } else {
        fmt::print("[4] found the device key from an earlier run\n");
    }

    const std::string_view message = "telemetry: temperature=21.5";
    auto msg = std::as_bytes(std::span(message.data(), message.size()));
    CK_MECHANISM mech{CKM_ECDSA_SHA256, nullptr, 0};
    std::array<std::byte, 96> sig;
    check(token->sign_init(s, mech, priv), "C_SignInit");
    std::size_t n = check(token->sign(s, msg, sig), "C_Sign");
    fmt::print("[5] signed \"{}\" inside the token: r||s = {} ({} bytes)\n", message, hex(std::span(sig).first(n)), n);
    check(token->verify_init(s, mech, pub), "C_VerifyInit");
    check(token->verify(s, msg, std::span(sig).first(n)), "C_Verify");
    fmt::print("    signature verifies with \"{}\"\n", pub_label);

    CK_ATTRIBUTE value{CKA_VALUE, nullptr, 0};
    auto leak = token->get_attributes(s, priv, std::span(&value, 1));
    fmt::print("[6] reading the private key's CKA_VALUE: {}\n",
               leak ? "RETURNED (this must never happen)" : p11tls::describe(leak.error().code));
    if (leak) return 1;

    check(token->close_session(s), "close session");
    token.reset();
    fmt::print("[7] token closed; reopening from the store\n");
    token = check(p11tls::board::open_token(store), "reopen token");
    s = check(token->open_session(CKF_SERIAL_SESSION), "open session");
    check(token->login(s, CKU_USER, pin), "user login");
    bool found = find_one(*token, s, CKO_PRIVATE_KEY, priv_label) != CK_INVALID_HANDLE;
    fmt::print("    \"{}\" {} after reopening\n", priv_label, found ? "is still there" : "IS MISSING");
    return found ? 0 : 1;
}
