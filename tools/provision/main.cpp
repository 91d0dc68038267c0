// SPDX-License-Identifier: MIT
// p11tls-provision: prepares a device's token in a factory or in CI. Generates the device key
// inside the token, writes the PKCS#10 request the CA signs, imports the certificate, root CAs
// or an existing key, lists and deletes objects, initializes the token. Works on the host
// token's store directory or on any PKCS#11 module; see `p11tls-provision --help`.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <fmt/core.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>

#include <p11tls/board.hpp>
#include <p11tls/device/image_flash.hpp>
#include <p11tls/nvm/flash_nvm.hpp>
#include <p11tls/provision/provision.hpp>
#include <p11tls/token/module_token.hpp>

#include "image_boards.hpp"

namespace {

namespace pv = p11tls::provision;
using p11tls::Errc;
using p11tls::Error;

// --- exit status and messages -----------------------------------------------------------

enum Exit : int {
    exit_ok = 0,
    exit_failed = 1,     ///< the operation failed (token, store or module error)
    exit_usage = 2,      ///< bad command line (or a target this build cannot use)
    exit_login = 3,      ///< no PIN, wrong or locked PIN, token not initialized
    exit_not_found = 4,  ///< no such object, key, token, module, store or file
    exit_exists = 5,     ///< a label is in use, or the token is initialized already
    exit_rejected = 6,   ///< input refused: malformed, unsupported key, wrong certificate, not a CA
    exit_full = 7,       ///< the token or its store is full
};

constexpr const char* program = "p11tls-provision";

/// Prints one line on stderr and returns `code`.
int failure(int code, const std::string& msg) {
    fmt::print(stderr, "{}: {}\n", program, msg);
    return code;
}
[[noreturn]] void usage_error(const std::string& msg) {
    fmt::print(stderr, "{}: {} (see {} --help)\n", program, msg, program);
    std::exit(exit_usage);
}

int exit_code(Errc e) {
    switch (e) {
    case Errc::pin_incorrect:
    case Errc::pin_locked:
    case Errc::pin_len_range:
    case Errc::user_not_logged_in:
    case Errc::user_pin_not_initialized:
    case Errc::token_not_initialized: return exit_login;
    case Errc::object_not_found:
    case Errc::object_handle_invalid:
    case Errc::key_handle_invalid:
    case Errc::slot_invalid: return exit_not_found;
    case Errc::object_exists: return exit_exists;
    case Errc::bad_encoding:
    case Errc::unsupported_key:
    case Errc::not_a_ca:
    case Errc::object_ambiguous:
    case Errc::tls_key_cert_mismatch:
    case Errc::invalid_argument:
    case Errc::attribute_value_invalid:
    case Errc::key_size_range: return exit_rejected;
    case Errc::token_full:
    case Errc::nvm_full:
    case Errc::nvm_record_too_large: return exit_full;
    default: return exit_failed;
    }
}

/// Why a call failed, for people: the error's description, plus mbedTLS's words for a file
/// that did not parse, plus what to do where there is something to do.
std::string reason(Error e) {
    std::string r = p11tls::describe(e.code);
    if (e.code == Errc::bad_encoding && e.native < 0) {
        if (e.native == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || e.native == MBEDTLS_ERR_PK_PASSWORD_MISMATCH)
            return "the key is encrypted; decrypt it first (openssl pkey -in FILE -out PLAIN.pem)";
        char text[160];
        mbedtls_strerror(e.native, text, sizeof text);
        r += fmt::format(" ({})", text);
    }
    switch (e.code) {
    case Errc::token_full:
    case Errc::nvm_full: r += "; delete objects no longer needed"; break;
    case Errc::user_not_logged_in: r += "; give --pin or set P11TLS_PIN"; break;
    case Errc::token_not_initialized:
    case Errc::user_pin_not_initialized: r += "; run 'p11tls-provision init' first"; break;
    default: break;
    }
    return r;
}

int failure(const std::string& what, Error e) { return failure(exit_code(e.code), fmt::format("{}: {}", what, reason(e))); }

// --- command line ---------------------------------------------------------------------------

constexpr const char* main_help = R"(usage: p11tls-provision COMMAND [options]
       p11tls-provision COMMAND --help

Provisions a device's token: the key pair is generated inside the token, the certificate
request is signed by it, certificates and root CAs are imported next to it.

commands:
  info          the token: label, serial number, state, where it is stored
  list          the token's objects (private ones only with the PIN)
  keygen        generate the device key pair inside the token
  csr           write a PKCS#10 certificate request signed by the token's key
  import-cert   store the device certificate (and its chain); it must match the key
  import-key    store an existing private key (sensitive, not extractable) and its public key
  import-root   store root CA certificates
  delete        destroy objects by label and/or id
  init          initialize the token: label, SO PIN, user PIN (destroys every object)

target (default: the host token's store, $P11TLS_STORE or ~/.local/share/p11tls/token):
  --store DIR                      the host token's store directory
  --image FILE [--board B]         a board's flash image, byte for byte what a programmer
                                   writes (boards: mps2-an386, the default); init creates it
  --module PATH [--token-label L]  any PKCS#11 module; the token labelled L, else the first

common options:
  --pin PIN      the user PIN (or $P11TLS_PIN); commands that change a token that requires
                 login need it (a board image's token is in FreeRTOS mode: no login)
  --json         machine-readable output on stdout (info, list, keygen, csr)
  --help         this text, or a command's options with COMMAND --help

Labels default to FreeRTOS's: "Device Priv TLS Key", "Device Pub TLS Key", "Device Cert",
"Root Cert". A label already in use is refused unless --replace is given.

exit status:
  0  success
  1  the operation failed (token, store or module error)
  2  usage error
  3  login: no PIN given, wrong or locked PIN, token not initialized
  4  not found: object, key, token, module, store directory or input file
  5  already exists: a label in use (see --replace), token initialized (see init --force)
  6  input rejected: malformed file, unsupported key, certificate not for the token's key,
     not a CA certificate, several keys match (name one by --id), not an image of the board
  7  the token or its store is full
Every failure is one line on stderr.
)";

struct Command {
    std::string_view name;
    const char* help;
    std::vector<std::string_view> options;  // beyond the target options and --pin
    bool takes_file = false;
    bool needs_pin = true;  // changes the token
};

const std::vector<Command>& commands() {
    static const std::vector<Command> all = {
        {"info", R"(usage: p11tls-provision info [target] [--pin PIN] [--json]
The token's label, serial number, manufacturer and model, whether it is initialized and has a
user PIN, and its store (directory and bytes used) or module.
)",
         {"--json"}, false, false},
        {"list", R"(usage: p11tls-provision list [target] [--pin PIN] [--type T] [--json]
The token's objects: class, key type and size, label, id, protection; certificates with
subject, issuer and expiry. Without the PIN only public objects are visible.
  --type T   cert, privkey, pubkey or data
  --json     {"logged_in": bool, "objects": [{"class", "label", "id" (hex), "key_type",
             "bits", "sensitive", "extractable", "local", "public_key_pem" (public keys),
             "subject", "issuer", "not_after" (certificates)}]}
)",
         {"--type", "--json"}, false, false},
        {"keygen", R"(usage: p11tls-provision keygen [target] --pin PIN [options]
Generates a key pair inside the token. The private key is sensitive, never extractable and
can only sign; the public key is printed (PEM).
  --type T            ec-p256 (default), ec-p384, rsa-2048 or rsa-3072
  --label L           private key label ("Device Priv TLS Key")
  --public-label L    public key label ("Device Pub TLS Key")
  --id HEX            CKA_ID of both keys (e.g. 01)
  --replace           replace keys with these labels (the new pair is stored first)
  --json              {"private_label", "public_label", "id", "key_type", "bits", "public_key_pem"}
)",
         {"--type", "--label", "--public-label", "--id", "--replace", "--force", "--json"}},
        {"csr", R"(usage: p11tls-provision csr [target] --pin PIN --subject DN [options]
Writes a PKCS#10 certificate request for the token's key, signed by the token (SHA-256;
SHA-384 for P-384). The request is verified with its own public key before it is written.
  --subject DN        "CN=device-1,O=Acme,C=DE" or OpenSSL's "/CN=device-1/O=Acme/C=DE"
  --dns NAME          subjectAltName DNS name (repeatable)
  --ip ADDR           subjectAltName IP address, IPv4 or IPv6 (repeatable)
  --key-label L       the private key ("Device Priv TLS Key")
  --id HEX            the private key by CKA_ID instead of its label
  --public-label L    where its public key is if the private key does not carry it
  --out FILE          write to FILE instead of stdout
  --der               DER instead of PEM (needs --out)
  --json              {"subject", "key_label", "out", "csr_pem", "public_key_pem"}
)",
         {"--subject", "--dns", "--ip", "--key-label", "--id", "--public-label", "--out", "--der", "--json"}},
        {"import-cert", R"(usage: p11tls-provision import-cert FILE [target] --pin PIN [options]
Stores the device certificate from FILE (PEM or DER; a PEM may add its chain after it, leaf
first), all under one label. When the token has the key, the certificate must be for it,
and takes the key's id. FILE - reads standard input.
  --label L           certificate label ("Device Cert")
  --key-label L       the key it must match ("Device Priv TLS Key")
  --id HEX            the key by CKA_ID instead of its label
  --public-label L    where the key's public half is if the private key does not carry it
  --replace           replace certificates with this label
)",
         {"--label", "--key-label", "--id", "--public-label", "--replace", "--force"}, true},
        {"import-key", R"(usage: p11tls-provision import-key FILE [target] --pin PIN [options]
Stores an existing private key from FILE (PEM or DER; PKCS#8, SEC1 or PKCS#1; not encrypted)
as a sensitive, non-extractable signing key, and its public key next to it. EC P-256/P-384
and RSA 2048-4096 only. Prefer keygen: a key generated in the token never existed outside it.
  --label L           private key label ("Device Priv TLS Key")
  --public-label L    public key label ("Device Pub TLS Key")
  --id HEX            CKA_ID of both keys
  --replace           replace keys with these labels
)",
         {"--label", "--public-label", "--id", "--replace", "--force"}, true},
        {"import-root", R"(usage: p11tls-provision import-root FILE [target] --pin PIN [options]
Stores the root CA certificates in FILE (PEM, one or more, or DER); each must be a CA.
  --label L           label ("Root Cert")
  --replace           replace certificates with this label
)",
         {"--label", "--replace", "--force"}, true},
        {"delete", R"(usage: p11tls-provision delete [target] --pin PIN (--label L | --id HEX) [--type T]
Destroys every object with the label and/or id (of type T when given).
  --type T            cert, privkey, pubkey or data
)",
         {"--label", "--id", "--type"}},
        {"init", R"(usage: p11tls-provision init [target] --label L --so-pin SO_PIN --pin PIN [--force]
Initializes the token: sets its label and SO PIN, destroys every object, then sets the user
PIN. The host token's store directory or a board's flash image is created if needed.
  --label L           token label (up to 32 characters)
  --so-pin PIN        security officer PIN (or $P11TLS_SO_PIN); an initialized token needs
                      its current SO PIN
  --pin PIN           the new user PIN (or $P11TLS_PIN)
  --force             re-initialize a token that is initialized already
)",
         {"--label", "--so-pin", "--force"}, false, false},
    };
    return all;
}

