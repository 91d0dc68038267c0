// SPDX-License-Identifier: MIT
// p11tls-bench-tls: TlsSession with its client key in the host SoftToken against a plain
// mbedTLS 2.28 client with the same key in a PEM file, in the same run, both talking to one
// in-process mbedTLS TLS 1.2 server on 127.0.0.1 (an ephemeral port) that requires a client
// certificate and offers only TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256 on P-256.
// Figures: full-handshake time (connect + handshake + close_notify), bulk throughput (client
// to server), resumed-handshake time, and the client's heap (peak bytes, allocations), counted
// by malloc/calloc/realloc/free defined in this program for the measuring thread only.
// Prints one `name=value` line per figure; times are the median over interleaved batches of
// the mean time per operation; `*_ratio` is token / plain. `--quick` is a smoke run.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <malloc.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include <p11tls/board.hpp>
#include <p11tls/tls/session.hpp>
#include <p11tls/token/template.hpp>
#include <p11tls/transport/posix_tcp.hpp>

#include "bench_common.hpp"

// --- heap accounting ------------------------------------------------------------------------
// The allocator is glibc's; these wrappers only count. A thread counts while its `on` flag is
// set (only the client's thread ever sets it, so the server thread's blocks never count). The
// blocks allocated while counting are remembered with their usable size, so a free of one of
// them lowers the live total and frees of older blocks are ignored.

extern "C" {
void* __libc_malloc(std::size_t) noexcept;
void* __libc_calloc(std::size_t, std::size_t) noexcept;
void* __libc_realloc(void*, std::size_t) noexcept;
void __libc_free(void*) noexcept;
}

