#!/usr/bin/env bash
# Makes "version 2" of an image for the --reuse benchmark: the image plus one layer that
# changes a few percent of its files, the way an update does.
#
#   scripts/make-v2-image.sh SRC_LAYOUT REF OUT_LAYOUT [PERCENT]
#   e.g. scripts/make-v2-image.sh /tmp/deb/oci latest /tmp/reuse/oci
#
# OUT_LAYOUT gets a copy of SRC_LAYOUT with two tags: v1 (= REF) and v2 (REF + one layer). The
# new layer is what a routine update looks like, and is deterministic for a given v1:
#   - upgrades whole packages: packages from dpkg's lists, in a fixed shuffled order, until
#     PERCENT (default 3) % of the regular files are covered; each of their files gets 16 bytes
#     put in front, so every block of it changes, as in a rebuilt binary;
#   - adds 40 new files under /usr/lib/v2-new (sizes drawn from the image's own files);
#   - deletes a directory (/usr/lib/python3.11/unittest, or else the largest directory under
#     /usr/share).
# Needs umoci and root (as the corpus builder does).
set -euo pipefail
SRC=${1:?source layout}; REF=${2:?ref}; OUT=${3:?output layout}; PERCENT=${4:-3}
rm -rf "$OUT" "$OUT.bundle"
mkdir -p "$(dirname "$OUT")"
cp -a "$SRC" "$OUT"
umoci tag --image "$OUT:$REF" v1
umoci unpack --image "$OUT:v1" "$OUT.bundle" > /dev/null
python3 - "$OUT.bundle/rootfs" "$PERCENT" <<'PY'
import glob, os, random, shutil, stat, sys
root, percent = sys.argv[1], float(sys.argv[2])
def regular(p):
    try:
        st = os.lstat(p)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size < 50 << 20
files = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]
files = sorted(p for p in files if regular(p))
packages = sorted(glob.glob(os.path.join(root, "var/lib/dpkg/info/*.list")))
rng = random.Random(2)
rng.shuffle(packages)
changed, upgraded = set(), []
for lst in packages:
    if len(changed) >= len(files) * percent / 100:
        break
    own = [root + line.strip() for line in open(lst, errors="replace") if line.strip()]
    own = [p for p in own if regular(p)]
    if own:
        changed.update(own)
        upgraded.append(os.path.basename(lst)[:-5])
for p in sorted(changed):
    with open(p, "rb") as f:
        data = f.read()
    with open(p, "wb") as f:
        f.write(b"ocirender-v2-mod" + data)
new = os.path.join(root, "usr/lib/v2-new")
os.makedirs(new, exist_ok=True)
for i in range(40):
    src = rng.choice(files)
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(new, f"file{i:03}"), "wb") as f:
        f.write(b"new" + bytes(reversed(data)))
gone = os.path.join(root, "usr/lib/python3.11/unittest")
if not os.path.isdir(gone):
    share = os.path.join(root, "usr/share")
    gone = max((os.path.join(share, d) for d in os.listdir(share)
                if os.path.isdir(os.path.join(share, d))),
               key=lambda d: sum(len(f) for _, _, f in os.walk(d)))
shutil.rmtree(gone)
print(f"v2: {len(changed)} of {len(files)} files modified ({len(upgraded)} packages upgraded: "
      f"{' '.join(upgraded)}), 40 added, {gone[len(root):]} deleted", file=sys.stderr)
PY
umoci repack --image "$OUT:v2" "$OUT.bundle" > /dev/null
rm -rf "$OUT.bundle"
echo "built $OUT (tags v1, v2)" >&2