constexpr std::string_view target_options[] = {"--store", "--image", "--board", "--module", "--token-label", "--pin", "--help"};
constexpr std::string_view flag_options[] = {"--json", "--replace", "--force", "--der", "--help"};
constexpr std::string_view repeatable[] = {"--dns", "--ip"};

template <class Range>
bool in(const Range& r, std::string_view v) {
    return std::find(std::begin(r), std::end(r), v) != std::end(r);
}

struct Args {
    const Command* cmd = nullptr;
    std::map<std::string, std::vector<std::string>, std::less<>> opts;
    std::string file;

    [[nodiscard]] bool has(std::string_view o) const { return opts.find(o) != opts.end(); }
    [[nodiscard]] std::string get(std::string_view o, std::string dflt = {}) const {
        auto it = opts.find(o);
        return it == opts.end() ? dflt : it->second.back();
    }
    [[nodiscard]] std::vector<std::string> all(std::string_view o) const {
        auto it = opts.find(o);
        return it == opts.end() ? std::vector<std::string>{} : it->second;
    }
};

Args parse(int argc, char** argv) {
    Args a;
    // The command is the first word that is not an option; target options may come before it.
    std::vector<std::pair<std::string_view, const char*>> given;
    for (int i = 1; i < argc; ++i) {
        std::string_view o = argv[i];
        if (o == "-h") o = "--help";
        if (!o.starts_with("--")) {
            if (!a.cmd) {
                if (o == "help") o = "--help";
                for (const Command& c : commands())
                    if (c.name == o) a.cmd = &c;
                if (!a.cmd && o != "--help") usage_error(fmt::format("unknown command '{}'", o));
                if (a.cmd) continue;
            } else {
                if (!a.cmd->takes_file) usage_error(fmt::format("{}: unexpected argument '{}'", a.cmd->name, o));
                if (!a.file.empty()) usage_error(fmt::format("{}: one input file only ('{}' and '{}')", a.cmd->name, a.file, o));
                a.file = o;
                continue;
            }
        }
        if (o == "--help") {
            fmt::print("{}", a.cmd ? a.cmd->help : main_help);
            std::exit(exit_ok);
        }
        const bool flag = in(flag_options, o);
        if (!flag && i + 1 >= argc) usage_error(fmt::format("option {} needs a value", o));
        given.emplace_back(o, flag ? "" : argv[++i]);
    }
    if (!a.cmd) usage_error("no command given");
    for (auto [o, v] : given) {
        if (!in(target_options, o) && !in(a.cmd->options, o))
            usage_error(fmt::format("{}: unknown option {}", a.cmd->name, o));
        auto& values = a.opts[std::string(o)];
        if (!values.empty() && !in(repeatable, o)) usage_error(fmt::format("{}: {} given twice", a.cmd->name, o));
        values.emplace_back(v);
    }
    if (a.cmd->takes_file && a.file.empty()) usage_error(fmt::format("{}: input FILE missing", a.cmd->name));
    int targets = a.has("--store") + a.has("--image") + a.has("--module");
    if (targets > 1) usage_error("give one of --store, --image and --module");
    if (a.has("--token-label") && !a.has("--module")) usage_error("--token-label selects a token of --module");
    if (a.has("--board") && !a.has("--image")) usage_error("--board names the board of an --image");
    return a;
}

