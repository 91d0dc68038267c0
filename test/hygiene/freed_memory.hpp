// SPDX-License-Identifier: MIT
#pragma once
// Freed-memory scanner for the hygiene tests. freed_memory.cpp replaces malloc, calloc, realloc
// and free for the whole process (mbedTLS in its shared library, libstdc++'s operator new and
// delete, the C library itself all allocate through them). While a watch is on, free() keeps
// every block instead of releasing it (a quarantine: nothing is reused or overwritten), and
// realloc() always moves, so the old block is kept as well. `stop_and_scan` then looks for
// secrets in every kept block and releases them all.
//
// A secret matches as any 8-byte window of its big-endian bytes or of their reverse, which is
// how an mbedtls_mpi holds the same number (little-endian 64-bit limbs) on this host. Windows
// with fewer than 5 distinct byte values are skipped (leading zeros, padding), so a hit is
// never an accident of common bytes.
//
// Only for a test executable built without AddressSanitizer (which owns malloc itself).
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p11tls::test::hygiene {

struct Secret {
    std::string name;                       // e.g. "imported P-256 d"
    std::span<const unsigned char> value;   // big-endian, as PKCS#11 holds it
};

struct Hit {
    std::string secret;
    bool little_endian;       // found in mbedtls_mpi limb order
    std::size_t block_size;   // usable size of the freed block
    std::size_t offset;       // of the first matching window
};

struct Scan {
    std::vector<Hit> hits;    // at most one per (block, secret, order)
    std::size_t blocks = 0;   // freed blocks scanned
    std::size_t bytes = 0;    // their usable bytes
    std::size_t windows = 0;  // distinct secret windows searched for
    std::size_t lost = 0;     // frees the quarantine had no room for (coverage gap: must be 0)
};

/// Starts keeping freed blocks. Not nestable; single-threaded use.
void start();
/// Stops keeping, scans every kept block for `secrets`, releases the blocks.
[[nodiscard]] Scan stop_and_scan(std::span<const Secret> secrets);

struct StackScan {
    std::size_t hits = 0;          // matching 8-byte windows
    std::size_t first_secret = 0;  // index into `secrets` of the first hit
    std::size_t first_depth = 0;   // its distance below the caller's frame
    bool little_endian = false;
};
/// Hits for `secrets` in the `depth` bytes of stack below the caller's frame (after a 1 KiB
/// margin for the scan's own frame): frames of calls that have returned, which nothing wipes
/// unless the code did. Uses no heap.
[[nodiscard]] StackScan dead_stack_hits(std::span<const Secret> secrets, std::size_t depth);

/// Every 8-byte window of `text` that is one of the secrets' windows in hex (lower or upper
/// case, big-endian digits) or raw: for captured program output.
[[nodiscard]] std::size_t count_in_text(std::span<const Secret> secrets, std::string_view text);

}  // namespace p11tls::test::hygiene
