"""A group's compute table: compensation (the cuBLAS workspace of deterministic CUDA trainings) has no
effect on a group's steps, so a group setting it is refused; the top-level [compute] compensation
still reaches the models. FSDP is refused there too; amp_dtype is read by the group's autocast."""

from __future__ import annotations

import pytest

from neuroexec.errors import SpecError
from neuroexec.spec import load_spec

SPEC = """version = 1
[compute]
{top}
[datasets.d]
caps = "data/d"
generate = {{ subjects = 8, resolution_mm = 8 }}
[models.m]
maps = "maps/m"
dataset = "d"
[groups.test]
dataset = "d"
models = ["m"]
compute = {{ {group} }}
"""


def load(tmp_path, top: str = "", group: str = ""):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(top=top, group=group))
    return load_spec(path)


def problems(tmp_path, **tables) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        load(tmp_path, **tables)
    return {p.key: p.message for p in err.value.problems}


@pytest.mark.parametrize("value", ['"time"', '"memory"'])
def test_a_groups_compensation_is_refused(tmp_path, value):
    said = problems(tmp_path, group=f"compensation = {value}")
    assert list(said) == ["groups.test.compute.compensation"]
    assert "a group's steps train nothing" in said["groups.test.compute.compensation"]


def test_the_top_level_compensation_still_reaches_the_models(tmp_path):
    spec = load(tmp_path, top='compensation = "time"', group="batch_size = 2")
    assert spec.models["m"].compute.compensation == "time"
    assert spec.groups["test"].compute.batch_size == 2


def test_a_groups_fsdp_is_refused_and_its_amp_dtype_kept(tmp_path):
    said = problems(tmp_path, group="fully_sharded_data_parallel = true")
    assert list(said) == ["groups.test.compute.fully_sharded_data_parallel"]
    assert load(tmp_path, group='amp_dtype = "float16"').groups["test"].compute.amp_dtype == "float16"
