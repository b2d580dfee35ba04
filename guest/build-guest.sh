#!/usr/bin/env bash
# Builds a dmalab guest program: a static AArch64 ELF from C or assembly, with the guest SDK
# (include/dmalab.h, crt0.S, lib.c, guest.ld beside this script; scripts/build-guest.sh
# in the repository runs this one).
#
#   guest/build-guest.sh [--load ADDR] [-o OUT] FILE.c|FILE.S [MORE.c|MORE.S ...] [-- CFLAGS...]
#
# OUT defaults to FILE.elf beside the first source. ADDR (default 0x40080000, qemu-virt's RAM
# base + 0x80000) is where the program links and loads. An assembly program that defines
# _start itself is linked without crt0 and lib.c. Needs Debian's gcc-aarch64-linux-gnu
# (apt-get install -y gcc-aarch64-linux-gnu; `npm run setup` installs it when run as root).
set -euo pipefail
sdk="$(cd "$(dirname "$0")" && pwd)"
CC=${CC:-aarch64-linux-gnu-gcc}
load=""
out=""
srcs=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --load) load="$2"; shift 2 ;;
    -o) out="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-guest.sh: unknown option $1" >&2; exit 2 ;;
    *) srcs+=("$1"); shift ;;
  esac
done
if [ ${#srcs[@]} -eq 0 ]; then
  echo "usage: build-guest.sh [--load ADDR] [-o OUT] FILE.c|FILE.S [...] [-- CFLAGS...]" >&2
  exit 2
fi
for s in "${srcs[@]}"; do
  case "$s" in
    *.c|*.S) [ -f "$s" ] || { echo "build-guest.sh: $s: no such file" >&2; exit 2; } ;;
    *) echo "build-guest.sh: $s: expected a .c or .S source" >&2; exit 2 ;;
  esac
done
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build-guest.sh: $CC not found: apt-get install -y gcc-aarch64-linux-gnu (Debian/Ubuntu), or set CC" >&2
  exit 2
fi
first="${srcs[0]}"
[ -n "$out" ] || out="${first%.*}.elf"
# an assembly program with its own _start needs no C runtime
start=("$sdk/crt0.S" "$sdk/lib.c")
if [ ${#srcs[@]} -eq 1 ] && [[ "$first" == *.S ]] && grep -qE '^[[:space:]]*_start:' "$first"; then start=(); fi
ldflags=(-T "$sdk/guest.ld")
[ -z "$load" ] || ldflags+=("-Wl,--defsym=DMALAB_LOAD_ADDR=$load")
dir="$(dirname "$first")"
"$CC" -static -nostdlib -ffreestanding -fno-pie -no-pie -mstrict-align -fno-stack-protector \
  -fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns \
  -O2 -g -Wall -Wextra -I "$sdk/include" -I "$dir" -Wa,-I,"$dir" \
  -ffile-prefix-map="$sdk"=dmalab-guest-sdk -ffile-prefix-map="$PWD"=. \
  -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments \
  "${ldflags[@]}" -o "$out" "${start[@]}" "${srcs[@]}" "${extra[@]}"
echo "built $out ($(wc -c <"$out") bytes)"
