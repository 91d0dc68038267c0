// SPDX-License-Identifier: MIT
// The one Errc <-> CK_RV mapping.
#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/cryptoki/errors.hpp>

#include "support/result.hpp"

using namespace p11tls;
using p11tls::cryptoki::from_ckr;
using p11tls::cryptoki::to_ckr;

namespace {

// Every defined Errc: the codes describe() knows, found by scanning the module ranges, so a
// code added later is covered without touching this test.
std::vector<Errc> all_codes() {
    std::vector<Errc> codes;
    for (unsigned v = 1; v < 0x1000; ++v) {
        auto e = static_cast<Errc>(v);
        if (std::strcmp(describe(e), "unknown error") != 0) codes.push_back(e);
    }
    return codes;
}

bool token_range(Errc e) { return (static_cast<unsigned>(e) & 0xFF00u) == 0x0300u; }

}  // namespace

TEST_CASE("errors: the scan finds the codes of every module range", "[cryptoki][errors]") {
    const auto codes = all_codes();
    CHECK(codes.size() >= 55);
    CHECK(std::count_if(codes.begin(), codes.end(), token_range) >= 42);
}

TEST_CASE("errors: each token code maps to its own CK_RV", "[cryptoki][errors]") {
    std::set<CK_RV> seen;
    for (Errc e : all_codes()) {
        if (!token_range(e)) continue;
        INFO(describe(e));
        const CK_RV rv = to_ckr(e);
        CHECK(rv != CKR_GENERAL_ERROR);
        CHECK(rv != CKR_OK);
        CHECK(seen.insert(rv).second);
    }
}

TEST_CASE("errors: from_ckr maps every CK_RV the module returns back to a code with that CK_RV", "[cryptoki][errors]") {
    for (Errc e : all_codes()) {
        const CK_RV rv = to_ckr(e);
        if (rv == CKR_GENERAL_ERROR) continue;  // not a Cryptoki error (transport, TLS, nvm_not_found)
        INFO(describe(e) << " -> CK_RV 0x" << std::hex << rv);
        CHECK(to_ckr(from_ckr(rv)) == rv);
    }
}

TEST_CASE("errors: a CK_RV without a code becomes device_error", "[cryptoki][errors]") {
    CHECK(from_ckr(CKR_VENDOR_DEFINED | 0x1234) == Errc::device_error);
    CHECK(from_ckr(CKR_TOKEN_NOT_PRESENT) == Errc::device_error);
}
