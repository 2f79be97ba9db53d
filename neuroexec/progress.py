"""One reporter for progress and messages: a live bar on a terminal, plain lines elsewhere (CI, logs).

Steps never print: they call the reporter carried by their context."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

# Plain output (CI, log files): a line every PLAIN_EVERY_S seconds, and a closing one for loops that
# took longer than PLAIN_FINAL_AFTER_S (short loops stay silent: the step lines already say enough).
PLAIN_EVERY_S = 10.0
PLAIN_FINAL_AFTER_S = 2.0


class Reporter:
    """Progress for long work. `quiet` silences bars (tests); messages still go to `stream`."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = self.stream.isatty() if live is None else live

    def info(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=self.stream, flush=True)

    def iterate(self, items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
        """Yield `items`, showing `desc i/total` live on a terminal, or a line every 10 s (plain)."""
        if total is None:
            try:
                total = len(items)  # type: ignore[arg-type]
            except TypeError:
                total = None
        if self.quiet:
            yield from items
            return
        start = last = time.monotonic()
        i = 0
        for i, item in enumerate(items, 1):
            yield item
            now = time.monotonic()
            if self.live and (now - last > 0.1 or i == total):
                self._live_line(desc, i, total, now - start)
                last = now
            elif not self.live and now - last > PLAIN_EVERY_S:
                self._plain_line(desc, i, total, now - start)
                last = now
        if not self.live and i and time.monotonic() - start > PLAIN_FINAL_AFTER_S:
            self._plain_line(desc, i, total, time.monotonic() - start)
        if self.live and i:
            self.stream.write("\n")
            self.stream.flush()

    def _live_line(self, desc: str, i: int, total: int | None, elapsed: float) -> None:
        of = f"/{total}" if total else ""
        rate = i / elapsed if elapsed > 0 else 0.0
        self.stream.write(f"\r  {desc} {i}{of} ({rate:.1f}/s, {elapsed:.0f}s)\x1b[K")
        self.stream.flush()

    def _plain_line(self, desc: str, i: int, total: int | None, elapsed: float) -> None:
        of = f"/{total}" if total else ""
        print(f"  {desc} {i}{of} ({elapsed:.1f}s)", file=self.stream, flush=True)
