"""`neuroexec import-maps PATH`: recognise a MAPS of either generation (neuroexec / ClinicaDL 1.x
`split-<i>/best-<metric>/model.pth.tar` + maps.json, or the older `fold-<i>/models/best_<metric>/
model_best.pth.tar` + commandline.json) and report what can be used as is, and what cannot.

`print(render(describe_maps(Path("maps/cnn"))))` is what the command prints; it needs a MAPS, which
tests/cli/test_commands.py builds of both generations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from neuroexec.errors import NeuroexecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.info import MapsInfo, read_maps_info
from neuroexec.maps.layout import LegacyMapsLayout, MapsLayout


@dataclass
class BestModel:
    split: int
    metric: str
    path: Path
    epoch: int | None = None
    problem: str | None = None


@dataclass
class MapsReport:
    root: Path
    generation: str
    info: MapsInfo
    best: list[BestModel] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """At least one best model loads into the network its parameters describe."""
        return any(b.problem is None for b in self.best)


def _generation(root: Path, info: MapsInfo) -> str:
    if info.legacy:
        return (
            "ClinicaDL older generation (commandline.json, fold-<i>/models/best_<metric>/model_best.pth.tar)"
        )
    if MapsLayout(root).neuroexec_dir.is_dir():
        return "neuroexec (ClinicaDL 1.x layout)"
    return "ClinicaDL 1.x (maps.json, split-<i>/best-<metric>/model.pth.tar)"


def _best_files(root: Path, info: MapsInfo) -> list[tuple[int, str, Path]]:
    out = []
    for split in info.splits:
        if info.legacy:
            out += [(split, metric, p) for metric, p in LegacyMapsLayout(root).best_models(split)]
        else:
            layout = MapsLayout(root)
            bests = [(metric, layout.best_model(split, metric)) for metric in layout.best_metrics(split)]
            out += [(split, metric, p) for metric, p in bests if p.is_file()]
    return out


def _check_weights(info: MapsInfo, state: dict) -> str | None:
    """None when the state dict fits the network maps.json describes, else why not."""
    from neuroexec.inference.model_io import build_model

    try:
        model = build_model(info)
    except NeuroexecError as err:
        return f"cannot rebuild the network: {err}"
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        return f"weights do not fit {info.architecture}: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
    return None


def describe_maps(root: Path) -> MapsReport:
    """What a MAPS folder holds; raises InputError when it is not a MAPS of either generation."""
    root = Path(root).resolve()
    info = read_maps_info(root)
    report = MapsReport(root, _generation(root, info), info)
    if not info.architecture:
        report.problems.append(
            "no architecture recorded (maps.json `architecture` / commandline.json `model`)"
        )
    if not info.splits:
        report.problems.append("no split-<i>/ (or fold-<i>/) folder: no trained model")
    for split, metric, path in _best_files(root, info):
        best = BestModel(split, metric, path)
        try:
            state, best.epoch, _ = load_model_state(path)
            best.problem = _check_weights(info, state)
        except NeuroexecError as err:
            best.problem = str(err).splitlines()[0]
        report.best.append(best)
    for split in info.splits:
        if not any(b.split == split for b in report.best):
            report.problems.append(f"split {split}: no best model file")
    groups_dir = MapsLayout(root).groups_dir
    if groups_dir.is_dir():
        report.groups = sorted(p.name for p in groups_dir.iterdir() if p.is_dir())
    if info.legacy and info.mode in ("patch", "roi", "slice"):
        for split in info.splits:
            if not LegacyMapsLayout(root).prediction_tsvs(split, "validation"):
                report.problems.append(
                    f"fold {split}: validation predictions (cnn_classification/best_<metric>/*.tsv) were erased: "
                    "soft voting of patch predictions at the image level is impossible"
                )
    elif info.mode in ("patch", "roi", "slice"):
        for b in report.best:
            if not MapsLayout(root).prediction_tsvs(b.split, b.metric, "validation"):
                report.problems.append(
                    f"split {b.split} best-{b.metric}: validation predictions (split-<i>/best-<metric>/validation/*.tsv) "
                    "are missing: image-level soft voting needs them"
                )
    return report


def render(report: MapsReport) -> str:
    """The report as readable lines."""
    i = report.info
    lines = [
        f"MAPS: {report.root}",
        f"  generation:   {report.generation}",
        f"  task:         {i.task}",
        f"  mode:         {i.mode}"
        + (f" (patch {i.patch_size}, stride {i.stride_size or i.patch_size})" if i.mode == "patch" else ""),
        f"  architecture: {i.architecture or '?'}"
        + (f", input size {list(i.input_size)}" if i.input_size else ""),
    ]
    if i.label:
        codes = f" {i.label_code}" if i.label_code else ""
        lines.append(f"  label:        {i.label}{codes}")
    lines.append(f"  splits:       {', '.join(map(str, i.splits)) or 'none'}")
    lines.append("  best models:")
    for b in report.best:
        state = f"epoch {b.epoch}" if b.epoch is not None else "epoch ?"
        status = "ok" if b.problem is None else f"UNUSABLE: {b.problem}"
        lines.append(
            f"    split {b.split} {b.metric:<10} {state:<10} {status}  ({b.path.relative_to(report.root)})"
        )
    if not report.best:
        lines.append("    none")
    lines.append(f"  data groups:  {', '.join(report.groups) or 'none'}")
    if report.problems:
        lines.append("  problems:")
        lines += [f"    - {p}" for p in report.problems]
    lines.append(
        "  usable as is: " + ("yes (predict / interpret / transfer learning)" if report.usable else "no")
    )
    return "\n".join(lines)
