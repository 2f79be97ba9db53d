"""`group.G.save-tensors[M/split-i/best-m]`: input/output tensors of a data group, and their NIfTIs
(`nifti`) and the autoencoder's latent tensors (`latent`) when asked."""

from __future__ import annotations

from neuroexec.context import RunContext
from neuroexec.errors import NeuroexecError
from neuroexec.plan.registry import Step, StepKind, register
from neuroexec.spec.model import SaveTensors, Spec, as_config
from neuroexec.steps.common import save_tensors_id
from neuroexec.steps.group import result_steps


def expand(spec: Spec) -> list[Step]:
    return result_steps(
        spec,
        "save-tensors",
        make_id=lambda g, m, s, metric, _: save_tensors_id(g, m, s, metric),
        extra_config=lambda group, _: {"save_tensors": save_tensors_config(group.save_tensors)},
        wants=lambda group, model: [None] if group.save_tensors is not None else [],
    )


def save_tensors_config(save: SaveTensors | None) -> dict | None:
    """The fingerprint slice; `latent` and `tensors`, added later, only when not their defaults (a spec
    written before them keeps its fingerprint).

    >>> save_tensors_config(SaveTensors(nifti=True)), save_tensors_config(SaveTensors(latent=True))
    ({'nifti': True}, {'nifti': False, 'latent': True})
    >>> save_tensors_config(SaveTensors(tensors=False, latent=True))
    {'tensors': False, 'nifti': False, 'latent': True}
    """
    config = as_config(save)
    if save is not None and not save.latent:
        config.pop("latent")
    if save is not None and save.tensors:
        config.pop("tensors")
    return config


def run(step: Step, ctx: RunContext) -> dict:
    from neuroexec.inference.save_tensors import save_group_tensors

    if step.payload.info().multi_network:  # one network per part
        from neuroexec.inference.networks import save_network_tensors

        return save_network_tensors(step.payload, ctx)
    return save_group_tensors(step.payload, ctx)


def outputs(step: Step) -> list:
    t, save = step.payload, step.payload.group.save_tensors
    where = (t.split, t.metric, t.group.name)
    found = [t.maps.tensors_dir(*where)] if save is None or save.tensors else []
    found += [t.maps.nifti_dir(*where)] if save is not None and save.nifti else []
    return found + ([t.maps.latent_dir(*where)] if save is not None and save.latent else [])


def notes(step: Step) -> list[str]:
    """The folders besides tensors/ that the step writes (the plan lists every output)."""
    save, maps = step.payload.group.save_tensors, step.payload.maps
    where = (step.payload.split, step.payload.metric, step.payload.group.name)
    found = [f"writes {maps.nifti_dir(*where).name}/ (input/output NIfTIs)"] if save and save.nifti else []
    if save and save.latent:
        found.append(f"writes {maps.latent_dir(*where).name}/ (each item's latent tensor)")
    return found


def check(step: Step) -> str | None:
    """`latent` for a pretrained MAPS that is not an autoencoder is refused at plan time (a model of the
    spec, and a save_tensors that writes nothing, are refused by validate: spec/checks.py)."""
    t = step.payload
    save = t.group.save_tensors
    if save is None or not save.latent or not t.model.pretrained:
        return None
    try:
        task = t.info().task
    except NeuroexecError:
        return None  # the step reports the unreadable MAPS
    if task == "reconstruction":
        return None
    return (
        f"groups.{t.group.name}.save_tensors.latent: latent tensors are an autoencoder's codes and "
        f"{t.model.maps} holds a {task} model; remove latent (--save_latent_tensor)"
    )


register(StepKind(name="save-tensors", expand=expand, run=run, outputs=outputs, notes=notes, check=check))
