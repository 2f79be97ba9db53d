"""`neuroexec report SPEC`: where the results of a spec are and what they say, read back from the MAPS
(training curves, best validation metrics, data-group metrics, saliency summaries)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Spec

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


def report(spec: Spec) -> str:
    lines = [f"Results of {spec.path}:"]
    for name, ds in spec.datasets.items():
        where = ", ".join(str(c.caps) for c in ds.cohorts)
        lines.append(f"  dataset {name}: {where}")
    for name, model in spec.models.items():
        maps = MapsLayout(model.maps)
        lines.append(f"  model {name}: MAPS {maps.root}")
        if not maps.maps_json.is_file():
            lines.append("    not trained yet (run `neuroexec apply`)")
            continue
        splits = sorted(int(p.name.split("-")[1]) for p in maps.root.glob("split-*") if p.name[6:].isdigit())
        for split in splits:
            log = maps.training_tsv(split)
            if log.is_file():
                rows = pd.read_csv(log, sep="\t")
                lines.append(f"    split-{split}: {len(rows)} epochs, training log {log}")
            staged = maps.staged_training_tsv(split)
            if staged.is_file():
                done = len(pd.read_csv(staged, sep="\t"))
                before = (
                    "what follows comes from the last finished training"
                    if log.is_file()
                    else "no training of this split has finished yet"
                )
                lines.append(
                    f"    split-{split}: a training stopped after {done} epochs waits in {maps.tmp_dir(split)} "
                    f"(apply continues it); {before}"
                )
            for best in sorted(maps.split_dir(split).glob("best-*")):
                metric = best.name[len("best-") :]
                valid = metric_values(maps.metrics_tsv(split, metric, "validation", "image"))
                lines.append(f"      best-{metric}: validation {_fmt(valid)}")
                for group in sorted(spec.groups):
                    result = maps.metrics_tsv(split, metric, group, "image")
                    if result.is_file():
                        lines.append(f"        group {group}: {_fmt(metric_values(result))}  ({result})")
                    for summary in sorted(
                        maps.result_dir(split, metric, group).glob("interpret-*/summary.json")
                    ):
                        lines.append(f"        {summary.parent.name}: {_saliency_line(summary)}")
    return "\n".join(lines)


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
