# SPDX-License-Identifier: MIT
# OpenSSL with the pkcs11 engine (libengine-pkcs11-openssl) over the module: CSRs signed by
# token keys, then mutual TLS 1.2 and 1.3 between `openssl s_client` (client key on the token)
# and `openssl s_server`, for an EC P-256 key and an RSA-2048 key generated on the token.
# TLS 1.3 with RSA needs RSA-PSS from the token (CKM_RSA_PKCS_PSS).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require pkcs11-tool opensc
require openssl openssl


# Only commands that use the token get this config: with the engine loaded, OpenSSL 3.0's
# `x509 -req` signing with a software CA key fails ("default_check: command not supported",
# the same with SoftHSMv2 as the module), so CA work runs with the default config.
write_engine_conf engine.cnf
WITH_ENGINE=(env "OPENSSL_CONF=$WORK/engine.cnf")
# The same through OpenSC's pkcs11-spy, which logs each call the engine makes to the module.
SPY=/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so
[[ -f $SPY ]] || die "OpenSC's pkcs11-spy.so not found at $SPY (package opensc)"
sed "s|^MODULE_PATH = .*|MODULE_PATH = $SPY|" engine.cnf >engine-spy.cnf
WITH_ENGINE_SPY=(env "OPENSSL_CONF=$WORK/engine-spy.cnf" "PKCS11SPY=$MODULE" "PKCS11SPY_OUTPUT=$WORK/spy.log")

uri() { printf 'pkcs11:object=%s;type=private;pin-value=%s' "$1" "$USER_PIN"; }
EC_LABEL="Device Priv TLS Key"
EC_URI=$(uri "Device%20Priv%20TLS%20Key")
RSA_LABEL="Device RSA Key"
RSA_URI=$(uri "Device%20RSA%20Key")

step "token with an EC P-256 and an RSA-2048 key generated on it"
init_token
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "$EC_LABEL" --id 01
ok -t "$T_LONG" "${P11_USER[@]}" --keypairgen --key-type rsa:2048 --label "$RSA_LABEL" --id 02
ok "${P11[@]}" --read-object --type pubkey --id 01 -o ec.token.pub.der
ok "${P11[@]}" --read-object --type pubkey --id 02 -o rsa.token.pub.der

step "the engine sees the token"
ok "${WITH_ENGINE[@]}" openssl engine -t -c pkcs11
assert_contains "$OUT" "[ available ]" "openssl engine -t"

# csr NAME URI CN TOKEN_PUB_DER: a CSR signed by the token key, checked by OpenSSL.
csr() {
    local name=$1 key_uri=$2 cn=$3 token_pub=$4
    ok "${WITH_ENGINE[@]}" openssl req -new -engine pkcs11 -keyform engine -key "$key_uri" -subj "/CN=$cn" \
        -out "$name.csr"
    ok openssl req -in "$name.csr" -verify -noout
    assert_matches "$OUT" "verify OK|self-signature ok" "CSR self-signature"
    ok openssl req -in "$name.csr" -pubkey -noout -out "$name.csr.pub.pem"
    ok openssl pkey -pubin -in "$name.csr.pub.pem" -outform DER -out "$name.csr.pub.der"
    cmp -s "$name.csr.pub.der" "$token_pub" || die "the public key in $name.csr is not the token's public key"
    say "$name.csr carries the token's public key"
}

step "(a) CSRs signed by the token keys"
csr ec "$EC_URI" device-ec ec.token.pub.der
csr rsa "$RSA_URI" device-rsa rsa.token.pub.der

step "a wrong PIN in the URI is refused"
fails "${WITH_ENGINE[@]}" openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:object=Device%20Priv%20TLS%20Key;type=private;pin-value=9999" -subj /CN=nobody -out bad.csr
assert_no_file bad.csr "CSR signed after a failed login"
# Reset the token's failure counter with a good login.
ok "${P11_USER[@]}" --list-objects

step "(b) a throwaway CA, a server certificate and client certificates from the CSRs"
ok openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -subj "/CN=p11tls test CA" -days 2 -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
ok openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr \
    -subj "/CN=localhost"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' >srv.ext
ok openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile srv.ext -out srv.pem
printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n' >client.ext
for k in ec rsa; do
    ok openssl x509 -req -in "$k.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext \
        -out "client-$k.pem"
    ok openssl verify -CAfile ca.pem -purpose sslclient "client-$k.pem"
done

CLIENT_ENV=("${WITH_ENGINE[@]}")

