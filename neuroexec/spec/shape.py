"""Which keys of a spec table go together: the rules about how the TOML is written that JSON Schema
would state without a sentence (a dataset is `caps` + `participants`, `cohorts` or `generate`; a model
without `dataset` takes no training keys). The only checks that read the parsed TOML; everything else
checks the resolved spec (spec/checks.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from neuroexec.errors import Problem

Add = Callable[[str, str], None]

# The keys of a model table that only a model with `dataset` (one neuroexec trains) uses.
TRAINING_KEYS = ("split", "transfer", "train", "overwrite")


def shape_problems(doc: dict[str, Any], file: str) -> list[Problem]:
    """Every table of a schema-valid `doc` whose keys do not go together, named by its key path.

    >>> [p.key for p in shape_problems({"datasets": {"d": {"caps": "c"}}}, "spec.toml")]
    ['datasets.d']
    """
    out: list[Problem] = []
    add: Add = lambda key, msg: out.append(Problem(file, key, msg))  # noqa: E731
    datasets = doc.get("datasets", {})
    for name, raw in datasets.items():
        _dataset_shape(name, raw, datasets, add)
    for name, raw in doc.get("models", {}).items():
        _model_shape(f"models.{name}", raw, add)
    for name, raw in doc.get("groups", {}).items():
        _group_shape(f"groups.{name}", raw, add)
    return out


def _dataset_shape(name: str, raw: dict[str, Any], datasets: dict[str, Any], add: Add) -> None:
    key = f"datasets.{name}"
    has = {k for k in ("caps", "participants", "cohorts", "generate") if k in raw}
    if "generate" in has and has & {"participants", "cohorts"}:
        add(key, "a generated dataset writes its own participants TSV: remove participants/cohorts")
    elif "cohorts" in has and has & {"caps", "participants"}:
        add(key, "give either cohorts or caps + participants, not both")
    elif not has & {"generate", "cohorts"} and has != {"caps", "participants"}:
        missing = sorted({"caps", "participants"} - has)
        add(key, f"missing {' and '.join(missing)} (or a `generate` table for synthetic data)")
    for i, entry in enumerate(raw.get("cohorts", [])):
        _cohort_shape(entry, f"{key}.cohorts[{i}]", name, datasets, add)


def _cohort_shape(entry: dict, where: str, owner: str, datasets: dict[str, Any], add: Add) -> None:
    """A cohort is either caps + participants or `dataset`, another single-cohort dataset of the spec."""
    has = {k for k in ("caps", "participants", "dataset") if k in entry}
    if "dataset" in has:
        if has != {"dataset"}:
            add(where, "give either dataset or caps + participants, not both")
        ref = entry["dataset"]
        if ref == owner:
            add(f"{where}.dataset", "a dataset cannot be one of its own cohorts")
        elif ref not in datasets:
            known = ", ".join(sorted(n for n in datasets if n != owner)) or "none"
            add(f"{where}.dataset", f"unknown dataset {ref!r} (datasets: {known})")
        elif "cohorts" in datasets[ref]:
            add(f"{where}.dataset", f"datasets.{ref} has cohorts itself: list its cohorts here instead")
    elif has != {"caps", "participants"}:
        missing = " and ".join(sorted({"caps", "participants"} - has))
        add(where, f"missing {missing} (or `dataset`, another dataset of this spec)")


def _model_shape(key: str, raw: dict[str, Any], add: Add) -> None:
    if "dataset" not in raw:  # a pretrained MAPS, used as is
        for k in TRAINING_KEYS:
            if k in raw:
                add(
                    f"{key}.{k}",
                    "only meaningful with `dataset` (a model without dataset is a pretrained MAPS)",
                )
        return
    mode = raw.get("mode", "image")
    for table in ("patch", "roi", "slice"):
        if table in raw and mode != table:
            add(f"{key}.{table}", f"{table} settings need mode = '{table}'")
    if mode == "roi" and "roi" not in raw:
        add(f"{key}.roi", "mode = 'roi' needs roi = {{ list = [...] }}: the names of the region masks")
    if raw.get("multi_network") and mode == "image":
        add(f"{key}.multi_network", "one network per part needs mode = 'patch', 'roi' or 'slice'")
    elif raw.get("multi_network") and mode == "roi" and len(raw.get("roi", {}).get("list", [])) == 1:
        add(
            f"{key}.multi_network",
            "one network per region needs at least 2 regions in roi.list (as ClinicaDL); with one region, "
            "leave multi_network out",
        )


def _group_shape(key: str, raw: dict[str, Any], add: Add) -> None:
    """A group's own compute table sets no training-only key: compensation sets the cuBLAS workspace of
    deterministic CUDA trainings, and a group's steps (predict, interpret, save-tensors) train nothing.
    A top-level [compute] compensation is the models' default, which the groups' merge ignores; so is
    fully_sharded_data_parallel (it shards a training)."""
    own = raw.get("compute") or {}
    if "compensation" in own:
        add(
            f"{key}.compute.compensation",
            "only read by a training (the cuBLAS workspace of deterministic CUDA runs); a group's steps "
            "train nothing: set it in [compute] or the model's compute table, not the group's",
        )
    if own.get("fully_sharded_data_parallel"):
        add(
            f"{key}.compute.fully_sharded_data_parallel",
            "FSDP shards a training and a group's steps train nothing (each process predicts with the "
            "whole network): set it in [compute] or the model's compute table, not the group's",
        )
