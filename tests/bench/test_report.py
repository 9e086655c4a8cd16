"""bench/report.py's verdicts: a ratio goal is met or not only where the
runs behind both medians ran in one of the VM's speed modes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("report", Path(__file__).parents[2] / "bench/report.py")
report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report)


def row(tag: str, pollux: tuple[float, float, float], ref: tuple[float, float, float], goal: str,
        source: str = "l4.csv") -> dict:
    (pm, plo, phi), (rm, rlo, rhi) = pollux, ref
    return {"row": tag, "name": tag, "unit": "Mpps", "runs": "3", "source": source,
            "pollux_median": str(pm), "pollux_min": str(plo), "pollux_max": str(phi),
            "ref_name": "testpmd io", "ref_median": str(rm), "ref_min": str(rlo), "ref_max": str(rhi),
            "ratio": f"{pm / rm:.3f}", "goal": goal}


def test_settled_rows_get_met_or_not_met():
    a = row("a", (12.0, 11.8, 12.3), (14.0, 13.8, 14.2), ">=0.85")
    b = row("b-1M", (8.3, 8.1, 8.5), (14.1, 13.9, 14.3), ">=0.7")
    rows = [a, b]
    assert report.verdict(a, rows) == "met"
    assert report.verdict(b, rows) == "NOT met"


def test_runs_straddling_modes_within_a_row_are_unsettled():
    a = row("a", (4.4, 4.3, 11.9), (5.1, 5.0, 15.4), ">=0.85")  # session 11's first bench
    assert report.verdict(a, [a]).startswith("unsettled")


def test_a_reference_far_below_its_other_rows_is_unsettled():
    # session 12's bench: testpmd io at 12.6 in row a, 22-26 in rows b
    a = row("a", (12.2, 11.0, 13.6), (12.6, 11.2, 12.9), ">=0.85")
    b = row("b-1M", (15.4, 14.9, 15.6), (26.3, 24.5, 26.5), ">=0.7")
    other_file = row("h", (10.9, 10.9, 11.0), (40.0, 39.0, 41.0), "", source="scale.csv")
    rows = [a, b, other_file]
    assert report.verdict(a, rows).startswith("unsettled")
    assert report.verdict(b, rows) == "NOT met", "the fastest row itself is settled"


def test_goals_on_pollux_alone_are_not_judged_by_the_reference():
    c = row("c", (2.9, 2.7, 3.2), (16.6, 10.4, 25.9), ">=2 M/s")
    assert report.verdict(c, [c]) == "met"
