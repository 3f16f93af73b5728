#!/usr/bin/env bash
# Converts the real Debian image built by ../shared/corpus/build-deb-image.sh to every format
# (squashfs with each compressor, tar, directory) and compares each output with umoci's own
# unpack (DIR/ref/rootfs), using unsquashfs and GNU tar as the readers. Needs root.
#   scripts/check-real-image.sh /tmp/deb
set -euo pipefail
DIR=${1:?directory given to build-deb-image.sh}
cd "$(dirname "$0")/.."
OCIRENDER_REAL_IMAGE=$(cd "$DIR" && pwd) cargo test --release --test it real_image:: -- --nocapture
