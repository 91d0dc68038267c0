// SPDX-License-Identifier: MIT
// mqtt_publish: publishes one MQTT 3.1.1 message over mutual TLS whose client key stays in the
// token: CONNECT (clean session), PUBLISH with QoS 0 or 1 (waits for the PUBACK), DISCONNECT.
//
//   mqtt_publish --host H [--port P] [--sni NAME] (--ca FILE | --ca-label L) [--key-label L]
//                [--cert-label L | --cert FILE] [--alpn P]... [--store DIR] [--pin PIN]
//                [--module PATH [--token-label L]] [--timeout MS]
//                --topic T [--message TEXT] [--qos 0|1] [--client-id ID] [--keepalive S] [--retain]
// The PIN may come from P11TLS_PIN instead. Exit 0 on success (one line on stdout); otherwise
// one line on stderr.
#include <string>
#include <string_view>

#include <unistd.h>

#include <fmt/core.h>

#include <p11tls/mqtt/client.hpp>

#include "connection.hpp"

namespace {

struct Options {
    example::Connection net;
    std::string topic, message, client_id = fmt::format("p11tls-{}", ::getpid());
    p11tls::mqtt::QoS qos = p11tls::mqtt::QoS::at_most_once;
    std::uint16_t keepalive_s = 60;
    bool retain = false;
};

const std::string usage = std::string("usage: mqtt_publish --host H [--port P (8883)] --topic T [options]\n") +
                          example::connection_usage +
                          "  --topic T --message TEXT --qos 0|1 --client-id ID --keepalive S --retain\n"
                          "The PIN may come from P11TLS_PIN.\n";

using example::die;
using example::number;
using example::usage_error;

Options parse(int argc, char** argv) {
    Options o;
    o.net.port = 8883;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            fmt::print("{}", usage);
            std::exit(0);
        }
        if (a == "--retain") {
            o.retain = true;
            continue;
        }
        if (i + 1 >= argc) usage_error(fmt::format("option {} needs a value", a));
        std::string v = argv[++i];
        if (o.net.parse(a, v)) continue;
        if (a == "--topic") o.topic = v;
        else if (a == "--message") o.message = v;
        else if (a == "--qos") {
            if (v != "0" && v != "1") usage_error(fmt::format("--qos: '{}' is not 0 or 1 (QoS 2 is not supported)", v));
            o.qos = v == "1" ? p11tls::mqtt::QoS::at_least_once : p11tls::mqtt::QoS::at_most_once;
        } else if (a == "--client-id") o.client_id = v;
        else if (a == "--keepalive") o.keepalive_s = static_cast<std::uint16_t>(number(a, v, 65535));
        else usage_error(fmt::format("unknown option {}", a));
    }
    o.net.finish();
    if (o.topic.empty()) usage_error("--topic is required");
    if (!p11tls::mqtt::valid_topic_name(o.topic))
        usage_error(fmt::format("--topic: '{}' is not a topic name (no + or # wildcards, valid UTF-8)", o.topic));
    if (!p11tls::mqtt::valid_string(o.client_id)) usage_error("--client-id: not valid UTF-8");
    return o;
}

template <class Session>
int publish(Session& tls, const Options& o) {
    // Room for long client ids and topic names (AWS IoT allows 128 and 256 bytes).
    p11tls::mqtt::Client<Session, 1024> mqtt(tls);
    if (!mqtt.connect({.client_id = o.client_id, .keepalive_s = o.keepalive_s})) die(mqtt.error_message());
    if (!mqtt.publish(o.topic, o.message, o.qos, o.retain)) die(mqtt.error_message());
    if (!mqtt.disconnect()) die(mqtt.error_message());

    if (o.qos == p11tls::mqtt::QoS::at_least_once)
        fmt::print("mqtt_publish: published {} bytes to '{}' on {}:{} (QoS 1, PUBACK for packet id {})\n",
                   o.message.size(), o.topic, o.net.host, o.net.port, mqtt.last_packet_id());
    else
        fmt::print("mqtt_publish: published {} bytes to '{}' on {}:{} (QoS 0)\n", o.message.size(), o.topic,
                   o.net.host, o.net.port);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    example::program = "mqtt_publish";
    Options o = parse(argc, argv);
    p11tls::board::initialize();
    return example::with_tls(o.net, [&](auto& tls) { return publish(tls, o); });
}
