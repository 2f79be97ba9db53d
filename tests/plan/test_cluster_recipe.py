"""README's cluster recipe, run as written: the shared steps once, then one split per array task, the
tasks as concurrent processes writing one MAPS (issue 14, rule 12)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec

README = Path(__file__).resolve().parents[2] / "README.md"
# A CNN initialised from another CNN the spec trains too: each array task trains both on its split, so
# the splits of both MAPS are shared steps.
SPLITS = 2
SPEC = f"""
version = 1
[compute]
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 8, resolution_mm = 8, seed = 1 }}
[models.base]
maps = "maps/base"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = {SPLITS} }}
train = {{ epochs = 1 }}
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = {SPLITS} }}
transfer = {{ model = "base" }}
train = {{ epochs = 1 }}
"""


def recipe() -> tuple[str, str]:
    """(the command run once, the command of each array task), as README's cluster recipe spells them."""
    text = README.read_text()
    block = re.search(r"On a cluster.*?```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no cluster recipe (a ```sh block after 'On a cluster')"
    commands = [line.strip() for line in block.group(1).splitlines() if line.strip().startswith("neuroexec ")]
    assert len(commands) == 2 and "SLURM_ARRAY_TASK_ID" in commands[1], commands
    return commands[0], commands[1]


def shell(command: str, cwd: Path, task: int | None = None) -> subprocess.Popen:
    """Run a README command line in bash, `neuroexec` being this interpreter's module."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(task)
    script = f'neuroexec() {{ "{sys.executable}" -m neuroexec "$@"; }}\n{command}\n'
    return subprocess.Popen(
        ["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def plan_actions(spec: Path, target: list[str] | None = None) -> dict[str, str]:
    plan = make_plan(load_spec(spec))
    return {p.step.id: p.action for p in plan.select(target)}


@pytest.mark.slow  # ~15 s alone (4 processes start torch), more on a busy machine
def test_readme_cluster_recipe_runs_concurrent_array_tasks_to_a_complete_maps(tmp_path):
    (tmp_path / "spec.toml").write_text(SPEC)
    once, per_task = recipe()
    first = shell(once, tmp_path)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    # Everything the tasks share is done: each task has only its own split's trainings left to run.
    for task in range(SPLITS):
        words = shlex.split(per_task.replace("${SLURM_ARRAY_TASK_ID}", str(task)))
        targets = [words[i + 1] for i, w in enumerate(words) if w == "--target"]
        todo = {i for i, a in plan_actions(tmp_path / "spec.toml", targets).items() if a != "="}
        assert todo == {f"model.base.train[split-{task}]", f"model.cnn.train[split-{task}]"}, todo

    tasks = [shell(per_task, tmp_path, task) for task in range(SPLITS)]
    outputs = [t.communicate(timeout=300)[0] for t in tasks]
    for task, (proc, out) in enumerate(zip(tasks, outputs)):
        assert proc.returncode == 0, f"array task {task} exited {proc.returncode}:\n{out}"

    assert set(plan_actions(tmp_path / "spec.toml").values()) == {"="}
    for model in ("base", "cnn"):
        maps = MapsLayout(tmp_path / "maps" / model)
        assert maps.maps_json.is_file()
        for split in range(SPLITS):
            assert maps.training_tsv(split).is_file() and maps.best_model(split, "loss").is_file()


def test_target_given_several_times_selects_every_match_and_names_one_that_matches_nothing(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    assert main(["plan", str(spec), "--target", "dataset.*", "--target", "model.*.split"]) == 0
    shown = capsys.readouterr().out
    for step in (
        "dataset.demo.generate",
        "dataset.demo.extract[image]",
        "model.base.split",
        "model.cnn.split",
    ):
        assert step in shown
    assert "train[" not in shown
    assert main(["plan", str(spec), "--target", "dataset.*", "--target", "model.rnn.split"]) == 2
    error = capsys.readouterr().err
    assert "model.rnn.split" in error and "dataset.*" not in error
