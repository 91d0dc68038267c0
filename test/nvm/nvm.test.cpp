// SPDX-License-Identifier: MIT
// The Nvm concept's contract, run over every model, then what each model adds.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/nvm/file_nvm.hpp>
#include <p11tls/nvm/ram_nvm.hpp>

#include "support/nvm_models.hpp"
#include "support/result.hpp"
#include "support/temp_dir.hpp"

using namespace p11tls;
using namespace p11tls::test;

namespace {

using Bytes = std::vector<std::byte>;

Bytes bytes(std::string_view s) {
    Bytes b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) b[i] = std::byte(static_cast<unsigned char>(s[i]));
    return b;
}

Bytes pattern(std::size_t n, unsigned seed = 1) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(static_cast<unsigned char>(i * 31 + seed));
    return b;
}

// The whole record, or an empty optional with the error code in `err`.
template <class N>
std::optional<Bytes> load_all(const N& nvm, RecordId id, Errc* err = nullptr) {
    Bytes out(N::max_record_size);
    auto n = nvm.load(id, out);
    if (!n) {
        if (err) *err = n.error().code;
        return std::nullopt;
    }
    out.resize(*n);
    return out;
}

template <class N>
std::vector<RecordId> ids_of(const N& nvm) {
    std::vector<RecordId> ids(256);
    auto n = nvm.list(ids);
    REQUIRE(code(n) == no_error);
    ids.resize(*n);
    std::sort(ids.begin(), ids.end());
    return ids;
}

struct FileModel {
    using nvm_type = FileNvm;
    TempDir dir;
    std::optional<FileNvm> store;
    FileModel() {
        auto r = FileNvm::open(dir.path());
        REQUIRE(code(r) == no_error);
        store.emplace(std::move(*r));
    }
    FileNvm& nvm() { return *store; }
};

struct RamModel {
    using nvm_type = RamNvm<>;
    std::unique_ptr<RamNvm<>> store = std::make_unique<RamNvm<>>();
    RamNvm<>& nvm() { return *store; }
};

using Models = std::tuple<FileModel, RamModel, FlashModel<Stm32f4Nvm>, FlashModel<Nrf52840Nvm>, FlashModel<SpiNorNvm>,
                          ImageFlashModel, EepromModel<>, SealedFlashModel, SealedEepromModel>;

std::string record_path(const std::string& dir, RecordId id) {
    char name[16];
    std::snprintf(name, sizeof name, "r%08x", static_cast<unsigned>(id));
    return dir + "/" + name;
}

void flip_byte(const std::string& path, std::streamoff offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekg(offset);
    char c = 0;
    f.read(&c, 1);
    REQUIRE(f.good());
    c = static_cast<char>(c ^ 0x01);
    f.seekp(offset);
    f.write(&c, 1);
    REQUIRE(f.good());
}

FileNvm open_store(const std::string& dir, std::size_t capacity = 4u << 20) {
    auto r = FileNvm::open(dir, capacity);
    REQUIRE(code(r) == no_error);
    return std::move(*r);
}

}  // namespace

// --- the concept's contract, over every model ---------------------------------------------

TEMPLATE_LIST_TEST_CASE("Nvm: a stored record loads back byte for byte", "[nvm]", Models) {
    TestType m;
    const Bytes data = pattern(300);
    REQUIRE(code(m.nvm().store(7, data)) == no_error);
    CHECK(load_all(m.nvm(), 7) == data);
}

TEMPLATE_LIST_TEST_CASE("Nvm: an empty record exists and has length zero", "[nvm]", Models) {
    TestType m;
    REQUIRE(code(m.nvm().store(3, {})) == no_error);
    auto size = m.nvm().size(3);
    REQUIRE(code(size) == no_error);
    CHECK(*size == 0);
    CHECK(load_all(m.nvm(), 3) == Bytes{});
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{3});
}

TEMPLATE_LIST_TEST_CASE("Nvm: ids need not be dense; 0 and 0xffffffff are valid", "[nvm]", Models) {
    TestType m;
    REQUIRE(code(m.nvm().store(0, bytes("zero"))) == no_error);
    REQUIRE(code(m.nvm().store(0xFFFFFFFFu, bytes("max"))) == no_error);
    CHECK(load_all(m.nvm(), 0) == bytes("zero"));
    CHECK(load_all(m.nvm(), 0xFFFFFFFFu) == bytes("max"));
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{0, 0xFFFFFFFFu});
}

TEMPLATE_LIST_TEST_CASE("Nvm: storing an existing id replaces its value and no other", "[nvm]", Models) {
    TestType m;
    REQUIRE(code(m.nvm().store(1, bytes("first value, rather long"))) == no_error);
    REQUIRE(code(m.nvm().store(2, bytes("neighbour"))) == no_error);
    REQUIRE(code(m.nvm().store(1, bytes("short"))) == no_error);
    CHECK(load_all(m.nvm(), 1) == bytes("short"));
    CHECK(*m.nvm().size(1) == 5);
    CHECK(load_all(m.nvm(), 2) == bytes("neighbour"));
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{1, 2});
}

