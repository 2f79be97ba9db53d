"""An architecture or a label the model cannot use is refused before any step runs, naming its key:
validate sees an unknown name, a network not for the task or not for the mode's dimensions; the plan
sees a label column the participants lack and a network too small for the planned inputs."""

from __future__ import annotations

import pytest

from neuroexec.cli import main
from neuroexec.errors import SpecError
from neuroexec.nn import registry
from neuroexec.plan.graph import REFUSED, make_plan
from neuroexec.spec import load_spec
from tests.helpers import make_tiny_caps

GENERATED = """version = 1
[datasets.d]
caps = "data/d"
generate = {{ subjects = 8, resolution_mm = {mm} }}
[models.m]
maps = "maps/m"
dataset = "d"
split = {{ n_splits = 2, splits = [0] }}
{model}
"""


def write(tmp_path, model: str, mm: int = 8):
    path = tmp_path / "spec.toml"
    path.write_text(GENERATED.format(model=model, mm=mm))
    return path


def problems(tmp_path, model: str) -> list:
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, model))
    return err.value.problems


def refusals(path) -> list[str]:
    return [" ".join(p.reasons) for p in make_plan(load_spec(path)).steps if p.action == REFUSED]


def test_an_unknown_architecture_is_refused_by_validate_with_the_closest_name(tmp_path, capsys):
    (problem,) = problems(tmp_path, 'architecture = "Conv5FC3"')
    assert problem.key == "models.m.architecture"
    assert "unknown architecture 'Conv5FC3' (did you mean Conv5_FC3?)" in problem.message
    assert "TinyCNN" in problem.message and "'module:Class'" in problem.message
    assert main(["apply", str(tmp_path / "spec.toml"), "--quiet"]) == 2
    assert not (tmp_path / "data").exists()  # generate did not run


def test_a_network_for_another_task_is_refused(tmp_path):
    (problem,) = problems(tmp_path, 'architecture = "AE_Conv5_FC3"')
    assert problem.key == "models.m.architecture"
    assert "AE_Conv5_FC3 is for reconstruction, not task = 'classification'" in problem.message


@pytest.mark.parametrize(
    "model, said",
    [
        ('architecture = "ResNet3D"\nmode = "slice"\nslice = { direction = 2 }',
         "ResNet3D builds 3D networks, and mode = 'slice' feeds it 2D inputs"),
        ('architecture = "resnet18"', "resnet18 builds 2D networks, and mode = 'image' feeds it 3D inputs"),
    ],
)  # fmt: skip
def test_a_network_without_the_modes_dimensions_is_refused(tmp_path, model, said):
    (problem,) = problems(tmp_path, model)
    assert problem.key == "models.m.architecture" and said in problem.message
    assert "resnet18" in problem.message if "ResNet3D" in said else "ResNet3D" in problem.message  # choices


def test_the_dimensions_come_from_the_registry_entry(tmp_path, monkeypatch):
    only2d = registry.Entry("Only2D", registry.CLASSIFIERS, (2,), registry.REGISTRY["TinyCNN"].build, "2D")
    monkeypatch.setitem(registry.REGISTRY, "Only2D", only2d)
    load_spec(write(tmp_path, 'architecture = "Only2D"\nmode = "slice"\nslice = { direction = 2 }'))
    (problem,) = problems(tmp_path, 'architecture = "Only2D"')
    assert "Only2D builds 2D networks" in problem.message


def test_a_label_column_a_generated_dataset_lacks_is_refused_by_the_plan(tmp_path):
    found = refusals(write(tmp_path, 'architecture = "TinyCNN"\nlabel = "diagnosys"'))
    assert len(found) == 1
    assert found[0].startswith(
        "models.m.label: no column 'diagnosys' in the participants dataset d generates"
    )
    assert "(did you mean diagnosis?)" in found[0] and "age, sex" in found[0]


def test_a_label_column_the_participants_tsv_lacks_is_refused_before_any_step_runs(tmp_path):
    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12))
    spec = tmp_path / "spec.toml"
    spec.write_text(f"""version = 1
[datasets.d]
caps = "{caps}"
participants = "{tsv}"
[models.m]
maps = "maps/m"
dataset = "d"
architecture = "TinyCNN"
label = "dx"
split = {{ n_splits = 2, splits = [0] }}
""")
    (found,) = refusals(spec)
    assert found.startswith(f"models.m.label: no column 'dx' in {tsv}")
    assert main(["apply", str(spec), "--quiet"]) == 2
    assert not (caps / "subjects" / "sub-0000" / "ses-M000" / "deeplearning_prepare_data").exists()
    assert not (tmp_path / "maps").exists()


def test_the_right_label_plans_without_refusal(tmp_path):
    assert refusals(write(tmp_path, 'architecture = "TinyCNN"\ntask = "regression"\nlabel = "age"')) == []


@pytest.mark.parametrize(
    "model, mm, said",
    [
        ('architecture = "Conv5_FC3"', 16, "Conv5_FC3 pools 5 times and needs every spatial size >= 17; input "
         "size (1, 11, 13, 11)"),
        ('architecture = "Conv5_FC3"\nmode = "patch"\npatch = { size = 8, stride = 8 }', 8,
         "input size (1, 8, 8, 8) is too small"),
        ('architecture = "Conv5_FC3"\nmode = "slice"\nslice = { direction = 0 }', 16, "input size (3, 13, 11)"),
        ('architecture = "ResNet3D"', 8, "ResNet3D"),
    ],
)  # fmt: skip
def test_a_network_too_small_for_the_planned_inputs_is_refused(tmp_path, model, mm, said):
    (found,) = refusals(write(tmp_path, model, mm))
    assert found.startswith("models.m.architecture: ") and said in found, found


def test_a_network_that_fits_is_not_refused(tmp_path):
    assert refusals(write(tmp_path, 'architecture = "Conv5_FC3"', mm=8)) == []  # 21 x 26 x 22


def test_a_size_reduced_image_is_checked_at_its_reduced_size(tmp_path):
    reduced = 'architecture = "ResNet3D"\nsize_reduction_factor = 3'  # 169x208x179 -> 56x64x56
    (found,) = refusals(write(tmp_path, reduced, mm=1))
    assert found.startswith("models.m.architecture: ") and "input size (1, 56, 64, 56)" in found, found
    vae = 'architecture = "CVAE_3D_half"\ntask = "reconstruction"\nsize_reduction_factor = 2'  # 80x96x80
    assert refusals(write(tmp_path, vae, mm=1)) == []
