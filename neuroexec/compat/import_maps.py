"""`neuroexec import-maps PATH`: recognise a MAPS of either generation (neuroexec / ClinicaDL 1.x
`split-<i>/best-<metric>/model.pth.tar` + maps.json, or the older `fold-<i>/models/best_<metric>/
model_best.pth.tar` + commandline.json) and report what can be used as is, and what cannot. Every
mode (image, patch, roi, slice) and one network per part (ClinicaDL 1.x's `best-<metric>/
network-<k>_model.pth.tar`) is recognised; the report says how neuroexec uses such a model.

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
    network: int | None = None  # network k of a multi-network model


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


def _best_files(root: Path, info: MapsInfo) -> list[BestModel]:
    out = []
    layout = MapsLayout(root)
    for split in info.splits:
        if info.legacy:
            out += [BestModel(split, metric, p) for metric, p in LegacyMapsLayout(root).best_models(split)]
            continue
        for metric in layout.best_metrics(split):
            if info.multi_network:
                out += [
                    BestModel(split, metric, p, network=k)
                    for k, p in layout.best_network_models(split, metric)
                ]
            elif layout.best_model(split, metric).is_file():
                out.append(BestModel(split, metric, layout.best_model(split, metric)))
    return out


def _network_problems(info: MapsInfo, best: list[BestModel]) -> list[str]:
    """A multi-network model lacking some of its networks (maps.json's num_networks)."""
    expected = info.raw.get("num_networks")
    if not info.multi_network or not isinstance(expected, int):
        return []
    problems = []
    for split, metric in sorted({(b.split, b.metric) for b in best}):
        found = {b.network for b in best if (b.split, b.metric) == (split, metric)}
        missing = sorted(set(range(expected)) - found)
        if missing:
            problems.append(
                f"split {split} best-{metric}: network(s) {', '.join(map(str, missing))} of {expected} missing "
                "(network-<k>_model.pth.tar): their parts cannot be predicted"
            )
    return problems


def _check_weights(info: MapsInfo, state: dict, shapes: bool = True) -> str | None:
    """None when the state dict fits the network maps.json describes, else why not. `shapes` false:
    the parameter names only (a region's network whose box maps.json does not record)."""
    from neuroexec.inference.model_io import build_model

    try:
        model = build_model(info)
    except NeuroexecError as err:
        return f"cannot rebuild the network: {err}"
    if not shapes:
        expected = set(model.state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
    else:
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # parameter shapes of another input size
            detail = str(err).strip().splitlines()[-1].strip()
            return f"weights do not fit {info.architecture} with input size {list(info.input_size or [])}: {detail}"
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
    if info.legacy and info.multi_network:
        report.problems.append(
            "one network per part in the older generation (multi_cnn) is not recognised: only ClinicaDL 1.x's "
            "split-<i>/best-<metric>/network-<k>_model.pth.tar"
        )
    for best in _best_files(root, info):
        try:
            state, best.epoch, _ = load_model_state(best.path)
            # maps.json records network 0's input size; another region's box may differ (load_model
            # takes that region's when predicting)
            other_box = info.mode == "roi" and best.network not in (None, 0)
            best.problem = _check_weights(info, state, shapes=not other_box)
        except NeuroexecError as err:
            best.problem = str(err).splitlines()[0]
        report.best.append(best)
    report.problems += _network_problems(info, report.best)
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
        for b in {(b.split, b.metric): b for b in report.best}.values():
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
        f"  mode:         {i.mode}{_mode_details(i)}",
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
    lines.append(f"  neuroexec:    {use_of(i)}")
    return "\n".join(lines)


AXES = {0: "sagittal", 1: "coronal", 2: "axial"}


def _mode_details(i: MapsInfo) -> str:
    """The mode's settings, as maps.json's preprocessing_dict gives them, and the network count."""
    if i.mode == "patch":
        details = f"patch {i.patch_size}, stride {i.stride_size or i.patch_size}"
    elif i.mode == "roi":
        box = "uncropped" if i.uncropped_roi else "cropped to each mask's box"
        details = f"regions {', '.join(i.roi_list) or '?'}, {box}"
    elif i.mode == "slice":
        begin, end = i.discarded_slices
        axis = AXES.get(i.slice_direction, "?") if i.slice_direction is not None else "?"
        details = f"{axis} slices, {i.slice_mode or '?'}, discarded {begin} + {end}"
    else:
        return ""
    if i.multi_network:
        n = i.raw.get("num_networks")
        details += f"; one network per {i.mode}" + (f" ({n})" if n else "")
    return f" ({details})"


def use_of(i: MapsInfo) -> str:
    """What neuroexec does with a model of this mode (predict, interpret, save-tensors)."""
    if i.mode == "image":
        return "predicts whole images"
    cut = {"patch": "cuts the patches", "roi": "cuts the regions from the masks of the CAPS",
           "slice": "cuts the slices"}.get(i.mode, f"reads the {i.mode}s")  # fmt: skip
    who = f"{i.mode} k by network-<k>" if i.multi_network else f"every {i.mode} by the one network"
    return (
        f"{cut} as maps.json's preprocessing_dict says, predicts {who}, and soft-votes them to the image "
        f"(weights: each {i.mode}'s validation accuracy, as ClinicaDL)"
    )
