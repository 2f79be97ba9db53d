"""The example specs shipped in spec/examples: each validates and plans; the feature tour applies end to
end when scaled down to tiny volumes and a couple of epochs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.plan.state import StateStore
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

EXAMPLES = sorted((Path(__file__).parents[1] / "spec" / "examples").glob("*.toml"))


def test_the_readme_spec_is_valid_but_for_the_data_it_points_at(tmp_path):
    """README's walked-through spec names data on the reader's disk: those paths are its only problems."""
    from neuroexec.errors import SpecError

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("## A spec, walked through", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    (tmp_path / "spec.toml").write_text(block)
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path / "spec.toml")
    problems = [str(p) for p in err.value.problems]
    assert problems and all(re.search(r"(folder|file or folder) not found: ", p) for p in problems), problems


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_and_plans(example, tmp_path):
    copy = tmp_path / example.name  # planned from a copy: its relative data/ and maps/ land in tmp
    copy.write_text(example.read_text())
    plan = make_plan(load_spec(copy))
    assert plan.steps and {p.action for p in plan.steps} == {"+"}


def tiny(text: str) -> str:
    """The same spec on 8 mm volumes, few subjects, two epochs, small patches."""
    text = text.replace("resolution_mm = 4", "resolution_mm = 8")
    text = re.sub(r"subjects = \d+", "subjects = 8", text)
    text = re.sub(r"epochs = \d+", "epochs = 2", text)
    text = re.sub(r"patch = \{[^}]*\}", "patch = { size = 10, stride = 6 }", text)
    return text.replace("smoothgrad_samples = 4", "smoothgrad_samples = 2")


def test_transfer_and_patches_example_applies_end_to_end(tmp_path):
    spec_path = tmp_path / "tour.toml"
    spec_path.write_text(
        tiny((Path(__file__).parents[1] / "spec/examples/transfer_and_patches.toml").read_text())
    )
    spec = load_spec(spec_path)
    result = apply(make_plan(spec), RunContext(reporter=Reporter(quiet=True)))
    assert len(result.ran) == len(make_plan(spec).steps)
    assert {p.action for p in make_plan(load_spec(spec_path)).steps} == {"="}

    ae, cnn, patches = (MapsLayout(spec.models[m].maps) for m in ("ae", "cnn", "patches"))
    # transfer from a model of the spec: the CNN's training is recorded as depending on the autoencoder's
    # (so the autoencoder trains first, and re-training it re-trains the CNN); exact copying of the
    # encoder tensors is tested in tests/training
    record = StateStore(cnn.root).record("model.cnn.train[split-0]")
    assert "model.ae.train[split-0]" in record["upstream"]
    assert record["config"]["transfer"] == {"model": "ae", "maps": None, "selection": "loss"}
    recon = ae.result_dir(0, "loss", "recon")
    assert (recon / "recon_image_level_metrics.tsv").is_file()
    assert sorted(p.name for p in (recon / "nifti_images").iterdir())[:2] == [
        "sub-1000_ses-M000_image_input.nii.gz", "sub-1000_ses-M000_image_output.nii.gz"]  # fmt: skip
    # patch model: patch-level and soft-voted image-level tables, per-patch and whole-brain maps
    result_dir = patches.result_dir(0, "loss", "test")
    assert (result_dir / "test_patch_level_prediction.tsv").is_file()
    assert (result_dir / "test_image_level_prediction.tsv").is_file()
    grad = patches.interpret_dir(0, "loss", "test", "grad")
    assert (grad / "mean_patch-0_map.pt").is_file() and (grad / "mean_image-0_map.nii.gz").is_file()
    smooth = cnn.mean_map(0, "loss", "test", "smooth", "image", 0)
    assert torch.isfinite(torch.load(smooth, weights_only=True)).all()
