// SPDX-License-Identifier: MIT
#pragma once
/// Board `host-flash`: Linux simulating an STM32F405 board, so that the host's tests, examples
/// and PKCS#11 module run the token on the path an MCU uses (FlashNvm on flash sectors, a TRNG
/// behind the health tests and a seed record). A SIMULATION, NOT SECURE: a release build
/// (-Drelease=true, P11TLS_RELEASE) refuses this board.
///
/// The three policies:
/// - Nvm: FlashNvm on sectors 1-3 (3 x 16 KiB, where STM32 firmware usually keeps its data) of
///   the part's 1 MiB bank, simulated by ImageFlash<parts::Stm32f4Flash>: the bank's bytes live
///   in an image file, byte for byte what the part would hold; every program and erase is on
///   disk (fdatasync) before it returns, so a process exit or a host crash is a power cut at
///   that instant. The other sectors (the firmware's) stay erased. One process at a time owns
///   an image, as one firmware owns its chip: the board holds an exclusive lock (flock) on the
///   file while the token is open, and a second opener gets `Errc::nvm_io` with `EWOULDBLOCK`
///   in `Error::native` and a line on stderr naming the image.
/// - Entropy: SimulatedTrng (SimTrng, include/p11tls/entropy/sim_trng.hpp) behind the
///   SP 800-90B health tests. The token's is NvSeeded over it, as a board with a hardware TRNG
///   composes it: the board's unique id and seed record 0x80000001 in the token's flash make
///   its output unique per image and new at every process start (a boot). The unique id stands
///   in for the part's UID registers: 16 bytes from the host's getrandom at the image's first
///   boot, kept as board record 0x80000002. The simulated TRNG is a splitmix64 stream from a
///   64-bit sequence drawn from getrandom at each power-up, so it never replays, but it holds
///   no more than those 64 bits of real randomness per power-up.
/// - Token: SoftToken with the host's capacities and std::mutex (the module is multi-threaded).
///
/// Where the image is: `store_directory()` names the store location, `$P11TLS_STORE` as on the
/// host board (so tools and test scripts that set it work unchanged). A location that ends in
/// `.img` is the image file itself; any other is a directory that holds `stm32f4-flash.img`.
/// Missing directories are created (mode 0700), a missing image as an erased part (mode 0600).
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11tls/device/image_flash.hpp>
#include <p11tls/device/parts.hpp>
#include <p11tls/entropy/health_tested.hpp>
#include <p11tls/entropy/nv_seeded.hpp>
#include <p11tls/entropy/sim_trng.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/token/soft_token.hpp>

namespace p11tls::board {

inline constexpr const char* name = "host-flash";

#ifdef P11TLS_RELEASE
inline constexpr bool release_build = true;
#else
inline constexpr bool release_build = false;
#endif

/// SIMULATION ONLY, NOT SECURE. The simulated TRNG peripheral: SimTrng's samples, from a
/// sequence drawn from the host's getrandom when the peripheral powers up (the first `fill`)
/// and again at every `reset()`. Its samples claim full entropy, but all of a power-up's
/// samples follow from one 64-bit sequence. `SimulatedTrng(sequence)` powers up at a given
/// sequence (tests: equal or replaying TRNGs).
class SimulatedTrng {
public:
    static_assert(!release_build,
                  "board host-flash: SimulatedTrng is a simulation and NOT secure (a splitmix64 stream from "
                  "64 random bits); a release build needs a board with a hardware entropy source");
    /// Tells tools and logs what this source is.
    static constexpr bool simulation_only = true;
    static constexpr unsigned bits_per_sample = SimTrng<>::bits_per_sample;
    static constexpr double min_entropy_per_sample = SimTrng<>::min_entropy_per_sample;

    SimulatedTrng() noexcept = default;
    explicit SimulatedTrng(std::uint64_t sequence) noexcept : trng_(std::in_place, sequence), given_(true) {}

    [[nodiscard]] Result<void> fill(std::span<std::byte> out) noexcept {
        if (!trng_) P11TLS_TRY(power_up());
        return trng_->fill(out);
    }

    /// Re-initializes the peripheral: a new sequence from getrandom, unless it was given one
    /// (then SimTrng's own reset: go on, or replay when told to).
    [[nodiscard]] Result<void> reset() noexcept {
        if (!trng_ || !given_) return power_up();
        return trng_->reset();
    }

