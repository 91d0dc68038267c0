# SPDX-License-Identifier: MIT
# A release build (-Drelease=true defines P11TLS_RELEASE) refuses board host-flash: its TRNG is
# a simulation. The board header compiles without P11TLS_RELEASE, and fails with it, naming why.
#   bash release_refused.sh COMPILER [FLAGS...]   (FLAGS: -std and the -I paths of the build)
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: bash release_refused.sh COMPILER [FLAGS...]" >&2; exit 2; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/p11tls-release-refused.XXXXXX")
trap 'rm -rf "$dir"' EXIT
printf '#include <p11tls/board.hpp>\nint main() { return 0; }\n' >"$dir/board.cpp"

if ! timeout 300 "$@" -fsyntax-only "$dir/board.cpp" 2>"$dir/debug.err"; then
    cat "$dir/debug.err" >&2
    echo "FAIL: the board header does not compile without P11TLS_RELEASE" >&2
    exit 1
fi
echo "without P11TLS_RELEASE: compiles"
set +e
timeout 300 "$@" -DP11TLS_RELEASE -fsyntax-only "$dir/board.cpp" 2>"$dir/release.err"
rc=$?
set -e
if ((rc == 0)); then
    echo "FAIL: the board header compiled with P11TLS_RELEASE" >&2
    exit 1
fi
((rc != 124)) || { echo "FAIL: the compiler timed out" >&2; exit 1; }
if ! grep -q "SimulatedTrng is a simulation and NOT secure" "$dir/release.err"; then
    cat "$dir/release.err" >&2
    echo "FAIL: the release build failed for another reason than the simulated TRNG" >&2
    exit 1
fi
echo "with P11TLS_RELEASE: refused ($(grep -c 'error:' "$dir/release.err") error line(s)):"
grep -m1 'static assertion failed' "$dir/release.err"