namespace heap {

struct Stats {
    std::size_t current = 0, peak = 0, allocs = 0;
    bool overflow = false;  // the block table filled up: figures are unusable
};

constinit thread_local bool on = false;
constinit Stats stats{};

struct Slot {
    std::uintptr_t p;  // 0: empty, 1: removed
    std::size_t n;
};
constexpr std::size_t slot_bits = 16;
constinit Slot table[std::size_t{1} << slot_bits]{};

inline std::size_t home(std::uintptr_t p) noexcept {
    return static_cast<std::size_t>(((p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - slot_bits));
}

inline void added(void* ptr) noexcept {
    const std::size_t n = malloc_usable_size(ptr);
    stats.current += n;
    stats.peak = std::max(stats.peak, stats.current);
    ++stats.allocs;
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    std::size_t i = home(p);
    for (std::size_t probes = 0; probes < std::size(table); ++probes, i = (i + 1) % std::size(table))
        if (table[i].p <= 1) {
            table[i] = {p, n};
            return;
        }
    stats.overflow = true;
}

inline void removed(void* ptr) noexcept {
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    std::size_t i = home(p);
    for (std::size_t probes = 0; probes < std::size(table) && table[i].p != 0; ++probes, i = (i + 1) % std::size(table))
        if (table[i].p == p) {
            stats.current -= table[i].n;
            table[i].p = 1;
            return;
        }
}

/// Starts counting on this thread from zero.
inline void start() noexcept {
    std::memset(table, 0, sizeof table);
    stats = {};
    on = true;
}
/// Restarts the peak and the allocation count from the live total now.
inline void mark() noexcept {
    stats.peak = stats.current;
    stats.allocs = 0;
}
inline Stats stop() noexcept {
    on = false;
    return stats;
}

}  // namespace heap

extern "C" {
void* malloc(std::size_t n) noexcept {
    void* p = __libc_malloc(n);
    if (heap::on && p) heap::added(p);
    return p;
}
void* calloc(std::size_t count, std::size_t n) noexcept {
    void* p = __libc_calloc(count, n);
    if (heap::on && p) heap::added(p);
    return p;
}
void* realloc(void* old, std::size_t n) noexcept {
    if (!heap::on) return __libc_realloc(old, n);
    if (old) heap::removed(old);
    void* p = __libc_realloc(old, n);
    if (p) heap::added(p);
    else if (old && n) heap::added(old);  // failed: the old block stays
    return p;
}
void free(void* p) noexcept {
    if (heap::on && p) heap::removed(p);
    __libc_free(p);
}
}

namespace {

using namespace p11tls::bench;
using Token = p11tls::board::Token;
using Session = p11tls::TlsSession<Token, p11tls::PosixTcp, p11tls::board::Entropy>;
using Template = p11tls::token::Template<16, 2048>;

constexpr const char* server_name = "localhost";  // the server certificate's CN, checked by both
constexpr const char* ca_name = "CN=p11tls bench root,O=p11tls";
constexpr int suite = MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
constexpr int suites[] = {suite, 0};
constexpr mbedtls_ecp_group_id server_curves[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
// The plain client offers what TlsSession offers (p11tls::tls::curves and sig_hashes), so the
// server picks the same ECDHE group and the same ServerKeyExchange hash for both.
constexpr mbedtls_ecp_group_id client_curves[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
                                                  MBEDTLS_ECP_DP_NONE};
constexpr int client_sig_hashes[] = {MBEDTLS_MD_SHA512, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA256, MBEDTLS_MD_NONE};
constexpr unsigned char p256_params[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
constexpr std::string_view so_pin = "bench-so-pin", user_pin = "bench-user-pin";
constexpr std::size_t write_size = 16384;  // application bytes per send in the bulk transfer

std::span<const char> pin(std::string_view p) { return {p.data(), p.size()}; }

void check(const p11tls::Result<void>& r, const char* what) {
    if (!r) die(fmt::format("{} failed: {}", what, p11tls::describe(r.error().code)));
}

// --- the PKI --------------------------------------------------------------------------------

// A DER X.509 v3 certificate for `subject_key`, signed by `issuer_key`.
std::vector<unsigned char> issue(const char* subject, Pk& subject_key, Pk& issuer_key, bool ca, int serial,
                                 PlainDrbg& rng) {
    mbedtls_x509write_cert c;
    mbedtls_x509write_crt_init(&c);
    mbedtls_mpi sn;
    mbedtls_mpi_init(&sn);
    mb(mbedtls_mpi_lset(&sn, serial), "mpi_lset");
    mbedtls_x509write_crt_set_version(&c, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&c, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&c, &subject_key.pk);
    mbedtls_x509write_crt_set_issuer_key(&c, &issuer_key.pk);
    mb(mbedtls_x509write_crt_set_subject_name(&c, subject), "set_subject_name");
    mb(mbedtls_x509write_crt_set_issuer_name(&c, ca_name), "set_issuer_name");
    mb(mbedtls_x509write_crt_set_serial(&c, &sn), "set_serial");
    mb(mbedtls_x509write_crt_set_validity(&c, "20240101000000", "20440101000000"), "set_validity");
    mb(mbedtls_x509write_crt_set_basic_constraints(&c, ca ? 1 : 0, -1), "set_basic_constraints");
    mb(mbedtls_x509write_crt_set_key_usage(&c, ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                                                  : MBEDTLS_X509_KU_DIGITAL_SIGNATURE),
       "set_key_usage");
    unsigned char buf[2048];
    const int n = mbedtls_x509write_crt_der(&c, buf, sizeof buf, mbedtls_ctr_drbg_random, &rng.ctx);
    mbedtls_mpi_free(&sn);
    mbedtls_x509write_crt_free(&c);
    if (n < 0) mb(n, "x509write_crt_der");
    return {buf + sizeof buf - n, buf + sizeof buf};  // the DER is written at the buffer's end
}

void write_file(const std::string& path, std::span<const unsigned char> data) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(data.data(), 1, data.size(), f) != data.size() || std::fclose(f) != 0)
        die("cannot write " + path);
}

void write_cert_pem(const std::string& path, const std::vector<unsigned char>& der) {
    unsigned char pem[4096];
    std::size_t len = 0;
    mb(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der.data(), der.size(),
                                pem, sizeof pem, &len),
       "pem_write_buffer");
    write_file(path, std::span(pem, len - 1));  // len counts the terminating NUL
}

struct Pki {
    Pk ca_key, server_key, client_key;
    std::vector<unsigned char> ca_cert, server_cert, client_cert;
    std::string ca_file, client_cert_file, client_key_file;  // what the plain client reads
};

void make_pki(Pki& p, PlainDrbg& rng, const std::string& dir) {
    load_ec_key(p.ca_key, {}, rng);
    load_ec_key(p.server_key, {}, rng);
    load_ec_key(p.client_key, {}, rng);
    p.ca_cert = issue(ca_name, p.ca_key, p.ca_key, true, 1, rng);
    p.server_cert = issue("CN=localhost,O=p11tls", p.server_key, p.ca_key, false, 2, rng);
    p.client_cert = issue("CN=p11tls bench device,O=p11tls", p.client_key, p.ca_key, false, 3, rng);
    p.ca_file = dir + "/ca.pem";
    p.client_cert_file = dir + "/client.pem";
    p.client_key_file = dir + "/client-key.pem";
    write_cert_pem(p.ca_file, p.ca_cert);
    write_cert_pem(p.client_cert_file, p.client_cert);
    unsigned char pem[1024];
    mb(mbedtls_pk_write_key_pem(&p.client_key.pk, pem, sizeof pem), "pk_write_key_pem");
    write_file(p.client_key_file, std::span(pem, std::strlen(reinterpret_cast<char*>(pem))));
    mbedtls_platform_zeroize(pem, sizeof pem);
}

// --- the token --------------------------------------------------------------------------------

// Initializes the token in `dir`, sets the PINs and stores the client key (imported as a
// sensitive, non-extractable private key) and the certificates under the labels TlsSession
// looks for by default.
void provision(const std::string& dir, Pki& p) {
    auto opened = p11tls::board::open_token(dir);
    if (!opened) die(fmt::format("cannot open a token in {}: {}", dir, p11tls::describe(opened.error().code)));
    Token& t = **opened;
    std::array<char, 32> label;
    label.fill(' ');
    std::memcpy(label.data(), "p11tls-bench-tls", 16);
    check(t.init_token(pin(so_pin), label), "init_token");
    auto s = t.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    if (!s) die("open_session failed");
    check(t.login(*s, CKU_SO, pin(so_pin)), "login(SO)");
    check(t.init_pin(*s, pin(user_pin)), "init_pin");
    check(t.logout(*s), "logout");
    check(t.login(*s, CKU_USER, pin(user_pin)), "login(user)");

    const mbedtls_ecp_keypair& ec = p.client_key.ec();
    std::array<unsigned char, 32> d;
    mb(mbedtls_mpi_write_binary(&ec.d, d.data(), d.size()), "mpi_write_binary");
    std::array<unsigned char, 67> point{0x04, 65};  // DER OCTET STRING { 04 || X || Y }
    std::size_t len = 0;
    mb(mbedtls_ecp_point_write_binary(&ec.grp, &ec.Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, point.data() + 2, 65),
       "ecp_point_write_binary");
    Template key;
    key.add(CKA_CLASS, CKO_PRIVATE_KEY)
        .add(CKA_KEY_TYPE, CKK_EC)
        .add(CKA_TOKEN, true)
        .add(CKA_PRIVATE, true)
        .add(CKA_SENSITIVE, true)
        .add(CKA_EXTRACTABLE, false)
        .add(CKA_SIGN, true)
        .add(CKA_LABEL, "Device Priv TLS Key")
        .add(CKA_EC_PARAMS, std::as_bytes(std::span(p256_params)))
        .add(CKA_EC_POINT, std::as_bytes(std::span(point)))
        .add(CKA_VALUE, std::as_bytes(std::span(d)));
    if (!key.ok()) die("key template overflow");
    auto h = t.create_object(*s, key.view());
    mbedtls_platform_zeroize(d.data(), d.size());
    mbedtls_platform_zeroize(&key, sizeof key);  // the template holds a copy of the scalar
    if (!h) die(fmt::format("importing the client key failed: {}", p11tls::describe(h.error().code)));
    auto add_cert = [&](const char* name, const std::vector<unsigned char>& der) {
        Template c;
        c.add(CKA_CLASS, CKO_CERTIFICATE)
            .add(CKA_CERTIFICATE_TYPE, CKC_X_509)
            .add(CKA_TOKEN, true)
            .add(CKA_LABEL, name)
            .add(CKA_VALUE, std::as_bytes(std::span(der)));
        if (!c.ok()) die("certificate template overflow");
        auto r = t.create_object(*s, c.view());
        if (!r) die(fmt::format("storing {} failed: {}", name, p11tls::describe(r.error().code)));
    };
    add_cert("Device Cert", p.client_cert);
    add_cert("Root Cert", p.ca_cert);
    check(t.close_session(*s), "close_session");
}

// The provisioned token as a device finds it after a reset: loaded from its store, the user
// logged in through a session that stays open (login lasts while a session is open).
struct OpenToken {
    std::unique_ptr<Token> token;
    explicit OpenToken(const std::string& dir) {
        auto t = p11tls::board::open_token(dir);
        if (!t) die(fmt::format("cannot open the token in {}: {}", dir, p11tls::describe(t.error().code)));
        token = std::move(*t);
        auto s = token->open_session(CKF_SERIAL_SESSION);
        if (!s) die("open_session failed");
        check(token->login(*s, CKU_USER, pin(user_pin)), "login(user)");
    }
};

// --- the server -------------------------------------------------------------------------------

// A plain-mbedTLS TLS 1.2 server in its own thread: one connection at a time, client
// certificate required, one cipher suite, P-256, session tickets. After the handshake it reads
// and discards application data and answers one byte each time `ack_every` bytes arrived.
class Server {
public:
    Server(Pki& pki, std::size_t ack_every) : ack_every_(ack_every) {
        mbedtls_ssl_config_init(&conf_);
        mbedtls_ssl_init(&ssl_);
        mbedtls_x509_crt_init(&own_);
        mbedtls_x509_crt_init(&ca_);
        mbedtls_ssl_ticket_init(&ticket_);
        mb(mbedtls_x509_crt_parse_der(&own_, pki.server_cert.data(), pki.server_cert.size()), "parse server cert");
        mb(mbedtls_x509_crt_parse_der(&ca_, pki.ca_cert.data(), pki.ca_cert.size()), "parse CA cert");
        mb(mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                       MBEDTLS_SSL_PRESET_DEFAULT),
           "server config_defaults");
        mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &rng_.ctx);
        mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&conf_, &ca_, nullptr);
        mb(mbedtls_ssl_conf_own_cert(&conf_, &own_, &pki.server_key.pk), "server conf_own_cert");
        mbedtls_ssl_conf_ciphersuites(&conf_, suites);
        mbedtls_ssl_conf_curves(&conf_, server_curves);
        mbedtls_ssl_conf_min_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
        mb(mbedtls_ssl_ticket_setup(&ticket_, mbedtls_ctr_drbg_random, &rng_.ctx, MBEDTLS_CIPHER_AES_256_GCM, 86400),
           "ssl_ticket_setup");
        mbedtls_ssl_conf_session_tickets_cb(&conf_, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse, &ticket_);
        mb(mbedtls_ssl_setup(&ssl_, &conf_), "server ssl_setup");

        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        socklen_t len = sizeof a;
        if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            die("cannot listen on 127.0.0.1");
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~Server() {
        stopping_ = true;
        ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
        thread_.join();
        ::close(listen_fd_);
        mbedtls_ssl_free(&ssl_);
        mbedtls_ssl_config_free(&conf_);
        mbedtls_ssl_ticket_free(&ticket_);
        mbedtls_x509_crt_free(&own_);
        mbedtls_x509_crt_free(&ca_);
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    [[nodiscard]] unsigned port() const noexcept { return port_; }
    [[nodiscard]] std::size_t failures() const noexcept { return failures_; }

private:
    void run() {
        std::vector<unsigned char> buf(MBEDTLS_SSL_IN_CONTENT_LEN);
        bool first = true;
        while (!stopping_) {
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;  // shutdown (or a transient error)
            int one = 1;
            (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            mbedtls_net_context net{fd};
            if (!first) (void)mbedtls_ssl_session_reset(&ssl_);
            first = false;
            mbedtls_ssl_set_bio(&ssl_, &net, mbedtls_net_send, mbedtls_net_recv, nullptr);
            int r = mbedtls_ssl_handshake(&ssl_);
            if (r != 0) {
                char text[120];
                mbedtls_strerror(r, text, sizeof text);
                fmt::print(stderr, "{}: server handshake failed: -0x{:04x} ({})\n", program, -r, text);
                ++failures_;
            }
            std::size_t received = 0;
            while (r == 0) {
                const int n = mbedtls_ssl_read(&ssl_, buf.data(), buf.size());
                if (n <= 0) break;  // close_notify, EOF or an error: the connection is over
                received += static_cast<std::size_t>(n);
                if (received >= ack_every_) {
                    received -= ack_every_;
                    const unsigned char ack = 'K';
                    if (mbedtls_ssl_write(&ssl_, &ack, 1) != 1) break;
                }
            }
            mbedtls_net_free(&net);
        }
    }

    PlainDrbg rng_;
    mbedtls_ssl_config conf_;
    mbedtls_ssl_context ssl_;
    mbedtls_x509_crt own_, ca_;
    mbedtls_ssl_ticket_context ticket_;
    std::size_t ack_every_;
    int listen_fd_ = -1;
    unsigned port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> failures_{0};
    std::thread thread_;
};

// --- the plain client -------------------------------------------------------------------------

// What an application written directly against mbedTLS 2.28 does: key, certificate and CA from
// files, mbedtls_net sockets (blocking) with TCP_NODELAY as PosixTcp sets it, and the same
// suite, curves, signature hashes, verification (CA chain and host name) as TlsSession.
// Resumption only when asked for.
class PlainClient {
public:
    PlainClient(const Pki& pki, unsigned port, bool resume) : resume_(resume) {
        std::snprintf(port_, sizeof port_, "%u", port);
        mbedtls_entropy_init(&entropy_);
        mbedtls_ctr_drbg_init(&drbg_);
        mbedtls_ssl_config_init(&conf_);
        mbedtls_ssl_init(&ssl_);
        mbedtls_x509_crt_init(&ca_);
        mbedtls_x509_crt_init(&own_);
        mbedtls_pk_init(&key_);
        mbedtls_net_init(&net_);
        mbedtls_ssl_session_init(&saved_);
        static constexpr unsigned char personal[] = "p11tls-bench plain client";
        mb(mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, personal, sizeof personal), "ctr_drbg_seed");
        mb(mbedtls_x509_crt_parse_file(&ca_, pki.ca_file.c_str()), "x509_crt_parse_file(CA)");
        mb(mbedtls_x509_crt_parse_file(&own_, pki.client_cert_file.c_str()), "x509_crt_parse_file(client)");
        mb(mbedtls_pk_parse_keyfile(&key_, pki.client_key_file.c_str(), nullptr), "pk_parse_keyfile");
        mb(mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                       MBEDTLS_SSL_PRESET_DEFAULT),
           "config_defaults");
        mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&conf_, &ca_, nullptr);
        mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &drbg_);
        mbedtls_ssl_conf_ciphersuites(&conf_, suites);
        mbedtls_ssl_conf_curves(&conf_, client_curves);
        mbedtls_ssl_conf_sig_hashes(&conf_, client_sig_hashes);
        mbedtls_ssl_conf_min_version(&conf_, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
        mbedtls_ssl_conf_session_tickets(&conf_, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
        mb(mbedtls_ssl_conf_own_cert(&conf_, &own_, &key_), "conf_own_cert");
        mb(mbedtls_ssl_setup(&ssl_, &conf_), "ssl_setup");
        mb(mbedtls_ssl_set_hostname(&ssl_, server_name), "set_hostname");
    }
    ~PlainClient() {
        mbedtls_net_free(&net_);
        mbedtls_ssl_session_free(&saved_);
        mbedtls_ssl_free(&ssl_);
        mbedtls_ssl_config_free(&conf_);
        mbedtls_pk_free(&key_);
        mbedtls_x509_crt_free(&own_);
        mbedtls_x509_crt_free(&ca_);
        mbedtls_ctr_drbg_free(&drbg_);
        mbedtls_entropy_free(&entropy_);
    }
    PlainClient(const PlainClient&) = delete;
    PlainClient& operator=(const PlainClient&) = delete;

    void connect() {
        if (used_) mb(mbedtls_ssl_session_reset(&ssl_), "ssl_session_reset");
        used_ = true;
        if (resume_ && have_saved_) mb(mbedtls_ssl_set_session(&ssl_, &saved_), "ssl_set_session");
        mb(mbedtls_net_connect(&net_, "127.0.0.1", port_, MBEDTLS_NET_PROTO_TCP), "net_connect");
        int one = 1;
        (void)::setsockopt(net_.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        mbedtls_ssl_set_bio(&ssl_, &net_, mbedtls_net_send, mbedtls_net_recv, nullptr);
        if (!resume_) {
            mb(mbedtls_ssl_handshake(&ssl_), "plain handshake");
            return;
        }
        // Stepwise only to see whether the server resumed (mbedTLS frees that state at the end).
        resumed_ = false;
        while (ssl_.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
            mb(mbedtls_ssl_handshake_step(&ssl_), "plain handshake");
            if (ssl_.state > MBEDTLS_SSL_SERVER_HELLO && ssl_.handshake)
                resumed_ = p11tls::detail::mbed::handshake_resuming(ssl_);
        }
        mbedtls_ssl_session_free(&saved_);
        mbedtls_ssl_session_init(&saved_);
        have_saved_ = mbedtls_ssl_get_session(&ssl_, &saved_) == 0;
    }
    void send(std::span<const unsigned char> data) {
        while (!data.empty()) {
            const int n = mbedtls_ssl_write(&ssl_, data.data(), data.size());
            if (n < 0) mb(n, "plain ssl_write");
            data = data.subspan(static_cast<std::size_t>(n));
        }
    }
    void await_ack() {
        unsigned char ack = 0;
        const int n = mbedtls_ssl_read(&ssl_, &ack, 1);
        if (n != 1 || ack != 'K') mb(n < 0 ? n : -1, "plain ssl_read (ack)");
    }
    void close() {
        int r;
        while ((r = mbedtls_ssl_close_notify(&ssl_)) == MBEDTLS_ERR_SSL_WANT_WRITE) {
        }
        if (r != 0) mb(r, "plain close_notify");
        mbedtls_net_free(&net_);
    }
    [[nodiscard]] bool resumed() const noexcept { return resumed_; }
    [[nodiscard]] const char* ciphersuite() const noexcept { return mbedtls_ssl_get_ciphersuite(&ssl_); }

private:
    mbedtls_entropy_context entropy_;
    mbedtls_ctr_drbg_context drbg_;
    mbedtls_ssl_config conf_;
    mbedtls_ssl_context ssl_;
    mbedtls_x509_crt ca_, own_;
    mbedtls_pk_context key_;
    mbedtls_net_context net_;
    mbedtls_ssl_session saved_;
    char port_[8];
    bool resume_, used_ = false, have_saved_ = false, resumed_ = false;
};

// --- the TlsSession client ------------------------------------------------------------------

// TlsSession as an application uses it: configured once from the token's labels, a new
// PosixTcp for each connection.
struct TokenClient {
    std::unique_ptr<Session> tls;
    unsigned port;

    TokenClient(Token& token, p11tls::board::Entropy& entropy, unsigned port_, bool resume)
        : tls(std::make_unique<Session>(token, entropy)), port(port_) {
        p11tls::tls::Params params;
        params.server_name = server_name;
        params.resume = resume;
        if (!tls->configure(p11tls::tls::Credentials{}, params)) die(fmt::format("configure: {}", tls->error_message()));
    }
    void connect() {
        auto tcp = p11tls::PosixTcp::connect("127.0.0.1", port);
        if (!tcp) die(fmt::format("connect to 127.0.0.1:{} failed: {}", port, p11tls::describe(tcp.error().code)));
        tls->attach(std::move(*tcp));
        if (!tls->connect()) die(fmt::format("TlsSession handshake: {}", tls->error_message()));
    }
    void send(std::span<const unsigned char> data) {
        auto bytes = std::as_bytes(data);
        while (!bytes.empty()) {
            auto n = tls->send(bytes);
            if (!n) die(fmt::format("TlsSession send: {}", tls->error_message()));
            bytes = bytes.subspan(*n);
        }
    }
    void await_ack() {
        std::byte ack{};
        auto n = tls->recv(std::span(&ack, 1));
        if (!n || *n != 1 || ack != std::byte{'K'}) die(fmt::format("TlsSession recv (ack): {}", tls->error_message()));
    }
    void close() {
        if (!tls->close()) die(fmt::format("TlsSession close: {}", tls->error_message()));
    }
    [[nodiscard]] bool resumed() const noexcept { return tls->resumed(); }
    [[nodiscard]] const char* ciphersuite() const noexcept { return tls->ciphersuite(); }
};

// --- the benchmarks ---------------------------------------------------------------------------

struct Plans {
    Plan handshake, resumed, bulk;
    std::size_t bulk_bytes;
};

// CPU time of the calling thread: the client's own cost, whatever else the machine runs.
Clock::duration thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Sums the client thread's CPU time over the operations it wraps (warm-up included).
struct CpuMeter {
    Clock::duration total{};
    std::size_t ops = 0;
    template <class F>
    auto operator()(F&& f) {
        const auto c0 = thread_cpu();
        auto add = [&] {
            total += thread_cpu() - c0;
            ++ops;
        };
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
            f();
            add();
        } else {
            auto r = f();
            add();
            return r;
        }
    }
    [[nodiscard]] double mean_us() const { return to_us(total) / static_cast<double>(ops); }
};