std::vector<std::byte> hex_bytes(std::string_view opt, std::string_view hex) {
    auto nibble = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    if (hex.starts_with("0x")) hex.remove_prefix(2);
    std::vector<std::byte> out;
    if (hex.empty() || hex.size() % 2 != 0 || hex.size() > 128)
        usage_error(fmt::format("{}: '{}' is not an even number of hex digits (at most 64 bytes)", opt, hex));
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) usage_error(fmt::format("{}: '{}' is not hex", opt, hex));
        out.push_back(std::byte(hi * 16 + lo));
    }
    return out;
}

std::string hex(std::span<const std::byte> b) {
    std::string s;
    for (std::byte x : b) s += fmt::format("{:02x}", std::to_integer<unsigned>(x));
    return s;
}

/// A PIN from an option or the environment; empty when neither has one.
std::string secret(const Args& a, std::string_view opt, const char* env) {
    if (a.has(opt)) return a.get(opt);
    const char* e = std::getenv(env);
    return e ? e : "";
}

/// Reads FILE ("-": standard input). The caller zeroizes what may be secret.
std::optional<std::vector<std::byte>> read_input(const std::string& path, int& code, std::string& msg) {
    std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (!f) {
        code = errno == ENOENT ? exit_not_found : exit_failed;
        msg = fmt::format("cannot read {}: {}", path, std::strerror(errno));
        return std::nullopt;
    }
    std::vector<std::byte> data;
    std::byte buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) {
        if (data.size() + n > (1u << 20)) {
            if (f != stdin) std::fclose(f);
            code = exit_rejected;
            msg = fmt::format("{} is larger than 1 MiB: not a key or certificate file", path);
            return std::nullopt;
        }
        data.insert(data.end(), buf, buf + n);
    }
    mbedtls_platform_zeroize(buf, sizeof buf);
    bool err = std::ferror(f);
    if (f != stdin) std::fclose(f);
    if (err) {
        code = exit_failed;
        msg = fmt::format("cannot read {}", path);
        return std::nullopt;
    }
    return data;
}

bool write_output(const std::string& path, std::span<const std::byte> data, std::string& msg) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) {
        msg = fmt::format("cannot write {}: {}", path, std::strerror(errno));
        return false;
    }
    bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
    ok = std::fclose(f) == 0 && ok;
    if (!ok) msg = fmt::format("cannot write {}: {}", path, std::strerror(errno));
    return ok;
}

std::string json(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (ch) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) out += fmt::format("\\u{:04x}", c);
            else out += ch;
        }
    }
    return out + "\"";
}
std::string json_bool(bool b) { return b ? "true" : "false"; }

std::string class_name(CK_OBJECT_CLASS c) {
    switch (c) {
    case CKO_PRIVATE_KEY: return "private key";
    case CKO_PUBLIC_KEY: return "public key";
    case CKO_CERTIFICATE: return "certificate";
    case CKO_DATA: return "data";
    default: return fmt::format("class 0x{:x}", c);
    }
}
std::string class_json(CK_OBJECT_CLASS c) {
    switch (c) {
    case CKO_PRIVATE_KEY: return "privkey";
    case CKO_PUBLIC_KEY: return "pubkey";
    case CKO_CERTIFICATE: return "cert";
    case CKO_DATA: return "data";
    default: return fmt::format("0x{:x}", c);
    }
}
std::optional<CK_OBJECT_CLASS> class_option(const Args& a) {
    if (!a.has("--type")) return std::nullopt;
    std::string t = a.get("--type");
    if (t == "cert") return CKO_CERTIFICATE;
    if (t == "privkey") return CKO_PRIVATE_KEY;
    if (t == "pubkey") return CKO_PUBLIC_KEY;
    if (t == "data") return CKO_DATA;
    usage_error(fmt::format("--type: '{}' is not cert, privkey, pubkey or data", t));
}
std::string key_name(CK_KEY_TYPE t, unsigned bits) {
    if (t == CKK_EC) return bits ? fmt::format("EC P-{}", bits) : "EC";
    if (t == CKK_RSA) return bits ? fmt::format("RSA-{}", bits) : "RSA";
    return "";
}

/// "/CN=a/O=b" (OpenSSL's form) to "CN=a,O=b" (mbedTLS's); other text is taken as it is.
std::string subject_of(std::string s) {
    if (!s.starts_with("/")) return s;
    std::string out;
    for (std::size_t i = 1; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) out += s[++i];
        else if (s[i] == '/') out += ',';
        else if (s[i] == ',') out += "\\,";
        else out += s[i];
    }
    return out;
}

// --- the token -------------------------------------------------------------------------------

/// One object, copied out of list_objects' callback.
struct Object {
    CK_ULONG handle;
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE key_type;
    std::string label, id;
    unsigned bits;
    std::optional<bool> sensitive, extractable, local;
};

/// The session's objects (of class `cls` when given); `err` gets the error of a failed search.
template <class Tok>
std::vector<Object> objects(Tok& t, CK_ULONG s, std::optional<CK_OBJECT_CLASS> cls, std::optional<Error>* err = nullptr) {
    std::vector<Object> all;
    auto r = pv::list_objects(
        t, s,
        [&](const pv::ObjectInfo& o) {
            all.push_back({o.handle, o.cls, o.key_type, std::string(o.label), hex(o.id), o.bits, o.sensitive, o.extractable,
                           o.local});
        },
        cls);
    if (!r && err) *err = r.error();
    return all;
}

template <class Tok>
std::optional<Object> find_object(Tok& t, CK_ULONG s, CK_OBJECT_CLASS cls, std::string_view label) {
    for (Object& o : objects(t, s, cls))
        if (o.label == label) return o;
    return std::nullopt;
}

template <class Tok>
std::optional<Object> object_by_handle(Tok& t, CK_ULONG s, CK_ULONG h) {
    for (Object& o : objects(t, s, std::nullopt))
        if (o.handle == h) return o;
    return std::nullopt;
}

/// What the host token and a module token differ in: token info, initialization, the target.
struct StoreTarget {
    std::string dir;
};
struct ModuleTarget {
    std::string path, token_label;
};
struct ImageTarget {
    std::string path, board;
};

template <class Tok>
CK_TOKEN_INFO token_info(Tok& t) {
    CK_TOKEN_INFO info;
    t.token_info(info);
    return info;
}
CK_TOKEN_INFO token_info(p11tls::ModuleToken& t) {
    CK_TOKEN_INFO info{};
    (void)t.functions()->C_GetTokenInfo(t.slot(), &info);
    return info;
}