TEMPLATE_LIST_TEST_CASE("Nvm: remove deletes the record and leaves the others", "[nvm]", Models) {
    TestType m;
    REQUIRE(code(m.nvm().store(1, bytes("one"))) == no_error);
    REQUIRE(code(m.nvm().store(2, bytes("two"))) == no_error);
    REQUIRE(code(m.nvm().remove(1)) == no_error);
    Errc err{};
    CHECK_FALSE(load_all(m.nvm(), 1, &err));
    CHECK(err == Errc::nvm_not_found);
    CHECK(load_all(m.nvm(), 2) == bytes("two"));
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{2});
}

TEMPLATE_LIST_TEST_CASE("Nvm: removing an absent record is not an error", "[nvm]", Models) {
    TestType m;
    REQUIRE(code(m.nvm().store(2, bytes("two"))) == no_error);
    CHECK(code(m.nvm().remove(99)) == no_error);
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{2});
}

TEMPLATE_LIST_TEST_CASE("Nvm: list reports every record id exactly once", "[nvm]", Models) {
    TestType m;
    for (RecordId id : {5u, 1u, 9u, 1u, 5u}) REQUIRE(code(m.nvm().store(id, bytes("x"))) == no_error);
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{1, 5, 9});
}

TEMPLATE_LIST_TEST_CASE("Nvm: list into a short array gives buffer_too_small", "[nvm]", Models) {
    TestType m;
    for (RecordId id : {1u, 2u, 3u}) REQUIRE(code(m.nvm().store(id, bytes("x"))) == no_error);
    std::array<RecordId, 2> ids{};
    CHECK(code(m.nvm().list(ids)) == Errc::buffer_too_small);
    std::array<RecordId, 3> enough{};
    auto n = m.nvm().list(enough);
    REQUIRE(code(n) == no_error);
    CHECK(*n == 3);
}

TEMPLATE_LIST_TEST_CASE("Nvm: size reports the payload length without loading", "[nvm]", Models) {
    TestType m;
    REQUIRE(code(m.nvm().store(4, pattern(1234))) == no_error);
    auto size = m.nvm().size(4);
    REQUIRE(code(size) == no_error);
    CHECK(*size == 1234);
}

TEMPLATE_LIST_TEST_CASE("Nvm: an absent record gives nvm_not_found from load and size", "[nvm]", Models) {
    TestType m;
    std::array<std::byte, 16> out{};
    CHECK(code(m.nvm().load(42, out)) == Errc::nvm_not_found);
    CHECK(code(m.nvm().size(42)) == Errc::nvm_not_found);
}

TEMPLATE_LIST_TEST_CASE("Nvm: loading into a short buffer gives buffer_too_small and keeps the record", "[nvm]", Models) {
    TestType m;
    const Bytes data = pattern(100);
    REQUIRE(code(m.nvm().store(8, data)) == no_error);
    Bytes out(99);
    CHECK(code(m.nvm().load(8, out)) == Errc::buffer_too_small);
    CHECK(load_all(m.nvm(), 8) == data);
}

TEMPLATE_LIST_TEST_CASE("Nvm: a record above max_record_size is refused and changes nothing", "[nvm]", Models) {
    using N = typename TestType::nvm_type;
    TestType m;
    REQUIRE(code(m.nvm().store(1, bytes("old"))) == no_error);
    CHECK(code(m.nvm().store(1, pattern(N::max_record_size + 1))) == Errc::nvm_record_too_large);
    CHECK(code(m.nvm().store(2, pattern(N::max_record_size + 1))) == Errc::nvm_record_too_large);
    CHECK(load_all(m.nvm(), 1) == bytes("old"));
    CHECK(ids_of(m.nvm()) == std::vector<RecordId>{1});
    // The limit itself is accepted.
    CHECK(code(m.nvm().store(2, pattern(N::max_record_size))) == no_error);
    CHECK(load_all(m.nvm(), 2) == pattern(N::max_record_size));
}

// --- FileNvm ------------------------------------------------------------------------------

TEST_CASE("FileNvm: records persist after the directory is reopened", "[nvm][file_nvm]") {
    TempDir dir;
    {
        FileNvm nvm = open_store(dir.path());
        REQUIRE(code(nvm.store(1, bytes("kept"))) == no_error);
        REQUIRE(code(nvm.store(2, pattern(2000))) == no_error);
        REQUIRE(code(nvm.store(3, bytes("gone"))) == no_error);
        REQUIRE(code(nvm.remove(3)) == no_error);
    }
    FileNvm nvm = open_store(dir.path());
    CHECK(load_all(nvm, 1) == bytes("kept"));
    CHECK(load_all(nvm, 2) == pattern(2000));
    CHECK(ids_of(nvm) == std::vector<RecordId>{1, 2});
    CHECK(nvm.used() == 4 + 2000);
}

