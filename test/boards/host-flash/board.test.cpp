// SPDX-License-Identifier: MIT
// Board host-flash: the token on FlashNvm in a simulated STM32F4 flash image file, the image's
// lock, and the simulated TRNG composed as a board with a hardware TRNG composes it.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <p11tls/board.hpp>
#include <p11tls/token/template.hpp>

#include "support/result.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace p11tls;
using p11tls::test::code;
using p11tls::test::no_error;
using Bytes = std::vector<std::byte>;

constexpr std::size_t kib = 1024;
constexpr std::string_view so_pin = "so-pin-5678";
constexpr std::string_view user_pin = "user-1234";

std::span<const char> pin(std::string_view p) { return {p.data(), p.size()}; }

Bytes read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Bytes b(c.size());
    std::transform(c.begin(), c.end(), b.begin(), [](char x) { return std::byte(static_cast<unsigned char>(x)); });
    return b;
}

void write_file(const std::string& path, std::size_t n, std::byte value) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    std::string bytes(n, static_cast<char>(value));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(f);
}

bool contains(const Bytes& haystack, std::span<const std::byte> needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

bool all_erased(std::span<const std::byte> b) {
    return std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0xFF}; });
}

/// A token initialized with the PINs above, a user session logged in.
struct Ready {
    std::unique_ptr<board::Token> token;
    CK_ULONG session = 0;
};

Ready initialized(std::unique_ptr<board::Token> token) {
    std::array<char, 32> label;
    label.fill(' ');
    std::copy_n("host-flash test", 15, label.begin());
    REQUIRE(code(token->init_token(pin(so_pin), label)) == no_error);
    auto so = token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    REQUIRE(so);
    REQUIRE(code(token->login(*so, CKU_SO, pin(so_pin))) == no_error);
    REQUIRE(code(token->init_pin(*so, pin(user_pin))) == no_error);
    REQUIRE(code(token->close_session(*so)) == no_error);
    auto s = token->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    REQUIRE(s);
    REQUIRE(code(token->login(*s, CKU_USER, pin(user_pin))) == no_error);
    return {std::move(token), *s};
}

Bytes random_bytes(board::Token& t, std::size_t n) {
    auto s = t.open_session(CKF_SERIAL_SESSION);
    REQUIRE(s);
    Bytes out(n);
    REQUIRE(code(t.generate_random(*s, out)) == no_error);
    REQUIRE(code(t.close_session(*s)) == no_error);
    return out;
}

Bytes board_record(board::Token& t, RecordId id) {
    Bytes b(64);
    auto n = t.nvm().load(id, b);
    REQUIRE(n);
    b.resize(*n);
    return b;
}

}  // namespace

TEST_CASE("host-flash: a store location is a directory holding stm32f4-flash.img, or the .img file itself", "[board][host-flash]") {
    CHECK(board::image_path("/var/lib/dev") == "/var/lib/dev/stm32f4-flash.img");
    CHECK(board::image_path("/var/lib/dev1.img") == "/var/lib/dev1.img");
    CHECK(board::image_path(".img") == ".img/stm32f4-flash.img");

    const char* old = std::getenv("P11TLS_STORE");
    const std::string saved = old ? old : "";
    REQUIRE(::setenv("P11TLS_STORE", "/somewhere/store", 1) == 0);
    CHECK(board::store_directory() == "/somewhere/store");
    CHECK(board::image_path() == "/somewhere/store/stm32f4-flash.img");
    if (old) ::setenv("P11TLS_STORE", saved.c_str(), 1);
    else ::unsetenv("P11TLS_STORE");
}

TEST_CASE("host-flash: a new image is an erased 1 MiB STM32F4 bank with the token's store in sectors 1-3", "[board][host-flash]") {
    test::TempDir dir;
    const std::string store = dir.path() + "/new/store";  // missing directories are created
    {
        auto token = board::open_token(store);
        REQUIRE(code(token) == no_error);
    }
    const Bytes image = read_file(store + "/stm32f4-flash.img");
    REQUIRE(image.size() == 1024 * kib);
    STATIC_REQUIRE(board::FlashPart::sector_offset(1) == 16 * kib);
    STATIC_REQUIRE(board::FlashPart::sector_offset(4) == 64 * kib);
    CHECK(all_erased(std::span(image).first(16 * kib)));       // sector 0: the firmware's
    CHECK(all_erased(std::span(image).subspan(64 * kib)));     // sectors 4-11: the firmware's
    CHECK_FALSE(all_erased(std::span(image).subspan(16 * kib, 48 * kib)));
    for (std::size_t sector = 1; sector <= 3; ++sector) {
        // FlashNvm's sector header starts with "P11F".
        auto at = board::FlashPart::sector_offset(sector);
        CHECK(std::string_view(reinterpret_cast<const char*>(&image[at]), 4) == "P11F");
    }
}

