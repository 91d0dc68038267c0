#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The C interface (p11tls/c/aws_tls.h) against a real TLS server: a throwaway EC P-256 PKI, a
# token provisioned with OpenSC's pkcs11-tool through the built module, `openssl s_server`
# requiring a client certificate, and the C program aws_tls_test in five runs (a GET; a wrong
# root CA; no PIN, so no usable key; callback results over fake networks; a wrong PIN). A
# missing program fails the test.
#
#   bash aws_tls_test.sh /path/to/aws_tls_test /path/to/libp11tls-pkcs11.so
set -euo pipefail

T=30 # seconds allowed for each external command
SO_PIN=12345678
USER_PIN=1234

say() { printf '[aws_tls] %s\n' "$*"; }
die() {
    printf '[aws_tls] FAIL: %s\n' "$*" >&2
    exit 1
}

CLIENT=${1:-}
MODULE=${2:-}
[[ -n $CLIENT && -n $MODULE ]] || die "usage: bash aws_tls_test.sh AWS_TLS_TEST PKCS11_MODULE"
[[ -x $CLIENT ]] || die "test client not found: $CLIENT"
[[ -f $MODULE ]] || die "PKCS#11 module not found: $MODULE"
CLIENT=$(realpath "$CLIENT")
MODULE=$(realpath "$MODULE")
for tool in timeout:coreutils openssl:openssl pkcs11-tool:opensc python3:python3; do
    command -v "${tool%%:*}" >/dev/null 2>&1 ||
        die "required program '${tool%%:*}' is not installed (Debian package '${tool#*:}')"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/p11tls-aws-tls.XXXXXX")
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    if ((rc == 0)); then say PASS; else say "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
export P11TLS_STORE=$WORK/store
mkdir -p "$P11TLS_STORE"
unset P11TLS_PIN

# run CMD...: CMD under timeout, output shown indented; a failure ends the test.
run() {
    say "\$ $*"
    local rc=0
    timeout "$T" "$@" >"$WORK/.out" 2>&1 || rc=$?
    sed 's/^/    | /' "$WORK/.out"
    ((rc == 0)) || die "'$1' exited with $rc$( ((rc == 124)) && echo ' (timed out)')"
}

say "PKI: EC P-256 root CA, server certificate for localhost/127.0.0.1, client certificate"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
run openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=p11tls aws_tls test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
run openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 2 -subj "/CN=some other CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,digitalSignature" >srv.ext
printf '%s\n' "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature" >client.ext
run openssl req "${ec[@]}" -keyout srv.key -out srv.csr -subj "/CN=localhost"
run openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
    -extfile srv.ext -out srv.pem
run openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/CN=p11tls aws_tls test device"
run openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
    -extfile client.ext -out client.pem
run openssl pkcs8 -topk8 -nocrypt -in client.key -outform DER -out key.p8
run openssl x509 -in client.pem -outform DER -out client.der

say "token: initialise, set the user PIN, import the device key and certificate"
P11=(pkcs11-tool --module "$MODULE")
run "${P11[@]}" --init-token --so-pin "$SO_PIN" --label "p11tls aws_tls test"
run "${P11[@]}" --login --login-type so --so-pin "$SO_PIN" --init-pin --new-pin "$USER_PIN"
run "${P11[@]}" --login --pin "$USER_PIN" --write-object key.p8 --type privkey \
    --label "Device Priv TLS Key" --id 01
run "${P11[@]}" --login --pin "$USER_PIN" --write-object client.der --type cert --label "Device Cert" --id 01
run "${P11[@]}" --login --pin "$USER_PIN" --list-objects

free_port() {
    timeout "$T" python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server: openssl s_server for one connection, requiring a client certificate from our
# CA; sets PORT once it accepts.
start_server() {
    PORT=$(free_port) || die "cannot pick a free port"
    : >server.log
    timeout 60 openssl s_server -accept "127.0.0.1:$PORT" -Verify 1 -CAfile ca.pem -cert srv.pem \
        -key srv.key -www -naccept 1 >server.log 2>&1 &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 100; ++i)); do
        grep -q '^ACCEPT' server.log && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    sed 's/^/    server| /' server.log
    die "openssl s_server did not start on port $PORT"
}

stop_server() {
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    sed 's/^/    server| /' server.log
    SERVER_PID=
}

# client MODE CA [PORT]: runs the C test; the library itself must print nothing.
client() {
    say "\$ aws_tls_test $*"
    local rc=0
    timeout 60 "$CLIENT" "$1" "$2" localhost ${3:+"$3"} >client.log 2>&1 || rc=$?
    sed 's/^/    | /' client.log
    ((rc == 0)) || die "aws_tls_test $1 exited with $rc$( ((rc == 124)) && echo ' (timed out)')"
    if grep -v '^aws_tls_test:' client.log >/dev/null; then
        die "something other than the test program printed (the library must stay silent)"
    fi
}

say "run 1: GET over TLS with the token's key (P11TLS_PIN set)"
start_server
P11TLS_PIN=$USER_PIN client ok ca.pem "$PORT"
stop_server

say "run 2: a root CA that did not sign the server"
start_server
P11TLS_PIN=$USER_PIN client untrusted other-ca.pem "$PORT"
stop_server

say "run 3: no PIN, so the private key cannot be used; the server requires a certificate"
start_server
client no-key ca.pem "$PORT"
stop_server

say "run 4: what the network callbacks return (fake networks, no server)"
P11TLS_PIN=$USER_PIN client callbacks ca.pem

say "run 5: a wrong PIN"
P11TLS_PIN=9999 client bad-pin ca.pem
