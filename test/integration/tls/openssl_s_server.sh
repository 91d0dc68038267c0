# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# tls_client (client key in the p11tls token) against `openssl s_server`: mutual TLS with an
# EC P-256 key generated in the token (certificate from a CSR the token signed through OpenSSL's
# pkcs11 engine) and an RSA-2048 key imported with pkcs11-tool, then every way the handshake
# must fail, each with a one-line reason.
source "$(dirname "${BASH_SOURCE[0]}")/tls_lib.sh"
require pkcs11-tool opensc


step "PKI: a root CA, an unrelated CA, server certificates (EC and RSA) for localhost"
make_ca ca "p11tls test root"
make_ca other "p11tls other root"
make_server ec ca
make_server rsa ca
make_client rsa ca

step "token: EC P-256 key generated in it, RSA-2048 key imported, certificates stored"
init_token
EC_KEY="Device Priv TLS Key"  # tls_client's default labels
EC_CERT="Device Cert"
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "$EC_KEY" --id 01
write_engine_conf engine.cnf
ok env "OPENSSL_CONF=$WORK/engine.cnf" openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:object=Device%20Priv%20TLS%20Key;type=private;pin-value=$USER_PIN" -subj "/CN=device-ec/O=p11tls" \
    -out client-ec.csr
ok openssl req -in client-ec.csr -verify -noout
sign_csr client-ec.csr ca client-ec.pem client.ext
ok "${P11_USER[@]}" --write-object client-ec.der --type cert --label "$EC_CERT" --id 01
ok "${P11_USER[@]}" --write-object client-rsa.key.der --type privkey --label "rsa key" --id 02
ok "${P11_USER[@]}" --write-object client-rsa.der --type cert --label "rsa cert" --id 02
ok "${P11[@]}" --list-objects
assert_contains "$OUT" "$EC_KEY"
assert_contains "$OUT" "rsa cert"

EC=(--key-label "$EC_KEY" --cert-label "$EC_CERT")
RSA=(--key-label "rsa key" --cert-label "rsa cert")
TOKEN=(--store "$P11TLS_STORE" --pin "$USER_PIN" --timeout 10000)
# to PORT [SNI]: where tls_client connects, trusting the test root.
to() { printf '%s\n' --host 127.0.0.1 --port "$1" --sni "${2:-localhost}" --ca ca.pem; }

# s_server that requires a client certificate and refuses one that does not verify (without
# -verify_return_error s_server logs verify errors but continues).
REQUIRE_CERT=(-Verify 1 -verify_return_error -CAfile ca.pem)

# mutual KIND SERVER_KIND CLIENT_ARGS...: a full mutual-TLS exchange, checked on both sides.
mutual() {
    local kind=$1 server=$2 target
    shift 2
    step "mutual TLS: $kind client key in the token, $server server key"
    start_s_server "s_server-$kind-$server.log" -cert "server-$server.pem" -key "server-$server.key" \
        "${REQUIRE_CERT[@]}" -www -naccept 1
    mapfile -t target < <(to "$PORT")
    client_ok get.txt "${target[@]}" "$@" "${TOKEN[@]}"
    stop_server
    local page log
    page=$(cat "$CLIENT_OUT")
    log=$(cat "s_server-$kind-$server.log")
    assert_contains "$page" "HTTP/1.0 200 ok" "the server's answer"
    assert_contains "$ERR" "connected to 127.0.0.1:$PORT" "tls_client's stderr"
    assert_matches "$ERR" "ECDHE-(ECDSA|RSA)-WITH-AES-(128|256)-GCM" "the negotiated suite"
    # s_server verified the client certificate issued for the token key...
    assert_contains "$log" "depth=0 CN = device-$kind, O = p11tls" "s_server's log"
    assert_not_contains "$log" "verify error" "s_server's log"
    # ...and shows it on its status page.
    assert_contains "$page" "Client certificate" "the server's status page"
    assert_matches "$page" "Subject: ?CN ?= ?device-$kind" "the server's status page"
    assert_contains "$page" "Protocol  : TLSv1.2" "the server's status page"
}
mutual ec ec "${EC[@]}"
mutual ec rsa "${EC[@]}"
mutual rsa ec "${RSA[@]}"
mutual rsa rsa "${RSA[@]}"