TEST_CASE("host-flash: a token object is in the image file when create_object returns, and after a reopen", "[board][host-flash]") {
    test::TempDir dir;
    const std::string path = dir.path() + "/dev.img";
    const std::array<std::byte, 24> value = {std::byte{0x3C}, std::byte{0x91}, std::byte{0x07}, std::byte{0xE4}, std::byte{0x5A},
                                             std::byte{0x18}, std::byte{0xC2}, std::byte{0x6F}, std::byte{0xB3}, std::byte{0x20},
                                             std::byte{0x8D}, std::byte{0x74}, std::byte{0x19}, std::byte{0xAE}, std::byte{0x52},
                                             std::byte{0xF0}, std::byte{0x0B}, std::byte{0x66}, std::byte{0xD7}, std::byte{0x31},
                                             std::byte{0x9C}, std::byte{0x48}, std::byte{0xE1}, std::byte{0x2B}};
    {
        auto opened = board::open_image(path);
        REQUIRE(opened);
        Ready r = initialized(std::move(*opened));
        CHECK_FALSE(contains(read_file(path), value));
        token::Template<> t;
        t.add(CKA_CLASS, CKO_DATA).add(CKA_TOKEN, true).add(CKA_LABEL, "board test data").add(CKA_VALUE, std::span(value));
        REQUIRE(r.token->create_object(r.session, t.view()));
        // Read by another descriptor while the token is still open: written through, not cached.
        CHECK(contains(read_file(path), value));
    }
    auto reopened = board::open_image(path);
    REQUIRE(reopened);
    auto s = (*reopened)->open_session(CKF_SERIAL_SESSION);
    REQUIRE(s);
    token::Template<> q;
    q.add(CKA_CLASS, CKO_DATA).add(CKA_LABEL, "board test data");
    REQUIRE(code((*reopened)->find_init(*s, q.view())) == no_error);
    std::array<CK_ULONG, 2> found{};
    auto n = (*reopened)->find(*s, found);
    REQUIRE(code((*reopened)->find_final(*s)) == no_error);
    REQUIRE(n);
    REQUIRE(*n == 1);
    std::array<std::byte, 64> got{};
    CK_ATTRIBUTE a{CKA_VALUE, got.data(), got.size()};
    REQUIRE(code((*reopened)->get_attributes(*s, found[0], std::span(&a, 1))) == no_error);
    REQUIRE(a.ulValueLen == value.size());
    CHECK(std::equal(value.begin(), value.end(), got.begin()));
}

TEST_CASE("host-flash: one opener at a time; a second one, in this process or another, is refused and changes nothing", "[board][host-flash]") {
    test::TempDir dir;
    const std::string path = dir.path() + "/dev.img";
    auto first = board::open_image(path);
    REQUIRE(first);
    const Bytes before = read_file(path);

    auto second = board::open_image(path);
    REQUIRE_FALSE(second);
    CHECK(second.error().code == Errc::nvm_io);
    CHECK(second.error().native == EWOULDBLOCK);

    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto t = board::open_image(path);
        ::_exit(t ? 10 : t.error().code == Errc::nvm_io && t.error().native == EWOULDBLOCK ? 20 : 30);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 20);
    CHECK(read_file(path) == before);

    first->reset();  // the first owner closes: the image is free again
    auto third = board::open_image(path);
    CHECK(code(third) == no_error);
}

TEST_CASE("host-flash: a file that is not an image of the part is refused and left as it was", "[board][host-flash]") {
    test::TempDir dir;
    const std::string path = dir.path() + "/other.img";
    SECTION("shorter, not erased") { write_file(path, 1000, std::byte{0x00}); }
    SECTION("longer than the part") { write_file(path, 2048 * kib, std::byte{0xFF}); }
    const Bytes before = read_file(path);
    auto t = board::open_image(path);
    REQUIRE_FALSE(t);
    CHECK(t.error().code == Errc::invalid_argument);
    CHECK(read_file(path) == before);
}

