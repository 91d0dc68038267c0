# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# p11tls-provision end to end. Meson calls it as
#   bash provision_cli.sh /path/to/libp11tls-pkcs11.so /path/to/tls_client /path/to/p11tls-provision
# The host token's store: init, keygen, a CSR that `openssl req -verify` accepts and whose public
# key is the token's (as the CLI, pkcs11-tool and the CSR each report it), a local CA issues the
# certificate, import-cert and import-root, then tls_client authenticates with it to
# `openssl s_server -Verify 1 -verify_return_error`. Refusals exit with their documented code
# and one line, and leave the store's bytes unchanged. Then a board's flash image (--image),
# and the same flow on SoftHSMv2 through --module. Every command runs under `timeout`; servers on 127.0.0.1 with free ports.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/tls/tls_lib.sh"
require pkcs11-tool opensc
require softhsm2-util softhsm2
require sha256sum coreutils
require p11tool gnutls-bin

CLI=${3:-}
[[ -n $CLI ]] || die "usage: bash provision_cli.sh MODULE TLS_CLIENT P11TLS_PROVISION"
[[ $CLI == /* ]] || CLI=$OLDPWD/$CLI
[[ -x $CLI ]] || die "p11tls-provision not found or not executable: $CLI (build it: ninja -C build)"
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
[[ -f $SOFTHSM ]] || die "SoftHSMv2's module not found at $SOFTHSM (Debian package softhsm2)"
unset P11TLS_PIN P11TLS_SO_PIN
STORE=$P11TLS_STORE

# cli_fails CODE ARGS...: p11tls-provision must exit with CODE by itself, with one line on
# stderr and nothing on stdout. Sets ERR.
cli_fails() {
    local want=$1
    shift
    say "\$ p11tls-provision $*   (must fail with exit $want)"
    set +e
    timeout "$T_CMD" "$CLI" "$@" >"$WORK/cli.out" 2>"$WORK/cli.err"
    RC=$?
    set -e
    ERR=$(cat "$WORK/cli.err")
    [[ -n $ERR ]] && printf '%s\n' "$ERR" | sed 's/^/    ! /'
    ((RC != 124)) || die "p11tls-provision timed out instead of failing: $*"
    ((RC == want)) || die "p11tls-provision exited $RC, expected $want: $*"
    [[ $(wc -l <"$WORK/cli.err") == 1 ]] || die "a failure must be one line on stderr; it was:
$ERR"
    [[ ! -s $WORK/cli.out ]] || die "a failure must print nothing on stdout; it printed:
$(cat "$WORK/cli.out")"
}

# store_hash: every file name and byte of the token's store.
store_hash() {
    (cd "$STORE" && find . -type f | LC_ALL=C sort | xargs -r sha256sum; find . | LC_ALL=C sort) | sha256sum | cut -d' ' -f1
}

# spki FILE [FORMAT]: the SHA-256 of a public key's DER, from a PEM/DER public key file.
spki() {
    timeout "$T_CMD" openssl pkey -pubin -in "$1" -inform "${2:-PEM}" -outform DER | sha256sum | cut -d' ' -f1
}

# json_get FILE PYTHON-EXPR: evaluates EXPR on the JSON document `d` in FILE.
json_get() {
    timeout "$T_CMD" python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"
}

P=("$CLI" --store "$STORE")
PIN=(--pin "$USER_PIN")

step "usage: help, unknown commands and options, targets"
ok "$CLI" --help
assert_contains "$OUT" "exit status:"
for cmd in info list keygen csr import-cert import-key import-root delete init; do
    ok "$CLI" "$cmd" --help
    assert_contains "$OUT" "usage: p11tls-provision $cmd"
done
cli_fails 2 frobnicate
cli_fails 2 list --frob
cli_fails 2 csr --store "$STORE" "${PIN[@]}"
assert_contains "$ERR" "--subject is required"
cli_fails 2 list --image "$WORK/board.img" --board no-such-board
cli_fails 2 list --board mps2-an386
cli_fails 4 info --store "$WORK/no-such-store"
cli_fails 4 list --module "$WORK/no-such-module.so"

step "init the host token; commands that change it need the PIN"
cli_fails 3 keygen --store "$STORE" "${PIN[@]}"
assert_contains "$ERR" "not initialized"
ok "${P[@]}" init --label "$TOKEN_LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN"
cli_fails 5 init --store "$STORE" --label again --so-pin "$SO_PIN" --pin "$USER_PIN"
ok "${P[@]}" info --json
printf '%s\n' "$OUT" >info.json
[[ $(json_get info.json 'd["label"], d["initialized"], d["user_pin_initialized"]') == "$TOKEN_LABEL True True" ]] ||
    die "info --json does not report the initialized token"
cli_fails 3 keygen --store "$STORE"
cli_fails 3 list --store "$STORE" --pin 0000
assert_contains "$ERR" "wrong user PIN"

step "keygen: EC P-256 inside the token, FreeRTOS labels"
ok "${P[@]}" keygen "${PIN[@]}" --id 01 --json
printf '%s\n' "$OUT" >keygen.json
json_get keygen.json 'd["public_key_pem"]' >keygen-pub.pem
[[ $(json_get keygen.json 'd["private_label"], d["public_label"], d["key_type"], d["bits"]') == \
    "Device Priv TLS Key Device Pub TLS Key EC 256" ]] || die "keygen --json: unexpected labels or key"
ok "${P[@]}" list "${PIN[@]}"
assert_matches "$OUT" "private key +EC P-256 +'Device Priv TLS Key' +id=01 +sensitive, not extractable, generated in the token"
ok "${P11_USER[@]}" --list-objects --type privkey
assert_contains "$OUT" "Access:     sensitive, always sensitive, never extractable, local"

step "csr: signed by the token, verified by OpenSSL, carrying the token's public key"
ok "${P[@]}" csr "${PIN[@]}" --subject "/CN=device-0042/O=p11tls factory" --dns localhost --dns device-0042.local \
    --ip 127.0.0.1 --ip ::1 --out device.csr
ok openssl req -in device.csr -noout -verify
assert_contains "$OUT" "verify OK"
ok openssl req -in device.csr -noout -text
assert_contains "$OUT" "Subject: CN = device-0042, O = p11tls factory"
assert_contains "$OUT" "DNS:localhost, DNS:device-0042.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
assert_contains "$OUT" "ecdsa-with-SHA256"
ok openssl req -in device.csr -noout -pubkey -out csr-pub.pem
ok "${P[@]}" list "${PIN[@]}" --json
printf '%s\n' "$OUT" >list.json
json_get list.json '[o for o in d["objects"] if o["label"] == "Device Pub TLS Key"][0]["public_key_pem"]' >list-pub.pem
ok "${P11_USER[@]}" --read-object --type pubkey --label "Device Pub TLS Key" -o p11-pub.der
csr_key=$(spki csr-pub.pem)
[[ $csr_key == "$(spki keygen-pub.pem)" ]] || die "the CSR's public key is not the one keygen reported"
[[ $csr_key == "$(spki list-pub.pem)" ]] || die "the CSR's public key is not the one list --json reports"
[[ $csr_key == "$(spki p11-pub.der DER)" ]] || die "the CSR's public key is not the one pkcs11-tool reads from the token"
say "CSR public key = token public key (CLI keygen, CLI list, pkcs11-tool): sha256 of SPKI $csr_key"
ok "${P[@]}" csr "${PIN[@]}" --subject "CN=device-0042" --json
printf '%s\n' "$OUT" >csr.json
json_get csr.json 'd["csr_pem"]' >stdout.csr
ok openssl req -in stdout.csr -noout -verify
cli_fails 4 csr --store "$STORE" "${PIN[@]}" --subject CN=x --key-label "no such key"
cli_fails 6 csr --store "$STORE" "${PIN[@]}" --subject "no equals sign"

step "a local CA issues the device certificate"
make_ca ca "p11tls factory CA"
make_server ec ca
sign_csr device.csr ca device.pem client.ext
make_client ec ca  # a key and certificate made outside the token: wrong ones for this device
printf '%s\n' '-----BEGIN PRIVATE KEY-----' 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg!!!' '-----END PRIVATE KEY-----' >bad.pem
ok openssl genpkey -algorithm ed25519 -out ed25519.pem
ok openssl pkey -in client-ec.key -aes128 -passout pass:secret -out encrypted.pem

step "refusals: one line, a documented exit code, and the store's bytes unchanged"
before=$(store_hash)
cli_fails 6 import-cert client-ec.pem --store "$STORE" "${PIN[@]}"
assert_contains "$ERR" "is not for the private key 'Device Priv TLS Key'"
cli_fails 6 import-root client-ec.pem --store "$STORE" "${PIN[@]}"
assert_contains "$ERR" "not a CA certificate"
cli_fails 6 import-root bad.pem --store "$STORE" "${PIN[@]}"
cli_fails 6 import-key bad.pem --store "$STORE" "${PIN[@]}" --label k --public-label kp
assert_contains "$ERR" "holds no readable private key"
cli_fails 6 import-key ed25519.pem --store "$STORE" "${PIN[@]}" --label k --public-label kp
assert_contains "$ERR" "not supported"
cli_fails 6 import-key encrypted.pem --store "$STORE" "${PIN[@]}" --label k --public-label kp
assert_contains "$ERR" "encrypted"
cli_fails 6 import-key client-ec.pem --store "$STORE" "${PIN[@]}" --label k --public-label kp
cli_fails 5 import-key client-ec.key --store "$STORE" "${PIN[@]}"
assert_contains "$ERR" "already exists"
cli_fails 5 keygen --store "$STORE" "${PIN[@]}" --type ec-p384
cli_fails 4 import-cert no-such.pem --store "$STORE" "${PIN[@]}"
cli_fails 4 delete --store "$STORE" "${PIN[@]}" --label "no such object"
cli_fails 3 import-root ca.pem --store "$STORE"
[[ $(store_hash) == "$before" ]] || die "a refused command changed the store"
say "store unchanged after the refusals ($before)"

step "import the certificate and the root"
ok "${P[@]}" import-cert device.pem "${PIN[@]}"
assert_contains "$OUT" "matches private key 'Device Priv TLS Key'"
cli_fails 5 import-cert device.pem --store "$STORE" "${PIN[@]}"
ok "${P[@]}" import-root ca.pem "${PIN[@]}"
ok "${P[@]}" list "${PIN[@]}"
assert_matches "$OUT" "certificate +'Device Cert' +id=01 +CN=device-0042, O=p11tls factory; issuer CN=p11tls factory CA"
assert_matches "$OUT" "certificate +'Root Cert'"

step "mutual TLS with the provisioned token: tls_client against openssl s_server -Verify 1"
start_s_server s_server.log -cert server-ec.pem -key server-ec.key -Verify 1 -verify_return_error -CAfile ca.pem -www -naccept 1
client_ok get.txt --host 127.0.0.1 --port "$PORT" --sni localhost --store "$STORE" --pin "$USER_PIN"
stop_server
assert_contains "$(cat "$CLIENT_OUT")" "HTTP/1.0 200 ok"
log=$(cat s_server.log)
assert_contains "$log" "depth=0 CN = device-0042, O = p11tls factory"
assert_not_contains "$log" "verify error"

step "import-key: an RSA key made outside, its certificate, mutual TLS with it"
make_client rsa ca
ok "${P[@]}" import-key client-rsa.key "${PIN[@]}" --label "rsa key" --public-label "rsa pub" --id 02
assert_contains "$OUT" "stored RSA-2048 private key as 'rsa key'"
ok "${P[@]}" import-cert client-rsa.pem "${PIN[@]}" --label "rsa cert" --key-label "rsa key"
# pkcs11-tool refuses to read private keys without asking the token; p11tool asks for them.
GNUTLS_PIN=$USER_PIN fails p11tool --provider "$MODULE" --login --export "pkcs11:object=rsa%20key;type=private"
assert_not_contains "$OUT" "BEGIN" "p11tool's export of the imported private key"
ok "${P11_USER[@]}" --list-objects --type privkey
assert_count "$OUT" "Access:     sensitive" 2 "private keys"
start_s_server s_server-rsa.log -cert server-ec.pem -key server-ec.key -Verify 1 -verify_return_error -CAfile ca.pem -www -naccept 1
client_ok get.txt --host 127.0.0.1 --port "$PORT" --sni localhost --store "$STORE" --pin "$USER_PIN" \
    --key-label "rsa key" --cert-label "rsa cert"
stop_server
assert_contains "$(cat s_server-rsa.log)" "depth=0 CN = device-rsa, O = p11tls"

step "delete"
ok "${P[@]}" delete "${PIN[@]}" --id 02
assert_contains "$OUT" "destroyed 3 objects with id 02"
ok "${P[@]}" list "${PIN[@]}"
assert_not_contains "$OUT" "rsa key"

step "a board's flash image (mps2-an386): provisioned on the host, byte for byte what the board mounts"
IMG=$WORK/mps2-an386.img
I=("$CLI" --image "$IMG")
cli_fails 4 list --image "$IMG"
ok "${I[@]}" init --label "mps2 unit 7" --so-pin "$SO_PIN" --pin "$USER_PIN"
[[ $(stat -c %s "$IMG") == 131072 ]] || die "the image is not the board's 128 KiB of flash"
ok "${I[@]}" info --json
printf '%s\n' "$OUT" >img-info.json
[[ $(json_get img-info.json 'd["model"], d["login_required"], d["target"]["board"]') == "SoftToken M4 False mps2-an386" ]] ||
    die "info --json on the image does not show the board's token"
# The board's token is in FreeRTOS mode: no login, so no PIN needed.
ok "${I[@]}" keygen --id 07
ok "${I[@]}" csr --subject "/CN=mps2-unit-7/O=p11tls" --out img.csr
ok openssl req -in img.csr -noout -verify
sign_csr img.csr ca img-device.pem client.ext
before=$(sha256sum <"$IMG")
cli_fails 6 import-cert device.pem --image "$IMG"
cli_fails 6 import-key bad.pem --image "$IMG" --label k --public-label kp
[[ $(sha256sum <"$IMG") == "$before" ]] || die "a refused import changed the image"
ok "${I[@]}" import-cert img-device.pem
ok "${I[@]}" import-root ca.pem
ok "${I[@]}" keygen --type ec-p384 --label spare --public-label "spare pub"
ok "${I[@]}" import-key client-rsa.key --label "rsa key" --public-label "rsa pub"
# Eight objects is the board's token table: a ninth and tenth do not fit.
before=$(sha256sum <"$IMG")
cli_fails 7 keygen --image "$IMG" --label more --public-label "more pub"
assert_contains "$ERR" "full"
[[ $(sha256sum <"$IMG") == "$before" ]] || die "a keygen into a full token changed the image"
ok "${I[@]}" list --json
printf '%s\n' "$OUT" >img-list.json
[[ $(json_get img-list.json 'len(d["objects"]), sorted(o["label"] for o in d["objects"] if o["class"] == "cert")') == \
    "8 ['Device Cert', 'Root Cert']" ]] || die "the image's objects after re-opening it: $OUT"
head -c 1000 /dev/zero >not-an-image.img
cli_fails 6 list --image not-an-image.img

step "the same flow on SoftHSMv2 through --module"
mkdir -p softhsm/tokens
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
    "$WORK/softhsm/tokens" >softhsm/softhsm2.conf
export SOFTHSM2_CONF=$WORK/softhsm/softhsm2.conf
HSM_LABEL="p11tls hsm"
ok "$CLI" init --module "$SOFTHSM" --label "$HSM_LABEL" --so-pin "$SO_PIN" --pin "$USER_PIN"
H=("$CLI" --module "$SOFTHSM" --token-label "$HSM_LABEL")
ok "${H[@]}" info --json
printf '%s\n' "$OUT" >hsm-info.json
[[ $(json_get hsm-info.json 'd["label"], d["target"]["kind"]') == "$HSM_LABEL module" ]] || die "info --json on SoftHSMv2"
ok "${H[@]}" keygen "${PIN[@]}" --id 0a
ok "${H[@]}" csr "${PIN[@]}" --subject "/CN=hsm-device/O=p11tls" --dns localhost --out hsm.csr
ok openssl req -in hsm.csr -noout -verify
ok openssl req -in hsm.csr -noout -pubkey -out hsm-csr-pub.pem
HSM=(pkcs11-tool --module "$SOFTHSM" --token-label "$HSM_LABEL" --login --pin "$USER_PIN")
ok "${HSM[@]}" --read-object --type pubkey --label "Device Pub TLS Key" -o hsm-pub.der
[[ $(spki hsm-csr-pub.pem) == "$(spki hsm-pub.der DER)" ]] || die "the SoftHSMv2 CSR's public key is not the token's"
sign_csr hsm.csr ca hsm-device.pem client.ext
cli_fails 6 import-cert device.pem --module "$SOFTHSM" --token-label "$HSM_LABEL" "${PIN[@]}"
ok "${H[@]}" import-cert hsm-device.pem "${PIN[@]}"
ok "${H[@]}" import-root ca.pem "${PIN[@]}"
ok "${HSM[@]}" --list-objects --type privkey
assert_contains "$OUT" "Access:     sensitive, always sensitive, never extractable, local"
start_s_server s_server-hsm.log -cert server-ec.pem -key server-ec.key -Verify 1 -verify_return_error -CAfile ca.pem -www -naccept 1
client_ok get.txt --host 127.0.0.1 --port "$PORT" --sni localhost --module "$SOFTHSM" --token-label "$HSM_LABEL" \
    --pin "$USER_PIN"
stop_server
assert_contains "$(cat "$CLIENT_OUT")" "HTTP/1.0 200 ok"
assert_contains "$(cat s_server-hsm.log)" "depth=0 CN = hsm-device, O = p11tls"
cli_fails 4 list --module "$SOFTHSM" --token-label "no such token"
