// SPDX-License-Identifier: MIT
#pragma once
/// FlashNvm<FlashDevice, ...>: a log-structured record store over two or more flash sectors
/// that keeps every record's old or new value whatever instant the power fails, and spreads
/// erases evenly over its sectors.
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include <p11tls/concepts/flash_device.hpp>
#include <p11tls/concepts/nvm.hpp>
#include <p11tls/detail/crc32.hpp>

namespace p11tls {

/// What `FlashNvm::mount` found and repaired.
struct FlashMountReport {
    std::size_t records = 0;            ///< records readable or reported corrupt
    std::size_t corrupt_records = 0;    ///< committed records whose payload fails its CRC
    std::size_t damaged_regions = 0;    ///< runs of bytes that are no record header (bit flips, garbage)
    std::size_t dropped_records = 0;    ///< records beyond the index capacity (MaxRecords)
    std::size_t sectors_formatted = 0;  ///< blank, half-erased or unreadable sectors erased and formatted
    bool gc_finished = false;           ///< a collection cut by a reset was completed
};

/// A FlashDevice partition of `SectorCount` sectors from `FirstSector` as an Nvm.
///
/// On flash (all integers little-endian; `A` = max(program unit, 8) bytes):
/// - each sector starts with a 16-byte header {"P11F", version, log2 A, 0, 0, erase count,
///   CRC-32}, programmed right after the sector is erased, then a 16-byte open marker
///   {"P11O", sector sequence, 0, CRC-32} programmed when the sector starts taking records;
/// - records follow, each A-aligned: 24 bytes of fields {'R', version << 4 | kind (0 data,
///   1 removal, 2 collection), 0, 0, id, length, sequence, CRC-32 of the payload, CRC-32 of the
///   20 bytes before}, padding to A, an A-byte commit state, then the payload padded to A. The
///   fields and the payload are programmed first; the commit state (all bits programmed) is
///   programmed last, so a record is either committed whole or, torn by a power cut, ignored.
///
/// Every store or remove appends a record with the next sequence number; the newest committed
/// version of an id wins. Sectors are used as a ring: when the current sector is full, the
/// next erased one is opened; when that leaves no erased sector, the oldest sector's live
/// records are copied (verbatim, keeping their sequence numbers) into the new one, a
/// collection record naming the old sector's sequence is committed after them, and the old
/// sector is erased and formatted. (An erase cut by a reset can leave any part of the old
/// content, e.g. a removed record without its removal; the collection record voids it.)
/// Every sector is erased once per turn of the ring, so wear spreads evenly, also over static
/// records. Before anything is written, the whole plan
/// (opening, collections, the record) is run on the RAM index alone; a store that could not
/// complete returns `Errc::nvm_full` and writes nothing. A store or remove always leaves room
/// for one removal record, so removing records works on a full store.
///
/// `mount` scans every sector in use: records torn by a power cut (not committed) are ignored,
/// committed records whose payload fails its CRC are kept as corrupt (`load` reports
/// `Errc::nvm_corrupt`; they are never silently replaced by an older version), damaged headers
/// are skipped and the scan resynchronises on the next valid record; half-erased, blank or
/// unreadable sectors and sectors named by a collection record are erased and formatted, and a
/// collection cut before its record is completed (or, if a torn copy took the room it needs,
/// started over). After a device error the store refuses further work (`Errc::nvm_io`) until
/// it is mounted again.
///
/// In a partition of mixed sector sizes (STM32F4 sectors 3 and 4: 16 and 64 KiB) every sector
/// is used up to the size of the smallest, so that a collection can always move one sector's
/// live records into another.
///
/// RAM: two indexes of `MaxRecords` entries (20 bytes each) plus a few bytes per sector.
template <FlashDevice D, std::size_t FirstSector, std::size_t SectorCount, std::size_t MaxRecords = 128,
          std::size_t MaxRecordSize = 4224>
class FlashNvm {
    static constexpr std::size_t round_up(std::size_t n, std::size_t a) noexcept { return (n + a - 1) / a * a; }

public:
    using device_type = D;
    static constexpr std::size_t first_sector = FirstSector;
    static constexpr std::size_t sector_count = SectorCount;
    static constexpr std::size_t max_records = MaxRecords;
    static constexpr std::uint8_t format_version = 1;
    /// Alignment of records and size of the commit state.
    static constexpr std::size_t align = D::program_unit < 8 ? 8 : D::program_unit;
    static constexpr std::size_t sector_header_size = 32;
    static constexpr std::size_t fields_size = round_up(24, align);
    static constexpr std::size_t record_header_size = fields_size + align;
    static constexpr std::size_t smallest_sector = [] {
        std::size_t m = std::numeric_limits<std::size_t>::max();
        for (std::size_t i = 0; i < SectorCount; ++i) m = std::min(m, D::sector_size(FirstSector + i));
        return m;
    }();
    /// A record and one removal record must fit in an empty sector.
    static constexpr std::size_t max_record_size =
        std::min(MaxRecordSize, (smallest_sector - sector_header_size - 2 * record_header_size) / align * align);

