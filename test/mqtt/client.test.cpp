// SPDX-License-Identifier: MIT
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <p11tls/mqtt/client.hpp>

using namespace p11tls;
using namespace p11tls::mqtt;

namespace {

using Bytes = std::vector<std::byte>;

Bytes bytes(std::initializer_list<int> v) {
    Bytes b;
    for (int x : v) b.push_back(std::byte(x));
    return b;
}

// A TlsStream that plays scripted broker bytes and records what the client sends. When the
// script runs out, recv fails with `end` (a broker that says nothing more, or hangs up).
struct ScriptedStream {
    std::deque<std::byte> in;
    Bytes sent;
    std::vector<std::size_t> send_sizes;
    Errc end = Errc::timeout;
    std::size_t chunk = 4096;  // most bytes one recv returns
    std::size_t reads = 0;
    bool closed = false;

    void script(const Bytes& b) { in.insert(in.end(), b.begin(), b.end()); }

    Result<void> connect() { return {}; }
    Result<std::size_t> send(std::span<const std::byte> data) {
        sent.insert(sent.end(), data.begin(), data.end());
        send_sizes.push_back(data.size());
        return data.size();
    }
    Result<std::size_t> recv(std::span<std::byte> out) {
        ++reads;
        if (in.empty()) return fail(end);
        std::size_t n = 0;
        while (n < out.size() && n < chunk && !in.empty()) {
            out[n++] = in.front();
            in.pop_front();
        }
        return n;
    }
    Result<void> close() {
        closed = true;
        return {};
    }
};
static_assert(TlsStream<ScriptedStream>);

const Bytes connack_ok = bytes({0x20, 0x02, 0x00, 0x00});

Errc code_of(const Result<void>& r) { return r ? Errc{} : r.error().code; }

template <class C>
void connect_ok(C& client, ScriptedStream& s) {
    s.script(connack_ok);
    REQUIRE(client.connect({.client_id = "dev", .keepalive_s = 60}));
    s.sent.clear();
    s.send_sizes.clear();
}

}  // namespace

