#!/bin/sh
# Rebuilds fixtures/dt/*.dtb from the .dts sources with dtc (Debian: device-tree-compiler),
# then derives the two broken blobs the tests need:
#   truncated.dtb  the first 200 bytes of rpi4.dtb (the header promises more)
#   corrupt.dtb    rpi4.dtb with the first property's length (structure block + 12) set to
#                  0xffffff00, so its value runs far past the structure block
# The .dtb files are committed: nothing else (setup, tests) needs dtc.
set -eu
cd "$(dirname "$0")/../fixtures/dt"
command -v dtc >/dev/null 2>&1 || { echo "build-dt.sh: dtc not found (apt-get install device-tree-compiler)" >&2; exit 1; }
for src in *.dts; do
	dtc -q -I dts -O dtb -o "${src%.dts}.dtb" "$src"
done
head -c 200 rpi4.dtb > truncated.dtb
cp rpi4.dtb corrupt.dtb
# off_dt_struct: big-endian u32 at byte 8 of the header
off=$(od -An -tu1 -j8 -N4 rpi4.dtb | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
printf '\377\377\377\000' | dd of=corrupt.dtb bs=1 seek=$((off + 12)) conv=notrunc status=none
echo "build-dt.sh: $(ls *.dtb | wc -l) blobs in fixtures/dt"
