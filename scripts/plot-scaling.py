#!/usr/bin/env python3
"""Turns the rows of scripts/bench-scaling.sh (a TSV: series, files, content bytes, layers, gzip
bytes, wall s, cpu s, peak RSS KiB, squashfs bytes) into the markdown table of BENCHMARKS.md
and, where matplotlib is importable (pip install matplotlib), a plot of the three series:

    python3 scripts/plot-scaling.py ROWS.tsv OUT_DIR     → OUT_DIR/scaling.md, scaling.png

benches/results/scaling-2026-11-23.tsv holds the rows of the run BENCHMARKS.md quotes.
"""
import os
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
lines = ["| series | files | content MB | layers | gzip MB | wall s | cpu s | peak RSS MiB | sqfs MB | wall ms / 100 MB | wall µs / file | RSS KiB / 1k files |",
         "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
for s, f, b, l, gz, wall, cpu, rss, size in rows:
    f, b, l, gz, wall, cpu, rss, size = int(f), int(b), int(l), int(gz), float(wall), float(cpu), int(rss), int(size)
    lines.append(f"| {s} | {f:,} | {b/1e6:.0f} | {l} | {gz/1e6:.0f} | {wall:.2f} | {cpu:.2f} | {rss/1024:.1f} | {size/1e6:.0f} "
                 f"| {wall*1000/(b/1e8):.0f} | {wall*1e6/f:.1f} | {rss/(f/1000):.1f} |")
table = "\n".join(lines)
print(table)
open(f"{out}/scaling.md", "w").write(table + "\n")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("(matplotlib not importable: no plot)", file=sys.stderr)
    sys.exit(0)
fig, axes = plt.subplots(2, 3, figsize=(13, 7))
for col, (series, key, label) in enumerate([("size", 2, "file content (MB)"), ("files", 1, "files"), ("layers", 3, "layers")]):
    pts = [r for r in rows if r[0] == series]
    xs = [int(r[key]) / (1e6 if key == 2 else 1) for r in pts]
    axes[0][col].plot(xs, [float(r[5]) for r in pts], "o-", label="wall")
    axes[0][col].plot(xs, [float(r[6]) for r in pts], "s--", label="cpu")
    axes[0][col].set_ylabel("seconds"); axes[0][col].legend()
    axes[1][col].plot(xs, [int(r[7]) / 1024 for r in pts], "o-")
    axes[1][col].set_ylabel("peak RSS (MiB)"); axes[1][col].set_xlabel(label)
    axes[1][col].set_ylim(bottom=0)
    if series != "layers":
        # Log-log for time: linear growth is a straight line of slope 1 (the dotted guide).
        axes[0][col].set_xscale("log"); axes[0][col].set_yscale("log")
        axes[1][col].set_xscale("log")
        cpu0 = float(pts[0][6])
        axes[0][col].plot(xs, [cpu0 * x / xs[0] for x in xs], ":", color="grey", label="linear")
        axes[0][col].legend()
    else:
        axes[0][col].set_ylim(bottom=0)
fig.suptitle("ocirender convert → squashfs (defaults), synthetic gzip images")
fig.tight_layout()
fig.savefig(f"{out}/scaling.png", dpi=90)
print(f"plot: {out}/scaling.png", file=sys.stderr)