// One connection: connect, full or resumed handshake, close_notify (the socket itself closes
// in the same call for the plain client and in the next attach() for TlsSession: one close
// per operation either way).
template <class Client>
void handshake_once(Client& c, bool want_resumed) {
    c.connect();
    if (c.resumed() != want_resumed)
        die(want_resumed ? "the server did not resume the session" : "a full handshake was expected, the session resumed");
    c.close();
}

double paired_ratio(const std::vector<double>& token, const std::vector<double>& plain) {
    std::vector<double> r;
    for (std::size_t i = 0; i < token.size(); ++i) r.push_back(token[i] / plain[i]);
    return median(std::move(r));
}

void bench_handshake(PlainClient& plain, TokenClient& token, const Plan& plan) {
    CpuMeter plain_cpu, token_cpu;
    auto plain_op = [&] { plain_cpu([&] { handshake_once(plain, false); }); };
    const std::size_t signed_before = token.tls->token_signatures();
    auto token_op = [&] { token_cpu([&] { handshake_once(token, false); }); };
    auto t = measure_batches(plan, {batch(plain_op), batch(token_op)});
    const double p = median(t[0]), k = median(t[1]);
    print_plan("handshake", plan);
    fmt::print("handshake_what=TCP connect + full handshake (ECDHE, client certificate) + close_notify + close\n");
    fmt::print("handshake_plain_ms={:.3f}\n", p / 1000);
    fmt::print("handshake_token_ms={:.3f}\n", k / 1000);
    print_ratio("handshake_ratio", k / p);
    print_ratio("handshake_ratio_paired", paired_ratio(t[1], t[0]));
    fmt::print("handshake_ratio_target=1.05 (at most)\n");
    fmt::print("handshake_plain_iqr_pct={:.1f}\n", iqr_pct(t[0]));
    fmt::print("handshake_token_iqr_pct={:.1f}\n", iqr_pct(t[1]));
    fmt::print("handshake_cpu_plain_ms={:.3f}\n", plain_cpu.mean_us() / 1000);
    fmt::print("handshake_cpu_token_ms={:.3f}\n", token_cpu.mean_us() / 1000);
    print_ratio("handshake_cpu_ratio", token_cpu.mean_us() / plain_cpu.mean_us());
    fmt::print("handshake_token_signatures_each={:.2f}\n",
               static_cast<double>(token.tls->token_signatures() - signed_before) / static_cast<double>(token_cpu.ops));
}

