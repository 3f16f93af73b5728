#!/usr/bin/env bash
# Peer comparison on a real image: ocirender against the tools people use today.
#
#   scripts/bench-peers.sh IMAGE_LAYOUT_DIR REF [RUNS]
#   e.g. scripts/bench-peers.sh /tmp/deb/oci latest 5
#
# Squashfs rows use zstd level 2 and no fragments (upstream ocirender 0.3's own mksquashfs
# settings; tar2sqfs has no switch for fragments of small files, so it gets -T, no tail packing
# of files larger than a block):
#   ours          ocirender convert IMAGE:REF out.sqfs --compression zstd:2 --no-fragments
#   umoci+mksq    umoci unpack + mksquashfs -comp zstd -Xcompression-level 2 -no-fragments
#   up03+tar2sqfs upstream ocirender 0.3 (benches/peers) writes its merged tar into tar2sqfs
#   tar2sqfs-only tar2sqfs fed an already merged, uncompressed tar (squashfs stage alone)
# and ocirender's defaults (zstd 3, fragments, dedup) against mksquashfs at the same level.
# Tar rows: ours vs upstream 0.3 writing the merged tar.
# Each command runs RUNS times, alternating; the table shows the median of wall time, CPU time
# (user+sys), peak RSS and output size. Needs: squashfs-tools, squashfs-tools-ng, umoci, GNU time.
set -euo pipefail
IMAGE=${1:?image layout dir}; REF=${2:?ref}; RUNS=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/bench-peers.XXXX)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc)

echo "building ocirender and the upstream 0.3 harness (release)..." >&2
(cd "$here" && cargo build --release --quiet)
(cd "$here/benches/peers" && cargo build --release --quiet)
ours="$here/target/release/ocirender"
peer="$here/benches/peers/target/release/ocirender-peer"

# Upstream takes the first manifest of index.json: give it a layout listing only REF.
mkdir -p "$work/single"
cp "$IMAGE/oci-layout" "$work/single/"
ln -s "$(cd "$IMAGE" && pwd)/blobs" "$work/single/blobs"
python3 - "$IMAGE/index.json" "$REF" > "$work/single/index.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
i["manifests"] = [m for m in i["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[2]]
json.dump(i, sys.stdout)
PY
"$ours" convert --quiet "$IMAGE:$REF" "$work/merged.tar"

declare -A CMD
CMD[ours-sqfs]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.sqfs' --compression zstd:2 --no-fragments"
CMD[umoci+mksquashfs]="umoci unpack --image '$IMAGE:$REF' '$work/bundle' >/dev/null && mksquashfs '$work/bundle/rootfs' '$work/out.sqfs' -comp zstd -Xcompression-level 2 -no-fragments -noappend -quiet -no-progress -processors $jobs"
CMD[up03+tar2sqfs]="'$peer' tar '$work/single' /dev/stdout | tar2sqfs -q -f -c zstd -X level=2 -T -j $jobs '$work/out.sqfs'"
CMD[tar2sqfs-only]="tar2sqfs -q -f -c zstd -X level=2 -T -j $jobs '$work/out.sqfs' < '$work/merged.tar'"
CMD[ours-sqfs-defaults]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.sqfs' --compression zstd:3"
CMD[mksquashfs-defaults-z3]="umoci unpack --image '$IMAGE:$REF' '$work/bundle' >/dev/null && mksquashfs '$work/bundle/rootfs' '$work/out.sqfs' -comp zstd -Xcompression-level 3 -noappend -quiet -no-progress -processors $jobs"
CMD[ours-tar]="'$ours' convert --quiet '$IMAGE:$REF' '$work/out.tar'"
CMD[up03-tar]="'$peer' tar '$work/single' '$work/out.tar'"
ORDER=(ours-sqfs umoci+mksquashfs up03+tar2sqfs tar2sqfs-only ours-sqfs-defaults mksquashfs-defaults-z3 ours-tar up03-tar)

for ((r = 1; r <= RUNS; r++)); do
  for name in "${ORDER[@]}"; do
    rm -rf "$work/bundle" "$work/out.sqfs" "$work/out.tar"
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" bash -c "${CMD[$name]}"
    size=$(stat -c %s "$work/out.sqfs" 2>/dev/null || stat -c %s "$work/out.tar")
    echo "$name $(cat "$work/t") $size" >> "$work/results"
  done
  echo "run $r/$RUNS done" >&2
done

python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, wall, user, sys_, rss, size = line.split()
    rows.setdefault(name, []).append((float(wall), float(user) + float(sys_), int(rss), int(size)))
print(f"| {'command':<24} | wall s | cpu s | peak RSS MiB | output MiB |")
print(f"|{'-'*26}|-------:|------:|-------------:|-----------:|")
for name, rs in rows.items():
    med = lambda i: statistics.median(r[i] for r in rs)
    print(f"| {name:<24} | {med(0):6.2f} | {med(1):5.2f} | {med(2)/1024:12.1f} | {med(3)/2**20:10.1f} |")
PY
