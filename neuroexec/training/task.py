"""What a `model.M.train[split-i]` step works on: one split of one model, and the transfer source.

The task gives the step its config slice (everything that changes the trained weights, fingerprinted by
the plan), its input files, the key files it leaves behind and the key an interrupted run is resumed by;
`training/run.py` trains it. The split tables it reads are the split step's (groups/ of the MAPS).

>>> from neuroexec.spec import load_spec
>>> toml = 'version = 1\\n[datasets.demo]\\ngenerate = { subjects = 8, resolution_mm = 8 }\\n'
>>> _ = Path("spec.toml").write_text(toml + '[models.cnn]\\nmaps = "maps/cnn"\\ndataset = "demo"\\n')
>>> spec = load_spec(Path("spec.toml"))
>>> model = spec.models["cnn"]
>>> TrainTask(model, spec.datasets["demo"], 0, None, None).config() == training_config(model)
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import (
    ArchitectureOptions,
    Compute,
    Dataset,
    Model,
    Train,
    Transfer,
    as_config,
    canonical_metric,
)
from neuroexec.training import resume


def result_compute(c: Compute) -> dict:
    """Compute settings that change a trained model (workers, device and kernels do not); amp's type
    only when amp is on and it is not auto's; the compensation of a deterministic run when it is not
    the default (cuBLAS's workspace may change its choice of kernels, hence the float sums on CUDA); the
    CPU threads when set (their number changes float sums on the CPU)."""
    out = {"seed": c.seed, "deterministic": c.deterministic, "amp": c.amp, "batch_size": c.batch_size}
    if c.threads is not None:
        out["threads"] = c.threads
    if c.amp and c.amp_dtype != "auto":
        out["amp_dtype"] = c.amp_dtype
    if c.deterministic and c.compensation != "memory":
        out["compensation"] = c.compensation
    return out


# Settings added after models were first fingerprinted: in the config slice only when they differ from
# their defaults, so that the fingerprints already recorded stay the same.
_LATER_TRAIN = ("loss", "adaptive_learning_rate", "scheduler", "evaluation_steps", "save_all_models", "sampler",
                "data_augmentation")  # fmt: skip
# Train settings that observe a training without changing its weights: never in the slice.
OBSERVERS = ("profiler", "track_exp", "calculate_emissions")
_LATER_MODEL = ("label_code", "architecture_options", "size_reduction_factor")


def train_config(train: Train, default_loss: str | None = None) -> dict:
    """The [train] table's part of the slice: the settings of the first version, the later ones when
    set, never the observers. A loss equal to the model's default (`default_loss`) counts as unset:
    writing the default out does not retrain."""
    defaults = as_config(Train())
    if default_loss is not None and train.loss == default_loss:
        train = replace(train, loss=None)
    return {
        k: v
        for k, v in as_config(train).items()
        if k not in OBSERVERS and (k not in _LATER_TRAIN or v != defaults[k])
    }


def default_loss(model: Model) -> str:
    """The loss the model trains with when train.loss is not set: a VAE's own default (VAEGaussianLoss,
    nn/vae_losses.py), else the task's (CrossEntropyLoss for classification, MSELoss otherwise)."""
    from neuroexec import losses
    from neuroexec.nn import vae_losses

    return vae_losses.default_loss(model.architecture) or losses.DEFAULT_LOSS[model.task]


def _later_model_settings(model: Model) -> dict:
    defaults = {"label_code": None, "architecture_options": as_config(ArchitectureOptions()),
                "size_reduction_factor": None}  # fmt: skip
    values = {k: as_config(getattr(model, k)) for k in _LATER_MODEL}
    return {k: v for k, v in values.items() if v != defaults[k]}


def _architecture_source(name: str) -> dict:
    """A network of your own enters the slice with its source files' hash (editing it retrains); a
    registry architecture never (its code is neuroexec's, versioned with it)."""
    from neuroexec.nn import custom, registry

    if name in registry.REGISTRY or not custom.is_custom(name):
        return {}
    return {"architecture_source": custom.source_hash(name)}


def _transfer_config(transfer: Transfer | None) -> dict | None:
    if transfer is None:
        return None
    out = as_config(transfer)
    if not transfer.nb_unfrozen_layer:
        del out["nb_unfrozen_layer"]
    return out


