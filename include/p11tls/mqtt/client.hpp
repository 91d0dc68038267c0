// SPDX-License-Identifier: MIT
#pragma once
/// MQTT 3.1.1 client over any TlsStream: CONNECT (clean session), PUBLISH with QoS 0 or 1,
/// PINGREQ and DISCONNECT. No heap: packets are built in a buffer of `TxSize` bytes (a payload
/// that does not fit is sent from the caller's memory), and what the broker sends is checked
/// strictly: a malformed or unexpected packet is an error, never a crash, an over-read or an
/// endless wait.
///
///   TlsSession<board::Token, PosixTcp, board::Entropy> tls(token, entropy);
///   ... tls.configure(...); tls.attach(...); tls.connect();
///   mqtt::Client mqtt(tls);
///   mqtt.connect({.client_id = "sensor-7", .keepalive_s = 60});
///   mqtt.publish("sensors/7/temp", "21.5", mqtt::QoS::at_least_once);   // waits for PUBACK
///   mqtt.disconnect();                          // DISCONNECT, then the stream's close()
///
/// The stream must block: each recv returns data, or Errc::timeout after the stream's own
/// limit (TlsSession: Params::timeout_ms with non_blocking = false). Every wait for the broker
/// is then bounded by that limit times the few bytes of the packet awaited.
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string_view>

#include <p11tls/concepts/tls_stream.hpp>
#include <p11tls/result.hpp>

namespace p11tls::mqtt {

/// Quality of service of a PUBLISH (QoS 2 is not supported).
enum class QoS : std::uint8_t { at_most_once = 0, at_least_once = 1 };

/// Control packet types (the high nibble of the first byte).
enum class PacketType : std::uint8_t {
    connect = 1, connack = 2, publish = 3, puback = 4, pubrec = 5, pubrel = 6, pubcomp = 7,
    subscribe = 8, suback = 9, unsubscribe = 10, unsuback = 11, pingreq = 12, pingresp = 13, disconnect = 14,
};

/// The packet type's name as the specification writes it ("PUBACK").
[[nodiscard]] constexpr const char* name(PacketType t) noexcept {
    constexpr const char* names[16] = {"reserved type 0", "CONNECT",  "CONNACK",     "PUBLISH",  "PUBACK",
                                       "PUBREC",          "PUBREL",   "PUBCOMP",     "SUBSCRIBE", "SUBACK",
                                       "UNSUBSCRIBE",     "UNSUBACK", "PINGREQ",     "PINGRESP", "DISCONNECT",
                                       "reserved type 15"};
    return names[static_cast<std::uint8_t>(t) & 0x0f];
}

/// CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
enum class ConnackCode : std::uint8_t {
    accepted = 0,
    unacceptable_protocol_version = 1,
    identifier_rejected = 2,
    server_unavailable = 3,
    bad_user_name_or_password = 4,
    not_authorized = 5,
};

/// What a CONNACK return code means, for people.
[[nodiscard]] constexpr const char* describe(ConnackCode c) noexcept {
    switch (c) {
    case ConnackCode::accepted: return "connection accepted";
    case ConnackCode::unacceptable_protocol_version:
        return "unacceptable protocol version (the broker does not speak MQTT 3.1.1)";
    case ConnackCode::identifier_rejected: return "client identifier rejected";
    case ConnackCode::server_unavailable: return "server unavailable";
    case ConnackCode::bad_user_name_or_password: return "bad user name or password";
    case ConnackCode::not_authorized: return "not authorized";
    }
    return "unknown return code";
}

/// CONNECT parameters. The session is always clean (no state kept by the broker).
struct ConnectOptions {
    /// Empty: the broker assigns one. Brokers must accept 1 to 23 of [0-9a-zA-Z]; most accept more.
    std::string_view client_id;
    /// Seconds; 0 disables. Otherwise call ping() when nothing else was sent for that long.
    std::uint16_t keepalive_s = 60;
};

/// Largest Remaining Length (four 7-bit digits).
inline constexpr std::size_t max_remaining_length = 268'435'455;
/// A packet's fixed header is at most this long (type byte and four length bytes).
inline constexpr std::size_t max_fixed_header = 5;

/// Writes `len` as a Remaining Length: 7 bits per byte, least significant first, the high bit
/// set on every byte but the last. Errors: invalid_argument (too large), buffer_too_small.
[[nodiscard]] inline Result<std::size_t> encode_remaining_length(std::size_t len, std::span<std::byte> out) noexcept {
    if (len > max_remaining_length) return fail(Errc::invalid_argument);
    std::size_t n = 0;
    do {
        if (n == out.size()) return fail(Errc::buffer_too_small);
        auto digit = static_cast<std::uint8_t>(len % 128);
        len /= 128;
        if (len > 0) digit |= 0x80;
        out[n++] = std::byte{digit};
    } while (len > 0);
    return n;
}

/// A decoded Remaining Length and how many bytes it took.
struct Length {
    std::size_t value;
    std::size_t size;
};

/// Reads a Remaining Length from the start of `in`. Errors: buffer_too_small when `in` ends
/// before the length does (read another byte), tls_bad_message when it runs past four bytes
/// or is not in its shortest form.
[[nodiscard]] inline Result<Length> decode_remaining_length(std::span<const std::byte> in) noexcept {
    std::size_t value = 0, scale = 1;
    for (std::size_t i = 0; i < 4; ++i) {
        if (i == in.size()) return fail(Errc::buffer_too_small);
        auto b = std::to_integer<std::uint8_t>(in[i]);
        value += (b & 0x7fu) * scale;
        if (!(b & 0x80)) {
            if (i > 0 && b == 0) return fail(Errc::tls_bad_message);
            return Length{value, i + 1};
        }
        scale *= 128;
    }
    return fail(Errc::tls_bad_message);
}

/// True when `s` may be sent as an MQTT string: at most 65535 bytes of well-formed UTF-8
/// (no overlong forms, no surrogates) without U+0000.
[[nodiscard]] constexpr bool valid_string(std::string_view s) noexcept {
    if (s.size() > 0xffff) return false;
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<std::uint8_t>(s[i]);
        if (c == 0) return false;
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t more;
        std::uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) more = 1, cp = c & 0x1fu, min = 0x80;
        else if ((c & 0xf0) == 0xe0) more = 2, cp = c & 0x0fu, min = 0x800;
        else if ((c & 0xf8) == 0xf0) more = 3, cp = c & 0x07u, min = 0x10000;
        else return false;
        if (s.size() - i - 1 < more) return false;
        for (std::size_t k = 1; k <= more; ++k) {
            auto d = static_cast<std::uint8_t>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += more + 1;
    }
    return true;
}

