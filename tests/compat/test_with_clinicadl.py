"""Two-way compatibility checked against ClinicaDL itself. Runs only where a ClinicaDL executable is
configured (NEUROEXEC_CLINICADL=/path/to/clinicadl, e.g. ClinicaDL 1.6.1 in its own venv: it needs
numpy<2, pandas<2 and its own torch); skipped otherwise (CI has no ClinicaDL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.helpers import two_cohort_spec

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)

DATA_ONLY = """
version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = { subjects = 12, resolution_mm = 4, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 6, resolution_mm = 4, seed = 2, subject_offset = 500 }
"""
SPEC = (
    DATA_ONLY
    + """[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "Conv4_FC3"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.test]
dataset = "other"
models = ["cnn"]
"""
)


PATCH_MODE = 'mode = "patch"\npatch = { size = 24, stride = 12 }\n'


VARIANTS = {
    "image": "",
    "patch": PATCH_MODE,
    "regression": 'task = "regression"\nlabel = "age"\n',  # maps.json label_code null, as ClinicaDL's
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_clinicadl_predict_reads_a_neuroexec_maps_and_agrees(tmp_path, variant):
    """Patch mode too: ClinicaDL cuts the patches from the image tensors (prepare_dl = false for
    neuroexec's bundles) and min-max normalises each one, as neuroexec does."""
    spec_path = tmp_path / "spec.toml"
    architecture = 'architecture = "Conv4_FC3"\n'
    spec_path.write_text(SPEC.replace(architecture, architecture + VARIANTS[variant]))
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))
    cmd = [CLINICADL, "predict", "maps/cnn", "cdl", "--caps_directory", "data/other",
           "--participants_tsv", "data/other/participants.tsv", "--no-gpu", "--n_proc", "0"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = tmp_path / "maps/cnn/split-0/best-loss"
    mode = "patch" if variant == "patch" else "image"
    keys = ["participant_id", "session_id"] + (["patch_id"] if mode == "patch" else [])
    theirs = pd.read_csv(result / f"cdl/cdl_{mode}_level_prediction.tsv", sep="\t")
    ours = pd.read_csv(result / f"test/test_{mode}_level_prediction.tsv", sep="\t")
    assert list(theirs.columns) == list(ours.columns)
    both = theirs.merge(ours, on=keys, suffixes=("_cdl", "_nx"))
    assert len(both) == len(ours) == 6 * (1 if mode == "image" else 2 * 3 * 2)  # 42x52x45 at 4 mm
    if variant == "regression":
        scale = both["predicted_label_nx"].abs().max()
        assert (both["predicted_label_cdl"] - both["predicted_label_nx"]).abs().max() <= 1e-5 * scale
    else:
        assert (both["proba0_cdl"] - both["proba0_nx"]).abs().max() < 1e-5
        assert (both["predicted_label_cdl"] == both["predicted_label_nx"]).all()
    theirs, ours = (
        pd.read_csv(result / f"{g}/{g}_{mode}_level_metrics.tsv", sep="\t") for g in ("cdl", "test")
    )
    if variant != "regression":  # neuroexec's AUC follows ClinicaDL's columns
        assert list(ours.columns)[-1] == "AUC" and 0 <= ours.loc[0, "AUC"] <= 1
        ours = ours.drop(columns="AUC")
    assert list(theirs.columns) == list(ours.columns) and list(theirs["Metrics"]) == list(ours["Metrics"])
    values = [c for c in ours.columns if c not in ("Metrics", "loss")]
    assert (theirs.loc[0, values] - ours.loc[0, values]).abs().max() <= 1e-4 * ours.loc[0, values].abs().max()
    # neuroexec's loss is the mean over the items; ClinicaDL's is the sum of its batches' means (its
    # predict batches by 8): the same number only when everything fits one batch.
    batches = -(-len(both) // 8)
    assert theirs.loc[0, "loss"] == pytest.approx(batches * ours.loc[0, "loss"], rel=1e-4), len(both)


VALIDATION_GROUP = '[groups.validation]\nfrom_training = "validation"\nmodels = ["cnn"]\n'


def test_clinicadl_finds_every_cohort_of_a_multi_cohort_maps(tmp_path):
    """maps.json names caps_cohorts.tsv: ClinicaDL re-evaluates the validation group across both CAPS."""
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(two_cohort_spec("Conv4_FC3", 4, VALIDATION_GROUP))
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))
    result = tmp_path / "maps/cnn/split-0/best-loss/validation"
    ours = pd.read_csv(result / "validation_image_level_prediction.tsv", sep="\t")
    assert set(pd.read_csv(tmp_path / "maps/cnn/groups/validation/split-0/data.tsv", sep="\t")["cohort"]) == {
        "A",
        "B",
    }
    cmd = [CLINICADL, "predict", "maps/cnn", "validation", "--selection_metrics", "loss", "--no-gpu",
           "--n_proc", "0"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    theirs = pd.read_csv(result / "validation_image_level_prediction.tsv", sep="\t")  # rewritten by ClinicaDL
    both = theirs.merge(ours, on=["participant_id", "session_id"], suffixes=("_cdl", "_nx"))
    assert len(both) == len(ours) == len(theirs) > 0
    assert (both["proba0_cdl"] - both["proba0_nx"]).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["image", "patch"])
