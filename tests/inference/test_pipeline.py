"""The result steps through a spec: generate, extract, train (1 epoch), define the group, then predict,
save tensors and interpret, on a generated test cohort and on a split's validation group."""

from __future__ import annotations

import json
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 6, resolution_mm = 8, seed = 5, subject_offset = 100 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.test]
dataset = "other"
models = ["cnn"]
save_tensors = { nifti = true }
interpret = [{ name = "grad", target = "AD", save_individual = true }]
[groups.validation]
from_training = "validation"
models = ["cnn"]
predict = false
interpret = [{ name = "cam", method = "grad-cam", figure = false }]
"""


def test_spec_runs_every_result_step(tmp_path: Path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    result = apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True)))
    ran = set(result.ran)
    assert {"group.test.predict[cnn/split-0/best-loss]", "group.test.save-tensors[cnn/split-0/best-loss]",
            "group.test.interpret.grad[cnn/split-0/best-loss]",
            "group.validation.interpret.cam[cnn/split-0/best-loss]"} <= ran, ran  # fmt: skip
    maps = MapsLayout(tmp_path / "maps" / "cnn")
    assert maps.prediction_tsv(0, "loss", "test", "image").is_file()
    assert maps.metrics_tsv(0, "loss", "test", "image").is_file()
    assert maps.description_log(0, "loss", "test").is_file()
    assert len(list(maps.tensors_dir(0, "loss", "test").glob("*_image-0_input.pt"))) == 6
    assert len(list(maps.nifti_dir(0, "loss", "test").glob("*_image_input.nii.gz"))) == 6
    summary = json.loads(maps.interpret_summary(0, "loss", "test", "grad").read_text())
    assert summary["used"] == 6 and summary["target"] == "AD" and "mask" in summary
    assert len(list(maps.interpret_dir(0, "loss", "test", "grad").glob("sub-*_image-0_map.pt"))) == 6
    validation = json.loads(maps.interpret_summary(0, "loss", "validation", "cam").read_text())
    assert validation["used"] == len(open(maps.split_group_tsv("validation", 0)).readlines()) - 1
