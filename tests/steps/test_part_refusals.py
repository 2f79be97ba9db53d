"""A part model the images cannot feed is refused by the plan, before any step runs, naming its key:
patches larger than the images, one network per patch or per slice with a single one per image."""

from __future__ import annotations

import pytest

from neuroexec.plan.graph import REFUSED, make_plan
from neuroexec.spec import load_spec

HEAD = """version = 1
[datasets.d]
caps = "data/d"
generate = { subjects = 8, resolution_mm = 8 }    # 21 x 26 x 22 voxels
[models.m]
maps = "maps/m"
dataset = "d"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
"""


def refusals(tmp_path, model: str) -> list[str]:
    path = tmp_path / "spec.toml"
    path.write_text(HEAD + model)
    plan = make_plan(load_spec(path))
    return [" ".join(p.reasons) for p in plan.steps if p.action == REFUSED]


@pytest.mark.parametrize(
    "model, said",
    [
        ('mode = "patch"\npatch = { size = 30, stride = 30 }\n', "models.m.patch.size: patches of 30 voxels do not fit"),
        ('mode = "patch"\npatch = { size = 18, stride = 18 }\nmulti_network = true\n', "give 1 per image"),
        ('mode = "slice"\nslice = { direction = 2, discarded = [10, 11] }\nmulti_network = true\n', "leave 1 of the 22"),
        ('mode = "slice"\nslice = { direction = 2, discarded = [11, 11] }\n', "models.m.slice.discarded"),
    ],
)  # fmt: skip
def test_the_plan_refuses_a_part_model_the_images_cannot_feed(tmp_path, model, said):
    found = refusals(tmp_path, model)
    assert len(found) == 1 and said in found[0], found


@pytest.mark.parametrize(
    "model",
    [
        'mode = "patch"\npatch = { size = 10, stride = 10 }\nmulti_network = true\n',
        'mode = "slice"\nslice = { direction = 2, discarded = [10, 10] }\nmulti_network = true\n',
    ],
)
def test_two_parts_are_enough(tmp_path, model):
    assert refusals(tmp_path, model) == []
