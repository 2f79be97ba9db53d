"""`predict`: prediction (and, with labels, metrics) tables of a data group for one model, plus its
`description.log`. The forward pass and the tables are the evaluation module's (the same code writes
the training groups' results); this module picks the model, the data and the options.

    split-<i>/best-<m>/<group>/<group>_image_level_prediction.tsv, ..._metrics.tsv (use_labels)
                               <group>_patch_level_*.tsv (patch models; image level by soft voting)
                               description.log

A multi-network model (`best-<m>/network-<k>_model.pth.tar`) runs network k on part k
(`inference/networks.py`): the `<mode>`-level table holds every network's rows, its metrics one row
per network (`<mode>_id`), and the image level is the soft vote of all of them.
"""

from __future__ import annotations

import datetime as _dt

from neuroexec.context import RunContext, StepSettings
from neuroexec.inference.model_io import (
    group_caps,
    group_dataset,
    label_column,
    load_model,
    output_size_of,
)
from neuroexec.inference.networks import predict_networks
from neuroexec.inference.task import GroupTask, group_participants
from neuroexec.losses import recorded_loss
from neuroexec.maps.info import MapsInfo, best_model_file, read_maps_info


def describe(
    task: GroupTask, info: MapsInfo, n_images: int, n_items: int, label: str | None, settings: StepSettings
) -> str:
    """The text of description.log: what was run, when, with which model, on how many images."""
    caps = ", ".join(f"{c}: {p}" for c, p in group_caps(task, info).items())
    model = best_model_file(task.model.maps, task.split, task.metric)
    if info.multi_network:
        model = task.maps.best_dir(task.split, task.metric) / "network-<k>_model.pth.tar (one per part)"
    lines = [
        f"Prediction of data group '{task.group.name}' ({_dt.datetime.now().isoformat(timespec='seconds')})",
        f"model: {model}",
        f"  architecture {info.architecture}, task {info.task}, mode {info.mode}"
        + (f" ({info.extract_mode})" if info.extract_mode.has_parts else ""),
        f"  split {task.split}, selection metric {task.metric}",
        f"data: {n_images} image(s)" + (f", {n_items} {info.mode}(s)" if n_items != n_images else ""),
        f"  CAPS {caps}",
        f"  labels: {label or ('not used (use_labels = false)' if not task.group.use_labels else 'none')}",
        f"compute: device {settings.device}, amp {settings.amp}, batch size {settings.batch_size}, "
        f"workers {settings.workers}",
    ]
    return "\n".join(lines) + "\n"


def predict_group(task: GroupTask, ctx: RunContext) -> dict:
    """Write the prediction/metrics tables and description.log of the group for `task`'s model.

    It needs a trained model in its MAPS, so the predict step is its example; tests/inference/test_predict.py
    runs it on a tiny MAPS. It returns the step's record summary, such as {'images': 8, 'rows': 8, 'loss': 0.61}.
    """
    from neuroexec import evaluation

    settings = ctx.with_settings(task.group.compute).settings  # resolved once for the step
    info = read_maps_info(task.model.maps)
    frame = group_participants(task)
    label = label_column(task, info)
    # reconstruction metrics need no label: they are always computed
    use_labels = info.task == "reconstruction" or label is not None
    ctx.reporter.info(
        f"predict {task.group.name} with {task.model.name} split-{task.split} best-{task.metric}: "
        f"{len(frame)} image(s)"
    )
    part_losses = None
    if info.multi_network:
        predictions, part_losses, n_items = predict_networks(task, info, frame, label, settings)
        loss = None
    else:
        model, info = load_model(task.model.maps, task.split, task.metric, settings.device)
        dataset = group_dataset(task, info, frame, label)
        predictions, loss = evaluation.predict_frames(
            model, dataset, info.task, settings, info.label_code, use_labels=use_labels,
            loss=recorded_loss(info.task, info.raw.get("loss")),
            model_file=best_model_file(task.model.maps, task.split, task.metric),
        )  # fmt: skip
        n_items = len(dataset)
    weights = None
    threshold = float(info.raw.get("selection_threshold") or 0.0)  # maps.json's, as ClinicaDL reads it
    own = task.group.name == "validation" and use_labels  # the validation group weighs its own rows
    if info.extract_mode.has_parts and info.task == "classification" and not own:
        # soft voting weighs each part index by its validation accuracy: the validation results must exist
        where = (task.maps, task.split, task.metric, info.mode)
        weights = evaluation.patch_weights_from_validation(*where, selection_threshold=threshold)
    n_classes = output_size_of(info) if info.task == "classification" else 0
    text = describe(task, info, len(frame), n_items, label, settings)
    results = evaluation.ResultSet(
        task.maps, task.split, task.metric, task.group.name, info.task, info.mode, n_classes, use_labels,
        threshold,
    )  # fmt: skip
    part_losses = part_losses if use_labels else None
    evaluation.write_results(
        results, predictions, loss, patch_weights=weights, description=text, part_losses=part_losses
    )
    return {"images": len(frame), "rows": len(predictions), "loss": None if loss is None else float(loss)}
