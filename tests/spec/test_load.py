"""Spec errors: each kind of mistake gives a message naming the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.errors import SpecError
from neuroexec.spec import load_spec
from neuroexec.spec.load import schema
from neuroexec.spec.model import Compute, Train

BASE = """
version = 1
[datasets.demo]
generate = { subjects = 8, resolution_mm = 8 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [str(p) for p in info.value.problems]


def test_valid_spec_resolves_defaults_and_paths(tmp_path):
    spec = load_spec(write(tmp_path, BASE))
    model = spec.models["cnn"]
    assert model.maps == (tmp_path / "maps/cnn").resolve()
    assert (
        model.train.epochs
        == schema()["properties"]["models"]["additionalProperties"]["properties"]["train"]["properties"][
            "epochs"
        ]["default"]
    )
    assert spec.datasets["demo"].caps == (tmp_path / "data/demo").resolve()
    assert spec.datasets["demo"].participants == spec.datasets["demo"].caps / "participants.tsv"


def test_dataclass_defaults_match_the_schema():
    """The schema is the source of defaults; the dataclasses must not drift from it."""
    props = schema()["properties"]
    for cls, node in (
        (Compute, props["compute"]),
        (Train, props["models"]["additionalProperties"]["properties"]["train"]),
    ):
        for name, field in cls.__dataclass_fields__.items():
            default = node["properties"][name].get("default")
            value = field.default
            assert (list(value) if isinstance(value, tuple) else value) == default, name


def test_broken_toml_names_the_line(tmp_path):
    path = write(tmp_path, BASE + "\n[models.cnn.train\nepochs = 3\n")
    (msg,) = problems(path)
    assert str(path) in msg and "not valid TOML" in msg and "line 10" in msg


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path):
    (msg,) = problems(write(tmp_path, BASE + "train = { epocs = 3 }\n"))
    assert "models.cnn.train.epocs" in msg and "did you mean 'epochs'" in msg


def test_wrong_type_says_what_was_expected(tmp_path):
    (msg,) = problems(write(tmp_path, BASE + 'train = { epochs = "10" }\n'))
    assert "models.cnn.train.epochs: expected an integer, got string '10'" in msg


def test_all_schema_problems_are_reported_together(tmp_path):
    text = BASE.replace('architecture = "TinyCNN"', 'task = "segmentation"') + "[compute]\nworkers = -1\n"
    msgs = problems(write(tmp_path, text))
    assert len(msgs) == 2
    assert any("compute.workers: expected a number >= 0" in m for m in msgs)
    assert any("models.cnn.task: expected one of 'classification'" in m for m in msgs)


def test_bad_references_are_reported_together(tmp_path):
    text = (
        BASE.replace('dataset = "demo"', 'dataset = "adni"')
        + """
[groups.test]
dataset = "demo"
models = ["cnn", "ae"]
"""
    )
    msgs = problems(write(tmp_path, text))
    assert any("models.cnn.dataset: unknown dataset 'adni' (defined: demo)" in m for m in msgs)
    assert any("groups.test.models[1]: unknown model 'ae'" in m for m in msgs)


def test_transfer_cycle_is_refused(tmp_path):
    text = (
        BASE
        + 'transfer = { model = "ae" }\n'
        + """
[models.ae]
maps = "maps/ae"
dataset = "demo"
task = "reconstruction"
transfer = { model = "cnn" }
"""
    )
    msgs = problems(write(tmp_path, text))
    assert any("transfer cycle: cnn -> ae -> cnn" in m for m in msgs)


def test_missing_paths_and_amp_on_cpu(tmp_path):
    text = """
version = 1
[compute]
device = "cpu"
amp = true
[datasets.adni]
caps = "nowhere/caps"
participants = "nowhere/participants.tsv"
"""
    msgs = problems(write(tmp_path, text))
    assert any("datasets.adni.caps: CAPS folder not found" in m for m in msgs)
    assert any("datasets.adni.participants: participants file or folder not found" in m for m in msgs)
    assert any("compute.amp: mixed precision needs a GPU device" in m for m in msgs)


