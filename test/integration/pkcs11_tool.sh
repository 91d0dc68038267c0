# SPDX-License-Identifier: MIT
# OpenSC's pkcs11-tool against the module: token and PIN setup, EC and RSA keys (generated on
# the token and imported), signatures checked by OpenSSL, PIN and sensitivity rules, object
# listing and deletion, and pkcs11-tool's own self-test.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require pkcs11-tool opensc
require openssl openssl
require xxd xxd
require p11tool gnutls-bin

# OpenSC's PKCS#11 spy logs every call and return value; used to see what the token answered
# where pkcs11-tool itself hides it.
SPY=/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so
[[ -f $SPY ]] || die "OpenSC's pkcs11-spy.so not found at $SPY (package opensc)"

echo "integration test payload $(date +%s%N)" >data.txt

step "init token and user PIN"
init_token
ok "${P11[@]}" --show-info
assert_contains "$OUT" "p11tls PKCS#11 module" "C_GetInfo description"
ok "${P11[@]}" --list-token-slots
assert_matches "$OUT" "token label +: $TOKEN_LABEL" "token info"
assert_contains "$OUT" "PIN initialized" "token flags"
assert_contains "$OUT" "token initialized" "token flags"
assert_contains "$OUT" "login required" "token flags"
ok "${P11[@]}" --list-mechanisms
for m in ECDSA-KEY-PAIR-GEN RSA-PKCS-KEY-PAIR-GEN ECDSA-SHA256 ECDSA-SHA384 SHA256-RSA-PKCS RSA-PKCS-PSS SHA256-RSA-PKCS-PSS SHA256; do
    assert_matches "$OUT" "^ +$m," "mechanism list"
done

step "a second C_InitToken needs the SO PIN"
fails "${P11[@]}" --init-token --so-pin 87654321 --label "$TOKEN_LABEL"
assert_contains "$OUT" "CKR_PIN_INCORRECT"
ok "${P11[@]}" --list-token-slots
assert_contains "$OUT" "SO PIN count low" "token flags after a wrong SO PIN"
assert_contains "$OUT" "PIN initialized" "token flags after a refused C_InitToken"

step "EC P-256 key generated on the token, ECDSA-SHA256 checked by OpenSSL"
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "Device Priv TLS Key" --id 01
assert_contains "$OUT" "never extractable" "generated private key"
ok "${P11_USER[@]}" --sign --mechanism ECDSA-SHA256 --id 01 --signature-format openssl -i data.txt -o p256.sig
assert_file p256.sig "signature"
ok "${P11[@]}" --read-object --type pubkey --id 01 -o p256.pub.der
ok openssl pkey -pubin -inform DER -in p256.pub.der -out p256.pub.pem
ok openssl pkey -pubin -in p256.pub.pem -noout -text
assert_contains "$OUT" "prime256v1" "public key read from the token"
ok openssl dgst -sha256 -verify p256.pub.pem -signature p256.sig data.txt
assert_contains "$OUT" "Verified OK"
# A signature over other data must not verify: the check above is not vacuous.
echo tampered >>data.txt.bad && cat data.txt >>data.txt.bad
fails openssl dgst -sha256 -verify p256.pub.pem -signature p256.sig data.txt.bad

