#!/usr/bin/env bash
# The declared rust-version must not be older than what the locked dependencies of the library
# and binary (normal dependencies, all features) declare they need: a check that needs no
# second toolchain. (The tests' dev-dependencies may need more: backhand 0.25 wants 1.90.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --locked > target/msrv-metadata.json
cargo tree --locked --all-features -e normal --prefix none --format '{p}' |
  sed 's/ (.*//; s/ v/ /' | sort -u > target/msrv-deps.txt
python3 - target/msrv-metadata.json target/msrv-deps.txt <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
used = {tuple(line.split()) for line in open(sys.argv[2]) if line.strip()}
version = lambda v: tuple(int(x) for x in v.split(".")[:2])
ours = next(p for p in meta["packages"] if p["name"] == "ocirender")["rust_version"]
newer = sorted(
    (p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if (p["name"], p["version"]) in used and p.get("rust_version")
    and version(p["rust_version"]) > version(ours)
)
if newer:
    print(f"rust-version {ours} is older than the locked dependencies need:", file=sys.stderr)
    for name, v, rv in newer:
        print(f"  {name} {v} needs {rv}", file=sys.stderr)
    sys.exit(1)
print(f"rust-version {ours}: no locked dependency of the library or binary needs a newer Rust")
PY
