#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs a board mps2-an386 ELF in QEMU: the Meson exe_wrapper of boards/mps2-an386/cross.ini.
#   run-qemu.sh PROGRAM.elf [ARGS...]
# Semihosting carries the console and the exit status (SYS_EXIT_EXTENDED), so the program's
# exit code is this script's. `-icount shift=0` runs one instruction per virtual nanosecond:
# repeatable timings, and the board's CMSDK timer (25 MHz) counts instructions / 40.
# P11TLS_QEMU_TIMEOUT (seconds of host time, default 600) stops a program that hangs.
set -euo pipefail
elf=$1
shift
semihosting="enable=on,target=native,arg=$(basename "$elf")"
for a in "$@"; do semihosting+=",arg=$a"; done
exec timeout --foreground "${P11TLS_QEMU_TIMEOUT:-600}" \
  qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -semihosting-config "$semihosting" \
  -icount shift=0 -kernel "$elf"
