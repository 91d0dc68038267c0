# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# tls_client with its key in SoftHSMv2, used as an external PKCS#11 module (ModuleToken over
# dlopen), against `openssl s_server -Verify 1`: EC P-256 and RSA-2048 keys imported with
# pkcs11-tool, the token picked by its label, the PIN given on the command line.
source "$(dirname "${BASH_SOURCE[0]}")/tls_lib.sh"
require pkcs11-tool opensc
require softhsm2-util softhsm2
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
[[ -f $SOFTHSM ]] || die "SoftHSMv2's module not found at $SOFTHSM (Debian package softhsm2)"

step "SoftHSMv2 with its own config and token directory in \$WORK"
mkdir -p softhsm/tokens
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
    "$WORK/softhsm/tokens" >softhsm/softhsm2.conf
export SOFTHSM2_CONF=$WORK/softhsm/softhsm2.conf
HSM_LABEL="p11tls hsm"
ok softhsm2-util --init-token --free --label "$HSM_LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN"
ok softhsm2-util --show-slots
assert_contains "$OUT" "$HSM_LABEL"

step "PKI; client keys imported into SoftHSMv2"
make_ca ca "p11tls test root"
make_server ec ca
make_client ec ca
make_client rsa ca
HSM=(pkcs11-tool --module "$SOFTHSM" --token-label "$HSM_LABEL" --login --pin "$USER_PIN")
id=1
for kind in ec rsa; do
    ok "${HSM[@]}" --write-object "client-$kind.key.der" --type privkey --label "$kind key" --id "0$id"
    ok "${HSM[@]}" --write-object "client-$kind.der" --type cert --label "$kind cert" --id "0$id"
    id=$((id + 1))
done
ok "${HSM[@]}" --list-objects --type privkey
assert_count "$OUT" "Access:     sensitive" 2 "SoftHSMv2's private keys"

MOD=(--module "$SOFTHSM" --token-label "$HSM_LABEL" --pin "$USER_PIN")
for kind in ec rsa; do
    step "mutual TLS against s_server, $kind key in SoftHSMv2"
    start_s_server "s_server-$kind.log" -cert server-ec.pem -key server-ec.key -Verify 1 -verify_return_error \
        -CAfile ca.pem -www -naccept 1
    client_ok get.txt --host 127.0.0.1 --port "$PORT" --sni localhost --ca ca.pem \
        --key-label "$kind key" --cert-label "$kind cert" "${MOD[@]}"
    stop_server
    assert_contains "$(cat "$CLIENT_OUT")" "HTTP/1.0 200 ok" "the server's answer"
    assert_contains "$(cat "$CLIENT_OUT")" "Client certificate" "the server's status page"
    log=$(cat "s_server-$kind.log")
    assert_contains "$log" "depth=0 CN = device-$kind, O = p11tls" "s_server's log"
    assert_not_contains "$log" "verify error" "s_server's log"
done

step "negative: a token label SoftHSMv2 does not have"
client_fails get.txt --host 127.0.0.1 --port "$(free_port)" --sni localhost --ca ca.pem \
    --key-label "ec key" --cert-label "ec cert" --module "$SOFTHSM" --token-label "no such token" --pin "$USER_PIN"
assert_contains "$ERR" "$SOFTHSM"

step "negative: a wrong PIN"
client_fails get.txt --host 127.0.0.1 --port "$(free_port)" --sni localhost --ca ca.pem \
    --key-label "ec key" --cert-label "ec cert" --module "$SOFTHSM" --token-label "$HSM_LABEL" --pin 9999
assert_contains "$ERR" "login"
assert_contains "$ERR" "PIN"

step "negative: a key label SoftHSMv2 does not have, before connecting"
client_fails get.txt --host 127.0.0.1 --port "$(free_port)" --sni localhost --ca ca.pem \
    --key-label "no such key" --cert-label "ec cert" "${MOD[@]}"
assert_contains "$ERR" "no private key labelled 'no such key'"