    static_assert(SectorCount >= 2, "FlashNvm needs at least two sectors");
    static_assert(FirstSector + SectorCount <= D::sector_count, "partition beyond the device");
    static_assert(smallest_sector > sector_header_size + 2 * record_header_size + align, "sectors too small");
    static_assert(MaxRecords > 0 && MaxRecords < 65536);

    /// Mounts the store on `dev`: scans, repairs (see the class comment) and formats a blank
    /// partition. Fails only if the device cannot be read or written.
    [[nodiscard]] static Result<FlashNvm> mount(D dev) {
        FlashNvm nvm(std::move(dev));
        P11TLS_TRY(nvm.do_mount());
        P11TLS_TRY(nvm.renew_removals());
        return nvm;
    }

    [[nodiscard]] Result<void> store(RecordId id, std::span<const std::byte> data) {
        if (broken_) return fail(Errc::nvm_io);
        if (data.size() > max_record_size) return fail(Errc::nvm_record_too_large);
        Entry* e = find(lay_, id);
        if (e && !(e->flags & corrupt_flag) && e->len == data.size()) {
            auto same = equals(*e, data);
            if (!same) return fail(same.error());
            if (*same) return {};  // rewriting the same bytes would only wear the flash
        }
        if (!e && lay_.count == MaxRecords) return fail(Errc::nvm_full);
        const std::size_t need = record_total(data.size());
        P11TLS_TRY(room_for(need + record_header_size));
        return commit(id, kind_data, data, need);
    }

    [[nodiscard]] Result<std::size_t> load(RecordId id, std::span<std::byte> out) const {
        if (broken_) return fail(Errc::nvm_io);
        const Entry* e = find(lay_, id);
        if (!e) return fail(Errc::nvm_not_found);
        if (e->flags & corrupt_flag) return fail(Errc::nvm_corrupt);
        if (e->len > out.size()) return fail(Errc::buffer_too_small);
        const std::size_t at = sector_base(e->sector) + e->offset;
        std::byte fields[24];
        P11TLS_TRY(dev_.read(at, fields));
        Fields f;
        if (!parse_fields(fields, f) || f.id != id || f.len != e->len || f.seq != e->seq) return fail(Errc::nvm_corrupt);
        auto payload = out.first(e->len);
        P11TLS_TRY(dev_.read(at + record_header_size, payload));
        if (detail::crc32(payload) != f.data_crc) return fail(Errc::nvm_corrupt);
        return payload.size();
    }

    [[nodiscard]] Result<std::size_t> size(RecordId id) const {
        if (broken_) return fail(Errc::nvm_io);
        const Entry* e = find(lay_, id);
        if (!e) return fail(Errc::nvm_not_found);
        return static_cast<std::size_t>(e->len);
    }

    [[nodiscard]] Result<void> remove(RecordId id) {
        if (broken_) return fail(Errc::nvm_io);
        if (!find(lay_, id)) return {};
        P11TLS_TRY(room_for(record_header_size));
        return commit(id, kind_removal, {}, record_header_size);
    }

    [[nodiscard]] Result<std::size_t> list(std::span<RecordId> ids) const {
        if (broken_) return fail(Errc::nvm_io);
        if (ids.size() < lay_.count) return fail(Errc::buffer_too_small);
        for (std::size_t i = 0; i < lay_.count; ++i) ids[i] = lay_.index[i].id;
        return lay_.count;
    }

    [[nodiscard]] const FlashMountReport& mount_report() const noexcept { return report_; }
    /// Erase count of partition sector `i` as recorded in its header.
    [[nodiscard]] std::uint32_t erase_count(std::size_t i) const noexcept { return lay_.sectors[i].erase_count; }
    /// Garbage collections run since mount.
    [[nodiscard]] std::size_t collections() const noexcept { return collections_; }
    [[nodiscard]] D& device() noexcept { return dev_; }

private:
    static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
    static constexpr std::uint8_t kind_data = 0, kind_removal = 1, kind_collected = 2;
    static constexpr std::uint8_t corrupt_flag = 1, removal_flag = 2, twin_flag = 4;
    static constexpr std::byte record_magic{0x52};  // 'R'; neither 0x00 nor 0xFF, so never erased

