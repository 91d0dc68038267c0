#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Size and cost of p11tls on board mps2-an386 (Cortex-M4F under QEMU), against plain mbedTLS
# with the same mbedTLS build, config and flags. Prints name=value lines.
#   tools/m4_report.sh [BUILD_DIR]        (default build-m4; set up with the board's cross file if missing)
#
# Five images (tools/m4_report/), each with the same in-image TLS server and measurement harness:
#   p11tls        TlsSession, client key in the board's SoftToken (provisioned at boot), with a
#                 TlsConfig that has the optional features the plain client has: no resumption
#                 on reconnect, no ALPN, DER certificates only
#   p11tls-full   the same with the board's TlsConfig: every optional feature on
#   p11tls-token  the same token provisioning and signature, no TlsSession
#   plain         the same handshake in plain C against mbedTLS, client key parsed from a buffer
#   server-only   the server alone
# .text of the TLS layer = (p11tls - p11tls-token) - (plain - server-only): what TlsSession and
# its glue add over a plain mbedTLS client with the same features; tls_layer_full.text is the
# same with p11tls-full. <image>.features lists the optional features (resumption, alpn,
# pem_input) whose mbedTLS entry points (mbedtls_ssl_set_session,
# mbedtls_ssl_conf_alpn_protocols, mbedtls_x509_crt_parse) a client image links, read from
# its symbol table; features_like_plain says whether p11tls and plain have the same. The
# token and its store (p11tls-token - server-only)
# are reported separately. Like with like: the board's mbedTLS has no error strings
# (MBEDTLS_ERROR_STRERROR_DUMMY) and its TlsConfig no error sentences (error_texts = false);
# each client image prints error_texts (1 when its failures come with texts for people). Instructions are the client's handshake steps only, counted by the
# CMSDK timer under -icount shift=0 (a 25 MHz tick is 40 instructions); heap is the client's
# mbedTLS calloc peak (requested bytes) from configuration to the end of the handshake; stack
# is the client's high-water mark during the handshake (the server runs on another stack).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-m4}
board=boards/mps2-an386

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --cross-file "$board/cross.ini" -Dboard=mps2-an386 >/dev/null
fi
images=(p11tls p11tls-full p11tls-token plain server-only)
targets=()
for i in "${images[@]}"; do targets+=("tools/m4_report/m4-report-$i.elf"); done
ninja -C "$build" "${targets[@]}" >/dev/null

