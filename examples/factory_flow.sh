#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A factory's provisioning flow with p11tls-provision, end to end on one machine:
#   1. initialize the device's token            4. import the certificate and the root CA
#   2. generate the device key inside it         5. the device connects: mutual TLS with
#   3. its CSR, signed by a local CA (openssl)      tls_client to a local openssl s_server
#   examples/factory_flow.sh [BUILD_DIR]     (relative to the repository; default build)
# Everything happens in a temp dir (token store, CA, server) removed on exit; every command is
# bounded by a timeout; the server listens on 127.0.0.1 on a free port. Needs a built tree
# (meson setup build && ninja -C build) and openssl, python3.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-build}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir
PROVISION=$build_dir/tools/provision/p11tls-provision
TLS_CLIENT=$build_dir/examples/tls_client

T=30  # seconds for one command
SO_PIN=so-pin-5678
export P11TLS_PIN=1234
DEVICE=device-0042

say() { printf '[factory] %s\n' "$*"; }
die() {
    printf '[factory] FAILED: %s\n' "$*" >&2
    exit 1
}
for tool in timeout openssl python3; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed (scripts/setup.sh installs what p11tls needs)"
done
for bin in "$PROVISION" "$TLS_CLIENT"; do
    [[ -x $bin ]] || die "$bin is missing: build first (meson setup $build_dir && ninja -C $build_dir)"
done

work=
server_pid=
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        { kill "$server_pid" && wait "$server_pid"; } 2>/dev/null || true
    fi
    [[ -n $work ]] && rm -rf "$work"
    ((rc == 0)) || printf '[factory] stopped (exit %d); temp dir removed\n' "$rc" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
work=$(mktemp -d "${TMPDIR:-/tmp}/p11tls-factory.XXXXXX")
cd "$work"
export P11TLS_STORE=$work/token

# q CMD...: runs CMD under a timeout, quietly; on failure shows its output and stops.
q() {
    local rc=0
    timeout "$T" "$@" >last.log 2>&1 || rc=$?
    if ((rc != 0)); then
        sed 's/^/    | /' last.log >&2
        ((rc == 124)) && die "timed out after ${T}s: $*"
        die "exit $rc: $*"
    fi
}
# p ARGS...: p11tls-provision under a timeout, its output shown indented.
p() {
    printf '  $ p11tls-provision %s\n' "$*"
    timeout "$T" "$PROVISION" "$@" 2>&1 | sed 's/^/    /'
    return "${PIPESTATUS[0]}"
}

say "1. initialize the device's token (store: $P11TLS_STORE)"
p init --label "$DEVICE" --so-pin "$SO_PIN" --pin "$P11TLS_PIN"

say "2. generate the device key pair inside the token (EC P-256; the private key never leaves it)"
p keygen --id 01

say "3. certificate request signed by the token key; a local CA issues the certificate"
p csr --subject "/CN=$DEVICE/O=p11tls factory" --dns "$DEVICE.local" --out device.csr
q openssl req -in device.csr -noout -verify
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=p11tls factory CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >device.ext
q openssl x509 -req -in device.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile device.ext -out device.pem
say "   issued: $(timeout "$T" openssl x509 -in device.pem -noout -subject -issuer | paste -sd ';' | sed 's/;/, /')"

say "4. import the device certificate (checked against the key) and the root CA"
p import-cert device.pem
p import-root ca.pem
p list

say "5. the device connects: mutual TLS to openssl s_server -Verify 1 on 127.0.0.1"
q openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' >server.ext
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem
port=$(timeout 10 python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
mkfifo server.in
exec 3<>server.in  # s_server quits on stdin EOF; this keeps it open
timeout 60 openssl s_server -accept "127.0.0.1:$port" -cert server.pem -key server.key -CAfile ca.pem -Verify 1 \
    -verify_return_error -www -naccept 1 <&3 >server.log 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^ACCEPT' server.log 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || die "s_server did not start: $(cat server.log)"
    sleep 0.1
done
printf 'GET / HTTP/1.0\r\n\r\n' >request.txt
rc=0
timeout "$T" "$TLS_CLIENT" --host 127.0.0.1 --port "$port" --sni localhost <request.txt >response.txt 2>client.log || rc=$?
sed 's/^/    /' client.log
((rc == 0)) || die "tls_client failed (exit $rc)"
grep -q 'HTTP/1.0 200 ok' response.txt || die "no answer from the server: $(cat response.txt)"
say "   the server verified the device: $(grep -m1 '^depth=0' server.log || echo '?')"
say "done: key generated in the token, certificate issued and imported, mutual TLS works"