void bench_resumed(PlainClient& plain, TokenClient& token, const Plan& plan) {
    handshake_once(plain, false);  // the sessions to resume
    handshake_once(token, false);
    auto plain_op = [&] { handshake_once(plain, true); };
    auto token_op = [&] { handshake_once(token, true); };
    auto t = measure(plan, {batch(plain_op), batch(token_op)});
    print_plan("resumed", plan);
    fmt::print("handshake_resumed_what=TCP connect + abbreviated handshake (session ticket) + close_notify + close\n");
    fmt::print("handshake_resumed_ms={:.3f}\n", t[1] / 1000);
    fmt::print("handshake_resumed_plain_ms={:.3f}\n", t[0] / 1000);
    print_ratio("handshake_resumed_ratio", t[1] / t[0]);
}

// Each operation: a new connection and full handshake (not timed), then `bytes` of application
// data in write_size sends and the server's one-byte acknowledgement (timed), then close.
template <class Client>
Clock::duration transfer(Client& c, std::span<const unsigned char> chunk, std::size_t bytes, CpuMeter& cpu) {
    c.connect();
    const auto wall = cpu([&] {
        const auto t0 = Clock::now();
        for (std::size_t sent = 0; sent < bytes; sent += chunk.size())
            c.send(chunk.first(std::min(chunk.size(), bytes - sent)));
        c.await_ack();
        return Clock::now() - t0;
    });
    c.close();
    return wall;
}

