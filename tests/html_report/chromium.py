"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
on fd 3, answers on fd 4, each a JSON text ended by a NUL byte), to load a page the way a reader does
and see what it logs, what it fetches and what it looks like.

    with Chromium(profile_dir) as browser:
        visit = browser.visit(page_path)   # console errors, exceptions, requests, images, screenshot
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--allow-file-access-from-files", "--remote-debugging-pipe",
]  # fmt: skip
IMAGES = """JSON.stringify({
  images: document.images.length,
  drawn: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
  viewers: document.querySelectorAll("iframe").length,
  canvases: Array.from(document.querySelectorAll("iframe")).map(
    f => f.contentDocument ? f.contentDocument.querySelectorAll("canvas").length : -1),
})"""


@dataclass
class Visit:
    """What loading a page gave: console errors and uncaught exceptions, the URLs it requested, the
    state of its images and viewers, and a screenshot (PNG bytes)."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dom: dict = field(default_factory=dict)
    screenshot: bytes = b""


class Chromium:
    def __init__(self, profile: Path, width: int = 1200, height: int = 3000, timeout_s: float = 60.0):
        self.profile, self.size, self.timeout_s = profile, (width, height), timeout_s
        self._id, self._buffer, self._events = 0, b"", []

    def __enter__(self) -> Chromium:
        to_browser, self._to_browser = _high_pipe()
        self._from_browser, from_browser = _high_pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, its fd 4 writes answers
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        argv = [str(CHROMIUM), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self.process = subprocess.Popen(
            argv, preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(to_browser)
        os.close(from_browser)
        return self

    def __exit__(self, *exc: object) -> None:
        try:  # the answer is not awaited: Chromium may close the pipe before it
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._next()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self._events.append(answer)

    def _next(self, deadline: float | None = None) -> dict:
        deadline = deadline or time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise OSError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        text, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(text)

    def _wait_for(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not any(e.get("method") == method for e in self._events):
            self._events.append(self._next(deadline))

    def _settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._events.append(self._next(deadline))
        except TimeoutError:
            pass

    def visit(self, page: Path, settle_s: float = 1.5) -> Visit:
        """Load `page` (a file) in a new tab, let its scripts run, and report what happened."""
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self._send(f"{domain}.enable", session=session)
        width, height = self.size
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self._send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        self._events.clear()
        self._send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        self._wait_for("Page.loadEventFired")
        self._settle(settle_s)
        visit = Visit()
        for event in self._events:
            _note(event, visit)
        found = self._send("Runtime.evaluate", {"expression": IMAGES, "returnByValue": True}, session=session)
        visit.dom = json.loads(found["result"]["value"])
        shot = self._send("Page.captureScreenshot", {"format": "png"}, session=session)
        visit.screenshot = base64.b64decode(shot["data"])
        return visit


def _note(event: dict, visit: Visit) -> None:
    """Record an event of the page: an error logged, an exception, a request."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        visit.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
    elif method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        visit.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        visit.errors.append(params["entry"].get("text", ""))
    elif method == "Network.requestWillBeSent":
        visit.requests.append(params["request"]["url"])


def _high_pipe() -> tuple[int, int]:
    """A pipe whose two ends are above fd 9, so that wiring them to fds 3 and 4 cannot clobber one."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


def save_screenshot(page: Path, out: Path, width: int = 1200, height: int = 2500) -> None:
    """The top of `page` as a small PNG (README's docs/images/report.png: 80% size, 128 colours)."""
    import io
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as profile, Chromium(Path(profile), width, height) as browser:
        visit = browser.visit(page, settle_s=2.0)
    if visit.errors:
        raise SystemExit(f"{page}: {visit.errors}")
    picture = Image.open(io.BytesIO(visit.screenshot)).convert("RGB")
    picture = picture.resize((width * 4 // 5, height * 4 // 5), Image.LANCZOS)
    picture.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


if (
    __name__ == "__main__"
):  # python -m tests.html_report.chromium spec/examples/quickstart.report.html docs/images/report.png
    import sys

    save_screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
