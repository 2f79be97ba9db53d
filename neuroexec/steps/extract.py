"""`dataset.X.extract[<mode>]`: NIfTI -> float32 tensors in the CAPS (ClinicaDL's names), incremental."""

from __future__ import annotations

import json
import os
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.data.extract import extract_json_content, run_extraction
from neuroexec.data.extract_manifest import unrecorded_extract_json, unrecorded_tensors
from neuroexec.data.tasks import ExtractTask
from neuroexec.errors import NeuroexecError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.maps.info import read_maps_info
from neuroexec.plan.fingerprint import input_key, recorded_keys
from neuroexec.plan.registry import Removal, Step, StepKind, register
from neuroexec.plan.state import state_file
from neuroexec.spec.model import Dataset, Roi, Spec
from neuroexec.steps.common import extract_id, generate_deps


def modes_needed(spec: Spec) -> dict[str, set[ExtractionMode]]:
    """dataset name -> extraction modes read by the models trained on it or evaluated on it."""
    needed: dict[str, set[ExtractionMode]] = {name: set() for name in spec.datasets}
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


def expand(spec: Spec) -> list[Step]:
    steps = []
    for name, modes in modes_needed(spec).items():
        ds = spec.datasets[name]
        for mode in sorted(modes, key=str):
            task = ExtractTask(ds, mode, *_roi_readers(spec, mode)) if mode.is_roi else ExtractTask(ds, mode)
            step_id = extract_id(name, mode)
            steps.append(
                Step(
                    id=step_id,
                    kind="extract",
                    home=ds.caps,
                    config=task.config(),
                    deps=generate_deps(ds),
                    inputs=task.inputs(),
                    payload=task,
                    state_key=state_key(step_id, ds),
                    compute=spec.compute,
                )
            )
    return steps


def _roi_readers(spec: Spec, mode: ExtractionMode) -> tuple[Roi | None, tuple[str, ...]]:
    """The roi table of the spec's models reading `mode` (custom template and pattern: the first by
    name), and those of them that read every region with one network."""
    models = sorted(
        (m for m in spec.models.values() if m.roi is not None and m.extract_mode == mode),
        key=lambda m: m.name,
    )
    single = tuple(m.name for m in models if not m.multi_network)
    return (models[0].roi if models else None), single


def check(step: Step) -> str | None:
    """Roi mode: the masks are found and checked before anything runs (data/tasks.ExtractTask.roi_refusal)."""
    task: ExtractTask = step.payload
    return task.roi_refusal() if task.mode.is_roi else None


def state_key(step_id: str, ds: Dataset) -> str:
    """The key of an extraction's record in the CAPS: the step id and the participants lists it reads,
    so that two specs extracting one CAPS for other sessions (a training and a test list under one
    dataset name) keep a record each. A record under the bare id (written before records had this
    key) still counts for the participants lists it was made with.

    >>> from neuroexec.spec import load_spec
    >>> Path("caps").mkdir()
    >>> _ = Path("train.tsv").write_text("participant_id\\tsession_id\\nsub-01\\tses-M000\\n")
    >>> _ = Path("spec.toml").write_text('version = 1\\n[datasets.adni]\\ncaps = "caps"\\nparticipants = "train.tsv"\\n')
    >>> state_key("dataset.adni.extract[image]", load_spec(Path("spec.toml")).datasets["adni"])
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
        wanted = [input_key(p, ds.caps) for p in lists]  # its input keys: absolute before, now relative
        known = set(recorded_keys(legacy.get("inputs") or {}, ds.caps, wanted).values())
        if all(w in known for w in wanted):
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
    task: ExtractTask = step.payload
    plan = task.extraction_plan()
    settings = ctx.with_settings(step.compute).settings
    counts = run_extraction(
        plan, task.dataset.normalize, ctx.reporter, kernels=settings.kernels, device=settings.device
    )
    return {"extracted": counts.extracted, "up_to_date": counts.up_to_date}


def removes(step: Step) -> list[Removal]:
    """Tensors already in the CAPS at the paths this extraction writes, that neuroexec did not extract
    (no record in its manifest: ClinicaDL's `prepare-data`, or a deleted manifest), are replaced: the
    plan lists them, and ClinicaDL's extract_<mode>.json when it records other parameters. Tensors
    neuroexec recorded are its own: re-extracted on a real change, as the manifest says."""
    task: ExtractTask = step.payload
    try:
        plan = task.extraction_plan()
    except NeuroexecError:
        return []  # a missing participants file or image: the step reports it when it runs
    removals = []
    tensors = unrecorded_tensors(plan)
    if tensors:
        what = "tensors in the CAPS that neuroexec did not extract, replaced by this extraction"
        removals.append(Removal(what, tuple(tensors)))
    records = unrecorded_extract_json(plan, extract_json_content(plan))
    if records:
        what = "ClinicaDL's record of another extraction, rewritten for this one"
        removals.append(Removal(what, tuple(records)))
    return removals


def outputs(step: Step) -> list[Path]:
    task: ExtractTask = step.payload
    return task.outputs()


register(StepKind(name="extract", expand=expand, run=run, check=check, outputs=outputs, removes=removes))