def test_clinicadl_interpret_gradients_equal_neuroexec_signed_gradients(tmp_path, mode):
    """ClinicaDL 1.6.1's `interpret ... gradients` keeps the sign: it equals neuroexec's gradients with
    absolute = false, map by map (neuroexec's default, |gradient|, is FORMATS.md's). The means agree in
    image mode; in patch mode ClinicaDL divides each patch's sum by the number of patches of the whole
    group, not of images, so its means are neuroexec's divided by the patches per image."""
    spec_path = tmp_path / "spec.toml"
    architecture = 'architecture = "Conv4_FC3"\n'
    text = SPEC.replace(architecture, architecture + (PATCH_MODE if mode == "patch" else ""))
    interpret = (
        'interpret = [{ name = "nx", method = "gradients", absolute = false, save_individual = true }]\n'
    )
    spec_path.write_text(text + interpret)
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))
    cmd = [CLINICADL, "interpret", "maps/cnn", "test", "cdl", "gradients", "--selection_metrics", "loss",
           "--save_individual", "--no-gpu", "-np", "0"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = tmp_path / "maps/cnn/split-0/best-loss/test"
    per_image = 1 if mode == "image" else 2 * 3 * 2  # patches of a 42x52x45 image
    theirs = sorted(p.name for p in (result / "interpret-cdl").glob("*.pt"))
    ours = sorted(
        p.name for p in (result / "interpret-nx").glob(f"*_{mode}-*_map.pt") if not p.name.startswith("std_")
    )
    assert len(theirs) == 7 * per_image and theirs == ours  # means, and one map per image and index
    for name in theirs:
        a = torch.load(result / "interpret-cdl" / name, weights_only=True)
        b = torch.load(result / "interpret-nx" / name, weights_only=True)
        scale = per_image if name.startswith("mean_") else 1
        assert a.shape == b.shape and float((a * scale - b).abs().max()) <= 1e-6 * float(b.abs().max()), name


def test_clinicadl_saves_the_tensors_and_metrics_of_a_neuroexec_autoencoder(tmp_path):
    """`predict --save_tensor` on a neuroexec autoencoder: the same input and output tensors and the same
    reconstruction metrics as neuroexec's own save_tensors group."""
    spec_path = tmp_path / "spec.toml"
    text = SPEC.replace('architecture = "Conv4_FC3"', 'architecture = "Conv4_FC3"\ntask = "reconstruction"')
    spec_path.write_text(text + "save_tensors = {}\n")
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))
    cmd = [CLINICADL, "predict", "maps/cnn", "cdl", "--caps_directory", "data/other", "--participants_tsv",
           "data/other/participants.tsv", "--save_tensor", "--selection_metrics", "loss", "--no-gpu",
           "--n_proc", "0"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = tmp_path / "maps/cnn/split-0/best-loss"
    names = sorted(p.name for p in (result / "cdl/tensors").glob("*.pt"))
    assert len(names) == 12 and names == sorted(p.name for p in (result / "test/tensors").glob("*.pt"))
    for name in names:
        a = torch.load(result / "cdl/tensors" / name, weights_only=True)
        b = torch.load(result / "test/tensors" / name, weights_only=True)
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-6, name
    theirs = pd.read_csv(result / "cdl/cdl_image_level_prediction.tsv", sep="\t")
    ours = pd.read_csv(result / "test/test_image_level_prediction.tsv", sep="\t")
    both = theirs.merge(ours, on=["participant_id", "session_id"], suffixes=("_cdl", "_nx"))
    assert len(both) == 6 and list(theirs.columns) == list(ours.columns)
    for metric in ("MAE", "RMSE", "PSNR", "SSIM"):
        assert (both[f"{metric}_cdl"] - both[f"{metric}_nx"]).abs().max() < 1e-5, metric


def _clinicadl_split(participants: Path, folder: Path) -> Path:
    """ClinicaDL's split layout: <folder>/train.tsv, then <folder>/1_fold/ (and split-0/) with the files."""
    frame = pd.read_csv(participants, sep="\t", dtype=str)
    valid = frame.iloc[::3]
    train = frame.drop(valid.index)
    folder.mkdir(parents=True)
    frame.to_csv(folder / "train.tsv", sep="\t", index=False)
    for split in (folder / "1_fold", folder / "1_fold/split-0"):
        split.mkdir(parents=True, exist_ok=True)
        for name, part in (("train", train), ("train_baseline", train), ("validation", valid),
                           ("validation_baseline", valid)):  # fmt: skip
            part.to_csv(split / f"{name}.tsv", sep="\t", index=False)
    return folder / "1_fold"


# ClinicaDL-trained models: (prepare-data mode and options, train task and options, compared columns
# per prediction level)
CLINICADL_TRAINED = {
    "patch-classification": (
        ["patch", "--patch_size", "24", "--stride_size", "12"],
        ["classification", "--architecture", "Conv4_FC3"],
        {"patch": ["proba0", "predicted_label"], "image": ["proba0", "predicted_label"]},
    ),
    "regression": (
        ["image"],
        ["regression", "--architecture", "Conv4_FC3", "--label", "age"],
        {"image": ["predicted_label"]},
    ),
    "reconstruction": (
        ["image"],
        ["reconstruction", "--architecture", "AE_Conv4_FC3"],
        {"image": ["MAE", "RMSE", "PSNR", "SSIM"]},
    ),
}


@pytest.mark.parametrize("variant", list(CLINICADL_TRAINED))
def test_neuroexec_predicts_a_clinicadl_maps_as_clinicadl_does(tmp_path, variant):
    """A model trained by ClinicaDL (on its own raw tensors, stored in the NIfTI's memory order, each item
    min-max normalised at load): neuroexec's predictions on another cohort equal ClinicaDL's own."""
    prepare_args, train_args, compared = CLINICADL_TRAINED[variant]
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(DATA_ONLY)
    ctx = RunContext(reporter=Reporter(quiet=True))
    apply(make_plan(load_spec(spec_path)), ctx)  # the synthetic CAPS
    prepare = [CLINICADL, "prepare-data", prepare_args[0], "data/demo", "t1-linear", *prepare_args[1:],
               "-ej", "extract.json", "-np", "1"]  # fmt: skip
    split = _clinicadl_split(tmp_path / "data/demo/participants.tsv", tmp_path / "split")
    train = [CLINICADL, "train", train_args[0], "data/demo", "extract.json", str(split), "maps_cdl",
             *train_args[1:], "--epochs", "1", "--batch_size", "4", "--no-gpu", "--n_proc", "0",
             "--split", "0"]  # fmt: skip
    # The same train command line, given to neuroexec (ClinicaDL 1.3+'s `train TASK` form).
    train_nx = [sys.executable, "-m", "neuroexec", *train[1:], "--quiet"]
    train_nx[train_nx.index("maps_cdl")] = "maps_nx"
    for cmd in (prepare, train, train_nx):
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cdl_json, nx_json = (
        json.loads((tmp_path / m / "maps.json").read_text()) for m in ("maps_cdl", "maps_nx")
    )
    for key in (
        "mode",
        "network_task",
        "architecture",
        "label",
        "patch_size",
        "stride_size",
        "selection_metrics",
    ):
        assert cdl_json.get(key) == nx_json.get(key), key
    groups = '[groups.test]\ndataset = "other"\nmodels = ["cdl"]\n'
    groups += (
        '[groups.validation]\nfrom_training = "validation"\nmodels = ["cdl"]\n'  # ClinicaDL's raw tensors
    )
    spec_path.write_text(DATA_ONLY + '[models.cdl]\nmaps = "maps_cdl"\n' + groups)
    apply(make_plan(load_spec(spec_path)), ctx)
    predict = [CLINICADL, "predict", "maps_cdl", "cdl", "--caps_directory", "data/other", "--participants_tsv",
               "data/other/participants.tsv", "--selection_metrics", "loss", "--no-gpu", "--n_proc", "0"]  # fmt: skip
    done = subprocess.run(predict, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = tmp_path / "maps_cdl/split-0/best-loss"
    for level, columns in compared.items():
        keys = ["participant_id", "session_id"] + (["patch_id"] if level == "patch" else [])
        theirs = pd.read_csv(result / f"cdl/cdl_{level}_level_prediction.tsv", sep="\t")
        ours = pd.read_csv(result / f"test/test_{level}_level_prediction.tsv", sep="\t")
        both = theirs.merge(ours, on=keys, suffixes=("_cdl", "_nx"))
        assert len(both) == len(ours) == len(theirs) == 6 * (12 if level == "patch" else 1)
        for column in columns:
            a, b = both[f"{column}_cdl"], both[f"{column}_nx"]
            assert (a - b).abs().max() <= 1e-5 * max(1.0, b.abs().max()), (level, column)


def test_clinicadl_transfers_a_neuroexec_autoencoder_into_its_cnn(tmp_path):
    """ClinicaDL's `train --transfer_path` loads a neuroexec autoencoder's encoder into its Conv4_FC3
    strictly (load_state_dict): the parameter names and shapes are ClinicaDL's own."""
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        SPEC.replace('architecture = "Conv4_FC3"', 'architecture = "Conv4_FC3"\ntask = "reconstruction"')
    )
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))
    split = _clinicadl_split(tmp_path / "data/demo/participants.tsv", tmp_path / "split")
    train = [CLINICADL, "train", "classification", "data/demo", "extract_image.json", str(split), "maps_tl",
             "--architecture", "Conv4_FC3", "--epochs", "1", "--batch_size", "4", "--no-gpu", "--n_proc", "0",
             "--split", "0", "--transfer_path", "maps/cnn", "--transfer_selection_metric", "loss"]  # fmt: skip
    done = subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "maps_tl/split-0/best-loss/model.pth.tar").is_file()


