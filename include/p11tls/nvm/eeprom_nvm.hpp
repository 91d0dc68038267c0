// SPDX-License-Identifier: MIT
#pragma once
/// EepromNvm<EepromDevice, ...>: records in slots of two page-aligned copies, so a write cut by
/// a power loss only ever damages the copy being written and the other keeps the last value.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>

#include <p11tls/concepts/eeprom_device.hpp>
#include <p11tls/concepts/nvm.hpp>
#include <p11tls/detail/crc32.hpp>

namespace p11tls {

/// What `EepromNvm::mount` found and repaired.
struct EepromMountReport {
    std::size_t records = 0;          ///< records readable or reported corrupt
    std::size_t corrupt_records = 0;  ///< records whose newest copy fails its CRC
    std::size_t damaged_copies = 0;   ///< copy headers that look like headers but fail their CRC
    std::size_t slots_freed = 0;      ///< slots left without a record, or superseded, by a cut
    std::size_t dropped_records = 0;  ///< records beyond the capacity of the slot table
};

/// An EepromDevice as an Nvm.
///
/// A record lives in a slot of `2P` pages: two copies of `P` pages each. Each copy starts with
/// a 24-byte header {'E', version << 4 | flags (bit 0: copy B, bit 1: empty), P (u16), id,
/// length, sequence, CRC-32 of the payload, CRC-32 of the 20 bytes before} followed by the
/// payload; the first pages of the copies are the slot's first two pages (so the walk at mount
/// finds the slot from either), their other pages follow, A's then B's. No page holds bytes of
/// both copies, so a torn page write touches one copy only.
///
/// - `store` writes the copy that does not hold the current value: payload first, then its
///   header (the commit); the other copy stays intact until the next store. A record that no
///   longer fits its slot moves to a new slot (written whole before the old one is freed).
/// - `remove` clears the older copy's header, then the current one's.
/// - `mount` walks the pages: the copy with the highest sequence and a valid header is the
///   record's value (a torn copy's header fails its CRC); if its payload fails its CRC the
///   record is reported corrupt. Slots left without a record or superseded by a moved record
///   (a cut between the two steps) are freed. Any byte may hold anything: nothing read from the
///   device is trusted before its CRC.
///
/// Writes alternate between the two copies, halving the wear of each page. Freed slots are
/// not scrubbed: wrap the store in SealedNvm if removed records must not be readable.
template <EepromDevice D, std::size_t MaxRecords = 128, std::size_t MaxRecordSize = 4224>
class EepromNvm {
public:
    using device_type = D;
    static constexpr std::size_t page = D::page_size;
    static constexpr std::size_t pages = D::size / D::page_size;
    static constexpr std::size_t header_size = 24;
    static constexpr std::uint8_t format_version = 1;
    static constexpr std::size_t max_records = MaxRecords;
    /// Leaves room for a slot of the largest record next to one of the smallest.
    static constexpr std::size_t max_record_size = std::min(MaxRecordSize, (pages - 2) / 2 * page - header_size);

    static_assert(page >= 32, "pages must hold a copy header");
    static_assert(pages >= 6 && pages < 65536);

    [[nodiscard]] static Result<EepromNvm> mount(D dev) {
        EepromNvm nvm(std::move(dev));
        P11TLS_TRY(nvm.do_mount());
        return nvm;
    }

    [[nodiscard]] Result<void> store(RecordId id, std::span<const std::byte> data) {
        if (broken_) return fail(Errc::nvm_io);
        if (data.size() > max_record_size) return fail(Errc::nvm_record_too_large);
        Slot* s = find(id);
        if (s && !(s->flags & corrupt_flag) && s->len == data.size()) {
            auto same = equals(*s, data);
            if (!same) return fail(same.error());
            if (*same) return {};  // same bytes: spare the write cycles
        }
        auto r = [&]() -> Result<void> {
            if (s && pages_for(data.size()) <= s->per_copy) {
                const std::uint8_t target = static_cast<std::uint8_t>(1 - s->newest);
                P11TLS_TRY(write_copy(*s, target, id, data));
                s->newest = target;
                s->other_valid = true;
                s->seq = next_seq_++;
                s->len = static_cast<std::uint32_t>(data.size());
                s->flags = 0;
                return {};
            }
            if (!s && count_ == MaxRecords) return fail(Errc::nvm_full);
            const std::size_t per_copy = pages_for(data.size());
            const std::size_t start = find_gap(2 * per_copy);
            if (start == none) return fail(Errc::nvm_full);
            Slot fresh{static_cast<std::uint16_t>(start), static_cast<std::uint16_t>(per_copy), id, 0, 0, 1, 0, true};
            P11TLS_TRY(write_header(fresh, 1, empty_flag, id, 0, 0, detail::crc32({})));
            P11TLS_TRY(write_copy(fresh, 0, id, data));
            fresh.newest = 0;
            fresh.seq = next_seq_++;
            fresh.len = static_cast<std::uint32_t>(data.size());
            if (s) {  // moved: the old slot goes
                P11TLS_TRY(free_slot(*s));
                erase_slot(s);
            }
            insert_slot(fresh);
            return {};
        }();
        if (!r && r.error().code != Errc::nvm_full) broken_ = true;
        return r;
    }