TEST_CASE("FileNvm: open creates the directory and its parents", "[nvm][file_nvm]") {
    TempDir dir;
    const std::string nested = dir.path() + "/a/b/store";
    FileNvm nvm = open_store(nested);
    CHECK(std::filesystem::is_directory(nested));
    REQUIRE(code(nvm.store(1, bytes("x"))) == no_error);
    CHECK(std::filesystem::exists(record_path(nested, 1)));
}

TEST_CASE("FileNvm: a flipped payload byte makes load report nvm_corrupt", "[nvm][file_nvm]") {
    TempDir dir;
    FileNvm nvm = open_store(dir.path());
    REQUIRE(code(nvm.store(1, pattern(64))) == no_error);
    REQUIRE(code(nvm.store(2, pattern(64, 7))) == no_error);
    flip_byte(record_path(dir.path(), 1), FileNvm::header_size + 10);
    Errc err{};
    CHECK_FALSE(load_all(nvm, 1, &err));
    CHECK(err == Errc::nvm_corrupt);
    CHECK(load_all(nvm, 2) == pattern(64, 7));
}

TEST_CASE("FileNvm: a damaged header makes load report nvm_corrupt", "[nvm][file_nvm]") {
    TempDir dir;
    FileNvm nvm = open_store(dir.path());
    REQUIRE(code(nvm.store(1, pattern(64))) == no_error);
    flip_byte(record_path(dir.path(), 1), 0);  // magic
    Errc err{};
    CHECK_FALSE(load_all(nvm, 1, &err));
    CHECK(err == Errc::nvm_corrupt);
}

TEST_CASE("FileNvm: a truncated record file makes load report nvm_corrupt", "[nvm][file_nvm]") {
    TempDir dir;
    FileNvm nvm = open_store(dir.path());
    REQUIRE(code(nvm.store(1, pattern(64))) == no_error);
    const std::string path = record_path(dir.path(), 1);
    Errc err{};
    SECTION("inside the payload") {
        std::filesystem::resize_file(path, FileNvm::header_size + 63);
        CHECK_FALSE(load_all(nvm, 1, &err));
        CHECK(err == Errc::nvm_corrupt);
    }
    SECTION("inside the header") {
        std::filesystem::resize_file(path, FileNvm::header_size - 1);
        CHECK_FALSE(load_all(nvm, 1, &err));
        CHECK(err == Errc::nvm_corrupt);
    }
}

TEST_CASE("FileNvm: trailing bytes after the payload make load report nvm_corrupt", "[nvm][file_nvm]") {
    TempDir dir;
    FileNvm nvm = open_store(dir.path());
    REQUIRE(code(nvm.store(1, pattern(64))) == no_error);
    {
        std::ofstream f(record_path(dir.path(), 1), std::ios::binary | std::ios::app);
        f.put('!');
    }
    Errc err{};
    CHECK_FALSE(load_all(nvm, 1, &err));
    CHECK(err == Errc::nvm_corrupt);
}

TEST_CASE("FileNvm: a record file renamed to another id does not load", "[nvm][file_nvm]") {
    TempDir dir;
    FileNvm nvm = open_store(dir.path());
    REQUIRE(code(nvm.store(1, pattern(64))) == no_error);
    std::filesystem::rename(record_path(dir.path(), 1), record_path(dir.path(), 2));
    Errc err{};
    CHECK_FALSE(load_all(nvm, 2, &err));
    CHECK(err == Errc::nvm_corrupt);
}

TEST_CASE("FileNvm: a temp file left by a crash before rename is removed at open; the old value stays",
          "[nvm][file_nvm]") {
    TempDir dir;
    {
        FileNvm nvm = open_store(dir.path());
        REQUIRE(code(nvm.store(1, bytes("old value"))) == no_error);
    }
    const std::string tmp = dir.path() + "/.r00000001.tmp";
    {
        std::ofstream f(tmp, std::ios::binary);
        f << "P11R half-written new value";
    }
    REQUIRE(std::filesystem::exists(tmp));
    FileNvm nvm = open_store(dir.path());
    CHECK_FALSE(std::filesystem::exists(tmp));
    CHECK(load_all(nvm, 1) == bytes("old value"));
    CHECK(ids_of(nvm) == std::vector<RecordId>{1});
}

