// SPDX-License-Identifier: MIT
// p11tls-bench-nvm: the flash and EEPROM stores on each simulated part. Prints `name=value`
// lines per part:
//   *_wa_cert_1024, *_wa_key_100   write amplification: bytes programmed (written, on EEPROM)
//                                  per payload byte while one record of that size is updated
//                                  over and over next to a few static ones (collections included)
//   *_erase_spread_*               max/mean erase count over the partition's sectors after
//                                  10,000 such updates
//   *_erases_per_update_*          sector erases per update, and the same figure for the anchor:
//                                  the FreeRTOS flash PAL layout (one sector per object, erased
//                                  and rewritten, then a "present" marker, on every update);
//                                  *_ratio = p11tls / anchor
//   *_mount_{10,100,1000}_us       time to mount a store of that many 100-byte records (median
//                                  over batches, host CPU on the simulated part), and the bytes
//                                  the mount read from the part (what a real part's bus would carry)
// `--quick` is a smoke run (1,000 updates, few mount repetitions).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include <p11tls/device/sim_eeprom.hpp>
#include <p11tls/device/sim_flash.hpp>
#include <p11tls/entropy/getrandom.hpp>
#include <p11tls/nvm/eeprom_nvm.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/nvm/sealed_nvm.hpp>

#include "bench_common.hpp"

namespace {

using namespace p11tls;
using namespace p11tls::bench;
using Bytes = std::vector<std::byte>;

constexpr double wa_cert_target = 1.25;
constexpr double spread_target = 1.5;

Bytes payload(std::size_t n, unsigned seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<unsigned char>(i * 31 + seed * 17 + (seed >> 8)));
    return b;
}

template <class R>
void ok(const R& r, const char* what) {
    if (!r) die(fmt::format("{} failed: {}", what, describe(r.error().code)));
}

struct FixedKey {
    static constexpr std::size_t key_size = 32;
    [[nodiscard]] Result<void> key(std::span<std::byte, key_size> out) const noexcept {
        std::fill(out.begin(), out.end(), std::byte{0x5A});
        return {};
    }
};

// The live set of a provisioned device: token state, a key, a certificate. One of them is then
// updated over and over.
constexpr RecordId meta_id = 0, key_id = 1, cert_id = 2;
constexpr std::size_t meta_size = 176, key_size = 100, cert_size = 1024;

struct UpdateFigures {
    double wa = 0;
    double spread = 0;
    double erases_per_update = 0;
};

// --- flash ----------------------------------------------------------------------------------

template <class Part, std::size_t First, std::size_t Count>
double spread_of(const SimFlashChip<Part>& chip) {
    double sum = 0, max = 0;
    for (std::size_t s = First; s < First + Count; ++s) {
        sum += chip.stats().sector_erases[s];
        max = std::max<double>(max, chip.stats().sector_erases[s]);
    }
    return sum > 0 ? max / (sum / Count) : 0;
}

// Updates record `id` (of `size` bytes) `updates` times on a fresh store: a FlashNvm, or with
// `Sealed` a SealedNvm over it (the payload is then the plaintext).
template <class Part, std::size_t First, std::size_t Count, bool Sealed = false>
UpdateFigures flash_updates(RecordId id, std::size_t size, int updates) {
    using Inner = FlashNvm<SimFlash<Part>, First, Count>;
    auto chip = std::make_unique<SimFlashChip<Part>>();
    auto inner = Inner::mount(SimFlash<Part>(*chip));
    ok(inner, "mount");
    auto run = [&](auto& store) {
        ok(store.store(meta_id, payload(meta_size, 1)), "store");
        ok(store.store(key_id, payload(key_size, 2)), "store");
        ok(store.store(cert_id, payload(cert_size, 3)), "store");
        chip->reset_stats();
        for (int i = 0; i < updates; ++i) ok(store.store(id, payload(size, 10 + static_cast<unsigned>(i))), "update");
    };
    if constexpr (Sealed) {
        auto sealed = SealedNvm<Inner, FixedKey, GetrandomEntropy>::open(std::move(*inner), FixedKey{}, GetrandomEntropy{});
        ok(sealed, "open sealed");
        run(*sealed);
    } else {
        run(*inner);
    }
    UpdateFigures f;
    f.wa = static_cast<double>(chip->stats().bytes_programmed) / (static_cast<double>(updates) * static_cast<double>(size));
    f.spread = spread_of<Part, First, Count>(*chip);
    f.erases_per_update = static_cast<double>(chip->stats().erases) / updates;
    return f;
}