    enum class State : std::uint8_t { free, used, blank };
    struct Sector {
        State state = State::blank;
        std::uint32_t sseq = 0;
        std::uint32_t erase_count = 0;
        std::uint32_t end = sector_header_size;  // where the next record goes
    };
    struct Entry {
        RecordId id;
        std::uint32_t seq;
        std::uint32_t offset;  // within its sector
        std::uint32_t len;
        std::uint16_t sector;
        std::uint8_t flags;
    };
    // Everything a plan changes, so a plan can run on a copy first.
    struct Layout {
        std::array<Sector, SectorCount> sectors{};
        std::array<Entry, MaxRecords> index{};  // sorted by id
        std::size_t count = 0;
        std::size_t head = none;
        std::uint32_t next_sseq = 1;
    };
    struct Fields {
        std::uint8_t kind;
        RecordId id;
        std::uint32_t len, seq, data_crc;
    };

    explicit FlashNvm(D dev) : dev_(std::move(dev)) {}

    static constexpr std::size_t sector_base(std::size_t s) noexcept { return D::sector_offset(FirstSector + s); }
    // Every sector is used up to the size of the smallest: a collection moves a sector's live
    // records into another one, which must be able to take them all.
    static constexpr std::size_t sector_len(std::size_t) noexcept { return smallest_sector; }
    static constexpr std::size_t record_total(std::size_t len) noexcept { return record_header_size + round_up(len, align); }
    static constexpr std::size_t unit_len(std::size_t n) noexcept { return round_up(n, D::program_unit); }

    // Short arrays, mostly in order already (log order, sector order).
    template <class T, class Less>
    static void insertion_sort(std::span<T> v, Less less) noexcept {
        for (std::size_t i = 1; i < v.size(); ++i)
            for (std::size_t j = i; j > 0 && less(v[j], v[j - 1]); --j) std::swap(v[j], v[j - 1]);
    }

    static bool erased(std::span<const std::byte> b) noexcept {
        return std::ranges::all_of(b, [](std::byte x) { return x == D::erased_value; });
    }

    // --- the RAM index ---

    static Entry* find(Layout& l, RecordId id) noexcept {
        auto it = std::lower_bound(l.index.begin(), l.index.begin() + l.count, id,
                                   [](const Entry& e, RecordId v) { return e.id < v; });
        return it != l.index.begin() + l.count && it->id == id ? &*it : nullptr;
    }
    static const Entry* find(const Layout& l, RecordId id) noexcept { return find(const_cast<Layout&>(l), id); }
    static Entry* insert(Layout& l, RecordId id) noexcept {
        if (l.count == MaxRecords) return nullptr;
        auto it = std::lower_bound(l.index.begin(), l.index.begin() + l.count, id,
                                   [](const Entry& e, RecordId v) { return e.id < v; });
        std::move_backward(it, l.index.begin() + l.count, l.index.begin() + l.count + 1);
        ++l.count;
        it->id = id;
        return &*it;
    }
    static void erase_entry(Layout& l, Entry* e) noexcept {
        std::move(e + 1, l.index.begin() + l.count, e);
        --l.count;
    }

    // --- device access ---

    // A program split at the part's page boundaries.
    Result<void> program(std::size_t addr, std::span<const std::byte> data) {
        while (!data.empty()) {
            std::size_t n = data.size();
            if constexpr (D::program_page != 0) n = std::min(n, D::program_page - addr % D::program_page);
            P11TLS_TRY(dev_.program(addr, data.first(n)));
            addr += n;
            data = data.subspan(n);
        }
        return {};
    }
    // Programs `data`, its last unit padded with the erased value.
    Result<void> program_padded(std::size_t addr, std::span<const std::byte> data) {
        const std::size_t whole = data.size() / D::program_unit * D::program_unit;
        P11TLS_TRY(program(addr, data.first(whole)));
        if (whole == data.size()) return {};
        std::array<std::byte, D::program_unit> last;
        last.fill(D::erased_value);
        std::copy(data.begin() + whole, data.end(), last.begin());
        return program(addr + whole, last);
    }
    Result<void> program_commit(std::size_t addr) {
        std::array<std::byte, align> state;
        state.fill(~D::erased_value);
        return program(addr, state);
    }

