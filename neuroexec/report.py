"""`neuroexec report SPEC`: where the results of a spec are and what they say, read back from the MAPS
(training curves, best validation metrics, data-group metrics, saliency summaries)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from neuroexec.errors import NeuroexecError
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import CHANGED, NEW, REFUSED, UP_TO_DATE, PlannedStep, make_plan
from neuroexec.spec.model import Spec
from neuroexec.steps.common import interpret_id, predict_id, train_id
from neuroexec.steps.group_record import stale_results

HEADLINE = ("BA", "accuracy", "sensitivity", "specificity", "MAE", "RMSE", "R2_score", "PSNR", "SSIM", "loss")


def metric_values(path: Path) -> dict[str, float]:
    """The `Values` row of a ClinicaDL metrics TSV, or {} if absent/unreadable."""
    try:
        frame = pd.read_csv(path, sep="\t", index_col=0)
        row = frame.loc["Values"]
    except (OSError, KeyError, ValueError, pd.errors.ParserError):
        return {}
    return {k: float(v) for k, v in row.items() if k in HEADLINE}


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items()) or "(no metrics)"


def _planned(spec: Spec) -> dict[str, PlannedStep]:
    """The spec's plan, step by step (planning writes nothing); {} when it cannot be made (the plan
    command names the problem)."""
    try:
        return {p.step.id: p for p in make_plan(spec).steps}
    except NeuroexecError:
        return {}


def _train_steps(index: dict[str, PlannedStep]) -> dict:
    """The plan's train steps by id, with the fingerprints of their dependencies: what apply will do
    with a training waiting in tmp/ is what the plan says."""
    return {
        p.step.id: (p, {d: index[d].fingerprint or "" for d in p.step.deps})
        for p in index.values()
        if p.step.kind == "train"
    }


def stale_mark(index: dict[str, PlannedStep], step_id: str) -> str | None:
    """Why a result on disk is no longer what the spec's models and data give, in the plan's own words
    (its step is not `=`), or None when it is up to date or not the spec's."""
    planned = index.get(step_id)
    if planned is None or planned.action == UP_TO_DATE:
        return None
    why = "; ".join(planned.reasons)
    if planned.action == REFUSED:
        return f"STALE: {why}; apply refuses to recompute it (see `neuroexec plan`)"
    if planned.action == NEW and not why:
        why = "no record of how it was computed"
    return f"STALE: {why}; apply recomputes it"


def _waiting_line(maps: MapsLayout, split: int, planned) -> str:
    """A training stopped in tmp/, and what apply will do with it: the plan's own resume note (the
    train step's `resumes` hook, the resume-key check apply makes), never a guess."""
    from neuroexec.steps import train

    staged = _staged_log(maps, split)
    try:
        epochs = _epochs(pd.read_csv(staged, sep="\t"))
        done = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    except (OSError, ValueError, pd.errors.ParserError):
        done = "an unreadable number of epochs"
    if staged is not None and staged != maps.staged_training_tsv(split):  # multi-network
        done = f"{done} of {staged.parent.name}"
    tmp = maps.tmp_dir(split)
    before = (
        "what follows comes from the last finished training"
        if _finished_logs(maps, split)
        else "no training of this split has finished yet"
    )
    head = f"a training stopped after {done} waits in {tmp}"
    if planned is None:
        return f"{head}; apply does not train this split (not in the spec); {before}"
    step, upstream = planned
    note = train.resumes(step.step, upstream) if step.action in (NEW, CHANGED) else None
    if note is not None and note in step.reasons:
        if note.endswith("apply resumes there"):
            return f"{head} (apply continues it); {before}"
        if note.startswith("interrupted, but"):
            return f"{head}; {note}; {before}"
    if step.action == UP_TO_DATE:
        return (
            f"{head}, made with other settings or data than the spec's; apply leaves it (the finished "
            f"training is up to date; delete that folder to discard it); {before}"
        )
    if step.action in (NEW, CHANGED):
        return (
            f"{head}, made with other settings or data; apply discards it and trains the split from the "
            f"start; {before}"
        )
    return f"{head}; apply is refused here: {'; '.join(step.reasons)}; {before}"


def _epochs(log: pd.DataFrame) -> int:
    """The epochs of a training.tsv: one row each, and train.evaluation_steps' rows within them."""
    return int(log["epoch"].nunique()) if "epoch" in log.columns else len(log)


def _finished_logs(maps: MapsLayout, split: int) -> list[Path]:
    """The published training.tsv of the split: one, or one per network of a multi-network model."""
    if maps.training_tsv(split).is_file():
        return [maps.training_tsv(split)]
    return sorted(maps.training_logs(split).glob("network-*/training.tsv"))


