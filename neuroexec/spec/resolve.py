"""Schema-valid dict -> Spec dataclasses: defaults from the schema, paths made absolute against the
spec's folder, metric aliases canonicalised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuroexec.spec import model as m
from neuroexec.spec.load import schema


def _node(*path: str) -> dict[str, Any]:
    """The schema node at a property path; `*` steps into additionalProperties / items."""
    node = schema()
    for part in path:
        if part == "*":
            node = node.get("additionalProperties") or node["items"]
        else:
            node = node["properties"][part]
    return node


def with_defaults(values: dict[str, Any] | None, *path: str) -> dict[str, Any]:
    """`values` completed with the schema defaults of the object at `path`."""
    props = _node(*path).get("properties", {})
    out = {k: v["default"] for k, v in props.items() if "default" in v}
    out.update(values or {})
    return out


def resolve(doc: dict[str, Any], spec_path: Path) -> m.Spec:
    base = spec_path.parent.resolve()
    compute = m.Compute(**with_defaults(doc.get("compute"), "compute"))
    datasets = {n: _dataset(n, d, base) for n, d in doc.get("datasets", {}).items()}
    models = {n: _model(n, d, base, compute) for n, d in doc.get("models", {}).items()}
    groups = {n: _group(n, d, base, compute, models) for n, d in doc.get("groups", {}).items()}
    return m.Spec(spec_path.resolve(), doc.get("version", 1), compute, datasets, models, groups)


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _dataset(name: str, raw: dict[str, Any], base: Path) -> m.Dataset:
    d = with_defaults(raw, "datasets", "*")
    generate = (
        m.Generate(**with_defaults(d["generate"], "datasets", "*", "generate")) if "generate" in d else None
    )
    if "cohorts" in d:
        cohorts = tuple(
            m.Cohort(c["name"], _path(base, c["caps"]), _path(base, c["participants"])) for c in d["cohorts"]
        )
    else:
        caps = _path(base, d.get("caps")) or (base / "data" / name if generate else None)
        participants = _path(base, d.get("participants"))
        if generate and participants is None and caps is not None:
            participants = caps / "participants.tsv"
        cohorts = (m.Cohort(name, caps, participants),) if caps and participants else ()
    return m.Dataset(
        name=name,
        cohorts=cohorts,
        generate=generate,
        multi_cohort="cohorts" in d,
        preprocessing=d["preprocessing"],
        uncropped=d["uncropped"],
        normalize=d["normalize"],
        patch_layout=d["patch_layout"],
        baseline=d["baseline"],
    )


def _metrics(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.canonical_metric(v) for v in values))


def _model(name: str, raw: dict[str, Any], base: Path, compute: m.Compute) -> m.Model:
    d = with_defaults(raw, "models", "*")
    merged = compute.merged(d.get("compute"))
    split = with_defaults(d.get("split"), "models", "*", "split")
    split.setdefault("seed", merged.seed)
    split_obj = m.Split(
        n_splits=split["n_splits"],
        splits=tuple(split["splits"]) if "splits" in split else None,
        seed=split["seed"],
        directory=_path(base, split.get("directory")),
        valid_longitudinal=split["valid_longitudinal"],
    )
    train = with_defaults(d.get("train"), "models", "*", "train")
    train["selection_metrics"] = _metrics(train["selection_metrics"])
    transfer = None
    if "transfer" in d:
        t = with_defaults(d["transfer"], "models", "*", "transfer")
        transfer = m.Transfer(
            model=t.get("model"),
            maps=_path(base, t.get("maps")),
            selection=m.canonical_metric(t["selection"]),
        )
    patch = m.Patch(**with_defaults(d.get("patch"), "models", "*", "patch")) if d["mode"] == "patch" else None
    return m.Model(
        name=name,
        maps=_path(base, d["maps"]),
        dataset=d.get("dataset"),
        task=d["task"],
        mode=d["mode"],
        patch=patch,
        label=d["label"],
        diagnoses=tuple(d["diagnoses"]) if "diagnoses" in d else None,
        architecture=d["architecture"],
        dropout=d["dropout"],
        split=split_obj,
        transfer=transfer,
        train=m.Train(**train),
        compute=merged,
    )


def _group(
    name: str, raw: dict[str, Any], base: Path, compute: m.Compute, models: dict[str, m.Model]
) -> m.Group:
    d = with_defaults(raw, "groups", "*")
    interps = tuple(
        m.Interpretation(
            **{**with_defaults(i, "groups", "*", "interpret", "*"), "mask": _path(base, i.get("mask"))}
        )
        for i in d.get("interpret", [])
    )
    save = (
        m.SaveTensors(**with_defaults(d["save_tensors"], "groups", "*", "save_tensors"))
        if "save_tensors" in d
        else None
    )
    return m.Group(
        name=name,
        models=tuple(d["models"]),
        dataset=d.get("dataset"),
        from_training=d.get("from_training"),
        splits=tuple(d["splits"]) if "splits" in d else None,
        selection_metrics=_metrics(d["selection_metrics"]),
        use_labels=d["use_labels"],
        label=d.get("label"),
        diagnoses=tuple(d["diagnoses"]) if "diagnoses" in d else None,
        skip_leak_check=d["skip_leak_check"],
        overwrite=d["overwrite"],
        predict=d["predict"],
        save_tensors=save,
        interpret=interps,
        compute=compute.merged(d.get("compute")),
    )
