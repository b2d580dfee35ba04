#!/usr/bin/env bash
# Rebuilds the built-in guest programs of fixtures/guest/ with scripts/build-guest.sh:
#   NAME.c → NAME.elf (static ELF, linked at 0x40080000)
#   NAME.S → NAME.bin (raw, position-independent: adr only, so it runs at any --load, on any
#            board), taken from the ELF with objcopy
# Needs Debian's gcc-aarch64-linux-gnu (which brings binutils-aarch64-linux-gnu).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../fixtures/guest"
OBJCOPY=${OBJCOPY:-aarch64-linux-gnu-objcopy}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in *.c; do
  [ -e "$src" ] || continue
  "$here/../guest/build-guest.sh" "$src"
done
for src in *.S; do
  name=${src%.S}
  "$here/../guest/build-guest.sh" --load 0 -o "$tmp/$name.elf" "$src" >/dev/null
  "$OBJCOPY" -O binary "$tmp/$name.elf" "$name.bin"
  echo "built $name.bin ($(wc -c <"$name.bin") bytes)"
done
