# SPDX-License-Identifier: MIT
# Board host-flash from outside: the token in its STM32F4 flash image through the PKCS#11
# module (pkcs11-tool), the image refused while another process holds it, and the token_demo
# example on images of its own, run twice (the key it generated is there in the next process).
#   bash flash_image.sh /path/to/libp11tls-pkcs11.so /path/to/token_demo
source "$(dirname "${BASH_SOURCE[0]}")/../../integration/lib.sh"

TOKEN_DEMO=${2:-}
[[ -x $TOKEN_DEMO ]] || die "usage: bash flash_image.sh /path/to/libp11tls-pkcs11.so /path/to/token_demo (absolute)"
require pkcs11-tool opensc
require sha256sum coreutils

IMAGE=$P11TLS_STORE/stm32f4-flash.img

step "a token on a new image: initialized, an EC P-256 key generated in it"
init_token
ok "${P11_USER[@]}" --keypairgen --key-type EC:prime256v1 --label "image key" --id 0a
[[ $(stat -c %s "$IMAGE") == 1048576 ]] || die "$IMAGE is not a 1 MiB STM32F4 image: $(ls -la "$P11TLS_STORE")"
say "$IMAGE: $(stat -c %s "$IMAGE") bytes"

step "while another process holds the image, the module refuses it, names it, and changes nothing"
before=$(sha256sum <"$IMAGE")
# The same advisory lock the board takes (flock on the image file).
start_server holder holder.log python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)' "$IMAGE"
wait_for_log holder.log '^locked' 15 "$SERVER_PID" || die "the lock holder did not start: $(cat holder.log)"
fails "${P11[@]}" --list-token-slots
assert_contains "$OUT" "the flash image $IMAGE is in use by another process" "module's refusal"
[[ $(sha256sum <"$IMAGE") == "$before" ]] || die "the refused process changed $IMAGE"
kill "$SERVER_PID"
wait_pid "$SERVER_PID" 10 || die "the lock holder did not stop"

step "once the other process is gone, the token is back with its key"
ok "${P11_USER[@]}" --list-objects --type privkey
assert_contains "$OUT" "label:      image key" "private keys"

step "token_demo on an image in a directory of its own: first run"
ok "$TOKEN_DEMO" --store "$WORK/demo"
assert_contains "$OUT" "opening the host-flash board's token"
assert_contains "$OUT" "initializing"
assert_contains "$OUT" "generating an EC P-256 key pair inside the token"
assert_contains "$OUT" "signature verifies"
assert_contains "$OUT" "is still there after reopening"
[[ -s $WORK/demo/stm32f4-flash.img ]] || die "token_demo wrote no image in $WORK/demo"

step "token_demo again, a new process on the same image"
ok "$TOKEN_DEMO" --store "$WORK/demo"
assert_contains "$OUT" "token already initialized"
assert_contains "$OUT" "found the device key from an earlier run"

step "token_demo on a store location that names the image file"
ok "$TOKEN_DEMO" --store "$WORK/devices/unit-7.img"
assert_contains "$OUT" "generating an EC P-256 key pair inside the token"
[[ $(stat -c %s "$WORK/devices/unit-7.img") == 1048576 ]] || die "no 1 MiB image at $WORK/devices/unit-7.img"
ok "$TOKEN_DEMO" --store "$WORK/devices/unit-7.img"
assert_contains "$OUT" "found the device key from an earlier run"
