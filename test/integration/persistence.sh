# SPDX-License-Identifier: MIT
# Token objects outlive the process that wrote them: keys generated and a certificate imported
# by one pkcs11-tool process are found, listed and used to sign by later processes (and by
# another client, p11tool), and the token state (label, PINs, deletions) persists too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require pkcs11-tool opensc
require p11tool gnutls-bin
require openssl openssl

echo "persistence payload $(date +%s%N)" >data.txt
KEY_LABEL="Device Priv TLS Key"

step "process 1-2: initialize the token"
init_token

step "process 3: EC P-256 key pair generated on the token"
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "$KEY_LABEL" --id 01

step "process 4: RSA-2048 key pair generated on the token"
ok -t "$T_LONG" "${P11_USER[@]}" --keypairgen --key-type rsa:2048 --label "Device RSA Key" --id 02

step "process 5-6: a certificate for the EC key, imported"
ok "${P11[@]}" --read-object --type pubkey --id 01 -o ec.pub.der
ok openssl pkey -pubin -inform DER -in ec.pub.der -out ec.pub.pem
ok openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -subj "/CN=p11tls test CA" -days 2
ok openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dummy.key -out dummy.csr \
    -subj "/CN=device"
# The certificate carries the token's public key, not the CSR's.
ok openssl x509 -req -in dummy.csr -force_pubkey ec.pub.pem -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -out device.pem
ok openssl x509 -in device.pem -outform DER -out device.der
ok "${P11_USER[@]}" --write-object device.der --type cert --label "Device Cert" --id 01

if [[ ${P11TLS_BOARD:-host} == host-flash ]]; then
    # The store is one simulated STM32F4 flash image (boards/host-flash/board.hpp): the
    # certificate's bytes are in it, and nothing else was written to the store directory.
    step "the flash image holds the objects"
    image=$P11TLS_STORE/stm32f4-flash.img
    [[ $(stat -c %s "$image") == 1048576 ]] || die "$image is not a 1 MiB STM32F4 image: $(ls -la "$P11TLS_STORE")"
    [[ $(find "$P11TLS_STORE" -type f | wc -l) == 1 ]] || die "files besides the image in $P11TLS_STORE: $(ls -la "$P11TLS_STORE")"
    ok python3 -c 'import sys; sys.exit(0 if open(sys.argv[2], "rb").read() in open(sys.argv[1], "rb").read() else 1)' \
        "$image" device.der
    say "the certificate is in $image"
else
    step "the store holds one record per object (plus the token state)"
    records=$(find "$P11TLS_STORE" -type f | wc -l)
    ((records >= 6)) || die "expected at least 6 records in $P11TLS_STORE, found $records: $(ls -la "$P11TLS_STORE")"
    say "$records records in the store"
fi

step "new process: token state survived"
ok "${P11[@]}" --list-token-slots
assert_matches "$OUT" "token label +: $TOKEN_LABEL" "token info"
assert_contains "$OUT" "PIN initialized" "token flags"

step "new process: objects are listed"
ok "${P11[@]}" --list-objects
assert_count "$OUT" "Public Key Object" 2 "object list without login"
assert_count "$OUT" "Certificate Object" 1 "object list without login"
assert_not_contains "$OUT" "Private Key Object" "object list without login"
ok "${P11_USER[@]}" --list-objects
assert_count "$OUT" "Private Key Object" 2 "object list with login"
assert_matches "$OUT" "label: +$KEY_LABEL\$" "object list with login"
assert_matches "$OUT" "label: +Device RSA Key\$" "object list with login"
assert_matches "$OUT" "label: +Device Cert\$" "object list with login"
assert_contains "$OUT" "never extractable" "reloaded private keys"

step "new process: the stored EC key signs; the stored certificate's key verifies"
ok "${P11_USER[@]}" --sign --mechanism ECDSA-SHA256 --id 01 --signature-format openssl -i data.txt -o ec.sig
ok "${P11[@]}" --read-object --type cert --id 01 -o cert-from-token.der
ok cmp device.der cert-from-token.der
ok openssl x509 -inform DER -in cert-from-token.der -noout -pubkey
printf '%s\n' "$OUT" >cert.pub.pem
ok openssl dgst -sha256 -verify cert.pub.pem -signature ec.sig data.txt
assert_contains "$OUT" "Verified OK"

step "new process: the stored RSA key signs (PKCS#1 v1.5 and PSS)"
ok "${P11[@]}" --read-object --type pubkey --id 02 -o rsa.pub.der
ok openssl pkey -pubin -inform DER -in rsa.pub.der -out rsa.pub.pem
ok "${P11_USER[@]}" --sign --mechanism SHA256-RSA-PKCS --id 02 -i data.txt -o rsa.sig
ok openssl dgst -sha256 -verify rsa.pub.pem -signature rsa.sig data.txt
assert_contains "$OUT" "Verified OK"
ok "${P11_USER[@]}" --sign --mechanism SHA384-RSA-PKCS-PSS --mgf MGF1-SHA384 --id 02 -i data.txt -o pss.sig
ok openssl dgst -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -verify rsa.pub.pem \
    -signature pss.sig data.txt
assert_contains "$OUT" "Verified OK"

step "another client reads the same store"
GNUTLS_PIN=$USER_PIN ok p11tool --provider "$MODULE" --login --list-all
assert_contains "$OUT" "Label: $KEY_LABEL" "p11tool object list"
assert_contains "$OUT" "Label: Device Cert" "p11tool object list"
GNUTLS_PIN=$USER_PIN ok p11tool --provider "$MODULE" --login --test-sign "pkcs11:object=Device%20RSA%20Key;type=private"
assert_contains "$OUT" "Verifying against public key in the token... ok" "p11tool --test-sign"

step "a different store is a different (blank) token"
P11TLS_STORE=$WORK/other-store ok "${P11[@]}" --list-token-slots
assert_not_contains "$OUT" "token initialized" "blank token flags"
assert_not_contains "$OUT" "$TOKEN_LABEL" "blank token"

step "a deletion persists too"
ok "${P11_USER[@]}" --delete-object --type cert --id 01
ok "${P11[@]}" --list-objects
assert_not_contains "$OUT" "Certificate Object" "object list after deletion"
assert_count "$OUT" "Public Key Object" 2 "object list after deletion"
ok "${P11_USER[@]}" --sign --mechanism ECDSA-SHA256 --id 01 -i data.txt -o ec2.sig
