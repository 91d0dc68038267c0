// SPDX-License-Identifier: MIT
// Fuzz target: the flash and EEPROM stores mounted on arbitrary images, then used.
//
// Input: [store u8][op count u8][ops: count x {kind u8, id u8, len u16, fill u8}][image ...]
// - store % 5: FlashNvm on SPI NOR (sectors 0-2), on nRF52840 pages (0-2, 4-byte program
//   unit), on STM32F4 sectors 3-4 (16 + 64 KiB, mixed sizes), EepromNvm on a 24LC256,
//   SealedNvm over the SPI NOR FlashNvm;
// - image: the partition's bytes as the store uses them (for flash, each sector up to the
//   smallest sector's size, one after the other); bytes past the end of the input read erased.
// Mount must succeed (the simulated parts never fail), then every listed record loads (or is
// reported corrupt), each op runs, and after every store and at each remount what was written
// reads back, what was removed is gone and nothing else appears.
#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <p11tls/device/sim_eeprom.hpp>
#include <p11tls/device/sim_flash.hpp>
#include <p11tls/nvm/eeprom_nvm.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/nvm/sealed_nvm.hpp>

#include "common.hpp"

using namespace p11tls;
using namespace p11tls::fuzz;

namespace {

struct FuzzKey {
    static constexpr std::size_t key_size = 32;
    [[nodiscard]] Result<void> key(std::span<std::byte, key_size> out) const noexcept {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte(static_cast<unsigned char>(0xA5 ^ i));
        return {};
    }
};
static_assert(KeySource<FuzzKey>);

using SpiNorNvm = FlashNvm<SimFlash<parts::SpiNorFlash>, 0, 3>;
using NrfNvm = FlashNvm<SimFlash<parts::Nrf52840Flash>, 0, 3>;
using Stm32Nvm = FlashNvm<SimFlash<parts::Stm32f4Flash>, 3, 2>;
using EepNvm = EepromNvm<SimEeprom<parts::At24lc256>>;
using SealedSpiNorNvm = SealedNvm<SpiNorNvm, FuzzKey, DetEntropy>;

/// A flash partition on a chip that lives across runs (a part is 1 MiB): each run rewrites the
/// partition only, and checks the sector after it was never touched.
template <class N>
struct FlashImage {
    using Part = typename N::device_type;
    using Chip = typename Part::chip_type;
    static constexpr std::size_t first = N::first_sector, count = N::sector_count;
    static constexpr std::size_t used = [] {
        std::size_t m = Part::sector_size(first);
        for (std::size_t i = 1; i < count; ++i) m = std::min(m, Part::sector_size(first + i));
        return m;
    }();
    static constexpr std::size_t image_size = used * count;