// The anchor's layout: object k in sector First + k, erased and rewritten on each update, then
// a 4-byte "present" marker.
template <class Part, std::size_t First, std::size_t Count>
UpdateFigures anchor_updates(std::size_t object, std::size_t size, int updates) {
    static_assert(Count >= 3);
    auto chip = std::make_unique<SimFlashChip<Part>>();
    SimFlash<Part> dev(*chip);
    auto write = [&](std::size_t k, std::size_t len, unsigned seed) {
        const std::size_t base = Part::sector_offset(First + k);
        ok(dev.erase(First + k), "erase");
        Bytes data = payload((len + Part::program_unit - 1) / Part::program_unit * Part::program_unit, seed);
        for (std::size_t at = 0; at < data.size();) {
            std::size_t n = data.size() - at;
            if constexpr (Part::program_page != 0) n = std::min(n, Part::program_page - (base + at) % Part::program_page);
            ok(dev.program(base + at, std::span(data).subspan(at, n)), "program");
            at += n;
        }
        const std::size_t marker_at = base + Part::sector_size(First + k) - std::max<std::size_t>(4, Part::program_unit);
        Bytes marker(std::max<std::size_t>(4, Part::program_unit), std::byte{0x00});
        ok(dev.program(marker_at, marker), "marker");
    };
    write(0, meta_size, 1);
    write(1, key_size, 2);
    write(2, cert_size, 3);
    chip->reset_stats();
    for (int i = 0; i < updates; ++i) write(object, size, 10 + static_cast<unsigned>(i));
    UpdateFigures f;
    f.wa = static_cast<double>(chip->stats().bytes_programmed) / (static_cast<double>(updates) * static_cast<double>(size));
    f.spread = spread_of<Part, First, Count>(*chip);
    f.erases_per_update = static_cast<double>(chip->stats().erases) / updates;
    return f;
}

template <class Store, class Chip, class Dev>
void mount_times(std::string_view name, Chip& chip, const Plan& plan, std::size_t records) {
    {
        auto store = Store::mount(Dev(chip));
        ok(store, "mount");
        for (std::size_t i = 0; i < records; ++i) ok(store->store(static_cast<RecordId>(i), payload(100, static_cast<unsigned>(i))), "store");
    }
    chip.reset_stats();
    auto op = [&] {
        auto store = Store::mount(Dev(chip));
        if (!store || store->mount_report().records != records) die("mount lost records");
        escape(&store);
    };
    const double us = measure(plan, {batch(op)})[0];
    chip.reset_stats();
    op();
    fmt::print("{}_mount_{}_us={:.1f}\n", name, records, us);
    fmt::print("{}_mount_{}_read_bytes={}\n", name, records, chip.stats().bytes_read);
}

template <class Part, std::size_t First, std::size_t Count, std::size_t MountFirst, std::size_t MountCount>
void flash_part(std::string_view name, const char* layout, const char* mount_layout, int updates, const Plan& mount_plan,
                bool sealed_too) {
    using Store = FlashNvm<SimFlash<Part>, First, Count>;
    fmt::print("{}_partition={}\n", name, layout);
    fmt::print("{}_program_unit={}\n", name, Part::program_unit);
    fmt::print("{}_live_set=token state {} B, key {} B, certificate {} B\n", name, meta_size, key_size, cert_size);
    fmt::print("{}_max_record_size={}\n", name, Store::max_record_size);
    for (const auto& [label, id, size] : {std::tuple{"cert_1024", cert_id, cert_size}, std::tuple{"key_100", key_id, key_size}}) {
        const UpdateFigures ours = flash_updates<Part, First, Count>(id, size, updates);
        const UpdateFigures anchor = anchor_updates<Part, First, Count>(id, size, updates);
        fmt::print("{}_wa_{}={:.3f}\n", name, label, ours.wa);
        fmt::print("{}_erase_spread_{}_{}_updates={:.3f}\n", name, label, updates, ours.spread);
        fmt::print("{}_erases_per_update_{}={:.4f}\n", name, label, ours.erases_per_update);
        fmt::print("{}_anchor_wa_{}={:.3f}\n", name, label, anchor.wa);
        fmt::print("{}_anchor_erase_spread_{}_{}_updates={:.3f}\n", name, label, updates, anchor.spread);
        fmt::print("{}_anchor_erases_per_update_{}={:.4f}\n", name, label, anchor.erases_per_update);
        print_ratio(fmt::format("{}_erases_per_update_{}_ratio", name, label), ours.erases_per_update / anchor.erases_per_update);
        if (std::string_view(label) == "cert_1024") {
            fmt::print("{}_wa_cert_1024_target={}\n", name, ours.wa <= wa_cert_target ? "met" : "MISSED");
        }
        fmt::print("{}_erase_spread_{}_target={}\n", name, label, ours.spread <= spread_target ? "met" : "MISSED");
    }
    if (sealed_too) {
        const UpdateFigures s = flash_updates<Part, First, Count, true>(cert_id, cert_size, updates);
        fmt::print("{}_sealed_wa_cert_1024={:.3f}\n", name, s.wa);
        fmt::print("{}_sealed_erase_spread_cert_1024_{}_updates={:.3f}\n", name, updates, s.spread);
    }
    using MountStore = FlashNvm<SimFlash<Part>, MountFirst, MountCount, 1024>;
    fmt::print("{}_mount_partition={}\n", name, mount_layout);
    for (std::size_t n : {10u, 100u, 1000u}) {
        auto chip = std::make_unique<SimFlashChip<Part>>();
        mount_times<MountStore, SimFlashChip<Part>, SimFlash<Part>>(name, *chip, mount_plan, n);
    }
}

