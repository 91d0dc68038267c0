# SPDX-License-Identifier: MIT
# GnuTLS's p11tool against the module: token listing, object listing with and without login,
# certificate listing and export, signatures made and checked by GnuTLS, and key generation,
# certificate writing and deletion through p11tool's own templates.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require pkcs11-tool opensc
require p11tool gnutls-bin
require openssl openssl

KEY_LABEL="Device Priv TLS Key"
P11TOOL=(p11tool --provider "$MODULE")
TOKEN_URL="pkcs11:token=p11tls%20integration"
export GNUTLS_PIN=$USER_PIN GNUTLS_SO_PIN=$SO_PIN

step "token with an EC key (pkcs11-tool) and its certificate"
init_token
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "$KEY_LABEL" --id 01
ok "${P11[@]}" --read-object --type pubkey --id 01 -o ec.pub.der
ok openssl pkey -pubin -inform DER -in ec.pub.der -out ec.pub.pem
ok openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -subj "/CN=p11tls test CA" -days 2
ok openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dummy.key -out dummy.csr \
    -subj "/CN=device"
ok openssl x509 -req -in dummy.csr -force_pubkey ec.pub.pem -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -out device.pem
ok openssl x509 -in device.pem -outform DER -out device.der
ok "${P11_USER[@]}" --write-object device.der --type cert --label "Device Cert" --id 01

step "--list-tokens"
ok "${P11TOOL[@]}" --list-tokens
assert_contains "$OUT" "Label: $TOKEN_LABEL" "p11tool --list-tokens"
assert_contains "$OUT" "Manufacturer: p11tls" "p11tool --list-tokens"
assert_contains "$OUT" "Model: SoftToken" "p11tool --list-tokens"
assert_contains "$OUT" "token=p11tls%20integration" "token URL"
assert_matches "$OUT" "Flags:.*Requires login" "token flags"

step "--list-all without login: no private objects"
ok "${P11TOOL[@]}" --list-all "$TOKEN_URL"
assert_contains "$OUT" "Label: Device Cert" "public object list"
assert_contains "$OUT" "type=public" "public object list"
assert_not_contains "$OUT" "type=private" "public object list"

step "--list-all with --login (GNUTLS_PIN)"
ok "${P11TOOL[@]}" --login --list-all "$TOKEN_URL"
assert_count "$OUT" "Label: $KEY_LABEL" 2 "object list (private and public key)"
assert_contains "$OUT" "Label: Device Cert" "object list"
assert_contains "$OUT" "Type: Private key (EC/ECDSA-SECP256R1)" "object list"
assert_contains "$OUT" "Type: Public key (EC/ECDSA-SECP256R1)" "object list"
assert_contains "$OUT" "Type: X.509 Certificate (EC/ECDSA-SECP256R1)" "object list"
assert_contains "$OUT" "object=Device%20Priv%20TLS%20Key;type=private" "private key URL"
assert_matches "$OUT" "Flags: CKA_PRIVATE; CKA_NEVER_EXTRACTABLE; CKA_SENSITIVE;" "private key flags"

step "--list-all-certs and --export"
ok "${P11TOOL[@]}" --list-all-certs "$TOKEN_URL"
assert_count "$OUT" "Type: X.509 Certificate" 1 "certificate list"
assert_contains "$OUT" "Label: Device Cert" "certificate list"
assert_contains "$OUT" "ID: 01" "certificate list"
ok "${P11TOOL[@]}" --export "pkcs11:object=Device%20Cert;type=cert"
printf '%s\n' "$OUT" >exported.pem
ok openssl x509 -in exported.pem -outform DER -out exported.der
ok cmp device.der exported.der
# (Without --outfile p11tool pauses 3 s to warn that the key goes to the screen.)
ok "${P11TOOL[@]}" --login --export-pubkey "pkcs11:object=Device%20Priv%20TLS%20Key;type=public" \
    --outfile exported.pub.pem
ok openssl pkey -pubin -in exported.pub.pem -outform DER -out exported.pub.der
ok cmp ec.pub.der exported.pub.der

step "GnuTLS signs with the token key and verifies with the token public key"
ok "${P11TOOL[@]}" --login --test-sign "pkcs11:object=Device%20Priv%20TLS%20Key;type=private"
assert_contains "$OUT" "Signing using ECDSA-SHA256... ok" "p11tool --test-sign"
assert_contains "$OUT" "Verifying against public key in the token... ok" "p11tool --test-sign"

step "p11tool's own key generation templates"
ok "${P11TOOL[@]}" --login --generate-privkey ECDSA --curve secp384r1 --label "gnutls ec" --id 10 \
    --outfile gnutls-ec.pub.pem "$TOKEN_URL"
ok -t "$T_LONG" "${P11TOOL[@]}" --login --generate-privkey RSA --bits 2048 --label "gnutls rsa" --id 11 \
    --outfile gnutls-rsa.pub.pem "$TOKEN_URL"
ok "${P11TOOL[@]}" --login --test-sign "pkcs11:object=gnutls%20ec;type=private"
assert_contains "$OUT" "Verifying against public key in the token... ok" "p11tool --test-sign (P-384)"
ok "${P11TOOL[@]}" --login --test-sign "pkcs11:object=gnutls%20rsa;type=private"
assert_contains "$OUT" "Signing using RSA-SHA256... ok" "p11tool --test-sign (RSA)"
assert_contains "$OUT" "Verifying against public key in the token... ok" "p11tool --test-sign (RSA)"
ok "${P11TOOL[@]}" --login --test-sign --sign-params rsa-pss "pkcs11:object=gnutls%20rsa;type=private"
assert_contains "$OUT" "Signing using RSA-PSS-SHA256... ok" "p11tool --test-sign (RSA-PSS)"
assert_contains "$OUT" "Verifying against public key in the token... ok" "p11tool --test-sign (RSA-PSS)"

step "--write a certificate, then --delete it"
ok "${P11TOOL[@]}" --login --write --load-certificate ca.pem --label "test CA" "$TOKEN_URL"
ok "${P11TOOL[@]}" --list-all-certs "$TOKEN_URL"
assert_count "$OUT" "Type: X.509 Certificate" 2 "certificate list after --write"
assert_contains "$OUT" "Label: test CA" "certificate list after --write"
ok "${P11TOOL[@]}" --login --batch --delete "pkcs11:object=test%20CA;type=cert"
assert_contains "$OUT" "1 objects deleted"
ok "${P11TOOL[@]}" --list-all-certs "$TOKEN_URL"
assert_count "$OUT" "Type: X.509 Certificate" 1 "certificate list after --delete"
assert_not_contains "$OUT" "test CA" "certificate list after --delete"

step "a wrong PIN is refused; the right one still works"
GNUTLS_PIN=9999 fails "${P11TOOL[@]}" --login --list-all "$TOKEN_URL"
assert_contains "$OUT" "Wrong PIN" "p11tool with a wrong PIN"
assert_not_contains "$OUT" "type=private" "object list after a failed login"
ok "${P11TOOL[@]}" --login --list-all-privkeys "$TOKEN_URL"
assert_count "$OUT" "Type: Private key" 3 "private key list"