TEST_CASE("host-flash: an image whose creation was cut short (shorter, all erased) is created again", "[board][host-flash]") {
    test::TempDir dir;
    const std::string path = dir.path() + "/cut.img";
    write_file(path, 300 * kib, std::byte{0xFF});
    auto t = board::open_image(path);
    REQUIRE(code(t) == no_error);
    CHECK(read_file(path).size() == 1024 * kib);
}

TEST_CASE("host-flash: the unique id is made at an image's first boot, kept across boots and C_InitToken, and differs per image", "[board][host-flash]") {
    test::TempDir dir;
    const std::string a = dir.path() + "/a.img", b = dir.path() + "/b.img";
    Bytes id_a, id_b;
    {
        auto t = board::open_image(a);
        REQUIRE(t);
        id_a = board_record(**t, board::unique_id_record);
    }
    REQUIRE(id_a.size() == board::unique_id_size);
    {
        auto t = board::open_image(a);
        REQUIRE(t);
        CHECK(board_record(**t, board::unique_id_record) == id_a);
        // C_InitToken erases the token's objects, not the board's records.
        Ready r = initialized(std::move(*t));
        CHECK(board_record(*r.token, board::unique_id_record) == id_a);
    }
    {
        auto t = board::open_image(a);
        REQUIRE(t);
        CHECK(board_record(**t, board::unique_id_record) == id_a);
        CHECK((*t)->entropy().boot_count() == 3);
    }
    {
        auto t = board::open_image(b);
        REQUIRE(t);
        id_b = board_record(**t, board::unique_id_record);
    }
    CHECK(id_b.size() == board::unique_id_size);
    CHECK(id_a != id_b);
}

TEST_CASE("host-flash: with a TRNG that replays, the token's random bytes still differ per image and per boot", "[board][host-flash][entropy]") {
    constexpr std::uint64_t sequence = 0x5EED;
    // The control: two TRNGs at the same sequence give the same samples.
    {
        board::Entropy x{board::SimulatedTrng(sequence)}, y{board::SimulatedTrng(sequence)};
        std::array<std::byte, 64> bx, by;
        REQUIRE(code(x.fill(bx)) == no_error);
        REQUIRE(code(y.fill(by)) == no_error);
        REQUIRE(bx == by);
    }
    test::TempDir dir;
    const std::string a = dir.path() + "/a.img", b = dir.path() + "/b.img";
    auto boot = [&](const std::string& path, std::uint64_t expected_boot) {
        auto t = board::open_image(path, board::Entropy{board::SimulatedTrng(sequence)});
        REQUIRE(t);
        CHECK((*t)->entropy().boot_count() == expected_boot);
        return random_bytes(**t, 64);
    };
    const Bytes a1 = boot(a, 1), a2 = boot(a, 2), b1 = boot(b, 1);
    CHECK(a1 != a2);  // the seed record moved on between the boots of one image
    CHECK(a1 != b1);  // the unique ids differ
    CHECK(a2 != b1);
    const Bytes seed = board_record(**board::open_image(a), board::TokenEntropy::record_id);
    CHECK(seed.size() == board::TokenEntropy::record_size);
}

TEST_CASE("host-flash: a stuck TRNG stops key generation", "[board][host-flash][entropy]") {
    test::TempDir dir;
    auto opened = board::open_image(dir.path() + "/dev.img", board::Entropy{board::SimulatedTrng(77)});
    REQUIRE(opened);
    Ready r = initialized(std::move(*opened));
    SimTrng<>* trng = r.token->entropy().source().source().peripheral();
    REQUIRE(trng != nullptr);
    trng->stick_at(0x5A);
    static constexpr unsigned char p256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
    token::Template<> pub, priv;
    pub.add(CKA_TOKEN, true).add(CKA_EC_PARAMS, std::as_bytes(std::span(p256)));
    priv.add(CKA_TOKEN, true).add(CKA_PRIVATE, true).add(CKA_SIGN, true);
    CK_MECHANISM gen{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    auto kp = r.token->generate_key_pair(r.session, gen, pub.view(), priv.view());
    CHECK(code(kp) == Errc::entropy_failed);
    // The same request goes through once the TRNG is healthy and re-initialized.
    trng->heal();
    REQUIRE(code(r.token->entropy().reset()) == no_error);
    CHECK(code(r.token->generate_key_pair(r.session, gen, pub.view(), priv.view())) == no_error);
}
