#!/usr/bin/env bash
# Builds every fuzz target (cargo-fuzz, nightly) and runs each for SECONDS (default 60) from
# its seed corpus, which gen_corpus writes from code first (fuzz/corpus/<target>/; what the
# fuzzer adds there is kept between runs, and is not committed). CI calls it as
# `scripts/fuzz.sh 60` on a fresh Debian 12 machine as root, with rustup and a nightly
# toolchain: cargo-fuzz (and a C++ compiler, which libFuzzer needs) are installed when missing.
#
# Every target runs even after one fails; the script exits non-zero when any found a crash,
# hang (-timeout) or excessive allocation (-rss_limit_mb/-malloc_limit_mb). The reproducer lies
# under fuzz/artifacts/<target>/; `cargo +nightly fuzz fmt TARGET FILE` (in fuzz/) prints it as
# builder code for tests/regression.rs (squashfs_reader: as a test for tests/squashfs_hostile.rs,
# the artifact being the image itself). Each run's log is fuzz/logs/<target>.log; its final
# stats are printed at the end.
#
# squashfs_reader's seeds include images made by mksquashfs (squashfs-tools, which .ci/run
# installs); without it gen_corpus skips those, saying so.
#
# The cold build (nightly, sanitizer-instrumented: ocirender, backhand, the codecs, libFuzzer)
# takes a few minutes on a free multi-core machine and over 10 minutes on 2 busy cores.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
all=(tar_entry merge squashfs_roundtrip image_layout squashfs_reader)
if ((${#targets[@]} == 0)); then
  targets=("${all[@]}")
fi

step() { echo; echo "=== $* ($(date +%T))"; }

# (grep without -q reads all of rustup's output: no SIGPIPE under pipefail)
if ! rustup toolchain list | grep '^nightly' >/dev/null; then
  echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 1
fi
if ! command -v c++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing a C++ compiler for libFuzzer"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends g++ >/dev/null
  else
    echo "libFuzzer needs a C++ compiler (c++): install g++ or clang" >&2
    exit 1
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
step "build (cargo +nightly fuzz build -a)"
# -a: debug assertions and overflow checks, so an arithmetic overflow is a crash too.
cargo +nightly fuzz build -a
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')

step "seed corpora (gen_corpus)"
"target/$triple/release/gen_corpus" corpus

# Per target: longest input, dictionary.
# squashfs_reader's inputs are whole images: its seeds stay under 64 KiB.
declare -A max_len=([tar_entry]=32768 [merge]=32768 [squashfs_roundtrip]=8192 [image_layout]=16384
  [squashfs_reader]=65536)
declare -A dict=([tar_entry]=tar [merge]=tar [squashfs_roundtrip]=tar [image_layout]=json
  [squashfs_reader]=squashfs)

mkdir -p logs
failed=()
# One known leak report that is glibc's, not ours (see lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
for t in "${targets[@]}"; do
  if [ -z "${max_len[$t]:-}" ]; then
    echo "unknown target $t (targets: ${all[*]})" >&2
    exit 2
  fi
  step "fuzz $t for ${seconds}s"
  # The log keeps libFuzzer's output; a failure prints its end here.
  if cargo +nightly fuzz run -a "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_len="${max_len[$t]}" -dict="dict/${dict[$t]}.dict" -print_final_stats=1 \
    >"logs/$t.log" 2>&1; then
    echo "$t: no crash"
  else
    rc=$?
    echo "$t: FAILED (exit $rc); what went wrong, then the log's end:"
    grep -m 1 -A 20 -E "panicked at|ERROR: (libFuzzer|AddressSanitizer)" "logs/$t.log" || true
    echo "..."
    tail -n 40 "logs/$t.log"
    failed+=("$t")
  fi
done

step "final stats"
for t in "${targets[@]}"; do
  # The last coverage line and the executions (print_final_stats).
  echo "$t: $(grep -E '^#[0-9]+' "logs/$t.log" | tail -n 1 | tr -s " \t" " ")"
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "logs/$t.log" |
    sed "s/^/  /" || true
done

if ((${#failed[@]})); then
  echo "fuzzing found problems in: ${failed[*]} (reproducers under fuzz/artifacts/)" >&2
  exit 1
fi
echo "all fuzz targets ran ${seconds}s without a finding"
