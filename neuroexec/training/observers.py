"""What watches a training without changing it: TensorBoard, MLflow and W&B (train.track_exp), which
share one interface (`Observer`: each gets the points TensorBoard gets), the torch.profiler trace of
the first training steps (train.profiler) and CodeCarbon's energy estimate (train.calculate_emissions).

None of them is in a fingerprint (training/task.py OBSERVERS) and none draws a random number or
touches the network: a model trained with them is bit-identical to one trained without
(tests/training/test_observers.py). MLflow, W&B and CodeCarbon are optional packages (the extras
`neuroexec[track]` and `neuroexec[emissions]`, neuroexec/extras.py), imported only when asked for;
spec/checks.py refuses a spec asking for a missing one. All of them run on rank 0 only, and none needs
a network connection:

- TensorBoard: `split-<i>/training_logs/tensorboard/`, staged in tmp/ like every log of a training.
- MLflow: a local store in the MAPS (`mlflow.db`, artifacts in `mlruns/`); experiment
  `clinicadl-<MAPS name>`, one run per training (`split-<i>`), the maps.json keys as its parameters
  (ClinicaDL's, without preprocessing_dict). A resumed training reopens its run (the run id waits in
  tmp/ until the split is published), so one run holds every epoch. `mlflow ui --backend-store-uri sqlite:///<MAPS>/mlflow.db`.
- W&B: offline runs in `<MAPS>/wandb/` (project ClinicaDL, group the MAPS name); `wandb sync` uploads.
- The profiler (`profiler/clinicadl_<HH:MM:SS>/split-<i>.pt.trace.json`) and CodeCarbon
  (`split-<i>/emissions.csv`) write into the training's tmp/; the files move into place with it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import tempfile
import time
from pathlib import Path

import torch

from neuroexec import atomic
from neuroexec.errors import NeuroexecError
from neuroexec.extras import missing_package
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Train


def _module(package: str):
    """The optional package, imported now; a NeuroexecError naming its extra when it is missing."""
    why = missing_package(package)
    if why is not None:
        raise NeuroexecError(why)
    return importlib.import_module(package)


class Observer:
    """One place the training's metrics go: `log(phase, values, step)` for each point (phase 'train'
    or 'validation', ClinicaDL's global step: batches since the training began), `close(ended)` at the
    end: "finished", "interrupted" (Ctrl-C, SIGTERM: apply resumes it) or "failed"."""

    def log(self, phase: str, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def close(self, ended: str = "finished") -> None:
        pass


# the epoch's learning rate, logged with the train values (TensorBoard's train/learning_rate): no
# training.tsv column (its columns are ClinicaDL's), and no phase suffix for MLflow and W&B
LEARNING_RATE = "learning_rate"


def suffixed(phase: str, values: dict[str, float]) -> dict[str, float]:
    """training.tsv's names (`<metric>_train`, `<metric>_valid`), ClinicaDL's for MLflow and W&B too;
    the learning rate keeps its name.

    >>> suffixed("validation", {"loss": 0.5})
    {'loss_valid': 0.5}
    >>> suffixed("train", {"loss": 0.5, LEARNING_RATE: 0.001})
    {'loss_train': 0.5, 'learning_rate': 0.001}
    """
    suffix = "train" if phase == "train" else "valid"
    return {
        name if name == LEARNING_RATE else f"{name}_{suffix}": float(value) for name, value in values.items()
    }


class TensorBoard(Observer):
    """TensorBoard scalars of the training in progress, staged in tmp/tensorboard/train|validation
    (moved to training_logs/tensorboard/ when it finishes). A writer is opened at the first point, so
    a run with no epoch left to train adds no empty event file."""

    def __init__(self, maps: MapsLayout, split: int, network: int | None = None):
        self.maps, self.split, self.network = maps, split, network
        self.writers: dict = {}

    def log(self, phase: str, values: dict[str, float], step: int) -> None:
        writer = self.writers.get(phase)
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            folder = self.maps.staged_tensorboard_dir(self.split, phase, self.network)
            writer = self.writers[phase] = SummaryWriter(log_dir=str(folder))
        for name, value in values.items():
            writer.add_scalar(name, value, step)
        writer.flush()

    def close(self, ended: str = "finished") -> None:
        for writer in self.writers.values():
            writer.close()


class MLflow(Observer):
    """A run of the MAPS's MLflow experiment in its local store (no server, no network). Its id is kept
    in `run_file` (in the training's tmp/), so that a resumed training reopens the run it began."""

    def __init__(self, maps: MapsLayout, run_name: str, parameters: dict, run_file: Path):
        _module("mlflow")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=f"sqlite:///{maps.mlflow_store.resolve()}")
        kept = self._kept_run(run_file)
        if kept is not None:
            self.run_id = kept
            self.client.update_run(kept, status="RUNNING")
            return
        name = f"clinicadl-{maps.root.name}"
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else self._create(name, maps.mlflow_artifacts)
        self.run_id = self.client.create_run(experiment, run_name=run_name).info.run_id
        atomic.write_text(run_file, self.run_id)
        self._log_parameters(parameters)

    def _kept_run(self, run_file: Path) -> str | None:
        """The run an interrupted start of this training began, when its store still holds it."""
        from mlflow.exceptions import MlflowException

        run_id = run_file.read_text().strip() if run_file.is_file() else ""
        if not run_id:
            return None
        try:
            self.client.get_run(run_id)
        except MlflowException:  # the store was removed or replaced since
            return None
        return run_id

    def _log_parameters(self, parameters: dict) -> None:
        from mlflow.entities import Param

        kept = {k: v for k, v in parameters.items() if k != "preprocessing_dict"}
        params = [Param(k, json.dumps(v)[:6000]) for k, v in kept.items()]
        for first in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            self.client.log_batch(self.run_id, params=params[first : first + 100])

    def _create(self, name: str, artifacts: Path) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=artifacts.resolve().as_uri())
        except MlflowException:  # another split's job created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log(self, phase: str, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in suffixed(phase, values).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, ended: str = "finished") -> None:
        status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(ended, "FAILED")
        self.client.set_terminated(self.run_id, status=status)


