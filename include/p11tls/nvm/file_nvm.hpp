// SPDX-License-Identifier: MIT
#pragma once
/// FileNvm: the host's Nvm, one file per record in a directory, each replacement atomic and
/// durable (temp file, fsync, rename, fsync of the directory).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11tls/concepts/nvm.hpp>
#include <p11tls/detail/crc32.hpp>

namespace p11tls {

/// Records are files `r<8 hex digits>` holding a 16-byte header (magic "P11R", format
/// version, payload length, CRC-32 over id and payload) and the payload. A crash at any point
/// of `store` leaves the old or the new file; a leftover temp file is removed at `open`.
/// One process owns a store directory at a time (an advisory lock enforces it).
class FileNvm {
public:
    static constexpr std::size_t max_record_size = 64 * 1024;
    static constexpr std::size_t header_size = 16;
    static constexpr std::uint32_t format_version = 1;

    /// Opens (creating if needed, mode 0700) the store directory `dir`.
    /// `capacity` bounds the total payload bytes, like the size of a flash partition.
    [[nodiscard]] static Result<FileNvm> open(std::string dir, std::size_t capacity = 4u << 20) {
        if (dir.empty()) return fail(Errc::invalid_argument);
        if (auto r = make_dirs(dir); !r) return fail(r.error());
        int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return fail(Errc::nvm_io, errno);
        FileNvm nvm(std::move(dir), fd, capacity);
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return fail(Errc::nvm_io, errno);
        if (auto r = nvm.scan(); !r) return fail(r.error());
        return nvm;
    }

    FileNvm(FileNvm&& o) noexcept
        : dir_(std::move(o.dir_)), dirfd_(std::exchange(o.dirfd_, -1)), capacity_(o.capacity_), used_(o.used_) {}
    FileNvm& operator=(FileNvm&& o) noexcept {
        std::swap(dir_, o.dir_);
        std::swap(dirfd_, o.dirfd_);
        capacity_ = o.capacity_;
        used_ = o.used_;
        return *this;
    }
    ~FileNvm() {
        if (dirfd_ >= 0) ::close(dirfd_);
    }

