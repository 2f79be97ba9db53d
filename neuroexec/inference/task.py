"""What a predict, save-tensors or interpret step works on: one data group, one model, one best model.

The task gives the step the base of its config slice (the group's data, the model, the split and the
selection metric; each kind adds its own settings), the checkpoint it reads (declared as the step's input
by construction, so a best model replaced by hand is noticed), and the participants it evaluates.

>>> from neuroexec.spec import load_spec
>>> toml = 'version = 1\\n[datasets.demo]\\ngenerate = { subjects = 8, resolution_mm = 8 }\\n'
>>> _ = Path("spec.toml").write_text(toml + '[models.cnn]\\nmaps = "maps/cnn"\\ndataset = "demo"\\n'
...                             '[groups.test]\\ndataset = "demo"\\nmodels = ["cnn"]\\n')
>>> spec = load_spec(Path("spec.toml"))
>>> task = GroupTask(spec.groups["test"], spec.models["cnn"], spec.datasets["demo"], 0, "loss")
>>> task.checkpoint.relative_to(Path.cwd())
PosixPath('maps/cnn/split-0/best-loss/model.pth.tar')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neuroexec.data.tasks import group_config
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.maps.info import MapsInfo, best_model_file, read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Dataset, Group, Interpretation, Model


@dataclass(frozen=True)
class GroupTask:
    """One group, one model, one best model (split and selection metric), and an interpretation."""

    group: Group
    model: Model
    dataset: Dataset | None  # the group's data (the model's training data for train / validation);
    # None only for the training groups of a pretrained MAPS (its maps.json names the CAPS)
    split: int
    metric: str
    interpretation: Interpretation | None = None

    @property
    def maps(self) -> MapsLayout:
        return MapsLayout(self.model.maps)

    def info(self) -> MapsInfo:
        return read_maps_info(self.model.maps)

    @property
    def checkpoint(self) -> Path:
        """The best model this task reads (either MAPS generation)."""
        return best_model_file(self.model.maps, self.split, self.metric)

    def config(self) -> dict:
        """What every result step's config holds; the step kind adds its own settings."""
        return {
            "group": group_config(self.group),
            "model": self.model.name,
            "split": self.split,
            "metric": self.metric,
        }

    def inputs(self) -> tuple[Path, ...] | NetworkModels:
        """The model read, by content: replaced by hand, it is noticed. A multi-network model's are
        its network files, listed each time they are hashed (`NetworkModels`)."""
        if self._multi_network():
            return NetworkModels(self.model.maps, self.split, self.metric)
        return (self.checkpoint,)

    def _multi_network(self) -> bool:
        """The spec's multi_network for a model it trains, else the MAPS's maps.json."""
        if not self.model.pretrained:
            return self.model.multi_network
        try:
            return self.info().multi_network
        except NeuroexecError:
            return False


@dataclass(frozen=True)
class NetworkModels:
    """The `network-<k>_model.pth.tar` files of one best model, listed when iterated: before the
    training that writes them a plan finds none, the record made after the step finds them all (their
    count is the data's, unknown before), so the next plan compares the same files.

    >>> list(NetworkModels(Path("maps/none"), 0, "loss"))
    []
    """

    maps_root: Path
    split: int
    metric: str

    def __iter__(self) -> Iterator[Path]:
        return iter(
            [path for _, path in MapsLayout(self.maps_root).best_network_models(self.split, self.metric)]
        )


def group_participants(task: GroupTask) -> pd.DataFrame:
    """The participants a result step evaluates: the group's data.tsv, or a split's training group."""
    maps = task.maps
    if task.group.from_training is not None:
        path = maps.split_group_tsv(task.group.from_training, task.split)
    else:
        path = maps.group_data_tsv(task.group.name)
    if not path.is_file():
        raise InputError(path, f"data group '{task.group.name}' has no data.tsv in this MAPS")
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
