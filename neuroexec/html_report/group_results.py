"""A data group's part of the page: for each model that evaluates it and each selection metric, the
metrics with their bootstrap CIs per split and across splits, then the figures of each split (confusion
matrix and ROC, predicted-vs-true scatter, reconstruction slices) and its saliency maps."""

from __future__ import annotations

import math

import pandas as pd

from neuroexec.errors import NeuroexecError
from neuroexec.html_report import group_figures as figures
from neuroexec.html_report.elements import anchor_name, esc, note, section
from neuroexec.html_report.metric_tables import Estimate, metrics_table, read_metrics
from neuroexec.html_report.saliency import saliency_sections
from neuroexec.maps.info import MapsInfo, read_maps_info
from neuroexec.maps.layout import MapsLayout

EXAMPLES = 2  # reconstructions drawn per split


def read_predictions(maps: MapsLayout, split: int, metric: str, group: str) -> pd.DataFrame | None:
    """The image-level prediction table of one best model on the group, None if absent or unreadable."""
    try:
        return pd.read_csv(maps.prediction_tsv(split, metric, group, "image"), sep="\t")
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def results_of(maps: MapsLayout, group: str) -> dict[str, list[int]]:
    """The splits of each selection metric that have the group's metrics table."""
    found: dict[str, list[int]] = {}
    for split in maps.splits():
        for metric in maps.best_metrics(split):
            if maps.metrics_tsv(split, metric, group, "image").is_file():
                found.setdefault(metric, []).append(split)
    return found


def with_auc(found: dict[str, Estimate], frame: pd.DataFrame | None) -> dict[str, Estimate]:
    """The table's metrics, plus the AUC from the class probabilities when the table has none."""
    if "AUC" in found or frame is None or len(figures.probability_columns(frame)) < 2:
        return found
    area = figures.macro_auc(figures.roc_curves(frame))
    return {**found, "AUC": Estimate(area)} if not math.isnan(area) else found


def _split_figures(maps: MapsLayout, info: MapsInfo, where: tuple[str, str], splits: list[int]) -> list[str]:
    metric, group = where
    frames = {s: f for s in splits if (f := read_predictions(maps, s, metric, group)) is not None}
    if info.task == "regression" and frames:
        shown = {
            f"split-{s}": f for s, f in frames.items() if {"true_label", "predicted_label"} <= set(f.columns)
        }
        return [figures.regression_figure(shown, f"{group}, best-{metric}")] if shown else []
    parts = []
    for split, frame in frames.items():
        title = f"{group}, split-{split}, best-{metric}"
        if info.task == "classification" and "true_label" in frame.columns:
            probas = figures.probability_columns(frame)
            names = figures.class_names(info.label_code, max(len(probas), 2))
            parts.append(figures.classification_figure(frame, names, title))
        elif info.task == "reconstruction":
            pairs = _reconstructions(maps, info, (split, metric, group), frame)
            parts += [figures.reconstruction_figure(pairs, title)] if pairs else []
    return parts


def _reconstructions(
    maps: MapsLayout, info: MapsInfo, where: tuple[int, str, str], frame: pd.DataFrame
) -> list:
    """(session, input, output) of the first sessions whose tensors save-tensors wrote."""
    split, metric, group = where
    pairs = []
    index_column = f"{info.mode}_id"
    for row in frame.itertuples(index=False):
        ids = (row.participant_id, row.session_id, info.mode, int(getattr(row, index_column, 0)))
        given = figures.load_volume(maps.tensor_file(split, metric, group, *ids, "input"))
        made = figures.load_volume(maps.tensor_file(split, metric, group, *ids, "output"))
        if given is not None and made is not None and given.shape == made.shape:
            pairs.append((f"{row.participant_id} {row.session_id}", given, made))
        if len(pairs) == EXAMPLES:
            break
    return pairs


def model_results(maps: MapsLayout, info: MapsInfo, group: str) -> str:
    """The group's results of one model: per selection metric, the table then the figures."""
    found = results_of(maps, group)
    if not found:
        return note(f"No results of group {group} in {maps.root} yet (run `neuroexec apply`).")
    parts = []
    for metric, splits in sorted(found.items()):
        by_split = {
            f"split-{s}": with_auc(
                read_metrics(maps.metrics_tsv(s, metric, group, "image")),
                read_predictions(maps, s, metric, group),
            )
            for s in splits
        }
        heading = f"<h4>best-{esc(metric)}: metrics (value [95% bootstrap CI])</h4>"
        shown = metrics_table({k: v for k, v in by_split.items() if v})
        drawn = "".join(_split_figures(maps, info, (metric, group), splits))
        parts.append(f'<div class="row"><div>{heading}{shown}</div><div>{drawn}</div></div>')
        for split in splits:
            parts += saliency_sections(maps, (split, metric, group))
    return "".join(parts)


def group_section(name: str, models: dict[str, MapsLayout]) -> str:
    """Every model's results on the group `name` (models: name -> MAPS)."""
    parts = []
    for model, maps in models.items():
        try:
            info = read_maps_info(maps.root)
        except (NeuroexecError, OSError):
            parts.append(section(f"{model}", note(f"{maps.root} has no readable maps.json yet."), 3))
            continue
        parts.append(
            section(
                f"{model} ({info.task})",
                model_results(maps, info, name),
                3,
                anchor_name("group", name, model),
            )
        )
    return section(f"Data group {name}", "".join(parts), 2, anchor_name("group", name))
