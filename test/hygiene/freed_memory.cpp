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
