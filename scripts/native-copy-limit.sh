#!/bin/sh
# Builds and runs bench/native/copy-limit.c: the workloads' copies done by libc memcpy alone,
# the machine's own ceiling for `dmalab bench`. Needs a C compiler; not part of npm test.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "native-copy-limit: no C compiler ($cc); install one (apt-get install gcc) or set CC" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$cc" -O2 -o "$out/copy-limit" "$here/bench/native/copy-limit.c"
"$out/copy-limit"