TEST_CASE("FileNvm: a store beyond the capacity gives nvm_full and keeps the old value", "[nvm][file_nvm]") {
    TempDir dir;
    FileNvm nvm = open_store(dir.path(), 100);
    REQUIRE(code(nvm.store(1, pattern(60))) == no_error);
    CHECK(code(nvm.store(2, pattern(41))) == Errc::nvm_full);
    CHECK(code(nvm.store(1, pattern(101))) == Errc::nvm_full);
    CHECK(load_all(nvm, 1) == pattern(60));
    CHECK(ids_of(nvm) == std::vector<RecordId>{1});
    CHECK(nvm.used() == 60);
    // A replacement counts the space the old value frees; exactly full is allowed.
    CHECK(code(nvm.store(1, pattern(100, 3))) == no_error);
    CHECK(code(nvm.store(2, {})) == no_error);
    CHECK(nvm.used() == 100);
}

TEST_CASE("FileNvm: the capacity accounts for records already in the directory at open", "[nvm][file_nvm]") {
    TempDir dir;
    {
        FileNvm nvm = open_store(dir.path(), 100);
        REQUIRE(code(nvm.store(1, pattern(80))) == no_error);
    }
    FileNvm nvm = open_store(dir.path(), 100);
    CHECK(nvm.used() == 80);
    CHECK(code(nvm.store(2, pattern(21))) == Errc::nvm_full);
    CHECK(code(nvm.store(2, pattern(20))) == no_error);
}

TEST_CASE("FileNvm: a second open of a directory in use fails until the first closes", "[nvm][file_nvm]") {
    TempDir dir;
    std::optional<FileNvm> first(open_store(dir.path()));
    auto second = FileNvm::open(dir.path());
    REQUIRE(code(second) == Errc::nvm_io);
    CHECK(second.error().native == EWOULDBLOCK);
    first.reset();
    CHECK(code(FileNvm::open(dir.path())) == no_error);
}

TEST_CASE("FileNvm: a moved-from store keeps the lock with the new owner", "[nvm][file_nvm]") {
    TempDir dir;
    std::optional<FileNvm> a(open_store(dir.path()));
    FileNvm b = std::move(*a);
    a.reset();  // destroying the moved-from object must not release b's lock
    CHECK(code(FileNvm::open(dir.path())) == Errc::nvm_io);
    REQUIRE(code(b.store(1, bytes("still usable"))) == no_error);
    CHECK(load_all(b, 1) == bytes("still usable"));
}

// --- RamNvm -------------------------------------------------------------------------------

TEST_CASE("RamNvm: a store failed by fail_after changes nothing", "[nvm][ram_nvm]") {
    auto nvm = std::make_unique<RamNvm<>>();
    REQUIRE(code(nvm->store(1, bytes("old"))) == no_error);
    nvm->fail_after(0);
    CHECK(code(nvm->store(1, bytes("new"))) == Errc::nvm_io);
    CHECK(code(nvm->store(2, bytes("added"))) == Errc::nvm_io);
    CHECK(load_all(*nvm, 1) == bytes("old"));
    CHECK(ids_of(*nvm) == std::vector<RecordId>{1});
}

TEST_CASE("RamNvm: a remove failed by fail_after changes nothing", "[nvm][ram_nvm]") {
    auto nvm = std::make_unique<RamNvm<>>();
    REQUIRE(code(nvm->store(1, bytes("kept"))) == no_error);
    nvm->fail_after(0);
    CHECK(code(nvm->remove(1)) == Errc::nvm_io);
    CHECK(load_all(*nvm, 1) == bytes("kept"));
}

TEST_CASE("RamNvm: fail_after(n) lets n writes through, then fails until cleared", "[nvm][ram_nvm]") {
    auto nvm = std::make_unique<RamNvm<>>();
    nvm->fail_after(2);
    CHECK(code(nvm->store(1, bytes("a"))) == no_error);
    CHECK(code(nvm->remove(1)) == no_error);
    CHECK(code(nvm->store(2, bytes("b"))) == Errc::nvm_io);
    CHECK(code(nvm->store(3, bytes("c"))) == Errc::nvm_io);
    nvm->clear_failure();
    CHECK(code(nvm->store(2, bytes("b"))) == no_error);
    CHECK(ids_of(*nvm) == std::vector<RecordId>{2});
}

TEST_CASE("RamNvm: a store beyond MaxRecords gives nvm_full and changes nothing", "[nvm][ram_nvm]") {
    RamNvm<2, 16> nvm;
    REQUIRE(code(nvm.store(1, bytes("a"))) == no_error);
    REQUIRE(code(nvm.store(2, bytes("b"))) == no_error);
    CHECK(code(nvm.store(3, bytes("c"))) == Errc::nvm_full);
    CHECK(ids_of(nvm) == std::vector<RecordId>{1, 2});
    // Replacing an existing record needs no new slot.
    CHECK(code(nvm.store(2, bytes("bb"))) == no_error);
    CHECK(load_all(nvm, 2) == bytes("bb"));
}
