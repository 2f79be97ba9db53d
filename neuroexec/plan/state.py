"""State records: `<home>/.neuroexec/state.json` holds, per finished step, its fingerprint, the config and
input identities it ran with (for field-level plan reasons), timings and outputs; and a cache of input
file identities (path -> size, mtime, content hash) so plan re-hashes only files whose stat changed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from neuroexec import atomic
from neuroexec.errors import InputError
from neuroexec.records import state_file, state_lock

STATE_FORMAT = 1


# Why an unreadable state file stops the plan instead of being taken as "nothing done yet".
LOST_RECORDS = (
    "neuroexec cannot tell which results in this folder are finished and will not redo (overwrite) "
    "them: restore the file from a backup, or delete it (apply then treats the folder as one neuroexec "
    "did not make)"
)


def empty_state() -> dict[str, Any]:
    return {"format": STATE_FORMAT, "steps": {}, "files": {}}


def read_state(path: Path) -> tuple[dict[str, Any], str | None]:
    """The records in a state file, or (empty records, why they cannot be read). A missing file is
    empty records; a file that is not neuroexec's records (truncated, not UTF-8, `[]`, `{}`) is a
    problem, never "nothing done yet", since that would redo and overwrite finished results.

    >>> read_state(Path("maps/.neuroexec/state.json"))  # nothing done yet
    ({'format': 1, 'steps': {}, 'files': {}}, None)
    >>> _ = Path("state.json").write_text("[]")
    >>> read_state(Path("state.json"))[1]
    "state file holds a JSON list instead of neuroexec's records"
    """
    if not path.exists():
        return empty_state(), None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return empty_state(), "state file is not UTF-8 text (damaged?)"
    except json.JSONDecodeError as exc:
        return empty_state(), f"state file is not valid JSON (truncated?): {exc}"
    except OSError as exc:
        return empty_state(), f"state file cannot be read: {exc.strerror or exc}"
    why = _not_records(data)
    if why:
        return empty_state(), f"state file {why}"
    data.setdefault("files", {})
    return data, None


def _not_records(data: Any) -> str | None:
    """Why parsed JSON is not a state file's records (None when it is)."""
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__} instead of neuroexec's records"
    if not isinstance(data.get("steps"), dict):
        return "has no step records (its 'steps' table is missing)"
    if not all(isinstance(r, dict) for r in data["steps"].values()):
        return "has step records that are not tables"
    if not isinstance(data.get("files", {}), dict):
        return "has a 'files' entry that is not a table"
    return None


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
        data, problem = read_state(self.path)
        if problem is not None:
            raise InputError(self.path, f"{problem}; {LOST_RECORDS}")
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
        with atomic.exclusive(state_lock(self.path)):
            self._data = self._read()
            yield

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
