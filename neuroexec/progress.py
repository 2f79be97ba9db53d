"""One reporter for progress and messages: live bars (rich) on a terminal, plain lines elsewhere (CI, logs).

Steps never print: they call the reporter carried by their context. How much it says and whether in
colour follow the command line's global flags, which `output_options` puts in the environment for the
command (so torchrun's workers and subprocesses see them too): `-q` (NEUROEXEC_VERBOSITY=-1: errors and
summaries only), `-v` (1: details), `--no-color` (NO_COLOR=1). `NO_COLOR` (any non-empty value) and
`TERM=dumb` turn colour off everywhere; `TERM=dumb` or a stream that is not a terminal gives plain lines.

>>> import io
>>> out = io.StringIO()
>>> [x for x in Reporter(out, live=False).iterate([1, 2], desc="items")]
[1, 2]
>>> out.getvalue()  # a short loop in a log says nothing: the step lines already do
''
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

T = TypeVar("T")

VERBOSITY_ENV = "NEUROEXEC_VERBOSITY"  # -1 quiet, 0 normal, 1 verbose (the global -q / -v)
QUIET, NORMAL, VERBOSE = -1, 0, 1

# Plain output (CI, log files): a line every PLAIN_EVERY_S seconds, and a closing one for loops that
# took longer than PLAIN_FINAL_AFTER_S (short loops stay silent: the step lines already say enough).
PLAIN_EVERY_S = 10.0
PLAIN_FINAL_AFTER_S = 2.0

_LIVE: weakref.WeakSet[Progress] = weakref.WeakSet()  # bars on screen: stop_live() ends them


def color_allowed(stream: TextIO) -> bool:
    """Colour on `stream`: a terminal, no `NO_COLOR` (any non-empty value, https://no-color.org),
    `TERM` other than `dumb`.

    >>> import io
    >>> color_allowed(io.StringIO())
    False
    """
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return _isatty(stream)


def live_allowed(stream: TextIO) -> bool:
    """Bars redrawn in place: a terminal that is not `TERM=dumb`."""
    return os.environ.get("TERM") != "dumb" and _isatty(stream)


def verbosity() -> int:
    """The command's verbosity: QUIET (-q), NORMAL or VERBOSE (-v), from NEUROEXEC_VERBOSITY."""
    try:
        return max(QUIET, min(VERBOSE, int(os.environ.get(VERBOSITY_ENV, "0"))))
    except ValueError:
        return NORMAL


@contextlib.contextmanager
def output_options(no_color: bool = False, level: int | None = None) -> Iterator[None]:
    """The global flags for the duration of a command: `--no-color` sets NO_COLOR, `-q`/`-v` the
    verbosity; the environment is as it was afterwards (a test calling main() twice)."""
    wanted = {"NO_COLOR": "1" if no_color else None, VERBOSITY_ENV: None if level is None else str(level)}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update({k: v for k, v in wanted.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stop_live() -> None:
    """End every bar on screen (before the command line prints an error below it)."""
    for bar in list(_LIVE):
        bar.stop()
        _LIVE.discard(bar)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Reporter:
    """Progress for long work and the lines people read, on `stream` (stderr).

    `quiet` silences the bars (apply --quiet, tests); messages still go to `stream`. `level` (default:
    the command's `verbosity()`): QUIET also drops `info` lines (errors, warnings and `summary` stay),
    VERBOSE shows `detail` lines. `live`: bars redrawn in place (default: on a terminal)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        quiet: bool = False,
        live: bool | None = None,
        level: int | None = None,
    ):
        self.stream = stream or sys.stderr
        self.level = verbosity() if level is None else level
        self.quiet = quiet or self.level <= QUIET
        self.live = live_allowed(self.stream) if live is None else live
        self.color = color_allowed(self.stream)
        self._console: Console | None = None
        self._bars: Progress | None = None  # while a live loop runs; nested loops add their bar to it

    def info(self, message: str) -> None:
        """A line of what is done (not with -q)."""
        if self.level > QUIET:
            self._say(message)

    def detail(self, message: str) -> None:
        """A line for -v only: why, and from what."""
        if self.level >= VERBOSE:
            self._say(message)

    def summary(self, message: str) -> None:
        """A closing line (what apply did, where results are): an `info` line that -q keeps."""
        if self.level > QUIET:
            self.info(message)
        else:
            self._say(message)

    def warn(self, message: str) -> None:
        self._say(message, ("warning: ", "yellow"))

    def error(self, message: str) -> None:
        """`error: message` (the command line's: one sentence, no traceback)."""
        self._say(message, ("error: ", "bold red"))

    def iterate(
        self, items: Iterable[T], total: int | None = None, desc: str = "", done: int = 0
    ) -> Iterator[T]:
        """Yield `items`: a live bar `desc i/total` with rate and ETA on a terminal, or a line every
        10 s (plain). `done`: items already done before these (a resumed training's epochs); they count
        in i and total but not in the rate."""
        if total is None:
            try:
                total = len(items)  # type: ignore[arg-type]
            except TypeError:
                total = None
        if self.quiet:
            yield from items
        elif self.live:
            yield from self._live(items, total, desc, done)
        else:
            yield from self._plain(items, total, desc, done)

    # --- messages

    def _say(self, message: str, prefix: tuple[str, str] | None = None) -> None:
        """One line on the stream, above the bars while they run; `prefix`: (text, rich style)."""
        head, style = prefix or ("", "")
        if self._bars is not None and not self._bars.live.is_started:
            self._bars = None
        if self._bars is None and not (style and self.color):
            print(head + message, file=self.stream, flush=True)
            return
        console = self.console() if self._bars is None else self._bars.console
        console.print(Text(head, style=style) + Text(message), markup=False, highlight=False)

    def console(self) -> Console:
        if self._console is None:
            self._console = Console(
                file=self.stream,
                force_terminal=self.live or self.color,
                no_color=not self.color,
                highlight=False,
                soft_wrap=True,
            )
        return self._console

    # --- live bars

    def _live(self, items: Iterable[T], total: int | None, desc: str, done: int) -> Iterator[T]:
        outer = self._bars is None or not self._bars.live.is_started  # stop_live() may have ended it
        if outer:
            self._bars = _bars(self.console())
            self._bars.start()
            _LIVE.add(self._bars)
        bars = self._bars
        task = bars.add_task(desc, total=total, completed=done)
        try:
            for item in items:
                yield item
                bars.advance(task)
            bars.refresh()
        finally:
            if outer:
                bars.stop()
                _LIVE.discard(bars)
                if self._bars is bars:  # not a later loop's, when this one closes late
                    self._bars = None
            else:
                bars.remove_task(task)  # an inner loop (an epoch's batches) leaves the outer bar

    # --- plain lines

    def _plain(self, items: Iterable[T], total: int | None, desc: str, done: int) -> Iterator[T]:
        start = last = time.monotonic()
        i = 0
        for i, item in enumerate(items, 1):
            yield item
            now = time.monotonic()
            if now - last > PLAIN_EVERY_S:
                self._say(_plain_line(desc, done + i, total, i, now - start))
                last = now
        if i and time.monotonic() - start > PLAIN_FINAL_AFTER_S:
            self._say(_plain_line(desc, done + i, total, i, time.monotonic() - start))


def _plain_line(desc: str, at: int, total: int | None, counted: int, elapsed: float) -> str:
    """`  desc at/total (rate/s, elapsed, ETA)`; `counted` of the `at` were done in `elapsed` seconds.

    >>> _plain_line("extract image", 30, 100, 30, 10.0)
    '  extract image 30/100 (3.0/s, 10.0s, ETA 23s)'
    """
    of = f"/{total}" if total else ""
    rate = counted / elapsed if elapsed > 0 else 0.0
    eta = f", ETA {(total - at) / rate:.0f}s" if total and rate > 0 and at < total else ""
    return f"  {desc} {at}{of} ({rate:.1f}/s, {elapsed:.1f}s{eta})"


class _Count(ProgressColumn):
    """`desc i/total` (`desc i` when the total is unknown), as the plain lines say it."""

    def render(self, task: Task) -> Text:
        of = f"/{task.total:.0f}" if task.total else ""
        return Text(f"  {task.description} {task.completed:.0f}{of}")


class _Rate(ProgressColumn):
    """Items a second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "?/s", style="progress.data.speed")


class _Eta(TimeRemainingColumn):
    """`ETA 0:01:10`; nothing when the total is unknown."""

    def render(self, task: Task) -> Text:
        return Text("ETA ", style="progress.remaining") + super().render(task) if task.total else Text("")


def _bars(console: Console) -> Progress:
    """`desc i/total ━━━━━━━ rate elapsed ETA`: the count right after the name, as the plain lines."""
    return Progress(
        _Count(),
        BarColumn(),
        _Rate(),
        TimeElapsedColumn(),
        _Eta(),
        console=console,
        refresh_per_second=4,
    )


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, plural unless n is 1.

    >>> counted(1, "step"), counted(3, "part")
    ('1 step', '3 parts')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"
