// SPDX-License-Identifier: MIT
#pragma once
/// ImageFlash<Part>: a FlashDevice backed by a flash image file on the host, byte for byte
/// what the part holds, so host tools (provisioning, inspection, the host token) work on the
/// exact bytes a board reads or writes with a programmer.
#include <algorithm>
#include <array>
#include <cerrno>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11tls/concepts/flash_device.hpp>
#include <p11tls/device/parts.hpp>

namespace p11tls {

/// The image is `Part::size` bytes, offset 0 = the part's first byte. A missing file is
/// created (mode 0600) as an erased part. Programming follows the part's rules; since the file
/// cannot remember which units were programmed, "programmed twice" is checked as "not blank"
/// (a unit that does not read erased cannot be programmed). With `durable`, every program and
/// erase reaches the disk (fdatasync) before it returns, so a crash of the host keeps the
/// order of operations the store relies on.
template <class Part>
class ImageFlash : public Part {
public:
    [[nodiscard]] static Result<ImageFlash> open(const std::string& path, bool durable = true) {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return fail(Errc::nvm_io, errno);
        ImageFlash dev(fd, durable);
        struct stat st {};
        if (::fstat(fd, &st) != 0) return fail(Errc::nvm_io, errno);
        if (st.st_size == 0) {
            std::array<std::byte, 4096> erased;
            erased.fill(Part::erased_value);
            for (std::size_t at = 0; at < Part::size; at += erased.size())
                if (!dev.write_at(at, std::span(erased).first(std::min(erased.size(), Part::size - at))))
                    return fail(Errc::nvm_io, errno);
            if (::fsync(fd) != 0) return fail(Errc::nvm_io, errno);
        } else if (static_cast<std::size_t>(st.st_size) != Part::size) {
            return fail(Errc::invalid_argument);  // an image of another part
        }
        return dev;
    }

    ImageFlash(ImageFlash&& o) noexcept : fd_(std::exchange(o.fd_, -1)), durable_(o.durable_) {}
    ImageFlash& operator=(ImageFlash&& o) noexcept {
        std::swap(fd_, o.fd_);
        durable_ = o.durable_;
        return *this;
    }
    ~ImageFlash() {
        if (fd_ >= 0) ::close(fd_);
    }

    [[nodiscard]] Result<void> read(std::size_t addr, std::span<std::byte> out) noexcept {
        if (addr > Part::size || out.size() > Part::size - addr) return fail(Errc::invalid_argument);
        while (!out.empty()) {
            ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(addr));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return fail(Errc::nvm_io, n < 0 ? errno : 0);
            out = out.subspan(static_cast<std::size_t>(n));
            addr += static_cast<std::size_t>(n);
        }
        return {};
    }

    [[nodiscard]] Result<void> program(std::size_t addr, std::span<const std::byte> in) noexcept {
        constexpr std::size_t u = Part::program_unit;
        if (addr > Part::size || in.size() > Part::size - addr || addr % u != 0 || in.size() % u != 0)
            return fail(Errc::invalid_argument);
        if constexpr (Part::program_page != 0)
            if (!in.empty() && addr / Part::program_page != (addr + in.size() - 1) / Part::program_page)
                return fail(Errc::invalid_argument);
        std::array<std::byte, 256> old;
        for (std::size_t done = 0; done < in.size();) {
            const std::size_t n = std::min(old.size(), in.size() - done);
            P11TLS_TRY(read(addr + done, std::span(old).first(n)));
            for (std::size_t i = 0; i < n; ++i)
                if (old[i] != Part::erased_value) return fail(Errc::nvm_io);  // not blank: device error
            done += n;
        }
        if (!write_at(addr, in)) return fail(Errc::nvm_io, errno);
        return settle();
    }

    [[nodiscard]] Result<void> erase(std::size_t sector) noexcept {
        if (sector >= Part::sector_count) return fail(Errc::invalid_argument);
        std::array<std::byte, 4096> erased;
        erased.fill(Part::erased_value);
        const std::size_t at = Part::sector_offset(sector), n = Part::sector_size(sector);
        for (std::size_t done = 0; done < n; done += erased.size())
            if (!write_at(at + done, std::span(erased).first(std::min(erased.size(), n - done))))
                return fail(Errc::nvm_io, errno);
        return settle();
    }

private:
    ImageFlash(int fd, bool durable) noexcept : fd_(fd), durable_(durable) {}

    bool write_at(std::size_t addr, std::span<const std::byte> in) noexcept {
        while (!in.empty()) {
            ssize_t n = ::pwrite(fd_, in.data(), in.size(), static_cast<off_t>(addr));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            in = in.subspan(static_cast<std::size_t>(n));
            addr += static_cast<std::size_t>(n);
        }
        return true;
    }
    Result<void> settle() noexcept {
        if (durable_ && ::fdatasync(fd_) != 0) return fail(Errc::nvm_io, errno);
        return {};
    }

    int fd_ = -1;
    bool durable_ = true;
};

static_assert(FlashDevice<ImageFlash<parts::Stm32f4Flash>>);

}  // namespace p11tls
