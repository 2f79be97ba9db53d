"""`apply --slurm` of a spec in a folder whose name has a space, on the real one-node SLURM
(tests/cluster/conftest.py): sbatch reads the quoted `--output` whole, so the job's log is where the
records say (the job itself is not waited for: the shell lines' quoting is tested on the script text in
test_cluster_jobs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.cli import main
from tests.cluster.slurm import Slurm

SPEC = """
version = 1
[datasets.demo]
caps = "data/demo"
generate = { subjects = 4, resolution_mm = 8, seed = 1 }
"""


def test_a_spec_folder_with_a_space(
    slurm_clean: Slurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my study"
    folder.mkdir()
    spec = folder / "spec.toml"
    spec.write_text(SPEC)
    monkeypatch.setenv("SLURM_CONF", slurm_clean.env["SLURM_CONF"])
    assert main(["apply", str(spec), "--slurm"]) == 0
    (job,) = json.loads((folder / ".neuroexec/slurm/spec/jobs.json").read_text())["jobs"]
    log = Path(job["log"].replace("%j", job["id"]))
    assert log.parent.parent == folder / ".neuroexec/slurm/spec"
    shown = slurm_clean.run("scontrol", "show", "job", job["id"]).stdout  # sbatch's reading of the script
    assert f"StdOut={log}\n" in shown and "JobName=neuroexec-spec-data" in shown, shown
