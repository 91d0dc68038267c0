// SPDX-License-Identifier: MIT
#pragma once
/// RamNvm: an Nvm in RAM for tests and for boards that keep nothing across resets.
#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include <p11tls/concepts/nvm.hpp>

namespace p11tls {

/// Up to `MaxRecords` records of at most `MaxRecordSize` bytes each; no heap.
/// `fail_after(n)` makes the (n+1)-th following store or remove fail with `Errc::nvm_io` and
/// change nothing, so tests can check that a failed write loses nothing.
template <std::size_t MaxRecords = 64, std::size_t MaxRecordSize = 8192>
class RamNvm {
public:
    static constexpr std::size_t max_record_size = MaxRecordSize;
    static constexpr std::size_t max_records = MaxRecords;

    [[nodiscard]] Result<void> store(RecordId id, std::span<const std::byte> data) {
        if (data.size() > MaxRecordSize) return fail(Errc::nvm_record_too_large);
        if (consume_failure()) return fail(Errc::nvm_io);
        Slot* s = find(id);
        if (!s) s = find_free();
        if (!s) return fail(Errc::nvm_full);
        s->used = true;
        s->id = id;
        s->len = data.size();
        std::copy(data.begin(), data.end(), s->bytes.begin());
        ++writes_;
        return {};
    }
    [[nodiscard]] Result<std::size_t> load(RecordId id, std::span<std::byte> out) const {
        const Slot* s = find(id);
        if (!s) return fail(Errc::nvm_not_found);
        if (out.size() < s->len) return fail(Errc::buffer_too_small);
        std::copy_n(s->bytes.begin(), s->len, out.begin());
        ++reads_;
        return s->len;
    }
    [[nodiscard]] Result<std::size_t> size(RecordId id) const {
        const Slot* s = find(id);
        if (!s) return fail(Errc::nvm_not_found);
        return s->len;
    }
    [[nodiscard]] Result<void> remove(RecordId id) {
        if (consume_failure()) return fail(Errc::nvm_io);
        if (Slot* s = find(id)) {
            std::memset(s->bytes.data(), 0, s->len);
            s->used = false;
            ++writes_;
        }
        return {};
    }
    [[nodiscard]] Result<std::size_t> list(std::span<RecordId> ids) const {
        std::size_t n = 0;
        for (const Slot& s : slots_) {
            if (!s.used) continue;
            if (n >= ids.size()) return fail(Errc::buffer_too_small);
            ids[n++] = s.id;
        }
        return n;
    }

    /// Test hook: the store/remove after `n` more successful ones fails.
    void fail_after(std::size_t n) noexcept { fail_countdown_ = n; }
    void clear_failure() noexcept { fail_countdown_ = no_failure; }
    [[nodiscard]] std::size_t reads() const noexcept { return reads_; }
    [[nodiscard]] std::size_t writes() const noexcept { return writes_; }

private:
    static constexpr std::size_t no_failure = std::numeric_limits<std::size_t>::max();
    struct Slot {
        bool used = false;
        RecordId id = 0;
        std::size_t len = 0;
        std::array<std::byte, MaxRecordSize> bytes{};
    };
    bool consume_failure() noexcept {
        if (fail_countdown_ == no_failure) return false;
        if (fail_countdown_ == 0) return true;  // keeps failing until cleared, like a dead part
        --fail_countdown_;
        return false;
    }
    Slot* find(RecordId id) {
        for (Slot& s : slots_)
            if (s.used && s.id == id) return &s;
        return nullptr;
    }
    const Slot* find(RecordId id) const { return const_cast<RamNvm*>(this)->find(id); }
    Slot* find_free() {
        for (Slot& s : slots_)
            if (!s.used) return &s;
        return nullptr;
    }

    std::array<Slot, MaxRecords> slots_{};
    std::size_t fail_countdown_ = no_failure;
    mutable std::size_t reads_ = 0;
    std::size_t writes_ = 0;
};

static_assert(Nvm<RamNvm<>>);

}  // namespace p11tls
