"""The reporter: live bars on a terminal, sparse plain lines elsewhere, silence when quiet."""

from __future__ import annotations

import io

import pytest

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


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_live_bar_shows_count_rate_and_eta_and_ends_on_its_final_count():
    out = io.StringIO()
    list(Reporter(stream=out, live=True).iterate(range(3), desc="bar"))
    last = out.getvalue().split("\r")[-1]
    assert "  bar 3/3 " in last and "/s" in last and "ETA" in last and last.count("\n") == 1


def test_nested_loops_share_one_display_and_lines_print_above_the_bars():
    out = io.StringIO()
    rep = Reporter(stream=out, live=True, level=progress.NORMAL)
    for epoch in rep.iterate(range(3, 5), total=5, desc="cnn epochs", done=3):  # resumed at epoch 4
        list(rep.iterate(range(4), desc=f"epoch {epoch + 1}/5"))
        rep.info(f"[epoch {epoch + 1}] done")  # brackets: not rich markup
    text = out.getvalue()
    assert "cnn epochs 3/5" in text and "cnn epochs 5/5" in text and "cnn epochs 6/5" not in text
    assert "epoch 5/5 4/4" in text
    assert text.count("[epoch 4] done") == 1 and text.count("[epoch 5] done") == 1
    final = text.split("[epoch 5] done")[-1]
    assert "cnn epochs 5/5" in final and "epoch 5/5 4/4" not in final.split("\r")[-1]  # inner bar gone


def test_quiet_level_keeps_errors_warnings_and_summaries_and_verbose_adds_details():
    out = io.StringIO()
    quiet = Reporter(stream=out, live=False, level=progress.QUIET)
    quiet.info("step line")
    quiet.detail("why")
    quiet.warn("careful")
    quiet.summary("results in maps/cnn")
    assert out.getvalue().splitlines() == ["warning: careful", "results in maps/cnn"]
    assert quiet.quiet  # no bars either
    out = io.StringIO()
    verbose = Reporter(stream=out, live=False, level=progress.VERBOSE)
    verbose.info("step line")
    verbose.detail("why")
    assert out.getvalue().splitlines() == ["step line", "why"]


def test_no_color_and_dumb_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert progress.color_allowed(Terminal()) and Reporter(Terminal()).live
    out = Terminal()
    Reporter(out).warn("careful")
    assert "\x1b[" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    Reporter(out).warn("careful")
    assert out.getvalue() == "warning: careful\n" and Reporter(Terminal()).live  # bars stay, colourless
    monkeypatch.setenv("NO_COLOR", "")  # empty: not set (no-color.org)
    assert progress.color_allowed(Terminal())
    monkeypatch.setenv("TERM", "dumb")
    assert not progress.color_allowed(Terminal()) and not Reporter(Terminal()).live


def test_output_options_set_the_flags_for_the_command_and_restore_the_environment(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv(progress.VERBOSITY_ENV, "1")
    with progress.output_options(no_color=True, level=progress.QUIET):
        assert not progress.color_allowed(Terminal()) and progress.verbosity() == progress.QUIET
        assert Reporter().level == progress.QUIET
    assert "NO_COLOR" not in progress.os.environ and progress.verbosity() == progress.VERBOSE


def test_stop_live_ends_the_bars_of_a_loop_left_by_an_exception():
    out = io.StringIO()
    rep = Reporter(stream=out, live=True, level=progress.NORMAL)
    loop = rep.iterate(range(10), desc="train")
    with pytest.raises(KeyboardInterrupt):
        for i in loop:
            if i == 2:
                raise KeyboardInterrupt  # the generator stays open while the traceback holds it
    (bars,) = list(progress._LIVE)
    assert bars.live.is_started
    progress.stop_live()  # what the command line does before it prints the error
    assert not bars.live.is_started and not list(progress._LIVE)
    assert "train 2/10" in out.getvalue() or "train 3/10" in out.getvalue()
    assert list(rep.iterate(range(2), desc="again")) == [0, 1] and "again 2/2" in out.getvalue()
