// SPDX-License-Identifier: MIT
#pragma once
// Reading an Nvm back whole in tests: test patterns, one record, every record.
#include <cstddef>
#include <map>
#include <optional>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/concepts/nvm.hpp>

#include "support/result.hpp"

namespace p11tls::test {

/// A record's bytes.
using RecordBytes = std::vector<std::byte>;

/// `n` bytes that differ with `seed` and along the record (no period shorter than 256).
inline RecordBytes pattern(std::size_t n, unsigned seed) {
    RecordBytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<unsigned char>(i * 131 + seed * 7 + (i >> 8)));
    return b;
}

/// Record `id` whole, or nullopt with the load's error code in `*err`.
template <class N>
std::optional<RecordBytes> load_all(N& nvm, RecordId id, Errc* err = nullptr) {
    RecordBytes out(N::max_record_size);
    auto n = nvm.load(id, out);
    if (!n) {
        if (err) *err = n.error().code;
        return std::nullopt;
    }
    out.resize(*n);
    return out;
}

/// Every record the store lists, each of which must load.
template <class N>
std::map<RecordId, RecordBytes> contents(N& nvm) {
    std::vector<RecordId> ids(N::max_records);
    auto n = nvm.list(ids);
    REQUIRE(code(n) == no_error);
    std::map<RecordId, RecordBytes> all;
    for (std::size_t i = 0; i < *n; ++i) {
        auto v = load_all(nvm, ids[i]);
        REQUIRE(v);
        all[ids[i]] = *v;
    }
    return all;
}

}  // namespace p11tls::test
