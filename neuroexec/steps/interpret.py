"""`group.G.interpret.NAME[M/split-i/best-m]`: saliency maps of a data group (mean, std, individual)."""

from __future__ import annotations

from neuroexec.context import RunContext
from neuroexec.plan.registry import Step, StepKind, register
from neuroexec.spec.model import Interpretation, Spec, as_config
from neuroexec.steps.common import interpret_id
from neuroexec.steps.group import result_steps


def expand(spec: Spec) -> list[Step]:
    return result_steps(
        spec,
        "interpret",
        make_id=lambda g, m, s, metric, item: interpret_id(g, item.name, m, s, metric),
        extra_config=lambda group, item: {"interpret": interpret_config(item)},
        wants=lambda group, model: list(group.interpret),
    )


def interpret_config(item: Interpretation) -> dict:
    """The interpretation's fingerprint slice; `save_nifti`, added later, only when true (so the maps
    of the specs written before it are not planned again).

    >>> "save_nifti" in interpret_config(Interpretation("a")), interpret_config(Interpretation("a", save_nifti=True))["save_nifti"]
    (False, True)
    """
    config = as_config(item)
    if not item.save_nifti:
        config.pop("save_nifti")
    return config


def run(step: Step, ctx: RunContext) -> dict:
    from neuroexec.inference.interpret import interpret_group

    return interpret_group(step.payload, ctx)


def outputs(step: Step) -> list:
    t = step.payload
    return [t.maps.interpret_summary(t.split, t.metric, t.group.name, t.interpretation.name)]


def notes(step: Step) -> list[str]:
    """save_nifti: the individual maps are written as NIfTI too (the plan lists every output)."""
    interp = step.payload.interpretation
    return ["writes each image's map as NIfTI too (save_nifti)"] if interp.save_nifti else []


register(StepKind(name="interpret", expand=expand, run=run, outputs=outputs, notes=notes))
