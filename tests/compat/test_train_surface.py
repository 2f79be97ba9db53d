"""ClinicaDL 1.6.1's whole `train classification|regression|reconstruction` surface: every option is a flag
with ClinicaDL's name, short form, negation and choices, and lands in its spec key; the task form's
defaults are ClinicaDL's; its train_config.toml template (and a JSON config) is read as ClinicaDL reads
it; what neuroexec does not implement is refused, never ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuroexec.cli import build_parser, main
from neuroexec.cli.train_command import train_options
from neuroexec.compat.clinicadl_config import read_train_config
from neuroexec.compat.train_options import OPTIONS, defaults
from neuroexec.compat.train_spec import TrainOptions, train_spec_dict
from neuroexec.errors import InputError

# The sections, keys and values of ClinicaDL 1.6.1's resources/config/train_config.toml (its comments left
# out); tests/compat/test_config_with_clinicadl.py reads ClinicaDL's own file.
TEMPLATE = """
[Model]
architecture = "default"
multi_network = false
ssda_network = false
[Architecture]
dropout = 0.0
latent_space_size = 128
feature_size = 1024
n_conv = 4
io_layer_channels = 8
recons_weight = 1
kl_weight = 1
normalization = "batch"
[Classification]
selection_metrics = ["loss"]
label = "diagnosis"
label_code = {}
selection_threshold = 0.0
loss = "CrossEntropyLoss"
[Regression]
selection_metrics = ["loss"]
label = "age"
loss = "MSELoss"
[Reconstruction]
selection_metrics = ["loss"]
loss = "MSELoss"
[Computational]
gpu = true
n_proc = 2
batch_size = 8
evaluation_steps = 0
fully_sharded_data_parallel = false
amp = false
[Reproducibility]
seed = 0
deterministic = false
compensation = "memory"
track_exp = ""
[Transfer_learning]
transfer_path = false
transfer_selection_metric = "loss"
nb_unfrozen_layer = 0
[Mode]
use_extracted_features = false
[Data]
multi_cohort = false
diagnoses = ["AD", "CN"]
baseline = false
valid_longitudinal = false
normalize = true
data_augmentation = false
sampler = "random"
size_reduction=false
size_reduction_factor=2
caps_target = ""
tsv_target_lab = ""
tsv_target_unlab = ""
preprocessing_dict_target = ""
[Cross_validation]
n_splits = 0
split = []
[Optimization]
optimizer = "Adam"
epochs = 20
learning_rate = 1e-4
adaptive_learning_rate = false
weight_decay = 1e-4
patience = 0
tolerance = 0.0
accumulation_steps = 1
profiler = false
save_all_models = false
[Informations]
emissions_calculator = false
"""
# ClinicaDL 1.6.1's train_option.py: each task command's options (long names; `/` a negation) and short forms.
CLINICADL_FLAGS = (
    "--config_file -c --gpu/--no-gpu --n_proc -np --batch_size --evaluation_steps -esteps "
    "--fully_sharded_data_parallel -fsdp --amp/--no-amp --seed --deterministic/--nondeterministic --compensation "
    "--save_all_models/--save_only_best_model --architecture -a --multi_network/--single_network --ssda_network "
    "--multi_cohort/--single_cohort --diagnoses --baseline/--longitudinal --valid_longitudinal/--valid_baseline "
    "--normalize/--unnormalize --data_augmentation -da --sampler --caps_target --tsv_target_lab --tsv_target_unlab "
    "--preprocessing_dict_target --n_splits --split -s --optimizer --epochs --learning_rate -lr "
    "--adaptive_learning_rate -alr --weight_decay -wd --dropout --patience --tolerance --accumulation_steps "
    "-asteps --profiler/--no-profiler --track_exp -te --transfer_path -tp --transfer_selection_metric -tsm "
    "--nb_unfrozen_layer -nul --selection_metrics -sm --loss -l --calculate_emissions/--dont_calculate_emissions"
).split()
TASK_FLAGS = {
    "classification": ["--label", "--selection_threshold"],
    "regression": ["--label"],
    "reconstruction": [],
}


def parser_of(task: str):
    action = next(a for a in build_parser()._actions if a.dest == "command")
    train = action.choices["train"]
    kinds = next(a for a in train._actions if a.dest == "kind")
    return kinds.choices[task]


@pytest.mark.parametrize("task", list(TASK_FLAGS))
def test_every_clinicadl_flag_of_the_task_is_accepted(task):
    known = {s for a in parser_of(task)._actions for s in a.option_strings}
    wanted = [f for spec in [*CLINICADL_FLAGS, *TASK_FLAGS[task]] for f in spec.split("/")]
    assert [f for f in wanted if f not in known] == []
    other = {"--label", "--selection_threshold"} - set(TASK_FLAGS[task])
    assert not other & known  # ClinicaDL's task options of the other tasks are not this one's


def options_of(tmp_path, tiny_data, task: str, *flags: str) -> dict:
    argv = [
        "train",
        task,
        str(tiny_data["caps"]),
        "t1-linear",
        str(tiny_data["split"]),
        str(tmp_path / "m"),
        *flags,
    ]
    return train_options(build_parser().parse_args(argv), task)


def doc_of(tmp_path, tiny_data, task: str, *flags: str) -> dict:
    """The spec (a dict, not validated: the behaviour behind the keys is other parts' work) of a command."""
    options = options_of(tmp_path, tiny_data, task, *flags)
    opts = TrainOptions(task, tiny_data["caps"], "t1-linear", tiny_data["split"], tmp_path / "m", options)
    return train_spec_dict(opts)


def at(doc: dict, path: str):
    node = doc
    for key in path.split("."):
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return None if node == {} else node


MAPPED = [
    (["--unnormalize"], "datasets.data.normalize", False),
    (["--normalize"], "datasets.data.normalize", True),
    (["--baseline"], "datasets.data.baseline", True),
    (["--longitudinal"], "datasets.data.baseline", False),
    (["--valid_longitudinal"], "M.split.valid_longitudinal", True),
    (["--valid_baseline"], "M.split.valid_longitudinal", None),
    (["-da", "Noise", "-da", "Motion"], "M.train.data_augmentation", ["Noise", "Motion"]),
    (["--data_augmentation", "None"], "M.train.data_augmentation", None),
    (["--sampler", "weighted"], "M.train.sampler", "weighted"),
    (["-l", "MultiMarginLoss"], "M.train.loss", "MultiMarginLoss"),
    (["-l", "CrossEntropyLoss"], "M.train.loss", None),  # the task's default loss, the spec's too
    (["--optimizer", "RMSprop"], "M.train.optimizer", "RMSprop"),
    (["-alr"], "M.train.adaptive_learning_rate", True),
    (["-esteps", "3"], "M.train.evaluation_steps", 3),
    (["--save_all_models"], "M.train.save_all_models", True),
    (["--save_only_best_model"], "M.train.save_all_models", None),
    (["--profiler"], "M.train.profiler", True),
    (["--no-profiler"], "M.train.profiler", None),
    (["-te", "mlflow"], "M.train.track_exp", "mlflow"),
    (["--calculate_emissions"], "M.train.calculate_emissions", True),
    (["--dont_calculate_emissions"], "M.train.calculate_emissions", None),
    (["-fsdp"], "M.compute.fully_sharded_data_parallel", True),
    (["--compensation", "time"], "M.compute.compensation", "time"),
    (["--deterministic"], "M.compute.deterministic", True),
    (["--nondeterministic"], "M.compute.deterministic", False),
    (["-np", "3"], "M.compute.workers", 3),
    (["--batch_size", "3"], "M.compute.batch_size", 3),
    (["--seed", "5"], "M.compute.seed", 5),
    (["-a", "Conv4_FC3"], "M.architecture", "Conv4_FC3"),
    (["--dropout", "0.25"], "M.dropout", 0.25),
    (["-d", "AD", "MCI"], "M.diagnoses", ["AD", "MCI"]),
    (["--n_splits", "1"], "M.split.n_splits", 1),
    (["-s", "1", "-s", "0"], "M.split.splits", [0, 1]),
    (["--epochs", "3"], "M.train.epochs", 3),
    (["-lr", "0.01"], "M.train.learning_rate", 0.01),
    (["-wd", "0.5"], "M.train.weight_decay", 0.5),
    (["--patience", "4"], "M.train.patience", 4),
    (["--tolerance", "0.1"], "M.train.tolerance", 0.1),
    (["-asteps", "2"], "M.train.accumulation_steps", 2),
    (["--label", "sex"], "M.label", "sex"),
    (["-sm", "loss", "-sm", "balanced_accuracy"], "M.train.selection_metrics", ["loss", "BA"]),
    (["--selection_threshold", "0.3"], "M.selection_threshold", 0.3),
    (["--multi_cohort", "--single_cohort"], "datasets.data.cohorts", None),
    (["--multi_network", "--single_network"], "M.multi_network", None),
]


@pytest.mark.parametrize(("flags", "key", "value"), MAPPED, ids=[" ".join(m[0]) for m in MAPPED])
def test_each_flag_lands_in_its_spec_key(tmp_path, tiny_data, flags, key, value):
    doc = doc_of(tmp_path, tiny_data, "classification", "--no-gpu", *flags)
    assert at(doc, key.replace("M.", "models.classification.")) == value


def test_task_losses_and_their_choices(tmp_path, tiny_data):
    doc = doc_of(tmp_path, tiny_data, "regression", "--no-gpu", "--loss", "HuberLoss")
    assert doc["models"]["regression"]["train"]["loss"] == "HuberLoss"
    doc = doc_of(tmp_path, tiny_data, "reconstruction", "--no-gpu", "-l", "L1Loss")
    assert doc["models"]["reconstruction"]["train"]["loss"] == "L1Loss"
    with pytest.raises(SystemExit):  # ClinicaDL's choices per task
        options_of(tmp_path, tiny_data, "classification", "--loss", "MSELoss")
    with pytest.raises(SystemExit):
        options_of(tmp_path, tiny_data, "reconstruction", "--label", "age")


def test_transfer_options(tmp_path, tiny_data, clinicadl_maps):
    doc = doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-tp", str(clinicadl_maps), "-nul", "2")
    # ClinicaDL 1.6.1's transfer selection: the loss (the older form took best balanced accuracy)
    assert doc["models"]["classification"]["transfer"] == {
        "maps": str(clinicadl_maps), "selection": "loss", "nb_unfrozen_layer": 2}  # fmt: skip
    doc = doc_of(
        tmp_path,
        tiny_data,
        "classification",
        "--no-gpu",
        "--transfer_path",
        str(clinicadl_maps),
        "-tsm",
        "BA",
    )
    assert doc["models"]["classification"]["transfer"]["selection"] == "BA"
    with pytest.raises(InputError, match="--nb_unfrozen_layer / nb_unfrozen_layer.*--transfer_path"):
        doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-nul", "2")


def test_defaults_are_clinicadls(tmp_path, tiny_data):
    model = doc_of(tmp_path, tiny_data, "classification", "--no-gpu")["models"]["classification"]
    assert (model["dropout"], model["diagnoses"], model["architecture"], model["label"]) == (
        0.0, ["AD", "CN"], "Conv5_FC3", "diagnosis")  # fmt: skip
    assert model["train"] == {"epochs": 20, "learning_rate": 1e-4, "weight_decay": 1e-4, "optimizer": "Adam",
                              "patience": 0, "tolerance": 0.0, "accumulation_steps": 1,
                              "selection_metrics": ["loss"]}  # fmt: skip
    assert model["compute"] == {"device": "cpu", "amp": False, "workers": 2, "batch_size": 8, "seed": 0,
                                "deterministic": False}  # fmt: skip
    regression = doc_of(tmp_path, tiny_data, "regression", "--no-gpu")["models"]["regression"]
    assert (regression["label"], regression["architecture"]) == ("age", "Conv5_FC3")
    reconstruction = doc_of(tmp_path, tiny_data, "reconstruction", "--no-gpu")["models"]["reconstruction"]
    assert reconstruction["architecture"] == "AE_Conv5_FC3" and "label" not in reconstruction
    # the older `train image cnn` form keeps the spec's defaults (README: ClinicaDL's train)
    older = TrainOptions("cnn", tiny_data["caps"], "t1-linear", tiny_data["split"], tmp_path / "m", {})
    older = train_spec_dict(older)["models"]["cnn"]
    assert not {"dropout", "diagnoses", "architecture"} & set(older) and "device" not in older.get(
        "compute", {}
    )


def test_gpu_is_clinicadls_default_and_amp_is_float16(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no GPU is available.*give --no-gpu"):
        doc_of(tmp_path, tiny_data, "classification")
    with pytest.raises(InputError, match=r"\[--amp\].*needs the GPU"):
        doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "--amp")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    compute = doc_of(tmp_path, tiny_data, "classification", "--amp")["models"]["classification"]["compute"]
    assert (compute["device"], compute["amp"], compute["amp_dtype"]) == ("cuda", True, "float16")
    compute = doc_of(tmp_path, tiny_data, "classification", "--gpu", "--no-amp")["models"]["classification"][
        "compute"
    ]
    assert (compute["device"], compute["amp"], "amp_dtype" in compute) == ("cuda", False, False)


def test_the_cpu_default_error_is_one_line_exit_2(tmp_path, tiny_data, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = [
        "train",
        "classification",
        str(tiny_data["caps"]),
        "t1-linear",
        str(tiny_data["split"]),
        str(tmp_path / "m"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "--no-gpu" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "m" / "split-0").exists()
    )


def test_fsdp_in_one_process_is_one_line_exit_2_naming_torchrun(tmp_path, tiny_data, monkeypatch, capsys):
    # -fsdp trains under torchrun (tests/training/test_fsdp.py); alone, nothing is written
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["train", "classification", str(tiny_data["caps"]), "t1-linear", str(tiny_data["split"])]
    assert main([*argv, str(tmp_path / "m"), "--no-gpu", "-fsdp", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "fully_sharded_data_parallel" in err and "torchrun --nproc-per-node N" in err
    assert "-m neuroexec train ... -fsdp" in err and "drop -fsdp" in err and "apply SPEC" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m" / "split-0").exists()


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--ssda_network"], "ssda_network = True: SSDA"),
        (["--caps_target", "x"], "caps_target = 'x': SSDA's target data"),
        (["--tsv_target_lab", "x"], "tsv_target_lab"),
        (["--tsv_target_unlab", "x"], "tsv_target_unlab"),
        (["--preprocessing_dict_target", "x"], "preprocessing_dict_target"),
    ],
)
def test_out_of_scope_options_are_refused(tmp_path, tiny_data, flags, said):
    with pytest.raises(InputError, match=said):
        doc_of(tmp_path, tiny_data, "classification", "--no-gpu", *flags)


def test_the_template_config_is_read_as_clinicadl_reads_it(tmp_path, tiny_data):
    config = tmp_path / "train_config.toml"
    config.write_text(TEMPLATE + "[Random_Search]\nn_convblocks = [3, 5]\n")
    for task in ("classification", "regression", "reconstruction"):
        options = read_train_config(config, task)
        assert options == {k: v for k, v in defaults(task).items()}  # only the task's own section
        assert "label_code" not in options or options["label_code"] == {}
    doc = doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-c", str(config))
    assert doc == doc_of(tmp_path, tiny_data, "classification", "--no-gpu")  # the template is the defaults
    assert "label_code" not in doc["models"]["classification"]  # {}: none, the labels sorted
    doc = doc_of(tmp_path, tiny_data, "reconstruction", "--no-gpu", "-c", str(config))
    assert doc["models"]["reconstruction"]["architecture"] == "AE_Conv5_FC3"  # "default"


def test_config_values_and_flags_over_them(tmp_path, tiny_data):
    config = tmp_path / "c.toml"
    body = TEMPLATE.replace('architecture = "default"', 'architecture = "Conv4_FC3"')
    body = body.replace("latent_space_size = 128", "latent_space_size = 16").replace('"batch"', '"group"')
    body = body.replace("label_code = {}", "label_code = { CN = 0, AD = 1 }").replace(
        "size_reduction=false", "size_reduction=true"
    )
    body = (
        body.replace("epochs = 20", "epochs = 7")
        .replace("[Data]", "[Data]\n")
        .replace("gpu = true", "gpu = false")
    )
    config.write_text(body)
    model = doc_of(tmp_path, tiny_data, "classification", "-c", str(config), "--epochs", "2")["models"][
        "classification"
    ]
    assert model["architecture"] == "Conv4_FC3" and model["train"]["epochs"] == 2  # the flag over the file
    assert "architecture_options" not in model  # the VAE keys Conv4_FC3 does not read: ignored, as ClinicaDL
    assert model["label_code"] == {"CN": 0, "AD": 1} and model["size_reduction_factor"] == 2
    assert model["compute"]["device"] == "cpu"
    model = doc_of(tmp_path, tiny_data, "classification", "-c", str(config), "--gpu", "--no-gpu")["models"]
    assert model["classification"]["train"]["epochs"] == 7
    model = doc_of(tmp_path, tiny_data, "reconstruction", "-c", str(config), "-a", "CVAE_3D")["models"]
    assert model["reconstruction"]["architecture_options"] == {"latent_space_size": 16}  # a VAE reads it


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (("[Mode]", "[Mode]\nfrobnicate = 1"), "[Mode] frobnicate: unknown option"),
        (
            ("[Optimization]", "[Optimization]\nseed = 1"),
            "[Optimization] seed: not an option of [Optimization]",
        ),
        (("[Regression]", "[Regression]\nselection_threshold = 0.2"), "[Regression] selection_threshold"),
        (("[Model]", "[Models]\nx = 1\n[Model]"), "[Models]: not a section"),
    ],
)
def test_unknown_or_misplaced_keys_are_errors(tmp_path, edit, said):
    config = tmp_path / "c.toml"
    config.write_text(TEMPLATE.replace(*edit))
    with pytest.raises(InputError) as err:
        read_train_config(config, "classification")  # every section is checked, the other tasks' too
    assert said in str(err.value)


