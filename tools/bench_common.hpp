// SPDX-License-Identifier: MIT
#pragma once
// What the host benchmarks share: failure handling and the scratch directory, interleaved
// batch timing with medians, name=value printing, the plain-mbedTLS side's DRBG and keys, and
// the report of the build and machine the figures come from.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <sys/statfs.h>
#include <unistd.h>

#include <fmt/core.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/version.h>

#include <p11tls/board.hpp>

#include "bench_build.h"

namespace p11tls::bench {

using Clock = std::chrono::steady_clock;

// --- failure handling and the scratch directory ---------------------------------------------

inline std::string_view program = "p11tls-bench";  // prefix of failure messages; main sets it
inline std::string scratch_dir;  // mkdtemp directory: token stores and plain-side files

inline void remove_scratch() {
    if (scratch_dir.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(scratch_dir, ec);
    scratch_dir.clear();
}

[[noreturn]] inline void die(std::string_view what) {
    fmt::print(stderr, "{}: {}\n", program, what);
    std::exit(1);  // runs remove_scratch (atexit)
}

inline void mb(int ret, const char* what) {
    if (ret != 0) [[unlikely]] {
        char buf[160];
        mbedtls_strerror(ret, buf, sizeof buf);
        die(fmt::format("{} failed: mbedTLS -0x{:04x} ({})", what, -ret, buf));
    }
}

// Keeps the compiler from dropping or hoisting work whose result is otherwise unused.
inline void escape(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

// --- command line ---------------------------------------------------------------------------

/// The options the host benchmarks share: `--quick`, `--only NAME` (one of `benchmarks`),
/// `--dir PARENT` (when `with_dir`), `--help`.
struct Args {
    bool quick = false;
    std::string only;    // empty: every benchmark
    std::string parent;  // --dir, else $TMPDIR, else /tmp
    [[nodiscard]] bool want(std::string_view name) const { return only.empty() || only == name; }
};

/// Parses argv into `args`. `extra(i)` may consume argv[i] (and its value, advancing `i`) for
/// a program's own options and says whether it did. Returns the exit status when the program
/// should stop (0 after --help, 2 after a bad argument, with `usage` printed), else -1.
inline int parse_args(int argc, char** argv, Args& args, void (*usage)(std::FILE*),
                      std::initializer_list<std::string_view> benchmarks, bool with_dir,
                      const std::function<bool(int&)>& extra = {}) {
    if (const char* t = std::getenv("TMPDIR"); t && *t) args.parent = t;
    else args.parent = "/tmp";
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--quick") {
            args.quick = true;
        } else if (with_dir && a == "--dir" && i + 1 < argc) {
            args.parent = argv[++i];
        } else if (benchmarks.size() > 0 && a == "--only" && i + 1 < argc) {
            args.only = argv[++i];
            if (std::find(benchmarks.begin(), benchmarks.end(), args.only) == benchmarks.end()) {
                usage(stderr);
                return 2;
            }
        } else if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else if (!extra || !extra(i)) {
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/// Creates the scratch directory under `parent` (removed at exit) and returns it.
inline const std::string& make_scratch(const std::string& parent) {
    std::string templ = parent + "/p11tls-bench-XXXXXX";
    if (!::mkdtemp(templ.data())) die(fmt::format("cannot create a scratch directory under {}", parent));
    scratch_dir = templ;
    std::atexit(remove_scratch);
    return scratch_dir;
}

// --- timing ---------------------------------------------------------------------------------

struct Plan {
    int warmup;     // operations before measuring
    int batches;    // figure = median over batches
    int per_batch;  // operations per batch
};

inline double to_us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// An operation either returns nothing (the whole batch is timed) or the Clock::duration of its
// own timed part, so setup and cleanup (destroying a generated key) stay out of the figure.
template <class Op>
double batch_us(Op& op, int n) {
    if constexpr (std::is_void_v<std::invoke_result_t<Op&>>) {
        const auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) op();
        return to_us(Clock::now() - t0) / n;
    } else {
        Clock::duration total{};
        for (int i = 0; i < n; ++i) total += op();
        return to_us(total) / n;
    }
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

using Batch = std::function<double(int)>;  // runs n operations, returns microseconds per op

template <class Op>
Batch batch(Op& op) {
    return [&op](int n) { return batch_us(op, n); };
}

// Runs the operations' batches interleaved, starting with a different one each round so drift
// in clock speed or cache state hits all alike; returns each one's batch times.
inline std::vector<std::vector<double>> measure_batches(const Plan& p, const std::vector<Batch>& ops) {
    if (p.warmup > 0)
        for (const Batch& b : ops) (void)b(p.warmup);
    std::vector<std::vector<double>> t(ops.size());
    for (int k = 0; k < p.batches; ++k)
        for (std::size_t j = 0; j < ops.size(); ++j) {
            const std::size_t i = (j + static_cast<std::size_t>(k)) % ops.size();
            t[i].push_back(ops[i](p.per_batch));
        }
    return t;
}

// Each operation's median batch time.
inline std::vector<double> measure(const Plan& p, const std::vector<Batch>& ops) {
    std::vector<double> med;
    for (auto& v : measure_batches(p, ops)) med.push_back(median(std::move(v)));
    return med;
}

// Interquartile range of the samples as a percentage of their median.
inline double iqr_pct(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
    return (at(0.75) - at(0.25)) / median(v) * 100;
}

inline void print_us(std::string_view name, double us) { fmt::print("{}={:.2f}\n", name, us); }
inline void print_ratio(std::string_view name, double r) { fmt::print("{}={:.3f}\n", name, r); }
inline void print_plan(std::string_view name, const Plan& p) {
    fmt::print("{}_plan={} warmup, median of {} batches x {}\n", name, p.warmup, p.batches, p.per_batch);
}

// --- plain mbedTLS helpers ------------------------------------------------------------------

// The plain side's random generator: CTR_DRBG over mbedTLS's default entropy sources, the
// same construction the token uses over its Entropy policy.
struct PlainDrbg {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context ctx;
    PlainDrbg() {
        mbedtls_entropy_init(&entropy);
        mbedtls_ctr_drbg_init(&ctx);
        static constexpr unsigned char personal[] = "p11tls-bench plain";
        mb(mbedtls_ctr_drbg_seed(&ctx, mbedtls_entropy_func, &entropy, personal, sizeof personal), "ctr_drbg_seed");
    }
    ~PlainDrbg() {
        mbedtls_ctr_drbg_free(&ctx);
        mbedtls_entropy_free(&entropy);
    }
    PlainDrbg(const PlainDrbg&) = delete;
    PlainDrbg& operator=(const PlainDrbg&) = delete;
};

struct Pk {
    mbedtls_pk_context pk;
    Pk() { mbedtls_pk_init(&pk); }
    ~Pk() { mbedtls_pk_free(&pk); }
    Pk(const Pk&) = delete;
    Pk& operator=(const Pk&) = delete;
    mbedtls_ecp_keypair& ec() { return *mbedtls_pk_ec(pk); }
};

// A P-256 key in a pk context: from a scalar, or fresh when `d` is empty. MBEDTLS_PK_ECKEY is
// what mbedtls_pk_parse_key gives; MBEDTLS_PK_ECDSA signs on its own group instead of a copy.
inline void load_ec_key(Pk& key, std::span<const unsigned char> d, PlainDrbg& rng,
                        mbedtls_pk_type_t type = MBEDTLS_PK_ECKEY) {
    mb(mbedtls_pk_setup(&key.pk, mbedtls_pk_info_from_type(type)), "pk_setup");
    if (d.empty()) {
        mb(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, &key.ec(), mbedtls_ctr_drbg_random, &rng.ctx), "ecp_gen_key");
        return;
    }
    auto& kp = key.ec();
    mb(mbedtls_ecp_group_load(&kp.grp, MBEDTLS_ECP_DP_SECP256R1), "ecp_group_load");
    mb(mbedtls_mpi_read_binary(&kp.d, d.data(), d.size()), "mpi_read_binary");
    mb(mbedtls_ecp_mul(&kp.grp, &kp.Q, &kp.d, &kp.grp.G, mbedtls_ctr_drbg_random, &rng.ctx), "ecp_mul");
}

// --- configuration report -------------------------------------------------------------------

inline std::string fs_type(const std::string& path) {
    struct statfs st {};
    if (::statfs(path.c_str(), &st) != 0) return "unknown";
    switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    default: return fmt::format("0x{:x}", static_cast<unsigned long>(st.f_type));
    }
}

// The 1-minute load average: other work on the machine skews wall-clock figures.
inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string first;
    return in >> first ? first : "unknown";
}

inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0) {
            auto p = line.find(':');
            return p == std::string::npos ? line : line.substr(p + 2);
        }
    return "unknown";
}