step "EC P-384 key, ECDSA-SHA384"
ok "${P11_USER[@]}" --keypairgen --key-type EC:secp384r1 --label "p384 key" --id 02
ok "${P11_USER[@]}" --sign --mechanism ECDSA-SHA384 --id 02 --signature-format openssl -i data.txt -o p384.sig
# pkcs11-tool 0.23's --read-object --type pubkey cannot build an EVP_PKEY for curves other
# than P-256 (it fails the same way on SoftHSMv2), so the public key is rebuilt from the
# CKA_EC_POINT it lists: DER OCTET STRING 04 61 || 04 X Y, behind the P-384 SPKI header.
# (--list-objects ignores --id: take the point of the 384-bit key, whatever the listing order.)
ok "${P11[@]}" --list-objects --type pubkey --id 02
point=$(awk '/EC_POINT 384 bits/ { p = 1 } p && /^ *EC_POINT:/ { print $2; exit }' <<<"$OUT")
[[ $point == 046104* && ${#point} == 198 ]] || die "unexpected P-384 CKA_EC_POINT: '$point'"
printf '%s%s' 3076301006072a8648ce3d020106052b81040022036200 "${point:4}" | xxd -r -p >p384.pub.der
ok openssl pkey -pubin -inform DER -in p384.pub.der -out p384.pub.pem
ok openssl pkey -pubin -in p384.pub.pem -noout -text
assert_contains "$OUT" "secp384r1" "P-384 public key"
ok openssl dgst -sha384 -verify p384.pub.pem -signature p384.sig data.txt
assert_contains "$OUT" "Verified OK"

step "RSA-2048 key and certificate made by OpenSSL, imported"
ok openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key
ok openssl req -x509 -new -key rsa.key -subj "/CN=p11tls imported RSA" -days 2 -out rsa.crt
ok openssl pkey -in rsa.key -outform DER -out rsa.key.der
ok openssl pkey -in rsa.key -pubout -out rsa.pub.pem
ok openssl pkey -in rsa.key -pubout -outform DER -out rsa.pub.der
ok openssl x509 -in rsa.crt -outform DER -out rsa.crt.der
ok "${P11_USER[@]}" --write-object rsa.key.der --type privkey --label "imported rsa" --id 03
assert_contains "$OUT" "sensitive" "imported private key"
ok "${P11_USER[@]}" --write-object rsa.pub.der --type pubkey --label "imported rsa" --id 03
ok "${P11_USER[@]}" --write-object rsa.crt.der --type cert --label "imported rsa cert" --id 03
assert_contains "$OUT" "CN=p11tls imported RSA" "created certificate"

step "SHA256-RSA-PKCS"
ok "${P11_USER[@]}" --sign --mechanism SHA256-RSA-PKCS --id 03 -i data.txt -o rsa-pkcs.sig
ok openssl dgst -sha256 -verify rsa.pub.pem -signature rsa-pkcs.sig data.txt
assert_contains "$OUT" "Verified OK"

step "RSA-PSS: SHA256-RSA-PKCS-PSS on the data, RSA-PKCS-PSS on its hash"
ok "${P11_USER[@]}" --sign --mechanism SHA256-RSA-PKCS-PSS --mgf MGF1-SHA256 --id 03 -i data.txt -o pss256.sig
assert_contains "$OUT" "salt_len=32"
ok openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sigopt rsa_mgf1_md:sha256 \
    -verify rsa.pub.pem -signature pss256.sig data.txt
assert_contains "$OUT" "Verified OK"
ok openssl dgst -sha384 -binary -out data.sha384 data.txt
ok "${P11_USER[@]}" --sign --mechanism RSA-PKCS-PSS --hash-algorithm SHA384 --mgf MGF1-SHA384 --id 03 \
    -i data.sha384 -o pss384.sig
ok openssl pkeyutl -verify -pubin -inkey rsa.pub.pem -pkeyopt digest:sha384 -pkeyopt rsa_padding_mode:pss \
    -pkeyopt rsa_pss_saltlen:48 -pkeyopt rsa_mgf1_md:sha384 -in data.sha384 -sigfile pss384.sig
assert_contains "$OUT" "Signature Verified Successfully"
# The token itself verifies what it signed (C_Verify with the public key object).
ok "${P11_USER[@]}" --verify --mechanism SHA256-RSA-PKCS-PSS --mgf MGF1-SHA256 --id 03 -i data.txt \
    --signature-file pss256.sig
assert_contains "$OUT" "Signature is valid"
# pkcs11-tool 0.23 reports CKR_SIGNATURE_INVALID in words but still exits 0.
run "${P11_USER[@]}" --verify --mechanism SHA256-RSA-PKCS-PSS --mgf MGF1-SHA256 --id 03 -i data.txt.bad \
    --signature-file pss256.sig || true
assert_contains "$OUT" "Invalid signature" "verification of other data"

step "CKA_ALLOWED_MECHANISMS restricts what a key may do"
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "restricted" --id 04 --allowed-mechanisms ECDSA-SHA256
assert_contains "$OUT" "Allowed mechanisms: ECDSA-SHA256" "generated private key"
ok "${P11_USER[@]}" --sign --mechanism ECDSA-SHA256 --id 04 -i data.txt -o restricted.sig
fails "${P11_USER[@]}" --sign --mechanism ECDSA-SHA384 --id 04 -i data.txt -o refused.sig
assert_contains "$OUT" "C_SignInit failed: rv = CKR_MECHANISM_INVALID" "signing with a mechanism not allowed"
ok "${P11_USER[@]}" --delete-object --type privkey --id 04
ok "${P11_USER[@]}" --delete-object --type pubkey --id 04

step "PINs: a wrong PIN is refused, C_SetPIN changes it"
fails "${P11[@]}" --login --pin 9999 --list-objects
assert_contains "$OUT" "CKR_PIN_INCORRECT"
ok "${P11[@]}" --list-token-slots
assert_contains "$OUT" "user PIN count low" "token flags after a wrong PIN"
ok "${P11_USER[@]}" --change-pin --new-pin 24680
fails "${P11_USER[@]}" --list-objects
assert_contains "$OUT" "CKR_PIN_INCORRECT"
ok "${P11[@]}" --login --pin 24680 --change-pin --new-pin "$USER_PIN"
ok "${P11[@]}" --list-token-slots
assert_not_contains "$OUT" "user PIN count low" "token flags after a good login"

step "private keys are private and sensitive"
ok "${P11[@]}" --list-objects
assert_not_contains "$OUT" "Private Key Object" "object list without login"
assert_count "$OUT" "Public Key Object" 3 "object list without login"
assert_count "$OUT" "Certificate Object" 1 "object list without login"
rm -f priv.der
# pkcs11-tool 0.23 refuses --read-object --type privkey by itself ("not (yet) supported",
# exit 0) before asking the token, so its refusal proves nothing about the token: check
# that nothing was written, then ask for the secret value through p11tool under the spy
# and read what the token answered.
run "${P11_USER[@]}" --read-object --type privkey --id 01 -o priv.der || true
assert_no_file priv.der "private key export"
GNUTLS_PIN=$USER_PIN PKCS11SPY=$MODULE PKCS11SPY_OUTPUT=$WORK/spy.log \
    run p11tool --provider "$SPY" --login --export "pkcs11:id=%01;type=private" || true
((RC != 0)) || die "p11tool exported a private key: $OUT"
spy=$(cat spy.log)
assert_matches "$spy" "CKA_VALUE +0+ / 0" "spy log (length query for CKA_VALUE)"
assert_contains "$spy" "CKR_ATTRIBUTE_SENSITIVE" "token answer to C_GetAttributeValue(CKA_VALUE)"

step "listing with login"
ok "${P11_USER[@]}" --list-objects
assert_count "$OUT" "Private Key Object" 3 "object list"
assert_count "$OUT" "Public Key Object" 3 "object list"
assert_count "$OUT" "Certificate Object" 1 "object list"
for l in "Device Priv TLS Key" "p384 key" "imported rsa" "imported rsa cert"; do
    assert_matches "$OUT" "label: +$l\$" "object list"
done

step "pkcs11-tool --test"
ok -t "$T_LONG" "${P11[@]}" --test --login --pin "$USER_PIN"
TEST_OUT=$OUT
assert_contains "$TEST_OUT" "No errors" "pkcs11-tool --test"
assert_not_contains "$TEST_OUT" "ERR" "pkcs11-tool --test"
assert_matches "$TEST_OUT" "C_SeedRandom\(\) and C_GenerateRandom\(\):"$'\n'" +seems to be OK" "random test"
assert_contains "$TEST_OUT" "all 4 digest functions seem to work" "digest test"
assert_contains "$TEST_OUT" "SHA256: OK" "digest known answer"
# Its verify section signs with RSA-PKCS and checks with the token's public key.
assert_matches "$TEST_OUT" "RSA-PKCS: OK" "RSA sign/verify test"

step "delete objects"
ok "${P11_USER[@]}" --delete-object --type privkey --id 01
ok "${P11_USER[@]}" --delete-object --type pubkey --id 01
ok "${P11_USER[@]}" --delete-object --type cert --id 03
ok "${P11_USER[@]}" --list-objects
assert_not_contains "$OUT" "Device Priv TLS Key" "object list after deletion"
assert_not_contains "$OUT" "Certificate Object" "object list after deletion"
assert_count "$OUT" "Private Key Object" 2 "object list after deletion"
fails "${P11_USER[@]}" --sign --mechanism ECDSA-SHA256 --id 01 -i data.txt -o gone.sig
assert_contains "$OUT" "not found"
