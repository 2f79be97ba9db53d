"""`dataset.X.extract[<mode>]`: NIfTI -> float32 tensors in the CAPS (ClinicaDL's names), incremental."""

from __future__ import annotations

import json
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import patch_normalization, plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.errors import NeuroexecError
from neuroexec.maps.info import read_maps_info
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
            steps.append(
                Step(
                    id=extract_id(name, mode),
                    kind="extract",
                    home=ds.caps,
                    config=config,
                    deps=deps,
                    inputs=inputs,
                    payload=(ds, kind, size, stride),
                )
            )
    return steps


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
    """Every tensor the extraction manifests record (and the manifests themselves)."""
    ds, mode, _, _ = step.payload
    files: list[Path] = []
    for cohort in ds.cohorts:
        manifest = CapsLayout(cohort.caps).manifest_json(mode)
        files.append(manifest)
        try:
            entries = json.loads(manifest.read_text()).get("entries", {})
        except (OSError, ValueError):
            continue
        files.extend(cohort.caps / key for key in entries)
    return files


register(StepKind(name="extract", expand=expand, run=run, outputs=outputs))
