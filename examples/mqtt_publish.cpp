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
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <fmt/core.h>

#include <p11tls/board.hpp>
#include <p11tls/mqtt/client.hpp>
#include <p11tls/tls/session.hpp>
#include <p11tls/token/module_token.hpp>
#include <p11tls/transport/posix_tcp.hpp>

namespace {

struct Options {
    std::string host, sni, ca_file, ca_label = "Root Cert", key_label = "Device Priv TLS Key",
        cert_label = "Device Cert", cert_file, store = p11tls::board::store_directory(), pin, module, token_label;
    unsigned port = 8883;
    int timeout_ms = 10000;
    std::vector<std::string> alpn;
    std::string topic, message, client_id = fmt::format("p11tls-{}", ::getpid());
    p11tls::mqtt::QoS qos = p11tls::mqtt::QoS::at_most_once;
    std::uint16_t keepalive_s = 60;
    bool retain = false;
};

constexpr const char* usage =
    "usage: mqtt_publish --host H [--port P (8883)] [--sni NAME] (--ca FILE | --ca-label L)\n"
    "                    [--key-label L] [--cert-label L | --cert FILE] [--alpn P]... [--store DIR]\n"
    "                    [--pin PIN] [--module PATH [--token-label L]] [--timeout MS]\n"
    "                    --topic T [--message TEXT] [--qos 0|1] [--client-id ID] [--keepalive S] [--retain]\n"
    "The PIN may come from P11TLS_PIN.\n";

[[noreturn]] void die(const std::string& msg, int code = 1) {
    fmt::print(stderr, "mqtt_publish: {}\n", msg);
    std::exit(code);
}
[[noreturn]] void usage_error(const std::string& msg) { die(msg + " (see --help)", 2); }

unsigned long number(std::string_view opt, const std::string& v, unsigned long max) {
    char* end = nullptr;
    errno = 0;
    unsigned long n = std::strtoul(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || !end || *end || errno || n > max)
        usage_error(fmt::format("{}: '{}' is not a number from 0 to {}", opt, v, max));
    return n;
}

Options parse(int argc, char** argv) {
    Options o;
    if (const char* p = std::getenv("P11TLS_PIN")) o.pin = p;
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
        if (a == "--host") o.host = v;
        else if (a == "--port") {
            o.port = static_cast<unsigned>(number(a, v, 65535));
            if (o.port == 0) usage_error("--port: 0 is not a port number");
        } else if (a == "--sni") o.sni = v;
        else if (a == "--ca") o.ca_file = v;
        else if (a == "--ca-label") o.ca_label = v;
        else if (a == "--key-label") o.key_label = v;
        else if (a == "--cert-label") o.cert_label = v;
        else if (a == "--cert") o.cert_file = v;
        else if (a == "--alpn") o.alpn.push_back(v);
        else if (a == "--store") o.store = v;
        else if (a == "--pin") o.pin = v;
        else if (a == "--module") o.module = v;
        else if (a == "--token-label") o.token_label = v;
        else if (a == "--timeout") {
            o.timeout_ms = static_cast<int>(number(a, v, 3'600'000));
            if (o.timeout_ms == 0) usage_error("--timeout: must be at least 1 ms");
        } else if (a == "--topic") o.topic = v;
        else if (a == "--message") o.message = v;
        else if (a == "--qos") {
            if (v != "0" && v != "1") usage_error(fmt::format("--qos: '{}' is not 0 or 1 (QoS 2 is not supported)", v));
            o.qos = v == "1" ? p11tls::mqtt::QoS::at_least_once : p11tls::mqtt::QoS::at_most_once;
        } else if (a == "--client-id") o.client_id = v;
        else if (a == "--keepalive") o.keepalive_s = static_cast<std::uint16_t>(number(a, v, 65535));
        else usage_error(fmt::format("unknown option {}", a));
    }
    if (o.host.empty()) usage_error("--host is required");
    if (o.topic.empty()) usage_error("--topic is required");
    if (!p11tls::mqtt::valid_topic_name(o.topic))
        usage_error(fmt::format("--topic: '{}' is not a topic name (no + or # wildcards, valid UTF-8)", o.topic));
    if (!p11tls::mqtt::valid_string(o.client_id)) usage_error("--client-id: not valid UTF-8");
    if (o.sni.empty()) o.sni = o.host;
    return o;
}