    [[nodiscard]] Result<std::size_t> load(RecordId id, std::span<std::byte> out) const {
        if (broken_) return fail(Errc::nvm_io);
        const Slot* s = find(id);
        if (!s) return fail(Errc::nvm_not_found);
        if (s->flags & corrupt_flag) return fail(Errc::nvm_corrupt);
        if (s->len > out.size()) return fail(Errc::buffer_too_small);
        Header h;
        P11TLS_TRY(read_header(copy_page(*s, s->newest, 0), h));
        if (!h.valid || h.id != id || h.seq != s->seq || h.len != s->len) return fail(Errc::nvm_corrupt);
        auto payload = out.first(s->len);
        P11TLS_TRY(read_stream(*s, s->newest, 0, payload));
        if (detail::crc32(payload) != h.data_crc) return fail(Errc::nvm_corrupt);
        return payload.size();
    }

    [[nodiscard]] Result<std::size_t> size(RecordId id) const {
        if (broken_) return fail(Errc::nvm_io);
        const Slot* s = find(id);
        if (!s) return fail(Errc::nvm_not_found);
        return static_cast<std::size_t>(s->len);
    }

    [[nodiscard]] Result<void> remove(RecordId id) {
        if (broken_) return fail(Errc::nvm_io);
        Slot* s = find(id);
        if (!s) return {};
        if (auto r = free_slot(*s); !r) {
            broken_ = true;
            return r;
        }
        erase_slot(s);
        return {};
    }

    [[nodiscard]] Result<std::size_t> list(std::span<RecordId> ids) const {
        if (broken_) return fail(Errc::nvm_io);
        if (ids.size() < count_) return fail(Errc::buffer_too_small);
        for (std::size_t i = 0; i < count_; ++i) ids[i] = slots_[i].id;
        return count_;
    }

    [[nodiscard]] const EepromMountReport& mount_report() const noexcept { return report_; }
    [[nodiscard]] D& device() noexcept { return dev_; }

private:
    static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    static constexpr std::byte magic{0x45};  // 'E'
    static constexpr std::uint8_t copy_b_flag = 1, empty_flag = 2;
    static constexpr std::uint8_t corrupt_flag = 1;

    struct Slot {
        std::uint16_t start;     // first page
        std::uint16_t per_copy;  // pages per copy
        RecordId id;
        std::uint32_t len;
        std::uint32_t seq;
        std::uint8_t newest;  // the copy holding the value
        std::uint8_t flags;
        bool other_valid;  // the other copy's header parses and must be cleared on remove
    };
    struct Header {
        bool valid = false;    // CRC and geometry check out
        bool damaged = false;  // has the magic but fails the checks
        std::uint8_t flags = 0;
        std::uint16_t per_copy = 0;
        RecordId id = 0;
        std::uint32_t len = 0, seq = 0, data_crc = 0;
    };

    explicit EepromNvm(D dev) : dev_(std::move(dev)) {}

    static constexpr std::size_t pages_for(std::size_t len) noexcept { return (len + header_size + page - 1) / page; }
    static constexpr std::size_t capacity(std::size_t per_copy) noexcept { return per_copy * page - header_size; }
    // Page k of copy c (0 = A, 1 = B) of a slot.
    static constexpr std::size_t copy_page(std::size_t start, std::size_t per_copy, std::size_t c, std::size_t k) noexcept {
        if (k == 0) return start + c;
        return c == 0 ? start + 1 + k : start + per_copy + k;
    }
    static constexpr std::size_t copy_page(const Slot& s, std::size_t c, std::size_t k) noexcept {
        return copy_page(s.start, s.per_copy, c, k);
    }
    // Device address of byte `o` of a copy's payload.
    static constexpr std::size_t stream_addr(const Slot& s, std::size_t c, std::size_t o) noexcept {
        if (o < page - header_size) return copy_page(s, c, 0) * page + header_size + o;
        o -= page - header_size;
        return copy_page(s, c, 1 + o / page) * page + o % page;
    }

    // --- slot table, sorted by start page ---

