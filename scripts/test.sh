#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, set-up included:
#   1. unit tests and the integration tests that drive pkcs11-tool, p11tool, OpenSSL (engine,
#      s_server), mosquitto and SoftHSMv2 against the built module and TLS client;
#   2. the suite again under AddressSanitizer + UndefinedBehaviorSanitizer (unit, concurrency,
#      powerloss with LeakSanitizer; the integration suite with the ASan runtime preloaded into
#      the third-party programs that load the module) and the concurrency test under
#      ThreadSanitizer (scripts/sanitizers.sh);
#   3. the main demo end to end (scripts/demo.sh);
#   4. board mps2-an386: the Cortex-M4 cross build (mbedTLS from Debian's source package), its
#      target tests in QEMU and the size and cost report (tools/m4_report.sh);
#   5. board host-flash: the token on a simulated STM32F4 flash image file, with the board's own
#      tests and the integration suite (the PKCS#11 tools, persistence, TLS peers, C interface);
#   6. every fuzz target for a bounded time on a scratch copy of its seeds (scripts/fuzz.sh).
# Extra arguments go to the first `meson test` (e.g. a test name or --suite integration).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== 1/6 build and run the test suite =="
scripts/setup.sh build
meson test -C build --print-errorlogs "$@"

echo "== 2/6 the suite under ASan + UBSan, the concurrency test under TSan =="
bash scripts/sanitizers.sh

echo "== 3/6 the main demo =="
bash scripts/demo.sh build

echo "== 4/6 board mps2-an386: cross build, target tests in QEMU, size and cost report =="
if [ -f build-m4/build.ninja ]; then
  meson setup --reconfigure build-m4 >/dev/null
else
  meson setup build-m4 --cross-file boards/mps2-an386/cross.ini -Dboard=mps2-an386 >/dev/null
fi
ninja -C build-m4
meson test -C build-m4 --print-errorlogs
bash tools/m4_report.sh build-m4

echo "== 5/6 board host-flash: the token on a simulated STM32F4 flash image =="
if [ -f build-hf/build.ninja ]; then
  meson setup --reconfigure build-hf >/dev/null
else
  meson setup build-hf -Dboard=host-flash >/dev/null
fi
ninja -C build-hf boards/host-flash/libp11tls-pkcs11.so examples/tls_client examples/token_demo \
  test/c/aws_tls_test test/boards/host-flash/board-tests
meson test -C build-hf --no-rebuild --print-errorlogs --suite integration --suite board

echo "== 6/6 fuzz targets, each for a bounded time from its seed corpus =="
bash scripts/fuzz.sh
