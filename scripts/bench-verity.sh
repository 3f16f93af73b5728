#!/usr/bin/env bash
# What a dm-verity hash tree adds to a conversion, on a real image.
#
#   scripts/bench-verity.sh IMAGE_LAYOUT_DIR REF [RUNS]
#   e.g. scripts/bench-verity.sh /tmp/deb/oci latest 5
#
# Rows (squashfs at ocirender's defaults, zstd 3; each run alternates them):
#   plain              ocirender convert IMAGE:REF out.sqfs
#   verity-given-salt  … --verity-salt HEX   (data blocks hashed as they are written)
#   verity-derived     … --verity            (salt derived from the content: one more
#                                              parallel pass over the finished image)
#   plain+veritysetup  the plain conversion, then `veritysetup format` on its output (the
#                      two-tool way this replaces)
# The table shows the median of wall time, CPU time (user+sys), peak RSS and output size, and
# each row's wall time against `plain`. Every verity output is checked with `veritysetup verify`
# once. Needs: cryptsetup-bin (veritysetup), GNU time.
set -euo pipefail
IMAGE=${1:?image layout dir}; REF=${2:?ref}; RUNS=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/bench-verity.XXXX)
trap 'rm -rf "$work"' EXIT
salt=5a17ed0c0ffee0000000000000000000000000000000000000000000000000ff

echo "building ocirender (release)..." >&2
(cd "$here" && cargo build --release --quiet)
ours="$here/target/release/ocirender"

declare -A CMD
CMD[plain]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.sqfs'"
CMD[verity-given-salt]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.sqfs' --verity-salt $salt --verity-info '$work/info.json'"
CMD[verity-derived]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.sqfs' --verity --verity-info '$work/info.json'"
CMD[plain+veritysetup]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.sqfs' && veritysetup format --salt=$salt '$work/out.sqfs' '$work/out.hash' >/dev/null"
ORDER=(plain verity-given-salt verity-derived plain+veritysetup)

check() {
  local offset root
  offset=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hash_offset"])' "$work/info.json")
  root=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_hash"])' "$work/info.json")
  veritysetup verify "$work/out.sqfs" "$work/out.sqfs" "$root" --hash-offset="$offset"
}

for ((r = 1; r <= RUNS; r++)); do
  for name in "${ORDER[@]}"; do
    rm -f "$work/out.sqfs" "$work/out.hash" "$work/info.json"
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" bash -c "${CMD[$name]}"
    size=$(stat -c %s "$work/out.sqfs")
    echo "$name $(cat "$work/t") $size" >> "$work/results"
    if ((r == 1)) && [[ -f "$work/info.json" ]]; then
      check || { echo "veritysetup refuses the $name output" >&2; exit 1; }
    fi
  done
  echo "run $r/$RUNS done" >&2
done

python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_, rss, size = line.split()
    rows.setdefault(name, []).append((float(wall), float(user) + float(sys_), int(rss), int(size)))
base = statistics.median(r[0] for r in rows["plain"])
print(f"| {'command':<18} | wall s | × plain | cpu s | peak RSS MiB | output MiB |")
print(f"|{'-'*20}|-------:|--------:|------:|-------------:|-----------:|")
for name, rs in rows.items():
    med = lambda i: statistics.median(r[i] for r in rs)
    print(f"| {name:<18} | {med(0):6.2f} | {med(0)/base:7.3f} | {med(1):5.2f} | {med(2)/1024:12.1f} | {med(3)/2**20:10.1f} |")
PY