    Slot* find(RecordId id) noexcept {
        for (std::size_t i = 0; i < count_; ++i)
            if (slots_[i].id == id) return &slots_[i];
        return nullptr;
    }
    const Slot* find(RecordId id) const noexcept { return const_cast<EepromNvm*>(this)->find(id); }
    bool insert_slot(const Slot& s) noexcept {
        if (count_ == MaxRecords) return false;
        std::size_t i = count_;
        while (i > 0 && slots_[i - 1].start > s.start) {
            slots_[i] = slots_[i - 1];
            --i;
        }
        slots_[i] = s;
        ++count_;
        return true;
    }
    void erase_slot(Slot* s) noexcept {
        std::move(s + 1, slots_.begin() + count_, s);
        --count_;
    }
    // First fit: the lowest page where `n` pages are free. None while slots the table could not
    // hold are on the device: their pages are not known to be free.
    std::size_t find_gap(std::size_t n) const noexcept {
        if (report_.dropped_records > 0) return none;
        std::size_t at = 0;
        for (std::size_t i = 0; i < count_; ++i) {
            if (slots_[i].start >= at + n) return at;
            at = std::max<std::size_t>(at, slots_[i].start + 2u * slots_[i].per_copy);
        }
        return at + n <= pages ? at : none;
    }

    // --- device access ---

    Result<void> read_header(std::size_t pg, Header& h) const {
        std::byte b[header_size];
        h = Header{};
        // One byte first: most pages a mount walks over hold no header, and a serial EEPROM's
        // bus is slow (24 bytes a page would be 12 KiB over I2C for a 24LC256).
        P11TLS_TRY(dev_.read(pg * page, std::span(b, 1)));
        if (b[0] != magic) return {};
        P11TLS_TRY(dev_.read(pg * page + 1, std::span(b + 1, header_size - 1)));
        h.damaged = true;
        if (std::to_integer<unsigned>(b[1]) >> 4 != format_version) return {};
        if (detail::get_le32(b + 20) != detail::crc32(std::span(b, 20))) return {};
        h.flags = std::to_integer<std::uint8_t>(b[1]) & 0x0F;
        h.per_copy = static_cast<std::uint16_t>(std::to_integer<unsigned>(b[2]) | std::to_integer<unsigned>(b[3]) << 8);
        h.id = detail::get_le32(b + 4);
        h.len = detail::get_le32(b + 8);
        h.seq = detail::get_le32(b + 12);
        h.data_crc = detail::get_le32(b + 16);
        if (h.per_copy == 0 || h.flags > 3 || h.len > capacity(h.per_copy) || h.len > MaxRecordSize) return {};
        h.valid = true;
        h.damaged = false;
        return {};
    }

    // Whether the header bytes of page `pg` are all 0x00 (cleared) or all 0xFF (never written).
    Result<bool> header_state(std::size_t pg) const {
        std::byte b[header_size];
        P11TLS_TRY(dev_.read(pg * page, b));
        const bool zeros = std::ranges::all_of(b, [](std::byte x) { return x == std::byte{0}; });
        const bool ones = std::ranges::all_of(b, [](std::byte x) { return x == std::byte{0xFF}; });
        return zeros || ones;
    }

    Result<void> write_header(const Slot& s, std::size_t c, std::uint8_t flags, RecordId id, std::uint32_t len,
                              std::uint32_t seq, std::uint32_t data_crc) {
        std::byte b[header_size] = {magic, std::byte(format_version << 4 | flags | (c ? copy_b_flag : 0)),
                                    std::byte(s.per_copy & 0xFF), std::byte(s.per_copy >> 8)};
        detail::put_le32(b + 4, id);
        detail::put_le32(b + 8, len);
        detail::put_le32(b + 12, seq);
        detail::put_le32(b + 16, data_crc);
        detail::put_le32(b + 20, detail::crc32(std::span(b, 20)));
        return dev_.write(copy_page(s, c, 0) * page, b);
    }

    Result<void> clear_header(const Slot& s, std::size_t c) {
        static constexpr std::byte zeros[header_size]{};
        return dev_.write(copy_page(s, c, 0) * page, zeros);
    }

    // Payload of copy `c`, page by page, then its header: the header is the commit.
    Result<void> write_copy(const Slot& s, std::size_t c, RecordId id, std::span<const std::byte> data) {
        for (std::size_t done = 0; done < data.size();) {
            const std::size_t addr = stream_addr(s, c, done);
            const std::size_t n = std::min(data.size() - done, page - addr % page);
            P11TLS_TRY(dev_.write(addr, data.subspan(done, n)));
            done += n;
        }
        return write_header(s, c, 0, id, static_cast<std::uint32_t>(data.size()), next_seq_, detail::crc32(data));
    }

    Result<void> read_stream(const Slot& s, std::size_t c, std::size_t from, std::span<std::byte> out) const {
        for (std::size_t done = 0; done < out.size();) {
            const std::size_t addr = stream_addr(s, c, from + done);
            const std::size_t n = std::min(out.size() - done, page - addr % page);
            P11TLS_TRY(dev_.read(addr, out.subspan(done, n)));
            done += n;
        }
        return {};
    }

