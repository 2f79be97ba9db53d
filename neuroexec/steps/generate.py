"""`dataset.X.generate`: write the synthetic atrophy CAPS (participants TSV, images, region mask)."""

from __future__ import annotations

import shutil

from neuroexec.context import RunContext
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.spec.model import Spec, as_config
from neuroexec.steps.common import generate_id
from neuroexec.steps.registry import Step, StepKind, register

# What a previous generation wrote (the folder's .neuroexec state is kept).
GENERATED = ("subjects", "masks", "tensor_extraction", "participants.tsv")


def expand(spec: Spec) -> list[Step]:
    return [
        Step(id=generate_id(name), kind="generate", home=ds.caps, config=as_config(ds.generate), payload=ds)
        for name, ds in spec.datasets.items()
        if ds.generate is not None
    ]


def run(step: Step, ctx: RunContext) -> dict:
    ds = step.payload
    g = ds.generate
    for name in GENERATED:  # a changed generator config replaces the whole synthetic dataset
        target = ds.caps / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    generate_atrophy_dataset(
        ds.caps,
        subjects=g.subjects,
        resolution_mm=g.resolution_mm,
        region=g.region,
        seed=g.seed,
        sessions=g.sessions,
        subject_offset=g.subject_offset,
        reporter=ctx.reporter,
    )
    return {"caps": str(ds.caps), "subjects": g.subjects}


def outputs(step: Step) -> list:
    ds = step.payload
    return [ds.participants, ds.mask()]


register(StepKind(name="generate", expand=expand, run=run, outputs=outputs))
