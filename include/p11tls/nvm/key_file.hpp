// SPDX-License-Identifier: MIT
#pragma once
/// KeyFile: the host's key-wrapping key for SealedNvm, 32 random bytes in a file of mode 0600.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include <p11tls/concepts/key_source.hpp>

namespace p11tls {

/// The key lives in `path`. The first `key()` creates the file (O_EXCL, mode 0600, 32 bytes
/// from getrandom, fsync'd with its directory) if it does not exist; later calls read it. A
/// file that is not exactly 32 bytes is `Errc::bad_encoding`; one that others may read or write
/// (mode & 077) is refused with `Errc::invalid_argument`, as ssh refuses such key files.
/// Losing the file loses the store's sealed records: back it up apart from the store.
class KeyFile {
public:
    static constexpr std::size_t key_size = 32;

    explicit KeyFile(std::string path) : path_(std::move(path)) {}

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    [[nodiscard]] Result<void> key(std::span<std::byte, key_size> out) const {
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
            if (auto r = create(); !r && r.error().native != EEXIST) return r;
            fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd < 0) return fail(Errc::nvm_io, errno);
        auto r = read_key(fd, out);
        ::close(fd);
        return r;
    }

private:
    static Result<void> read_key(int fd, std::span<std::byte, key_size> out) {
        struct stat st {};
        if (::fstat(fd, &st) != 0) return fail(Errc::nvm_io, errno);
        if ((st.st_mode & 077) != 0) return fail(Errc::invalid_argument);
        if (st.st_size != static_cast<off_t>(key_size)) return fail(Errc::bad_encoding);
        std::size_t got = 0;
        while (got < key_size) {
            ssize_t n = ::read(fd, out.data() + got, key_size - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                mbedtls_platform_zeroize(out.data(), out.size());
                return fail(n < 0 ? Errc::nvm_io : Errc::bad_encoding, n < 0 ? errno : 0);
            }
            got += static_cast<std::size_t>(n);
        }
        return {};
    }

    Result<void> create() const {
        std::byte key[key_size];
        for (std::size_t got = 0; got < key_size;) {
            ssize_t n = ::getrandom(key + got, key_size - got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(Errc::entropy_failed, errno);
            got += static_cast<std::size_t>(n);
        }
        // Written under a unique temporary name and linked into place: no reader sees half a
        // key, and of two processes creating it at once, one key wins (link fails with EEXIST).
        std::string tmp = path_ + ".XXXXXX";
        int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // mode 0600
        if (fd < 0) {
            mbedtls_platform_zeroize(key, sizeof key);
            return fail(Errc::nvm_io, errno);
        }
        bool ok = ::write(fd, key, key_size) == static_cast<ssize_t>(key_size) && ::fsync(fd) == 0;
        int err = errno;
        ::close(fd);
        mbedtls_platform_zeroize(key, sizeof key);
        if (ok && ::link(tmp.c_str(), path_.c_str()) != 0) {
            ok = false;
            err = errno;
        }
        ::unlink(tmp.c_str());
        if (!ok) return fail(Errc::nvm_io, err);
        const std::size_t slash = path_.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
        int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)::fsync(dfd);
            ::close(dfd);
        }
        return {};
    }

    std::string path_;
};

static_assert(KeySource<KeyFile>);

}  // namespace p11tls