std::string trimmed(const unsigned char* field, std::size_t n) {
    while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\0')) --n;
    return std::string(reinterpret_cast<const char*>(field), n);
}

std::string describe_target(const StoreTarget& t) { return fmt::format("the token in {}", t.dir); }
std::string describe_target(const ImageTarget& t) { return fmt::format("the token in {} flash image {}", t.board, t.path); }
std::string describe_target(const ModuleTarget& t) {
    return t.token_label.empty() ? fmt::format("the first token of {}", t.path)
                                 : fmt::format("token '{}' of {}", t.token_label, t.path);
}

// --- commands ------------------------------------------------------------------------------------

struct Ctx {
    const Args& a;
    std::string target;  // for messages
    bool logged_in = false;
    bool json = false;
};

template <class Tok>
int cmd_info(Tok& t, Ctx& c, const std::string& where_json, const std::string& where_text) {
    CK_TOKEN_INFO info = token_info(t);
    const bool initialized = info.flags & CKF_TOKEN_INITIALIZED;
    const bool user_pin = info.flags & CKF_USER_PIN_INITIALIZED;
    const bool login = info.flags & CKF_LOGIN_REQUIRED;
    const bool user_locked = info.flags & CKF_USER_PIN_LOCKED;
    const bool so_locked = info.flags & CKF_SO_PIN_LOCKED;
    const std::string label = trimmed(info.label, sizeof info.label), serial = trimmed(info.serialNumber, sizeof info.serialNumber);
    const std::string manufacturer = trimmed(info.manufacturerID, sizeof info.manufacturerID), model = trimmed(info.model, sizeof info.model);
    if (c.json) {
        fmt::print("{{\"label\": {}, \"serial\": {}, \"manufacturer\": {}, \"model\": {}, \"initialized\": {}, "
                   "\"user_pin_initialized\": {}, \"login_required\": {}, \"user_pin_locked\": {}, \"so_pin_locked\": {}, "
                   "\"target\": {}}}\n",
                   json(label), json(serial), json(manufacturer), json(model), json_bool(initialized), json_bool(user_pin), json_bool(login),
                   json_bool(user_locked), json_bool(so_locked), where_json);
        return exit_ok;
    }
    std::string state = initialized ? "initialized" : "not initialized (run init)";
    if (initialized) state += user_pin ? ", user PIN set" : ", no user PIN";
    if (login) state += ", login required";
    if (user_locked) state += ", USER PIN LOCKED";
    if (so_locked) state += ", SO PIN LOCKED";
    fmt::print("token:   {}\nserial:  {}\nmaker:   {} {}\nstate:   {}\n{}\n", label.empty() ? "(no label)" : label, serial,
               manufacturer, model, state, where_text);
    return exit_ok;
}

template <class Tok>
int cmd_list(Tok& t, CK_ULONG s, Ctx& c) {
    std::optional<Error> err;
    std::vector<Object> all = objects(t, s, class_option(c.a), &err);
    if (err) return failure("cannot list the token's objects", *err);
    std::sort(all.begin(), all.end(), [](const Object& x, const Object& y) {
        return std::tie(x.label, x.cls) < std::tie(y.label, y.cls);
    });
    struct Cert {
        std::string subject, issuer, not_after;
    };
    auto cert_of = [&](const Object& o) -> std::optional<Cert> {
        std::vector<std::byte> der(16384);
        CK_ATTRIBUTE a{CKA_VALUE, der.data(), static_cast<CK_ULONG>(der.size())};
        if (!t.get_attributes(s, o.handle, std::span(&a, 1))) return std::nullopt;
        char subject[256] = "", issuer[256] = "", not_after[16] = "";
        if (!p11tls::detail::mbed::describe_certificate(std::span(der).first(a.ulValueLen), subject, issuer, not_after))
            return std::nullopt;
        return Cert{subject, issuer, not_after};
    };
    auto pem_of = [&](const Object& o) -> std::string {
        char pem[2048];
        auto n = pv::public_key_pem(t, s, o.handle, pem);
        return n ? std::string(pem, *n) : std::string();
    };
    if (c.json) {
        fmt::print("{{\"logged_in\": {}, \"objects\": [", json_bool(c.logged_in));
        const char* sep = "";
        for (const Object& o : all) {
            std::string f = fmt::format("\"class\": {}, \"label\": {}, \"id\": {}", json(class_json(o.cls)), json(o.label), json(o.id));
            if (o.cls == CKO_PRIVATE_KEY || o.cls == CKO_PUBLIC_KEY) {
                f += fmt::format(", \"key_type\": {}, \"bits\": {}", json(o.key_type == CKK_EC ? "EC" : o.key_type == CKK_RSA ? "RSA" : "?"), o.bits);
                if (o.local) f += fmt::format(", \"local\": {}", json_bool(*o.local));
            }
            if (o.sensitive) f += fmt::format(", \"sensitive\": {}", json_bool(*o.sensitive));
            if (o.extractable) f += fmt::format(", \"extractable\": {}", json_bool(*o.extractable));
            if (o.cls == CKO_PUBLIC_KEY)
                if (std::string pem = pem_of(o); !pem.empty()) f += fmt::format(", \"public_key_pem\": {}", json(pem));
            if (o.cls == CKO_CERTIFICATE)
                if (auto ce = cert_of(o))
                    f += fmt::format(", \"subject\": {}, \"issuer\": {}, \"not_after\": {}", json(ce->subject), json(ce->issuer),
                                     json(ce->not_after));
            fmt::print("{}\n  {{{}}}", sep, f);
            sep = ",";
        }
        fmt::print("{}]}}\n", all.empty() ? "" : "\n");
        return exit_ok;
    }
    if (all.empty()) fmt::print("no objects{}\n", c.logged_in ? "" : " visible without login (give --pin to see private keys)");
    for (const Object& o : all) {
        std::string detail;
        if (o.cls == CKO_PRIVATE_KEY) {
            detail = o.sensitive.value_or(false) ? "sensitive" : "NOT SENSITIVE";
            detail += o.extractable.value_or(true) ? ", EXTRACTABLE" : ", not extractable";
            if (o.local) detail += *o.local ? ", generated in the token" : ", imported";
        } else if (o.cls == CKO_CERTIFICATE) {
            if (auto ce = cert_of(o)) detail = fmt::format("{}; issuer {}; expires {}", ce->subject, ce->issuer, ce->not_after);
        }
        fmt::print("{:<12} {:<10} {:<22} id={:<6} {}\n", class_name(o.cls), key_name(o.key_type, o.bits),
                   fmt::format("'{}'", o.label), o.id.empty() ? "-" : o.id, detail);
    }
    if (!all.empty() && !c.logged_in) fmt::print("(not logged in: private objects are not shown; give --pin)\n");
    return exit_ok;
}

