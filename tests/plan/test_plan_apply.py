"""Plan and apply on real (tiny) steps: generate, extract, split, data-group definition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from neuroexec.context import RunContext
from neuroexec.errors import LockHeld, PlanRefused, StepFailed
from neuroexec.executor import apply
from neuroexec.lock import lock_file
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_json, render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.helpers import two_cohort_spec

SPEC = """
version = 1
[compute]
workers = 0
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = 8, resolution_mm = 8, seed = {seed} }}
[datasets.other]
caps = "data/other"
generate = {{ subjects = 6, resolution_mm = 8, seed = 5, subject_offset = 100 }}
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = {n_splits} }}
[groups.test]
dataset = "{group_dataset}"
models = ["cnn"]
{group_extra}
"""
DATA_STEPS = "group.test.define[cnn]"  # needs generate, split, (extract for later steps): no training


def write(tmp_path: Path, seed=1, n_splits=2, group_dataset="other", group_extra="") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(
        SPEC.format(seed=seed, n_splits=n_splits, group_dataset=group_dataset, group_extra=group_extra)
    )
    return path


def ctx(tmp_path: Path) -> RunContext:
    return RunContext(reporter=Reporter(quiet=True))


def actions(path: Path, target: str | None = None) -> dict[str, tuple[str, list[str]]]:
    plan = make_plan(load_spec(path))
    return {p.step.id: (p.action, p.reasons) for p in plan.select(target)}


def run(path: Path, target: str | None = DATA_STEPS):
    spec = load_spec(path)
    return apply(make_plan(spec), ctx(path.parent), target=target)


def test_fresh_plan_lists_every_step_as_new_and_writes_nothing(tmp_path):
    path = write(tmp_path)
    plan = make_plan(load_spec(path))
    assert {p.action for p in plan.steps} == {"+"}
    ids = [p.step.id for p in plan.steps]
    assert (
        ids.index("dataset.demo.generate")
        < ids.index("model.cnn.split")
        < ids.index("model.cnn.train[split-0]")
    )
    assert "group.test.predict[cnn/split-1/best-loss]" in ids
    text = render_text(plan)
    assert "+ model.cnn.train[split-1]" in text and "Plan: 10 new, 0 changed, 0 up to date, 0 refused" in text
    data = json.loads(render_json(plan))
    assert data["summary"]["new"] == len(ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_apply_then_plan_is_up_to_date_and_second_apply_does_nothing(tmp_path, capsys):
    path = write(tmp_path)
    first = run(path)
    assert first.ran == ["dataset.demo.generate", "dataset.other.generate", "model.cnn.split", DATA_STEPS]
    assert all(a == "=" for a, _ in actions(path, DATA_STEPS).values())
    spec = load_spec(path)
    reporter = Reporter(stream=sys.stdout, quiet=True)
    second = apply(make_plan(spec), RunContext(reporter=reporter), target=DATA_STEPS)
    assert second.ran == [] and "Nothing to do: all 4 steps are up to date." in capsys.readouterr().out
    maps = tmp_path / "maps/cnn"
    assert (maps / "groups/train/split-1/data.tsv").is_file()
    for group in ("train", "validation"):  # where ClinicaDL's predict looks for the training groups
        record = json.loads((maps / f"groups/{group}/split-1/maps.json").read_text())
        assert record == {"caps_directory": str(tmp_path / "data/demo"), "multi_cohort": False}
    for table in ("groups/train/split-1/data.tsv", "groups/test/data.tsv"):
        # one CAPS: ClinicaDL looks each row's cohort up in {"single": caps}
        assert set(pd.read_csv(maps / table, sep="\t")["cohort"]) == {"single"}, table
    assert json.loads((maps / "groups/test/maps.json").read_text())["caps_directory"] == str(
        tmp_path / "data/other"
    )


def test_changed_field_replans_exactly_the_dependent_steps_with_the_reason(tmp_path):
    run(write(tmp_path))
    plan = actions(write(tmp_path, n_splits=3), DATA_STEPS)
    assert plan["dataset.demo.generate"][0] == "=" and plan["dataset.other.generate"][0] == "="
    assert plan["model.cnn.split"] == ("~", ["split.n_splits: 2 -> 3"])
    assert plan[DATA_STEPS] == ("~", ["upstream model.cnn.split will run"])
    plan = actions(write(tmp_path, seed=2), DATA_STEPS)
    assert plan["dataset.demo.generate"] == ("~", ["seed: 1 -> 2"])
    assert plan["dataset.other.generate"][0] == "="


def test_changed_input_file_is_a_reason(tmp_path):
    path = write(tmp_path)
    run(path)
    tsv = tmp_path / "data/demo/participants.tsv"
    # A generated dataset's TSV is an output (tracked by the generate step), so use a group on a real CAPS:
    spec_text = (
        path.read_text().replace('dataset = "other"', 'dataset = "real"')
        + f"""
