#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets (fuzz/, Meson option `fuzz`, clang) and runs each for a bounded
# time on a scratch copy of its committed seed corpus (fuzz/corpus/<target>/; nothing is
# written into the repository). Prints per target
#   fuzz.<target>.execs=N
#   fuzz.<target>.crashes=N
# and exits non-zero if any target crashed (the crashing input is kept and its path printed).
#
#   scripts/fuzz.sh                           CI length: every target 30 s, two at a time
#   scripts/fuzz.sh --time 3600 --jobs 1      long run: an hour per target, one at a time
#   scripts/fuzz.sh nvm-mount:1200 import     chosen targets; TARGET:SECONDS overrides --time
#   scripts/fuzz.sh --corpus-out DIR          also keep each grown corpus in DIR/<target>
#   scripts/fuzz.sh --seeds                   regenerate fuzz/corpus/* with each target's
#                                             seed mode (writes into the repository)
# Options: --build-dir DIR (default build-fuzz), --jobs N (default 2), --time SECONDS
# (default 30). Needs clang and libclang-rt-14-dev (libFuzzer, sanitizer runtimes); the
# build compiles mbedTLS from Debian's source package (scripts/fetch-mbedtls.sh).
# Reproduce a crash: build-fuzz/fuzz/fuzz-<target> <crash file>.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(nvm-mount token-load attr-list cryptoki-templates import tls-session csr-cert)
build=build-fuzz
jobs=2
time=30
seeds=false
corpus_out=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --corpus-out) corpus_out=$2; shift 2 ;;
    --seeds) seeds=true; shift ;;
    -h|--help) sed -n '3,21p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  name=${t%%:*}
  [[ " ${all_targets[*]} " == *" $name "* ]] || { echo "fuzz.sh: no target $name (${all_targets[*]})" >&2; exit 2; }
done

for tool in clang clang++ meson ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool missing (apt-get install clang libclang-rt-14-dev meson ninja-build)" >&2; exit 1; }
done

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Dtests=disabled -Dintegration_tests=false >/dev/null
fi
ninja -C "$build" $(for t in "${targets[@]}"; do echo "fuzz/fuzz-${t%%:*}"; done) >/dev/null

if $seeds; then
  for t in "${targets[@]}"; do
    name=${t%%:*}
    rm -rf "fuzz/corpus/$name.new" && mkdir -p "fuzz/corpus/$name.new"
    P11TLS_FUZZ_WRITE_SEEDS="fuzz/corpus/$name.new" "$build/fuzz/fuzz-$name"
    # Reproducers of fixed bugs (regress-*) stay; the generated seeds are replaced.
    find "fuzz/corpus/$name" -maxdepth 1 -type f ! -name 'regress-*' -delete 2>/dev/null || true
    mkdir -p "fuzz/corpus/$name" && mv "fuzz/corpus/$name.new"/* "fuzz/corpus/$name/" && rmdir "fuzz/corpus/$name.new"
  done
  exit 0
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/p11tls-fuzz.XXXXXX")
keep=false
cleanup() { $keep || rm -rf "$scratch"; }
trap cleanup EXIT

# One target: its corpus copied to the scratch dir, libFuzzer for the given time, the result
# in $scratch/<target>/result.
run_one() {
  local name=$1 seconds=$2 dir="$scratch/$1"
  mkdir -p "$dir/corpus"
  cp fuzz/corpus/"$name"/* "$dir/corpus/"
  local rc=0 bin
  bin=$(realpath "$build/fuzz/fuzz-$name")
  (cd "$dir" && "$bin" -max_total_time="$seconds" -print_final_stats=1 \
     -timeout=60 -rss_limit_mb=3072 -artifact_prefix="$dir/" corpus >"$dir/log" 2>&1) || rc=$?
  local execs crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  crashes=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1  # died without an artifact
  echo "${execs:-0} $crashes $rc" >"$dir/result"
  if [ -n "$corpus_out" ]; then
    mkdir -p "$corpus_out/$name" && cp -n "$dir/corpus/"* "$corpus_out/$name/" 2>/dev/null || true
  fi
}

running=0
for t in "${targets[@]}"; do
  name=${t%%:*}
  seconds=$time
  [[ "$t" == *:* ]] && seconds=${t#*:}
  echo "fuzz.sh: $name for ${seconds}s" >&2
  run_one "$name" "$seconds" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=0
for t in "${targets[@]}"; do
  name=${t%%:*}
  read -r execs crashes rc <"$scratch/$name/result"
  echo "fuzz.$name.execs=$execs"
  echo "fuzz.$name.crashes=$crashes"
  if [ "$crashes" -ne 0 ]; then
    failed=1
    keep=true
    echo "fuzz.sh: $name crashed (exit $rc); log and input kept in $scratch/$name:" >&2
    grep -E 'ERROR|invariant|runtime error|SUMMARY|Test unit written' "$scratch/$name/log" | head -10 >&2 || true
  fi
done
exit $failed
