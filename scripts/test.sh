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
#      target tests in QEMU and the size and cost report (tools/m4_report.sh).
# Extra arguments go to the first `meson test` (e.g. a test name or --suite integration).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== 1/4 build and run the test suite =="
scripts/setup.sh build
meson test -C build --print-errorlogs "$@"

echo "== 2/4 the suite under ASan + UBSan, the concurrency test under TSan =="
bash scripts/sanitizers.sh

echo "== 3/4 the main demo =="
bash scripts/demo.sh build

echo "== 4/4 board mps2-an386: cross build, target tests in QEMU, size and cost report =="
if [ -f build-m4/build.ninja ]; then
  meson setup --reconfigure build-m4 >/dev/null
else
  meson setup build-m4 --cross-file boards/mps2-an386/cross.ini -Dboard=mps2-an386 >/dev/null
fi
ninja -C build-m4
meson test -C build-m4 --print-errorlogs
bash tools/m4_report.sh build-m4