    static void encode_fields(std::byte (&f)[24], std::uint8_t kind, RecordId id, std::uint32_t len, std::uint32_t seq,
                              std::uint32_t data_crc) noexcept {
        f[0] = record_magic;
        f[1] = std::byte(format_version << 4 | kind);
        f[2] = f[3] = std::byte{0};
        detail::put_le32(f + 4, id);
        detail::put_le32(f + 8, len);
        detail::put_le32(f + 12, seq);
        detail::put_le32(f + 16, data_crc);
        detail::put_le32(f + 20, detail::crc32(std::span(f).first(20)));
    }
    static bool parse_fields(const std::byte* f, Fields& out) noexcept {
        if (f[0] != record_magic || std::to_integer<unsigned>(f[1]) >> 4 != format_version) return false;
        if (detail::get_le32(f + 20) != detail::crc32(std::span(f, 20))) return false;
        out.kind = std::to_integer<std::uint8_t>(f[1]) & 0x0F;
        out.id = detail::get_le32(f + 4);
        out.len = detail::get_le32(f + 8);
        out.seq = detail::get_le32(f + 12);
        out.data_crc = detail::get_le32(f + 16);
        if (out.kind > kind_collected || (out.kind != kind_data && out.len != 0)) return false;
        return out.len <= MaxRecordSize;
    }

    Result<void> write_header(std::size_t s, std::uint32_t erase_count) {
        std::byte h[16] = {std::byte{'P'}, std::byte{'1'}, std::byte{'1'}, std::byte{'F'}, std::byte{format_version},
                           std::byte(std::countr_zero(align))};
        detail::put_le32(h + 8, erase_count);
        detail::put_le32(h + 12, detail::crc32(std::span(h).first(12)));
        return program(sector_base(s), h);
    }
    Result<void> write_open(std::size_t s, std::uint32_t sseq) {
        std::byte o[16] = {std::byte{'P'}, std::byte{'1'}, std::byte{'1'}, std::byte{'O'}};
        detail::put_le32(o + 4, sseq);
        detail::put_le32(o + 12, detail::crc32(std::span(o).first(12)));
        return program(sector_base(s) + 16, o);
    }

    // Compares a stored record with `data` without loading it whole.
    Result<bool> equals(const Entry& e, std::span<const std::byte> data) const {
        std::byte buf[128];
        const std::size_t at = sector_base(e.sector) + e.offset + record_header_size;
        for (std::size_t done = 0; done < data.size();) {
            const std::size_t n = std::min(sizeof buf, data.size() - done);
            P11TLS_TRY(dev_.read(at + done, std::span(buf, n)));
            if (std::memcmp(buf, data.data() + done, n) != 0) return false;
            done += n;
        }
        return true;
    }

    // --- planning: the same steps run on a copy of the layout (Real = false) and then for real ---

    static std::size_t room(const Layout& l, std::size_t s) noexcept { return sector_len(s) - l.sectors[s].end; }
    static std::size_t free_count(const Layout& l) noexcept {
        return static_cast<std::size_t>(std::ranges::count_if(l.sectors, [](const Sector& s) { return s.state == State::free; }));
    }
    // The next erased sector in ring order after the head.
    static std::size_t next_free(const Layout& l) noexcept {
        const std::size_t start = l.head == none ? 0 : l.head + 1;
        for (std::size_t i = 0; i < SectorCount; ++i) {
            const std::size_t s = (start + i) % SectorCount;
            if (l.sectors[s].state == State::free) return s;
        }
        return none;
    }

    template <bool Real>
    Result<void> make_room(Layout& l, std::size_t need) {
        for (std::size_t round = 0; round <= 2 * SectorCount + 1; ++round) {
            if (l.head != none && room(l, l.head) >= need) return {};
            const std::size_t f = next_free(l);
            if (f == none) return fail(Errc::nvm_full);
            if constexpr (Real) {
                P11TLS_TRY(ensure_blank(f, l.sectors[f].erase_count));
                P11TLS_TRY(write_open(f, l.next_sseq));
            }
            l.sectors[f].state = State::used;
            l.sectors[f].sseq = l.next_sseq++;
            l.sectors[f].end = sector_header_size;
            l.head = f;
            if (free_count(l) == 0) P11TLS_TRY(collect<Real>(l));
        }
        return fail(Errc::nvm_full);
    }