def test_a_single_value_where_clinicadl_takes_a_list(tmp_path, tiny_data):
    config = tmp_path / "c.toml"
    config.write_text('[Data]\ndiagnoses = "AD"\n[Classification]\nselection_metrics = "BA"\n')
    model = doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-c", str(config))["models"][
        "classification"
    ]
    assert model["diagnoses"] == ["AD"] and model["train"]["selection_metrics"] == ["BA"]


def test_out_of_scope_config_values_are_refused(tmp_path, tiny_data):
    config = tmp_path / "c.toml"
    config.write_text(TEMPLATE.replace("use_extracted_features = false", "use_extracted_features = true"))
    with pytest.raises(InputError, match="use_extracted_features = True: ClinicaDL 1.6.1 reads it nowhere"):
        doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-c", str(config))
    config.write_text(TEMPLATE.replace('caps_target = ""', 'caps_target = "/target"'))
    with pytest.raises(InputError, match="caps_target"):
        doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-c", str(config))
    config.write_text(TEMPLATE.replace('sampler = "random"', 'sampler = "balanced"'))
    with pytest.raises(
        InputError, match="sampler = 'balanced' is not one of ClinicaDL's choices: random, weighted"
    ):
        doc_of(tmp_path, tiny_data, "classification", "--no-gpu", "-c", str(config))