class WandB(Observer):
    """An offline W&B run (WANDB_MODE=offline: nothing is sent) in `<MAPS>/wandb/`. Its id is kept in
    `run_file` (in the training's tmp/): a resumed training opens the run of that id again (offline, W&B
    writes it a second folder; `wandb sync` sends both to the one run id)."""

    def __init__(self, maps: MapsLayout, run_name: str, parameters: dict, run_file: Path):
        wandb = _module("wandb")
        maps.root.mkdir(parents=True, exist_ok=True)
        kept = run_file.read_text().strip() if run_file.is_file() else ""
        settings = wandb.Settings(console="off", save_code=False, disable_git=True, silent=True)
        self.run = wandb.init(
            mode="offline",
            dir=str(maps.wandb_dir.parent),  # W&B makes its `wandb/` folder there
            project="ClinicaDL",
            group=maps.root.name,
            name=run_name,
            id=kept or None,
            resume="allow",
            config=parameters,
            reinit="create_new",
            settings=settings,
        )
        if not kept:
            atomic.write_text(run_file, self.run.id)

    def log(self, phase: str, values: dict[str, float], step: int) -> None:
        self.run.log(suffixed(phase, values), step=step)

    def close(self, ended: str = "finished") -> None:
        self.run.finish(exit_code=0 if ended == "finished" else 1)


class Observers(Observer):
    """The observers of one training, fed together; closing closes every one of them."""

    def __init__(self, observers: list[Observer]):
        self.observers = observers

    def log(self, phase: str, values: dict[str, float], step: int) -> None:
        for observer in self.observers:
            observer.log(phase, values, step)

    def close(self, ended: str = "finished") -> None:
        with contextlib.ExitStack() as stack:  # every one is closed, even after one fails
            for observer in self.observers:
                stack.callback(observer.close, ended)

    def __enter__(self) -> Observers:
        return self

    def __exit__(self, kind, error, trace) -> None:
        """As a context manager, closes with how the block ended."""
        ended = (
            "finished" if kind is None else "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
        )
        self.close(ended)