[datasets.real]
caps = "{tmp_path / "data/other"}"
participants = "{tmp_path / "real.tsv"}"
"""
    )
    (tmp_path / "real.tsv").write_text((tmp_path / "data/other/participants.tsv").read_text())
    path.write_text(spec_text.replace("[groups.test]", "[groups.test]\noverwrite = true"))
    run(path)
    assert actions(path, DATA_STEPS)[DATA_STEPS][0] == "="
    lines = (tmp_path / "real.tsv").read_text().splitlines()
    (tmp_path / "real.tsv").write_text("\n".join(lines[:-1]) + "\n")
    action, reasons = actions(path, DATA_STEPS)[DATA_STEPS]
    assert action == "~" and reasons == ["input real.tsv changed"]
    assert tsv.is_file()


def test_target_runs_only_matching_steps_and_what_they_need(tmp_path):
    path = write(tmp_path)
    result = run(path, target="model.cnn.split")
    assert result.ran == ["dataset.demo.generate", "model.cnn.split"]
    assert not (tmp_path / "data/other").exists()
    with pytest.raises(Exception, match="matches no step"):
        run(path, target="model.nope.*")


def test_group_with_other_data_is_refused_then_replaced_with_overwrite(tmp_path):
    run(write(tmp_path, group_dataset="other"))
    maps = tmp_path / "maps/cnn"
    old_result = maps / "split-0/best-loss/test/test_image_level_prediction.tsv"
    old_result.parent.mkdir(parents=True)
    old_result.write_text("participant_id\tsession_id\n")
    path = write(tmp_path, group_dataset="demo", group_extra="skip_leak_check = true")
    action, reasons = actions(path, DATA_STEPS)[DATA_STEPS]
    assert action == "!" and "already exists" in reasons[0] and "overwrite = true" in reasons[0]
    with pytest.raises(PlanRefused, match="group.test.define"):
        run(path)
    assert old_result.is_file()  # a refused plan touches nothing
    path = write(tmp_path, group_dataset="demo", group_extra="skip_leak_check = true\noverwrite = true")
    assert actions(path, DATA_STEPS)[DATA_STEPS][0] == "~"
    run(path)
    assert not old_result.exists()
    assert json.loads((maps / "groups/test/maps.json").read_text())["caps_directory"] == str(
        tmp_path / "data/demo"
    )


def test_leakage_is_refused_unless_skipped(tmp_path):
    path = write(tmp_path, group_dataset="demo")
    with pytest.raises(StepFailed, match="data leakage: 8 participant"):
        run(path)
    run(write(tmp_path, group_dataset="demo", group_extra="skip_leak_check = true"))


def hold_lock(home: Path, scope: str) -> subprocess.Popen:
    """Another process that takes the apply lock of `scope` in `home` and holds it until killed."""
    code = "import sys; from pathlib import Path; from neuroexec.lock import acquire; "
    code += "acquire(Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(home), scope],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def test_concurrent_apply_is_refused_and_stale_lock_taken_over(tmp_path):
    path = write(tmp_path)
    run(path, target="dataset.demo.generate")
    lock = lock_file(tmp_path / "maps/cnn")
    holder = hold_lock(tmp_path / "maps/cnn", "")
    try:
        with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
            run(path)
    finally:
        holder.kill()
        holder.wait()
    run(path)  # the holder is dead (killed): its lock went with it
    assert lock.read_text() == ""  # and ours was released


def test_failed_step_keeps_earlier_results_and_rerun_continues(tmp_path):
    path = write(tmp_path)
    target = "dataset.demo.extract[image]"
    run(path, target="dataset.demo.generate")
    niftis = sorted((tmp_path / "data/demo/subjects").rglob("*.nii.gz"))
    good = niftis[-1].read_bytes()
    niftis[-1].write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(StepFailed, match="corrupt or truncated") as info:
        run(path, target=target)
    assert niftis[-1].name in str(info.value)
    tensors = sorted((tmp_path / "data/demo/subjects").rglob("*.pt"))
    assert len(tensors) == len(niftis) - 1  # the others were extracted and stay
    mtimes = {t: t.stat().st_mtime_ns for t in tensors}
    plan = actions(path, target)
    assert plan["dataset.demo.generate"][0] == "=" and plan[target][0] == "+"
    niftis[-1].write_bytes(good)
    assert run(path, target=target).ran == [target]
    assert all(t.stat().st_mtime_ns == m for t, m in mtimes.items())  # not re-extracted
    assert len(sorted((tmp_path / "data/demo/subjects").rglob("*.pt"))) == len(niftis)


def test_cli_plan_and_apply(tmp_path):
    path = write(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "neuroexec", "plan", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(out.stdout)["summary"]["new"] == 10
    out = subprocess.run(
        [sys.executable, "-m", "neuroexec", "apply", str(path), "--target", "model.cnn.split"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Applied 2 steps." in out.stderr


def test_extract_tracks_images_by_content_rehashing_only_when_stat_changes(tmp_path):
    path = write(tmp_path)
    run(path, target="dataset.other.generate")
    real = f"""
