#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, set-up included: unit tests and the integration tests that drive
# pkcs11-tool, p11tool and OpenSSL against the built module.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
meson test -C build --print-errorlogs "$@"
