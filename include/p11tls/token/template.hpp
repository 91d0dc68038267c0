// SPDX-License-Identifier: MIT
#pragma once
/// Template<MaxAttrs, Bytes>: builds a CK_ATTRIBUTE array whose values it owns, without heap.
///   p11tls::token::Template<> t;
///   t.add(CKA_CLASS, CKO_PRIVATE_KEY).add(CKA_LABEL, "Device Priv TLS Key").add(CKA_TOKEN, true);
///   token.find_init(session, t.view());
#include <array>
#include <concepts>
#include <cstring>
#include <span>
#include <string_view>

#include <p11tls/token/pkcs11.hpp>

namespace p11tls::token {

template <std::size_t MaxAttrs = 16, std::size_t Bytes = 1024>
class Template {
public:
    Template() = default;
    // The attributes point into this object's own buffer.
    Template(const Template&) = delete;
    Template& operator=(const Template&) = delete;

    Template& add(CK_ATTRIBUTE_TYPE t, bool v) noexcept {
        CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
        return add_raw(t, &b, sizeof b);
    }
    template <std::integral I>
        requires(!std::same_as<I, bool>)
    Template& add(CK_ATTRIBUTE_TYPE t, I v) noexcept {
        CK_ULONG u = static_cast<CK_ULONG>(v);
        return add_raw(t, &u, sizeof u);
    }
    Template& add(CK_ATTRIBUTE_TYPE t, std::string_view s) noexcept { return add_raw(t, s.data(), s.size()); }
    Template& add(CK_ATTRIBUTE_TYPE t, const char* s) noexcept { return add(t, std::string_view(s)); }
    Template& add(CK_ATTRIBUTE_TYPE t, std::span<const std::byte> b) noexcept { return add_raw(t, b.data(), b.size()); }

    /// False once an attribute did not fit; the view then holds only those before it.
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] std::span<const CK_ATTRIBUTE> view() const noexcept { return {attrs_.data(), count_}; }
    [[nodiscard]] std::span<CK_ATTRIBUTE> view() noexcept { return {attrs_.data(), count_}; }

private:
    Template& add_raw(CK_ATTRIBUTE_TYPE t, const void* p, std::size_t n) noexcept {
        // Keep CK_ULONG values aligned for consumers that read them in place.
        std::size_t at = (used_ + alignof(CK_ULONG) - 1) & ~(alignof(CK_ULONG) - 1);
        if (!ok_ || count_ == MaxAttrs || at + n > Bytes) {
            ok_ = false;
            return *this;
        }
        if (n) std::memcpy(bytes_.data() + at, p, n);
        attrs_[count_++] = CK_ATTRIBUTE{t, n ? bytes_.data() + at : nullptr, static_cast<CK_ULONG>(n)};
        used_ = at + n;
        return *this;
    }

    alignas(CK_ULONG) std::array<unsigned char, Bytes> bytes_{};
    std::array<CK_ATTRIBUTE, MaxAttrs> attrs_{};
    std::size_t count_ = 0, used_ = 0;
    bool ok_ = true;
};

}  // namespace p11tls::token
