"""`group.G.predict[M/split-i/best-m]`: predictions and metrics of a data group (neuroexec/inference/)."""

from __future__ import annotations

from neuroexec.context import RunContext
from neuroexec.errors import NeuroexecError
from neuroexec.plan.registry import Step, StepKind, register
from neuroexec.spec.model import Spec
from neuroexec.steps.common import predict_id
from neuroexec.steps.group import result_steps


def expand(spec: Spec) -> list[Step]:
    return result_steps(
        spec,
        "predict",
        make_id=lambda g, m, s, metric, _: predict_id(g, m, s, metric),
        extra_config=lambda group, _: {},
        # A pretrained MAPS's training groups are predicted; a spec-trained model's are written by training.
        wants=lambda group, model: (
            [None] if group.predict and (group.from_training is None or model.pretrained) else []
        ),
    )


def run(step: Step, ctx: RunContext) -> dict:
    from neuroexec.inference.predict import predict_group

    return predict_group(step.payload, ctx)


def outputs(step: Step) -> list:
    """The image-level predictions; an autoencoder on parts (patches, regions, slices) has no image
    level (ClinicaDL votes no reconstruction): its part-level predictions."""
    t = step.payload
    mode, task = t.model.mode, t.model.task
    if t.model.pretrained:
        try:
            info = t.info()
            mode, task = info.mode, info.task
        except NeuroexecError:
            mode = "image"  # the step reports the unreadable MAPS
    level = mode if task == "reconstruction" and mode != "image" else "image"
    return [t.maps.prediction_tsv(t.split, t.metric, t.group.name, level)]


register(StepKind(name="predict", expand=expand, run=run, outputs=outputs))
