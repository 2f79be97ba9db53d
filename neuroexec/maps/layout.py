"""Every path inside a MAPS folder is built here, and only here (ClinicaDL 1.x layout, FORMATS.md).

>>> m = MapsLayout(Path("maps/cnn"))
>>> m.best_model(0, "loss")
PosixPath('maps/cnn/split-0/best-loss/model.pth.tar')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuroexec import records


def network_name(network: int) -> str:
    """ClinicaDL's name of network k of a multi-network model: `network-<k>`."""
    return f"network-{int(network)}"


def model_file_name(network: int | None = None) -> str:
    """`model.pth.tar`, or `network-<k>_model.pth.tar` for network k of a multi-network model."""
    return "model.pth.tar" if network is None else f"{network_name(network)}_model.pth.tar"


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

    @property
    def is_maps(self) -> bool:
        """True when the folder records a model's parameters: maps.json, or the older generation's
        commandline.json."""
        return self.maps_json.is_file() or LegacyMapsLayout(self.root).commandline_json.is_file()

    def caps_directory(self, dataset) -> Path:
        """maps.json `caps_directory` of a model trained on `dataset` (a spec Dataset): its CAPS, or for
        several cohorts the cohort table above."""
        return self.caps_cohorts_tsv if dataset.multi_cohort else Path(dataset.caps)

    # --- neuroexec's own files (ignored by ClinicaDL) ---------------------------------------------
    @property
    def neuroexec_dir(self) -> Path:
        return records.records_dir(self.root)

    @property
    def state_file(self) -> Path:
        return records.state_file(self.root)

    @property
    def lock_file(self) -> Path:
        return records.lock_file(self.root)

    @property
    def information_lock(self) -> Path:
        """Held while a finished training merges its events into information.log (splits finish side by side)."""
        return self.neuroexec_dir / "information.lock"

    def command_spec(self, name: str) -> Path:
        """The spec a ClinicaDL-style command wrote and applied, `<name>.toml` (`train`, `predict-<group>`)."""
        return self.neuroexec_dir / f"{name}.toml"

    @property
    def participants_copy(self) -> Path:
        """The participants TSV `neuroexec train` gathers from ClinicaDL's split directory."""
        return self.neuroexec_dir / "participants.tsv"

    def multi_cohort_participants(self, i: int) -> Path:
        """`neuroexec train --multi_cohort`: the training sessions of the i-th cohort kept, gathered from its
        split directory."""
        return self.neuroexec_dir / "multi_cohort" / f"cohort-{i}.tsv"

    @property
    def multi_cohort_table(self) -> Path:
        """`neuroexec train --multi_cohort`: the TSV of the cohorts kept (cohort, path of its split directory,
        diagnoses kept), which maps.json's tsv_path names as ClinicaDL's does."""
        return self.neuroexec_dir / "multi_cohort" / "tsv.tsv"

    @property
    def multi_cohort_splits(self) -> Path:
        """`neuroexec train --multi_cohort`: one split directory of every cohort's rows (split-<i>/)."""
        return self.neuroexec_dir / "multi_cohort" / "splits"

    def group_participants_copy(self, group: str) -> Path:
        """A copy of groups/<group>/data.tsv that a group spec redefined from the MAPS reads."""
        return self.neuroexec_dir / "groups" / group / "participants.tsv"

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

    def split_group_tsvs(self, group: str) -> list[Path]:
        """The `groups/<group>/split-<i>/data.tsv` files present."""
        return sorted(self.group_dir(group).glob("split-*/data.tsv"))

    # --- splits ----------------------------------------------------------------------------------
    @staticmethod
    def split_scope(split: int) -> str:
        """The lock scope of a split's training and results: the name of its folder, `split-<i>`."""
        return f"split-{split}"

    def split_dir(self, split: int) -> Path:
        return self.root / self.split_scope(split)

    def splits(self) -> list[int]:
        """The splits with a `split-<i>` folder, sorted."""
        return sorted(int(p.name[len("split-") :]) for p in self.root.glob("split-*") if p.name[6:].isdigit())

    def training_logs(self, split: int, network: int | None = None) -> Path:
        """`training_logs/`, or `training_logs/network-<k>/` for network k of a multi-network model."""
        logs = self.split_dir(split) / "training_logs"
        return logs if network is None else logs / network_name(network)

    def training_tsv(self, split: int, network: int | None = None) -> Path:
        return self.training_logs(split, network) / "training.tsv"

    def tensorboard_dir(self, split: int, phase: str, network: int | None = None) -> Path:
        """phase: 'train' or 'validation'."""
        return self.training_logs(split, network) / "tensorboard" / phase

    def tmp_dir(self, split: int) -> Path:
        return self.split_dir(split) / "tmp"

    @staticmethod
    def network_scope(split: int, network: int) -> str:
        """The lock scope of network k of a split's multi-network training: `split-<i>/network-<k>`."""
        return f"{MapsLayout.split_scope(split)}/{network_name(network)}"

    def _resume_dir(self, split: int, network: int | None) -> Path:
        """tmp/, or tmp/network-<k>/ for network k of a multi-network model (networks train side by side)."""
        return self.tmp_dir(split) if network is None else self.tmp_dir(split) / network_name(network)

    def checkpoint(self, split: int, network: int | None = None) -> Path:
        return self._resume_dir(split, network) / "checkpoint.pth.tar"

    def optimizer_checkpoint(self, split: int, network: int | None = None) -> Path:
        return self._resume_dir(split, network) / "optimizer.pth.tar"

    def resume_state(self, split: int, network: int | None = None) -> Path:
        """neuroexec's full resume record (scheduler, RNG states, best values), beside ClinicaDL's two."""
        return self._resume_dir(split, network) / "resume.pth.tar"

    def staged_best_model(self, split: int, metric: str, network: int | None = None) -> Path:
        """Where a training keeps its best-<metric> model until it finishes (then moved to best_model),
        so that an interrupted training never leaves its models beside another training's results."""
        return self.tmp_dir(split) / f"best-{metric}" / model_file_name(network)

    def staged_training_tsv(self, split: int, network: int | None = None) -> Path:
        """The log of a training in progress (moved to training_tsv when it finishes)."""
        staged = self.tmp_dir(split) if network is None else self.tmp_dir(split) / network_name(network)
        return staged / "training.tsv"

    def staged_maps_json(self, split: int) -> Path:
        """The maps.json of a training in progress: it replaces maps_json when the training finishes, so
        that maps.json always describes the models in place."""
        return self.tmp_dir(split) / "maps.json"

    def staged_environment_txt(self, split: int) -> Path:
        return self.tmp_dir(split) / "environment.txt"

    def staged_information_log(self, split: int) -> Path:
        """The header and the events of a training in progress (merged into information_log at its end)."""
        return self.tmp_dir(split) / "information.log"

    def staged_tensorboard_dir(self, split: int, phase: str, network: int | None = None) -> Path:
        """The TensorBoard events of a training in progress (they replace tensorboard_dir at its end)."""
        staged = self.tmp_dir(split) if network is None else self.tmp_dir(split) / network_name(network)
        return staged / "tensorboard" / phase

    def staged_network_done(self, split: int, network: int) -> Path:
        """The record that network k of a multi-network training has finished (its files wait in tmp/)."""
        return self.tmp_dir(split) / network_name(network) / "finished.json"

    def staged_results(self, split: int) -> MapsLayout:
        """A MAPS-shaped folder in tmp/ where a finished training writes the train and validation results
        of its best models and its reconstructions, before they are moved into place with the models."""
        return MapsLayout(self.tmp_dir(split) / "results")

    def replaced_dir(self, split: int) -> Path:
        """Where publishing a training puts the folders it replaces, until it removes them."""
        return self.tmp_dir(split) / "replaced"

    # --- run-level options: every epoch's model, the profiler trace, trackers, emissions -------------
    def all_models_dir(self, split: int) -> Path:
        """`split-<i>/all_models/`: the model of every epoch (train.save_all_models), ClinicaDL's folder."""
        return self.split_dir(split) / "all_models"

    def staged_all_models_dir(self, split: int) -> Path:
        """The every-epoch models of a training in progress (they replace all_models_dir at its end)."""
        return self.tmp_dir(split) / "all_models"

    @staticmethod
    def epoch_model_name(epoch: int, network: int | None = None) -> str:
        """ClinicaDL's `model_epoch_<e>.pth.tar` (e from 0); `network-<k>_model_epoch_<e>.pth.tar` for
        network k of a multi-network model (ClinicaDL gives every network the same name)."""
        name = f"model_epoch_{int(epoch)}.pth.tar"
        return name if network is None else f"{network_name(network)}_{name}"

    def staged_epoch_model(self, split: int, epoch: int, network: int | None = None) -> Path:
        return self.staged_all_models_dir(split) / self.epoch_model_name(epoch, network)

    def epoch_model(self, split: int, epoch: int, network: int | None = None) -> Path:
        return self.all_models_dir(split) / self.epoch_model_name(epoch, network)

    def staged_epoch_models(self, split: int, network: int | None = None) -> list[Path]:
        """The every-epoch models in tmp/ of the training (of network k of a multi-network model)."""
        pattern = self.epoch_model_name(0, network).replace("_0.", "_*.")
        return sorted(self.staged_all_models_dir(split).glob(pattern))

    @property
    def profiler_dir(self) -> Path:
        """`profiler/`: ClinicaDL's folder of torch.profiler traces (train.profiler), one folder per run."""
        return self.root / "profiler"

    def staged_profiler_dir(self, split: int) -> Path:
        """The traces of a training in progress, moved into profiler_dir (same relative path) at its end."""
        return self.tmp_dir(split) / "profiler"

    def staged_profiler_trace(self, split: int, stamp: str, network: int | None = None) -> Path:
        """`tmp/profiler/clinicadl_<stamp>/split-<i>[_network-<k>].pt.trace.json`: a training's trace in
        its run's folder (ClinicaDL's `clinicadl_<HH:MM:SS>`), Chrome's trace format."""
        who = f"split-{split}" + ("" if network is None else f"_{network_name(network)}")
        return self.staged_profiler_dir(split) / f"clinicadl_{stamp}" / f"{who}.pt.trace.json"

    @property
    def mlflow_store(self) -> Path:
        """`mlflow.db`: the local MLflow store (SQLite) of train.track_exp = "mlflow", one run per training."""
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        """`mlruns/`: the artifact folder of the MAPS's MLflow experiment."""
        return self.root / "mlruns"

    @property
    def wandb_dir(self) -> Path:
        """`wandb/`: W&B's offline runs of train.track_exp = "wandb" (W&B names this folder itself, in
        the folder it is given: the MAPS)."""
        return self.root / "wandb"

    def staged_tracker_run(self, split: int, tracker: str, network: int | None = None) -> Path:
        """The id of the train.track_exp run (`tracker`: "mlflow" or "wandb") of a training in progress
        (of network k of a multi-network model), which a resumed training reopens; it goes with tmp/."""
        staged = self.tmp_dir(split) if network is None else self.tmp_dir(split) / network_name(network)
        return staged / f"{tracker}_run_id.txt"

    def staged_emissions_csv(self, split: int) -> Path:
        """CodeCarbon's table of a training in progress (train.calculate_emissions)."""
        return self.tmp_dir(split) / "emissions.csv"

    def emissions_csv(self, split: int) -> Path:
        """`split-<i>/emissions.csv`: CodeCarbon's estimate of the energy and CO2 of the split's training."""
        return self.split_dir(split) / "emissions.csv"

    def best_dir(self, split: int, metric: str) -> Path:
        return self.split_dir(split) / f"best-{metric}"

    def best_model(self, split: int, metric: str, network: int | None = None) -> Path:
        """`best-<metric>/model.pth.tar`, or ClinicaDL's `network-<k>_model.pth.tar` (multi-network)."""
        return self.best_dir(split, metric) / model_file_name(network)

    def best_network_models(self, split: int, metric: str) -> list[tuple[int, Path]]:
        """The (k, path) of every `network-<k>_model.pth.tar` in best-<metric>/, by k."""
        found = []
        for path in self.best_dir(split, metric).glob("network-*_model.pth.tar"):
            k = path.name[len("network-") : -len("_model.pth.tar")]
            if k.isdigit():
                found.append((int(k), path))
        return sorted(found)

    def best_metrics(self, split: int) -> list[str]:
        """The selection metrics with a `best-<metric>` folder in the split, sorted by folder name."""
        found = sorted(p for p in self.split_dir(split).glob("best-*") if p.is_dir())
        return [p.name[len("best-") :] for p in found]

    def reconstruction_dir(self, split: int, phase: str) -> Path:
        """autoencoder_reconstruction/<train|validation> (`visualization = true`)."""
        return self.split_dir(split) / "autoencoder_reconstruction" / phase

    def reconstruction_file(self, split: int, phase: str, kind: str, index: int) -> Path:
        """kind: 'input' or 'output' -> `<kind>-<index>.nii.gz`, the index-th image of the phase."""
        return self.reconstruction_dir(split, phase) / f"{kind}-{index}.nii.gz"

    # --- results of one data group for one model -------------------------------------------------
    def result_dir(self, split: int, metric: str, group: str) -> Path:
        return self.best_dir(split, metric) / group

    def prediction_tsv(self, split: int, metric: str, group: str, level: str) -> Path:
        """level: 'image', 'patch', ..."""
        return self.result_dir(split, metric, group) / f"{group}_{level}_level_prediction.tsv"

    def prediction_tsvs(self, split: int, metric: str, group: str) -> list[Path]:
        """The `<group>_<level>_level_prediction.tsv` files present, every level."""
        return sorted(self.result_dir(split, metric, group).glob(f"{group}_*_level_prediction.tsv"))

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

    def latent_dir(self, split: int, metric: str, group: str) -> Path:
        """ClinicaDL's `latent_tensors/` (predict --save_latent_tensor)."""
        return self.result_dir(split, metric, group) / "latent_tensors"

    def latent_file(
        self, split: int, metric: str, group: str, participant: str, session: str, mode: str, index: int
    ) -> Path:
        """`<sub>_<ses>_<mode>-<i>_latent.pt`: an autoencoder's code of one item."""
        return self.latent_dir(split, metric, group) / f"{participant}_{session}_{mode}-{index}_latent.pt"

    def nifti_dir(self, split: int, metric: str, group: str) -> Path:
        return self.result_dir(split, metric, group) / "nifti_images"

    def nifti_file(
        self, split: int, metric: str, group: str, participant: str, session: str, kind: str
    ) -> Path:
        name = f"{participant}_{session}_image_{kind}.nii.gz"
        return self.nifti_dir(split, metric, group) / name

    def interpret_dir(self, split: int, metric: str, group: str, name: str) -> Path:
        return self.result_dir(split, metric, group) / f"interpret-{name}"

    def interpret_data_tsv(self, split: int, metric: str, group: str, name: str) -> Path:
        """The sessions the maps were computed on (after keep_true), with their predictions."""
        return self.interpret_dir(split, metric, group, name) / "data.tsv"

    def mean_map(
        self, split: int, metric: str, group: str, name: str, mode: str, index: int, ext: str = "pt"
    ) -> Path:
        """`mean_<mode>-<index>_map.<ext>`: the tensor (pt), or its NIfTI (nii.gz)."""
        return self.interpret_dir(split, metric, group, name) / f"mean_{mode}-{index}_map.{ext}"

    def mean_maps(self, split: int, metric: str, group: str, name: str, mode: str) -> list[Path]:
        """The `mean_<mode>-<k>_map.pt` files present, every k."""
        return sorted(self.interpret_dir(split, metric, group, name).glob(f"mean_{mode}-*_map.pt"))

    def mean_map_figure(self, split: int, metric: str, group: str, name: str, mode: str, index: int) -> Path:
        """The picture of mean_map (`figure = true`)."""
        return self.interpret_dir(split, metric, group, name) / f"mean_{mode}-{index}_map.png"

    def std_map(
        self, split: int, metric: str, group: str, name: str, mode: str, index: int, ext: str = "pt"
    ) -> Path:
        return self.interpret_dir(split, metric, group, name) / f"std_{mode}-{index}_map.{ext}"

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

    def individual_nifti(
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
        """The NIfTI beside `individual_map` (interpret save_nifti, ClinicaDL's `--save_nifti`):
        `<participant>_<session>_<mode>-<index>_map.nii.gz`.

        >>> MapsLayout(Path("m")).individual_nifti(0, "loss", "test", "g", "sub-1", "ses-M000", "roi", 1).name
        'sub-1_ses-M000_roi-1_map.nii.gz'
        """
        where = (split, metric, group, name, participant, session, mode, index)
        return self.individual_map(*where).with_suffix(".nii.gz")

    def interpret_summary(self, split: int, metric: str, group: str, name: str) -> Path:
        return self.interpret_dir(split, metric, group, name) / "summary.json"

    def interpret_summaries(self, split: int, metric: str, group: str) -> list[Path]:
        """The summary.json of every `interpret-<name>/` of the result folder, sorted."""
        return sorted(self.result_dir(split, metric, group).glob("interpret-*/summary.json"))


LEGACY_METRICS = {"BA": "balanced_accuracy"}  # how the older generation spells neuroexec's metric names


def legacy_metric(metric: str) -> str:
    """The older generation's name of a selection metric (`BA` -> `balanced_accuracy`)."""
    return LEGACY_METRICS.get(metric, metric)


def metric_of_legacy(name: str) -> str:
    """neuroexec's name of an older-generation selection metric (`balanced_accuracy` -> `BA`)."""
    return {v: k for k, v in LEGACY_METRICS.items()}.get(name, name)


@dataclass(frozen=True)
class LegacyMapsLayout:
    """The older generation's MAPS (ClinicaDL before 1.0: commandline.json and `fold-<i>/`), which compat/
    reads and the older interpret command writes into. Metrics are given by neuroexec's names.

    >>> LegacyMapsLayout(Path("maps/old")).best_model(0, "BA")
    PosixPath('maps/old/fold-0/models/best_balanced_accuracy/model_best.pth.tar')
    """

    root: Path

    @property
    def commandline_json(self) -> Path:
        return self.root / "commandline.json"

    def fold_dir(self, split: int) -> Path:
        return self.root / f"fold-{split}"

    def folds(self) -> list[int]:
        """The splits with a `fold-<i>` folder, sorted."""
        return sorted(int(p.name[len("fold-") :]) for p in self.root.glob("fold-*") if p.name[5:].isdigit())

    def models_dir(self, split: int) -> Path:
        return self.fold_dir(split) / "models"

    def best_model(self, split: int, metric: str) -> Path:
        return self.models_dir(split) / f"best_{legacy_metric(metric)}" / "model_best.pth.tar"

    def best_dir_names(self, split: int) -> list[str]:
        """The names of the `models/best_<metric>` folders present, sorted."""
        return sorted(p.name for p in self.models_dir(split).glob("best_*") if p.is_dir())

    def best_models(self, split: int) -> list[tuple[str, Path]]:
        """(metric, model file) of every best model present, by neuroexec's metric names."""
        found = sorted(self.models_dir(split).glob("best_*/model_best.pth.tar"))
        return [(metric_of_legacy(p.parent.name[len("best_") :]), p) for p in found]

    def result_dir(self, split: int, metric: str) -> Path:
        """`fold-<i>/cnn_classification/best_<metric>/`: the predictions of the best model."""
        return self.fold_dir(split) / "cnn_classification" / f"best_{legacy_metric(metric)}"

    def prediction_tsv(self, split: int, metric: str, group: str, level: str) -> Path:
        return self.result_dir(split, metric) / f"{group}_{level}_level_prediction.tsv"

    def prediction_tsvs(self, split: int, group: str) -> list[Path]:
        """The `<group>_<level>_level_prediction.tsv` files of every best model and level present."""
        results = self.fold_dir(split) / "cnn_classification"
        return sorted(results.glob(f"best_*/{group}_*_level_prediction.tsv"))

    def gradients_dir(self, split: int, selection: str, name: str) -> Path:
        """`fold-<i>/gradients/<selection>/<name>/`; selection as the older interpret takes it (`best_loss`)."""
        return self.fold_dir(split) / "gradients" / selection / name

    def gradients_data_tsv(self, split: int, selection: str, name: str) -> Path:
        return self.gradients_dir(split, selection, name) / "data.tsv"

    def gradients_commandline_json(self, split: int, selection: str, name: str) -> Path:
        return self.gradients_dir(split, selection, name) / "commandline.json"

    def gradient_map(
        self,
        split: int,
        selection: str,
        name: str,
        ext: str,
        participant: str | None = None,
        session: str | None = None,
    ) -> Path:
        """`map.<ext>` (npy, nii.gz, jpg) of the group, or of one session (`<participant>/<session>/map.<ext>`)."""
        folder = self.gradients_dir(split, selection, name)
        if participant is not None:
            folder = folder / participant / str(session)
        return folder / f"map.{ext}"
