#!/usr/bin/env python3
"""Writes an OCI layout holding one gzip layer with one file DEPTH one-byte directories down
(`a/a/.../a/f`), for the depth figures in BENCHMARKS.md:

    python3 scripts/make-deep-image.py OUT_DIR DEPTH [--list-dirs | --through-symlink N]

--list-dirs also writes an entry for every directory (the tar then grows as DEPTH²).
--through-symlink N writes two layers instead: a symlink `s -> x`, then N files
`s/dI/a/.../a/f`, DEPTH levels each, whose names go through it (so the conversion takes its
second pass, resolving names in layer order). The layout's only manifest is tagged `latest`. Names past 4,095 bytes (2,047 levels) are refused
by ocirender, as the runtimes' extraction refuses them.
"""
import gzip, hashlib, io, json, os, sys, tarfile


def layer(depth, list_dirs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        if list_dirs:
            for d in range(1, depth + 1):
                ti = tarfile.TarInfo("a/" * (d - 1) + "a")
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1
                tf.addfile(ti)
        ti = tarfile.TarInfo("a/" * depth + "f")
        ti.size, ti.mtime = 1, 1
        tf.addfile(ti, io.BytesIO(b"x"))
    return buf.getvalue()


def through_symlink(depth, n):
    def tar(fill):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            fill(tf)
        return buf.getvalue()

    def base(tf):
        ti = tarfile.TarInfo("s")
        ti.type, ti.linkname = tarfile.SYMTYPE, "x"
        tf.addfile(ti)

    def names(tf):
        for i in range(n):
            tf.addfile(tarfile.TarInfo(f"s/d{i}/" + "a/" * depth + "f"))

    return [tar(base), tar(names)]


def main():
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__)
    out, depth = sys.argv[1], int(sys.argv[2])
    if sys.argv[3:4] == ["--through-symlink"]:
        raws = through_symlink(depth, int(sys.argv[4]))
    else:
        raws = [layer(depth, "--list-dirs" in sys.argv[3:])]
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)

    def blob(data):
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(out, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + h, "size": len(data)}

    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]},
    }).encode())
    manifest = blob(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(blob(gzip.compress(r, mtime=0)),
                        mediaType="application/vnd.oci.image.layer.v1.tar+gzip") for r in raws],
    }).encode())
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [dict(
            manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
            annotations={"org.opencontainers.image.ref.name": "latest"})]}, f)


main()
