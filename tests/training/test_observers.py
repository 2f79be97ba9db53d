"""The observers of a training (training/observers.py): the profiler's trace, MLflow's local store, W&B's
offline run and CodeCarbon's table are written where the README says, hold what training.tsv holds,
never enter a fingerprint and leave the model bit-identical to one trained without them. MLflow, W&B
and CodeCarbon are optional: their tests skip without them, and a spec that asks for a missing one is
refused at validate time, naming the extra to install."""

from __future__ import annotations

import contextlib
import importlib.util
import json

import pandas as pd
import pytest

from neuroexec import extras
from neuroexec.errors import SpecError
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec import load_spec
from neuroexec.training.observers import Observer, Observers
from neuroexec.training.task import training_config
from tests.training.training_specs import run_apply, write_spec

TRAIN = "epochs = 1, learning_rate = 1e-3"
OPTIONS = {
    "profiler": ", profiler = true",
    "mlflow": ", track_exp = 'mlflow'",
    "emissions": ", calculate_emissions = true",
    "wandb": ", track_exp = 'wandb'",
}
PACKAGES = {"mlflow": "mlflow", "wandb": "wandb", "emissions": "codecarbon"}
# the same data, split and seed: only the observers differ (one tracker per model)
MODELS = {"plain": (), "watched": ("profiler", "mlflow", "emissions"), "wandb": ("wandb",)}


def _installed(observer: str) -> bool:
    package = PACKAGES.get(observer)
    return package is None or importlib.util.find_spec(package) is not None


def _needs(observer: str):
    package = PACKAGES[observer]
    return pytest.mark.skipif(
        not _installed(observer),
        reason=f"{package} is not installed (pip install 'neuroexec[{extras.EXTRAS[package]}]')",
    )