/// The one-line answer to Errc::object_exists for a key pair's labels.
template <class Tok>
int key_exists(Tok& t, CK_ULONG s, const std::string& what, const pv::KeyLabels& l) {
    std::string label = find_object(t, s, CKO_PRIVATE_KEY, l.private_label) ? std::string(l.private_label)
                                                                            : std::string(l.public_label);
    return failure(exit_exists, fmt::format("{}: a key labelled '{}' already exists (--replace replaces it)", what, label));
}

pv::KeyLabels key_labels(const Args& a, std::vector<std::byte>& id) {
    pv::KeyLabels l;
    if (a.has("--label")) l.private_label = a.opts.at("--label").back();
    if (a.has("--public-label")) l.public_label = a.opts.at("--public-label").back();
    if (a.has("--id")) id = hex_bytes("--id", a.get("--id"));
    l.id = id;
    l.existing = a.has("--replace") || a.has("--force") ? pv::Existing::replace : pv::Existing::refuse;
    if (l.private_label.empty() || l.public_label.empty()) usage_error("labels must not be empty");
    return l;
}

template <class Tok>
int cmd_keygen(Tok& t, CK_ULONG s, Ctx& c) {
    std::string type = c.a.get("--type", "ec-p256");
    pv::KeyType kt;
    if (type == "ec-p256") kt = pv::KeyType::ec_p256;
    else if (type == "ec-p384") kt = pv::KeyType::ec_p384;
    else if (type == "rsa-2048") kt = pv::KeyType::rsa_2048;
    else if (type == "rsa-3072") kt = pv::KeyType::rsa_3072;
    else usage_error(fmt::format("--type: '{}' is not ec-p256, ec-p384, rsa-2048 or rsa-3072", type));
    std::vector<std::byte> id;
    pv::KeyLabels l = key_labels(c.a, id);
    auto kp = pv::generate_key(t, s, kt, l);
    if (!kp) {
        if (kp.error().code == Errc::object_exists) return key_exists(t, s, "keygen", l);
        return failure(fmt::format("keygen in {}", c.target), kp.error());
    }
    char pem[2048];
    auto n = pv::public_key_pem(t, s, kp->public_key, pem);
    if (!n) return failure("keygen: the key was generated but its public key cannot be read", n.error());
    auto o = object_by_handle(t, s, kp->private_key);
    const std::string name = o ? key_name(o->key_type, o->bits) : type;
    if (c.json) {
        fmt::print("{{\"private_label\": {}, \"public_label\": {}, \"id\": {}, \"key_type\": {}, \"bits\": {}, "
                   "\"public_key_pem\": {}}}\n",
                   json(l.private_label), json(l.public_label), json(hex(id)),
                   json(o && o->key_type == CKK_RSA ? "RSA" : "EC"), o ? o->bits : 0, json(std::string_view(pem, *n)));
        return exit_ok;
    }
    fmt::print("generated {} key pair inside {}\n  private key '{}' (sensitive, never extractable)\n  public key  '{}'\n{}",
               name, c.target, l.private_label, l.public_label, std::string_view(pem, *n));
    return exit_ok;
}

template <class Tok>
int cmd_csr(Tok& t, CK_ULONG s, Ctx& c) {
    if (!c.a.has("--subject")) usage_error("csr: --subject is required");
    if (c.a.has("--der") && !c.a.has("--out")) usage_error("csr: --der needs --out FILE");
    const std::string subject = subject_of(c.a.get("--subject"));
    std::vector<std::string> dns_names = c.a.all("--dns");
    std::vector<std::string_view> dns(dns_names.begin(), dns_names.end());
    std::vector<pv::IpAddress> ips;
    for (const std::string& text : c.a.all("--ip")) {
        pv::IpAddress ip;
        if (::inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) ip.len = 4;
        else if (::inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) == 1) ip.len = 16;
        else usage_error(fmt::format("--ip: '{}' is not an IPv4 or IPv6 address", text));
        ips.push_back(ip);
    }
    std::vector<std::byte> id;
    if (c.a.has("--id")) id = hex_bytes("--id", c.a.get("--id"));
    pv::CsrOptions o;
    o.subject = subject;
    o.dns = dns;
    o.ips = ips;
    const std::string key_label = c.a.get("--key-label", std::string(pv::private_key_label));
    const std::string public_label = c.a.get("--public-label", std::string(pv::public_key_label));
    o.key = {key_label, id, public_label};
    o.encoding = c.a.has("--der") ? pv::Encoding::der : pv::Encoding::pem;
    std::vector<std::byte> out(8192);
    auto n = pv::write_csr(t, s, o, out);
    const std::string key_text = id.empty() ? fmt::format("'{}'", key_label) : fmt::format("with id {}", hex(id));
    if (!n) {
        Error e = n.error();
        switch (e.code) {
        case Errc::object_not_found:
            return failure(exit_not_found, fmt::format("csr: no private key {} in {}{}", key_text, c.target,
                                                       c.logged_in ? "" : " (not logged in)"));
        case Errc::object_ambiguous:
            return failure(exit_rejected, fmt::format("csr: several private keys {}; name one with --id", key_text));
        case Errc::invalid_argument:
            return failure(exit_rejected, fmt::format("csr: the subject '{}' or a --dns name is not valid", subject));
        case Errc::tls_key_cert_mismatch:
            return failure(exit_rejected, fmt::format("csr: the public key found for {} does not belong to it", key_text));
        default: return failure(fmt::format("csr: cannot sign the request with key {}", key_text), e);
        }
    }
    out.resize(*n);
    if (c.a.has("--out")) {
        std::string msg;
        if (!write_output(c.a.get("--out"), out, msg)) return failure(exit_failed, "csr: " + msg);
    }
    if (c.json) {
        // The key's public half: the request's own, as the token holds it.
        std::string pub;
        for (const Object& k : objects(t, s, CKO_PRIVATE_KEY)) {
            if (id.empty() ? k.label != key_label : k.id != hex(id)) continue;
            char pem[2048];
            if (auto m = pv::public_key_pem(t, s, k.handle, pem, public_label)) pub.assign(pem, *m);
            break;
        }
        std::string fields = fmt::format("\"subject\": {}, \"key_label\": {}, \"out\": {}", json(subject), json(key_label),
                                         c.a.has("--out") ? json(c.a.get("--out")) : "null");
        if (o.encoding == pv::Encoding::pem)
            fields += fmt::format(", \"csr_pem\": {}", json(std::string_view(reinterpret_cast<const char*>(out.data()), out.size())));
        fmt::print("{{{}, \"public_key_pem\": {}}}\n", fields, json(pub));
    } else if (c.a.has("--out")) {
        fmt::print("wrote a certificate request for key {} ({}) to {}\n", key_text, subject, c.a.get("--out"));
    } else {
        std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return exit_ok;
}