def open_observers(
    stack: contextlib.ExitStack, maps: MapsLayout, split: int, network: int | None, train: Train, main: bool
) -> tuple[Observers, Profiler]:
    """The observers of one training (`network`: of a multi-network model), closed by `stack`: the
    metric observers (TensorBoard, train.track_exp's tracker), the profiler and the emissions tracker,
    on rank 0 (`main`); the other ranks get observers that do nothing."""
    who = f"split-{split}" + ("" if network is None else f" network-{network}")
    board = Observers(_metric_observers(maps, split, network, train, who) if main else [])
    stack.enter_context(board)
    trace = maps.staged_profiler_trace(split, profiler_stamp(), network) if train.profiler and main else None
    profiler = stack.enter_context(Profiler(trace))
    table = maps.staged_emissions_csv(split) if train.calculate_emissions and main else None
    stack.enter_context(Emissions(table, f"{maps.root.name} {who}", maps.information_lock))
    return board, profiler


def _metric_observers(
    maps: MapsLayout, split: int, network: int | None, train: Train, run_name: str
) -> list[Observer]:
    """TensorBoard (train.tensorboard) and the tracker of train.track_exp, whose run is `run_name`,
    with the staged maps.json as its parameters."""
    found: list[Observer] = [TensorBoard(maps, split, network)] if train.tensorboard else []
    if train.track_exp:
        staged = maps.staged_maps_json(split)
        parameters = json.loads(staged.read_text()) if staged.is_file() else {}
        tracker = {"mlflow": MLflow, "wandb": WandB}[train.track_exp]
        found.append(
            tracker(maps, run_name, parameters, maps.staged_tracker_run(split, train.track_exp, network))
        )
    return found


class Profiler:
    """torch.profiler over the first training steps, ClinicaDL's schedule: 2 steps skipped, 2 of
    warm-up, 30 recorded (fewer when the training is shorter), CPU and CUDA activity, memory; the
    trace (Chrome's format: chrome://tracing, Perfetto, TensorBoard's profiler) is written atomically
    to `path`. Without a path it does nothing. `step()` after each batch."""

    def __init__(self, path: Path | None):
        self.path, self.profile = path, None

    def __enter__(self) -> Profiler:
        if self.path is not None:
            from torch.profiler import ProfilerActivity, profile, schedule

            activities = [ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(ProfilerActivity.CUDA)
            self.profile = profile(
                activities=activities,
                schedule=schedule(wait=2, warmup=2, active=30, repeat=1),
                on_trace_ready=self._write,
                profile_memory=True,
            )
            self.profile.__enter__()
        return self

    def step(self) -> None:
        if self.profile is not None:
            self.profile.step()

    def __exit__(self, *exc) -> None:
        if self.profile is not None:
            self.profile.__exit__(*exc)
            self.profile = None

    def _write(self, profile) -> None:
        with tempfile.TemporaryDirectory() as folder:
            trace = Path(folder) / "trace.json"
            profile.export_chrome_trace(str(trace))
            with atomic.atomic_open(self.path, "wb") as out:
                out.write(trace.read_bytes())


def profiler_stamp() -> str:
    """ClinicaDL's name of a profiled run: the time of day it started, `HH:MM:SS`."""
    return time.strftime("%H:%M:%S")


class Emissions:
    """CodeCarbon's OfflineEmissionsTracker over the training (no network: without a country,
    CodeCarbon uses its world-average carbon intensity; set CODECARBON_COUNTRY_ISO_CODE for yours).
    Its row (duration, energy, kg CO2-eq) is appended to `table` (a CSV) atomically when it stops, under
    `lock` (the MAPS's information lock: the networks of one split may train side by side, each in its
    own process, and append to the same table). Without a table it does nothing."""

    def __init__(self, table: Path | None, project: str, lock: Path | None = None):
        self.table, self.project, self.lock = table, project, lock
        self.tracker, self.folder = None, None

    def __enter__(self) -> Emissions:
        if self.table is not None:
            codecarbon = _module("codecarbon")
            self.folder = tempfile.TemporaryDirectory()
            self.tracker = codecarbon.OfflineEmissionsTracker(
                project_name=self.project,
                output_dir=self.folder.name,
                output_file="codecarbon.csv",
                save_to_file=True,
                log_level="error",
            )
            self.tracker.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.tracker is None:
            return
        try:
            self.tracker.stop()
            written = Path(self.folder.name) / "codecarbon.csv"
            if written.is_file():
                lines = written.read_text().splitlines(keepends=True)
                with atomic.exclusive(self.lock) if self.lock else contextlib.nullcontext():
                    old = self.table.read_text() if self.table.is_file() else ""
                    atomic.write_text(self.table, old + "".join(lines[1:] if old else lines))
        finally:
            self.folder.cleanup()
            self.tracker = None
