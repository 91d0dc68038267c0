// SPDX-License-Identifier: MIT
// token::Template: a CK_ATTRIBUTE array that owns its values.
#include <cstdint>
#include <cstring>

#include <catch2/catch.hpp>

#include <p11tls/token/template.hpp>

using p11tls::token::Template;

TEST_CASE("Template: values take the PKCS#11 representation of their type", "[token][template]") {
    Template<> t;
    const std::byte id[] = {std::byte{0xAB}, std::byte{0xCD}};
    t.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_TOKEN, true).add(CKA_LABEL, "Device Priv TLS Key").add(CKA_ID, std::span(id));
    REQUIRE(t.ok());
    auto v = t.view();
    REQUIRE(v.size() == 4);
    CHECK(v[0].type == CKA_CLASS);
    REQUIRE(v[0].ulValueLen == sizeof(CK_ULONG));
    CHECK(*static_cast<const CK_ULONG*>(v[0].pValue) == CKO_PRIVATE_KEY);
    REQUIRE(v[1].ulValueLen == sizeof(CK_BBOOL));
    CHECK(*static_cast<const CK_BBOOL*>(v[1].pValue) == CK_TRUE);
    REQUIRE(v[2].ulValueLen == 19);  // no terminator
    CHECK(std::memcmp(v[2].pValue, "Device Priv TLS Key", 19) == 0);
    REQUIRE(v[3].ulValueLen == 2);
    CHECK(std::memcmp(v[3].pValue, id, 2) == 0);
}

TEST_CASE("Template: CK_ULONG values are aligned for in-place reads", "[token][template]") {
    Template<> t;
    t.add(CKA_LABEL, "abc").add(CKA_KEY_TYPE, CKK_EC).add(CKA_SIGN, false).add(CKA_MODULUS_BITS, 2048);
    REQUIRE(t.ok());
    for (const CK_ATTRIBUTE& a : t.view())
        if (a.ulValueLen == sizeof(CK_ULONG))
            CHECK(reinterpret_cast<std::uintptr_t>(a.pValue) % alignof(CK_ULONG) == 0);
    CHECK(*static_cast<const CK_ULONG*>(t.view()[3].pValue) == 2048);
}

TEST_CASE("Template: an empty value has a NULL pointer and length 0", "[token][template]") {
    Template<> t;
    t.add(CKA_LABEL, "");
    REQUIRE(t.ok());
    CHECK(t.view()[0].pValue == nullptr);
    CHECK(t.view()[0].ulValueLen == 0);
}

TEST_CASE("Template: what does not fit sets ok() false and keeps the attributes before it", "[token][template]") {
    SECTION("too many attributes") {
        Template<2, 64> t;
        t.add(CKA_TOKEN, true).add(CKA_SIGN, true).add(CKA_VERIFY, true);
        CHECK_FALSE(t.ok());
        CHECK(t.view().size() == 2);
    }
    SECTION("too many bytes") {
        Template<4, 16> t;
        t.add(CKA_LABEL, "0123456789").add(CKA_ID, "0123456789").add(CKA_TOKEN, true);
        CHECK_FALSE(t.ok());
        REQUIRE(t.view().size() == 1);
        CHECK(t.view()[0].type == CKA_LABEL);
    }
}
