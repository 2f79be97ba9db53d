"""Files a training run writes into its MAPS besides checkpoints: maps.json (ClinicaDL 1.x keys),
environment.txt, information.log, training_logs/ (training.tsv; the TensorBoard events are
training/observers.py's) and the autoencoder reconstructions of `visualization = true`; publishing
moves the every-epoch models (all_models/), the emissions table and profiler traces too. Only rank 0
calls these.

Until a training finishes, all of them but the reconstructions are written to its split's tmp/, and
the MAPS keeps those of the last finished training, which describe the models in place;
`publish_training` moves them into place at the end."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from torch import nn

import neuroexec
from neuroexec import atomic
from neuroexec.data.caps import preprocessing_record
from neuroexec.losses import loss_of
from neuroexec.maps.layout import MapsLayout, network_name
from neuroexec.nn import vae_losses
from neuroexec.nn.registry import resolved_name
from neuroexec.preprocessings import Preprocessing
from neuroexec.spec.model import Compute, Dataset, Model, Train


def maps_parameters(
    model: Model,
    dataset: Dataset,
    label_code: dict[str, int] | None,
    input_size: list[int],
    output_size: int | None,
    transfer_maps: Path | None,
    num_networks: int = 1,
) -> dict:
    """maps.json: ClinicaDL 1.x's keys (FORMATS.md) plus `neuroexec_version`, in ClinicaDL's order.
    `transfer_maps` is the MAPS folder the model transfers from (either generation), None without one;
    `num_networks` the parts per image, as ClinicaDL's (one network each for a multi-network model).

    >>> from neuroexec.spec import load_spec
    >>> toml = 'version = 1\\n[datasets.demo]\\ngenerate = { subjects = 8, resolution_mm = 8 }\\n'
    >>> _ = Path("spec.toml").write_text(toml + '[models.cnn]\\nmaps = "maps/cnn"\\ndataset = "demo"\\n')
    >>> spec = load_spec(Path("spec.toml"))
    >>> model, dataset = spec.models["cnn"], spec.datasets["demo"]
    >>> parameters = maps_parameters(model, dataset, {"AD": 0, "CN": 1}, [1, 21, 26, 22], 2, None)
    >>> parameters["network_task"], parameters["architecture"], parameters["label_code"]
    ('classification', 'Conv5_FC3', {'AD': 0, 'CN': 1})
    """
    return {
        **_network_keys(model),
        **_selection_keys(model, label_code),
        **_compute_keys(model.compute, model.train),
        # ClinicaDL turns every *_path key into a Path unless it is "": no transfer is "", never false
        "transfer_path": str(transfer_maps) if transfer_maps is not None else "",
        "transfer_selection_metric": model.transfer.selection if model.transfer else "loss",
        "nb_unfrozen_layer": model.transfer.nb_unfrozen_layer if model.transfer else 0,
        "use_extracted_features": False,
        **_data_keys(model, dataset, label_code),
        **_optimizer_keys(model.train),
        "network_task": model.task,
        "caps_directory": str(MapsLayout(model.maps).caps_directory(dataset)),
        "tsv_path": str(_tsv_path(model, dataset)),
        "preprocessing_dict": _preprocessing_dict(model, dataset),
        "mode": model.mode,
        "split": list(model.split.indices),
        "validation": "KFoldSplit",
        "num_networks": num_networks,
        "output_size": output_size,
        "input_size": list(input_size),
        "neuroexec_version": neuroexec.__version__,
    }


def _tsv_path(model: Model, dataset: Dataset) -> Path:
    """ClinicaDL's tsv_path: the split directory, else the participants; of a `neuroexec train
    --multi_cohort` training, its table of cohorts (as ClinicaDL's multi-cohort maps.json names one)."""
    layout = MapsLayout(model.maps)
    front_end = dataset.multi_cohort and model.split.directory == layout.multi_cohort_splits
    if front_end and layout.multi_cohort_table.is_file():
        return layout.multi_cohort_table
    return model.split.directory or dataset.participants


def _network_keys(model: Model) -> dict:
    # a CNN's name trains its autoencoder for reconstruction (AE_<cnn>); CAE_half, the VAEs... as named
    options = model.architecture_options
    return {
        "architecture": resolved_name(model.architecture, model.task),
        "multi_network": model.multi_network,
        "ssda_network": False,  # ClinicaDL's SSDA, which neuroexec does not train
        "dropout": model.dropout,
        # ClinicaDL 1.6.1's [Architecture] keys, in its order, as the spec gives them
        "latent_space_size": options.latent_space_size,
        "feature_size": options.feature_size,
        "n_conv": options.n_conv,
        "io_layer_channels": options.io_layer_channels,
        "recons_weight": options.recons_weight,
        "kl_weight": options.kl_weight,
        "normalization": options.normalization,
    }


def _selection_keys(model: Model, label_code: dict[str, int] | None) -> dict:
    return {
        "selection_metrics": list(model.train.selection_metrics),
        "label": model.label if model.task != "reconstruction" else None,
        # null without classes (regression, reconstruction), as ClinicaDL writes it: its datasets read
        # an empty {} as a label code and look every target up in it
        "label_code": label_code or None,
        "selection_threshold": model.selection_threshold,
        # a VAE without train.loss trains with a VAE loss (nn/vae_losses.py), which ClinicaDL's predict needs
        "loss": loss_of(model.task, model.train.loss or vae_losses.default_loss(model.architecture)),
    }


def _compute_keys(c: Compute, t: Train) -> dict:
    """ClinicaDL's [Computational] and [Reproducibility] keys (its train options' order)."""
    return {
        "gpu": c.device != "cpu",
        "n_proc": c.workers,
        "batch_size": c.batch_size,
        "evaluation_steps": t.evaluation_steps,
        "fully_sharded_data_parallel": c.fully_sharded_data_parallel,
        "amp": c.amp,
        "seed": c.seed,
        "deterministic": c.deterministic,
        "compensation": c.compensation,
        "track_exp": t.track_exp or "",  # ClinicaDL's "" for none
    }


def _data_keys(model: Model, dataset: Dataset, label_code: dict[str, int] | None) -> dict:
    return {
        "multi_cohort": dataset.multi_cohort,
        # ClinicaDL's predict keeps only these diagnoses: the trained labels, never an empty list
        "diagnoses": list(model.diagnoses) if model.diagnoses else trained_diagnoses(model, label_code),
        "baseline": dataset.baseline,
        "valid_longitudinal": model.split.valid_longitudinal,
        "normalize": dataset.normalize,
        "data_augmentation": list(model.train.data_augmentation) or False,  # ClinicaDL's false for none
        "sampler": model.train.sampler,
        "size_reduction": model.size_reduction_factor is not None,
        "size_reduction_factor": model.size_reduction_factor or 2,  # ClinicaDL's default when off
        **dict.fromkeys(
            ("caps_target", "tsv_target_lab", "tsv_target_unlab", "preprocessing_dict_target"), ""
        ),
        "n_splits": model.split.n_splits,
    }


def _optimizer_keys(t: Train) -> dict:
    return {
        "optimizer": t.optimizer,
        "epochs": t.epochs,
        "learning_rate": t.learning_rate,
        "adaptive_learning_rate": t.adaptive_learning_rate,
        "weight_decay": t.weight_decay,
        "patience": t.patience,
        "tolerance": t.tolerance,
        "accumulation_steps": t.accumulation_steps,
        "profiler": t.profiler,
        "save_all_models": t.save_all_models,
        "emissions_calculator": t.calculate_emissions,
    }


def _preprocessing_dict(model: Model, dataset: Dataset) -> dict:
    patch = (model.patch.size, model.patch.stride) if model.mode == "patch" else None
    # ClinicaDL reads one file per part only where neuroexec writes ClinicaDL's files: regions always,
    # patches and slices with the "clinicadl" layout; from bundles (whose CAPS also hold the image
    # tensors) it cuts the parts from the image, as neuroexec can.
    prepare_dl = model.mode in ("image", "roi") or dataset.patch_layout == "clinicadl"
    return preprocessing_record(
        model.mode, dataset.uncropped, prepare_dl, patch, Preprocessing.of(dataset), mode_settings(model)
    )


def mode_settings(model: Model) -> dict:
    """The roi or slice settings of a model under ClinicaDL's preprocessing_dict names."""
    if model.mode == "roi" and model.roi is not None:
        return {
            "roi_list": list(model.roi.names),
            "uncropped_roi": model.roi.uncropped,
            "roi_custom_template": model.roi.custom_template or "",
            "roi_custom_mask_pattern": model.roi.custom_mask_pattern or "",
        }
    if model.mode == "slice" and model.slice is not None:
        return {
            "slice_direction": model.slice.direction,
            "slice_mode": model.slice.mode,
            "discarded_slices": list(model.slice.discarded),
        }
    return {}


def trained_diagnoses(model, label_code: dict | None) -> list[str]:
    """The diagnoses the model was trained on: its classes, else the diagnosis column of its training data."""
    if label_code and model.label == "diagnosis":
        return sorted(label_code)
    tsv = MapsLayout(model.maps).train_validation_tsv
    if tsv.is_file():
        frame = pd.read_csv(tsv, sep="\t", dtype=str)
        if "diagnosis" in frame.columns:
            return sorted(frame["diagnosis"].dropna().unique())
    return []


def environment_text() -> str:
    """Versions of python, torch, numpy and a `pip freeze`-like list of installed distributions."""
    lines = [
        f"python=={platform.python_version()}",
        f"torch=={torch.__version__}",
        f"numpy=={np.__version__}",
        f"neuroexec=={neuroexec.__version__}",
        f"cuda=={torch.version.cuda or 'none'}",
        f"platform=={platform.platform()}",
        "",
    ]
    packages = {
        (d.metadata["Name"] or "").lower(): d.version
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    lines += [f"{name}=={version}" for name, version in sorted(packages.items())]
    return "\n".join(lines) + "\n"


def information_header(parameters: dict, network: nn.Module) -> str:
    """The head of information.log: versions, task, architecture and its printout."""
    n_params = sum(p.numel() for p in network.parameters())
    return "\n".join(
        [
            f"neuroexec {neuroexec.__version__}, python {sys.version.split()[0]}, torch {torch.__version__}",
            f"Task: {parameters['network_task']}, mode: {parameters['mode']}, "
            f"architecture: {parameters['architecture']} ({n_params} parameters)",
            f"Input size: {parameters['input_size']}, output size: {parameters['output_size']}",
            "",
            str(network),
            "",
        ]
    )


def write_run_files(
    maps: MapsLayout,
    parameters: dict,
    network: nn.Module,
    split: int,
    resumed_after: int | None = None,
    event: str | None = None,
) -> None:
    """The maps.json, environment.txt and information.log of the training in progress, staged in the
    split's tmp/: the MAPS-level files keep describing the last finished training (whose models are in
    place) until `publish_training`. The staged log holds the header and this training's events
    (`event`: the line logged instead of 'training started' / 'training resumed after epoch <e>')."""
    atomic.write_json(maps.staged_maps_json(split), parameters)
    atomic.write_text(maps.staged_environment_txt(split), environment_text())
    header = information_header(parameters, network)
    path = maps.staged_information_log(split)
    old = path.read_text() if path.is_file() else ""
    if resumed_after is None or not old.startswith(header):
        atomic.write_text(path, header)
    if event is None:
        started = (
            "training started" if resumed_after is None else f"training resumed after epoch {resumed_after}"
        )
        event = f"split-{split}: {started}"
    append_information(maps, split, event)


def append_information(maps: MapsLayout, split: int, line: str) -> None:
    """Add one dated line to the staged information.log of a training (read, extend, rewrite)."""
    path = maps.staged_information_log(split)
    old = path.read_text() if path.is_file() else ""
    atomic.write_text(path, f"{old}{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


_EVENT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")


def _merge_information(staged: str, published: str) -> str:
    """information.log after a training: the published log with the training's events appended when
    the header (versions, architecture) is the same, else the training's own log."""
    lines = staged.splitlines(keepends=True)
    n_events = 0
    while n_events < len(lines) and _EVENT.match(lines[len(lines) - 1 - n_events]):
        n_events += 1
    header = "".join(lines[: len(lines) - n_events])
    events = "".join(lines[len(lines) - n_events :])
    return (published if published.startswith(header) else header) + events


def write_training_tsv(
    maps: MapsLayout, split: int, rows: list[dict[str, float]], network: int | None = None
) -> None:
    """The log of the training in progress (staged in tmp/ until the training finishes)."""
    atomic.write_tsv(maps.staged_training_tsv(split, network), pd.DataFrame(rows))


def trained_model(maps: MapsLayout, split: int, metric: str, network: int | None = None) -> Path:
    """The best-<metric> model of the training that just finished: still in tmp/, or already published
    (a run stopped halfway through `publish_training` and resumed)."""
    staged = maps.staged_best_model(split, metric, network)
    return staged if staged.is_file() else maps.best_model(split, metric, network)


def publish_training(
    maps: MapsLayout,
    split: int,
    metrics: list[str],
    tensorboard: bool = True,
    networks: int | None = None,
    *,
    all_models: bool = False,
    emissions: bool = False,
) -> None:
    """Put a finished training in place: its best models, their train and validation results and the
    reconstructions, training.tsv, TensorBoard events, environment.txt, information.log and maps.json
    move from tmp/, each move atomic. Run again after a stop halfway through, it completes the moves
    that were not made (tmp/ is removed after it). Result files of other steps (a group's saliency
    maps beside the validation results) are left where they are. `networks`: the count of a
    multi-network model (network-<k> models and logs); the models and logs of the other layout
    (single or more networks) that an earlier training left go. `all_models` (train.save_all_models)
    and `emissions` (train.calculate_emissions): see `_publish_run_options`."""
    nets: list[int | None] = [None] if networks is None else list(range(networks))
    moves = [
        (maps.staged_best_model(split, m, k), maps.best_model(split, m, k)) for m in metrics for k in nets
    ]
    results = maps.staged_results(split)
    if results.root.is_dir():
        moves += [
            (f, maps.root / f.relative_to(results.root))
            for f in sorted(results.root.rglob("*"))
            if f.is_file()
        ]
    moves += [(maps.staged_training_tsv(split, k), maps.training_tsv(split, k)) for k in nets]
    for staged, final in moves:
        if staged.is_file():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
    for phase, k in ((phase, k) for phase in ("train", "validation") for k in nets):
        staged, final = maps.staged_tensorboard_dir(split, phase, k), maps.tensorboard_dir(split, phase, k)
        if staged.is_dir() or not tensorboard:  # TensorBoard off: the last training's events go too
            _replace_dir(maps, split, staged, final)
    _remove_other_layout(maps, split, metrics, networks)
    _publish_run_options(maps, split, all_models, emissions)
    log = maps.staged_information_log(split)
    if log.is_file():
        with atomic.exclusive(maps.information_lock):  # another split's job may be merging its events
            published = maps.information_log.read_text() if maps.information_log.is_file() else ""
            atomic.write_text(maps.information_log, _merge_information(log.read_text(), published))
            log.unlink()
    for staged, final in (
        (maps.staged_environment_txt(split), maps.environment_txt),
        (maps.staged_maps_json(split), maps.maps_json),  # last: it names the models now in place
    ):
        if staged.is_file():
            os.replace(staged, final)


def _publish_run_options(maps: MapsLayout, split: int, all_models: bool, emissions: bool) -> None:
    """The every-epoch models replace the split's all_models/ (without save_all_models, the last
    training's go: they belong to other weights), the emissions table the split's emissions.csv (the
    same), and the profiler traces join the MAPS's profiler/ (ClinicaDL keeps one folder per run)."""
    staged, final = maps.staged_all_models_dir(split), maps.all_models_dir(split)
    if staged.is_dir() or not all_models:
        _replace_dir(maps, split, staged, final)
    table = maps.staged_emissions_csv(split)
    if table.is_file():
        os.replace(table, maps.emissions_csv(split))
    elif not emissions:
        maps.emissions_csv(split).unlink(missing_ok=True)
    traces = maps.staged_profiler_dir(split)
    for trace in sorted(traces.rglob("*")) if traces.is_dir() else []:
        if trace.is_file():
            moved = maps.profiler_dir / trace.relative_to(traces)
            moved.parent.mkdir(parents=True, exist_ok=True)
            os.replace(trace, moved)


def _remove_other_layout(maps: MapsLayout, split: int, metrics: list[str], networks: int | None) -> None:
    """The best models and logs of another layout than the one just published (single network vs
    `networks` networks), left by an earlier training of the split."""
    kept = range(networks or 0)
    files = [p for m in metrics for k, p in maps.best_network_models(split, m) if k not in kept]
    names = {network_name(k) for k in kept}
    folders = [p for p in maps.training_logs(split).glob("network-*") if p.name not in names]
    if networks is not None:
        files += [maps.best_model(split, m) for m in metrics] + [maps.training_tsv(split)]
        folders.append(maps.tensorboard_dir(split, "train").parent)  # the single network's events
    for path in files:
        path.unlink(missing_ok=True)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _replace_dir(maps: MapsLayout, split: int, staged: Path, final: Path) -> None:
    """Replace folder `final` by `staged`, or remove it without one: the old folder goes to
    tmp/replaced/ (removed with tmp/), so that a stop halfway leaves both folders for the next run."""
    if final.is_dir():
        trash = maps.replaced_dir(split) / final.relative_to(maps.split_dir(split))
        trash.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
    if staged.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)


@torch.no_grad()
def write_reconstructions(
    maps: MapsLayout,
    split: int,
    phase: str,
    network: nn.Module,
    dataset,
    device: torch.device,
    count: int = 3,
) -> list[Path]:
    """input-<k>.nii.gz / output-<k>.nii.gz of the first `count` images of `dataset` (image mode),
    with the header of each source NIfTI (affine, qform/sform codes, units: inference/nifti_out.py)."""
    from neuroexec.inference.nifti_out import save_map

    network.eval()
    written = []
    for k in range(min(count, len(dataset))):
        item = dataset[k]
        image = item["image"]
        output = network(image.unsqueeze(0).to(device)).float().cpu()[0]
        layout = dataset.layouts[k]
        nifti = layout.find_nifti(item["participant_id"], item["session_id"], dataset.uncropped)
        source = nib.load(str(nifti[0])) if nifti else None
        for kind, tensor in (("input", image), ("output", output)):
            path = maps.reconstruction_file(split, phase, kind, k)
            if source is not None:
                save_map(path, tensor[0].numpy(), source, source.affine)
            else:
                atomic.save_nifti(path, tensor[0].numpy(), np.eye(4))
            written.append(path)
    return written