def _staged_log(maps: MapsLayout, split: int) -> Path | None:
    """The log of the training waiting in tmp/: the split's, or the last network's with one."""
    if maps.staged_training_tsv(split).is_file():
        return maps.staged_training_tsv(split)
    staged = sorted(maps.tmp_dir(split).glob("network-*/training.tsv"), key=lambda p: (len(str(p)), str(p)))
    return staged[-1] if staged else None


def report(spec: Spec) -> str:
    """Every dataset, model, training and result of the spec; a result whose step the plan does not
    show `=` is marked STALE with the plan's reasons (report itself writes nothing)."""
    lines = [f"Results of {spec.path}:"]
    planned = _planned(spec)
    for name, ds in spec.datasets.items():
        where = ", ".join(str(c.caps) for c in ds.cohorts)
        lines.append(f"  dataset {name}: {where}")
    for name in spec.models:
        lines += _model_lines(spec, name, planned)
    from neuroexec.cluster.status import report_lines  # failed SLURM jobs (none without job records)

    return "\n".join(lines + report_lines(spec.path))


def _model_lines(spec: Spec, name: str, planned: dict[str, PlannedStep]) -> list[str]:
    maps = MapsLayout(spec.models[name].maps)
    lines = [f"  model {name}: MAPS {maps.root}"]
    splits = maps.splits()
    waiting = [s for s in splits if _staged_log(maps, s) is not None]
    if not maps.maps_json.is_file() and not waiting:
        return [*lines, "    not trained yet (run `neuroexec apply`)"]
    stale = {group: stale_results(maps, group, name) for group in spec.groups}
    for split in splits:
        logs = _finished_logs(maps, split)
        if logs == [maps.training_tsv(split)]:
            rows = pd.read_csv(logs[0], sep="\t")
            lines.append(f"    split-{split}: {_epochs(rows)} epochs, training log {logs[0]}")
        elif logs:
            epochs = max(_epochs(pd.read_csv(log, sep="\t")) for log in logs)
            where = maps.training_logs(split) / "network-<k>"
            lines.append(
                f"    split-{split}: {len(logs)} networks, up to {epochs} epochs, training logs {where}"
            )
        if split in waiting:
            train = _train_steps(planned).get(train_id(name, split))
            lines.append(f"    split-{split}: {_waiting_line(maps, split, train)}")
        for metric in maps.best_metrics(split):
            valid = metric_values(maps.metrics_tsv(split, metric, "validation", "image"))
            lines.append(f"      best-{metric}: validation {_fmt(valid)}")
            for group in sorted(spec.groups):
                kept = maps.result_dir(split, metric, group) in stale[group]
                lines += _group_lines(maps, (name, split, metric), group, planned, kept)
    return lines


def _group_lines(
    maps: MapsLayout, best: tuple[str, int, str], group: str, planned: dict[str, PlannedStep], kept: bool
) -> list[str]:
    """A group's metrics and saliency summaries of one best model (model name, split, metric), each
    followed by its STALE mark when the plan would recompute it; `kept`: left by a redefinition."""
    name, split, metric = best
    lines = []
    result = maps.metrics_tsv(split, metric, group, "image")
    if result.is_file():
        lines.append(f"        group {group}: {_fmt(metric_values(result))}  ({result})")
        mark = stale_mark(planned, predict_id(group, name, split, metric))
        lines += [f"          {mark}"] if mark else []
    if kept:
        lines.append(
            f"        group {group}: STALE, computed on the group's old data (its "
            f"redefinition kept them); predict split {split} again to replace them"
        )
    for summary in maps.interpret_summaries(split, metric, group):
        lines.append(f"        {summary.parent.name}: {_saliency_line(summary)}")
        interpretation = summary.parent.name.removeprefix("interpret-")
        mark = stale_mark(planned, interpret_id(group, interpretation, name, split, metric))
        lines += [f"          {mark}"] if mark else []
    return lines


def _saliency_line(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return f"unreadable {path}"
    used = data.get("used", "?")
    mask = data.get("mask") or {}
    inside, share = mask.get("mass_inside"), mask.get("brain_share")
    if inside is not None and share:
        region = Path(mask.get("path", "mask")).name.split(".")[0]
        return (
            f"{used} maps; {100 * inside:.1f}% of the saliency lies in the {region} region, which is "
            f"{100 * share:.1f}% of the brain ({inside / share:.1f}x an even spread)  ({path.parent})"
        )
    return f"{used} maps  ({path.parent})"
