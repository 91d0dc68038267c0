#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test suite under sanitizers (stage 2 of scripts/test.sh; also runs alone):
#   a. build-san, everything built with AddressSanitizer + UndefinedBehaviorSanitizer:
#      - the tests whose processes are all ours, with LeakSanitizer: unit, concurrency (8 threads
#        on one token, in-process and through the built module) and powerloss;
#      - the integration tests where third-party programs (OpenSSL with its pkcs11 engine,
#        s_server, mosquitto, pkcs11-tool for provisioning) load libp11tls-pkcs11.so or talk to
#        our TLS client: an instrumented library needs the ASan runtime loaded first, so every
#        process of those tests gets it by LD_PRELOAD (those that call p11tool cannot: below).
#        Leak detection is off there: it would report the third-party programs' own leaks at
#        exit; memory errors and undefined behaviour anywhere in our code still abort the test.
#        The hygiene test is not here: it replaces malloc itself (it runs in stage 1).
#   b. build-tsan: the concurrency test under ThreadSanitizer (its only target there).
# Debian's mbedTLS is not instrumented: its internals are not checked for races or memory
# errors, and its calls into our callbacks are (ours are instrumented).
#   scripts/sanitizers.sh [asan|tsan]    # both parts by default
set -euo pipefail
cd "$(dirname "$0")/.."

parts=${1:-all}
san_start=$SECONDS

setup() {  # DIR OPTIONS...: configure once, reconfigure after that
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

took() { echo "-- $1: $(($SECONDS - $2)) s"; }

if [ "$parts" = all ] || [ "$parts" = asan ]; then
  t=$SECONDS
  # -O1: the build is most of this stage; -O1 compiles it in 412 s instead of 652 s (-O2) and
  # its tests run 99 s instead of 87 s (one clean-clone run each on the 2-core build machine).
  setup build-san -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1
  # What the tests below run, not the benchmarks or the hygiene test (it replaces malloc).
  ninja -C build-san test/unit-tests test/concurrency/concurrency-tests test/nvm/powerloss-tests \
    boards/host/libp11tls-pkcs11.so examples/tls_client test/c/aws_tls_test tools/provision/p11tls-provision
  took "build-san (ASan + UBSan) build" "$t"

  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  t=$SECONDS
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
    meson test -C build-san --no-rebuild --print-errorlogs unit concurrency powerloss
  took "unit, concurrency, powerloss under ASan + UBSan + LSan" "$t"

  # GnuTLS's p11tool cannot run with the ASan runtime preloaded: p11-kit, which it loads,
  # leaves glibc's locale lock corrupt and hangs in newlocale/freelocale (`p11-kit
  # list-modules` alone hangs, no p11tls code loaded). The tests that call p11tool (p11tool,
  # persistence, pkcs11-tool, provision-cli) therefore run only unsanitized, in stage 1.
  asan_integration=(openssl-engine tls-openssl-s_server tls-mosquitto tls-softhsm aws-tls-c factory-flow)
  asan_runtime=$(gcc -print-file-name=libasan.so)
  [ -f "$asan_runtime" ] || { echo "sanitizers: no ASan runtime at $asan_runtime" >&2; exit 1; }
  t=$SECONDS
  # Third-party bugs ASan finds in those programs are suppressed one by one, each with its
  # reason (scripts/asan-third-party.supp); none is in p11tls code.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:suppressions=$PWD/scripts/asan-third-party.supp \
    meson test -C build-san --no-rebuild --print-errorlogs --timeout-multiplier 3 \
    --wrapper "env LD_PRELOAD=$asan_runtime" "${asan_integration[@]}"
  took "integration tests, third-party programs with the ASan runtime preloaded" "$t"
fi

if [ "$parts" = all ] || [ "$parts" = tsan ]; then
  t=$SECONDS
  setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dintegration_tests=false
  ninja -C build-tsan test/concurrency/concurrency-tests boards/host/libp11tls-pkcs11.so
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    meson test -C build-tsan --no-rebuild --print-errorlogs concurrency
  took "concurrency under ThreadSanitizer (build and run)" "$t"
fi
took "sanitizers, total" "$san_start"
