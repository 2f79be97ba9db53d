"""Shared fixtures for the kernel benchmarks and the end-of-session ratio table.

Each benchmark tags itself with `benchmark.extra_info`: `role` (neuroexec | baseline | floor | peer |
variant), `bytes` (the memory traffic the operation needs at least: bytes read + bytes written) and,
for the patch pipeline, `items` (patches delivered). At the end of the session a table compares every
variant of a group with the group's baseline (eager torch, or ClinicaDL's layout) and with its copy
floor (a `tensor.copy_` of the same bytes), and is written to `.benchmarks/ratios.json`.
Times are the minimum over rounds (least disturbed by other load on a shared machine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


def bench_device() -> torch.device:
    return torch.device(os.environ.get("NEUROEXEC_BENCH_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def device() -> torch.device:
    dev = bench_device()
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("NEUROEXEC_BENCH_DEVICE=cuda but no CUDA GPU is available")
    return dev


@pytest.fixture(scope="session")
def batch_size(device: torch.device) -> int:
    return 8 if device.type == "cuda" else 2


@pytest.fixture
def run(benchmark, device: torch.device) -> Callable[..., object]:
    """run(fn, role, bytes=..., items=...): benchmark fn (synchronising CUDA) with fixed rounds."""

    def _run(fn: Callable[[], object], role: str, bytes: int = 0, items: int = 0, rounds: int = 15) -> object:
        benchmark.extra_info.update(role=role, bytes=int(bytes), items=int(items), device=str(device))

        def call() -> object:
            out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        return benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=1)

    return _run


def _rows(benchmarks: list) -> list[dict]:
    groups: dict[str, list] = {}
    for b in benchmarks:
        groups.setdefault(b.group or "", []).append(b)
    rows = []
    for group, items in sorted(groups.items()):
        by_role = {b.extra_info.get("role"): b for b in items}
        base, floor = by_role.get("baseline"), by_role.get("floor")
        for b in items:
            t = b.stats.min
            info = b.extra_info
            row = {"group": group, "name": b.name.split("[")[0], "role": info.get("role"), "time_ms": t * 1e3}
            if info.get("bytes"):
                row["GB_per_s"] = info["bytes"] / t / 1e9
            if info.get("items"):
                row["items_per_s"] = info["items"] / t
            if base is not None:
                row["speedup_vs_baseline"] = base.stats.min / t
            if floor is not None and info.get("bytes") and floor.extra_info.get("bytes"):
                floor_bw = floor.extra_info["bytes"] / floor.stats.min
                row["fraction_of_copy_bw"] = info["bytes"] / t / floor_bw
            elif floor is not None:
                row["fraction_of_copy_bw"] = floor.stats.min / t
            row["device"] = info.get("device")
            rows.append(row)
    return rows


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [b for b in getattr(session, "benchmarks", []) if b and "role" in b.extra_info]
    if not benchmarks:
        return
    rows = _rows(benchmarks)
    tr = terminalreporter
    tr.section("neuroexec ratios (min time; baseline = eager torch / ClinicaDL layout; floor = copy_)")
    tr.write_line(
        f"{'group':<22}{'variant':<42}{'role':<10}{'ms':>9}{'GB/s':>8}{'item/s':>9}{'x base':>8}{'of copy':>9}"
    )

    def fmt(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "-"

    for r in rows:
        tr.write_line(
            f"{r['group']:<22}{r['name']:<42}{r['role']:<10}{r['time_ms']:>9.2f}"
            f"{fmt(r.get('GB_per_s'), '.1f'):>8}{fmt(r.get('items_per_s'), '.0f'):>9}"
            f"{fmt(r.get('speedup_vs_baseline'), '.2f'):>8}{fmt(r.get('fraction_of_copy_bw'), '.0%'):>9}"
        )
    out = Path(config.rootpath) / ".benchmarks" / "ratios.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"torch": torch.__version__, "device": rows[0]["device"], "threads": torch.get_num_threads()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    tr.write_line(f"ratios written to {out}")
