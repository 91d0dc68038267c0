# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by the TLS integration scripts (sourced, not run). Meson calls each as
#   bash SCRIPT /path/to/libp11tls-pkcs11.so /path/to/tls_client
# On top of ../lib.sh ($MODULE, $WORK, $P11TLS_STORE, run/ok/fails, start_server, ...), this
# gives $TLS_CLIENT, a small PKI made with the openssl CLI, and `client`, which runs tls_client
# with a file as its standard input and keeps its stdout (binary-safe) apart from its stderr.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
_SCRIPT=$(basename "${BASH_SOURCE[1]:-$0}" .sh)  # name messages after the test, not this file

TLS_CLIENT=${2:-}
[[ -n $TLS_CLIENT ]] || die "usage: bash $_SCRIPT.sh /path/to/libp11tls-pkcs11.so /path/to/tls_client"
[[ $TLS_CLIENT == /* ]] || TLS_CLIENT=$OLDPWD/$TLS_CLIENT  # lib.sh moved into $WORK
[[ -x $TLS_CLIENT ]] || die "tls_client not found or not executable: $TLS_CLIENT (build it: ninja -C build)"
TLS_CLIENT=$(realpath "$TLS_CLIENT")
require openssl openssl

# --- a small PKI --------------------------------------------------------------------------

# make_ca NAME CN: NAME.key / NAME.pem, a self-signed EC P-256 CA.
make_ca() {
    ok openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
        -subj "/CN=$2/O=p11tls integration" -days 30 -sha256 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# key_args KIND: openssl -newkey arguments for ec (P-256) or rsa (2048).
key_args() {
    case $1 in
    ec) printf '%s\n' -newkey ec -pkeyopt ec_paramgen_curve:P-256 ;;
    rsa) printf '%s\n' -newkey rsa:2048 ;;
    *) die "key_args: unknown kind $1" ;;
    esac
}

# sign_csr CSR CA OUT EXTFILE: OUT (PEM) and OUT minus .pem plus .der, issued by CA.
sign_csr() {
    ok openssl x509 -req -in "$1" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$3" -days 30 -sha256 -extfile "$4"
    ok openssl x509 -in "$3" -outform DER -out "${3%.pem}.der"
}

printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext

# make_server KIND CA: server-KIND.key / server-KIND.pem for localhost and 127.0.0.1.
make_server() {
    local args
    mapfile -t args < <(key_args "$1")
    ok openssl req -new "${args[@]}" -nodes -keyout "server-$1.key" -out "server-$1.csr" -subj "/CN=localhost"
    sign_csr "server-$1.csr" "$2" "server-$1.pem" server.ext
}

# make_client KIND CA: client-KIND.key (+ .key.der, PKCS#8) and client-KIND.pem (+ .der),
# a key made outside any token, for import with pkcs11-tool.
make_client() {
    local args
    mapfile -t args < <(key_args "$1")
    ok openssl req -new "${args[@]}" -nodes -keyout "client-$1.key" -out "client-$1.csr" -subj "/CN=device-$1/O=p11tls"
    sign_csr "client-$1.csr" "$2" "client-$1.pem" client.ext
    ok openssl pkcs8 -topk8 -nocrypt -in "client-$1.key" -outform DER -out "client-$1.key.der"
}

# --- the client -------------------------------------------------------------------------

printf 'GET / HTTP/1.0\r\n\r\n' >get.txt
CLIENT_OUT=$WORK/client.out
ERR=

# client INPUT ARGS...: tls_client ARGS with INPUT as stdin; stdout goes to $CLIENT_OUT,
# stderr to $ERR (echoed). Sets RC.
client() {
    local input=$1 start=$EPOCHREALTIME
    shift
    say "\$ tls_client $* < $(basename "$input")"
    set +e
    timeout "$T_CMD" "$TLS_CLIENT" "$@" <"$input" >"$CLIENT_OUT" 2>"$WORK/client.err"
    RC=$?
    set -e
    ERR=$(cat "$WORK/client.err")
    [[ -n $ERR ]] && printf '%s\n' "$ERR" | sed 's/^/    ! /'
    ((RC != 124)) || say "(timed out after ${T_CMD}s)"
    _elapsed "$start"
    return "$RC"
}
client_ok() {
    client "$@" || die "tls_client failed (exit $RC): $ERR"
}
# client_fails INPUT ARGS...: tls_client must exit non-zero by itself, with one line on stderr.
client_fails() {
    if client "$@"; then die "tls_client succeeded but must fail"; fi
    ((RC != 124)) || die "tls_client timed out instead of failing"
    ((RC < 128)) || die "tls_client died from signal $((RC - 128)) instead of failing cleanly"
    [[ $(wc -l <<<"$ERR") == 1 ]] || die "tls_client must explain a failure in one line; stderr was:
$ERR"
    say "(failed as expected, exit $RC)"
}

# --- servers ----------------------------------------------------------------------------

# start_s_server LOG ARGS...: `openssl s_server -accept 127.0.0.1:$PORT ARGS` on a fresh
# $PORT, waiting until it accepts.
PORT=
start_s_server() {
    local log=$1
    shift
    PORT=$(free_port)
    start_server s_server "$log" openssl s_server -accept "127.0.0.1:$PORT" "$@"
    wait_for_log "$log" '^ACCEPT' 15 "$SERVER_PID" || die "s_server did not start; its log:
$(cat "$log")"
}

# stop_server: waits a moment for the server to finish on its own, then ends it.
stop_server() {
    if ! wait_pid "$SERVER_PID" 5; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait_pid "$SERVER_PID" 5 || die "server $SERVER_PID does not stop"
    fi
}
