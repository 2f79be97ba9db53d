"""apply writes only into folders that are new, empty or made by neuroexec (neuroexec/plan/ownership.py):
a real CAPS, a ClinicaDL MAPS, a MAPS whose records are lost or unreadable, a folder of user files are
refused in the plan and left byte for byte as they were."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from neuroexec.context import RunContext
from neuroexec.errors import InputError, PlanRefused
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.helpers import make_tiny_caps

SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.demo]
caps = "{caps}"
generate = {{ subjects = 8, resolution_mm = 8, seed = {seed} }}
[datasets.other]
caps = "data/other"
generate = {{ subjects = 4, resolution_mm = 8, seed = 5, subject_offset = 100 }}
[models.{model}]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = 1, learning_rate = 1e-3 }}
{model_extra}
[groups.test]
dataset = "other"
models = ["{model}"]
"""
SPLIT = "model.cnn.split"


def write(
    root: Path, caps: str = "data/demo", seed: int = 1, model: str = "cnn", model_extra: str = ""
) -> Path:
    path = root / "spec.toml"
    path.write_text(SPEC.format(caps=caps, seed=seed, model=model, model_extra=model_extra))
    return path


def plan_of(path: Path) -> dict:
    return {p.step.id: p for p in make_plan(load_spec(path)).steps}


def run(path: Path, target: str | None = None):
    ctx = RunContext(reporter=Reporter(quiet=True))
    return apply(make_plan(load_spec(path)), ctx, target=target)