/// True when `topic` may be published to: a non-empty valid string without wildcards.
[[nodiscard]] constexpr bool valid_topic_name(std::string_view topic) noexcept {
    return !topic.empty() && valid_string(topic) && topic.find_first_of("+#") == std::string_view::npos;
}

namespace detail {

// Appends to a span; past its end only counts, so one pass gives the size and fit() the verdict.
class Writer {
public:
    explicit Writer(std::span<std::byte> out) noexcept : out_(out) {}
    void u8(std::uint8_t b) noexcept {
        if (pos_ < out_.size()) out_[pos_] = std::byte{b};
        ++pos_;
    }
    void u16(std::uint16_t v) noexcept {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v & 0xff));
    }
    void string(std::string_view s) noexcept {
        u16(static_cast<std::uint16_t>(s.size()));
        for (char c : s) u8(static_cast<std::uint8_t>(c));
    }
    void bytes(std::span<const std::byte> b) noexcept {
        for (std::byte x : b) u8(std::to_integer<std::uint8_t>(x));
    }
    // Requires len <= max_remaining_length.
    void remaining_length(std::size_t len) noexcept {
        std::array<std::byte, 4> digits{};
        auto n = encode_remaining_length(len, digits);
        bytes(std::span(digits).first(n.value_or(0)));
    }
    [[nodiscard]] bool fit() const noexcept { return pos_ <= out_.size(); }
    [[nodiscard]] std::size_t size() const noexcept { return pos_; }

private:
    std::span<std::byte> out_;
    std::size_t pos_ = 0;
};

}  // namespace detail

/// Encodes CONNECT (protocol level 4, clean session). Errors: invalid_argument (client id not
/// a valid string), buffer_too_small.
[[nodiscard]] inline Result<std::size_t> encode_connect(const ConnectOptions& o, std::span<std::byte> out) noexcept {
    if (!valid_string(o.client_id)) return fail(Errc::invalid_argument);
    constexpr std::uint8_t clean_session = 0x02;
    detail::Writer w(out);
    w.u8(static_cast<std::uint8_t>(PacketType::connect) << 4);
    w.remaining_length(10 + 2 + o.client_id.size());
    w.string("MQTT");
    w.u8(4);  // protocol level: 3.1.1
    w.u8(clean_session);
    w.u16(o.keepalive_s);
    w.string(o.client_id);
    if (!w.fit()) return fail(Errc::buffer_too_small);
    return w.size();
}

