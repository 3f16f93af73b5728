#!/usr/bin/env bash
# Pipelining gain: `ocirender convert` with read-ahead (the next-older layer decodes on its own
# thread while the current one is merged; the default) against read-ahead off
# (--read-ahead off: each layer is opened only at its turn; its decoder still runs on a
# thread of its own, overlapping the merge of that same layer).
#
#   scripts/bench-pipeline.sh [RUNS] [JOBS] [IMAGE:REF ...]
#   e.g. scripts/bench-pipeline.sh 3 2 /tmp/deb/oci:latest
#
# Always adds a synthetic 8-layer gzip image (built once under $BENCH_DIR, default
# /tmp/ocirender-bench-pipeline: 8 layers of ~48 MiB of tar each, a mix of text-like and
# incompressible files, gzip -6). Each image is converted to tar (written to /dev/null: decoding
# and merging alone) and to squashfs (zstd 3, the default), RUNS times per mode, the two modes
# alternating (on/off, then off/on) so that the noise of a shared machine falls on both. Prints
# one line per run and a table of medians: wall seconds, CPU seconds (user+sys), and the
# on/off ratio of wall times. Needs GNU time and python3.
set -euo pipefail
RUNS=${1:-3}; JOBS=${2:-2}; shift $(( $# >= 2 ? 2 : $# ))
IMAGES=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-/tmp/ocirender-bench-pipeline}
mkdir -p "$bench"
work=$(mktemp -d /tmp/bench-pipeline.XXXX)
trap 'rm -rf "$work"' EXIT

if [[ -z ${OCIRENDER_BIN:-} ]]; then
  echo "building ocirender (release)..." >&2
  (cd "$here" && cargo build --release --quiet --bin ocirender)
fi
bin=${OCIRENDER_BIN:-$here/target/release/ocirender}

# The synthetic image: deterministic content, a proper OCI layout (blob digests, diff_ids).
if [[ ! -f $bench/synth8/index.json ]]; then
  echo "building the synthetic 8-layer image in $bench/synth8..." >&2
  python3 - "$bench/synth8" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile, subprocess
out = sys.argv[1]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return "sha256:" + h, len(data)

words = [("w%x" % i).encode() for i in range(4096)]
layers, diff_ids = [], []
for k in range(8):
    rnd = random.Random(k)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        total, n = 0, 0
        while total < 48 << 20:
            size = rnd.choice([4 << 10, 64 << 10, 512 << 10, 2 << 20])
            if n % 4 == 3:
                data = rnd.randbytes(size)          # incompressible (media, already compressed)
            else:                                   # text-like, compresses about 4:1
                data = b" ".join(rnd.choices(words, k=size // 4))[:size]
            ti = tarfile.TarInfo(f"layer{k}/d{n % 16}/f{n}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(ti, io.BytesIO(data))
            total += len(data); n += 1
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = subprocess.run(["gzip", "-6", "-n", "-c"], input=raw, capture_output=True, check=True).stdout
    digest, size = put(gz)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": digest, "size": size})
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}).encode()
cdigest, csize = put(config)
manifest = json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": cdigest, "size": csize},
                       "layers": layers}).encode()
mdigest, msize = put(manifest)
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
        "size": msize, "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
PY
fi
IMAGES+=("$bench/synth8:latest")

results=$work/results
: > "$results"
for image in "${IMAGES[@]}"; do
  for format in tar squashfs; do
    for ((r = 1; r <= RUNS; r++)); do
      if (( r % 2 )); then modes=(on off); else modes=(off on); fi
      for mode in "${modes[@]}"; do
        if [[ $format == tar ]]; then target=-; else target=$work/out.sqfs; fi
        rm -f "$work/out.sqfs"
        ahead=1:16
        [[ $mode == off ]] && ahead=off
        /usr/bin/time -f "%e %U %S" -o "$work/t" \
          "$bin" convert --quiet --progress none -j "$JOBS" --read-ahead "$ahead" \
          --format "$format" "$image" "$target" > /dev/null
        read -r wall user sys < "$work/t"
        echo "$image $format $mode $r $wall $user $sys" | tee -a "$results" >&2
      done
    done
  done
done

python3 - "$results" "$JOBS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
jobs = sys.argv[2]
print("| image | output | jobs | runs | wall on (s) | wall off (s) | on/off wall (median of pairs) | CPU on (s) | CPU off (s) |")
print("|---|---|---|---|---|---|---|---|---|")
keys = []
for r in rows:
    if (r[0], r[1]) not in keys:
        keys.append((r[0], r[1]))
for image, fmt in keys:
    sel = lambda m: [r for r in rows if r[0] == image and r[1] == fmt and r[2] == m]
    on, off = sel("on"), sel("off")
    wall = lambda rs: statistics.median(float(r[4]) for r in rs)
    cpu = lambda rs: statistics.median(float(r[5]) + float(r[6]) for r in rs)
    # Runs r of both modes ran back to back: their ratio is the least noisy figure.
    pairs = statistics.median(float(a[4]) / float(b[4]) for a, b in zip(on, off))
    print(f"| {image} | {fmt} | {jobs} | {len(on)} | {wall(on):.2f} | {wall(off):.2f} | "
          f"{pairs:.2f} | {cpu(on):.2f} | {cpu(off):.2f} |")
PY
