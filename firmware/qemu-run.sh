#!/usr/bin/env bash
# Cargo runner (.cargo/config.toml): boots an ELF on QEMU's mps2-an386 (Cortex-M4) and decodes
# its defmt log with defmt-print. `-icount shift=0,align=off` makes QEMU execute exactly one
# instruction per virtual nanosecond, so SysTick (25 MHz) ticks once per 40 instructions and
# the firmware's instruction counts are exact and repeatable. Exits with the firmware's
# semihosting exit code (0 = success), or 124 when QEMU_TIMEOUT (seconds, default 300) expires.
set -uo pipefail
elf="$1"
shift
for tool in qemu-system-arm defmt-print; do
  command -v "$tool" >/dev/null || { echo "qemu-run.sh: $tool not found (see firmware/README.md)" >&2; exit 127; }
done
timeout "${QEMU_TIMEOUT:-300}" qemu-system-arm \
  -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial null \
  -semihosting-config enable=on,target=native \
  -icount shift=0,align=off \
  -kernel "$elf" "$@" </dev/null | defmt-print -e "$elf"
status=("${PIPESTATUS[@]}")
if [ "${status[0]}" -ne 0 ]; then exit "${status[0]}"; fi
exit "${status[1]}"
