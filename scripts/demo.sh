#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main demo, set-up included: builds p11tls, runs the token demo on a throwaway store, then
# shows the same store through the PKCS#11 module with OpenSC's pkcs11-tool.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
echo
echo "== token_demo (C++ API, board host) =="
build/examples/token_demo --store "$store/token" --pin 1234
echo
echo "== the same token through libp11tls-pkcs11.so, listed by pkcs11-tool =="
P11TLS_STORE="$store/token" pkcs11-tool --module build/boards/host/libp11tls-pkcs11.so \
  --login --pin 1234 --list-objects
