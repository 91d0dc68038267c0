// SPDX-License-Identifier: MIT
// The allocator replacement and scanner behind freed_memory.hpp. glibc documents malloc,
// calloc, realloc and free as replaceable; its own __libc_* entry points do the real work.
// memalign and friends stay glibc's: their blocks are released through this free() too.
#include "freed_memory.hpp"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <set>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
}

namespace {

// 2^20 kept blocks (8 MiB of pointers, static: the quarantine must not allocate).
constexpr std::size_t capacity = std::size_t{1} << 20;
void* kept[capacity];
std::atomic<std::size_t> kept_count{0};
std::atomic<std::size_t> lost{0};
std::atomic<bool> watching{false};

void keep_or_release(void* p) noexcept {
    if (watching.load(std::memory_order_relaxed)) {
        const std::size_t i = kept_count.fetch_add(1, std::memory_order_relaxed);
        if (i < capacity) {
            kept[i] = p;
            return;
        }
        kept_count.store(capacity, std::memory_order_relaxed);
        lost.fetch_add(1, std::memory_order_relaxed);
    }
    __libc_free(p);
}

}  // namespace

extern "C" {

void* malloc(std::size_t n) { return __libc_malloc(n); }

void* calloc(std::size_t count, std::size_t size) { return __libc_calloc(count, size); }

void free(void* p) {
    if (p) keep_or_release(p);
}

void* realloc(void* p, std::size_t n) {
    if (!watching.load(std::memory_order_relaxed)) return __libc_realloc(p, n);
    if (!p) return __libc_malloc(n);
    if (n == 0) {
        keep_or_release(p);
        return nullptr;
    }
    // Always move, so the old block (and whatever it held) is kept for the scan.
    void* q = __libc_malloc(n);
    if (!q) return nullptr;
    std::memcpy(q, p, std::min(n, ::malloc_usable_size(p)));
    keep_or_release(p);
    return q;
}

}  // extern "C"