    Result<std::uint32_t> stream_crc(const Slot& s, std::size_t c, std::size_t len) const {
        std::byte buf[page];
        std::uint32_t crc = 0;
        for (std::size_t done = 0; done < len;) {
            const std::size_t n = std::min(sizeof buf, len - done);
            P11TLS_TRY(read_stream(s, c, done, std::span(buf, n)));
            crc = detail::crc32(std::span(buf, n), crc);
            done += n;
        }
        return crc;
    }

    Result<bool> equals(const Slot& s, std::span<const std::byte> data) const {
        std::byte buf[page];
        for (std::size_t done = 0; done < data.size();) {
            const std::size_t n = std::min(sizeof buf, data.size() - done);
            P11TLS_TRY(read_stream(s, s.newest, done, std::span(buf, n)));
            if (std::memcmp(buf, data.data() + done, n) != 0) return false;
            done += n;
        }
        return true;
    }

    // Older copy first: until the current one is cleared too, the record keeps its value.
    Result<void> free_slot(const Slot& s) {
        if (s.other_valid) P11TLS_TRY(clear_header(s, 1 - s.newest));
        return clear_header(s, s.newest);
    }

    // --- mount ---

    Result<void> do_mount() {
        std::uint32_t max_seq = 0;
        Header a, b;
        std::size_t have = none;  // the page whose header is in `b`
        for (std::size_t p = 0; p + 1 < pages;) {
            if (have == p) a = b;
            else P11TLS_TRY(read_header(p, a));
            P11TLS_TRY(read_header(p + 1, b));
            have = p + 1;
            if (a.valid) max_seq = std::max(max_seq, a.seq);
            if (b.valid) max_seq = std::max(max_seq, b.seq);
            const bool a_ok = a.valid && !(a.flags & copy_b_flag);
            const bool b_ok = b.valid && (b.flags & copy_b_flag);
            const std::size_t per_copy = a_ok ? a.per_copy : b_ok ? b.per_copy : 0;
            if (per_copy == 0 || p + 2 * per_copy > pages) {
                report_.damaged_copies += a.damaged ? 1 : 0;
                ++p;
                continue;
            }
            // Both headers must describe this slot to count as its copies.
            const Header* h[2] = {a_ok && a.per_copy == per_copy ? &a : nullptr,
                                  b_ok && b.per_copy == per_copy ? &b : nullptr};
            // A copy header of the slot that is neither valid, cleared nor blank is damage (a
            // bit flip, or a write cut by a reset).
            for (std::size_t c = 0; c < 2; ++c)
                if (!h[c]) {
                    auto blank = header_state(p + c);
                    if (!blank) return fail(blank.error());
                    report_.damaged_copies += *blank ? 0 : 1;
                }
            Slot s{static_cast<std::uint16_t>(p), static_cast<std::uint16_t>(per_copy), 0, 0, 0, 0, 0, false};
            int newest = -1;
            for (int c = 0; c < 2; ++c)
                if (h[c] && !(h[c]->flags & empty_flag) && (newest < 0 || h[c]->seq > h[newest]->seq)) newest = c;
            if (newest < 0) {  // no record: a slot whose creation or removal was cut
                for (int c = 0; c < 2; ++c)
                    if (h[c]) P11TLS_TRY(clear_header(s, static_cast<std::size_t>(c)));
                ++report_.slots_freed;
                // Its other pages hold nothing: a slot stored there since (over the payload of a
                // freed slot that looked like a header) must still be found.
                p += 2;
                continue;
            }
            p += 2 * per_copy;
            const Header& n = *h[newest];
            s.id = n.id;
            s.len = n.len;
            s.seq = n.seq;
            s.newest = static_cast<std::uint8_t>(newest);
            s.other_valid = h[1 - newest] != nullptr;
            auto crc = stream_crc(s, s.newest, n.len);
            if (!crc) return fail(crc.error());
            s.flags = *crc == n.data_crc ? 0 : corrupt_flag;
            // A record moved to a new slot by a cut store may be in two slots: the newer wins.
            if (Slot* other = find(s.id)) {
                const bool mine = s.seq > other->seq;
                P11TLS_TRY(free_slot(mine ? *other : s));
                ++report_.slots_freed;
                if (!mine) continue;
                erase_slot(other);
            }
            if (!insert_slot(s)) ++report_.dropped_records;
        }
        for (std::size_t i = 0; i < count_; ++i) report_.corrupt_records += (slots_[i].flags & corrupt_flag) ? 1 : 0;
        report_.records = count_;
        next_seq_ = max_seq + 1;
        return {};
    }

    mutable D dev_;  // reading does not change the store
    std::array<Slot, MaxRecords> slots_{};
    std::size_t count_ = 0;
    std::uint32_t next_seq_ = 1;
    EepromMountReport report_{};
    bool broken_ = false;
};

}  // namespace p11tls
