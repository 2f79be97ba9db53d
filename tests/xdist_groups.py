"""Which tests share a pytest-xdist worker (`make test` runs the suite in parallel workers, `-n`).

A fixture wider than a function is computed once per worker that uses it: tests sharing one (a trained
project, a torchrun launch) must go to one worker, so that it is built once, as in a serial run. Tests
are joined when they share a session-scoped fixture of this project, a module- or class-scoped fixture of
the same module, or a `same_worker(NAME)` mark (tests that look at machine-wide state, such as /dev/shm).
Session fixtures cheap enough to build in each worker (PER_WORKER: the one-node SLURM) join nothing.

Each worker collects the tests, computes the groups and writes them to a file ({test id: group}); the
scheduler, in the controlling process, reads them and hands each group to one worker, as a whole. (The
ids alone cannot carry a group: pytest-xdist's `--dist loadgroup` appends it to an id, which pytest 9.2's
ids no longer allow.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

TESTS = Path(__file__).resolve().parent
GROUPS_ENV = "NEUROEXEC_TEST_GROUPS"  # the folder of the workers' group files, set by the controller
# session fixtures cheap enough to build once per worker, so that their tests spread over the workers
PER_WORKER = {
    "slurm": "tests/cluster/conftest.py: a one-node SLURM of its own starts in about a second",
}


def _shared_keys(item: pytest.Item) -> list[str]:
    """What `item` shares with other tests: its wider fixtures of this project, and its marks."""
    keys = [f"same_worker:{mark.args[0]}" for mark in item.iter_markers("same_worker")]
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::")[0]
    for name, definitions in info.name2fixturedefs.items() if info else ():
        definition = definitions[-1]
        code = getattr(definition.func, "__code__", None)
        if definition.scope == "function" or code is None or name in PER_WORKER:
            continue
        if Path(code.co_filename).resolve().is_relative_to(TESTS):  # not pytest's own (tmp_path_factory)
            keys.append(name if definition.scope in ("session", "package") else f"{module}:{name}")
    return keys


def groups(items: list[pytest.Item]) -> dict[str, str]:
    """{test id: group} for each test that shares something; the tests of a group share, directly or
    through others, at least one fixture or mark."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keyed = [(item.nodeid, _shared_keys(item)) for item in items]
    for _, keys in keyed:
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
    return {nodeid: find(keys[0]) for nodeid, keys in keyed if keys}


def write_groups(items: list[pytest.Item]) -> None:
    """In a worker: its groups, to the controller's folder."""
    folder, worker = os.environ.get(GROUPS_ENV), os.environ.get("PYTEST_XDIST_WORKER")
    if folder and worker:
        (Path(folder) / f"{worker}.json").write_text(json.dumps(groups(items)))


class GroupScheduling(LoadScopeScheduling):
    """pytest-xdist's scheduling by scope, where a test's scope is its group (or the test alone)."""

    def __init__(self, config: pytest.Config, log=None, folder: Path | None = None) -> None:
        super().__init__(config, log)
        self._folder, self._groups = folder, None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:  # every worker collected the same tests: any one's file says it all
            self._groups = json.loads(next(self._folder.glob("*.json")).read_text())
        return self._groups.get(nodeid, nodeid)