declare -A text data bss
for i in "${images[@]}"; do
  elf="$build/tools/m4_report/m4-report-$i.elf"
  # Code and read-only data in the CODE region; .data; .bss without the heap and stacks.
  read -r t d b < <(arm-none-eabi-size -A "$elf" | awk '
    $1 ~ /^\.(text|ARM\.exidx|init_array|fini_array|preinit_array)$/ { t += $2 }
    $1 == ".data" { d += $2 } $1 == ".bss" { b += $2 }
    END { print t, d, b }')
  text[$i]=$t data[$i]=$d bss[$i]=$b
  key=${i//-/_}
  echo "${key}.text=$t"
  echo "${key}.data=$d"
  echo "${key}.bss=$b"
done

store=0
while read -r _ size _; do store=$((store + 16#$size)); done < <(arm-none-eabi-nm -C -S \
  "$build/tools/m4_report/m4-report-p11tls.elf" | grep -E '^[0-9a-f]+ [0-9a-f]+ [tTwW] p11tls::(RamNvm|FlashNvm)<.*>::')

# Optional features by the mbedTLS functions only they call (none of which the server or the
# token images link: the check below says so if that changes).
declare -A feature_fn=([resumption]=mbedtls_ssl_set_session [alpn]=mbedtls_ssl_conf_alpn_protocols
                       [pem_input]=mbedtls_x509_crt_parse)
declare -A features
for i in "${images[@]}"; do
  syms=$(arm-none-eabi-nm "$build/tools/m4_report/m4-report-$i.elf" | awk '{ print $NF }')
  f=
  for name in resumption alpn pem_input; do
    grep -qx "${feature_fn[$name]}" <<<"$syms" && f+=${f:+,}$name
  done
  features[$i]=${f:-none}
done
for i in p11tls-token server-only; do
  [ "${features[$i]}" = none ] || { echo "m4_report: image $i links ${features[$i]}: feature detection is void" >&2; exit 1; }
done
for i in p11tls p11tls-full plain; do echo "${i//-/_}.features=${features[$i]}"; done
echo "features_like_plain=$([ "${features[p11tls]}" = "${features[plain]}" ] && echo yes || echo no)"

declare -A run
for i in p11tls p11tls-full plain; do
  out=$("$board/run-qemu.sh" "$build/tools/m4_report/m4-report-$i.elf")
  while IFS='=' read -r k v; do
    [ -n "$k" ] && run[$i.$k]=$v && echo "${i//-/_}.$k=$v"
  done <<<"$out"
  [ -n "${run[$i.handshake_insns]:-}" ] || { echo "m4_report: image $i failed" >&2; exit 1; }
done

tls_layer=$(((text[p11tls] - text[p11tls-token]) - (text[plain] - text[server-only])))
tls_layer_full=$(((text[p11tls-full] - text[p11tls-token]) - (text[plain] - text[server-only])))
token=$((text[p11tls-token] - text[server-only]))
echo "tls_layer.text=$tls_layer"
echo "tls_layer_full.text=$tls_layer_full"
# Where the TLS layer's bytes are: named code and data, net of what differs between the p11tls
# and p11tls-token images, by kind (their sum is p11tls - p11tls-token less unnamed bytes:
# string literals, padding). "token" is the token's own code that the TLS layer's calls made
# the compiler inline or outline differently; "other" is the harness. mbedtls_session_only:
# mbedTLS functions the p11tls image adds over p11tls-token less those the plain client adds
# over server-only.
python3 - "$build/tools/m4_report" <<'PY'
import re, subprocess, sys
def symbols(image):
    out = subprocess.run(["arm-none-eabi-nm", "-C", "-S", f"{sys.argv[1]}/m4-report-{image}.elf"],
                         capture_output=True, text=True, check=True).stdout
    d = {}
    for line in out.splitlines():
        m = re.match(r"[0-9a-f]+ ([0-9a-f]+) ([tTwWrR]) (.*)", line)
        if m: d[m.group(3)] = d.get(m.group(3), 0) + int(m.group(1), 16)
    return d
def delta(x, y):
    return {n: x.get(n, 0) - y.get(n, 0) for n in set(x) | set(y) if x.get(n, 0) != y.get(n, 0)}
kinds = {"diagnostics": r"describe|verify_text|alert_text|CSWTCH", "session": r"TlsSession<",
         "glue": r"p11tls::detail::mbed::", "mbedtls": r"^mbedtls_|^ssl_",
         "token": r"SoftToken<|FlashNvm<|SimFlash<|MemoryPipe<|p11tls::token::|open_token"}
total = dict.fromkeys(list(kinds) + ["other"], 0)
for name, size in delta(symbols("p11tls"), symbols("p11tls-token")).items():
    total[next((k for k, rx in kinds.items() if re.search(rx, name)), "other")] += size
for k, v in total.items(): print(f"tls_layer.named.{k}={v}")
plain = delta(symbols("plain"), symbols("server-only"))
mbed = lambda d: sum(v for n, v in d.items() if re.search(kinds["mbedtls"], n))
print(f"tls_layer.mbedtls_session_only={total['mbedtls'] - mbed(plain)}")
PY
echo "token_and_store.text=$token"
echo "store.text=$store"
awk -v a="${run[p11tls.handshake_insns]}" -v b="${run[plain.handshake_insns]}" \
  'BEGIN { printf "handshake_insns.ratio=%.4f\n", a / b }'
awk -v a="${run[p11tls.heap_peak]}" -v b="${run[plain.heap_peak]}" \
  'BEGIN { printf "heap_peak.ratio=%.3f\n", a / b }'

ok() { if "$@"; then echo yes; else echo no; fi; }
echo "target.tls_layer_text_max=4096"
echo "target.tls_layer_text_ok=$(ok [ "$tls_layer" -le 4096 ])"
echo "target.handshake_insns_ratio_max=1.02"
echo "target.handshake_insns_ratio_ok=$(ok awk -v a="${run[p11tls.handshake_insns]}" -v b="${run[plain.handshake_insns]}" 'BEGIN { exit !(a <= 1.02 * b) }')"
echo "target.heap_peak_max=24576"
echo "target.heap_peak_ok=$(ok [ "${run[p11tls.heap_peak]}" -le 24576 ])"