/// Encodes a PUBLISH up to its payload: fixed header, topic name and, for QoS 1, the packet
/// id (not 0). The payload of `payload_size` bytes follows these bytes on the wire.
/// Errors: invalid_argument (topic, packet id or size), buffer_too_small.
[[nodiscard]] inline Result<std::size_t> encode_publish_header(std::string_view topic, QoS qos, bool retain,
                                                                  std::uint16_t packet_id, std::size_t payload_size,
                                                                  std::span<std::byte> out) noexcept {
    if (!valid_topic_name(topic)) return fail(Errc::invalid_argument);
    if (qos != QoS::at_most_once && qos != QoS::at_least_once) return fail(Errc::invalid_argument);
    if (qos == QoS::at_least_once && packet_id == 0) return fail(Errc::invalid_argument);
    std::size_t variable = 2 + topic.size() + (qos == QoS::at_least_once ? 2 : 0);
    if (payload_size > max_remaining_length - variable) return fail(Errc::invalid_argument);
    detail::Writer w(out);
    w.u8(static_cast<std::uint8_t>((static_cast<unsigned>(PacketType::publish) << 4) |
                                   (static_cast<unsigned>(qos) << 1) | (retain ? 1u : 0u)));
    w.remaining_length(variable + payload_size);
    w.string(topic);
    if (qos == QoS::at_least_once) w.u16(packet_id);
    if (!w.fit()) return fail(Errc::buffer_too_small);
    return w.size();
}

/// The two-byte packets without a variable part.
inline constexpr std::array<std::byte, 2> pingreq_packet{std::byte{0xc0}, std::byte{0x00}};
inline constexpr std::array<std::byte, 2> disconnect_packet{std::byte{0xe0}, std::byte{0x00}};

/// An MQTT 3.1.1 client on a connected TlsStream `S`. `TxSize` bounds CONNECT and a PUBLISH's
/// header plus topic (payloads that do not fit after them are sent from the caller's memory).
/// Every packet awaited from the broker has a fixed body of at most two bytes, read in place:
/// no receive buffer, and nothing is read past the packet. Any failure leaves the client
/// disconnected (the byte stream may be out of step) except invalid_argument and
/// buffer_too_small, which are found before anything is sent.
template <TlsStream S, std::size_t TxSize = 256>
class Client {
    static_assert(TxSize >= 16, "TxSize must hold CONNECT with a short client id");

public:
    explicit Client(S& stream) noexcept : stream_(stream) { msg_[0] = '\0'; }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Sends CONNECT and waits for the CONNACK, which must be the broker's first packet.
    /// Errors: invalid_argument (client id), connect_failed (refused: native is the CONNACK
    /// return code, see refusal()), tls_bad_message (not a valid CONNACK), timeout,
    /// connection_closed, or the stream's error.
    [[nodiscard]] Result<void> connect(const ConnectOptions& o) {
        msg_[0] = '\0';
        refusal_ = ConnackCode::accepted;
        if (connected_) return error(Errc::invalid_argument, "connect(): already connected to the broker");
        auto n = encode_connect(o, tx_);
        if (!n && n.error().code == Errc::invalid_argument)
            return error(Errc::invalid_argument,
                         "the client id is not a valid MQTT string (UTF-8 without NUL, < 64 KiB)");
        if (!n)
            return error(Errc::buffer_too_small,
                         "the client id (%zu bytes) does not fit in the client's %zu-byte packet buffer (TxSize)",
                         o.client_id.size(), TxSize);
        P11TLS_TRY(send_all(std::span(tx_).first(*n), PacketType::connect));
        std::array<std::byte, 2> body;
        P11TLS_TRY(receive(PacketType::connack, body));
        auto flags = std::to_integer<std::uint8_t>(body[0]);
        auto code = std::to_integer<std::uint8_t>(body[1]);
        // Reserved flag bits are 0; a clean session never finds a stored one (Session Present 0).
        if (flags != 0)
            return bad_message("CONNACK with acknowledge flags 0x%02x (must be 0 for a clean session)", flags);
        if (code > static_cast<std::uint8_t>(ConnackCode::not_authorized))
            return bad_message("CONNACK with return code %u (only 0 to 5 exist)", code);
        if (code != 0) {
            refusal_ = static_cast<ConnackCode>(code);
            std::snprintf(msg_.data(), msg_.size(), "the broker refused the connection: %s (CONNACK return code %u)",
                          describe(refusal_), code);
            return fail(Errc::connect_failed, code);
        }
        connected_ = true;
        return {};
    }

