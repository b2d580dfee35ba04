#!/usr/bin/env bash
# Rebuilds the guest programs in fixtures/guest/ (raw, position-independent arm64 images,
# loaded at RAM base + 0x80000) with binutils-aarch64-linux-gnu:
#   apt-get install -y binutils-aarch64-linux-gnu
set -euo pipefail
cd "$(dirname "$0")/../fixtures/guest"
AS=${AS:-aarch64-linux-gnu-as}
LD=${LD:-aarch64-linux-gnu-ld}
OBJCOPY=${OBJCOPY:-aarch64-linux-gnu-objcopy}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in *.S; do
  name=${src%.S}
  "$AS" -I . -o "$tmp/$name.o" "$src"
  "$LD" -static -nostdlib -Ttext=0 -e _start -o "$tmp/$name.elf" "$tmp/$name.o"
  "$OBJCOPY" -O binary "$tmp/$name.elf" "$name.bin"
  echo "built $name.bin ($(wc -c <"$name.bin") bytes)"
done