def test_selection_metric_must_fit_the_task(tmp_path):
    msgs = problems(write(tmp_path, BASE + 'train = { selection_metrics = ["loss", "PSNR"] }\n'))
    assert any(
        "models.cnn.train.selection_metrics[1]: 'PSNR' is not a classification metric" in m for m in msgs
    )


def test_validate_command_exit_codes(tmp_path, capsys):
    assert main(["validate", str(write(tmp_path, BASE))]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["validate", str(write(tmp_path, BASE + "bogus = 1\n"))]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'bogus'" in err and "Traceback" not in err


def test_every_schema_field_is_documented():
    """The schema is the reference documentation: every field says what it is (and, when it has no
    default, its description says what leaving it out means)."""
    undocumented = []

    def walk(node: dict, path: str) -> None:
        for name, sub in node.get("properties", {}).items():
            where = f"{path}.{name}" if path else name
            if not sub.get("description"):
                undocumented.append(where)
            walk(sub, where)
            for key in ("additionalProperties", "items"):
                if isinstance(sub.get(key), dict):
                    walk(sub[key], f"{where}.<name>" if key == "additionalProperties" else f"{where}[]")

    walk(schema(), "")
    assert undocumented == []


def test_visualization_only_for_image_autoencoders(tmp_path):
    msgs = problems(write(tmp_path, BASE + 'mode = "patch"\ntrain = { visualization = true }\n'))
    assert any(
        "models.cnn.train.visualization: writes input/output images of an autoencoder" in m for m in msgs
    )


def test_debug_flag_is_accepted_after_the_command(tmp_path, capsys):
    path = write(tmp_path, BASE + "bogus = 1\n")
    assert main(["validate", str(path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'bogus'" in err and "Traceback" in err  # --debug shows the traceback


COHORTS_OF_GENERATED = """
version = 1
[datasets.a]
generate = { subjects = 6, resolution_mm = 8, seed = 1 }
[datasets.b]
generate = { subjects = 6, resolution_mm = 8, seed = 2, subject_offset = 100 }
[datasets.both]
cohorts = [{ name = "A", dataset = "a" }, { name = "B", dataset = "b" }]
"""


def test_a_cohort_can_be_another_dataset_of_the_spec_even_one_not_generated_yet(tmp_path):
    spec = load_spec(write(tmp_path, COHORTS_OF_GENERATED))  # data/a and data/b do not exist yet
    both = spec.datasets["both"]
    assert both.multi_cohort and [c.name for c in both.cohorts] == ["A", "B"]
    assert [c.caps for c in both.cohorts] == [spec.datasets["a"].caps, spec.datasets["b"].caps]
    assert [c.participants for c in both.cohorts] == [
        spec.datasets["a"].participants,
        spec.datasets["b"].participants,
    ]
    assert [c.generated_by for c in both.cohorts] == ["a", "b"]


def test_cohort_entries_that_cannot_be_resolved_are_named(tmp_path):
    caps = tmp_path / "caps"
    caps.mkdir()
    (tmp_path / "p.tsv").write_text("participant_id\tsession_id\n")
    text = COHORTS_OF_GENERATED.replace(
        'cohorts = [{ name = "A", dataset = "a" }, { name = "B", dataset = "b" }]',
        'cohorts = [{ name = "A", dataset = "nope" }, { name = "B", dataset = "b", caps = "caps" },\n'
        '           { name = "C", caps = "caps" }, { name = "D", dataset = "both" }, { name = "E", dataset = "ab" }]\n'
        '[datasets.ab]\ncohorts = [{ name = "X", caps = "caps", participants = "p.tsv" }]',
    )
    found = problems(write(tmp_path, text))
    assert any("datasets.both.cohorts[0].dataset" in p and "unknown dataset 'nope'" in p for p in found)
    assert any(
        "datasets.both.cohorts[1]" in p and "either dataset or caps + participants" in p for p in found
    )
    assert any("datasets.both.cohorts[2]" in p and "missing participants" in p for p in found)
    assert any("datasets.both.cohorts[3].dataset" in p and "its own cohorts" in p for p in found)
    assert any(
        "datasets.both.cohorts[4].dataset" in p and "datasets.ab has cohorts itself" in p for p in found
    )
