# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by the integration scripts (sourced, not run). Each script is called by Meson as
#   bash SCRIPT /path/to/libp11tls-pkcs11.so
# and gets: $MODULE (absolute path), $WORK (a fresh temp dir removed on exit), a fresh token
# store in $P11TLS_STORE, and the helpers below. Every external command runs under `timeout`.
set -euo pipefail

# Seconds allowed for one external command; RSA key generation gets the long one.
T_CMD=${T_CMD:-30}
T_LONG=${T_LONG:-90}

SO_PIN=12345678
USER_PIN=1234
TOKEN_LABEL="p11tls integration"

_SCRIPT=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
_BG_PIDS=()
_BG_FDS=()

say() { printf '[%s] %s\n' "$_SCRIPT" "$*"; }
step() { printf '\n[%s] === %s\n' "$_SCRIPT" "$*"; }

die() {
    printf '[%s] FAIL: %s\n' "$_SCRIPT" "$*" >&2
    exit 1
}

_cleanup() {
    local rc=$? pid fd
    for pid in "${_BG_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            { kill "$pid" && wait "$pid"; } 2>/dev/null || true
        fi
    done
    for fd in "${_BG_FDS[@]}"; do
        eval "exec ${fd}>&-" 2>/dev/null || true
    done
    [[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK"
    if ((rc == 0)); then say "PASS"; else say "FAILED (exit $rc)"; fi
    exit "$rc"
}

MODULE=${1:-}
[[ -n $MODULE ]] || die "usage: bash $_SCRIPT.sh /path/to/libp11tls-pkcs11.so"
[[ -f $MODULE ]] || die "PKCS#11 module not found: $MODULE (build it: ninja -C build)"
MODULE=$(realpath "$MODULE")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p11tls-$_SCRIPT.XXXXXX")
trap _cleanup EXIT
trap 'exit 130' INT TERM
export P11TLS_STORE=$WORK/store
mkdir -p "$P11TLS_STORE"
cd "$WORK"

# require PROGRAM PACKAGE: a missing peer is a failure, never a silent skip.
require() {
    command -v "$1" >/dev/null 2>&1 ||
        die "required program '$1' is not installed (Debian package '$2'); the setup script installs it"
}
require timeout coreutils
require python3 python3

# run [-t SECONDS] CMD...: runs CMD under timeout; its stdout+stderr end up in $OUT (and are
# echoed). Returns CMD's exit status, so callers decide what a failure means.
OUT=
RC=0
run() {
    local t=$T_CMD
    if [[ $1 == -t ]]; then t=$2; shift 2; fi
    say "\$ $*"
    local log=$WORK/.last-output start=$EPOCHREALTIME
    set +e
    timeout "$t" "$@" >"$log" 2>&1
    RC=$?
    set -e
    OUT=$(cat "$log")
    [[ -n $OUT ]] && printf '%s\n' "$OUT" | sed 's/^/    | /'
    if ((RC == 124)); then say "(timed out after ${t}s)"; fi
    _elapsed "$start"
    return "$RC"
}

# Reports commands slower than a second, to keep the suite's time in view.
_elapsed() {
    local ms=$(((${EPOCHREALTIME/./} - ${1/./}) / 1000))
    ((ms < 1000)) || say "(took $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s)"
}

# ok [-t SECONDS] CMD...: CMD must succeed.
ok() {
    run "$@" || die "command failed (exit $RC): $*"
}

# fails [-t SECONDS] CMD...: CMD must exit non-zero by itself (a timeout or a crash is not
# the refusal we are looking for).
fails() {
    if run "$@"; then die "command succeeded but must fail: $*"; fi
    ((RC != 124)) || die "command timed out instead of failing: $*"
    ((RC < 128)) || die "command died from signal $((RC - 128)) instead of failing cleanly: $*"
    say "(failed as expected, exit $RC)"
}

# assert_contains TEXT NEEDLE [WHAT]: fixed-string search.
assert_contains() {
    grep -qF -- "$2" <<<"$1" || die "${3:-output} does not contain '$2'; it was:
$1"
}
assert_not_contains() {
    if grep -qF -- "$2" <<<"$1"; then die "${3:-output} must not contain '$2'; it was:
$1"; fi
}
# assert_matches TEXT ERE [WHAT]
assert_matches() {
    grep -qE -- "$2" <<<"$1" || die "${3:-output} does not match /$2/; it was:
$1"
}
# assert_count TEXT NEEDLE N [WHAT]: NEEDLE occurs on exactly N lines.
assert_count() {
    local n
    n=$(grep -cF -- "$2" <<<"$1" || true)
    [[ $n == "$3" ]] || die "${4:-output} has $n lines with '$2', expected $3; it was:
$1"
}
assert_file() {
    [[ -s $1 ]] || die "${2:-file} '$1' is missing or empty"
}
assert_no_file() {
    [[ ! -s $1 ]] || die "${2:-file} '$1' must not have been written"
}

# free_port: an unused TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
    timeout 10 python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_server NAME LOG CMD...: runs CMD in the background under timeout with its output in
# LOG and its stdin on a FIFO this shell keeps open (servers such as s_server quit on stdin
# EOF). Sets SERVER_PID; the EXIT trap kills whatever is still running.
SERVER_PID=
start_server() {
    local name=$1 log=$2
    shift 2
    local fifo=$WORK/.$name.stdin fd
    rm -f "$fifo"
    mkfifo "$fifo"
    exec {fd}<>"$fifo"
    _BG_FDS+=("$fd")
    say "\$ $* &   (log: $log)"
    timeout "$T_LONG" "$@" <&"$fd" >"$log" 2>&1 &
    SERVER_PID=$!
    _BG_PIDS+=("$SERVER_PID")
}

# wait_for_log LOG ERE SECONDS PID: waits until LOG matches ERE; fails if PID exits first.
wait_for_log() {
    local log=$1 re=$2 secs=$3 pid=$4 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -qE -- "$re" "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# wait_pid PID SECONDS: waits for a background job to end; fails if it outlives SECONDS.
wait_pid() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || {
            wait "$pid" 2>/dev/null || true
            return 0
        }
        sleep 0.1
    done
    return 1
}

# Token setup used by most scripts: a fresh token with an SO PIN, a label and a user PIN.
P11=(pkcs11-tool --module "$MODULE")
# shellcheck disable=SC2034  # used by the scripts that source this file
P11_USER=(pkcs11-tool --module "$MODULE" --login --pin "$USER_PIN")

init_token() {
    require pkcs11-tool opensc
    ok "${P11[@]}" --init-token --so-pin "$SO_PIN" --label "$TOKEN_LABEL"
    ok "${P11[@]}" --login --login-type so --so-pin "$SO_PIN" --init-pin --new-pin "$USER_PIN"
}

# Writes an OpenSSL config FILE that loads the pkcs11 engine on $MODULE with $USER_PIN, and
# sets ENGINE_SO. Only commands that use the token should get it: with the engine loaded,
# OpenSSL 3.0's `x509 -req` signing with a software CA key fails.
write_engine_conf() {
    local engines_dir
    engines_dir=$(timeout 10 openssl version -e | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
    ENGINE_SO=$engines_dir/pkcs11.so
    [[ -f $ENGINE_SO ]] ||
        die "OpenSSL pkcs11 engine not found at '$ENGINE_SO' (Debian package libengine-pkcs11-openssl)"
    cat >"$1" <<EOF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE_SO
MODULE_PATH = $MODULE
PIN = $USER_PIN
[req]
distinguished_name = req_dn
[req_dn]
EOF
}