TEST_CASE("Remaining Length is 1 to 4 bytes of 7-bit digits, least significant first", "[mqtt]") {
    struct Case {
        std::size_t value;
        Bytes wire;
    };
    const Case cases[] = {
        {0, bytes({0x00})},
        {127, bytes({0x7f})},
        {128, bytes({0x80, 0x01})},
        {321, bytes({0xc1, 0x02})},
        {16'383, bytes({0xff, 0x7f})},
        {16'384, bytes({0x80, 0x80, 0x01})},
        {2'097'151, bytes({0xff, 0xff, 0x7f})},
        {2'097'152, bytes({0x80, 0x80, 0x80, 0x01})},
        {268'435'455, bytes({0xff, 0xff, 0xff, 0x7f})},
    };
    for (const Case& c : cases) {
        CAPTURE(c.value);
        std::array<std::byte, 4> out{};
        auto n = encode_remaining_length(c.value, out);
        REQUIRE(n);
        CHECK(Bytes(out.begin(), out.begin() + static_cast<long>(*n)) == c.wire);
        auto back = decode_remaining_length(c.wire);
        REQUIRE(back);
        CHECK(back->value == c.value);
        CHECK(back->size == c.wire.size());
    }
}

TEST_CASE("Remaining Length refuses values over 268435455 and short buffers", "[mqtt]") {
    std::array<std::byte, 4> out{};
    CHECK(encode_remaining_length(268'435'456, out).error().code == Errc::invalid_argument);
    std::array<std::byte, 1> one{};
    CHECK(encode_remaining_length(128, one).error().code == Errc::buffer_too_small);
}

TEST_CASE("decoding a Remaining Length rejects five bytes and non-shortest forms, asks for more when cut", "[mqtt]") {
    CHECK(decode_remaining_length(bytes({0x80, 0x80, 0x80, 0x80, 0x01})).error().code == Errc::tls_bad_message);
    CHECK(decode_remaining_length(bytes({0x80, 0x00})).error().code == Errc::tls_bad_message);
    CHECK(decode_remaining_length(bytes({0xff, 0x80, 0x00})).error().code == Errc::tls_bad_message);
    CHECK(decode_remaining_length(bytes({0x80})).error().code == Errc::buffer_too_small);
    CHECK(decode_remaining_length({}).error().code == Errc::buffer_too_small);
}

TEST_CASE("MQTT strings are well-formed UTF-8 without NUL; topic names have no wildcards", "[mqtt]") {
    STATIC_REQUIRE(valid_string("sensors/7/temp"));
    STATIC_REQUIRE(valid_string(""));
    CHECK(valid_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(valid_string(std::string_view("a\0b", 3)));
    CHECK_FALSE(valid_string("\xc0\x80"));          // overlong NUL
    CHECK_FALSE(valid_string("\xe0\x80\xaf"));      // overlong '/'
    CHECK_FALSE(valid_string("\xed\xa0\x80"));      // surrogate
    CHECK_FALSE(valid_string("\xf4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(valid_string("\xc3"));              // cut
    CHECK_FALSE(valid_string("\x80"));              // lone continuation
    CHECK_FALSE(valid_string(std::string(65'536, 'a')));
    CHECK(valid_topic_name("a/b"));
    CHECK_FALSE(valid_topic_name(""));
    CHECK_FALSE(valid_topic_name("a/+/c"));
    CHECK_FALSE(valid_topic_name("a/#"));
}

TEST_CASE("CONNECT is protocol level 4 with a clean session, the keepalive and the client id", "[mqtt]") {
    std::array<std::byte, 64> out{};
    auto n = encode_connect({.client_id = "abc", .keepalive_s = 60}, out);
    REQUIRE(n);
    CHECK(Bytes(out.begin(), out.begin() + static_cast<long>(*n)) ==
          bytes({0x10, 0x0f, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, 'a', 'b', 'c'}));
    CHECK(encode_connect({.client_id = std::string_view("a\0", 2)}, out).error().code == Errc::invalid_argument);
    std::array<std::byte, 16> small{};
    CHECK(encode_connect({.client_id = "abcdef"}, small).error().code == Errc::buffer_too_small);
}

TEST_CASE("a PUBLISH header carries QoS, retain, topic and (QoS 1) the packet id", "[mqtt]") {
    std::array<std::byte, 64> out{};
    auto n = encode_publish_header("a/b", QoS::at_least_once, true, 0x1234, 5, out);
    REQUIRE(n);
    CHECK(Bytes(out.begin(), out.begin() + static_cast<long>(*n)) ==
          bytes({0x33, 2 + 3 + 2 + 5, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34}));
    auto n0 = encode_publish_header("t", QoS::at_most_once, false, 0, 200, out);
    REQUIRE(n0);
    CHECK(Bytes(out.begin(), out.begin() + static_cast<long>(*n0)) == bytes({0x30, 0xcb, 0x01, 0x00, 0x01, 't'}));
    CHECK(encode_publish_header("t", QoS::at_least_once, false, 0, 1, out).error().code == Errc::invalid_argument);
    CHECK(encode_publish_header("t/#", QoS::at_most_once, false, 0, 1, out).error().code == Errc::invalid_argument);
    CHECK(encode_publish_header("t", QoS::at_most_once, false, 0, max_remaining_length, out).error().code ==
          Errc::invalid_argument);
}

TEST_CASE("connect sends CONNECT and accepts CONNACK 0", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    s.script(connack_ok);
    REQUIRE(c.connect({.client_id = "abc", .keepalive_s = 60}));
    CHECK(c.connected());
    CHECK(s.sent == bytes({0x10, 0x0f, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, 'a', 'b', 'c'}));
    CHECK(s.send_sizes.size() == 1);
}

TEST_CASE("connect reads the CONNACK one byte at a time as well", "[mqtt]") {
    ScriptedStream s;
    s.chunk = 1;
    Client c(s);
    s.script(connack_ok);
    CHECK(c.connect({.client_id = "abc"}));
}

TEST_CASE("a refused CONNACK gives connect_failed with the return code and its meaning", "[mqtt]") {
    const std::pair<int, const char*> refusals[] = {{1, "unacceptable protocol version"}, {2, "identifier rejected"},
                                                    {3, "server unavailable"},           {4, "bad user name or password"},
                                                    {5, "not authorized"}};
    for (auto [rc, text] : refusals) {
        CAPTURE(rc);
        ScriptedStream s;
        Client c(s);
        s.script(bytes({0x20, 0x02, 0x00, rc}));
        auto r = c.connect({.client_id = "abc"});
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::connect_failed);
        CHECK(r.error().native == rc);
        CHECK(static_cast<int>(c.refusal()) == rc);
        CHECK_THAT(c.error_message(), Catch::Contains(text) && Catch::Contains("return code " + std::to_string(rc)));
        CHECK_FALSE(c.connected());
    }
}

TEST_CASE("a CONNACK that is not exactly right is a malformed reply", "[mqtt]") {
    const Bytes bad[] = {
        bytes({0x40, 0x02, 0x00, 0x01}),              // PUBACK first
        bytes({0x30, 0x02, 0x00, 0x00}),              // PUBLISH first
        bytes({0x21, 0x02, 0x00, 0x00}),              // flags set
        bytes({0x20, 0x03, 0x00, 0x00, 0x00}),        // too long
        bytes({0x20, 0x01, 0x00}),                    // too short
        bytes({0x20, 0x02, 0x01, 0x00}),              // session present on a clean session
        bytes({0x20, 0x02, 0x02, 0x00}),              // reserved flag
        bytes({0x20, 0x02, 0x00, 0x06}),              // no such return code
        bytes({0x20, 0x82, 0x00}),                    // non-shortest length
        bytes({0x20, 0xff, 0xff, 0xff, 0xff, 0x7f}),  // five length bytes
        bytes({0x00, 0x02, 0x00, 0x00}),              // reserved type
    };
    for (const Bytes& b : bad) {
        CAPTURE(b);
        ScriptedStream s;
        Client c(s);
        s.script(b);
        auto r = c.connect({.client_id = "abc"});
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::tls_bad_message);
        CHECK_THAT(c.error_message(), Catch::StartsWith("malformed reply from the broker"));
        CHECK_FALSE(c.connected());
    }
}

TEST_CASE("a huge Remaining Length is refused before its body is read", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    s.script(bytes({0x20, 0xff, 0xff, 0xff, 0x7f}));
    s.end = Errc::timeout;
    auto r = c.connect({.client_id = "abc"});
    CHECK(code_of(r) == Errc::tls_bad_message);
    CHECK(s.reads == 5);
}

TEST_CASE("silence or a hang-up instead of CONNACK is a timeout or connection_closed", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    CHECK(code_of(c.connect({.client_id = "abc"})) == Errc::timeout);
    CHECK_THAT(c.error_message(), Catch::Contains("timed out waiting for CONNACK"));

    ScriptedStream s2;
    s2.end = Errc::connection_closed;
    s2.script(bytes({0x20, 0x02, 0x00}));
    Client c2(s2);
    CHECK(code_of(c2.connect({.client_id = "abc"})) == Errc::connection_closed);
    CHECK_THAT(c2.error_message(), Catch::Contains("closed the connection"));
}

TEST_CASE("every 0-6 byte reply to CONNECT is accepted only when it is CONNACK 0", "[mqtt]") {
    std::mt19937 rng(20261128);
    for (int i = 0; i < 20000; ++i) {
        ScriptedStream s;
        Bytes reply(rng() % 7);
        // Bias towards the interesting bytes so that near-misses are common.
        for (std::byte& b : reply) {
            const int pick[] = {0x20, 0x02, 0x00, 0x80, 0xff, 0x01};
            b = std::byte(rng() % 2 ? pick[rng() % 6] : static_cast<int>(rng() % 256));
        }
        s.script(reply);
        s.end = rng() % 2 ? Errc::timeout : Errc::connection_closed;
        Client c(s);
        auto r = c.connect({.client_id = "x"});
        bool good = reply.size() >= 4 && Bytes(reply.begin(), reply.begin() + 4) == connack_ok;
        CAPTURE(reply);
        CHECK(static_cast<bool>(r) == good);
        if (!r) CHECK(std::strlen(c.error_message()) > 0);
    }
}

TEST_CASE("QoS 0 PUBLISH goes out in one write and waits for nothing", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    connect_ok(c, s);
    std::size_t reads = s.reads;
    REQUIRE(c.publish("a/b", "hi"));
    CHECK(s.sent == bytes({0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}));
    CHECK(s.send_sizes.size() == 1);
    CHECK(s.reads == reads);
}

TEST_CASE("QoS 1 PUBLISH waits for the PUBACK with its packet id; ids count up", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    connect_ok(c, s);
    s.script(bytes({0x40, 0x02, 0x00, 0x01}));
    REQUIRE(c.publish("a/b", "hi", QoS::at_least_once));
    CHECK(s.sent == bytes({0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'h', 'i'}));
    CHECK(c.last_packet_id() == 1);
    s.script(bytes({0x40, 0x02, 0x00, 0x02}));
    REQUIRE(c.publish("a/b", "again", QoS::at_least_once));
    CHECK(c.last_packet_id() == 2);
}

TEST_CASE("a PUBACK for another packet id, or another packet, is a malformed reply", "[mqtt]") {
    const Bytes bad[] = {
        bytes({0x40, 0x02, 0x00, 0x02}),  // other id
        bytes({0x40, 0x02, 0x00, 0x00}),  // id 0
        bytes({0x42, 0x02, 0x00, 0x01}),  // flags
        bytes({0x40, 0x03, 0x00, 0x01, 0x00}),
        bytes({0x20, 0x02, 0x00, 0x00}),  // a second CONNACK
        bytes({0x50, 0x02, 0x00, 0x01}),  // PUBREC (QoS 2 flow)
        bytes({0xd0, 0x00}),              // PINGRESP nobody asked for
    };
    for (const Bytes& b : bad) {
        CAPTURE(b);
        ScriptedStream s;
        Client c(s);
        connect_ok(c, s);
        s.script(b);
        auto r = c.publish("t", "x", QoS::at_least_once);
        CHECK(code_of(r) == Errc::tls_bad_message);
        CHECK_FALSE(c.connected());
        CHECK(code_of(c.publish("t", "x")) == Errc::connection_closed);
    }
}

TEST_CASE("no PUBACK is a timeout that names the packet id", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    connect_ok(c, s);
    CHECK(code_of(c.publish("t", "x", QoS::at_least_once)) == Errc::timeout);
    CHECK_THAT(c.error_message(), Catch::Equals("timed out waiting for PUBACK for packet id 1"));
}

TEST_CASE("a payload larger than the buffer is sent from the caller's memory", "[mqtt]") {
    ScriptedStream s;
    Client<ScriptedStream, 32> c(s);
    connect_ok(c, s);
    std::string payload(300, 'p');
    s.script(bytes({0x40, 0x02, 0x00, 0x01}));
    REQUIRE(c.publish("t", payload, QoS::at_least_once));
    REQUIRE(s.send_sizes.size() == 2);
    CHECK(s.send_sizes[1] == 300);
    // 2 + 1 (topic) + 2 (id) + 300 = 305 = 0xb1 0x02
    CHECK(Bytes(s.sent.begin(), s.sent.begin() + 8) == bytes({0x32, 0xb1, 0x02, 0x00, 0x01, 't', 0x00, 0x01}));
    CHECK(s.sent.size() == 8 + 300);
}

TEST_CASE("bad topics and long topics are refused before anything is sent", "[mqtt]") {
    ScriptedStream s;
    Client<ScriptedStream, 32> c(s);
    connect_ok(c, s);
    CHECK(code_of(c.publish("a/+", "x")) == Errc::invalid_argument);
    CHECK(code_of(c.publish("", "x")) == Errc::invalid_argument);
    CHECK(s.sent.empty());
    CHECK(code_of(c.publish(std::string(40, 't'), "x")) == Errc::buffer_too_small);
    CHECK(s.sent.empty());
    CHECK(c.connected());
}

TEST_CASE("publish before connect is refused", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    CHECK(code_of(c.publish("t", "x")) == Errc::connection_closed);
    CHECK(s.sent.empty());
}

TEST_CASE("ping sends PINGREQ and wants PINGRESP", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    connect_ok(c, s);
    s.script(bytes({0xd0, 0x00}));
    REQUIRE(c.ping());
    CHECK(s.sent == bytes({0xc0, 0x00}));
    s.script(bytes({0xd0, 0x01, 0x00}));
    CHECK(code_of(c.ping()) == Errc::tls_bad_message);
}

TEST_CASE("disconnect sends DISCONNECT and closes the stream", "[mqtt]") {
    ScriptedStream s;
    Client c(s);
    connect_ok(c, s);
    REQUIRE(c.disconnect());
    CHECK(s.sent == bytes({0xe0, 0x00}));
    CHECK(s.closed);
    CHECK_FALSE(c.connected());
}