template <class Tok>
int cmd_import_cert(Tok& t, CK_ULONG s, Ctx& c, std::span<const std::byte> data) {
    pv::CertOptions o;
    const std::string label = c.a.get("--label", std::string(pv::certificate_label));
    const std::string key_label = c.a.get("--key-label", std::string(pv::private_key_label));
    const std::string public_label = c.a.get("--public-label", std::string(pv::public_key_label));
    std::vector<std::byte> id;
    if (c.a.has("--id")) id = hex_bytes("--id", c.a.get("--id"));
    o.label = label;
    o.key = {key_label, id, public_label};
    o.existing = c.a.has("--replace") || c.a.has("--force") ? pv::Existing::replace : pv::Existing::refuse;
    const std::string key_text = id.empty() ? fmt::format("'{}'", key_label) : fmt::format("with id {}", hex(id));
    const bool key_present = id.empty() ? find_object(t, s, CKO_PRIVATE_KEY, key_label).has_value() : true;
    auto n = pv::import_certificate(t, s, data, o);
    if (!n) {
        switch (n.error().code) {
        case Errc::bad_encoding:
            return failure(exit_rejected, fmt::format("import-cert: {} holds no readable certificate: {}", c.a.file, reason(n.error())));
        case Errc::tls_key_cert_mismatch:
            return failure(exit_rejected, fmt::format("import-cert: the certificate in {} is not for the private key {} in the token",
                                                      c.a.file, key_text));
        case Errc::object_exists:
            return failure(exit_exists, fmt::format("import-cert: a certificate labelled '{}' already exists (--replace replaces it)", label));
        case Errc::object_ambiguous:
            return failure(exit_rejected, fmt::format("import-cert: several private keys {}; name one with --id", key_text));
        default: return failure(fmt::format("import-cert: cannot store {}", c.a.file), n.error());
        }
    }
    fmt::print("stored {} certificate{} as '{}'{}\n", *n, *n == 1 ? "" : "s", label,
               key_present ? fmt::format(" (matches private key {})", key_text)
                           : fmt::format(" (no private key {} in the token to check it against)", key_text));
    return exit_ok;
}

template <class Tok>
int cmd_import_key(Tok& t, CK_ULONG s, Ctx& c, std::span<const std::byte> data) {
    std::vector<std::byte> id;
    pv::KeyLabels l = key_labels(c.a, id);
    auto kp = pv::import_private_key(t, s, data, l);
    if (!kp) {
        switch (kp.error().code) {
        case Errc::bad_encoding:
            return failure(exit_rejected, fmt::format("import-key: {} holds no readable private key (PEM or DER; PKCS#8, "
                                                      "SEC1 or PKCS#1): {}", c.a.file, reason(kp.error())));
        case Errc::unsupported_key:
            return failure(exit_rejected, fmt::format("import-key: the key in {}: {}", c.a.file, reason(kp.error())));
        case Errc::object_exists: return key_exists(t, s, "import-key", l);
        default: return failure(fmt::format("import-key: cannot store the key from {}", c.a.file), kp.error());
        }
    }
    auto o = object_by_handle(t, s, kp->private_key);
    fmt::print("stored {} private key as '{}' (sensitive, never extractable) and its public key as '{}'\n",
               o ? key_name(o->key_type, o->bits) : "the", l.private_label, l.public_label);
    return exit_ok;
}

template <class Tok>
int cmd_import_root(Tok& t, CK_ULONG s, Ctx& c, std::span<const std::byte> data) {
    pv::RootOptions o;
    const std::string label = c.a.get("--label", std::string(pv::root_label));
    o.label = label;
    o.existing = c.a.has("--replace") || c.a.has("--force") ? pv::Existing::replace : pv::Existing::refuse;
    auto n = pv::import_root(t, s, data, o);
    if (!n) {
        switch (n.error().code) {
        case Errc::bad_encoding:
            return failure(exit_rejected, fmt::format("import-root: {} holds no readable certificate: {}", c.a.file, reason(n.error())));
        case Errc::not_a_ca:
            return failure(exit_rejected, fmt::format("import-root: certificate {} in {} is not a CA certificate (no "
                                                      "basicConstraints CA:TRUE); nothing was stored",
                                                      n.error().native + 1, c.a.file));
        case Errc::object_exists:
            return failure(exit_exists, fmt::format("import-root: a certificate labelled '{}' already exists (--replace replaces it)", label));
        default: return failure(fmt::format("import-root: cannot store {}", c.a.file), n.error());
        }
    }
    fmt::print("stored {} root CA certificate{} as '{}'\n", *n, *n == 1 ? "" : "s", label);
    return exit_ok;
}

template <class Tok>
int cmd_delete(Tok& t, CK_ULONG s, Ctx& c) {
    if (!c.a.has("--label") && !c.a.has("--id")) usage_error("delete: give --label and/or --id");
    std::vector<std::byte> id;
    if (c.a.has("--id")) id = hex_bytes("--id", c.a.get("--id"));
    const std::string label = c.a.get("--label");
    pv::Selector sel{class_option(c.a), label, id};
    std::string what = label.empty() ? fmt::format("with id {}", hex(id)) : fmt::format("labelled '{}'", label);
    if (!label.empty() && !id.empty()) what += fmt::format(" and id {}", hex(id));
    const std::string kind = sel.cls ? class_name(*sel.cls) + " " : "";
    auto n = pv::destroy_objects(t, s, sel);
    if (!n) {
        if (n.error().code == Errc::object_not_found)
            return failure(exit_not_found, fmt::format("delete: no {}objects {} in {}{}", kind, what, c.target,
                                                       c.logged_in ? "" : " (not logged in)"));
        return failure(fmt::format("delete: cannot destroy {}objects {}", kind, what), n.error());
    }
    fmt::print("destroyed {} {}{} {}\n", *n, kind, *n == 1 ? "object" : "objects", what);
    return exit_ok;
}

/// Runs the command on an open token: a R/W session, login when a PIN is known.
template <class Tok>
int run(Tok& t, Ctx& c, const std::string& where_json, const std::string& where_text) {
    const Command& cmd = *c.a.cmd;
    if (cmd.name == "info") return cmd_info(t, c, where_json, where_text);
    // A token in FreeRTOS mode (no CKF_LOGIN_REQUIRED, e.g. a board image) is used without a
    // login, which would write the PIN's failure counter to the store twice.
    const bool login_required = token_info(t).flags & CKF_LOGIN_REQUIRED;
    const std::string pin = login_required ? secret(c.a, "--pin", "P11TLS_PIN") : std::string();
    if (pin.empty() && cmd.needs_pin && login_required)
        return failure(exit_login, fmt::format("{} changes the token and needs the user PIN: give --pin PIN or set P11TLS_PIN", cmd.name));
    auto s = t.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    if (!s) return failure(fmt::format("cannot open a session with {}", c.target), s.error());
    c.logged_in = !login_required;
    if (!pin.empty()) {
        if (auto r = t.login(*s, CKU_USER, {pin.data(), pin.size()}); !r) {
            std::string why;
            switch (r.error().code) {
            case Errc::pin_incorrect: why = "wrong user PIN"; break;
            case Errc::pin_locked: why = "the user PIN is locked after too many wrong PINs"; break;
            case Errc::token_not_initialized:
            case Errc::user_pin_not_initialized: why = "the token is not initialized; run 'p11tls-provision init' first"; break;
            default: why = reason(r.error());
            }
            (void)t.close_session(*s);
            return failure(exit_code(r.error().code) == exit_failed ? exit_login : exit_code(r.error().code),
                           fmt::format("login to {} failed: {}", c.target, why));
        }
        c.logged_in = true;
    }
    int rc;
    if (cmd.takes_file) {
        int code = exit_failed;
        std::string msg;
        auto data = read_input(c.a.file, code, msg);
        if (!data) {
            (void)t.close_session(*s);
            return failure(code, fmt::format("{}: {}", cmd.name, msg));
        }
        if (cmd.name == "import-cert") rc = cmd_import_cert(t, *s, c, *data);
        else if (cmd.name == "import-key") rc = cmd_import_key(t, *s, c, *data);
        else rc = cmd_import_root(t, *s, c, *data);
        mbedtls_platform_zeroize(data->data(), data->size());  // a key file's bytes
    } else if (cmd.name == "list") {
        rc = cmd_list(t, *s, c);
    } else if (cmd.name == "keygen") {
        rc = cmd_keygen(t, *s, c);
    } else if (cmd.name == "csr") {
        rc = cmd_csr(t, *s, c);
    } else {
        rc = cmd_delete(t, *s, c);
    }
    (void)t.close_session(*s);
    return rc;
}