    // Copies the oldest sector's live records into the head, then erases and formats it.
    template <bool Real>
    Result<void> collect(Layout& l) {
        std::size_t victim = none;
        for (std::size_t s = 0; s < SectorCount; ++s)
            if (s != l.head && l.sectors[s].state == State::used &&
                (victim == none || l.sectors[s].sseq < l.sectors[victim].sseq))
                victim = s;
        if (victim == none) return {};
        std::array<std::uint16_t, MaxRecords> live;
        std::size_t n = 0, bytes = 0;
        for (std::size_t i = 0; i < l.count; ++i)
            if (l.index[i].sector == victim) {
                live[n++] = static_cast<std::uint16_t>(i);
                bytes += record_total(l.index[i].len);
            }
        // The copies, then a record naming the collected sector, so a reset during its erase
        // cannot bring back what the half-erased sector still shows (a removed record whose
        // removal was erased first).
        const bool mark = l.sectors[victim].sseq != 0;
        if (bytes + (mark ? record_header_size : 0) > room(l, l.head)) return fail(Errc::nvm_full);
        insertion_sort(std::span(live).first(n), [&](std::uint16_t a, std::uint16_t b) { return l.index[a].offset < l.index[b].offset; });
        for (std::size_t k = 0; k < n; ++k) {
            Entry& e = l.index[live[k]];
            const std::uint32_t to = l.sectors[l.head].end;
            if constexpr (Real) P11TLS_TRY(copy_record(e, l.head, to));
            e.sector = static_cast<std::uint16_t>(l.head);
            e.offset = to;
            l.sectors[l.head].end = to + static_cast<std::uint32_t>(record_total(e.len));
        }
        if (mark) {
            if constexpr (Real)
                P11TLS_TRY(write_record(sector_base(l.head) + l.sectors[l.head].end, kind_collected, l.sectors[victim].sseq, {}));
            l.sectors[l.head].end += static_cast<std::uint32_t>(record_header_size);
        }
        const std::uint32_t count = l.sectors[victim].erase_count + 1;
        if constexpr (Real) {
            P11TLS_TRY(dev_.erase(FirstSector + victim));
            P11TLS_TRY(write_header(victim, count));
            ++collections_;
        }
        l.sectors[victim] = Sector{State::free, 0, count, sector_header_size};
        return {};
    }

    Result<void> copy_record(const Entry& e, std::size_t to_sector, std::size_t to_offset) {
        const std::size_t from = sector_base(e.sector) + e.offset, to = sector_base(to_sector) + to_offset;
        std::byte buf[256];
        auto copy = [&](std::size_t off, std::size_t len) -> Result<void> {
            for (std::size_t done = 0; done < len;) {
                const std::size_t n = std::min(sizeof buf, len - done);
                P11TLS_TRY(dev_.read(from + off + done, std::span(buf, n)));
                P11TLS_TRY(program(to + off + done, std::span(buf, n)));
                done += n;
            }
            return {};
        };
        P11TLS_TRY(copy(0, unit_len(24)));
        P11TLS_TRY(copy(record_header_size, unit_len(e.len)));
        return program_commit(to + fields_size);
    }

    Result<void> room_for(std::size_t need) {
        plan_ = lay_;
        if (auto dry = make_room<false>(plan_, need); !dry) return fail(dry.error());
        if (auto r = make_room<true>(lay_, need); !r) {
            broken_ = true;
            return r;
        }
        return {};
    }

    // Appends a record at the head (room was made) and points the index at it.
    // Fields and payload, then the commit state.
    Result<void> write_record(std::size_t at, std::uint8_t kind, RecordId id, std::span<const std::byte> data) {
        std::byte f[24];
        encode_fields(f, kind, id, static_cast<std::uint32_t>(data.size()), next_seq_++, detail::crc32(data));
        P11TLS_TRY(program_padded(at, f));
        P11TLS_TRY(program_padded(at + record_header_size, data));
        return program_commit(at + fields_size);
    }

    Result<void> commit(RecordId id, std::uint8_t kind, std::span<const std::byte> data, std::size_t total) {
        const std::size_t s = lay_.head;
        const std::size_t at = sector_base(s) + lay_.sectors[s].end;
        const std::uint32_t seq = next_seq_;
        auto r = write_record(at, kind, id, data);
        if (!r) {
            broken_ = true;
            return r;
        }
        lay_.sectors[s].end += static_cast<std::uint32_t>(total);
        Entry* e = find(lay_, id);
        if (kind == kind_removal) {
            if (e) erase_entry(lay_, e);
        } else {
            if (!e) e = insert(lay_, id);  // a free entry was checked for
            *e = Entry{id, seq, static_cast<std::uint32_t>(at - sector_base(s)), static_cast<std::uint32_t>(data.size()),
                       static_cast<std::uint16_t>(s), 0};
        }
        return {};
    }

    // --- mount ---