void bench_bulk(PlainClient& plain, TokenClient& token, const Plan& plan, std::size_t bytes) {
    std::vector<unsigned char> chunk(write_size);
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<unsigned char>(i * 131 + (i >> 8));
    CpuMeter plain_cpu, token_cpu;
    auto plain_op = [&] { return transfer(plain, chunk, bytes, plain_cpu); };
    auto token_op = [&] { return transfer(token, chunk, bytes, token_cpu); };
    auto t = measure_batches(plan, {batch(plain_op), batch(token_op)});
    auto mb_s = [&](double us) { return static_cast<double>(bytes) / us; };  // bytes per microsecond = MB/s
    std::vector<double> rate_ratio;
    for (std::size_t i = 0; i < t[0].size(); ++i) rate_ratio.push_back(t[0][i] / t[1][i]);
    print_plan("throughput", plan);
    fmt::print("throughput_what={} bytes client to server in {}-byte writes until the server's 1-byte ack; "
               "MB/s = 10^6 bytes/s of application data\n",
               bytes, write_size);
    fmt::print("throughput_plain_mbps={:.1f}\n", mb_s(median(t[0])));
    fmt::print("throughput_token_mbps={:.1f}\n", mb_s(median(t[1])));
    print_ratio("throughput_ratio", median(t[0]) / median(t[1]));
    print_ratio("throughput_ratio_paired", median(rate_ratio));
    fmt::print("throughput_ratio_target=0.97 (at least)\n");
    // The client's CPU per byte (encryption, records, socket writes): what a slower server would hide.
    fmt::print("throughput_cpu_plain_ns_per_byte={:.3f}\n", plain_cpu.mean_us() * 1000 / static_cast<double>(bytes));
    fmt::print("throughput_cpu_token_ns_per_byte={:.3f}\n", token_cpu.mean_us() * 1000 / static_cast<double>(bytes));
    print_ratio("throughput_cpu_ratio", token_cpu.mean_us() / plain_cpu.mean_us());
    fmt::print("throughput_plain_iqr_pct={:.1f}\n", iqr_pct(t[0]));
    fmt::print("throughput_token_iqr_pct={:.1f}\n", iqr_pct(t[1]));
}

