#!/usr/bin/env bash
# Builds the fully static ocirender and proves it needs nothing from its host: no dynamic
# section, and it converts an image alone inside an empty chroot (no /tmp, no libc, no
# squashfs-tools). The image it writes is then checked with unsquashfs and `ocirender verify`.
# Needs root (chroot) and squashfs-tools.
#   OCIRENDER_STATIC_PROFILE=static-check scripts/static-check.sh   (CI: the same, unoptimized)
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
profile=${OCIRENDER_STATIC_PROFILE:-release}
RUSTFLAGS='-C target-feature=+crt-static -C relocation-model=static' \
  cargo build --profile "$profile" --quiet --target "$target"
bin="target/$target/$profile/ocirender"

if readelf -d "$bin" | grep -q 'Dynamic section'; then
  echo "static-check: $bin has a dynamic section" >&2
  readelf -d "$bin" >&2
  exit 1
fi
echo "static-check: $(stat -c %s "$bin") bytes, no dynamic section ($(file -b "$bin" | cut -d, -f1-2))"

root=$(mktemp -d /tmp/static-root.XXXX)
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/ocirender"
cp -r examples/image "$root/img"
chroot "$root" /ocirender convert --quiet /img:latest /out.sqfs
chroot "$root" /ocirender convert --quiet /img:latest /out.tar
unsquashfs -no-progress -d "$root/x" "$root/out.sqfs" >/dev/null
"$bin" verify "$root/out.sqfs" --reference "$root/x"
"$bin" verify "$root/out.tar" --reference "$root/x"
echo "static-check: converted inside an empty chroot; unsquashfs and verify agree"