[datasets.real]
caps = "{tmp_path / "data/other"}"
participants = "{tmp_path / "data/other/participants.tsv"}"
[groups.real]
dataset = "real"
models = ["cnn"]
"""
    path.write_text(path.read_text() + real)
    target = "dataset.real.extract[image]"
    run(path, target=target)
    assert actions(path, target)[target][0] == "="
    nifti = sorted((tmp_path / "data/other/subjects").rglob("*.nii.gz"))[0]
    os.utime(nifti, ns=(nifti.stat().st_atime_ns, nifti.stat().st_mtime_ns + 10**9))  # touched, same bytes
    assert actions(path, target)[target][0] == "="
    import nibabel as nib

    img = nib.load(nifti)
    nib.save(nib.Nifti1Image(img.get_fdata() * 0.5, img.affine), nifti)
    action, reasons = actions(path, target)[target]
    assert action == "~" and reasons == [f"input {nifti.relative_to(tmp_path / 'data/other')} changed"]
    assert actions(path)["group.real.define[cnn]"][0] == "+"


def test_one_split_per_job_runs_beside_another_job_on_the_same_maps(tmp_path):
    path = write(tmp_path)
    path.write_text(
        path.read_text().replace(
            'architecture = "TinyCNN"', 'architecture = "TinyCNN"\ntrain = { epochs = 1 }'
        )
    )
    run(path, target="model.cnn.split")
    run(path, target="dataset.demo.extract[image]")  # shared steps first, then one job per split
    maps = tmp_path / "maps/cnn"
    other_job = hold_lock(maps, "split-0")  # another job is training split 0
    try:
        assert run(path, target="model.cnn.train[split-1]").ran == ["model.cnn.train[split-1]"]
        with pytest.raises(LockHeld, match="split-0"):
            run(path, target="model.cnn.train[split-0]")
        assert actions(path, "model.cnn.train[split-1]")["model.cnn.train[split-1]"][0] == "="
    finally:
        other_job.kill()
        other_job.wait()


def test_training_groups_of_a_multi_cohort_model_read_every_cohort(tmp_path):
    """The validation group of a model trained on two cohorts finds each image in its own CAPS."""
    from neuroexec.data.synthetic import generate_atrophy_dataset

    generate_atrophy_dataset(tmp_path / "data/a", subjects=6, resolution_mm=8, seed=1)
    generate_atrophy_dataset(tmp_path / "data/b", subjects=6, resolution_mm=8, seed=2, subject_offset=100)
    path = tmp_path / "spec.toml"
    path.write_text(f"""
version = 1
[compute]
workers = 0
[datasets.both]
cohorts = [{{ name = "A", caps = "{tmp_path}/data/a", participants = "{tmp_path}/data/a/participants.tsv" }},
           {{ name = "B", caps = "{tmp_path}/data/b", participants = "{tmp_path}/data/b/participants.tsv" }}]
