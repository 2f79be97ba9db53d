"""`group.G.save-tensors[M/split-i/best-m]`: input/output tensors (and NIfTIs) of a data group."""

from __future__ import annotations

from neuroexec.context import RunContext
from neuroexec.plan.registry import Step, StepKind, register
from neuroexec.spec.model import Spec, as_config
from neuroexec.steps.common import save_tensors_id
from neuroexec.steps.group import result_steps


def expand(spec: Spec) -> list[Step]:
    return result_steps(
        spec,
        "save-tensors",
        make_id=lambda g, m, s, metric, _: save_tensors_id(g, m, s, metric),
        extra_config=lambda group, _: {"save_tensors": as_config(group.save_tensors)},
        wants=lambda group, model: [None] if group.save_tensors is not None else [],
    )


def run(step: Step, ctx: RunContext) -> dict:
    from neuroexec.inference.save_tensors import save_group_tensors

    if step.payload.info().multi_network:  # one network per part
        from neuroexec.inference.networks import save_network_tensors

        return save_network_tensors(step.payload, ctx)
    return save_group_tensors(step.payload, ctx)


def outputs(step: Step) -> list:
    t = step.payload
    return [t.maps.tensors_dir(t.split, t.metric, t.group.name)]


register(StepKind(name="save-tensors", expand=expand, run=run, outputs=outputs))