namespace p11tls::test::hygiene {

namespace {

std::uint64_t load64(const unsigned char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

bool varied(const unsigned char* p) noexcept {
    unsigned char seen[8];
    std::size_t distinct = 0;
    for (std::size_t i = 0; i < 8; ++i)
        if (std::find(seen, seen + distinct, p[i]) == seen + distinct) seen[distinct++] = p[i];
    return distinct >= 5;
}

struct Window {
    std::uint64_t bits;
    std::uint32_t secret;
    bool little_endian;
    bool operator<(const Window& o) const noexcept { return bits < o.bits; }
};

// Both byte orders of every secret, each as its 8-byte windows.
std::vector<Window> windows_of(std::span<const Secret> secrets) {
    std::vector<Window> w;
    for (std::size_t s = 0; s < secrets.size(); ++s) {
        std::vector<unsigned char> be(secrets[s].value.begin(), secrets[s].value.end());
        std::vector<unsigned char> le(be.rbegin(), be.rend());
        for (int order = 0; order < 2; ++order) {
            const auto& v = order == 0 ? be : le;
            for (std::size_t i = 0; i + 8 <= v.size(); ++i)
                if (varied(v.data() + i)) w.push_back({load64(v.data() + i), static_cast<std::uint32_t>(s), order == 1});
        }
        std::fill(be.begin(), be.end(), 0);  // the test's own copies leave nothing either
        std::fill(le.begin(), le.end(), 0);
    }
    std::sort(w.begin(), w.end());
    return w;
}

}  // namespace

void start() {
    kept_count.store(0);
    lost.store(0);
    watching.store(true);
}

Scan stop_and_scan(std::span<const Secret> secrets) {
    watching.store(false);
    Scan scan;
    scan.lost = lost.load();
    const std::size_t n = std::min(kept_count.load(), capacity);
    std::vector<Window> w = windows_of(secrets);
    scan.windows = w.size();
    std::vector<bool> reported;
    for (std::size_t b = 0; b < n; ++b) {
        auto* block = static_cast<const unsigned char*>(kept[b]);
        const std::size_t size = ::malloc_usable_size(kept[b]);
        ++scan.blocks;
        scan.bytes += size;
        reported.assign(2 * secrets.size(), false);
        for (std::size_t off = 0; off + 8 <= size; ++off) {
            const Window probe{load64(block + off), 0, false};
            for (auto it = std::lower_bound(w.begin(), w.end(), probe); it != w.end() && it->bits == probe.bits; ++it) {
                const std::size_t slot = 2 * it->secret + (it->little_endian ? 1 : 0);
                if (reported[slot]) continue;
                reported[slot] = true;
                scan.hits.push_back({secrets[it->secret].name, it->little_endian, size, off});
            }
        }
    }
    for (std::size_t b = 0; b < n; ++b) __libc_free(kept[b]);
    kept_count.store(0);
    for (Window& x : w) x.bits = 0;
    return scan;
}

namespace {
// The stack scan's window set: open addressing in static storage, so the scan neither
// allocates nor moves windows through stack temporaries (which would plant the very bytes it
// looks for in the region it searches).
constexpr std::size_t table_bits = 16;
std::uint64_t table[std::size_t{1} << table_bits];

bool varied(std::uint64_t w) noexcept {
    unsigned char b[8];
    std::memcpy(b, &w, 8);
    return varied(b);
}
std::size_t slot_of(std::uint64_t w) noexcept { return (w * 0x9E3779B97F4A7C15ull) >> (64 - table_bits); }
void insert(std::uint64_t w) noexcept {
    for (std::size_t i = slot_of(w);; i = (i + 1) & ((std::size_t{1} << table_bits) - 1)) {
        if (table[i] == w) return;
        if (table[i] == 0) {
            table[i] = w;
            return;
        }
    }
}
bool contains(std::uint64_t w) noexcept {
    if (w == 0) return false;  // the empty slot marker; never a window (not varied)
    for (std::size_t i = slot_of(w);; i = (i + 1) & ((std::size_t{1} << table_bits) - 1)) {
        if (table[i] == w) return true;
        if (table[i] == 0) return false;
    }
}
}  // namespace

[[gnu::noinline]] StackScan dead_stack_hits(std::span<const Secret> secrets, std::size_t depth) {
    std::size_t n = 0;
    for (const Secret& s : secrets) {
        const unsigned char* v = s.value.data();
        const std::size_t size = s.value.size();
        for (std::size_t i = 0; i + 8 <= size; ++i) {
            const std::uint64_t be = load64(v + i);
            if (!varied(be) || n + 2 > (std::size_t{1} << table_bits) / 2) continue;
            insert(be);
            insert(__builtin_bswap64(be));  // the same bytes in mpi limb order
            n += 2;
        }
    }
    // Everything below this frame (after a margin for its own locals and spills) belongs to
    // calls that have returned.
    const auto frame = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    const auto* top = reinterpret_cast<const unsigned char*>(frame - 1024);
    StackScan scan;
    for (std::size_t off = 8; off <= depth; ++off) {
        const std::uint64_t w = load64(top - off);
        if (!contains(w)) continue;
        if (scan.hits++ > 0) continue;
        scan.first_depth = off + 1024;
        for (std::size_t s = 0; s < secrets.size(); ++s)
            for (std::size_t i = 0; i + 8 <= secrets[s].value.size(); ++i) {
                const std::uint64_t be = load64(secrets[s].value.data() + i);
                if (w == be || w == __builtin_bswap64(be)) {
                    scan.first_secret = s;
                    scan.little_endian = w != be;
                }
            }
    }
    std::memset(table, 0, sizeof table);
    return scan;
}

std::size_t count_in_text(std::span<const Secret> secrets, std::string_view text) {
    static constexpr char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    std::set<std::string> needles;
    for (const Secret& s : secrets) {
        std::vector<unsigned char> be(s.value.begin(), s.value.end());
        std::vector<unsigned char> le(be.rbegin(), be.rend());
        for (const auto* v : {&be, &le})
            for (std::size_t i = 0; i + 8 <= v->size(); ++i) {
                if (!varied(v->data() + i)) continue;
                needles.emplace(reinterpret_cast<const char*>(v->data() + i), 8);
                std::string lo, up;
                for (std::size_t k = 0; k < 8; ++k) {
                    const unsigned char c = (*v)[i + k];
                    lo += lower[c >> 4];
                    lo += lower[c & 15];
                    up += upper[c >> 4];
                    up += upper[c & 15];
                }
                needles.insert(lo);
                needles.insert(up);
            }
    }
    std::size_t found = 0;
    for (std::size_t i = 0; i < text.size(); ++i)
        for (std::size_t len : {std::size_t{8}, std::size_t{16}})
            if (i + len <= text.size() && needles.count(std::string(text.substr(i, len)))) ++found;
    return found;
}

}  // namespace p11tls::test::hygiene
