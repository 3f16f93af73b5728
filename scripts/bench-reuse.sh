#!/usr/bin/env bash
# What `convert --reuse PREVIOUS.sqfs` saves when an image changes a little.
#
#   scripts/bench-reuse.sh IMAGE_LAYOUT_DIR REF [RUNS] [OTHER_LAYOUT:REF]
#   e.g. scripts/bench-reuse.sh /tmp/deb/oci latest 3 /tmp/deb-b/oci:latest
#
# v1 is IMAGE:REF; v2 is v1 plus one layer made by scripts/make-v2-image.sh (whole packages
# upgraded, about 3 % of the files, new files, a deleted directory). For zstd:15 and xz, v1 is
# converted once, then v2 is converted RUNS times each way, alternating:
#   fresh   ocirender convert v2 out.sqfs --compression C
#   reuse   ocirender convert v2 out.sqfs --compression C --reuse v1.sqfs
# The table gives the medians of wall time, CPU time (user+sys) and peak RSS, reuse against
# fresh, and whether the two outputs have the same sha256 (they must). With OTHER_LAYOUT:REF,
# it also converts that image (e.g. the same base with another package set) with --reuse of
# v1 and reports the fraction of blocks and bytes reused. Needs umoci, root and GNU time.
set -euo pipefail
IMAGE=${1:?image layout dir}; REF=${2:?ref}; RUNS=${3:-3}; OTHER=${4:-}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/bench-reuse.XXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1600000000

echo "building ocirender (release)..." >&2
(cd "$here" && cargo build --release --quiet)
ours="$here/target/release/ocirender"
"$here/scripts/make-v2-image.sh" "$IMAGE" "$REF" "$work/oci"

for comp in zstd:15 xz; do
  tag=${comp//:/}
  "$ours" convert --quiet "$work/oci:v1" "$work/v1-$tag.sqfs" --compression "$comp"
  for ((r = 1; r <= RUNS; r++)); do
    for mode in fresh reuse; do
      extra=()
      [[ $mode == reuse ]] && extra=(--reuse "$work/v1-$tag.sqfs")
      rm -f "$work/$mode.sqfs"
      /usr/bin/time -f "%e %U %S %M" -o "$work/t" \
        "$ours" convert --progress=none "$work/oci:v2" "$work/$mode.sqfs" --compression "$comp" \
        "${extra[@]}" 2> "$work/log"
      echo "$comp $mode $(cat "$work/t") $(sha256sum < "$work/$mode.sqfs" | cut -c1-16)" >> "$work/results"
      if [[ $mode == reuse && $r == 1 ]]; then grep '^reuse:' "$work/log" | sed "s|$work/||" >&2; fi
    done
    echo "$comp: run $r/$RUNS done" >&2
  done
done

python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    comp, mode, wall, user, sys_, rss, sha = line.split()
    rows.setdefault((comp, mode), []).append((float(wall), float(user) + float(sys_), int(rss), sha))
print(f"| compression | mode  | wall s | × fresh | cpu s | peak RSS MiB | same sha256 |")
print(f"|-------------|-------|-------:|--------:|------:|-------------:|-------------|")
for (comp, mode), rs in rows.items():
    med = lambda i: statistics.median(r[i] for r in rs)
    fresh = rows[(comp, "fresh")]
    base = statistics.median(r[0] for r in fresh)
    same = all(a[3] == b[3] for a, b in zip(rs, fresh))
    print(f"| {comp:<11} | {mode:<5} | {med(0):6.2f} | {med(0)/base:7.3f} | {med(1):5.2f} "
          f"| {med(2)/1024:12.1f} | {'yes' if same else 'NO'} |")
PY

if [[ -n $OTHER ]]; then
  "$ours" convert --progress=none "$OTHER" "$work/other.sqfs" --compression zstd:15 \
    --reuse "$work/v1-zstd15.sqfs" 2>&1 | grep '^reuse:' | sed "s|$work/||;s|^|$OTHER against v1: |"
fi