# ClinicaDL 1.6.1's own row selection for multi-cohort training (SplitManager.__getitem__), run in its venv.
# Its `train --multi_cohort` cannot run to there: SplitManager.__init__ hands check_caps_folder the str
# paths of its CAPS table, which calls .is_dir() on them (AttributeError). So the split manager is made
# without __init__, with the attributes __init__ sets, and asked for each split's rows.
CLINICADL_SPLIT_ROWS = """
import sys
from pathlib import Path
from clinicadl.utils.split_manager.kfold import KFoldSplit
manager = KFoldSplit.__new__(KFoldSplit)
manager.__dict__.update(tsv_path=Path("tsv.tsv"), multi_cohort=True, diagnoses=["AD", "CN"], baseline=False,
                        valid_longitudinal=False, split_list=None, n_splits=2, caps_dict={})
for i in range(2):
    for side, frame in manager[i].items():
        frame.to_csv(Path(sys.argv[1]) / f"{side}-{i}.tsv", sep="\\t", index=False)
"""


def test_the_same_multi_cohort_command_trains_on_clinicadls_rows(cohort_tables, tmp_path):
    """`train classification CAPS.tsv t1-linear TSV.tsv MAPS --multi_cohort`: neuroexec trains on the rows
    ClinicaDL's split manager gives for each split (aibl's table lists AD only), and ClinicaDL predicts
    neuroexec's validation group from both CAPS."""
    python = Path(CLINICADL).with_name("python")
    done = subprocess.run([str(python), "-c", CLINICADL_SPLIT_ROWS, str(tmp_path)], cwd=cohort_tables,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    train = [sys.executable, "-m", "neuroexec", "train", "classification", "caps.tsv", "t1-linear", "tsv.tsv",
             str(tmp_path / "nx"), "--multi_cohort", "--architecture", "Conv4_FC3", "--epochs", "1",
             "--batch_size", "4", "--no-gpu", "--n_proc", "0", "--split", "0", "--quiet"]  # fmt: skip
    done = subprocess.run(train, cwd=cohort_tables, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    keys = ["participant_id", "session_id", "cohort", "diagnosis"]
    for i in range(2):
        for side in ("train", "validation"):
            theirs = pd.read_csv(tmp_path / f"{side}-{i}.tsv", sep="\t", dtype=str)[keys]
            ours = pd.read_csv(tmp_path / f"nx/groups/{side}/split-{i}/data.tsv", sep="\t", dtype=str)[keys]
            pd.testing.assert_frame_equal(ours, theirs)
            assert set(ours["cohort"]) == {"adni", "aibl"} and set(ours["diagnosis"]) == {"AD", "CN"}
    info = json.loads((tmp_path / "nx/maps.json").read_text())
    assert info["multi_cohort"] is True and info["diagnoses"] == ["AD", "CN"]
    predict = [CLINICADL, "predict", str(tmp_path / "nx"), "validation", "--selection_metrics", "loss",
               "--no-gpu", "--n_proc", "0"]  # fmt: skip
    done = subprocess.run(predict, cwd=cohort_tables, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = tmp_path / "nx/split-0/best-loss/validation/validation_image_level_prediction.tsv"
    validation = pd.read_csv(tmp_path / "validation-0.tsv", sep="\t", dtype=str)
    assert sorted(pd.read_csv(result, sep="\t", dtype=str)["participant_id"]) == sorted(
        validation["participant_id"]
    )