    /// The simulated peripheral, powered up (for fault injection); nullptr if getrandom failed.
    [[nodiscard]] SimTrng<>* peripheral() noexcept {
        if (!trng_ && !power_up()) return nullptr;
        return &*trng_;
    }

private:
    Result<void> power_up() noexcept {
        std::array<std::byte, 8> s;
        for (std::size_t got = 0; got < s.size();) {
            ssize_t n = ::getrandom(s.data() + got, s.size() - got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(Errc::entropy_failed, errno);
            got += static_cast<std::size_t>(n);
        }
        std::uint64_t sequence = 0;
        for (std::byte b : s) sequence = (sequence << 8) | std::to_integer<std::uint64_t>(b);
        trng_.emplace(sequence);
        given_ = false;
        return {};
    }

    std::optional<SimTrng<>> trng_;
    bool given_ = false;  // the sequence came from the constructor, not getrandom
};
static_assert(NoiseSource<SimulatedTrng>);

using FlashPart = parts::Stm32f4Flash;

/// ImageFlash<FlashPart> that owns its image: an exclusive advisory lock (flock) on the file
/// for as long as the device lives, so two processes never drive one "chip".
class LockedImageFlash : public FlashPart {
public:
    /// Locks `path` (creating it and its directory if missing) and opens it as the part.
    /// Errors: `Errc::nvm_io` with errno in `native` (EWOULDBLOCK: another process has it),
    /// `Errc::invalid_argument` for a file that is not an image of this part.
    [[nodiscard]] static Result<LockedImageFlash> open(const std::string& path) {
        if (path.empty()) return fail(Errc::invalid_argument);
        if (auto slash = path.rfind('/'); slash != std::string::npos && slash != 0)
            P11TLS_TRY(make_dirs(path.substr(0, slash)));
        Descriptor lock{::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
        if (lock.fd < 0) return fail(Errc::nvm_io, errno);
        if (::flock(lock.fd, LOCK_EX | LOCK_NB) != 0) {
            const int e = errno;
            if (e == EWOULDBLOCK)
                std::fprintf(stderr,
                             "p11tls host-flash: the flash image %s is in use by another process (one process "
                             "at a time, as one firmware per chip); close it or use another store\n",
                             path.c_str());
            return fail(Errc::nvm_io, e);
        }
        P11TLS_TRY(recover_interrupted_creation(lock.fd));
        const bool created = file_size(lock.fd) == 0;
        auto image = ImageFlash<FlashPart>::open(path);
        if (!image) return fail(image.error());
        if (created) P11TLS_TRY(sync_directory(path));
        return LockedImageFlash(std::move(lock), std::move(*image));
    }

    [[nodiscard]] Result<void> read(std::size_t addr, std::span<std::byte> out) noexcept { return image_.read(addr, out); }
    [[nodiscard]] Result<void> program(std::size_t addr, std::span<const std::byte> in) noexcept {
        return image_.program(addr, in);
    }
    [[nodiscard]] Result<void> erase(std::size_t sector) noexcept { return image_.erase(sector); }

private:
    // Owns a file descriptor.
    struct Descriptor {
        int fd = -1;
        explicit Descriptor(int f) noexcept : fd(f) {}
        Descriptor(Descriptor&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
        Descriptor& operator=(Descriptor&& o) noexcept {
            std::swap(fd, o.fd);
            return *this;
        }
        ~Descriptor() {
            if (fd >= 0) ::close(fd);
        }
    };

    LockedImageFlash(Descriptor lock, ImageFlash<FlashPart> image) noexcept
        : lock_(std::move(lock)), image_(std::move(image)) {}

    static long long file_size(int fd) noexcept {
        struct stat st {};
        return ::fstat(fd, &st) == 0 ? static_cast<long long>(st.st_size) : -1;
    }

    // ImageFlash writes a new image as erased bytes and syncs it before anyone programs it, so a
    // file shorter than the part that reads all erased is a creation cut short (the host
    // crashed): it starts over. Any other wrong size is left alone for ImageFlash to refuse.
    static Result<void> recover_interrupted_creation(int fd) noexcept {
        const long long size = file_size(fd);
        if (size < 0) return fail(Errc::nvm_io, errno);
        if (size == 0 || static_cast<std::size_t>(size) >= FlashPart::size) return {};
        std::array<std::byte, 4096> buf;
        for (long long at = 0; at < size;) {
            ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return fail(Errc::nvm_io, n < 0 ? errno : 0);
            for (ssize_t i = 0; i < n; ++i)
                if (buf[static_cast<std::size_t>(i)] != FlashPart::erased_value) return {};
            at += n;
        }
        if (::ftruncate(fd, 0) != 0) return fail(Errc::nvm_io, errno);
        return {};
    }

    static Result<void> make_dirs(const std::string& dir) noexcept {
        struct stat st {};
        if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? Result<void>{} : fail(Errc::nvm_io, ENOTDIR);
        if (auto slash = dir.rfind('/'); slash != std::string::npos && slash != 0) P11TLS_TRY(make_dirs(dir.substr(0, slash)));
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return fail(Errc::nvm_io, errno);
        return {};
    }

    // A new file's directory entry reaches the disk only with its directory.
    static Result<void> sync_directory(const std::string& path) noexcept {
        const auto slash = path.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return fail(Errc::nvm_io, errno);
        const int r = ::fsync(fd);
        const int e = errno;
        ::close(fd);
        if (r != 0) return fail(Errc::nvm_io, e);
        return {};
    }

    Descriptor lock_;  // declared first: released after the image's own descriptor is closed
    ImageFlash<FlashPart> image_;
};
static_assert(FlashDevice<LockedImageFlash>);

using Flash = LockedImageFlash;
/// The token's store: sectors 1-3 of the bank (3 x 16 KiB), up to 128 records of 4 KiB objects.
using Nvm = FlashNvm<Flash, 1, 3, 128, 4224>;

/// The simulated TRNG behind the SP 800-90B health tests: what TLS sessions and other users
/// draw from (the TRNG never replays here, so they need no seed record of their own).
using Entropy = HealthTested<SimulatedTrng>;
/// The token's entropy: the same source with the board's unique id and a seed record in the
/// token's Nvm (bound by SoftToken), as a board with a hardware TRNG composes it.
using TokenEntropy = NvSeeded<Entropy, Nvm>;
/// Board record holding the simulated unique id (the part's UID registers).
inline constexpr RecordId unique_id_record = 0x80000002u;
inline constexpr std::size_t unique_id_size = 16;
static_assert(unique_id_record != TokenEntropy::record_id);

struct TokenConfig : SoftTokenConfig {
    static constexpr const char* model = "SoftToken STM32F4 sim";
};
using Token = SoftToken<Nvm, TokenEntropy, TokenConfig>;
static_assert(p11tls::Token<Token>);

inline constexpr const char* image_name = "stm32f4-flash.img";

/// The default store location: `$P11TLS_STORE` if set, else `$XDG_DATA_HOME/p11tls/host-flash`,
/// else `$HOME/.local/share/p11tls/host-flash`, else `./p11tls-host-flash`.
[[nodiscard]] inline std::string store_directory() {
    if (const char* s = std::getenv("P11TLS_STORE"); s && *s) return s;
    if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/p11tls/host-flash";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/share/p11tls/host-flash";
    return "p11tls-host-flash";
}

/// The image file of a store location: the location itself if it ends in `.img`, else
/// `stm32f4-flash.img` in that directory.
[[nodiscard]] inline std::string image_path(const std::string& location = store_directory()) {
    if (location.size() > 4 && location.compare(location.size() - 4, 4, ".img") == 0) return location;
    return location + "/" + image_name;
}

/// The image's unique id: loaded from its board record, or made from getrandom at the first
/// boot and stored. A record of the wrong size is `Errc::nvm_corrupt` (left as it is).
[[nodiscard]] inline Result<std::array<std::byte, unique_id_size>> unique_id(Nvm& nvm) {
    std::array<std::byte, unique_id_size> uid{};
    if (auto n = nvm.load(unique_id_record, uid); n) {
        if (*n != uid.size()) return fail(Errc::nvm_corrupt);
        return uid;
    } else if (n.error().code == Errc::buffer_too_small) {
        return fail(Errc::nvm_corrupt);
    } else if (n.error().code != Errc::nvm_not_found) {
        return fail(n.error());
    }
    for (std::size_t got = 0; got < uid.size();) {
        ssize_t n = ::getrandom(uid.data() + got, uid.size() - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(Errc::entropy_failed, errno);
        got += static_cast<std::size_t>(n);
    }
    P11TLS_TRY(nvm.store(unique_id_record, uid));
    return uid;
}

/// Powers up the board on the image file `path`: locks and mounts it, and loads the token.
/// `trng` is the TRNG the token's entropy reads (tests give one with a known sequence).
[[nodiscard]] inline Result<std::unique_ptr<Token>> open_image(const std::string& path, Entropy trng = Entropy{}) {
    auto dev = Flash::open(path);
    if (!dev) return fail(dev.error());
    auto nvm = Nvm::mount(std::move(*dev));
    if (!nvm) return fail(nvm.error());
    auto uid = unique_id(*nvm);
    if (!uid) return fail(uid.error());
    auto token = std::make_unique<Token>(std::move(*nvm), TokenEntropy(std::move(trng), *uid));
    if (auto r = token->load(); !r) return fail(r.error());
    return token;
}

/// Opens (creating if needed) the token in the store location `location` (see image_path).
[[nodiscard]] inline Result<std::unique_ptr<Token>> open_token(std::string location = store_directory()) {
    return open_image(image_path(location));
}

inline void initialize() {}

}  // namespace p11tls::board