def _body(options: str) -> str:
    return f'task = "classification"\ntrain = {{ {TRAIN}{options} }}'


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The models with the observers that can run here, trained in one apply (6 batches of 1 image)."""
    folder = tmp_path_factory.mktemp("observers")
    models = {}
    for name, observers in MODELS.items():
        kept = [o for o in observers if _installed(o)]
        if kept or not observers:
            models[name] = _body("".join(OPTIONS[o] for o in kept))
    path = write_spec(folder, models, batch_size=1)
    run_apply(path)
    return path, {name: MapsLayout(folder / "maps" / name) for name in models}


def test_the_models_are_bit_identical_with_and_without_observers(trained):
    path, maps = trained
    plain = maps["plain"].best_model(0, "loss").read_bytes()
    for name, layout in maps.items():
        assert layout.best_model(0, "loss").read_bytes() == plain, name
    spec = load_spec(path)
    assert {json.dumps(training_config(spec.models[name])) for name in maps} == {
        json.dumps(training_config(spec.models["plain"]))
    }  # no observer is in a fingerprint


def test_the_profiler_writes_a_trace_of_the_first_steps_in_the_maps(trained):
    _, maps = trained
    profiled = maps["watched"]
    traces = sorted(profiled.profiler_dir.glob("clinicadl_*/split-0.pt.trace.json"))
    assert len(traces) == 1 and not profiled.tmp_dir(0).exists()
    events = json.loads(traces[0].read_text())["traceEvents"]
    steps = {e["name"] for e in events if e.get("name", "").startswith("ProfilerStep#")}
    # 2 steps skipped, 2 of warm-up, then recorded: batches 5 and 6, and what follows until the end
    assert steps == {"ProfilerStep#4", "ProfilerStep#5", "ProfilerStep#6"}
    assert not maps["plain"].profiler_dir.exists()


@_needs("mlflow")
def test_mlflow_gets_training_tsv_in_a_local_store(trained):
    from mlflow.tracking import MlflowClient

    _, maps = trained
    layout = maps["watched"]
    client = MlflowClient(tracking_uri=f"sqlite:///{layout.mlflow_store}")
    experiment = client.get_experiment_by_name("clinicadl-watched")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "split-0" and run.info.status == "FINISHED"
    assert json.loads(run.data.params["architecture"]) == "TinyCNN"
    assert "preprocessing_dict" not in run.data.params
    log = pd.read_csv(layout.training_tsv(0), sep="\t")
    metrics = [c for c in log.columns if c not in ("epoch", "iteration", "time")]
    assert set(metrics) <= set(run.data.metrics)
    for column in ("loss_train", "BA_valid"):
        history = client.get_metric_history(run.info.run_id, column)
        assert [(m.step, m.value) for m in history] == [(5, pytest.approx(log[column][0], rel=1e-6))]


@_needs("wandb")
def test_wandb_writes_an_offline_run_with_training_tsv_in_the_maps(trained):
    _, maps = trained
    layout = maps["wandb"]
    (run_file,) = layout.wandb_dir.glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    log = pd.read_csv(layout.training_tsv(0), sep="\t")
    for column in log.columns.drop(["epoch", "iteration", "time"]):
        assert column.encode() in data, column
    assert b"split-0" in data and b"ClinicaDL" in data


@_needs("emissions")
def test_codecarbon_estimates_the_emissions_of_the_split_offline(trained):
    _, maps = trained
    table = pd.read_csv(maps["watched"].emissions_csv(0))
    assert len(table) == 1 and table["duration"][0] > 0 and table["emissions"][0] >= 0
    assert not maps["plain"].emissions_csv(0).exists()


@pytest.mark.parametrize(
    ("options", "package", "key"),
    [
        (", track_exp = 'mlflow'", "mlflow", "train.track_exp"),
        (", track_exp = 'wandb'", "wandb", "train.track_exp"),
        (", calculate_emissions = true", "codecarbon", "train.calculate_emissions"),
    ],
)
def test_a_missing_package_is_refused_at_validate_naming_the_extra(
    tmp_path, monkeypatch, options, package, key
):
    real = importlib.util.find_spec
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda n: None if n == package else real(n))
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, {"cnn": _body(options)}))
    extra = extras.EXTRAS[package]
    assert f"models.cnn.{key}" in str(error.value) and f"pip install 'neuroexec[{extra}]'" in str(error.value)


class _Recorder(Observer):
    def __init__(self, fails: bool = False):
        self.points, self.ended, self.fails = [], None, fails

    def log(self, phase, values, step):
        self.points.append((phase, step, values))

    def close(self, ended="finished"):
        self.ended = ended
        if self.fails:
            raise OSError("disk full")


@pytest.mark.parametrize(
    ("error", "ended"), [(None, "finished"), (KeyboardInterrupt, "interrupted"), (ValueError, "failed")]
)
def test_every_observer_gets_each_point_and_how_the_training_ended(error, ended):
    first, second = _Recorder(fails=True), _Recorder()
    with contextlib.suppress(OSError, KeyboardInterrupt, ValueError):
        with Observers([first, second]) as board:
            board.log("validation", {"loss": 0.5}, 3)
            if error is not None:
                raise error
    assert first.points == second.points == [("validation", 3, {"loss": 0.5})]
    assert first.ended == second.ended == ended  # the second is closed although the first failed to


def test_emissions_of_networks_stopping_side_by_side_are_all_kept(tmp_path, monkeypatch):
    """Two network runs of one split (their own processes under `--target ...,network-k`) append their
    rows to the split's staged table: under the lock, neither row is lost, however their writes overlap
    (each write held for 0.2 s here, so that without the lock the second reads the table before the
    first has written it)."""
    import threading
    import time
    import types

    from neuroexec.training import observers

    class Tracker:  # CodeCarbon's interface: a CSV of one row written at stop
        def __init__(self, project_name, output_dir, output_file, **_):
            self.path, self.name = tmp_path / output_dir / output_file, project_name

        def start(self):
            pass

        def stop(self):
            self.path.write_text(f"project_name,energy_consumed\n{self.name},1.0\n")

    monkeypatch.setattr(
        observers, "_module", lambda name: types.SimpleNamespace(OfflineEmissionsTracker=Tracker)
    )
    real = observers.atomic.write_text

    def slow_write(path, text):
        time.sleep(0.2)
        real(path, text)

    monkeypatch.setattr(observers.atomic, "write_text", slow_write)
    table, lock = tmp_path / "tmp/emissions.csv", tmp_path / "information.lock"

    def network(k: int) -> None:
        with observers.Emissions(table, f"maps network-{k}", lock):
            pass

    runs = [threading.Thread(target=network, args=(k,)) for k in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    rows = pd.read_csv(table)
    assert sorted(rows["project_name"]) == ["maps network-0", "maps network-1"]
