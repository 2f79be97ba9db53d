"""interpret save_nifti and save_tensors.latent (ClinicaDL's interpret --save_nifti, predict
--save_latent_tensor) in the spec, the plan and the ClinicaDL-style front end: validate refuses what
cannot be written, the plan lists the extra outputs, the step fingerprints cover the keys (and a spec
without them keeps its fingerprints), the command-line flags reach the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.errors import SpecError
from neuroexec.plan.fingerprint import fingerprint
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from tests.compat.conftest import make_clinicadl_maps, tiny_data  # noqa: F401  (a fixture)

SPEC = """
version = 1
[datasets.a]
generate = {{ subjects = 4, resolution_mm = 8, seed = 1 }}
[models.ae]
maps = "maps/ae"
dataset = "a"
task = "reconstruction"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
[models.cnn]
maps = "maps/cnn"
dataset = "a"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
[groups.codes]
dataset = "a"
models = ["{codes_model}"]
skip_leak_check = true
save_tensors = {{ {save} }}
[groups.maps]
dataset = "a"
models = ["cnn"]
skip_leak_check = true
interpret = [{{ name = "g", {interpret} }}]
"""


def _spec(tmp_path: Path, save: str = "", interpret: str = "", codes_model: str = "ae") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(save=save, interpret=interpret or "figure = false", codes_model=codes_model))
    return path


def _step(plan, kind: str):
    return next(p for p in plan.steps if p.step.kind == kind)


def test_validate_refuses_nifti_maps_without_maps_and_codes_of_a_classifier(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, "latent = true", "save_nifti = true", codes_model="cnn"))
    found = {p.key: p.message for p in info.value.problems}
    assert "save_individual = true" in found["groups.maps.interpret[0].save_nifti"]
    assert "classification model" in found["groups.codes.save_tensors.latent"]


def test_the_plan_lists_the_outputs_and_the_fingerprints_cover_the_keys(tmp_path):
    plain = make_plan(load_spec(_spec(tmp_path, "nifti = true", "save_individual = true")))
    asked = make_plan(load_spec(_spec(tmp_path, "nifti = true, latent = true", "save_individual = true, save_nifti = true")))  # fmt: skip
    for kind, key, note in (
        ("save-tensors", "save_tensors", "writes latent_tensors/"),
        ("interpret", "interpret", "map as NIfTI"),
    ):
        before, after = _step(plain, kind), _step(asked, kind)
        assert any(note in r for r in after.reasons) and not any(note in r for r in before.reasons)
        changed = set(after.step.config[key].items()) - set(before.step.config[key].items())
        assert changed == {("latent" if kind == "save-tensors" else "save_nifti", True)}
        # off, the key is left out: a spec written before it keeps its step fingerprints
        assert not {"latent", "save_nifti"} & set(before.step.config[key])
        assert fingerprint(kind, after.step.config, {}, {}) != fingerprint(kind, before.step.config, {}, {})


def test_the_front_end_flags_reach_the_spec(tmp_path, tiny_data, capsys):  # noqa: F811  (the fixture)
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tiny_data["test_tsv"])]
    assert main(["predict", str(maps), "test", *data, "--save_latent_tensor", "--print-spec"]) == 0
    assert "[groups.test.save_tensors]\nlatent = true" in capsys.readouterr().out
    for extra, written in ((["--save_individual"], True), ([], False)):
        assert main(["interpret", str(maps), "test", "g", *data, "--save_nifti", *extra, "--print-spec"]) == 0
        assert ("save_nifti = true" in capsys.readouterr().out) == written