struct HeapFigures {
    heap::Stats first;     // from nothing: client object, configuration, one full handshake
    std::size_t idle = 0;  // live after that connection closed
    heap::Stats again;     // one more full handshake, counted from the idle state
};

// Counts the client's heap on this thread: creating it (object, files or token lookups,
// mbedTLS set-up with its record buffers) and one full handshake, then a second full handshake
// from the state the first one left.
template <class Make>
HeapFigures heap_profile(Make make) {
    HeapFigures f;
    heap::start();
    {
        auto client = make();
        handshake_once(*client, false);
        f.first = heap::stats;
        f.idle = heap::stats.current;
        heap::mark();
        handshake_once(*client, false);
        f.again = heap::stop();
    }
    if (f.first.overflow || f.again.overflow) die("heap accounting: block table full");
    return f;
}

void bench_heap(const Pki& pki, Token& token, p11tls::board::Entropy& entropy, unsigned port) {
    const HeapFigures p = heap_profile([&] { return std::make_unique<PlainClient>(pki, port, false); });
    const HeapFigures k = heap_profile([&] { return std::make_unique<TokenClient>(token, entropy, port, false); });
    fmt::print("heap_what=the client thread's malloc/calloc/realloc (glibc usable sizes) from creating the client "
               "through one full handshake and close; the server thread is not counted\n");
    fmt::print("heap_peak_plain_bytes={}\n", p.first.peak);
    fmt::print("heap_peak_token_bytes={}\n", k.first.peak);
    print_ratio("heap_peak_ratio", static_cast<double>(k.first.peak) / static_cast<double>(p.first.peak));
    fmt::print("heap_allocs_plain={}\n", p.first.allocs);
    fmt::print("heap_allocs_token={}\n", k.first.allocs);
    fmt::print("heap_idle_plain_bytes={}\n", p.idle);
    fmt::print("heap_idle_token_bytes={}\n", k.idle);
    fmt::print("heap_handshake_peak_plain_bytes={}\n", p.again.peak - p.idle);
    fmt::print("heap_handshake_peak_token_bytes={}\n", k.again.peak - k.idle);
    fmt::print("heap_handshake_allocs_plain={}\n", p.again.allocs);
    fmt::print("heap_handshake_allocs_token={}\n", k.again.allocs);
    fmt::print("heap_client_object_plain_bytes={}\n", sizeof(PlainClient));
    fmt::print("heap_client_object_token_bytes={}\n", sizeof(Session));
    fmt::print("heap_token_object_bytes={} (the SoftToken, shared by all sessions; not counted above)\n", sizeof(Token));
}

