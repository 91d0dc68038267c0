// SPDX-License-Identifier: MIT
#pragma once
/// The stored form of a token object: a list of attributes encoded as
/// `{u32 type, u32 length, value}` (little-endian). CK_ULONG values are stored as u32 and
/// booleans as one byte, so a flash image written on a 64-bit host is read unchanged by a
/// 32-bit MCU. This is the payload of an object's Nvm record.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include <p11tls/detail/crc32.hpp>
#include <p11tls/result.hpp>
#include <p11tls/token/pkcs11.hpp>

namespace p11tls::token {

/// How an attribute's value is represented at the PKCS#11 API.
enum class AttrKind : std::uint8_t { bytes, boolean, ulong, ulong_array };

/// Most CK_ULONG entries an array attribute (CKA_ALLOWED_MECHANISMS) may hold.
inline constexpr std::size_t max_ulong_array = 16;

[[nodiscard]] constexpr AttrKind attr_kind(CK_ATTRIBUTE_TYPE t) noexcept {
    switch (t) {
    case CKA_CLASS: case CKA_KEY_TYPE: case CKA_CERTIFICATE_TYPE: case CKA_CERTIFICATE_CATEGORY:
    case CKA_MODULUS_BITS: case CKA_KEY_GEN_MECHANISM: case CKA_JAVA_MIDP_SECURITY_DOMAIN:
    case CKA_NAME_HASH_ALGORITHM: case CKA_VALUE_LEN:
        return AttrKind::ulong;
    case CKA_TOKEN: case CKA_PRIVATE: case CKA_MODIFIABLE: case CKA_COPYABLE: case CKA_DESTROYABLE:
    case CKA_TRUSTED: case CKA_SENSITIVE: case CKA_ENCRYPT: case CKA_DECRYPT: case CKA_WRAP:
    case CKA_UNWRAP: case CKA_SIGN: case CKA_SIGN_RECOVER: case CKA_VERIFY: case CKA_VERIFY_RECOVER:
    case CKA_DERIVE: case CKA_EXTRACTABLE: case CKA_LOCAL: case CKA_NEVER_EXTRACTABLE:
    case CKA_ALWAYS_SENSITIVE: case CKA_WRAP_WITH_TRUSTED: case CKA_ALWAYS_AUTHENTICATE:
        return AttrKind::boolean;
    case CKA_ALLOWED_MECHANISMS:
        return AttrKind::ulong_array;
    default:
        return AttrKind::bytes;
    }
}

/// The canonical (stored) encoding of one attribute value.
struct Canonical {
    std::byte small[4 * max_ulong_array]{};
    std::span<const std::byte> value;

