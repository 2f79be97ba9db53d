"""State records: `<home>/.neuroexec/state.json` holds, per finished step, its fingerprint, the config and
input identities it ran with (for field-level plan reasons), timings and outputs; and a cache of input
file identities (path -> size, mtime, content hash) so plan re-hashes only files whose stat changed."""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from neuroexec import atomic
from neuroexec.errors import InputError

STATE_FORMAT = 1


def state_file(home: Path) -> Path:
    return home / ".neuroexec" / "state.json"


class StateStore:
    """Records of one home folder (a MAPS or a CAPS). Loaded lazily, written atomically on each change."""

    def __init__(self, home: Path):
        self.home = home
        self.path = state_file(home)
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._read()
        return self._data

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"format": STATE_FORMAT, "steps": {}, "files": {}}
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(
                self.path, f"state file is corrupt ({exc}); remove it to re-run every step of this folder"
            ) from None
        data.setdefault("steps", {})
        data.setdefault("files", {})
        return data

    def record(self, step_id: str) -> dict[str, Any] | None:
        return self.data["steps"].get(step_id)

    def put(self, step_id: str, entry: dict[str, Any], files: dict[str, Any]) -> None:
        with self._merging():
            self.data["steps"][step_id] = entry
            self.data["files"].update(files)
            atomic.write_json(self.path, self.data)

    def forget(self, step_ids: list[str]) -> None:
        with self._merging():
            steps = self.data["steps"]
            if any(s in steps for s in step_ids):
                for s in step_ids:
                    steps.pop(s, None)
                atomic.write_json(self.path, self.data)

    @contextlib.contextmanager
    def _merging(self) -> Iterator[None]:
        """Read-modify-write under an exclusive flock, re-reading the file first: another apply may have
        recorded steps of another part of this folder (one split per cluster job) since we loaded it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / "state.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._data = self._read()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def file_cache(self) -> dict[str, Any]:
        return self.data["files"]


class StateStores:
    """One StateStore per home, shared by plan and executor."""

    def __init__(self) -> None:
        self._stores: dict[Path, StateStore] = {}

    def __getitem__(self, home: Path) -> StateStore:
        if home not in self._stores:
            self._stores[home] = StateStore(home)
        return self._stores[home]
