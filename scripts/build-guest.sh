#!/usr/bin/env bash
# Builds a dmalab guest program (a static AArch64 ELF) from C or assembly: see guest/build-guest.sh,
# which ships with the guest SDK in the npm package.
exec "$(dirname "$0")/../guest/build-guest.sh" "$@"