[models.cnn]
maps = "maps/cnn"
dataset = "both"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = 1 }}
[groups.validation]
from_training = "validation"
models = ["cnn"]
save_tensors = {{}}
""")
    result = run(path, target=None)
    assert "group.validation.save-tensors[cnn/split-0/best-loss]" in result.ran
    valid = pd.read_csv(tmp_path / "maps/cnn/groups/validation/split-0/data.tsv", sep="\t")
    assert set(valid["cohort"]) == {"A", "B"}
    tensors = tmp_path / "maps/cnn/split-0/best-loss/validation/tensors"
    assert len(list(tensors.glob("*_input.pt"))) == len(valid)
    # The MAPS names both CAPS, as ClinicaDL's multi-cohort table (cohort, path), not the first one.
    table = tmp_path / "maps/cnn/caps_cohorts.tsv"
    assert pd.read_csv(table, sep="\t").to_dict("list") == {
        "cohort": ["A", "B"],
        "path": [str(tmp_path / "data/a"), str(tmp_path / "data/b")],
    }
    for record in ("maps.json", "groups/validation/maps.json", "groups/train/split-0/maps.json"):
        parameters = json.loads((tmp_path / "maps/cnn" / record).read_text())
        assert (parameters["caps_directory"], parameters["multi_cohort"]) == (str(table), True), record


def test_user_split_directory_keeps_dataset_labels_filters_diagnoses_and_names_strangers(tmp_path):
    path = write(tmp_path)
    run(path, target="dataset.demo.generate")
    people = pd.read_csv(tmp_path / "data/demo/participants.tsv", sep="\t", dtype=str)
    folder = tmp_path / "splits/split-0"
    folder.mkdir(parents=True)
    valid = people.iloc[:2][["participant_id", "session_id"]]  # ids only: labels come from the dataset
    people.iloc[2:][["participant_id", "session_id"]].to_csv(folder / "train.tsv", sep="\t", index=False)
    valid.to_csv(folder / "validation.tsv", sep="\t", index=False)
    text = path.read_text().replace(
        "split = { n_splits = 2 }", 'split = { n_splits = 1, directory = "splits" }'
    )
    path.write_text(text.replace('architecture = "TinyCNN"', 'architecture = "TinyCNN"\ndiagnoses = ["AD"]'))
    run(path, target="model.cnn.split")
    train = pd.read_csv(tmp_path / "maps/cnn/groups/train/split-0/data.tsv", sep="\t", dtype=str)
    expected = people.iloc[2:].query("diagnosis == 'AD'")
    assert sorted(train["participant_id"]) == sorted(expected["participant_id"])  # CN sessions dropped
    assert set(train["diagnosis"]) == {"AD"}  # no empty labels
    pd.concat([valid, pd.DataFrame([{"participant_id": "sub-9999", "session_id": "ses-M000"}])]).to_csv(
        folder / "validation.tsv", sep="\t", index=False
    )
    with pytest.raises(StepFailed, match="sub-9999 ses-M000"):
        run(path, target="model.cnn.split")


def test_deleted_outputs_are_replanned_and_restored(tmp_path):
    path = write(tmp_path)
    target = "dataset.demo.extract[image]"
    run(path, target=target)
    run(path, target=DATA_STEPS)
    tensors = sorted((tmp_path / "data/demo/subjects").rglob("*.pt"))
    tensors[0].unlink()
    (tmp_path / "maps/cnn/groups/test/data.tsv").unlink()
    plan = actions(path)
    action, reasons = plan[target]
    assert action == "~" and reasons == [
        f"output {tensors[0].relative_to(tmp_path / 'data/demo')} is missing"
    ]
    assert plan[DATA_STEPS] == ("~", ["output groups/test/data.tsv is missing"])
    assert plan["model.cnn.split"][0] == "="
    run(path, target=target)
    run(path, target=DATA_STEPS)
    assert tensors[0].is_file() and (tmp_path / "maps/cnn/groups/test/data.tsv").is_file()
    assert actions(path, DATA_STEPS)[DATA_STEPS][0] == "="


def test_cohorts_can_be_datasets_the_same_spec_generates(tmp_path):
    """`cohorts = [{ name, dataset }]`: the generate steps run first, then extraction reads both CAPS."""
    path = tmp_path / "spec.toml"
    path.write_text(two_cohort_spec())
    steps = [p.step for p in make_plan(load_spec(path)).steps]
    ids = [step.id for step in steps]
    extract = next(i for i in ids if i.startswith("dataset.both.extract"))
    assert {"dataset.a.generate", "dataset.b.generate"} <= set(steps[ids.index(extract)].deps)
    assert max(ids.index("dataset.a.generate"), ids.index("dataset.b.generate")) < ids.index(extract)
    assert ids.index(extract) < ids.index("model.cnn.train[split-0]")
    result = run(path, target=None)
    assert "model.cnn.train[split-0]" in result.ran
    train = pd.read_csv(tmp_path / "maps/cnn/groups/train/split-0/data.tsv", sep="\t")
    assert set(train["cohort"]) == {"A", "B"}
    cohorts = pd.read_csv(tmp_path / "maps/cnn/caps_cohorts.tsv", sep="\t")
    assert list(cohorts["path"]) == [str(tmp_path / "data/a"), str(tmp_path / "data/b")]
    assert {action for action, _ in actions(path).values()} == {"="}  # nothing left to do
