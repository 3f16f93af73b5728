#!/usr/bin/env python3
"""Copies an OCI layout with every layer recompressed as zstd (level 3, with frame checksums),
for benchmarking zstd layers:

    scripts/recompress-zstd.py SRC_LAYOUT DST_LAYOUT

Layers are decoded with `gzip -dc` and encoded with the `zstd` command; manifests and the
index are rewritten with the new digests, sizes and media types (the old blobs stay).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys


def main(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    blobs = os.path.join(dst, "blobs", "sha256")

    def path(digest):
        return os.path.join(blobs, digest.split(":", 1)[1])

    def put(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(path(digest), "wb") as f:
            f.write(data)
        return digest

    with open(os.path.join(dst, "index.json")) as f:
        index = json.load(f)
    for desc in index["manifests"]:
        with open(path(desc["digest"])) as f:
            manifest = json.load(f)
        for layer in manifest["layers"]:
            tar = subprocess.run(
                ["gzip", "-dc", path(layer["digest"])], capture_output=True, check=True
            ).stdout
            packed = subprocess.run(
                ["zstd", "-3", "-c", "--check"], input=tar, capture_output=True, check=True
            ).stdout
            layer["digest"] = put(packed)
            layer["size"] = len(packed)
            layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
        body = json.dumps(manifest).encode()
        desc["digest"] = put(body)
        desc["size"] = len(body)
    with open(os.path.join(dst, "index.json"), "w") as f:
        json.dump(index, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
