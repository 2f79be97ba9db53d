"""Rule 6: models are identified by content. Result steps (predict, interpret) depend on the checkpoint
they read, and a train step on an outside transfer file: a model replaced, or altered with its mtime put
back, re-plans what was computed with it; an unchanged MAPS plans `=` without hashing its models again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan import fingerprint
from neuroexec.plan.graph import make_plan
from neuroexec.plan.state import StateStore
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

TRAINED = """
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
[models.cnn2]
maps = "maps/cnn2"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 3e-3 }
[groups.test]
dataset = "other"
models = ["cnn", "cnn2"]
interpret = [{ name = "grad", target = "AD" }]
"""

# A second project that uses a copy of cnn's MAPS as it is (no dataset: a pretrained model).
PRETRAINED = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.other]
caps = "{caps}"
participants = "{caps}/participants.tsv"
[models.pre]
maps = "pre"
[groups.test]
dataset = "other"
models = ["pre"]
save_tensors = {{}}
interpret = [{{ name = "grad", target = "AD" }}]
{extra}"""

# A model trained on `other` from the pretrained MAPS's weights (a transfer file from outside the spec).
TRANSFER = """
[models.ft]
maps = "maps/ft"
dataset = "other"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
transfer = { maps = "pre" }
train = { epochs = 1 }
"""

CKPT = "split-0/best-loss/model.pth.tar"
PREDICT = "group.test.predict[{}/split-0/best-loss]"
INTERPRET = "group.test.interpret.grad[{}/split-0/best-loss]"
SAVE = "group.test.save-tensors[{}/split-0/best-loss]"


def ctx(folder: Path) -> RunContext:
    return RunContext(reporter=Reporter(quiet=True))


def plan_of(path: Path) -> dict[str, tuple[str, list[str]]]:
    return {p.step.id: (p.action, p.reasons) for p in make_plan(load_spec(path)).steps}


def run(path: Path) -> list[str]:
    return apply(make_plan(load_spec(path)), ctx(path.parent)).ran


def flip_byte_keep_mtime(path: Path) -> None:
    """Change one byte in place, then put the file's atime and mtime back, as a careful forger would."""
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that trained cnn and cnn2 (1 epoch) and predicted and interpreted group test with both."""
    folder = tmp_path_factory.mktemp("trained")
    path = folder / "spec.toml"
    path.write_text(TRAINED)
    run(path)
    return path


@pytest.fixture
def pretrained(tmp_path: Path, trained: Path) -> Path:
    """A spec using a copy of cnn's MAPS (without neuroexec's records) as a pretrained model, applied."""
    return write_pretrained(tmp_path, trained)


def write_pretrained(folder: Path, trained: Path, extra: str = "") -> Path:
    """The second project, with its own copies of cnn's MAPS (its model and training groups, as a
    colleague would send it) and of the test CAPS, without neuroexec's records."""
    shutil.copytree(
        trained.parent / "maps" / "cnn", folder / "pre", ignore=shutil.ignore_patterns(".neuroexec", "test")
    )
    shutil.copytree(
        trained.parent / "data" / "other", folder / "other", ignore=shutil.ignore_patterns(".neuroexec")
    )
    path = folder / "spec.toml"
    path.write_text(PRETRAINED.format(caps=folder / "other", extra=extra))
    return path


def test_spec_trained_model_plans_up_to_date_after_train_and_predict(trained):
    """The checkpoint is written by training and read by predict: no spurious change either way."""
    assert {action for action, _ in plan_of(trained).values()} == {"="}
    maps = trained.parent / "maps" / "cnn"
    record = StateStore(maps).record(PREDICT.format("cnn"))
    assert CKPT in record["inputs"]  # the result step depends on the model it read (relative key)


def test_replaced_pretrained_model_replans_its_predictions_and_maps(pretrained, trained):
    steps = {PREDICT.format("pre"), SAVE.format("pre"), INTERPRET.format("pre")}
    assert set(run(pretrained)) >= steps
    assert {action for action, _ in plan_of(pretrained).values()} == {"="}
    results = MapsLayout(pretrained.parent / "pre")
    before = pd.read_csv(results.prediction_tsv(0, "loss", "test", "image"), sep="\t")

    shutil.copyfile(trained.parent / "maps" / "cnn2" / CKPT, pretrained.parent / "pre" / CKPT)
    plan = plan_of(pretrained)
    changed = {step for step, (action, _) in plan.items() if action != "="}
    assert changed == steps
    for step in changed:
        assert plan[step] == ("~", [f"input {CKPT} changed"])

    assert set(run(pretrained)) == changed
    after = pd.read_csv(results.prediction_tsv(0, "loss", "test", "image"), sep="\t")
    assert not before.equals(after)  # computed with the other model
    assert {action for action, _ in plan_of(pretrained).values()} == {"="}


