"""`apply --slurm` of a spec in a folder whose name has a space, on the real one-node SLURM
(tests/cluster/conftest.py): sbatch reads the quoted `--output`, the job runs the quoted spec path and
its log is where the records say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cluster.slurm import Slurm

SPEC = """
version = 1
[datasets.demo]
caps = "data/demo"
generate = { subjects = 4, resolution_mm = 8, seed = 1 }
"""


def test_a_spec_folder_with_a_space(slurm_clean: Slurm, tmp_path: Path) -> None:
    folder = tmp_path / "my study"
    folder.mkdir()
    spec = folder / "spec.toml"
    spec.write_text(SPEC)
    env = {**slurm_clean.env, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "neuroexec", "apply", str(spec), "--slurm"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    (job,) = json.loads((folder / ".neuroexec/slurm/spec/jobs.json").read_text())["jobs"]
    log = Path(job["log"].replace("%j", job["id"]))
    assert slurm_clean.wait(job["id"], timeout=120) == "COMPLETED", slurm_clean.log(log)
    assert log.parent.parent == folder / ".neuroexec/slurm/spec" and log.is_file()
    assert (folder / "data/demo").is_dir()
