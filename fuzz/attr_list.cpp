// SPDX-License-Identifier: MIT
// Fuzz target: the token's attribute-list decoding on its own (token/object.hpp), the layer
// every object record read from the store goes through before SoftToken trusts it:
// AttrList::valid, then find/flag/ulong/for_each on what it accepted, and export_value of each
// entry into caller buffers of every size. Cheap per input, so it runs millions of inputs where
// token-load (a whole token per input) runs thousands.
//
// Input: {buffer size u8} then the encoded list.
// Invariants: an accepted list's entries tile it exactly, with no type twice and every
// boolean/ulong/array entry of its kind's length; find() gives the entry for_each gives;
// export_value writes at most the caller's length, reports the length it needs (a length
// query gives the same), and marks a short buffer CK_UNAVAILABLE_INFORMATION.
#include <memory>
#include <set>

#include <p11tls/token/object.hpp>

#include "common.hpp"

using namespace p11tls;
using namespace p11tls::fuzz;

namespace {

void run(Reader& in) {
    const std::size_t out_size = in.u8();
    const auto bytes = as_bytes(in.rest());
    if (!token::AttrList::valid(bytes)) return;
    const token::AttrList list(bytes);
    std::size_t covered = 0, entries = 0;
    std::set<CK_ATTRIBUTE_TYPE> seen;
    list.for_each([&](const token::AttrList::Entry& e) {
        ++entries;
        covered += 8 + e.value.size();
        P11TLS_FUZZ_CHECK(e.value.data() >= bytes.data() && e.value.data() + e.value.size() <= bytes.data() + bytes.size());
        P11TLS_FUZZ_CHECK(seen.insert(e.type).second);  // no type twice
        switch (token::attr_kind(e.type)) {
        case token::AttrKind::boolean: P11TLS_FUZZ_CHECK(e.value.size() == 1); break;
        case token::AttrKind::ulong: P11TLS_FUZZ_CHECK(e.value.size() == 4); break;
        case token::AttrKind::ulong_array:
            P11TLS_FUZZ_CHECK(e.value.size() % 4 == 0 && e.value.size() <= 4 * token::max_ulong_array);
            break;
        case token::AttrKind::bytes: break;
        }
        auto found = list.find(e.type);
        P11TLS_FUZZ_CHECK(found && found->data() == e.value.data() && found->size() == e.value.size());
        if (token::attr_kind(e.type) == token::AttrKind::ulong) P11TLS_FUZZ_CHECK(list.ulong(e.type).has_value());
        (void)list.flag(e.type);

        // A length query, then a buffer of `out_size` bytes (exactly: ASan sees any overrun).
        CK_ATTRIBUTE q{e.type, nullptr, 0};
        P11TLS_FUZZ_CHECK(token::export_value(q, e.value));
        auto buf = std::make_unique<std::uint8_t[]>(out_size ? out_size : 1);
        CK_ATTRIBUTE a{e.type, out_size ? buf.get() : nullptr, out_size};
        auto r = token::export_value(a, e.value);
        if (!out_size) {
            P11TLS_FUZZ_CHECK(r && a.ulValueLen == q.ulValueLen);
        } else if (q.ulValueLen <= out_size) {
            P11TLS_FUZZ_CHECK(r && a.ulValueLen == q.ulValueLen);
        } else {
            P11TLS_FUZZ_CHECK(!r && r.error().code == Errc::buffer_too_small && a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
        }
    });
    P11TLS_FUZZ_CHECK(covered == bytes.size());  // the entries tile the list
    P11TLS_FUZZ_CHECK(entries == seen.size());
}

void make_seeds(const std::string& dir) {
    auto entry = [](Writer& w, std::uint32_t type, std::span<const std::uint8_t> v) {
        w.u32(type).u32(static_cast<std::uint32_t>(v.size())).bytes(v);
    };
    const std::uint8_t yes[] = {1}, cls[] = {3, 0, 0, 0}, ec[] = {3, 0, 0, 0}, none[] = {0xFF, 0xFF, 0xFF, 0xFF};
    const std::uint8_t mechs[] = {0x41, 0x10, 0, 0, 0x44, 0x10, 0, 0};
    const std::uint8_t label[] = {'D', 'e', 'v', 'i', 'c', 'e', ' ', 'k', 'e', 'y'};
    const std::uint8_t params[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
    Writer key;
    key.u8(16);
    entry(key, CKA_CLASS, cls);
    entry(key, CKA_KEY_TYPE, ec);
    entry(key, CKA_TOKEN, yes);
    entry(key, CKA_LABEL, label);
    entry(key, CKA_EC_PARAMS, params);
    entry(key, CKA_ALLOWED_MECHANISMS, mechs);
    entry(key, CKA_KEY_GEN_MECHANISM, none);
    entry(key, CKA_ID, {});
    write_seed(dir, "private-key", key.data());
    Writer small;
    small.u8(0);
    entry(small, CKA_LABEL, label);
    write_seed(dir, "label-query", small.data());
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