def digest(root: Path) -> dict[str, str]:
    """Every file under `root` (dot-files too) -> hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_refused_and_untouched(path: Path, folder: Path, step: str, *phrases: str) -> str:
    """`step` is `!` for a reason holding `phrases`; apply (whole spec, and that step alone) refuses and
    leaves `folder` as it was. Returns the reason."""
    before = digest(folder)
    planned = plan_of(path)
    assert planned[step].action == "!", planned[step].reasons
    reason = planned[step].reasons[0]
    for phrase in phrases:
        assert phrase in reason, reason
    for target in (None, step):
        with pytest.raises(PlanRefused, match=step.replace(".", r"\.").replace("[", r"\[")):
            run(path, target)
    assert digest(folder) == before
    return reason


# --- generate ------------------------------------------------------------------------------------


def test_generate_over_a_real_caps_is_refused_and_every_byte_kept(tmp_path):
    caps, _ = make_tiny_caps(tmp_path / "real", n_subjects=4, shape=(12, 14, 12))
    path = write(tmp_path, caps=str(caps))
    assert_refused_and_untouched(
        path,
        caps,
        "dataset.demo.generate",
        str(caps),
        "participants.tsv",
        "datasets.demo.caps",
        "new or empty",
    )
    planned = plan_of(path)
    assert planned[SPLIT].action == "!" and planned[SPLIT].reasons == [
        "needs dataset.demo.generate, which is refused"
    ]


def test_generate_over_one_stray_user_file_is_refused(tmp_path):
    folder = tmp_path / "data/demo"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    assert_refused_and_untouched(write(tmp_path), folder, "dataset.demo.generate", "notes.txt")


def test_generate_over_a_caps_neuroexec_only_extracted_is_refused(tmp_path):
    """Records prove ownership only when they are the generate step's: an extraction into a real CAPS
    leaves records too."""
    caps, tsv = make_tiny_caps(tmp_path / "real", n_subjects=4, shape=(12, 14, 12))
    real = tmp_path / "real.toml"
    real.write_text(f'version = 1\n[datasets.real]\ncaps = "{caps}"\nparticipants = "{tsv}"\n'
                    '[models.m]\nmaps = "maps/m"\ndataset = "real"\narchitecture = "TinyCNN"\n')  # fmt: skip
    run(real, "dataset.real.extract[image]")
    records = json.loads((caps / ".neuroexec/state.json").read_text())["steps"].values()
    assert [r["kind"] for r in records] == ["extract"]
    assert_refused_and_untouched(
        write(tmp_path, caps=str(caps)), caps, "dataset.demo.generate", "did not generate"
    )


def test_generate_into_an_empty_or_its_own_folder_is_planned(tmp_path):
    (tmp_path / "data/demo").mkdir(parents=True)
    assert plan_of(write(tmp_path))["dataset.demo.generate"].action == "+"
    run(write(tmp_path), "dataset.demo.generate")
    planned = plan_of(write(tmp_path, seed=2))["dataset.demo.generate"]
    assert (planned.action, planned.reasons) == ("~", ["seed: 1 -> 2"])


# --- a trained model's MAPS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Path]:
    """A project trained and predicted by neuroexec once, and a copy of it to restore from."""
    root = tmp_path_factory.mktemp("project")
    run(write(root))
    copy = tmp_path_factory.mktemp("pristine") / "copy"
    shutil.copytree(root, copy, symlinks=True)
    return root, copy


@pytest.fixture
def project(pristine) -> Path:
    """The trained project, as it was after its apply (same paths, so its records hold)."""
    root, copy = pristine
    shutil.rmtree(root)
    shutil.copytree(copy, root, symlinks=True)
    return root


def test_a_maps_neuroexec_trained_for_this_model_is_up_to_date(project):
    assert {p.action for p in plan_of(project / "spec.toml").values()} == {"="}


@pytest.mark.parametrize(
    "lose, phrase",
    [
        (
            lambda m: shutil.rmtree(m / ".neuroexec"),
            "trained by ClinicaDL, or copied without its .neuroexec/",
        ),
        (lambda m: (m / ".neuroexec/state.json").unlink(), "state.json was deleted"),
    ],
    ids=["copied-without-dot-files", "state-json-deleted"],
)
def test_a_maps_without_records_is_refused_never_retrained_over(project, lose, phrase):
    maps = project / "maps/cnn"
    lose(maps)
    reason = assert_refused_and_untouched(
        project / "spec.toml",
        maps,
        SPLIT,
        str(maps),
        phrase,
        "models.cnn.overwrite = true",
        "remove models.cnn.dataset",
    )
    assert "{" not in reason
    planned = plan_of(project / "spec.toml")
    assert planned["model.cnn.train[split-0]"].action == "!"
    assert planned["group.test.predict[cnn/split-0/best-loss]"].action == "!"


def test_a_clinicadl_maps_is_refused(tmp_path):
    """A MAPS ClinicaDL wrote: maps.json, best models, results, no .neuroexec/."""
    maps = tmp_path / "maps/cnn"
    (maps / "split-0/best-loss/test").mkdir(parents=True)
    (maps / "maps.json").write_text(
        json.dumps({"architecture": "Conv5_FC3", "network_task": "classification"})
    )
    (maps / "split-0/best-loss/model.pth.tar").write_bytes(b"weights")
    (maps / "split-0/best-loss/test/test_image_level_prediction.tsv").write_text("participant_id\n")
    assert_refused_and_untouched(write(tmp_path), maps, SPLIT, "trained by ClinicaDL")


def test_a_maps_another_model_trained_is_refused(project):
    """Renaming the model does not take over the MAPS of the old name."""
    path = write(project, model="cnn2")
    assert_refused_and_untouched(path, project / "maps/cnn", "model.cnn2.split", "another model (models.cnn)")


def test_a_folder_of_other_files_is_refused_even_with_overwrite(tmp_path):
    maps = tmp_path / "maps/cnn"
    maps.mkdir(parents=True)
    (maps / "thesis.tex").write_text("\\chapter{Results}\n")
    for extra in ("", "overwrite = true"):
        assert_refused_and_untouched(
            write(tmp_path, model_extra=extra), maps, SPLIT, "thesis.tex", "not a MAPS", "even with"
        )


def test_overwrite_retrains_a_maps_without_records_and_plans_its_removal(project):
    maps = project / "maps/cnn"
    shutil.rmtree(maps / ".neuroexec")
    stale = maps / "split-0/best-loss/test/stale-by-clinicadl.tsv"
    stale.write_text("old\n")
    files = len(digest(maps))
    path = write(project, model_extra="overwrite = true")
    plan = make_plan(load_spec(path))
    split = next(p for p in plan.steps if p.step.id == SPLIT)
    assert split.action == "+" and len(split.removals) == 1
    assert split.removals[0].files() == files
    assert f"({files} files)" in render_text(plan)
    assert {p.action for p in plan.steps if p.step.home == maps} == {"+"}
    run(path)
    assert not stale.exists()
    assert SPLIT in json.loads((maps / ".neuroexec/state.json").read_text())["steps"]
    assert {p.action for p in plan_of(path).values()} == {"="}


def test_overwrite_has_no_effect_on_the_models_own_maps(project):
    planned = plan_of(write(project, model_extra="overwrite = true"))
    assert {p.action for p in planned.values()} == {"="}
    assert all(not p.removals for p in planned.values())


def test_a_first_split_stopped_before_its_record_is_redone(project):
    """Only split tables beside .neuroexec/ (its lock): a first apply killed in the split step."""
    maps = project / "maps/cnn"
    for entry in maps.iterdir():
        if entry.name not in (".neuroexec", "groups"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.rmtree(maps / "groups/test")
    (maps / ".neuroexec/state.json").unlink()
    (maps / "groups/.train+validation.tsv.x1y2.tmp").write_text("half")
    assert plan_of(project / "spec.toml")[SPLIT].action == "+"


def test_a_maps_used_as_pretrained_model_still_plans(project):
    """The same MAPS without records, used as it is (no dataset): its predictions are planned."""
    maps = project / "maps/cnn"
    shutil.rmtree(maps / ".neuroexec")
    shutil.rmtree(maps / "split-0/best-loss/test")
    path = project / "pretrained.toml"
    path.write_text(
        'version = 1\n[compute]\nworkers = 0\n[datasets.other]\ncaps = "data/other"\n'
        'participants = "data/other/participants.tsv"\n[models.cnn]\nmaps = "maps/cnn"\n'
        '[groups.test]\ndataset = "other"\nmodels = ["cnn"]\noverwrite = true\nskip_leak_check = true\n'
    )
    run(path)
    assert (maps / "split-0/best-loss/test/test_image_level_prediction.tsv").is_file()


# --- lost or unreadable records --------------------------------------------------------------------

BROKEN = {
    "empty-list": b"[]",
    "no-steps": b"{}",
    "steps-not-a-table": b'{"steps": []}',
    "empty-file": b"",
    "not-utf8": b'{"steps": {"\xff\xfe": {}}}',
}


def _truncated(state: Path) -> bytes:
    text = state.read_bytes()
    return text[: len(text) // 2]


@pytest.mark.parametrize("variant", [*BROKEN, "truncated"])
def test_an_unreadable_maps_state_is_refused_and_no_result_is_touched(project, variant):
    maps = project / "maps/cnn"
    state = maps / ".neuroexec/state.json"
    state.write_bytes(_truncated(state) if variant == "truncated" else BROKEN[variant])
    reason = assert_refused_and_untouched(
        project / "spec.toml", maps, SPLIT, str(state), "restore", "overwrite"
    )
    assert "cannot tell which results" in reason


@pytest.mark.parametrize("variant", ["empty-list", "truncated"])
def test_an_unreadable_caps_state_is_refused(project, variant):
    caps = project / "data/demo"
    state = caps / ".neuroexec/state.json"
    state.write_bytes(_truncated(state) if variant == "truncated" else BROKEN[variant])
    assert_refused_and_untouched(project / "spec.toml", project, "dataset.demo.generate", str(state))


def test_an_unreadable_state_of_a_pretrained_maps_stops_the_plan_naming_it(project):
    """No split step guards a pretrained MAPS: reading its records stops the plan with the file named
    (before: `[]` was a traceback, AttributeError)."""
    maps = project / "maps/cnn"
    (maps / ".neuroexec/state.json").write_bytes(b"[]")
    path = project / "pretrained.toml"
    path.write_text(
        'version = 1\n[datasets.other]\ncaps = "data/other"\nparticipants = "data/other/participants.tsv"\n'
        '[models.cnn]\nmaps = "maps/cnn"\n[groups.test]\ndataset = "other"\nmodels = ["cnn"]\n'
    )
    before = digest(maps)
    with pytest.raises(InputError, match="state.json.*holds a JSON list.*restore the file"):
        make_plan(load_spec(path))
    assert digest(maps) == before