def test_a_json_config(tmp_path, tiny_data):
    config = tmp_path / "c.json"
    # maps.json's keys, older names too (model, use_cpu, nondeterministic), and its computed ones
    config.write_text(json.dumps({"model": "Conv4_FC3", "use_cpu": True, "nondeterministic": False, "epochs": 3,
                                  "caps_directory": "/elsewhere", "input_size": [1, 2, 2, 2], "split": 1}))  # fmt: skip
    assert read_train_config(config, "classification") == {
        "architecture": "Conv4_FC3", "gpu": False, "deterministic": True, "epochs": 3, "split": [1]}  # fmt: skip
    model = doc_of(tmp_path, tiny_data, "classification", "-c", str(config))["models"]["classification"]
    assert model["architecture"] == "Conv4_FC3" and model["compute"]["deterministic"] is True
    assert model["split"]["splits"] == [1]
    config.write_text(json.dumps({"epochs": 3, "convolutions": {}}))
    with pytest.raises(InputError, match="unknown ClinicaDL parameter.*convolutions"):
        read_train_config(config, "classification")
    other = tmp_path / "c.yaml"
    other.write_text("epochs: 3")
    with pytest.raises(InputError, match="a .toml or a .json"):
        read_train_config(other, "classification")


def test_table_defaults_cover_every_template_key():
    """Every key of the template is an option of the table, under its section, with its value."""
    import tomllib

    template = tomllib.loads(TEMPLATE)
    for section, table in template.items():
        for key, value in table.items():
            assert key in OPTIONS, key
            if section not in ("Classification", "Regression", "Reconstruction"):
                assert (OPTIONS[key].section, OPTIONS[key].default) == (section, value), key
            else:
                assert defaults(section.lower())[key] == value, key


