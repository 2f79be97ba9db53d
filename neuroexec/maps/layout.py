"""Every path inside a MAPS folder is built here, and only here (ClinicaDL 1.x layout, FORMATS.md).

>>> m = MapsLayout(Path("maps/cnn"))
>>> m.best_model(0, "loss")
PosixPath('maps/cnn/split-0/best-loss/model.pth.tar')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MapsLayout:
    root: Path

    # --- top level -------------------------------------------------------------------------------
    @property
    def maps_json(self) -> Path:
        return self.root / "maps.json"

    @property
    def environment_txt(self) -> Path:
        return self.root / "environment.txt"

    @property
    def information_log(self) -> Path:
        return self.root / "information.log"

    @property
    def caps_cohorts_tsv(self) -> Path:
        """Multi-cohort models: ClinicaDL's CAPS table (cohort, path), which maps.json caps_directory names."""
        return self.root / "caps_cohorts.tsv"

    def caps_directory(self, dataset) -> Path:
        """maps.json `caps_directory` of a model trained on `dataset` (a spec Dataset): its CAPS, or for
        several cohorts the cohort table above."""
        return self.caps_cohorts_tsv if dataset.multi_cohort else Path(dataset.caps)

    # --- neuroexec's own files (ignored by ClinicaDL) ---------------------------------------------
    @property
    def neuroexec_dir(self) -> Path:
        return self.root / ".neuroexec"

    @property
    def state_file(self) -> Path:
        return self.neuroexec_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.neuroexec_dir / "lock"

    @property
    def information_lock(self) -> Path:
        """Held while a finished training merges its events into information.log (splits finish side by side)."""
        return self.neuroexec_dir / "information.lock"

    # --- data groups -----------------------------------------------------------------------------
    @property
    def groups_dir(self) -> Path:
        return self.root / "groups"

    @property
    def train_validation_tsv(self) -> Path:
        return self.groups_dir / "train+validation.tsv"

    def group_dir(self, group: str) -> Path:
        return self.groups_dir / group

    def group_maps_json(self, group: str) -> Path:
        return self.group_dir(group) / "maps.json"

    def group_data_tsv(self, group: str) -> Path:
        return self.group_dir(group) / "data.tsv"

    def split_group_tsv(self, group: str, split: int) -> Path:
        """`groups/train/split-<i>/data.tsv` and `groups/validation/split-<i>/data.tsv`."""
        return self.group_dir(group) / f"split-{split}" / "data.tsv"

    def split_group_maps_json(self, group: str, split: int) -> Path:
        """`groups/<train|validation>/split-<i>/maps.json`: ClinicaDL reads the training groups' record here."""
        return self.group_dir(group) / f"split-{split}" / "maps.json"

    # --- splits ----------------------------------------------------------------------------------
    def split_dir(self, split: int) -> Path:
        return self.root / f"split-{split}"

    def training_logs(self, split: int) -> Path:
        return self.split_dir(split) / "training_logs"

    def training_tsv(self, split: int) -> Path:
        return self.training_logs(split) / "training.tsv"

    def tensorboard_dir(self, split: int, phase: str) -> Path:
        """phase: 'train' or 'validation'."""
        return self.training_logs(split) / "tensorboard" / phase

    def tmp_dir(self, split: int) -> Path:
        return self.split_dir(split) / "tmp"

    def checkpoint(self, split: int) -> Path:
        return self.tmp_dir(split) / "checkpoint.pth.tar"

    def optimizer_checkpoint(self, split: int) -> Path:
        return self.tmp_dir(split) / "optimizer.pth.tar"

    def resume_state(self, split: int) -> Path:
        """neuroexec's full resume record (scheduler, RNG states, best values), beside ClinicaDL's two."""
        return self.tmp_dir(split) / "resume.pth.tar"

    def staged_best_model(self, split: int, metric: str) -> Path:
        """Where a training keeps its best-<metric> model until it finishes (then moved to best_model),
        so that an interrupted training never leaves its models beside another training's results."""
        return self.tmp_dir(split) / f"best-{metric}" / "model.pth.tar"

    def staged_training_tsv(self, split: int) -> Path:
        """The log of a training in progress (moved to training_tsv when it finishes)."""
        return self.tmp_dir(split) / "training.tsv"

    def staged_maps_json(self, split: int) -> Path:
        """The maps.json of a training in progress: it replaces maps_json when the training finishes, so
        that maps.json always describes the models in place."""
        return self.tmp_dir(split) / "maps.json"

    def staged_environment_txt(self, split: int) -> Path:
        return self.tmp_dir(split) / "environment.txt"

    def staged_information_log(self, split: int) -> Path:
        """The header and the events of a training in progress (merged into information_log at its end)."""
        return self.tmp_dir(split) / "information.log"

    def staged_tensorboard_dir(self, split: int, phase: str) -> Path:
        """The TensorBoard events of a training in progress (they replace tensorboard_dir at its end)."""
        return self.tmp_dir(split) / "tensorboard" / phase

    def staged_results(self, split: int) -> MapsLayout:
        """A MAPS-shaped folder in tmp/ where a finished training writes the train and validation results
        of its best models and its reconstructions, before they are moved into place with the models."""
        return MapsLayout(self.tmp_dir(split) / "results")

    def replaced_dir(self, split: int) -> Path:
        """Where publishing a training puts the folders it replaces, until it removes them."""
        return self.tmp_dir(split) / "replaced"

    def best_dir(self, split: int, metric: str) -> Path:
        return self.split_dir(split) / f"best-{metric}"

    def best_model(self, split: int, metric: str) -> Path:
        return self.best_dir(split, metric) / "model.pth.tar"

    def reconstruction_dir(self, split: int, phase: str) -> Path:
        """autoencoder_reconstruction/<train|validation> (`visualization = true`)."""
        return self.split_dir(split) / "autoencoder_reconstruction" / phase

    # --- results of one data group for one model -------------------------------------------------
    def result_dir(self, split: int, metric: str, group: str) -> Path:
        return self.best_dir(split, metric) / group

    def prediction_tsv(self, split: int, metric: str, group: str, level: str) -> Path:
        """level: 'image', 'patch', ..."""
        return self.result_dir(split, metric, group) / f"{group}_{level}_level_prediction.tsv"

    def metrics_tsv(self, split: int, metric: str, group: str, level: str) -> Path:
        return self.result_dir(split, metric, group) / f"{group}_{level}_level_metrics.tsv"

    def description_log(self, split: int, metric: str, group: str) -> Path:
        return self.result_dir(split, metric, group) / "description.log"

    def tensors_dir(self, split: int, metric: str, group: str) -> Path:
        return self.result_dir(split, metric, group) / "tensors"

    def tensor_file(
        self,
        split: int,
        metric: str,
        group: str,
        participant: str,
        session: str,
        mode: str,
        index: int,
        kind: str,
    ) -> Path:
        """kind: 'input' or 'output' -> `<sub>_<ses>_<mode>-<i>_<kind>.pt`."""
        name = f"{participant}_{session}_{mode}-{index}_{kind}.pt"
        return self.tensors_dir(split, metric, group) / name

    def nifti_dir(self, split: int, metric: str, group: str) -> Path:
        return self.result_dir(split, metric, group) / "nifti_images"

    def nifti_file(
        self, split: int, metric: str, group: str, participant: str, session: str, kind: str
    ) -> Path:
        name = f"{participant}_{session}_image_{kind}.nii.gz"
        return self.nifti_dir(split, metric, group) / name

    def interpret_dir(self, split: int, metric: str, group: str, name: str) -> Path:
        return self.result_dir(split, metric, group) / f"interpret-{name}"

    def mean_map(self, split: int, metric: str, group: str, name: str, mode: str, index: int) -> Path:
        return self.interpret_dir(split, metric, group, name) / f"mean_{mode}-{index}_map.pt"

    def std_map(self, split: int, metric: str, group: str, name: str, mode: str, index: int) -> Path:
        return self.interpret_dir(split, metric, group, name) / f"std_{mode}-{index}_map.pt"

    def individual_map(
        self,
        split: int,
        metric: str,
        group: str,
        name: str,
        participant: str,
        session: str,
        mode: str,
        index: int,
    ) -> Path:
        fname = f"{participant}_{session}_{mode}-{index}_map.pt"
        return self.interpret_dir(split, metric, group, name) / fname

    def interpret_summary(self, split: int, metric: str, group: str, name: str) -> Path:
        return self.interpret_dir(split, metric, group, name) / "summary.json"