    // Reads sector `s`'s header and open marker.
    Result<void> classify(std::size_t s, bool& open_damaged) {
        std::byte h[32];
        P11TLS_TRY(dev_.read(sector_base(s), h));
        Sector& sec = lay_.sectors[s];
        const bool header_ok = std::memcmp(h, "P11F", 4) == 0 && h[4] == std::byte{format_version} &&
                               detail::get_le32(h + 12) == detail::crc32(std::span(h).first(12));
        const bool open_ok = std::memcmp(h + 16, "P11O", 4) == 0 &&
                             detail::get_le32(h + 28) == detail::crc32(std::span(h + 16, 12));
        sec.erase_count = header_ok ? detail::get_le32(h + 8) : 0;
        header_known_[s] = header_ok;
        open_damaged = false;
        if (open_ok) {
            sec.state = State::used;
            sec.sseq = detail::get_le32(h + 20);
        } else if (!erased(std::span(h + 16, 16))) {
            open_damaged = true;  // a cut open, or a damaged marker of a sector in use
            sec.state = State::blank;
        } else if (header_ok) {
            // Formatted and never opened. Its body is checked when it is opened, not here:
            // mount reads no more than the headers of the sectors it does not use.
            sec.state = State::free;
        } else {
            sec.state = State::blank;
        }
        return {};
    }

    // Scans a sector's records; with `apply`, enters them into the index. Returns whether any
    // committed record was found.
    Result<bool> scan(std::size_t s, bool apply) {
        const std::size_t base = sector_base(s), len = sector_len(s);
        std::size_t pos = sector_header_size, end = pos;
        bool damaged = false, any = false;
        std::byte h[record_header_size];
        while (pos + record_header_size <= len) {
            P11TLS_TRY(dev_.read(base + pos, h));
            if (erased(h)) {
                if (!damaged) {
                    // The end of the log, unless bytes follow: stray bytes that a mount skipped
                    // (check_tail) and the records stored after them, which must be found again.
                    auto last = last_programmed(s, pos);
                    if (!last) return fail(last.error());
                    if (*last == 0) break;
                    if (apply) ++report_.damaged_regions;
                    damaged = true;
                }
                pos += align;  // after damage, erased bytes may be inside a record
                continue;
            }
            Fields f;
            if (!parse_fields(h, f) || pos + record_total(f.len) > len) {
                if (!damaged && apply) ++report_.damaged_regions;
                damaged = true;
                end = std::max(end, pos + record_header_size);  // a torn header may hide programmed units
                pos += align;
                continue;
            }
            damaged = false;
            max_seq_ = std::max(max_seq_, f.seq);
            if (!erased(std::span(h + fields_size, align))) {  // committed
                any = true;
                if (f.kind == kind_collected) {
                    if (!apply && collected_count_ < collected_.size()) collected_[collected_count_++] = f.id;
                } else if (apply) {
                    bool valid = true;
                    if (f.kind == kind_data) {
                        auto crc = payload_crc(base + pos + record_header_size, f.len);
                        if (!crc) return fail(crc.error());
                        valid = *crc == f.data_crc;
                    }
                    enter(f, valid, s, pos);
                }
            }
            pos += record_total(f.len);
            end = std::max(end, pos);
        }
        if (apply) lay_.sectors[s].end = static_cast<std::uint32_t>(end);
        return any;
    }

    // A free sector whose body is not all erased (a disturbed cell, stray garbage) is erased
    // again before it takes records; the plan is unchanged, the sector is free either way.
    Result<void> ensure_blank(std::size_t s, std::uint32_t& erase_count) {
        std::byte buf[256];
        bool blank = true;
        for (std::size_t at = sector_header_size; at < sector_len(s) && blank; at += sizeof buf) {
            auto chunk = std::span(buf).first(std::min(sizeof buf, sector_len(s) - at));
            P11TLS_TRY(dev_.read(sector_base(s) + at, chunk));
            blank = erased(chunk);
        }
        if (blank) return {};
        P11TLS_TRY(dev_.erase(FirstSector + s));
        P11TLS_TRY(write_header(s, ++erase_count));
        return {};
    }

    // The head takes new records after its last one: bytes there that are not erased (stray
    // garbage, disturbed cells) must not be programmed over, so the head continues after them.
    Result<void> check_tail(std::size_t s) {
        auto last = last_programmed(s, lay_.sectors[s].end);
        if (!last) return fail(last.error());
        if (*last == 0) return {};
        ++report_.damaged_regions;
        lay_.sectors[s].end = static_cast<std::uint32_t>(std::min(sector_len(s), round_up(*last, align)));
        return {};
    }