// --- init -------------------------------------------------------------------------------------

struct InitArgs {
    std::string label, so_pin, pin;
    std::array<char, 32> padded;
};

InitArgs init_args(const Args& a) {
    InitArgs i;
    i.label = a.get("--label");
    i.so_pin = secret(a, "--so-pin", "P11TLS_SO_PIN");
    i.pin = secret(a, "--pin", "P11TLS_PIN");
    if (i.label.empty()) usage_error("init: --label is required (the token label)");
    if (i.label.size() > 32) usage_error("init: --label: at most 32 characters");
    if (i.so_pin.empty()) usage_error("init: --so-pin is required (or set P11TLS_SO_PIN)");
    if (i.pin.empty()) usage_error("init: --pin is required: the new user PIN (or set P11TLS_PIN)");
    i.padded.fill(' ');
    std::memcpy(i.padded.data(), i.label.data(), i.label.size());
    return i;
}

int init_error(const std::string& target, const char* step, Error e) {
    if (e.code == Errc::pin_incorrect)
        return failure(exit_login, fmt::format("init: {}: wrong SO PIN (re-initializing needs the current SO PIN)", target));
    if (e.code == Errc::pin_len_range)
        return failure(exit_usage, fmt::format("init: {}: PIN length out of range (4 to 64 characters for the host token)", target));
    return failure(fmt::format("init: {}: {}", target, step), e);
}

/// init on a SoftToken (the host store or a board image).
template <class Tok>
int init_soft(Tok& t, const std::string& target, const Args& a) {
    InitArgs i = init_args(a);
    CK_TOKEN_INFO info = token_info(t);
    if ((info.flags & CKF_TOKEN_INITIALIZED) && !a.has("--force"))
        return failure(exit_exists, fmt::format("init: {} is initialized already (label '{}'); --force re-initializes it "
                                                "and destroys every object",
                                                target, trimmed(info.label, sizeof info.label)));
    if (auto r = t.init_token({i.so_pin.data(), i.so_pin.size()}, i.padded); !r)
        return init_error(target, "cannot initialize", r.error());
    auto s = t.open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    if (!s) return init_error(target, "cannot open a session", s.error());
    auto r = t.login(*s, CKU_SO, {i.so_pin.data(), i.so_pin.size()});
    if (r) r = t.init_pin(*s, {i.pin.data(), i.pin.size()});
    (void)t.close_session(*s);
    if (!r) return init_error(target, "cannot set the user PIN", r.error());
    fmt::print("initialized {}: label '{}', SO PIN and user PIN set\n", target, i.label);
    return exit_ok;
}

int init_store(const StoreTarget& tg, const Args& a) {
    (void)init_args(a);
    auto token = p11tls::board::open_token(tg.dir);
    if (!token) return failure(fmt::format("init: cannot open or create the store {}", tg.dir), token.error());
    return init_soft(**token, describe_target(tg), a);
}

Error ck_error(CK_RV rv) { return {p11tls::cryptoki::from_ckr(rv), static_cast<std::int32_t>(rv)}; }