    /// Publishes `payload` to `topic`. With QoS 1 waits for the PUBACK carrying this packet's
    /// id (at least once: the broker has it). Errors: invalid_argument (topic, QoS, size),
    /// buffer_too_small (topic longer than TxSize allows), tls_bad_message (a packet other than
    /// that PUBACK), timeout, connection_closed, or the stream's error.
    [[nodiscard]] Result<void> publish(std::string_view topic, std::span<const std::byte> payload,
                                       QoS qos = QoS::at_most_once, bool retain = false) {
        msg_[0] = '\0';
        P11TLS_TRY(require_connected());
        std::uint16_t id = 0;
        if (qos == QoS::at_least_once) {
            id = next_id_;
            next_id_ = next_id_ == 0xffff ? 1 : static_cast<std::uint16_t>(next_id_ + 1);
        }
        auto n = encode_publish_header(topic, qos, retain, id, payload.size(), tx_);
        if (!n) {
            if (n.error().code == Errc::buffer_too_small)
                return error(Errc::buffer_too_small,
                             "the topic name (%zu bytes) does not fit in the client's %zu-byte packet buffer (TxSize)",
                             topic.size(), TxSize);
            if (!valid_topic_name(topic))
                return error(Errc::invalid_argument, "invalid topic name (empty, wildcard + or #, NUL, or bad UTF-8)");
            return error(Errc::invalid_argument, "QoS must be 0 or 1, and the packet under 256 MiB");
        }
        // One write (one TLS record) when the payload fits behind the header.
        std::size_t len = *n;
        if (payload.size() <= TxSize - len) {
            for (std::byte b : payload) tx_[len++] = b;
            payload = {};
        }
        P11TLS_TRY(send_all(std::span(tx_).first(len), PacketType::publish));
        if (!payload.empty()) P11TLS_TRY(send_all(payload, PacketType::publish));
        if (qos == QoS::at_most_once) return {};

        last_packet_id_ = id;
        std::array<std::byte, 2> body;
        P11TLS_TRY(receive(PacketType::puback, body, id));
        auto got = static_cast<std::uint16_t>((std::to_integer<unsigned>(body[0]) << 8) |
                                              std::to_integer<unsigned>(body[1]));
        if (got != id) return bad_message("PUBACK for packet id %u, but the PUBLISH awaiting it has id %u", got, id);
        return {};
    }
    [[nodiscard]] Result<void> publish(std::string_view topic, std::string_view text, QoS qos = QoS::at_most_once,
                                       bool retain = false) {
        return publish(topic, std::as_bytes(std::span(text.data(), text.size())), qos, retain);
    }

    /// Sends PINGREQ and waits for PINGRESP (keeps the connection alive when idle).
    [[nodiscard]] Result<void> ping() {
        msg_[0] = '\0';
        P11TLS_TRY(require_connected());
        P11TLS_TRY(send_all(pingreq_packet, PacketType::pingreq));
        return receive(PacketType::pingresp, {});
    }

    /// Sends DISCONNECT, then closes the stream (TlsSession: close_notify). The client may
    /// connect() again on a newly connected stream.
    [[nodiscard]] Result<void> disconnect() {
        msg_[0] = '\0';
        P11TLS_TRY(require_connected());
        P11TLS_TRY(send_all(disconnect_packet, PacketType::disconnect));
        connected_ = false;
        if (auto r = stream_.close(); !r) return stream_error(r.error(), "closing the stream after DISCONNECT");
        return {};
    }

    /// One line for people about the last failure (empty after success).
    [[nodiscard]] const char* error_message() const noexcept { return msg_.data(); }
    [[nodiscard]] bool connected() const noexcept { return connected_; }
    /// The broker's reason when connect() failed with Errc::connect_failed.
    [[nodiscard]] ConnackCode refusal() const noexcept { return refusal_; }
    /// The packet id of the last QoS 1 PUBLISH.
    [[nodiscard]] std::uint16_t last_packet_id() const noexcept { return last_packet_id_; }

private:
    template <class... A>
    p11tls::detail::Unexpected error(Errc code, const char* format, A... args) {
        if constexpr (sizeof...(A) == 0) std::snprintf(msg_.data(), msg_.size(), "%s", format);
        else std::snprintf(msg_.data(), msg_.size(), format, args...);
        return fail(code);
    }
    template <class... A>
    p11tls::detail::Unexpected bad_message(const char* format, A... args) {
        connected_ = false;
        int n = std::snprintf(msg_.data(), msg_.size(), "malformed reply from the broker: ");
        std::snprintf(msg_.data() + n, msg_.size() - static_cast<std::size_t>(n), format, args...);
        return fail(Errc::tls_bad_message);
    }