    [[nodiscard]] const std::string& directory() const noexcept { return dir_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t used() const noexcept { return used_; }

    [[nodiscard]] Result<void> store(RecordId id, std::span<const std::byte> data) {
        if (data.size() > max_record_size) return fail(Errc::nvm_record_too_large);
        std::size_t old = 0;
        if (auto s = size(id)) old = *s;
        if (used_ - old + data.size() > capacity_) return fail(Errc::nvm_full);

        char name[32], tmp[32];
        record_name(name, id);
        std::snprintf(tmp, sizeof tmp, ".r%08x.tmp", static_cast<unsigned>(id));
        int fd = ::openat(dirfd_, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return fail(Errc::nvm_io, errno);
        std::byte header[header_size];
        make_header(header, id, data);
        bool ok = write_all(fd, {header, header_size}) && write_all(fd, data) && ::fsync(fd) == 0;
        int err = errno;
        ::close(fd);
        if (!ok || ::renameat(dirfd_, tmp, dirfd_, name) != 0) {
            err = ok ? errno : err;
            (void)::unlinkat(dirfd_, tmp, 0);
            return fail(err == ENOSPC ? Errc::nvm_full : Errc::nvm_io, err);
        }
        if (::fsync(dirfd_) != 0) return fail(Errc::nvm_io, errno);
        used_ = used_ - old + data.size();
        return {};
    }

    [[nodiscard]] Result<std::size_t> load(RecordId id, std::span<std::byte> out) const {
        char name[32];
        record_name(name, id);
        int fd = ::openat(dirfd_, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(errno == ENOENT ? Errc::nvm_not_found : Errc::nvm_io, errno);
        std::byte header[header_size];
        auto r = [&]() -> Result<std::size_t> {
            if (!read_all(fd, {header, header_size})) return fail(Errc::nvm_corrupt);
            auto len = check_header(header);
            if (!len) return fail(len.error());
            if (*len > out.size()) return fail(Errc::buffer_too_small);
            if (!read_all(fd, out.first(*len))) return fail(Errc::nvm_corrupt);
            std::byte extra;
            if (::read(fd, &extra, 1) != 0) return fail(Errc::nvm_corrupt);
            std::byte idb[4];
            detail::put_le32(idb, id);
            if (detail::crc32(out.first(*len), detail::crc32(idb)) != detail::get_le32(header + 12))
                return fail(Errc::nvm_corrupt);
            return *len;
        }();
        ::close(fd);
        return r;
    }

    [[nodiscard]] Result<std::size_t> size(RecordId id) const {
        char name[32];
        record_name(name, id);
        struct stat st {};
        if (::fstatat(dirfd_, name, &st, 0) != 0)
            return fail(errno == ENOENT ? Errc::nvm_not_found : Errc::nvm_io, errno);
        if (static_cast<std::size_t>(st.st_size) < header_size) return fail(Errc::nvm_corrupt);
        return static_cast<std::size_t>(st.st_size) - header_size;
    }

    [[nodiscard]] Result<void> remove(RecordId id) {
        char name[32];
        record_name(name, id);
        std::size_t old = 0;
        if (auto s = size(id)) old = *s;
        if (::unlinkat(dirfd_, name, 0) != 0) {
            if (errno == ENOENT) return {};
            return fail(Errc::nvm_io, errno);
        }
        if (::fsync(dirfd_) != 0) return fail(Errc::nvm_io, errno);
        used_ -= old;
        return {};
    }

    [[nodiscard]] Result<std::size_t> list(std::span<RecordId> ids) const {
        std::size_t n = 0;
        bool overflow = false;
        auto r = for_each_entry([&](const char* name) {
            RecordId id;
            if (!parse_name(name, id)) return;
            if (n < ids.size()) ids[n] = id;
            else overflow = true;
            ++n;
        });
        if (!r) return fail(r.error());
        if (overflow) return fail(Errc::buffer_too_small);
        return n;
    }

private:
    FileNvm(std::string dir, int fd, std::size_t capacity) : dir_(std::move(dir)), dirfd_(fd), capacity_(capacity) {}

    static void record_name(char (&buf)[32], RecordId id) {
        std::snprintf(buf, sizeof buf, "r%08x", static_cast<unsigned>(id));
    }
    static bool parse_name(const char* name, RecordId& id) {
        if (name[0] != 'r' || std::strlen(name) != 9) return false;
        std::uint32_t v = 0;
        for (int i = 1; i < 9; ++i) {
            char c = name[i];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            v = (v << 4) | static_cast<std::uint32_t>(d);
        }
        id = v;
        return true;
    }
    static void make_header(std::byte* h, RecordId id, std::span<const std::byte> data) {
        std::memcpy(h, "P11R", 4);
        detail::put_le32(h + 4, format_version);
        detail::put_le32(h + 8, static_cast<std::uint32_t>(data.size()));
        std::byte idb[4];
        detail::put_le32(idb, id);
        detail::put_le32(h + 12, detail::crc32(data, detail::crc32(idb)));
    }
    static Result<std::size_t> check_header(const std::byte* h) {
        if (std::memcmp(h, "P11R", 4) != 0 || detail::get_le32(h + 4) != format_version) return fail(Errc::nvm_corrupt);
        std::size_t len = detail::get_le32(h + 8);
        if (len > max_record_size) return fail(Errc::nvm_corrupt);
        return len;
    }
    static bool write_all(int fd, std::span<const std::byte> d) {
        while (!d.empty()) {
            ssize_t n = ::write(fd, d.data(), d.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            d = d.subspan(static_cast<std::size_t>(n));
        }
        return true;
    }
    static bool read_all(int fd, std::span<std::byte> d) {
        while (!d.empty()) {
            ssize_t n = ::read(fd, d.data(), d.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            d = d.subspan(static_cast<std::size_t>(n));
        }
        return true;
    }
    static Result<void> make_dirs(const std::string& dir) {
        for (std::size_t i = 1; i <= dir.size(); ++i) {
            if (i != dir.size() && dir[i] != '/') continue;
            std::string part = dir.substr(0, i);
            if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return fail(Errc::nvm_io, errno);
        }
        return {};
    }
    template <class F>
    Result<void> for_each_entry(F&& f) const {
        int fd = ::openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return fail(Errc::nvm_io, errno);
        DIR* d = ::fdopendir(fd);
        if (!d) {
            ::close(fd);
            return fail(Errc::nvm_io, errno);
        }
        while (dirent* e = ::readdir(d)) f(e->d_name);
        ::closedir(d);
        return {};
    }
    // Removes temp files a crash left behind and totals the payload in use.
    Result<void> scan() {
        used_ = 0;
        std::string stale[16];
        std::size_t nstale = 0;
        auto r = for_each_entry([&](const char* name) {
            RecordId id;
            if (parse_name(name, id)) {
                if (auto s = size(id)) used_ += *s;
            } else if (name[0] == '.' && std::strstr(name, ".tmp") && nstale < 16) {
                stale[nstale++] = name;
            }
        });
        for (std::size_t i = 0; i < nstale; ++i) (void)::unlinkat(dirfd_, stale[i].c_str(), 0);
        return r;
    }

    std::string dir_;
    int dirfd_ = -1;
    std::size_t capacity_ = 0;
    std::size_t used_ = 0;
};

static_assert(Nvm<FileNvm>);

}  // namespace p11tls
