#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages p11tls needs (by name, from the machine's configured archive),
# then configures and builds the Meson build directory.
#   scripts/setup.sh [BUILD_DIR] [extra meson setup options...]
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
shift || true

packages=(
  # build
  g++ meson ninja-build pkg-config
  # libraries
  libmbedtls-dev libp11-kit-dev libfmt-dev catch2
  # real peers for the integration tests and the demo
  openssl opensc gnutls-bin libengine-pkcs11-openssl softhsm2 mosquitto mosquitto-clients python3
  # board mps2-an386: Cortex-M4 toolchain, newlib-nano, QEMU; dpkg-dev for `apt-get source mbedtls`
  gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm dpkg-dev
  # fuzz targets: clang with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ -f "$build_dir/build.ninja" ]; then
  meson setup --reconfigure "$build_dir" "$@" >/dev/null
else
  meson setup "$build_dir" "$@"
fi
ninja -C "$build_dir"
