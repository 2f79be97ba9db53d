"""`dataset.X.extract[<mode>]`: NIfTI -> float32 tensors in the CAPS (ClinicaDL's names), incremental."""

from __future__ import annotations

import json
import os
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import patch_normalization, plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.errors import NeuroexecError
from neuroexec.maps.info import read_maps_info
from neuroexec.plan.state import state_file
from neuroexec.spec.model import Dataset, Spec
from neuroexec.steps.common import dataset_frame, extract_id, generate_deps
from neuroexec.steps.registry import Step, StepKind, register


def modes_needed(spec: Spec) -> dict[str, set[str]]:
    """dataset name -> extraction modes read by the models trained on it or evaluated on it."""
    needed: dict[str, set[str]] = {name: set() for name in spec.datasets}
    for model in spec.models.values():
        if model.dataset in needed:
            needed[model.dataset].add(model.extract_mode)
    for group in spec.groups.values():
        if group.dataset not in needed:
            continue
        for name in group.models:
            model = spec.models.get(name)
            if model is None:
                continue
            if model.pretrained:
                try:
                    needed[group.dataset].add(read_maps_info(model.maps).extract_mode)
                except NeuroexecError:
                    continue  # reported by the group steps
            else:
                needed[group.dataset].add(model.extract_mode)
    return needed


def parse_mode(mode: str) -> tuple[str, int | None, int | None]:
    """'image' -> ('image', None, None); 'patch-s50-t50' -> ('patch', 50, 50)."""
    if mode == "image":
        return "image", None, None
    _, size, stride = mode.split("-")
    return "patch", int(size[1:]), int(stride[1:])


def source_files(ds: Dataset) -> tuple[Path, ...]:
    """The participants files and every session's NIfTI of a (non-generated) dataset: the extract step's
    inputs, so a changed image shows in the plan. One directory listing per session; a session without
    its image is listed under its expected folder (shown as missing, then reported by the step)."""
    files: list[Path] = []
    for cohort in ds.cohorts:
        if cohort.generated_by is not None:
            continue  # not yet written at plan time: the generate step is a dependency instead
        files.append(cohort.participants)
        frame = load_participants(cohort.participants, label=None, diagnoses=None, baseline=ds.baseline)
        caps = CapsLayout(cohort.caps)
        for participant, session in zip(frame["participant_id"], frame["session_id"]):
            found = caps.find_nifti(participant, session, ds.uncropped)
            files.extend(found or [caps.t1_linear_dir(participant, session)])
    return tuple(files)


def expand(spec: Spec) -> list[Step]:
    steps = []
    for name, modes in modes_needed(spec).items():
        ds = spec.datasets[name]
        for mode in sorted(modes):
            kind, size, stride = parse_mode(mode)
            config = {
                "mode": kind,
                "patch_size": size,
                "stride": stride,
                "normalize": ds.normalize,
                "uncropped": ds.uncropped,
                "preprocessing": ds.preprocessing,
                "patch_layout": ds.patch_layout if kind == "patch" else None,
            }
            if kind == "patch":  # patches are min-max normalised one by one, as ClinicaDL feeds them (a
                # change of what the network sees: models trained on earlier bundles are planned again)
                config["patch_normalization"] = patch_normalization(ds.normalize)
            deps = generate_deps(ds)
            inputs = source_files(ds)
            step_id = extract_id(name, mode)
            steps.append(
                Step(
                    id=step_id,
                    kind="extract",
                    home=ds.caps,
                    config=config,
                    deps=deps,
                    inputs=inputs,
                    payload=(ds, kind, size, stride),
                    state_key=state_key(step_id, ds),
                )
            )
    return steps


def state_key(step_id: str, ds: Dataset) -> str:
    """The key of an extraction's record in the CAPS: the step id and the participants lists it reads,
    so that two specs extracting one CAPS for other sessions (a training and a test list under one
    dataset name) keep a record each. A record under the bare id (written before records had this
    key) still counts for the participants lists it was made with.

    >>> state_key("dataset.adni.extract[image]", ds)  # doctest: +SKIP
    'dataset.adni.extract[image] participants=../train.tsv'
    """
    lists = [c.participants for c in ds.cohorts if c.generated_by is None]
    if not lists:
        return ""  # generated: one spec generates a CAPS, its participants follow the generate step
    key = f"{step_id} participants={','.join(os.path.relpath(p, ds.caps) for p in lists)}"
    key += " baseline" if ds.baseline else ""
    records = _records(ds.caps)
    legacy = records.get(step_id)
    if key not in records and isinstance(legacy, dict):
        if all(str(p) in legacy.get("inputs", {}) for p in lists):
            return ""
    return key


def _records(caps: Path) -> dict:
    """The step records of a CAPS (empty when unreadable: the plan reports a damaged state file)."""
    try:
        steps = json.loads(state_file(caps).read_text()).get("steps")
    except (OSError, ValueError, AttributeError):
        return {}
    return steps if isinstance(steps, dict) else {}


def run(step: Step, ctx: RunContext) -> dict:
    ds, mode, size, stride = step.payload
    ds: Dataset
    frame = dataset_frame(ds, label=None, diagnoses=None, check_images=False)
    plan = plan_extraction(
        frame,
        {c.name: c.caps for c in ds.cohorts},
        mode,
        uncropped=ds.uncropped,
        size=size,
        stride=stride,
        layout=ds.patch_layout,
        normalize=ds.normalize,
    )
    counts = run_extraction(plan, normalize=ds.normalize, reporter=ctx.reporter)
    return {"extracted": counts.extracted, "up_to_date": counts.up_to_date}


def outputs(step: Step) -> list[Path]:
    """The tensors the extraction manifests record for this dataset's sessions (and the manifests): a
    tensor another spec extracted into the same CAPS is not this step's."""
    ds, mode, _, _ = step.payload
    files: list[Path] = []
    for cohort in ds.cohorts:
        manifest = CapsLayout(cohort.caps).manifest_json(mode)
        files.append(manifest)
        try:
            entries = json.loads(manifest.read_text()).get("entries", {})
            frame = load_participants(cohort.participants, label=None, diagnoses=None, baseline=ds.baseline)
        except (OSError, ValueError, NeuroexecError):
            continue
        sessions = set(zip(frame["participant_id"], frame["session_id"]))
        files.extend(cohort.caps / key for key in entries if tuple(key.split("/")[1:3]) in sessions)
    return files


register(StepKind(name="extract", expand=expand, run=run, outputs=outputs))