    // The offset just past the last byte of sector `s` from `from` on that is not erased; 0 if
    // there is none.
    Result<std::size_t> last_programmed(std::size_t s, std::size_t from) const {
        std::byte buf[256];
        std::size_t last = 0;
        for (std::size_t at = from; at < sector_len(s); at += sizeof buf) {
            auto chunk = std::span(buf).first(std::min(sizeof buf, sector_len(s) - at));
            P11TLS_TRY(dev_.read(sector_base(s) + at, chunk));
            for (std::size_t i = 0; i < chunk.size(); ++i)
                if (chunk[i] != D::erased_value) last = at + i + 1;
        }
        return last;
    }

    Result<std::uint32_t> payload_crc(std::size_t at, std::size_t len) {
        std::byte buf[256];
        std::uint32_t crc = 0;
        for (std::size_t done = 0; done < len;) {
            const std::size_t n = std::min(sizeof buf, len - done);
            P11TLS_TRY(dev_.read(at + done, std::span(buf, n)));
            crc = detail::crc32(std::span(buf, n), crc);
            done += n;
        }
        return crc;
    }

    // The newest committed version of an id wins, whatever the order sectors are scanned in;
    // at equal sequence (a copy made by a collection) a valid copy beats a corrupt one, and
    // otherwise the one scanned later (the newer sector) wins. Removals stay in the index until
    // the scan is over.
    void enter(const Fields& f, bool valid, std::size_t s, std::size_t pos) {
        Entry* e = find(lay_, f.id);
        std::uint8_t twin = 0;
        if (e) {
            const bool was_valid = !(e->flags & corrupt_flag);
            if (f.seq == e->seq) twin = twin_flag;
            if (f.seq < e->seq || (f.seq == e->seq && was_valid && !valid)) {
                e->flags |= twin;
                return;
            }
        } else if (!(e = insert(lay_, f.id))) {
            if (f.kind == kind_data) ++report_.dropped_records;
            return;
        }
        *e = Entry{f.id, f.seq, static_cast<std::uint32_t>(pos), f.len, static_cast<std::uint16_t>(s),
                   static_cast<std::uint8_t>((valid ? 0 : corrupt_flag) | (f.kind == kind_removal ? removal_flag : 0) | twin)};
    }

    // Writes again, at the head, the removals do_mount found in sectors with a damaged open
    // marker, so they outlive every older version of their records. A store too full for them
    // keeps what it has (mount does not fail for that).
    Result<void> renew_removals() {
        for (std::size_t i = 0; i < renew_count_; ++i) {
            if (find(lay_, renew_[i])) continue;
            if (auto r = room_for(record_header_size); !r) {
                if (r.error().code == Errc::nvm_full) return {};
                return r;
            }
            P11TLS_TRY(commit(renew_[i], kind_removal, {}, record_header_size));
        }
        renew_count_ = 0;
        return {};
    }