// --- EEPROM -----------------------------------------------------------------------------------

void eeprom_part(int updates, const Plan& mount_plan) {
    using Part = parts::At24lc256;
    using Store = EepromNvm<SimEeprom<Part>, 256>;
    constexpr std::string_view name = "nvm_24lc256";
    fmt::print("{}_layout=32 KiB, 64-byte pages, two copies per record slot\n", name);
    fmt::print("{}_live_set=token state {} B, key {} B, certificate {} B\n", name, meta_size, key_size, cert_size);
    for (const auto& [label, id, size] : {std::tuple{"cert_1024", cert_id, cert_size}, std::tuple{"key_100", key_id, key_size}}) {
        auto chip = std::make_unique<SimEepromChip<Part>>();
        auto store = Store::mount(SimEeprom<Part>(*chip));
        ok(store, "mount");
        ok(store->store(meta_id, payload(meta_size, 1)), "store");
        ok(store->store(key_id, payload(key_size, 2)), "store");
        ok(store->store(cert_id, payload(cert_size, 3)), "store");
        chip->reset_stats();
        for (int i = 0; i < updates; ++i) ok(store->store(id, payload(size, 10 + static_cast<unsigned>(i))), "update");
        const auto& st = chip->stats();
        const auto max_page = *std::max_element(st.page_writes.begin(), st.page_writes.end());
        fmt::print("{}_wa_{}={:.3f}\n", name, label, static_cast<double>(st.bytes_written) / (static_cast<double>(updates) * static_cast<double>(size)));
        fmt::print("{}_erase_spread_{}=n/a (no erase on EEPROM)\n", name, label);
        // Endurance: the most-written page's write cycles per update (1.0 would be a single copy).
        fmt::print("{}_page_cycles_per_update_{}={:.3f}\n", name, label, static_cast<double>(max_page) / updates);
    }
    for (std::size_t n : {10u, 100u}) {
        auto chip = std::make_unique<SimEepromChip<Part>>();
        mount_times<Store, SimEepromChip<Part>, SimEeprom<Part>>(name, *chip, mount_plan, n);
    }
    // 1,000 records do not fit: a 100-byte record takes a slot of 2 x 2 pages, 128 slots in all.
    fmt::print("{}_mount_1000_us=n/a (the part holds at most 128 slots of 100-byte records)\n", name);
    auto chip = std::make_unique<SimEepromChip<Part>>();
    mount_times<Store, SimEepromChip<Part>, SimEeprom<Part>>(name, *chip, mount_plan, 128);
}

void usage(std::FILE* to) {
    fmt::print(to, "usage: p11tls-bench-nvm [--quick]\n"
                   "Flash and EEPROM stores on simulated STM32F4, nRF52840, SPI NOR and 24LC256 parts:\n"
                   "write amplification, erase spread, erases per update against the FreeRTOS PAL layout,\n"
                   "and mount times. Prints name=value lines.\n");
}

}  // namespace

int main(int argc, char** argv) {
    program = "p11tls-bench-nvm";
    Args args;
    if (const int stop = parse_args(argc, argv, args, usage, {}, false); stop >= 0) return stop;
    const bool quick = args.quick;
    print_build_config(quick);
    const int updates = quick ? 1000 : 10000;
    const Plan mount_plan = quick ? Plan{1, 3, 2} : Plan{3, 15, 10};
    print_plan("nvm_mount", mount_plan);
    fmt::print("nvm_updates={}\n", updates);
    fmt::print("nvm_target_wa_cert_1024_max={}\n", wa_cert_target);
    fmt::print("nvm_target_erase_spread_max={}\n", spread_target);

    flash_part<parts::Stm32f4Flash, 1, 3, 5, 3>("nvm_stm32f4", "sectors 1-3 (3 x 16 KiB)", "sectors 5-7 (3 x 128 KiB)",
                                                updates, mount_plan, false);
    flash_part<parts::Nrf52840Flash, 248, 8, 192, 64>("nvm_nrf52840", "pages 248-255 (8 x 4 KiB)",
                                                      "pages 192-255 (64 x 4 KiB)", updates, mount_plan, false);
    flash_part<parts::SpiNorFlash, 0, 8, 0, 64>("nvm_spi_nor", "sectors 0-7 (8 x 4 KiB)", "sectors 0-63 (64 x 4 KiB)", updates,
                                                mount_plan, true);
    eeprom_part(updates, mount_plan);
    fmt::print("bench_loadavg_end={}\n", load_average());
    return 0;
}
