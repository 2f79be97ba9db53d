"""Extraction into a CAPS that already holds tensors neuroexec has no record of (ClinicaDL's `prepare-data`,
or neuroexec's with its manifest deleted) plans their replacement as a `-` line with the count of files,
and apply replaces exactly those; tensors neuroexec recorded are its own and keep their behaviour (up to
date, or re-extracted on a real change), with no removal planned."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.data import extract as extract_module
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import load_image_array
from neuroexec.errors import StepFailed
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.helpers import make_tiny_caps

STEP = "dataset.real.extract[image]"
WHAT = "tensors in the CAPS that neuroexec did not extract, replaced by this extraction"
SPEC = """
version = 1
[compute]
workers = 0
[datasets.real]
caps = "caps"
participants = "caps/participants.tsv"
{dataset}
[models.m]
maps = "maps/m"
dataset = "real"
architecture = "TinyCNN"
{model}
train = {{ epochs = 1 }}
"""


def project(tmp_path: Path, dataset: str = "", model: str = "", n_subjects: int = 8) -> tuple[Path, Path]:
    """A CAPS with neuroexec-extracted image tensors (manifest included) and a spec reading it."""
    caps, _ = make_tiny_caps(tmp_path / "caps", n_subjects=n_subjects, shape=(12, 14, 12), extract=True)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(dataset=dataset, model=model))
    return caps, spec


def planned(spec: Path, step: str = STEP):
    plan = make_plan(load_spec(spec))
    return plan, next(p for p in plan.steps if p.step.id == step)


def extract(spec: Path) -> None:
    apply(
        make_plan(load_spec(spec)), RunContext(reporter=Reporter(quiet=True)), target="dataset.real.extract*"
    )


def contents(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".neuroexec" not in p.parts}


def tensors(caps: Path) -> list[Path]:
    return sorted(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/t1_linear/*.pt"))


def test_tensors_without_neuroexec_records_are_planned_as_replaced_with_their_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, spec = project(tmp_path)
    CapsLayout(caps).manifest_json("image").unlink()  # as ClinicaDL's prepare-data leaves a CAPS
    theirs = tensors(caps)
    assert len(theirs) == 8
    changed = theirs[0]  # extracted by ClinicaDL with other options
    torch.save(torch.full_like(torch.load(changed), 0.5), changed)

    plan, step = planned(spec)
    assert step.action == "+"
    [removal] = step.removals
    assert removal.what == WHAT and set(removal.paths) == set(theirs) and removal.files() == 8
    assert f"    - {WHAT}: " in render_text(plan) and "(8 files)" in render_text(plan)
    assert plan.steps[-1].removals == [] and "8 files to remove" in render_text(plan)

    before = contents(caps)
    extract(spec)
    after = contents(caps)
    differ = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert differ <= set(removal.paths) | {CapsLayout(caps).manifest_json("image")}
    assert changed in differ
    nifti = next(changed.parents[3].glob("t1_linear/*.nii.gz"))
    assert torch.equal(torch.load(changed), load_image_array(nifti, normalize=True))
    _, again = planned(spec)
    assert again.action == "=" and again.removals == []


def test_a_tensor_the_manifest_does_not_record_is_the_only_one_planned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, spec = project(tmp_path)
    manifest = CapsLayout(caps).manifest_json("image")
    data = json.loads(manifest.read_text())
    foreign = tensors(caps)[3]
    del data["entries"][foreign.relative_to(caps).as_posix()]  # added by ClinicaDL after neuroexec's run
    manifest.write_text(json.dumps(data))
    _, step = planned(spec)
    [removal] = step.removals
    assert removal.paths == (foreign,) and removal.files() == 1


def test_tensors_neuroexec_extracted_plan_no_removal_and_keep_todays_behaviour(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, spec = project(tmp_path)
    _, step = planned(spec)
    assert step.action == "+" and step.removals == []
    before = contents(caps)
    extract(spec)
    assert all(contents(caps)[t] == before[t] for t in tensors(caps))  # up to date: not rewritten

    first = tensors(caps)[0]
    nifti = next(first.parents[3].glob("t1_linear/*.nii.gz"))
    image = nib.load(nifti)
    voxels = np.asarray(image.dataobj, dtype=np.float32)
    voxels[voxels.shape[0] // 2] = 0  # a real change of the image
    nib.save(nib.Nifti1Image(voxels, image.affine), nifti)
    _, step = planned(spec)
    assert step.action == "~" and step.removals == []
    mtimes = {t: t.stat().st_mtime_ns for t in tensors(caps)}
    extract(spec)
    rewritten = {t for t in tensors(caps) if t.stat().st_mtime_ns != mtimes[t]}
    assert rewritten == {first}


def killed(*args) -> None:
    raise RuntimeError("killed")


def test_tensors_of_an_extraction_killed_before_recording_them_are_neuroexecs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, spec = project(tmp_path)
    for t in tensors(caps):
        t.unlink()
    CapsLayout(caps).manifest_json("image").unlink()
    with monkeypatch.context() as m, pytest.raises(StepFailed):  # killed before its first save
        m.setattr(extract_module, "_save_manifests", killed)
        extract(spec)
    assert len(tensors(caps)) == 8
    _, step = planned(spec)
    assert step.removals == []  # pending in the manifest: written by neuroexec, re-extracted as its own
    extract(spec)
    manifest = json.loads(CapsLayout(caps).manifest_json("image").read_text())
    assert len(manifest["entries"]) == 8 and "pending" not in manifest


def test_clinicadl_record_of_other_parameters_is_planned_as_rewritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, spec = project(tmp_path)
    layout = CapsLayout(caps)
    layout.manifest_json("image").unlink()
    record = layout.extract_json("image")
    theirs = {**json.loads(record.read_text()), "use_uncropped_image": True}
    record.write_text(json.dumps(theirs))
    _, step = planned(spec)
    assert [(r.paths, r.files()) for r in step.removals[1:]] == [((record,), 1)]
    assert "ClinicaDL's record of another extraction" in step.removals[1].what
    extract(spec)
    assert json.loads(record.read_text()) != theirs


def test_clinicadl_one_file_per_patch_tensors_count_every_patch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, spec = project(
        tmp_path,
        'patch_layout = "clinicadl"',
        'mode = "patch"\npatch = { size = 6, stride = 6 }',
        n_subjects=4,
    )
    layout = CapsLayout(caps)
    session = layout.root / "subjects/sub-0000/ses-M000"
    assert session.is_dir()
    theirs = [layout.patch_tensor("sub-0000", "ses-M000", 6, 6, k) for k in range(8)]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.zeros(1, 6, 6, 6), path)
    _, step = planned(spec, "dataset.real.extract[patch-s6-t6]")
    [removal] = step.removals
    assert set(removal.paths) == set(theirs) and removal.files() == 8