    Result<void> do_mount(bool may_retry = true) {
        lay_ = Layout{};
        max_seq_ = 0;
        const std::size_t formatted_before = report_.sectors_formatted;
        report_ = FlashMountReport{};
        report_.sectors_formatted = formatted_before;
        std::array<bool, SectorCount> open_damaged{};
        for (std::size_t s = 0; s < SectorCount; ++s) P11TLS_TRY(classify(s, open_damaged[s]));
        // A damaged open marker on a sector that holds records: keep it, as the oldest.
        for (std::size_t s = 0; s < SectorCount; ++s) {
            if (!open_damaged[s]) continue;
            auto any = scan(s, false);
            if (!any) return fail(any.error());
            if (*any) {
                lay_.sectors[s].state = State::used;
                lay_.sectors[s].sseq = 0;
                ++report_.damaged_regions;
            }
        }
        // Two sectors opened with the same sequence cannot come from this code (a damaged or
        // crafted image): their order is unknown, and a collection record naming that sequence
        // would void both, records stored since included. Keep each as the oldest, like a
        // damaged open marker: collections then take them first and name neither.
        for (std::size_t s = 0; s < SectorCount; ++s) {
            const std::uint32_t q = lay_.sectors[s].sseq;
            if (lay_.sectors[s].state != State::used || q == 0) continue;
            bool dup = false;
            for (std::size_t t = s + 1; t < SectorCount; ++t)
                if (lay_.sectors[t].state == State::used && lay_.sectors[t].sseq == q) {
                    lay_.sectors[t].sseq = 0;
                    ++report_.damaged_regions;
                    dup = true;
                }
            if (dup) {
                lay_.sectors[s].sseq = 0;
                ++report_.damaged_regions;
            }
        }
        // A sector named by a committed collection record was emptied and its erase cut: its
        // content is void, whatever the cut erase left of it.
        collected_count_ = 0;
        for (std::size_t s = 0; s < SectorCount; ++s)
            if (lay_.sectors[s].state == State::used) {
                auto any = scan(s, false);
                if (!any) return fail(any.error());
            }
        for (std::size_t s = 0; s < SectorCount; ++s) {
            Sector& sec = lay_.sectors[s];
            if (sec.state != State::used || sec.sseq == 0) continue;
            if (std::find(collected_.begin(), collected_.begin() + collected_count_, sec.sseq) == collected_.begin() + collected_count_)
                continue;
            sec.state = State::blank;
            report_.gc_finished = true;
        }
        // Scan sectors in the order they were opened.
        std::array<std::size_t, SectorCount> order;
        std::size_t used = 0;
        for (std::size_t s = 0; s < SectorCount; ++s)
            if (lay_.sectors[s].state == State::used) order[used++] = s;
        insertion_sort(std::span(order).first(used),
                       [&](std::size_t a, std::size_t b) { return lay_.sectors[a].sseq < lay_.sectors[b].sseq; });
        std::uint32_t max_sseq = 0, max_erase = 0;
        for (std::size_t k = 0; k < used; ++k) {
            auto any = scan(order[k], true);
            if (!any) return fail(any.error());
            max_sseq = std::max(max_sseq, lay_.sectors[order[k]].sseq);
        }
        if (used > 0) {
            lay_.head = order[used - 1];
            P11TLS_TRY(check_tail(lay_.head));
        }
        lay_.next_sseq = max_sseq + 1;
        next_seq_ = max_seq_ + 1;
        // Drop removals: nothing older than them is left to hide. Except where a removal is in a
        // sector whose open marker is damaged: its place in the ring is lost, so a sector kept
        // after it may hold an older version; renew_removals() writes those again at the head.
        std::size_t kept = 0;
        renew_count_ = 0;
        for (std::size_t i = 0; i < lay_.count; ++i) {
            if (lay_.index[i].flags & removal_flag) {
                if (lay_.sectors[lay_.index[i].sector].sseq == 0) renew_[renew_count_++] = lay_.index[i].id;
                continue;
            }
            report_.corrupt_records += (lay_.index[i].flags & corrupt_flag) ? 1 : 0;
            lay_.index[kept++] = lay_.index[i];
        }
        lay_.count = kept;
        report_.records = kept;
        // Erase and format what is not a usable sector.
        for (const Sector& sec : lay_.sectors) max_erase = std::max(max_erase, sec.erase_count);
        for (std::size_t s = 0; s < SectorCount; ++s) {
            Sector& sec = lay_.sectors[s];
            if (sec.state != State::blank) continue;
            const std::uint32_t count = (header_known_[s] ? sec.erase_count : max_erase) + 1;
            P11TLS_TRY(dev_.erase(FirstSector + s));
            P11TLS_TRY(write_header(s, count));
            sec = Sector{State::free, 0, count, sector_header_size};
            ++report_.sectors_formatted;
        }
        // No erased sector left: a collection was cut; finish it the way it was planned.
        if (lay_.head != none && free_count(lay_) == 0) {
            plan_ = lay_;
            if (collect<false>(plan_)) {
                P11TLS_TRY(collect<true>(lay_));
                report_.gc_finished = true;
                return {};
            }
            // A copy torn by the cut took the room the rest needs. The head holds nothing but
            // copies of records still in the oldest sector (a record is only written once the
            // collection is over): erase it and start again from the state before.
            const std::size_t h = lay_.head;
            const bool only_copies = std::all_of(lay_.index.begin(), lay_.index.begin() + lay_.count,
                                                 [&](const Entry& e) { return e.sector != h || (e.flags & twin_flag); });
            if (may_retry && only_copies) {
                P11TLS_TRY(dev_.erase(FirstSector + h));
                P11TLS_TRY(write_header(h, lay_.sectors[h].erase_count + 1));
                ++report_.sectors_formatted;
                return do_mount(false);
            }
        }
        return {};
    }

    mutable D dev_;  // reading does not change the store
    Layout lay_{};
    Layout plan_{};
    std::array<bool, SectorCount> header_known_{};
    std::array<std::uint32_t, 2 * SectorCount> collected_{};  // sectors named by collection records
    std::size_t collected_count_ = 0;
    std::array<RecordId, MaxRecords> renew_{};  // removals to write again (see do_mount)
    std::size_t renew_count_ = 0;
    std::uint32_t next_seq_ = 1;
    std::uint32_t max_seq_ = 0;
    std::size_t collections_ = 0;
    FlashMountReport report_{};
    bool broken_ = false;
};

}  // namespace p11tls