    Canonical() = default;
    // `value` may point into `small`: a copy must point into its own `small`, not into the
    // original's, which (returned by value from canonical()) is already gone.
    Canonical(const Canonical& o) noexcept { *this = o; }
    Canonical& operator=(const Canonical& o) noexcept {
        if (this == &o) return *this;
        std::memcpy(small, o.small, sizeof small);
        value = o.value.data() == o.small ? std::span<const std::byte>(small, o.value.size()) : o.value;
        return *this;
    }
};

/// Converts an API value to its stored form; nullopt if its length is wrong for its kind.
[[nodiscard]] inline std::optional<Canonical> canonical(const CK_ATTRIBUTE& a) noexcept {
    Canonical c;
    const auto* p = static_cast<const std::byte*>(a.pValue);
    if (a.ulValueLen != 0 && p == nullptr) return std::nullopt;
    switch (attr_kind(a.type)) {
    case AttrKind::boolean: {
        if (a.ulValueLen != sizeof(CK_BBOOL)) return std::nullopt;
        CK_BBOOL b;
        std::memcpy(&b, p, sizeof b);
        c.small[0] = std::byte(b ? 1 : 0);
        c.value = {c.small, 1};
        return c;
    }
    case AttrKind::ulong: {
        if (a.ulValueLen != sizeof(CK_ULONG)) return std::nullopt;
        CK_ULONG v;
        std::memcpy(&v, p, sizeof v);
        if (v > 0xFFFFFFFFul && v != CK_UNAVAILABLE_INFORMATION) return std::nullopt;
        detail::put_le32(c.small, static_cast<std::uint32_t>(v));
        c.value = {c.small, 4};
        return c;
    }
    case AttrKind::ulong_array: {
        const std::size_t n = a.ulValueLen / sizeof(CK_ULONG);
        if (a.ulValueLen % sizeof(CK_ULONG) != 0 || n > max_ulong_array) return std::nullopt;
        for (std::size_t i = 0; i < n; ++i) {
            CK_ULONG v;
            std::memcpy(&v, p + i * sizeof v, sizeof v);
            if (v > 0xFFFFFFFFul) return std::nullopt;
            detail::put_le32(c.small + 4 * i, static_cast<std::uint32_t>(v));
        }
        c.value = {c.small, 4 * n};
        return c;
    }
    case AttrKind::bytes:
        c.value = {p, static_cast<std::size_t>(a.ulValueLen)};
        return c;
    }
    return std::nullopt;
}

/// Read-only view of an encoded attribute list. Construct only from validated bytes.
class AttrList {
public:
    struct Entry {
        CK_ATTRIBUTE_TYPE type;
        std::span<const std::byte> value;
    };
    constexpr AttrList() = default;
    explicit constexpr AttrList(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

    /// Checks bounds and uniqueness of every entry: NVM contents are untrusted input.
    [[nodiscard]] static bool valid(std::span<const std::byte> bytes) noexcept {
        std::size_t pos = 0, n = 0;
        while (pos < bytes.size()) {
            if (bytes.size() - pos < 8) return false;
            std::uint32_t len = detail::get_le32(bytes.data() + pos + 4);
            if (len > bytes.size() - pos - 8) return false;
            CK_ATTRIBUTE_TYPE t = detail::get_le32(bytes.data() + pos);
            auto kind = attr_kind(t);
            if ((kind == AttrKind::boolean && len != 1) || (kind == AttrKind::ulong && len != 4) ||
                (kind == AttrKind::ulong_array && (len % 4 != 0 || len > 4 * max_ulong_array)))
                return false;
            if (AttrList(bytes.first(pos)).find(t)) return false;
            pos += 8 + len;
            if (++n > 256) return false;
        }
        return true;
    }

    template <class F>
    constexpr void for_each(F&& f) const {
        std::size_t pos = 0;
        while (pos + 8 <= bytes_.size()) {
            std::uint32_t len = detail::get_le32(bytes_.data() + pos + 4);
            f(Entry{detail::get_le32(bytes_.data() + pos), bytes_.subspan(pos + 8, len)});
            pos += 8 + len;
        }
    }
    [[nodiscard]] std::optional<std::span<const std::byte>> find(CK_ATTRIBUTE_TYPE t) const noexcept {
        std::size_t pos = 0;
        while (pos + 8 <= bytes_.size()) {
            std::uint32_t len = detail::get_le32(bytes_.data() + pos + 4);
            if (detail::get_le32(bytes_.data() + pos) == t) return bytes_.subspan(pos + 8, len);
            pos += 8 + len;
        }
        return std::nullopt;
    }
    [[nodiscard]] bool flag(CK_ATTRIBUTE_TYPE t, bool dflt = false) const noexcept {
        auto v = find(t);
        return v && !v->empty() ? (*v)[0] != std::byte{0} : dflt;
    }
    [[nodiscard]] std::optional<CK_ULONG> ulong(CK_ATTRIBUTE_TYPE t) const noexcept {
        auto v = find(t);
        if (!v || v->size() != 4) return std::nullopt;
        std::uint32_t x = detail::get_le32(v->data());
        return x == 0xFFFFFFFFu ? CK_UNAVAILABLE_INFORMATION : CK_ULONG{x};
    }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }

private:
    std::span<const std::byte> bytes_;
};

/// Appends attributes into a caller-owned buffer; `ok()` is false once anything did not fit.
class AttrWriter {
public:
    explicit AttrWriter(std::span<std::byte> buf) noexcept : buf_(buf) {}
    void add(CK_ATTRIBUTE_TYPE t, std::span<const std::byte> v) noexcept {
        if (!ok_ || buf_.size() - len_ < 8 + v.size()) {
            ok_ = false;
            return;
        }
        detail::put_le32(buf_.data() + len_, static_cast<std::uint32_t>(t));
        detail::put_le32(buf_.data() + len_ + 4, static_cast<std::uint32_t>(v.size()));
        if (!v.empty()) std::memcpy(buf_.data() + len_ + 8, v.data(), v.size());
        len_ += 8 + v.size();
    }
    void add_bool(CK_ATTRIBUTE_TYPE t, bool b) noexcept {
        std::byte v{static_cast<unsigned char>(b ? 1 : 0)};
        add(t, {&v, 1});
    }
    void add_ulong(CK_ATTRIBUTE_TYPE t, CK_ULONG x) noexcept {
        std::byte v[4];
        detail::put_le32(v, x == CK_UNAVAILABLE_INFORMATION ? 0xFFFFFFFFu : static_cast<std::uint32_t>(x));
        add(t, v);
    }
    [[nodiscard]] bool has(CK_ATTRIBUTE_TYPE t) const noexcept { return AttrList(written()).find(t).has_value(); }
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] std::span<const std::byte> written() const noexcept { return buf_.first(len_); }

private:
    std::span<std::byte> buf_;
    std::size_t len_ = 0;
    bool ok_ = true;
};

/// Writes a stored value into a caller's CK_ATTRIBUTE following C_GetAttributeValue's rules.
/// Returns the per-attribute error (buffer_too_small) or success.
[[nodiscard]] inline Result<void> export_value(CK_ATTRIBUTE& a, std::span<const std::byte> stored) noexcept {
    std::byte tmp[sizeof(CK_ULONG) * max_ulong_array];
    std::span<const std::byte> v = stored;
    if (attr_kind(a.type) == AttrKind::ulong_array && stored.size() % 4 == 0 && stored.size() / 4 <= max_ulong_array) {
        for (std::size_t i = 0; i < stored.size() / 4; ++i) {
            CK_ULONG u = detail::get_le32(stored.data() + 4 * i);
            std::memcpy(tmp + i * sizeof u, &u, sizeof u);
        }
        v = {tmp, stored.size() / 4 * sizeof(CK_ULONG)};
    }
    if (attr_kind(a.type) == AttrKind::ulong && stored.size() == 4) {
        std::uint32_t x = detail::get_le32(stored.data());
        CK_ULONG u = x == 0xFFFFFFFFu ? CK_UNAVAILABLE_INFORMATION : CK_ULONG{x};
        std::memcpy(tmp, &u, sizeof u);
        v = {tmp, sizeof u};
    } else if (attr_kind(a.type) == AttrKind::boolean && stored.size() == 1) {
        CK_BBOOL b = stored[0] != std::byte{0} ? CK_TRUE : CK_FALSE;
        std::memcpy(tmp, &b, sizeof b);
        v = {tmp, sizeof b};
    }
    if (a.pValue == nullptr) {
        a.ulValueLen = v.size();
        return {};
    }
    if (a.ulValueLen < v.size()) {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return fail(Errc::buffer_too_small);
    }
    if (!v.empty()) std::memcpy(a.pValue, v.data(), v.size());
    a.ulValueLen = v.size();
    return {};
}

}  // namespace p11tls::token
