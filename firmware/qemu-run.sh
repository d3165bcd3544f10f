#!/usr/bin/env bash
# Cargo runner (.cargo/config.toml): boots an ELF on a QEMU Cortex-M machine and decodes its
# defmt log with defmt-print.
#
#   qemu-run.sh [--machine mps2-an386|mps3-an547|mps2-an385] ELF [QEMU ARGS...]
#
# The machine defaults to mps2-an386 (Cortex-M4F); .cargo/config.toml passes each target's
# machine: mps3-an547 (Cortex-M55) for thumbv8m.main-none-eabihf, mps2-an385 (Cortex-M3, which
# executes the thumbv6m-none-eabi Cortex-M0+ build) for thumbv6m-none-eabi.
# `-icount shift=0,align=off` makes QEMU execute exactly one instruction per virtual
# nanosecond, so SysTick ticks once per 10^9 / clock-Hz instructions (40 at the MPS2 boards'
# 25 MHz, 31.25 at the AN547's 32 MHz) and the firmware's instruction counts are exact and
# repeatable. Exits with the firmware's semihosting exit code (0 = success), or 124 when
# QEMU_TIMEOUT (seconds, default 300) expires.
set -uo pipefail
machine=mps2-an386
if [ "${1:-}" = "--machine" ]; then
  machine="${2:?qemu-run.sh: --machine needs a value}"
  shift 2
fi
case "$machine" in
  mps2-an386) cpu=cortex-m4 ;;
  mps3-an547) cpu=cortex-m55 ;;
  mps2-an385) cpu=cortex-m3 ;;
  *) echo "qemu-run.sh: unknown machine $machine (mps2-an386, mps3-an547, mps2-an385)" >&2; exit 2 ;;
esac
elf="${1:?usage: qemu-run.sh [--machine NAME] ELF [QEMU ARGS...]}"
shift
for tool in qemu-system-arm defmt-print; do
  command -v "$tool" >/dev/null || { echo "qemu-run.sh: $tool not found (see firmware/README.md)" >&2; exit 127; }
done
timeout "${QEMU_TIMEOUT:-300}" qemu-system-arm \
  -machine "$machine" -cpu "$cpu" -nographic -monitor none -serial null \
  -semihosting-config enable=on,target=native \
  -icount shift=0,align=off \
  -kernel "$elf" "$@" </dev/null | defmt-print -e "$elf"
status=("${PIPESTATUS[@]}")
if [ "${status[0]}" -ne 0 ]; then exit "${status[0]}"; fi
exit "${status[1]}"