int init_module(const ModuleTarget& tg, const Args& a) {
    InitArgs i = init_args(a);
    {
        auto m = p11tls::ModuleToken::open(tg.path.c_str(), tg.token_label);
        if (!m) return failure(exit_code(m.error().code) == exit_failed ? exit_not_found : exit_code(m.error().code),
                               fmt::format("init: cannot use {}: {}", describe_target(tg), reason(m.error())));
        CK_TOKEN_INFO info = token_info(**m);
        if ((info.flags & CKF_TOKEN_INITIALIZED) && !a.has("--force"))
            return failure(exit_exists, fmt::format("init: {} is initialized already (label '{}'); --force re-initializes it",
                                                    describe_target(tg), trimmed(info.label, sizeof info.label)));
        auto* so = reinterpret_cast<CK_UTF8CHAR_PTR>(i.so_pin.data());
        if (CK_RV rv = (*m)->functions()->C_InitToken((*m)->slot(), so, i.so_pin.size(),
                                                      reinterpret_cast<CK_UTF8CHAR_PTR>(i.padded.data()));
            rv != CKR_OK)
            return init_error(describe_target(tg), "C_InitToken failed", ck_error(rv));
    }
    // Modules such as SoftHSMv2 move an initialized token to a new slot: find it by its label.
    ModuleTarget now{tg.path, i.label};
    auto m = p11tls::ModuleToken::open(tg.path.c_str(), i.label);
    if (!m) return failure(fmt::format("init: the token was initialized but {} cannot be opened", describe_target(now)), m.error());
    auto s = (*m)->open_session(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    if (!s) return init_error(describe_target(now), "cannot open a session", s.error());
    auto r = (*m)->login(*s, CKU_SO, {i.so_pin.data(), i.so_pin.size()});
    if (r) {
        CK_RV rv = (*m)->functions()->C_InitPIN(*s, reinterpret_cast<CK_UTF8CHAR_PTR>(i.pin.data()), i.pin.size());
        if (rv != CKR_OK) r = p11tls::fail(ck_error(rv));
    }
    (void)(*m)->close_session(*s);
    if (!r) return init_error(describe_target(now), "cannot set the user PIN", r.error());
    fmt::print("initialized {}: label '{}', SO PIN and user PIN set\n", describe_target(tg), i.label);
    return exit_ok;
}

// --- targets ----------------------------------------------------------------------------------

/// Holds an advisory lock on a file for this process's use of it.
struct FileLock {
    int fd = -1;
    ~FileLock() {
        if (fd >= 0) ::close(fd);
    }
};

template <class Board>
int with_board_image(const ImageTarget& tg, const Args& a) {
    using Part = typename Board::Part;
    const bool init = a.cmd->name == "init";
    struct stat st;
    if (!init && ::stat(tg.path.c_str(), &st) != 0)
        return failure(exit_not_found, fmt::format("no flash image {} ('p11tls-provision init --image {}' creates one)", tg.path, tg.path));
    FileLock lock;
    lock.fd = ::open(tg.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock.fd < 0) return failure(exit_failed, fmt::format("cannot open {}: {}", tg.path, std::strerror(errno)));
    if (::flock(lock.fd, LOCK_EX | LOCK_NB) != 0)
        return failure(exit_failed, fmt::format("the image {} is in use by another process", tg.path));
    if (::fstat(lock.fd, &st) == 0 && st.st_size != 0 && static_cast<std::size_t>(st.st_size) != Part::size)
        return failure(exit_rejected, fmt::format("{} is {} bytes, not a {} flash image ({} bytes)", tg.path, st.st_size,
                                                  Board::name, Part::size));
    auto dev = p11tls::ImageFlash<Part>::open(tg.path);
    if (!dev) return failure(fmt::format("cannot open the flash image {}", tg.path), dev.error());
    auto nvm = Board::Nvm::mount(std::move(*dev));
    if (!nvm) return failure(fmt::format("cannot mount the token store in {}", tg.path), nvm.error());
    // Keys made for the image come from the host's entropy source, not the board's.
    using Token = p11tls::SoftToken<typename Board::Nvm, p11tls::board::Entropy, typename Board::TokenConfig>;
    auto token = std::make_unique<Token>(std::move(*nvm), p11tls::board::Entropy{});
    if (auto r = token->load(); !r) return failure(fmt::format("cannot load the token in {}", tg.path), r.error());
    if (init) return init_soft(*token, describe_target(tg), a);
    Ctx c{a, describe_target(tg)};
    c.json = a.has("--json");
    std::string where_json = fmt::format("{{\"kind\": \"image\", \"path\": {}, \"board\": {}, \"bytes\": {}}}", json(tg.path),
                                         json(Board::name), Part::size);
    std::string where_text = fmt::format("image:   {} ({} flash, {} KiB)", tg.path, Board::name, Part::size / 1024);
    return run(*token, c, where_json, where_text);
}

int with_image(const ImageTarget& tg, const Args& a) {
    if (tg.board == image_boards::Mps2An386::name) return with_board_image<image_boards::Mps2An386>(tg, a);
    usage_error(fmt::format("--board: no flash image layout for '{}' (known: {})", tg.board, image_boards::Mps2An386::name));
}

bool is_directory(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int with_store(const StoreTarget& tg, const Args& a) {
    if (a.cmd->name == "init") return init_store(tg, a);
    // Only init creates a store: a mistyped --store must not leave an empty token behind.
    if (!is_directory(tg.dir))
        return failure(exit_not_found, fmt::format("no token store at {} ('p11tls-provision init --store {}' creates one)", tg.dir, tg.dir));
    auto token = p11tls::board::open_token(tg.dir);
    if (!token) {
        Error e = token.error();
        if (e.code == Errc::nvm_io && (e.native == EWOULDBLOCK || e.native == EAGAIN))
            return failure(exit_failed, fmt::format("the store {} is in use by another process", tg.dir));
        return failure(fmt::format("cannot open the token in {}", tg.dir), e);
    }
    p11tls::board::Token& t = **token;
    const auto& nvm = t.nvm();
    Ctx c{a, describe_target(tg)};
    c.json = a.has("--json");
    std::string where_json = fmt::format("{{\"kind\": \"store\", \"path\": {}, \"used\": {}, \"capacity\": {}}}", json(tg.dir),
                                         nvm.used(), nvm.capacity());
    std::string where_text = fmt::format("store:   {} ({} of {} bytes used)", tg.dir, nvm.used(), nvm.capacity());
    return run(t, c, where_json, where_text);
}

int with_module(const ModuleTarget& tg, const Args& a) {
    if (a.cmd->name == "init") return init_module(tg, a);
    if (::access(tg.path.c_str(), F_OK) != 0)
        return failure(exit_not_found, fmt::format("PKCS#11 module {} not found", tg.path));
    auto m = p11tls::ModuleToken::open(tg.path.c_str(), tg.token_label);
    if (!m) {
        Error e = m.error();
        if (e.code == Errc::not_supported)
            return failure(exit_failed, fmt::format("{} is not a loadable PKCS#11 module", tg.path));
        if (e.code == Errc::slot_invalid)
            return failure(exit_not_found, tg.token_label.empty()
                                               ? fmt::format("{} has no token", tg.path)
                                               : fmt::format("{} has no token labelled '{}'", tg.path, tg.token_label));
        return failure(fmt::format("cannot use {}", tg.path), e);
    }
    Ctx c{a, describe_target(tg)};
    c.json = a.has("--json");
    std::string where_json = fmt::format("{{\"kind\": \"module\", \"path\": {}, \"slot\": {}}}", json(tg.path), (*m)->slot());
    std::string where_text = fmt::format("module:  {} (slot {})", tg.path, (*m)->slot());
    return run(**m, c, where_json, where_text);
}

}  // namespace

/// What can be checked before the token is opened: every usage error exits here, with 2.
void check_usage(const Args& a) {
    const std::string_view cmd = a.cmd->name;
    if (a.has("--id")) (void)hex_bytes("--id", a.get("--id"));
    if (a.has("--type")) {
        if (cmd == "keygen") {
            std::string t = a.get("--type");
            if (t != "ec-p256" && t != "ec-p384" && t != "rsa-2048" && t != "rsa-3072")
                usage_error(fmt::format("--type: '{}' is not ec-p256, ec-p384, rsa-2048 or rsa-3072", t));
        } else {
            (void)class_option(a);
        }
    }
    for (const char* o : {"--label", "--public-label", "--key-label"})
        if (a.has(o) && a.get(o).empty()) usage_error(fmt::format("{}: a label must not be empty", o));
    if (cmd == "csr") {
        if (!a.has("--subject")) usage_error("csr: --subject is required");
        if (a.has("--der") && !a.has("--out")) usage_error("csr: --der needs --out FILE");
        for (const std::string& text : a.all("--ip")) {
            std::array<unsigned char, 16> buf;
            if (::inet_pton(AF_INET, text.c_str(), buf.data()) != 1 && ::inet_pton(AF_INET6, text.c_str(), buf.data()) != 1)
                usage_error(fmt::format("--ip: '{}' is not an IPv4 or IPv6 address", text));
        }
    }
    if (cmd == "delete" && !a.has("--label") && !a.has("--id")) usage_error("delete: give --label and/or --id");
    if (cmd == "init") (void)init_args(a);
}

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    check_usage(a);
    if (a.has("--image")) return with_image({a.get("--image"), a.get("--board", image_boards::Mps2An386::name)}, a);
    if (a.has("--module")) return with_module({a.get("--module"), a.get("--token-label")}, a);
    return with_store({a.get("--store", p11tls::board::store_directory())}, a);
}