    static Chip& chip() {
        static Chip* c = new Chip();
        return *c;
    }
    static void load(std::span<const std::uint8_t> image) {
        Chip& c = chip();
        auto bytes = c.bytes();
        auto programmed = c.programmed();
        for (std::size_t s = 0; s < count; ++s) {
            const std::size_t at = Part::sector_offset(first + s), n = Part::sector_size(first + s);
            std::fill_n(bytes.begin() + at, n, Part::erased_value);
            std::fill_n(programmed.begin() + at / Part::program_unit, n / Part::program_unit, 0);
            const std::size_t from = s * used;
            if (from < image.size()) {
                const std::size_t len = std::min(used, image.size() - from);
                std::memcpy(bytes.data() + at, image.data() + from, len);
            }
            // A unit that reads other than erased was programmed.
            for (std::size_t u = at; u < at + n; u += Part::program_unit)
                for (std::size_t i = 0; i < Part::program_unit; ++i)
                    if (bytes[u + i] != Part::erased_value) {
                        programmed[u / Part::program_unit] = 1;
                        break;
                    }
        }
    }
    static Bytes save() {
        Bytes out(image_size);
        for (std::size_t s = 0; s < count; ++s)
            std::memcpy(out.data() + s * used, chip().bytes().data() + Part::sector_offset(first + s), used);
        return out;
    }
    static void check_outside() {
        const std::size_t after = Part::sector_offset(first + count);
        const std::size_t n = Part::sector_size(first + count);
        auto bytes = chip().bytes();
        P11TLS_FUZZ_CHECK(std::all_of(bytes.begin() + after, bytes.begin() + after + n,
                                      [](std::byte b) { return b == Part::erased_value; }));
    }
    static Result<N> mount() { return N::mount(Part(chip())); }
    static constexpr std::uint8_t erased = std::to_integer<std::uint8_t>(Part::erased_value);
};

struct EepromImage {
    using Part = EepNvm::device_type;
    using Chip = Part::chip_type;
    static Chip& chip() {
        static Chip* c = new Chip();
        return *c;
    }
    static void load(std::span<const std::uint8_t> image) {
        auto bytes = chip().bytes();
        std::fill(bytes.begin(), bytes.end(), std::byte{0xFF});
        if (!image.empty()) std::memcpy(bytes.data(), image.data(), std::min(image.size(), bytes.size()));
    }
    static Bytes save() {
        auto b = chip().bytes();
        return Bytes(reinterpret_cast<const std::uint8_t*>(b.data()), reinterpret_cast<const std::uint8_t*>(b.data()) + b.size());
    }
    static void check_outside() {}
    static Result<EepNvm> mount() { return EepNvm::mount(Part(chip())); }
    static constexpr std::uint8_t erased = 0xFF;
};

struct SealedImage {
    using Inner = FlashImage<SpiNorNvm>;
    static void load(std::span<const std::uint8_t> image) { Inner::load(image); }
    static Bytes save() { return Inner::save(); }
    static void check_outside() { Inner::check_outside(); }
    static Result<SealedSpiNorNvm> mount() {
        auto inner = Inner::mount();
        if (!inner) return fail(inner.error());
        return SealedSpiNorNvm::open(std::move(*inner), FuzzKey{}, DetEntropy{});
    }
    static constexpr std::uint8_t erased = Inner::erased;
};

/// What the store must hold: the value of each record, and the ids reported corrupt.
struct Model {
    std::map<RecordId, Bytes> values;
    std::set<RecordId> corrupt;
};

/// Every listed record loads as the model says; every model record is listed.
template <class N>
void verify(const N& nvm, const Model& m) {
    std::array<RecordId, 512> ids;
    auto n = nvm.list(ids);
    P11TLS_FUZZ_CHECK(n.has_value());
    std::set<RecordId> listed(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(*n));
    P11TLS_FUZZ_CHECK(listed.size() == *n);  // no id twice
    static std::array<std::byte, 8192> buf;
    for (RecordId id : listed) {
        auto r = nvm.load(id, buf);
        if (m.corrupt.count(id)) {
            P11TLS_FUZZ_CHECK(!r && r.error().code == Errc::nvm_corrupt);
            continue;
        }
        auto it = m.values.find(id);
        P11TLS_FUZZ_CHECK(it != m.values.end());  // nothing appears that was not there
        P11TLS_FUZZ_CHECK(r.has_value());
        P11TLS_FUZZ_CHECK(*r == it->second.size());
        P11TLS_FUZZ_CHECK(*r == 0 || std::memcmp(buf.data(), it->second.data(), *r) == 0);
        auto size = nvm.size(id);
        P11TLS_FUZZ_CHECK(size && *size == *r);
    }
    for (const auto& [id, v] : m.values) {
        if (!listed.count(id)) std::fprintf(stderr, "record %u (%zu bytes) is gone\n", id, v.size());
        P11TLS_FUZZ_CHECK(listed.count(id));
    }
    for (RecordId id : m.corrupt) P11TLS_FUZZ_CHECK(listed.count(id));
}

/// The model of a freshly mounted store: whatever loads, and what is reported corrupt.
template <class N>
Model observe(const N& nvm) {
    Model m;
    std::array<RecordId, 512> ids;
    auto n = nvm.list(ids);
    P11TLS_FUZZ_CHECK(n.has_value());
    static std::array<std::byte, 8192> buf;
    for (std::size_t i = 0; i < *n; ++i) {
        auto r = nvm.load(ids[i], buf);
        if (r) {
            m.values[ids[i]] = Bytes(reinterpret_cast<std::uint8_t*>(buf.data()), reinterpret_cast<std::uint8_t*>(buf.data()) + *r);
        } else {
            P11TLS_FUZZ_CHECK(r.error().code == Errc::nvm_corrupt);
            m.corrupt.insert(ids[i]);
        }
    }
    if constexpr (requires { nvm.mount_report(); }) P11TLS_FUZZ_CHECK(nvm.mount_report().records == *n);
    return m;
}

struct Op {
    std::uint8_t kind, id;
    std::uint16_t len;
    std::uint8_t fill;
};

Bytes payload(const Op& op, std::size_t max) {
    Bytes v(op.len % (max + 1));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(op.fill + i * 7 + (i >> 8));
    return v;
}

template <class Img>
void run(std::span<const Op> ops, std::span<const std::uint8_t> image) {
    Img::load(image);
    auto mounted = Img::mount();
    P11TLS_FUZZ_CHECK(mounted.has_value());  // the simulated parts never fail: mount repairs anything
    using N = std::remove_cvref_t<decltype(*mounted)>;
    auto nvm = std::make_unique<N>(std::move(*mounted));
    Model m = observe(*nvm);
    // P11TLS_FUZZ_TRACE=DIR: what happens, on stderr, and the image before each remount in DIR.
    static const char* trace = std::getenv("P11TLS_FUZZ_TRACE");
    if (trace) {
        std::fprintf(stderr, "mounted:");
        for (const auto& [id, v] : m.values) std::fprintf(stderr, " %u(%zu)", id, v.size());
        for (RecordId id : m.corrupt) std::fprintf(stderr, " %u(corrupt)", id);
        std::fprintf(stderr, "\n");
    }
    for (const Op& op : ops) {
        const RecordId id = op.id % 16;
        if (trace) std::fprintf(stderr, "op %u id %u len %u\n", op.kind % 4, id, op.len);
        switch (op.kind % 4) {
        case 0:
        case 1: {
            Bytes v = payload(op, N::max_record_size);
            auto r = nvm->store(id, as_bytes(v));
            if (!r) {
                // A store that does not fit changes nothing; any other failure is a bug here.
                P11TLS_FUZZ_CHECK(r.error().code == Errc::nvm_full);
                verify(*nvm, m);
                break;
            }
            m.values[id] = std::move(v);
            m.corrupt.erase(id);
            verify(*nvm, m);
            break;
        }
        case 2: {
            auto r = nvm->remove(id);
            if (trace && !r) std::fprintf(stderr, "remove: %s\n", describe(r.error().code));
            if (!r) {
                // An image the store would never write (no erased sector, a full head) can
                // leave no room even for a removal record; then nothing changes.
                P11TLS_FUZZ_CHECK(r.error().code == Errc::nvm_full);
                verify(*nvm, m);
                break;
            }
            m.values.erase(id);
            m.corrupt.erase(id);
            break;
        }
        case 3: {
            nvm.reset();
            if (trace) write_seed(trace, "image-before-remount", Img::save());
            auto again = Img::mount();
            P11TLS_FUZZ_CHECK(again.has_value());
            nvm = std::make_unique<N>(std::move(*again));
            verify(*nvm, m);
            break;
        }
        }
    }
    nvm.reset();
    if (trace) write_seed(trace, "image-before-remount", Img::save());
    auto last = Img::mount();
    P11TLS_FUZZ_CHECK(last.has_value());
    verify(*last, m);
    Img::check_outside();
}

std::vector<Op> read_ops(Reader& in) {
    std::vector<Op> ops(in.u8() % 33);
    for (Op& op : ops) op = {in.u8(), in.u8(), in.u16(), in.u8()};
    return ops;
}

// --- seeds: images the stores wrote themselves ---

template <class Img>
Bytes image_after(std::span<const Op> ops) {
    Img::load({});
    {
        auto mounted = Img::mount();
        if (!mounted) std::abort();
        using N = std::remove_cvref_t<decltype(*mounted)>;
        auto nvm = std::make_unique<N>(std::move(*mounted));
        for (const Op& op : ops) {
            Bytes v = payload(op, N::max_record_size);
            if (op.kind % 4 == 2) (void)nvm->remove(op.id % 16);
            else (void)nvm->store(op.id % 16, as_bytes(v));
        }
    }
    Bytes img = Img::save();
    while (!img.empty() && img.back() == Img::erased) img.pop_back();  // erased bytes need not be given
    return img;
}

void seed(const std::string& dir, std::string_view name, unsigned store, std::span<const Op> ops, const Bytes& image) {
    Writer w;
    w.u8(store).u8(static_cast<unsigned>(ops.size()));
    for (const Op& op : ops) w.u8(op.kind).u8(op.id).u16(op.len).u8(op.fill);
    w.bytes(std::span<const std::uint8_t>(image));
    write_seed(dir, name, w.data());
}

template <class Img>
void seeds_for(const std::string& dir, unsigned store, std::string_view tag) {
    // A few records; the same with removals; many updates of few ids (collections ran).
    std::vector<Op> few, removed, churn;
    for (unsigned i = 0; i < 6; ++i) few.push_back({0, static_cast<std::uint8_t>(i), static_cast<std::uint16_t>(20 + 150 * i), static_cast<std::uint8_t>(i)});
    removed = few;
    removed.push_back({2, 1, 0, 0});
    removed.push_back({2, 4, 0, 0});
    for (unsigned i = 0; i < 60; ++i) churn.push_back({0, static_cast<std::uint8_t>(i % 5), static_cast<std::uint16_t>(300 + 13 * i), static_cast<std::uint8_t>(i)});
    const std::vector<Op> use = {{0, 7, 100, 1}, {3, 0, 0, 0}, {2, 2, 0, 0}, {0, 2, 700, 9}, {3, 0, 0, 0}};
    const std::string t(tag);
    seed(dir, t + "-blank", store, use, {});
    seed(dir, t + "-few", store, use, image_after<Img>(few));
    seed(dir, t + "-removed", store, {}, image_after<Img>(removed));
    seed(dir, t + "-churn", store, use, image_after<Img>(churn));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    seed_mode([](const std::string& dir) {
        seeds_for<FlashImage<SpiNorNvm>>(dir, 0, "spinor");
        seeds_for<FlashImage<NrfNvm>>(dir, 1, "nrf52840");
        seeds_for<FlashImage<Stm32Nvm>>(dir, 2, "stm32f4");
        seeds_for<EepromImage>(dir, 3, "24lc256");
        seeds_for<SealedImage>(dir, 4, "sealed-spinor");
    });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader in(data, size);
    const unsigned store = in.u8() % 5;
    const std::vector<Op> ops = read_ops(in);
    auto image = in.rest();
    switch (store) {
    case 0: run<FlashImage<SpiNorNvm>>(ops, image); break;
    case 1: run<FlashImage<NrfNvm>>(ops, image); break;
    case 2: run<FlashImage<Stm32Nvm>>(ops, image); break;
    case 3: run<EepromImage>(ops, image); break;
    case 4: run<SealedImage>(ops, image); break;
    }
    return 0;
}