void print_config(bool quick, const std::string& parent, unsigned port, const Plans& plans) {
    print_build_config(quick);
    fmt::print("bench_scratch_fs={} ({})\n", fs_type(parent), parent);
    fmt::print("tls_version=TLS 1.2\n");
    fmt::print("tls_suite={}\n", mbedtls_ssl_get_ciphersuite_name(suite));
    fmt::print("tls_ecdhe_curve=secp256r1 (the server's only curve)\n");
    fmt::print("tls_keys=EC P-256 (CA, server, client), certificates signed with ECDSA-SHA256\n");
    fmt::print("tls_record_in_content_len={}\n", MBEDTLS_SSL_IN_CONTENT_LEN);
    fmt::print("tls_record_out_content_len={}\n", MBEDTLS_SSL_OUT_CONTENT_LEN);
    fmt::print("tls_max_fragment_length=none\n");
    fmt::print("tls_server=in-process mbedTLS server thread on 127.0.0.1:{}, client certificate required, "
               "session tickets (AES-256-GCM), TCP_NODELAY\n",
               port);
    fmt::print("tls_client_token=TlsSession<board::Token, PosixTcp, board::Entropy, tls::TlsConfig>; key "
               "'Device Priv TLS Key' imported sensitive into SoftToken<FileNvm>, user logged in\n");
    fmt::print("tls_client_plain=mbedtls_ssl over mbedtls_net (blocking socket, TCP_NODELAY); key "
               "mbedtls_pk_parse_keyfile (PEM), certificate and CA mbedtls_x509_crt_parse_file\n");
    fmt::print("tls_verification=both: CA chain + host name '{}', VERIFY_REQUIRED\n", server_name);
    fmt::print("tls_bulk_bytes={}\n", plans.bulk_bytes);
}

