"""The roi / slice / multi_network keys of a model: each table goes with its mode, and the spec resolves
them into the model's ExtractionMode (what the extract step's id and the MAPS record say)."""

from __future__ import annotations

import pytest

from neuroexec.errors import SpecError
from neuroexec.spec import load_spec

HEAD = """version = 1
[datasets.d]
caps = "data/d"
generate = { subjects = 8 }
[models.m]
maps = "maps/m"
dataset = "d"
"""


def problems(tmp_path, model: str) -> list[str]:
    path = tmp_path / "spec.toml"
    path.write_text(HEAD + model)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(
    "model, key, said",
    [
        ('roi = { list = ["a"] }\n', "models.m.roi", "roi settings need mode = 'roi'"),
        (
            'mode = "patch"\nslice = { direction = 1 }\n',
            "models.m.slice",
            "slice settings need mode = 'slice'",
        ),
        ('mode = "roi"\n', "models.m.roi", "needs roi = {"),
        ("multi_network = true\n", "models.m.multi_network", "needs mode = 'patch', 'roi' or 'slice'"),
        (
            'mode = "roi"\nroi = { list = ["a"] }\nmulti_network = true\n',
            "models.m.multi_network",
            "2 regions",
        ),
        (
            'mode = "roi"\nroi = { list = ["left_hippocampus"] }\n',
            "models.m.roi.list[0]",
            "expected a name matching",
        ),
        ('mode = "slice"\nslice = { direction = 3 }\n', "models.m.slice.direction", ""),
        (
            'mode = "slice"\nslice = { discarded = [-1, 2] }\n',
            "models.m.slice.discarded",
            "expected an integer >= 0 or a list of 1 to 2 integers >= 0, got list [-1, 2]",
        ),
    ],
)
def test_a_mode_table_that_does_not_go_with_the_mode_is_named(tmp_path, model, key, said):
    found = problems(tmp_path, model)
    assert len(found) == 1 and f"{key}:" in found[0] and said in found[0], found


def test_the_tables_resolve_into_the_models_extraction_mode(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(
        HEAD.replace("[models.m]", "[models.r]").replace("maps/m", "maps/r")
        + 'mode = "roi"\nroi = { list = ["leftHippocampus", "rightHippocampus"], uncropped = true }\n'
        + 'multi_network = true\n[models.s]\nmaps = "maps/s"\ndataset = "d"\nmode = "slice"\n'
        + 'slice = { direction = 2, mode = "single", discarded = [3, 4] }\n'
    )
    spec = load_spec(path)
    roi, slices = spec.models["r"], spec.models["s"]
    assert str(roi.extract_mode) == "roi-leftHippocampus+rightHippocampus-uncropped" and roi.multi_network
    assert str(slices.extract_mode) == "slice-axi-single" and slices.slice.discarded == (3, 4)
    assert not slices.multi_network