def training_config(model: Model) -> dict:
    """The training config slice: everything that changes the trained weights. `multi_network`, the
    roi and the slice settings only when set, so that the fingerprints already recorded stay the same
    (a slice model's `discarded` is in no extract step's id: a change must change this slice)."""
    optional = {"multi_network": True} if model.multi_network else {}
    optional |= _later_model_settings(model)
    optional |= _architecture_source(model.architecture)
    optional |= {name: as_config(part) for name, part in (("roi", model.roi), ("slice", model.slice)) if part}
    if model.selection_threshold:  # the train and validation image levels it writes
        optional["selection_threshold"] = model.selection_threshold
    return {
        "dataset": model.dataset,
        "task": model.task,
        "mode": model.mode,
        "patch": as_config(model.patch) if model.patch else None,
        "label": model.label,
        "diagnoses": list(model.diagnoses or []),
        "architecture": model.architecture,
        "dropout": model.dropout,
        "transfer": _transfer_config(model.transfer),
        "train": train_config(model.train, default_loss(model)),
        "compute": result_compute(model.compute),
        **optional,
    }


def split_frames(maps_root: Path, split: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) participants of one split, as the split step recorded them in the MAPS."""
    maps = MapsLayout(maps_root)
    read = lambda p: pd.read_csv(p, sep="\t", dtype={"participant_id": str, "session_id": str})  # noqa: E731
    return read(maps.split_group_tsv("train", split)), read(maps.split_group_tsv("validation", split))


def published_networks(maps: MapsLayout) -> int:
    """`num_networks` of the multi-network model whose maps.json is in place (0 without one)."""
    try:
        parameters = json.loads(maps.maps_json.read_text())
    except (OSError, ValueError):
        return 0
    if not isinstance(parameters, dict) or not parameters.get("multi_network"):
        return 0
    count = parameters.get("num_networks")
    return count if isinstance(count, int) else 0


@dataclass(frozen=True)
class TrainTask:
    model: Model
    dataset: Dataset
    split: int
    transfer_from: Path | None  # the source model file (another model's best, or a MAPS's)
    transfer_maps: Path | None  # the source MAPS folder (its maps.json says autoencoder or CNN)
    # Whether a step of the same spec trains the transfer source (then it is a dependency, not an input).
    transfer_trained: bool = False
    # A multi-network model's network that this run trains alone, staged but not published (`--target
    # 'model.M.train[split-i,network-k]'`); None: the whole split (training/networks.py).
    network: int | None = None

    @property
    def maps(self) -> MapsLayout:
        return MapsLayout(self.model.maps)

    def config(self) -> dict:
        return training_config(self.model)

    def inputs(self) -> tuple[Path, ...]:
        """The transfer source, when no step of the spec makes it (a pretrained model, another MAPS),
        and the pretrained-weights file (architecture_options.weights: resnet18's ImageNet weights)."""
        weights = self.model.architecture_options.weights
        pretrained = (weights,) if weights is not None else ()
        if self.transfer_from is None or self.transfer_trained:
            return pretrained
        return (self.transfer_from, *pretrained)

    def outputs(self) -> list[Path]:
        """maps.json, the training log and the best model of each selection metric (of each network of
        a multi-network model: as many as the maps.json in place says, at least one)."""
        maps = self.maps
        metrics = dict.fromkeys(canonical_metric(m) for m in self.model.train.selection_metrics)
        networks: list[int | None] = [None]
        if self.model.multi_network:
            networks = list(range(max(1, published_networks(maps))))
        logs = [maps.training_tsv(self.split, k) for k in networks]
        return [maps.maps_json, *logs] + [
            maps.best_model(self.split, m, k) for m in metrics for k in networks
        ]

    @property
    def published_later(self) -> str:
        """What a network target's plan and run say of the split: another apply publishes it."""
        return f"the split is published by a later apply of model.{self.model.name}.train[split-{self.split}]"

    def resume_key(self, upstream: Mapping[str, str]) -> str:
        """The key an interrupted run of this task is resumed by (see training.resume.run_key)."""
        inputs = [self.transfer_from] if self.transfer_from is not None else []
        inputs += [self.model.architecture_options.weights] if self.model.architecture_options.weights else []
        return resume.run_key(self.config(), self.split, upstream, inputs)

    def split_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, validation) participants of this split, as recorded in the MAPS."""
        return split_frames(self.model.maps, self.split)


def network_names(networks) -> str:
    """`network-0, network-2`: the networks named in a line.

    >>> network_names({2, 0})
    'network-0, network-2'
    """
    return ", ".join(f"network-{k}" for k in sorted(networks))
