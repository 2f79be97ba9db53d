"""The reporter: live bars on a terminal, sparse plain lines elsewhere, silence when quiet."""

from __future__ import annotations

import io

from neuroexec import progress
from neuroexec.progress import Reporter


def test_quiet_yields_everything_and_prints_nothing():
    out = io.StringIO()
    assert list(Reporter(stream=out, quiet=True).iterate(range(5), desc="x")) == [0, 1, 2, 3, 4]
    assert out.getvalue() == ""


def test_plain_mode_is_silent_for_short_loops_and_reports_long_ones(monkeypatch):
    out = io.StringIO()
    rep = Reporter(stream=out, live=False)
    assert list(rep.iterate(range(3), desc="short")) == [0, 1, 2]
    assert out.getvalue() == ""
    clock = iter(float(t) for t in range(0, 1000, 6))  # each call to the clock advances 6 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    list(rep.iterate(range(4), desc="long"))
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("  long 4/4") and 1 < len(lines) <= 4


def test_live_mode_redraws_one_line():
    out = io.StringIO()
    list(Reporter(stream=out, live=True).iterate(range(3), desc="bar"))
    assert "\r  bar 3/3" in out.getvalue() and out.getvalue().endswith("\n")