# tls NAME KEY_URI CLIENT_CERT CN PEER_SIG_TYPE CLIENT_OPTIONS...: one mutual-TLS connection.
# s_server demands and verifies a client certificate (-Verify 1 -verify_return_error) and
# exits after one connection (-naccept 1); s_client sends one line and quits on stdin EOF.
tls() {
    local name=$1 key_uri=$2 cert=$3 cn=$4 sigtype=$5
    shift 5
    local log=$WORK/server-$name.log line="hello over $name $RANDOM$RANDOM" port
    for _ in 1 2 3; do
        port=$(free_port)
        start_server "server-$name" "$log" openssl s_server -accept "127.0.0.1:$port" -naccept 1 \
            -Verify 1 -verify_return_error -CAfile ca.pem -cert srv.pem -key srv.key "$@"
        wait_for_log "$log" '^ACCEPT' 15 "$SERVER_PID" && break
        grep -qiE "in use|bind" "$log" || die "s_server did not start: $(cat "$log")"
        say "port $port was taken, retrying"
    done
    grep -q '^ACCEPT' "$log" || die "s_server did not start after 3 attempts: $(cat "$log")"
    # The line goes in through a pipe; EOF right after it makes s_client close the session.
    printf '%s\n' "$line" >"client-$name.in"
    run "${CLIENT_ENV[@]}" openssl s_client -connect "127.0.0.1:$port" -engine pkcs11 -keyform engine \
        -key "$key_uri" -cert "$cert" -CAfile ca.pem -verify_return_error -verify_ip 127.0.0.1 -brief "$@" \
        <"client-$name.in" || die "s_client failed (exit $RC)"
    local client=$OUT
    wait_pid "$SERVER_PID" 20 || die "s_server did not exit after its one connection"
    local server
    server=$(cat "$log")
    # (without the PEM bodies and the session-cache statistics)
    grep -vE '^[A-Za-z0-9+/=]{40,}$|^ +[0-9]+ ' <<<"$server" | sed 's/^/    server| /'
    assert_contains "$client" "CONNECTION ESTABLISHED" "s_client output"
    assert_contains "$client" "Verification: OK" "s_client's check of the server"
    assert_contains "$server" "depth=0 CN = $cn"$'\n'"verify return:1" "s_server's check of the client"
    assert_contains "$server" "subject=CN = $cn" "s_server's client certificate"
    assert_contains "$server" "Peer signature type: $sigtype" "client signature seen by s_server"
    assert_contains "$server" "$line" "data received by s_server"
    assert_not_contains "$server" "verify error" "s_server log"
    CLIENT_OUT=$client
}

step "(b) mutual TLS, EC P-256 client key on the token"
tls ec-tls12 "$EC_URI" client-ec.pem device-ec ECDSA -tls1_2
assert_contains "$CLIENT_OUT" "Protocol version: TLSv1.2"
tls ec-tls13 "$EC_URI" client-ec.pem device-ec ECDSA -tls1_3
assert_contains "$CLIENT_OUT" "Protocol version: TLSv1.3"

step "(b) mutual TLS, RSA-2048 client key on the token"
# TLS 1.2 with the client restricted to PKCS#1 v1.5 (CKM_RSA_PKCS) ...
tls rsa-tls12-pkcs1 "$RSA_URI" client-rsa.pem device-rsa RSA -tls1_2 -client_sigalgs RSA+SHA256
assert_contains "$CLIENT_OUT" "Protocol version: TLSv1.2"
# ... and with OpenSSL's preference, RSA-PSS (CKM_RSA_PKCS_PSS), the only choice in TLS 1.3.
tls rsa-tls12 "$RSA_URI" client-rsa.pem device-rsa RSA-PSS -tls1_2
assert_contains "$CLIENT_OUT" "Protocol version: TLSv1.2"
tls rsa-tls13 "$RSA_URI" client-rsa.pem device-rsa RSA-PSS -tls1_3
assert_contains "$CLIENT_OUT" "Protocol version: TLSv1.3"

step "(b) TLS 1.3 with RSA once more under pkcs11-spy: the token made the PSS signature"
rm -f spy.log
CLIENT_ENV=("${WITH_ENGINE_SPY[@]}")
tls rsa-tls13-spy "$RSA_URI" client-rsa.pem device-rsa RSA-PSS -tls1_3
# The spy log is one paragraph per call.
sign_init=$(awk -v RS= '/^[0-9]+: C_SignInit\n/' spy.log)
assert_contains "$sign_init" "CKM_RSA_PKCS_PSS" "C_SignInit in the spy log"
assert_contains "$sign_init" "CKG_MGF1_SHA256" "C_SignInit in the spy log"
assert_matches "$sign_init" "Returned: +0 CKR_OK" "C_SignInit in the spy log"
sign=$(awk -v RS= '/^[0-9]+: C_Sign\n/' spy.log)
assert_matches "$sign" "Returned: +0 CKR_OK" "C_Sign in the spy log"
assert_contains "$sign" "pSignature[*pulSignatureLen]" "C_Sign in the spy log"
