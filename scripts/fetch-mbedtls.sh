#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fetches and unpacks Debian's `mbedtls` source package (the version of the installed
# libmbedtls-dev, so host and target run the same mbedTLS) for the MCU boards, which compile
# mbedTLS from source with their own config header. Prints the source directory on stdout.
#   scripts/fetch-mbedtls.sh [CACHE_DIR]     (default: ${XDG_CACHE_HOME:-~/.cache}/p11tls)
# The source is unpacked once per version; later runs only print the directory.
#
# Machines without deb-src lines get them derived from their own apt sources: every `deb`
# entry (deb822 *.sources stanzas and one-line *.list / sources.list entries) is written again
# as `deb-src` to /etc/apt/sources.list.d/p11tls-deb-src.{sources,list}, then apt-get update.
# No mirror is named here: the machine's configured archive is the one used.
set -euo pipefail

cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/p11tls}
log() { echo "fetch-mbedtls: $*" >&2; }

version=$(dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null || true)
upstream=${version#*:}
upstream=${upstream%-*}
if [ -n "$upstream" ]; then
  for d in "$cache"/mbedtls-"$upstream"; do
    [ -f "$d/library/ssl_tls.c" ] && { echo "$d"; exit 0; }
  done
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

have_deb_src() {
  grep -Eqs '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list ||
    grep -Eqs '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources
}

if ! have_deb_src; then
  log "no deb-src entries: deriving them from the machine's apt sources"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # deb822: each stanza whose Types include `deb`, again with `Types: deb-src`.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
         /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ && !/(^|\n)Enabled:[ \t]*no/ {
           sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' "$f" >>"$tmp/p11tls-deb-src.sources"
  done
  # One-line format.
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n -E 's/^[[:space:]]*deb([[:space:]])/deb-src\1/p' "$f" >>"$tmp/p11tls-deb-src.list"
  done
  for f in "$tmp"/p11tls-deb-src.*; do
    [ -s "$f" ] && $sudo install -m 0644 "$f" /etc/apt/sources.list.d/
  done
  have_deb_src || { log "found no deb entries to derive deb-src from"; exit 1; }
  $sudo apt-get update -q >&2
fi

command -v dpkg-source >/dev/null || { log "dpkg-source missing: install dpkg-dev (scripts/setup.sh does)"; exit 1; }

mkdir -p "$cache"
cd "$cache"
spec=mbedtls
[ -n "$version" ] && spec="mbedtls=$version"
log "apt-get source $spec into $cache"
apt-get source -q "$spec" >&2 || { [ "$spec" != mbedtls ] && apt-get source -q mbedtls >&2; }
dir="$cache/mbedtls-$upstream"
[ -n "$upstream" ] && [ -d "$dir" ] || dir=$(find "$cache" -maxdepth 1 -type d -name 'mbedtls-*' | sort -V | tail -1)
[ -f "$dir/library/ssl_tls.c" ] || { log "unpacked source not found under $cache"; exit 1; }
echo "$dir"
