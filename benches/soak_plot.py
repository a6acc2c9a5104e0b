#!/usr/bin/env python3
"""Renders the soak's CSVs (benches/soak.sh) as one self-contained SVG: the
server's RSS and open file descriptors, the load's latency percentiles, its
throughput, the store's tracked subjects and the clusters tracked, against minutes elapsed.

    python3 benches/soak_plot.py soak-load.csv soak-proc.csv soak.svg
"""
import csv
import sys
from html import escape

W, PANEL_H, LEFT, RIGHT, TOP, GAP = 760, 150, 70, 20, 40, 50
COLOURS = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"]


def read(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def nice_max(v):
    """A round upper bound for an axis."""
    if v <= 0:
        return 1.0
    step = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * step:
            return m * step
    return 10 * step


def panel(out, y0, title, unit, series, x_max):
    """One chart: `series` is [(label, [(x, y), ...])]; y from 0."""
    y_max = nice_max(max((y for _, pts in series for _, y in pts), default=1) * 1.1)
    x_of = lambda x: LEFT + (W - LEFT - RIGHT) * x / x_max
    y_of = lambda y: y0 + PANEL_H - PANEL_H * y / y_max
    out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-weight="bold">{escape(title)}</text>')
    for i in range(5):
        v = y_max * i / 4
        y = y_of(v)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{v:,.0f}" if y_max >= 10 else f"{v:.2f}"
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(
        f'<text x="12" y="{y0 + PANEL_H / 2}" transform="rotate(-90 12 {y0 + PANEL_H / 2})"'
        f' text-anchor="middle">{escape(unit)}</text>'
    )
    for m in range(0, int(x_max) + 1, max(1, int(x_max) // 10)):
        x = x_of(m)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0 + PANEL_H}" y2="{y0 + PANEL_H + 4}" stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{y0 + PANEL_H + 16}" text-anchor="middle">{m}</text>')
    out.append(f'<rect x="{LEFT}" y="{y0}" width="{W - LEFT - RIGHT}" height="{PANEL_H}" fill="none" stroke="#333"/>')
    lx = W - RIGHT - 10
    for i, (label, pts) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        d = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.6"/>')
        out.append(f'<text x="{lx}" y="{y0 + 16 + 14 * i}" text-anchor="end" fill="{c}">{escape(label)}</text>')


def main():
    load, proc, svg = read(sys.argv[1]), read(sys.argv[2]), sys.argv[3]
    mins = lambda rows, k: [(r["elapsed_s"] / 60, r[k]) for r in rows]
    x_max = max(r["elapsed_s"] for r in load + proc) / 60
    total = sum(r["requests"] for r in load)
    panels = [
        ("Server RSS", "MB", [("RSS", mins(proc, "rss_mb"))]),
        ("Open file descriptors, threads; runtime tasks between load windows", "count",
         [("fds", mins(proc, "fds")), ("threads", mins(proc, "threads")),
          ("tasks", mins(load, "tasks"))]),
        ("Latency per load window (closed loop)", "ms",
         [("p50", mins(load, "p50_ms")), ("p90", mins(load, "p90_ms")), ("p99", mins(load, "p99_ms"))]),
        ("Throughput", "requests/s", [("requests/s", mins(load, "requests_per_sec"))]),
        ("State: store subjects, clusters tracked", "count",
         [("store subjects", mins(load, "tracked_subjects")), ("clusters", mins(load, "clusters"))]),
    ]
    h = TOP + len(panels) * (PANEL_H + GAP) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{h}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="13" font-weight="bold">distill-guard soak: serve (shadow mode,'
        f' demo model), {total:,.0f} requests, 9 in 10 from a fresh key; x: minutes</text>',
    ]
    for i, (title, unit, series) in enumerate(panels):
        panel(out, TOP + 14 + i * (PANEL_H + GAP), title, unit, series, max(x_max, 1))
    out.append("</svg>")
    with open(svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
