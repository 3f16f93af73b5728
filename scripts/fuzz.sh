#!/usr/bin/env bash
# Builds every fuzz target (cargo-fuzz, nightly) and runs each for SECONDS (default 60) from
# its seed corpus, which gen_corpus writes from code first (fuzz/corpus/<target>/; what the
# fuzzer adds there is kept between runs, and is not committed). A crash stops the script with
# the reproducer under fuzz/artifacts/<target>/; `cargo +nightly fuzz fmt TARGET FILE` prints it
# as builder code for tests/regression.rs.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(tar_entry merge squashfs_roundtrip image_layout)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cd fuzz
# -a: debug assertions and overflow checks, so an arithmetic overflow is a crash too.
cargo +nightly fuzz build -a
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
"target/$triple/release/gen_corpus" corpus

# Per target: longest input, dictionary.
declare -A max_len=([tar_entry]=32768 [merge]=32768 [squashfs_roundtrip]=8192 [image_layout]=16384)
declare -A dict=([tar_entry]=tar [merge]=tar [squashfs_roundtrip]=tar [image_layout]=json)

for t in "${targets[@]}"; do
  echo "=== fuzz $t for ${seconds}s"
  cargo +nightly fuzz run -a "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_len="${max_len[$t]}" -dict="dict/${dict[$t]}.dict" -print_final_stats=1
done
