"""A model's part of the page: its training curves (train and validation loss and selection metrics per
epoch, each split's best epochs marked, and the mean ± SD across splits) and the validation metrics of
each best model with their bootstrap CIs.

The best epoch of a metric is found as the training found it (neuroexec.metrics.is_improvement over the
log's validation rows, in order), so the mark sits on the epoch whose model best-<metric>/ holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neuroexec.html_report.elements import anchor_name, esc, image, new_figure, note, section
from neuroexec.html_report.metric_tables import metrics_table, read_metrics
from neuroexec.maps.layout import MapsLayout
from neuroexec.metrics import is_improvement


@dataclass(frozen=True)
class Curve:
    """One training log: its label (`split-0`, `split-0 network-1`) and its rows, one per epoch."""

    label: str
    rows: pd.DataFrame

    def best_epoch(self, metric: str) -> int | None:
        """The epoch of the last improvement of `<metric>_valid`, or None when the log has no such column."""
        column = f"{metric}_valid"
        if column not in self.rows.columns:
            return None
        best, epoch = None, None
        for e, value in zip(self.rows["epoch"], self.rows[column]):
            if is_improvement(metric, float(value), best):
                best, epoch = float(value), int(e)
        return epoch


def training_logs(maps: MapsLayout, split: int) -> list[tuple[str, Path]]:
    """(label, training.tsv) of the split's finished training: one, or one per network."""
    if maps.training_tsv(split).is_file():
        return [(f"split-{split}", maps.training_tsv(split))]
    found = []
    network = 0
    while maps.training_logs(split, network).is_dir():
        if maps.training_tsv(split, network).is_file():
            found.append((f"split-{split} network-{network}", maps.training_tsv(split, network)))
        network += 1
    return found


def read_curve(label: str, path: Path) -> Curve | None:
    """The log with one row per epoch (the last evaluation of each: train.evaluation_steps adds rows)."""
    try:
        frame = pd.read_csv(path, sep="\t")
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if frame.empty or "epoch" not in frame.columns:
        return None
    return Curve(label, frame.groupby("epoch", sort=True).tail(1).reset_index(drop=True))


def curve_metrics(curves: list[Curve], selection: list[str]) -> list[str]:
    """The metrics to draw: the loss, then the selection metrics the logs have."""
    names = ["loss", *(m for m in selection if m != "loss")]
    return [m for m in names if any(f"{m}_valid" in c.rows.columns for c in curves)]


def curves_figure(curves: list[Curve], metrics: list[str]) -> str:
    """One panel per metric: each split's train (dashed) and validation (solid) values per epoch, a
    star on each split's best validation epoch of that metric."""
    fig = new_figure(3.6 * len(metrics), 2.8)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for k, curve in enumerate(curves):
            colour = f"C{k % 10}"
            rows = curve.rows
            if f"{metric}_train" in rows.columns:
                ax.plot(
                    rows["epoch"], rows[f"{metric}_train"], "--", color=colour, label=f"{curve.label} train"
                )
            ax.plot(
                rows["epoch"], rows[f"{metric}_valid"], "-", color=colour, label=f"{curve.label} validation"
            )
            best = curve.best_epoch(metric)
            if best is not None:
                value = rows.loc[rows["epoch"] == best, f"{metric}_valid"].iloc[0]
                ax.plot([best], [value], "*", color=colour, markersize=12, markeredgecolor="black")
        ax.set_title(metric)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize="x-small")
    return image(fig, f"training curves: {', '.join(metrics)} per epoch, best epochs starred")


def mean_figure(curves: list[Curve], metrics: list[str]) -> str:
    """The mean ± SD across splits of each metric per epoch (over the splits that reached the epoch)."""
    fig = new_figure(3.6 * len(metrics), 2.8)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for phase, colour in (("train", "C0"), ("valid", "C1")):
            column = f"{metric}_{phase}"
            frames = [c.rows.set_index("epoch")[column] for c in curves if column in c.rows.columns]
            if not frames:
                continue
            table = pd.concat(frames, axis=1)
            mean, sd = table.mean(axis=1), table.std(axis=1, ddof=1).fillna(0.0)
            label = "validation" if phase == "valid" else "train"
            ax.plot(mean.index, mean.to_numpy(), color=colour, label=f"{label} mean")
            ax.fill_between(
                mean.index, (mean - sd).to_numpy(), (mean + sd).to_numpy(), color=colour, alpha=0.25
            )
        ax.set_title(f"{metric}: mean ± SD over {len(curves)} splits")
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize="x-small")
    return image(fig, f"training curves, mean ± SD across {len(curves)} splits")


def best_epochs_line(curves: list[Curve], metrics: list[str]) -> str:
    parts = []
    for metric in metrics:
        found = [(c.label, c.best_epoch(metric)) for c in curves]
        parts.append(
            f"best-{metric}: " + ", ".join(f"{label} epoch {e}" for label, e in found if e is not None)
        )
    return note("; ".join(parts)) if parts else ""


def validation_tables(maps: MapsLayout, splits: list[int]) -> str:
    """Per selection metric, each split's validation metrics with their CIs, and across splits."""
    metrics = sorted({m for s in splits for m in maps.best_metrics(s)})
    parts = []
    for metric in metrics:
        by_split = {
            f"split-{s}": read_metrics(maps.metrics_tsv(s, metric, "validation", "image"))
            for s in splits
            if metric in maps.best_metrics(s)
        }
        by_split = {k: v for k, v in by_split.items() if v}
        if by_split:
            heading = f"<h4>best-{esc(metric)}: validation (value [95% bootstrap CI])</h4>"
            parts.append(f"<div>{heading}{metrics_table(by_split)}</div>")
    return f'<div class="row">{"".join(parts)}</div>' if parts else ""


def model_section(name: str, maps: MapsLayout, task: str) -> str:
    """The model's curves and validation metrics, or a line saying it has not been trained yet."""
    splits = maps.splits()
    curves = [c for s in splits for label, path in training_logs(maps, s) if (c := read_curve(label, path))]
    title = f"Model {name} ({task})"
    anchor = anchor_name("model", name)
    if not curves:
        return section(
            title, note(f"No finished training in {maps.root} yet (run `neuroexec apply`)."), 2, anchor
        )
    selection = sorted({m for s in splits for m in maps.best_metrics(s)})
    metrics = curve_metrics(curves, selection)
    body = [f'<p class="path">MAPS {esc(maps.root)}</p>', "<h3>Training curves</h3>"]
    if metrics:
        body += [curves_figure(curves, metrics), best_epochs_line(curves, metrics)]
        if len(curves) > 1:
            body.append(mean_figure(curves, metrics))
    body += ["<h3>Validation metrics</h3>", validation_tables(maps, splits) or note("No validation metrics.")]
    return section(title, "".join(body), 2, anchor)