std::vector<std::byte> read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) die(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    std::vector<std::byte> data;
    std::byte buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    return data;
}

template <class Tok>
int run(Tok& token, const Options& o) {
    p11tls::board::Entropy entropy;
    p11tls::TlsSession<Tok, p11tls::PosixTcp, p11tls::board::Entropy> tls(token, entropy);

    std::vector<std::byte> ca, cert;
    p11tls::tls::Credentials cred;
    cred.key_label = o.key_label;
    cred.cert_label = o.cert_label;
    cred.ca_label = o.ca_label;
    if (!o.ca_file.empty()) cred.ca_data = ca = read_file(o.ca_file);
    if (!o.cert_file.empty()) cred.cert_data = cert = read_file(o.cert_file);
    std::vector<std::string_view> alpn(o.alpn.begin(), o.alpn.end());
    p11tls::tls::Params params;
    params.server_name = o.sni;
    params.alpn = alpn;
    params.timeout_ms = o.timeout_ms;
    if (!tls.configure(cred, params)) die(tls.error_message());

    auto tcp = p11tls::PosixTcp::connect(o.host.c_str(), o.port, o.timeout_ms);
    if (!tcp) die(fmt::format("cannot connect to {}:{}: {}", o.host, o.port, p11tls::describe(tcp.error().code)));
    tls.attach(std::move(*tcp));
    if (!tls.connect()) die(fmt::format("TLS with {}:{}: {}", o.host, o.port, tls.error_message()));

    // Room for long client ids and topic names (AWS IoT allows 128 and 256 bytes).
    p11tls::mqtt::Client<decltype(tls), 1024> mqtt(tls);
    if (!mqtt.connect({.client_id = o.client_id, .keepalive_s = o.keepalive_s})) die(mqtt.error_message());
    if (!mqtt.publish(o.topic, o.message, o.qos, o.retain)) die(mqtt.error_message());
    if (!mqtt.disconnect()) die(mqtt.error_message());

    if (o.qos == p11tls::mqtt::QoS::at_least_once)
        fmt::print("mqtt_publish: published {} bytes to '{}' on {}:{} (QoS 1, PUBACK for packet id {})\n",
                   o.message.size(), o.topic, o.host, o.port, mqtt.last_packet_id());
    else
        fmt::print("mqtt_publish: published {} bytes to '{}' on {}:{} (QoS 0)\n", o.message.size(), o.topic, o.host,
                   o.port);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    p11tls::board::initialize();
    if (!o.module.empty()) {
        auto token = p11tls::ModuleToken::open(o.module.c_str(), o.token_label);
        if (!token)
            die(fmt::format("cannot use PKCS#11 module {}: {}", o.module, p11tls::describe(token.error().code)));
        auto& t = **token;
        if (auto r = o.pin.empty() ? p11tls::Result<void>{} : t.login_user(o.pin); !r)
            die(fmt::format("login to the module's token failed: {}", p11tls::describe(r.error().code)));
        return run(t, o);
    }
    auto token = p11tls::board::open_token(o.store);
    if (!token) die(fmt::format("cannot open the token in {}: {}", o.store, p11tls::describe(token.error().code)));
    auto& t = **token;
    if (!o.pin.empty()) {
        auto s = t.open_session(CKF_SERIAL_SESSION);
        if (!s || !t.login(*s, CKU_USER, o.pin))
            die("login to the token failed (wrong PIN, PIN locked, or token not initialized)");
        // Login is token-wide and lasts while a session is open: keep this one open.
    }
    return run(t, o);
}