def test_one_epoch_from_the_template_with_overrides(tmp_path, tiny_data):
    config = tmp_path / "train_config.toml"
    config.write_text(TEMPLATE)
    maps = tmp_path / "maps"
    argv = ["train", "classification", str(tiny_data["caps"]), "t1-linear", str(tiny_data["split"]), str(maps),
            "-c", str(config), "--no-gpu", "-a", "TinyCNN", "--epochs", "1", "--batch_size", "2", "-np", "0",
            "-s", "0", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    params = json.loads((maps / "maps.json").read_text())
    assert (params["architecture"], params["dropout"], params["diagnoses"], params["epochs"]) == (
        "TinyCNN", 0.0, ["AD", "CN"], 1)  # fmt: skip
    assert (params["gpu"], params["batch_size"], params["transfer_selection_metric"]) == (False, 2, "loss")
    assert (maps / "split-0" / "best-loss" / "model.pth.tar").is_file() and not Path(
        maps / "split-1"
    ).exists()


def test_a_vae_loss_from_a_config_file(tmp_path, tiny_data):
    # ClinicaDL's config files reach get_criterion, which takes the VAE losses its VAEs need.
    config = tmp_path / "vae.toml"
    config.write_text(
        '[Model]\narchitecture = "VanillaDenseVAE"\n[Reconstruction]\nloss = "VAEBernoulliLoss"\n'
    )
    doc = doc_of(tmp_path, tiny_data, "reconstruction", "--no-gpu", "--config_file", str(config))
    assert doc["models"]["reconstruction"]["train"]["loss"] == "VAEBernoulliLoss"
    with pytest.raises(SystemExit):  # ClinicaDL's --loss offers none of them: neither does neuroexec's
        options_of(tmp_path, tiny_data, "reconstruction", "--loss", "VAEBernoulliLoss")
