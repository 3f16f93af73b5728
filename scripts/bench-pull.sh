#!/usr/bin/env bash
# End-to-end pull benchmark: `ocirender pull` (download and conversion overlapped, no layout
# written) against `skopeo copy docker://… oci:DIR` followed by `ocirender convert DIR`, both
# reading the same image from a docker-registry on 127.0.0.1, several runs, alternating which
# goes first so that neither always finds the page cache warmer.
#
# Usage: scripts/bench-pull.sh [LAYOUT:REF] [RUNS] [FORMAT]
#   LAYOUT:REF  the image to push into the registry (default /tmp/deb/oci:latest, the real image
#               that ../shared/corpus/build-deb-image.sh /tmp/deb builds)
#   RUNS        runs of each method (default 3)
#   FORMAT      squashfs (default), tar or dir
# Environment: OCIRENDER (default target/release/ocirender), JOBS (--jobs, default all cores).
# Needs docker-registry and skopeo (apt-get install -y docker-registry skopeo). Prints one line
# per run and the medians; checks once that both methods wrote identical squashfs/tar bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:-/tmp/deb/oci:latest}
RUNS=${2:-3}
FORMAT=${3:-squashfs}
BIN=${OCIRENDER:-target/release/ocirender}
JOBS_ARG=()
[ -n "${JOBS:-}" ] && JOBS_ARG=(--jobs "$JOBS")

for tool in /usr/bin/docker-registry skopeo "$BIN"; do
  command -v "$tool" >/dev/null || { echo "missing $tool (build with cargo build --release; apt-get install -y docker-registry skopeo)" >&2; exit 1; }
done
case $FORMAT in squashfs) EXT=.sqfs ;; tar) EXT=.tar ;; dir) EXT= ;; *) echo "bad format $FORMAT" >&2; exit 1 ;; esac

work=$(mktemp -d /var/tmp/bench-pull.XXXXXX)
reg_pid=
cleanup() {
  # `|| true`: under `set -e` a killed registry's status would end the trap before the rm.
  if [ -n "$reg_pid" ]; then
    kill "$reg_pid" 2>/dev/null || true
    wait "$reg_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A free port on 127.0.0.1: one nothing answers on.
port=
for p in $(seq 15300 15399); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port in 15300-15399" >&2; exit 1; }
cat > "$work/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
  secret: bench
EOF
/usr/bin/docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
REF=127.0.0.1:$port/bench/image:latest
skopeo copy -q --dest-tls-verify=false "oci:$IMAGE" "docker://$REF"
size=$(du -sb "$work/storage" | cut -f1)
echo "image $IMAGE pushed to $REF ($((size / 1048576)) MiB in the registry), format $FORMAT, $(nproc) cores, $RUNS runs"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

run_pull() {
  rm -rf "$work/pull$EXT"
  local t0; t0=$(now)
  "$BIN" pull --insecure --quiet --tmpdir "$work" --format "$FORMAT" "${JOBS_ARG[@]}" "$REF" "$work/pull$EXT"
  pull_s=$(secs "$t0" "$(now)")
}

run_skopeo_convert() {
  rm -rf "$work/layout" "$work/convert$EXT"
  local t0 t1; t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$work/layout:latest"
  t1=$(now)
  "$BIN" convert --quiet --format "$FORMAT" "${JOBS_ARG[@]}" "$work/layout:latest" "$work/convert$EXT"
  local t2; t2=$(now)
  skopeo_s=$(secs "$t0" "$t1"); convert_s=$(secs "$t1" "$t2"); both_s=$(secs "$t0" "$t2")
}

pulls=(); boths=()
printf '%-4s %10s   %10s %10s %12s\n' run pull skopeo convert skopeo+conv
for i in $(seq "$RUNS"); do
  if (( i % 2 )); then run_pull; run_skopeo_convert; else run_skopeo_convert; run_pull; fi
  printf '%-4s %9ss   %9ss %9ss %11ss\n' "$i" "$pull_s" "$skopeo_s" "$convert_s" "$both_s"
  pulls+=("$pull_s"); boths+=("$both_s")
  if (( i == 1 )) && [ "$FORMAT" != dir ]; then
    cmp -s "$work/pull$EXT" "$work/convert$EXT" || { echo "pull and convert outputs differ" >&2; exit 1; }
  fi
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "median: pull $(median "${pulls[@]}")s, skopeo copy + convert $(median "${boths[@]}")s"