// The bench_* lines every benchmark starts with: board, mode, build, mbedTLS, machine, load.
inline void print_build_config(bool quick) {
    char mbed[32];
    mbedtls_version_get_string(mbed);
    fmt::print("bench_board={}\n", p11tls::board::name);
    fmt::print("bench_mode={}\n", quick ? "quick" : "normal");
    fmt::print("bench_build={}\n", P11TLS_BENCH_BUILDTYPE);
    fmt::print("bench_cxx={} {}\n", P11TLS_BENCH_CXX_ID, __VERSION__);
    fmt::print("bench_cxxflags={}\n", P11TLS_BENCH_CXXFLAGS);
#ifdef __OPTIMIZE__
    fmt::print("bench_optimized=1\n");
#else
    fmt::print("bench_optimized=0\n");
#endif
#ifdef P11TLS_NO_ASSERT
    fmt::print("bench_assertions=0\n");
#else
    fmt::print("bench_assertions=1\n");
#endif
    fmt::print("bench_mbedtls={} (system library)\n", mbed);
    fmt::print("bench_cpu={}\n", cpu_model());
    fmt::print("bench_cpus_online={}\n", ::sysconf(_SC_NPROCESSORS_ONLN));
    fmt::print("bench_loadavg_start={}\n", load_average());
}

}  // namespace p11tls::bench
