#!/usr/bin/env bash
# Proves the published crate stands alone: `cargo package` (the tarball crates.io would get),
# unpacked into a scratch directory, and a scratch project that depends on nothing but that
# unpacked crate and crates.io, using the library's main calls. A file the crate needs but
# `exclude` leaves out, a path dependency, or a feature combination that only works inside this
# repository fails here. The scratch project shares this repository's target directory (and
# its profile settings), so only ocirender itself is compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
version=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="ocirender"))')

scratch=$(mktemp -d /tmp/ocirender-package.XXXX)
trap 'rm -rf "$scratch"' EXIT
# --no-verify: the scratch project below is the verification, with the library as users get it.
cargo package --locked --no-verify --allow-dirty --quiet
tar -xzf "target/package/ocirender-$version.crate" -C "$scratch"
if grep -n 'path *=' "$scratch/ocirender-$version/Cargo.toml" | grep -v '^\S*:path = "src/\|^\S*:path = "tests/\|^\S*:path = "benches/\|^\S*:path = "examples/'; then
  echo "check-package: the packaged manifest has a path dependency" >&2
  exit 1
fi

mkdir -p "$scratch/user/src"
cat > "$scratch/user/Cargo.toml" <<TOML
[package]
name = "ocirender-user"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
ocirender = { path = "../ocirender-$version", default-features = false, features = ["async"] }

[profile.dev.package."*"]
opt-level = 2
TOML
cat > "$scratch/user/src/main.rs" <<'RUST'
//! A library user's program: open an image, convert it, read the summary.
use ocirender::{convert, ConvertOptions, Image, ImageLocation, ImageSpec, Selector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let image = Image::open(&ImageLocation::parse(&args[1]), &Selector::default())?;
    let spec = ImageSpec::Squashfs {
        path: args[2].clone().into(),
    };
    let summary = convert(&image, &spec, &ConvertOptions::default())
        .map_err(|e| e.report().to_string())?;
    eprintln!("{} entries, {} bytes", summary.entries, summary.output_bytes);
    Ok(())
}
RUST
cp Cargo.lock "$scratch/user/Cargo.lock"
cd "$scratch/user"
CARGO_TARGET_DIR="$repo/target/package-check" cargo run --quiet -- \
  "$repo/examples/image:latest" "$scratch/out.sqfs"
test -s "$scratch/out.sqfs"
echo "check-package: ocirender $version as packaged builds and converts from a scratch project"
