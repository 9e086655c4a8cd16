#!/usr/bin/env python3
"""The table of `make bench`: every row the row scripts measured, from the
CSV files they wrote into one results folder, with the machine described.

Every row script writes DIR/<name>.csv with this header (the common schema):

    row,name,unit,runs,pollux_median,pollux_min,pollux_max,
    ref_name,ref_median,ref_min,ref_max,ratio,goal

  row      the issue's row letter (a, b, ...) or a short tag
  runs     repetitions (or samples) behind the median/min/max
  ref_*    the reference measured in the same run (testpmd, BIRD, FRR)
  ratio    pollux_median / ref_median, computed by the row script
  goal     e.g. ">=0.85" (on the ratio when there is a reference and the
           unit is a rate) or "<=100" (on pollux's median)

Usage: report.py DIR [--header TEXT]... — prints the table (Markdown), writes
DIR/bench.csv (all rows), DIR/table.md and DIR/bench.png (one bar per row
that has a ratio, pollux / reference). Standard library plus matplotlib
(the plot is skipped, with a note, if matplotlib is missing)."""
import argparse
import csv
import re
import sys
from pathlib import Path

FIELDS = ["row", "name", "unit", "runs", "pollux_median", "pollux_min", "pollux_max",
          "ref_name", "ref_median", "ref_min", "ref_max", "ratio", "goal"]
# The order rows are shown in, by the row tag's leading letters ("b-100k"
# and "g1" sort as "b" and "g"); rows of one letter keep their file order.
ORDER = ["loop", "a", "b", "c", "d", "e", "f", "g", "h"]


def read_rows(folder: Path) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*.csv")):
        if f.name == "bench.csv":
            continue
        with f.open(newline="") as fh:
            r = csv.DictReader(fh)
            if r.fieldnames != FIELDS:
                continue  # per-run detail files (l4-runs.csv, ...)
            rows.extend(dict(x, source=f.name) for x in r)
    key = {k: i for i, k in enumerate(ORDER)}
    rows.sort(key=lambda x: key.get(re.match(r"[a-z]*", x["row"]).group(0), len(ORDER)))
    return rows


def num(s: str) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if a < 1 else f"{v:.2f}"


def spread(r: dict, side: str) -> str:
    med, lo, hi = (num(r[f"{side}_{k}"]) for k in ("median", "min", "max"))
    if med is None:
        return "–"
    if lo is None or hi is None or lo == hi:
        return fmt(med)
    return f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"


# A side whose runs differ more than this (max / min) ran in more than one
# of the VM's speed modes (seen: testpmd io at 5, 14 and 25 Mpps on one
# link in one bench): its median then says which mode won, and a ratio of
# two such medians compares modes, not forwarders.
UNSETTLED = 1.5


def unsettled(r: dict, rows: list[dict]) -> bool:
    """Whether the row's runs straddle speed modes (see UNSETTLED): either
    side's within the row, or the reference's across the rows of its file
    that measured it in the same unit (testpmd io forwards the same
    whatever the flows: its rows a and b agree unless the VM changed mode
    between them, so one far below its fastest ran in a slower mode)."""
    for side in ("pollux", "ref"):
        lo, hi = num(r[f"{side}_min"]), num(r[f"{side}_max"])
        if lo and hi and hi / lo > UNSETTLED:
            return True
    same = [num(o["ref_median"]) for o in rows
            if (o["source"], o["ref_name"], o["unit"]) == (r["source"], r["ref_name"], r["unit"])]
    here, fastest = num(r["ref_median"]), max((v for v in same if v), default=None)
    return bool(here and fastest and fastest / here > UNSETTLED)


def verdict(r: dict, rows: list[dict]) -> str:
    """Whether the goal is met. A bare number after >= on a row with a
    ratio is a goal on the ratio (">=0.85": 85 % of the reference); a
    goal with a unit or on a row without a ratio is on pollux's median
    (">=2 M/s", "<=100"). A ratio whose runs straddle the VM's speed
    modes gets no verdict but "unsettled" (compare the runs' CSV)."""
    m = re.fullmatch(r"\s*(<=|>=)\s*([0-9.]+)\s*(.*)", r.get("goal") or "")
    if not m or m.group(3).startswith("+"):
        return ""  # e.g. "<=30+jitter": a bound to read, not to check
    op, bound, unit = m.group(1), float(m.group(2)), m.group(3)
    ratio = num(r["ratio"])
    on_ratio = ratio is not None and op == ">=" and not unit and bound <= 2
    value = ratio if on_ratio else num(r["pollux_median"])
    if value is None:
        return ""
    if on_ratio and unsettled(r, rows):
        return f"unsettled (runs > {UNSETTLED}× apart: the VM changed speed; compare the runs' CSV)"
    ok = value >= bound if op == ">=" else value <= bound
    return "met" if ok else "NOT met"


def table(rows: list[dict]) -> str:
    out = ["| row | what | unit | pollux median (min–max) | reference | reference median (min–max) | ratio | goal |",
           "| --- | --- | --- | ---: | --- | ---: | ---: | --- |"]
    for r in rows:
        goal = r["goal"] or ""
        v = verdict(r, rows)
        if v:
            goal = f"{goal} {v}"
        out.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["row"], r["name"], r["unit"], spread(r, "pollux"), r["ref_name"] or "–",
            spread(r, "ref"), fmt(num(r["ratio"])), goal))
    return "\n".join(out)


def plot(rows: list[dict], path: Path, title: str) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib missing: no plot (apt-get install python3-matplotlib)"
    shown = [r for r in rows if num(r["ratio"]) is not None]
    if not shown:
        return "no row has a ratio: no plot"
    labels = [f'{r["row"]}: {r["name"][:60]}' for r in shown]
    ratios = [num(r["ratio"]) for r in shown]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(shown) + 1.6))
    y = range(len(shown))
    colour = {"met": "#3a7", "NOT met": "#c53"}  # no goal: grey
    ax.barh(y, ratios, color=[colour.get(verdict(r, rows), "#999") for r in shown])
    ax.axvline(1.0, color="#444", lw=0.8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    for i, (r, v) in enumerate(zip(shown, ratios)):
        ax.text(v, i, f" {v:.2f}  ({r['unit']}: {fmt(num(r['pollux_median']))} vs {fmt(num(r['ref_median']))} {r['ref_name']})",
                va="center", fontsize=7)
    ax.set_xlabel("pollux / reference (same run, same link); for times and costs lower is better")
    ax.set_title(title, fontsize=9)
    ax.set_xlim(0, max(ratios) * 1.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description="print the bench table of a results folder")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--header", action="append", default=[], help="a line above the table")
    a = ap.parse_args()
    rows = read_rows(a.folder)
    if not rows:
        print(f"no rows in {a.folder}", file=sys.stderr)
        return 1
    with (a.folder / "bench.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS + ["source"])
        w.writeheader()
        w.writerows(rows)
    text = "\n".join(a.header + ["", table(rows), ""])
    (a.folder / "table.md").write_text(text + "\n")
    print(text)
    note = plot(rows, a.folder / "bench.png", a.header[0] if a.header else "pollux bench")
    print(note or f"plot: {a.folder / 'bench.png'}; csv: {a.folder / 'bench.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
