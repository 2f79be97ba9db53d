"""Regenerating a synthetic CAPS removes what neuroexec wrote there, and only that: a file a user put
inside it is listed in the plan as kept, and is still there after apply."""

from __future__ import annotations

from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

SPEC = """
version = 1
[compute]
workers = 0
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 4, resolution_mm = 8, seed = {seed} }}
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = 2 }}
"""


def _apply(path: Path) -> None:
    apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True)),
          target="dataset.demo.extract*")  # fmt: skip


def test_regeneration_keeps_a_users_file_inside_the_caps_and_says_so(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(seed=1))
    _apply(path)
    caps = tmp_path / "data" / "demo"
    session = next((caps / "subjects").glob("sub-*/ses-*"))
    mine = session / "mine.txt"
    mine.write_text("precious")
    image = next(session.glob("t1_linear/*.nii.gz"))
    old_image = image.read_bytes()

    path.write_text(SPEC.format(seed=2))
    plan = make_plan(load_spec(path))
    step = next(p for p in plan.steps if p.step.id == "dataset.demo.generate")
    assert step.action == "~"
    removed = {p for r in step.removals for p in r.paths}
    assert mine not in removed and not any(p in mine.parents for p in removed)
    assert image in removed or any(p in image.parents for p in removed)
    text = render_text(plan)
    assert "keeps 1 file(s) neuroexec did not write there" in text and str(mine.relative_to(caps)) in text

    _apply(path)
    assert mine.read_text() == "precious"
    assert image.read_bytes() != old_image


def test_an_atomic_writes_temporary_file_is_not_called_a_users_file(tmp_path):
    from neuroexec.data.synthetic import generate_atrophy_dataset, generated_contents

    caps = generate_atrophy_dataset(tmp_path / "caps", subjects=2, resolution_mm=8.0).caps_dir
    session = next((caps / "subjects").glob("sub-*/ses-*"))
    left = session / "t1_linear" / ".x.nii.gz.4242-4026531836@node1.1f2e3d4c.tmp"  # a killed write's
    left.write_bytes(b"half")
    mine = session / "mine.txt"
    mine.write_text("mine")
    made, foreign = generated_contents(caps)
    assert foreign == (mine,)
    assert any(p == left or p in left.parents for p in made)