void usage(std::FILE* to) {
    fmt::print(to, "usage: p11tls-bench-tls [--quick] [--only handshake|resumed|bulk|heap] [--dir PARENT]\n"
               "  TlsSession (key in the host SoftToken) against a plain mbedTLS client (key in a file),\n"
               "  both against one in-process mbedTLS server on 127.0.0.1; prints name=value lines\n"
               "  (ratios token/plain).\n"
               "  --quick       a fast smoke run with few iterations (figures are not stable)\n"
               "  --only NAME   run one benchmark (e.g. under valgrind --tool=callgrind)\n"
               "  --dir PARENT  where the scratch token store and key files go (default $TMPDIR or /tmp)\n");
}

}  // namespace

int main(int argc, char** argv) {
    program = "p11tls-bench-tls";
    Args args;
    if (const int stop = parse_args(argc, argv, args, usage, {"handshake", "resumed", "bulk", "heap"}, true); stop >= 0)
        return stop;
    const bool quick = args.quick;
    const std::string& parent = args.parent;
    make_scratch(parent);

    const Plans plans = quick ? Plans{{2, 3, 3}, {2, 3, 3}, {1, 3, 1}, 2u << 20}
                              : Plans{{10, 21, 10}, {10, 21, 10}, {2, 15, 1}, 16u << 20};

    PlainDrbg rng;
    Pki pki;
    make_pki(pki, rng, scratch_dir);
    provision(scratch_dir + "/token", pki);
    OpenToken opened(scratch_dir + "/token");  // a fresh load: nothing cached from provisioning
    p11tls::board::Entropy entropy;
    Server server(pki, plans.bulk_bytes);
    print_config(quick, parent, server.port(), plans);

    auto want = [&](std::string_view name) { return args.want(name); };
    // First, while the token has not signed yet: what it caches counts as the session's.
    if (want("heap")) bench_heap(pki, *opened.token, entropy, server.port());
    {
        PlainClient plain(pki, server.port(), false);
        TokenClient token(*opened.token, entropy, server.port(), false);
        handshake_once(plain, false);
        handshake_once(token, false);
        if (std::string_view(plain.ciphersuite()) != token.ciphersuite()) die("the clients negotiated different suites");
        fmt::print("tls_suite_negotiated={}\n", token.ciphersuite());
        if (want("handshake")) bench_handshake(plain, token, plans.handshake);
        if (want("bulk")) bench_bulk(plain, token, plans.bulk, plans.bulk_bytes);
    }
    if (want("resumed")) {
        PlainClient plain(pki, server.port(), true);
        TokenClient token(*opened.token, entropy, server.port(), true);
        bench_resumed(plain, token, plans.resumed);
    }
    if (server.failures() != 0) die(fmt::format("{} server handshakes failed", server.failures()));
    fmt::print("bench_loadavg_end={}\n", load_average());
    return 0;
}