step "a server without client authentication works, and no certificate is sent"
start_s_server s_server-noverify.log -cert server-ec.pem -key server-ec.key -www -naccept 1
mapfile -t target < <(to "$PORT")
client_ok get.txt "${target[@]}" "${EC[@]}" "${TOKEN[@]}"
stop_server
assert_contains "$(cat "$CLIENT_OUT")" "HTTP/1.0 200 ok"
assert_contains "$(cat "$CLIENT_OUT")" "no client certificate available" "the server's status page"

step "negative: the server's certificate is from a CA the client does not trust"
start_s_server s_server-untrusted.log -cert server-ec.pem -key server-ec.key "${REQUIRE_CERT[@]}" -www -naccept 1
client_fails get.txt --host 127.0.0.1 --port "$PORT" --sni localhost --ca other.pem "${EC[@]}" "${TOKEN[@]}"
stop_server
assert_contains "$ERR" "not trusted"
assert_contains "$ERR" "unknown issuer"
assert_not_contains "$(cat "$CLIENT_OUT")" "HTTP/1.0"

step "negative: the server's certificate does not name the SNI name"
start_s_server s_server-sni.log -cert server-ec.pem -key server-ec.key "${REQUIRE_CERT[@]}" -www -naccept 1
mapfile -t target < <(to "$PORT" wrong.example)
client_fails get.txt "${target[@]}" "${EC[@]}" "${TOKEN[@]}"
stop_server
assert_contains "$ERR" "does not name 'wrong.example'"

step "negative: a server with only a CBC-SHA1 suite (ECDHE-RSA-AES128-SHA, no TLS 1.3)"
start_s_server s_server-sha1.log -cert server-rsa.pem -key server-rsa.key -cipher ECDHE-RSA-AES128-SHA -no_tls1_3 \
    "${REQUIRE_CERT[@]}" -www -naccept 1
mapfile -t target < <(to "$PORT")
client_fails get.txt "${target[@]}" "${EC[@]}" "${TOKEN[@]}"
stop_server
assert_contains "$ERR" "cipher suite"
assert_contains "$(cat s_server-sha1.log)" "no shared cipher" "s_server's log"

for kind in ec rsa; do
    step "negative: the server requires a client certificate from another CA ($kind key)"
    start_s_server "s_server-otherca-$kind.log" -cert server-ec.pem -key server-ec.key \
        -Verify 1 -verify_return_error -CAfile other.pem -www -naccept 1
    mapfile -t target < <(to "$PORT")
    if [[ $kind == ec ]]; then keys=("${EC[@]}"); else keys=("${RSA[@]}"); fi
    client_fails get.txt "${target[@]}" "${keys[@]}" "${TOKEN[@]}"
    stop_server
    assert_contains "$ERR" "unknown_ca"
    assert_contains "$ERR" "our certificate"
    assert_contains "$(cat "s_server-otherca-$kind.log")" "verify error" "s_server's log"
done

step "negative: a key label that is not in the token fails before connecting"
start_s_server s_server-nokey.log -cert server-ec.pem -key server-ec.key "${REQUIRE_CERT[@]}" -www -naccept 1
mapfile -t target < <(to "$PORT")
client_fails get.txt "${target[@]}" --key-label "no such key" --cert-label "$EC_CERT" "${TOKEN[@]}"
assert_contains "$ERR" "no private key labelled 'no such key'"
# s_server -naccept 1 ends after one connection: still running means nobody connected.
kill -0 "$SERVER_PID" 2>/dev/null || die "s_server ended: tls_client connected although the key was missing"
kill "$SERVER_PID"
stop_server
assert_not_contains "$(cat s_server-nokey.log)" "depth=" "s_server's log"
# The same with nothing listening: the key message, not a connection error.
client_fails get.txt --host 127.0.0.1 --port "$(free_port)" --sni localhost --ca ca.pem \
    --key-label "no such key" --cert-label "$EC_CERT" "${TOKEN[@]}"
assert_contains "$ERR" "no private key labelled 'no such key'"
assert_not_contains "$ERR" "connect"

step "negative: a wrong PIN is refused before connecting"
client_fails get.txt --host 127.0.0.1 --port "$(free_port)" --sni localhost --ca ca.pem "${EC[@]}" \
    --store "$P11TLS_STORE" --pin 9999
assert_contains "$ERR" "login"