def test_flipped_byte_with_mtime_restored_is_noticed(pretrained, monkeypatch):
    run(pretrained)
    # Trust every cache entry however recently it was hashed: only the model's stat can tell.
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)
    assert {action for action, _ in plan_of(pretrained).values()} == {"="}
    flip_byte_keep_mtime(pretrained.parent / "pre" / CKPT)
    plan = plan_of(pretrained)
    for step in (PREDICT, SAVE, INTERPRET):
        assert plan[step.format("pre")] == ("~", [f"input {CKPT} changed"])


def test_unchanged_maps_plans_up_to_date_without_hashing_again(pretrained, monkeypatch):
    run(pretrained)
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)
    hashed: list[Path] = []
    real = fingerprint.content_hash
    monkeypatch.setattr(fingerprint, "content_hash", lambda p: hashed.append(p) or real(p))
    assert {action for action, _ in plan_of(pretrained).values()} == {"="}
    assert hashed == []  # one stat per file: neither the model nor the participants table is read


def test_hand_edited_model_of_a_spec_trained_model_replans_its_results(trained, monkeypatch):
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)
    flip_byte_keep_mtime(trained.parent / "maps" / "cnn2" / CKPT)
    plan = plan_of(trained)
    changed = {step for step, (action, _) in plan.items() if action != "="}
    assert changed == {PREDICT.format("cnn2"), INTERPRET.format("cnn2")}  # training itself is done
    assert plan[PREDICT.format("cnn2")] == ("~", [f"input {CKPT} changed"])
    assert set(run(trained)) == changed
    assert {action for action, _ in plan_of(trained).values()} == {"="}


def test_altered_outside_transfer_source_replans_the_training(tmp_path, trained, monkeypatch):
    path = write_pretrained(tmp_path, trained, TRANSFER)
    run(path)
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)
    assert plan_of(path)["model.ft.train[split-0]"][0] == "="
    flip_byte_keep_mtime(tmp_path / "pre" / CKPT)
    action, reasons = plan_of(path)["model.ft.train[split-0]"]
    # the one cause is the input; the plan also says what the retraining replaces when it finishes
    causes = [r for r in reasons if not r.startswith("when it finishes, it replaces")]
    assert action == "~" and len(causes) == 1 and causes[0].startswith("input ")
    assert causes[0].endswith("model.pth.tar changed") and len(reasons) == 2


def test_model_files_are_trusted_on_ctime_and_inode_too_images_on_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)
    model, image = tmp_path / "model.pth.tar", tmp_path / "sub-01_T1w.nii.gz"
    for path in (model, image):
        path.write_bytes(bytes(range(256)) * 4)
    cache = {str(p): fingerprint.file_identity(p, {})[1] for p in (model, image)}
    for path in (model, image):
        flip_byte_keep_mtime(path)
    assert fingerprint.file_identity(model, cache)[0] == fingerprint.content_hash(model)
    # Images keep the (size, mtime) shortcut that makes plans fast on large CAPS.
    assert fingerprint.file_identity(image, cache) == (cache[str(image)]["sha256"], None)


def test_model_hashed_right_after_a_change_is_hashed_again(tmp_path, monkeypatch):
    """Within one tick of the file system's clock a second change could keep the ctime: not trusted."""
    model = tmp_path / "model.pth.tar"
    model.write_bytes(b"weights")
    ident, entry = fingerprint.file_identity(model, {})
    monkeypatch.setattr(fingerprint, "RACY_NS", 10**18)  # every entry is "just hashed"
    again, fresh = fingerprint.file_identity(model, {str(model): entry})
    assert again == ident and fresh is not None  # hashed again, and a new entry to record
    monkeypatch.setattr(fingerprint, "RACY_NS", 0)
    assert fingerprint.file_identity(model, {str(model): entry}) == (ident, None)
