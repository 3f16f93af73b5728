#!/usr/bin/env bash
# How ocirender's time and memory grow with image size, file count and layer count.
#
#   scripts/bench-scaling.sh [OUT_DIR]          (default /tmp/ocirender-scaling)
#   scripts/bench-scaling.sh OUT_DIR memory     (the memory series only, see below)
#
# Generates synthetic gzip-layered images (examples/synth_image.rs; deterministic) and converts
# each to squashfs with the defaults (zstd 3, fragments, dedup, one job per core), timing it with
# GNU time. Three series, each varying one thing:
#   size:   20,000 files, 4 layers, 100 MB → 2 GB of file content
#   files:  200 MB, 4 layers, 10,000 → 1,000,000 files
#   layers: 20,000 files, 200 MB, 1 → 100 layers
# Prints a markdown table (also OUT_DIR/scaling.md) with per-unit costs, so growth worse than
# linear shows as a rising column, and plots OUT_DIR/scaling.png when matplotlib is importable.
#
# The memory series (`memory`): 200 MB, 4 layers, 1,000,000 and 10,000,000 files, each into
# squashfs (with the default --memory-limit and unlimited), tar and a directory, with peak RSS,
# bytes per file and what spilled to disk (OUT_DIR/memory.md). The 10M image takes ~2.5 min to
# generate and 0.6 GB; its directory output needs 10M free inodes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/ocirender-scaling}
mkdir -p "$out"
(cd "$here" && cargo build --release --quiet --bin ocirender --example synth_image)
bin="$here/target/release/ocirender"
synth="$here/target/release/examples/synth_image"

rows="$out/rows.tsv"
: > "$rows"
run() { # series files bytes layers
  local series=$1 files=$2 bytes=$3 layers=$4
  local img="$out/img-$files-$bytes-$layers"
  [ -f "$img/index.json" ] || "$synth" "$img" "$files" "$bytes" "$layers"
  local gz
  gz=$(du -sb "$img/blobs" | cut -f1)
  rm -f "$out/out.sqfs"
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$out/t" "$bin" convert --quiet "$img:latest" "$out/out.sqfs"
  read -r wall user sys rss < "$out/t"
  local size
  size=$(stat -c %s "$out/out.sqfs")
  rm -f "$out/out.sqfs"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$series" "$files" "$bytes" "$layers" "$gz" \
    "$wall" "$(echo "$user + $sys" | bc)" "$rss" "$size" >> "$rows"
  echo "done: $series files=$files bytes=$bytes layers=$layers wall=${wall}s rss=${rss}KiB" >&2
}

memory() {
  local table="$out/memory.md"
  printf '| files | output | --memory-limit | wall s | CPU s | peak RSS MiB | RSS bytes per file | spilled |\n' > "$table"
  printf '|---:|---|---|---:|---:|---:|---:|---|\n' >> "$table"
  for files in 1000000 10000000; do
    local img="$out/img-$files-200000000-4"
    [ -f "$img/index.json" ] || "$synth" "$img" "$files" 200000000 4
    for run in squashfs:256M squashfs:unlimited tar:256M dir:256M; do
      local format=${run%%:*} limit=${run#*:}
      local dest="$out/out.$format"
      rm -rf "$dest"
      sync
      /usr/bin/time -f "%e %U %S %M" -o "$out/t" \
        "$bin" convert --progress none --memory-limit "$limit" --format "$format" \
        "$img:latest" "$dest" 2> "$out/summary"
      read -r wall user sys rss < "$out/t"
      rm -rf "$dest"
      local spilled
      spilled=$(sed -n -e 's/^memory budget reached: \(.*\) of the squashfs tree spilled to disk in \(.*\)$/tree: \1, \2/p' \
        -e "s/^memory budget reached: the merge's path table and hiding records kept .* on disk (\(.*\) written)$/merge pages: \1/p" \
        -e "s/^memory budget reached: the squashfs writer's file placements kept .* on disk (\(.*\) written)$/file pages: \1/p" \
        -e "s/^memory budget reached: the squashfs export table kept .* on disk (\(.*\) written)$/export pages: \1/p" \
        "$out/summary" | paste -sd ';' | sed 's/;/; /g')
      printf '| %s | %s | %s | %s | %s | %d | %d | %s |\n' "$files" "$format" "$limit" "$wall" \
        "$(echo "$user + $sys" | bc)" $((rss / 1024)) $((rss * 1024 / files)) "${spilled:-—}" >> "$table"
      echo "done: memory files=$files $format limit=$limit wall=${wall}s rss=${rss}KiB" >&2
    done
  done
  cat "$table"
}

if [ "${2:-}" = memory ]; then
  memory
  exit
fi

for b in 100000000 500000000 1000000000 2000000000; do run size 20000 "$b" 4; done
for f in 10000 100000 1000000; do run files "$f" 200000000 4; done
for l in 1 10 100; do run layers 20000 200000000 "$l"; done

python3 "$here/scripts/plot-scaling.py" "$rows" "$out"
