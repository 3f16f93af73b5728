#!/usr/bin/env bash
# Compares the CPU time (user + sys) of two ocirender binaries on one image, alternating them
# so that load from other jobs falls on both alike; prints each binary's mean CPU, wall and
# last peak RSS. The output goes to a scratch file that is removed after each run.
#
# Usage: scripts/bench-cpu-compare.sh BASE_BIN NEW_BIN IMAGE RUNS [convert options...]
#   e.g. scripts/bench-cpu-compare.sh /tmp/ocirender-base target/release/ocirender \
#          /tmp/synth20k:latest 8 --compression zstd:2 --no-fragments
set -euo pipefail
base=${1:?base binary}; new=${2:?new binary}; image=${3:?image}; runs=${4:?runs}
shift 4
out=$(mktemp -d /tmp/bench-cpu-compare.XXXX)
trap 'rm -rf "$out"' EXIT
for _ in $(seq "$runs"); do
  for which in base new; do
    bin=$base; [ "$which" = new ] && bin=$new
    rm -f "$out/out.sqfs"
    /usr/bin/time -f "$which %U %S %e %M" "$bin" convert "$image" "$out/out.sqfs" "$@" \
      2>&1 >/dev/null | tail -1
  done
done | awk '{cpu[$1]+=$2+$3; wall[$1]+=$4; rss[$1]=$5; n[$1]++}
  END {for (b in cpu) printf "%s: cpu %.3f s, wall %.3f s, peak RSS %d KiB (mean of %d runs)\n",
       b, cpu[b]/n[b], wall[b]/n[b], rss[b], n[b]}'