    p11tls::detail::Unexpected stream_error(Error e, const char* doing) {
        connected_ = false;
        const char* detail = p11tls::describe(e.code);
        if constexpr (requires(const S& s) { { s.error_message() } -> std::convertible_to<const char*>; }) {
            const char* m = stream_.error_message();
            if (m && *m) detail = m;
        }
        switch (e.code) {
        case Errc::timeout: std::snprintf(msg_.data(), msg_.size(), "timed out %s", doing); break;
        case Errc::connection_closed:
            std::snprintf(msg_.data(), msg_.size(), "the broker closed the connection (%s)", doing);
            break;
        case Errc::would_block:
            std::snprintf(msg_.data(), msg_.size(), "the stream is non-blocking; mqtt::Client needs a blocking one (%s)",
                          doing);
            break;
        // The stream's own message (TlsSession's names the TLS failure) comes first; it may be cut.
        default: std::snprintf(msg_.data(), msg_.size(), "%.190s (%s)", detail, doing); break;
        }
        return fail(e);
    }

    Result<void> require_connected() {
        if (!connected_)
            return error(Errc::connection_closed, "not connected to the broker (connect() first, or it failed)");
        return {};
    }

    Result<void> send_all(std::span<const std::byte> data, PacketType what) {
        while (!data.empty()) {
            auto n = stream_.send(data);
            if (!n) {
                char doing[48];
                std::snprintf(doing, sizeof doing, "sending %s", name(what));
                return stream_error(n.error(), doing);
            }
            if (*n == 0 || *n > data.size()) {
                connected_ = false;
                return error(Errc::transport_failed, "the stream misreported a send");
            }
            data = data.subspan(*n);
        }
        return {};
    }

    Result<void> read_exact(std::span<std::byte> out, const char* doing) {
        while (!out.empty()) {
            auto n = stream_.recv(out);
            if (!n) return stream_error(n.error(), doing);
            if (*n == 0 || *n > out.size()) {
                connected_ = false;
                return error(Errc::transport_failed, "the stream misreported a receive");
            }
            out = out.subspan(*n);
        }
        return {};
    }

    // Reads one packet, which must be `type` with flags 0 and a body of exactly body.size()
    // bytes (and `id` for messages). Stops at the first byte that cannot be right.
    Result<void> receive(PacketType type, std::span<std::byte> body, unsigned id = 0) {
        char doing[64];
        if (id) std::snprintf(doing, sizeof doing, "waiting for %s for packet id %u", name(type), id);
        else std::snprintf(doing, sizeof doing, "waiting for %s", name(type));

        std::array<std::byte, 1> first;
        P11TLS_TRY(read_exact(first, doing));
        auto b = std::to_integer<std::uint8_t>(first[0]);
        auto got = static_cast<PacketType>(b >> 4);
        if (got != type) return bad_message("expected %s, got %s (first byte 0x%02x)", name(type), name(got), b);
        if (b & 0x0f) return bad_message("%s with flags 0x%x (must be 0)", name(type), b & 0x0f);

        std::array<std::byte, 4> digits;
        bool length_ok = false;
        std::size_t length = 0;
        for (std::size_t i = 0; i < digits.size(); ++i) {
            P11TLS_TRY(read_exact(std::span(digits).subspan(i, 1), doing));
            auto len = decode_remaining_length(std::span(digits).first(i + 1));
            if (len) {
                length_ok = true;
                length = len->value;
                break;
            }
            if (len.error().code != Errc::buffer_too_small) break;
        }
        if (!length_ok) return bad_message("%s with a malformed remaining length", name(type));
        if (length != body.size())
            return bad_message("%s with remaining length %zu (must be %zu)", name(type), length, body.size());
        return read_exact(body, doing);
    }

    S& stream_;
    std::array<std::byte, TxSize> tx_{};
    std::array<char, 256> msg_{};
    std::uint16_t next_id_ = 1, last_packet_id_ = 0;
    ConnackCode refusal_ = ConnackCode::accepted;
    bool connected_ = false;
};

}  // namespace p11tls::mqtt
