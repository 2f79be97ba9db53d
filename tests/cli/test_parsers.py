"""Every flag of every seed page lands in its option with its value, in ClinicaDL's spelling and dashed;
a command line becomes the spec its flags stand for (--print-spec); help shows defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from neuroexec.cli import (
    build_parser,
    clinicadl_commands,
    legacy_interpret,
    main,
    train_command,
)
from neuroexec.cli.apply_command import cmd_apply
from neuroexec.cli.plan_command import cmd_plan
from neuroexec.cli.unlock_command import cmd_unlock

DATA = ["--caps_directory", "caps", "--participants_tsv", "p.tsv", "--multi_cohort", "--diagnoses", "AD", "CN",
        "--selection_metrics", "loss", "--n_proc", "3", "--batch_size", "4"]  # fmt: skip
SEEDS = {
    # 000 save-tensor
    "save-tensor": ["save-tensor", "maps", "g", "--gpu", *DATA],
    # 001 interpret (newer)
    "interpret": ["interpret", "maps", "g", "n", "--no-gpu", *DATA, "--target_node", "1", "--save_individual", "--overwrite"],
    # 002 train image
    "train": ["train", "image", "cnn", "caps", "t1-linear", "split", "maps", "--transfer_learning_path", "src",
              "--transfer_learning_selection", "best_loss", "--epochs", "2", "--batch_size", "2", "--learning_rate",
              "0.001", "--n_splits", "2", "--split", "0", "--split", "1", "--gpu", "--n_proc", "1", "--amp", "--seed",
              "3", "--deterministic", "--config_file", "c.toml", "--architecture", "Conv4_FC3", "--dropout", "0.1",
              "--selection_metrics", "loss", "BA", "--patience", "2", "--tolerance", "0.1", "--accumulation_steps", "2",
              "--label", "diagnosis", "--diagnoses", "AD", "CN", "--weight_decay", "0", "--optimizer", "SGD"],
    # 003 predict
    "predict": ["predict", "maps", "g", "--no-gpu", "--amp", "--no-amp", *DATA, "--save_tensor", "--save_nifti",
                "--no_labels", "--label", "sex", "--overwrite", "--skip_leak_check"],
}  # fmt: skip


PARSED_DATA = {"caps_directory": Path("caps"), "participants_tsv": Path("p.tsv"), "multi_cohort": True,
               "diagnoses": ["AD", "CN"], "selection_metrics": ["loss"], "n_proc": 3, "batch_size": 4}  # fmt: skip
# What each seed line parses to: every flag it gives, plus the flags it leaves out (print_spec, ...).
PARSED = {
    "save-tensor": {**PARSED_DATA, "func": clinicadl_commands.cmd_save_tensor, "input_maps_directory": Path("maps"),
                    "data_group": "g", "gpu": True, "save_nifti": False, "overwrite": False,
                    "skip_leak_check": False, "print_spec": False, "quiet": False},
    "interpret": {**PARSED_DATA, "func": clinicadl_commands.cmd_interpret, "input_maps_directory": Path("maps"),
                  "data_group": "g", "name": "n", "method": "gradients", "gpu": False, "amp": False,
                  "target_node": 1, "save_individual": True, "overwrite": True, "level_grad_cam": None},
    "train": {"func": train_command.cmd_train, "kind": "image", "network": "cnn", "input_type": "image",
              "caps_directory": Path("caps"), "preprocessing_json": "t1-linear", "tsv_directory": Path("split"),
              "output_maps": Path("maps"), "transfer_path": Path("src"),
              "transfer_selection_metric": "best_loss", "epochs": 2, "batch_size": 2, "learning_rate": 0.001,
              "n_splits": 2, "split": [0, 1], "gpu": True, "n_proc": 1, "amp": True, "seed": 3,
              "deterministic": True, "config_file": Path("c.toml"), "architecture": "Conv4_FC3", "dropout": 0.1,
              "selection_metrics": ["loss", "BA"], "patience": 2, "tolerance": 0.1, "accumulation_steps": 2,
              "label": "diagnosis", "diagnoses": ["AD", "CN"], "weight_decay": 0.0, "optimizer": "SGD",
              "visualization": False, "print_spec": False},
    "predict": {**PARSED_DATA, "func": clinicadl_commands.cmd_predict, "input_maps_directory": Path("maps"),
                "data_group": "g", "gpu": False, "amp": False, "save_tensor": True, "save_nifti": True,
                "use_labels": False, "label": "sex", "overwrite": True, "skip_leak_check": True, "split": None},
}  # fmt: skip


@pytest.mark.parametrize("command", list(SEEDS))
def test_seed_command_lines_parse_to_the_values_they_give(command):
    parsed = vars(build_parser().parse_args(SEEDS[command]))
    assert {key: parsed.get(key, "<missing>") for key in PARSED[command]} == PARSED[command]
    assert type(parsed["batch_size"]) is int and type(parsed.get("learning_rate", 0.0)) is float


def test_flags_left_out_are_not_given_or_their_documented_default():
    """Group commands fall back to ClinicaDL's defaults; train leaves every hyper-parameter "not given"
    (None) so that its --config_file, then the spec's defaults, decide."""
    predict = vars(build_parser().parse_args(["predict", "m", "g"]))
    assert {k: predict[k] for k in ("gpu", "amp", "use_labels", "n_proc", "batch_size", "selection_metrics",
                                    "diagnoses", "split", "caps_directory", "overwrite")} == {
        "gpu": None, "amp": False, "use_labels": True, "n_proc": 2, "batch_size": 8, "selection_metrics": None,
        "diagnoses": None, "split": None, "caps_directory": None, "overwrite": False}  # fmt: skip
    interpret = build_parser().parse_args(["interpret", "m", "g", "n"])
    assert (interpret.batch_size, interpret.n_proc, interpret.target_node) == (8, 2, 0)  # ClinicaDL 1.6.1's
    save = build_parser().parse_args(["save-tensor", "m", "g"])
    assert (save.batch_size, save.n_proc, save.save_nifti) == (2, 2, False) and not hasattr(save, "amp")
    train = vars(build_parser().parse_args(["train", "image", "cnn", "caps", "t1-linear", "split", "maps"]))
    assert {k: train[k] for k in train_command.TRAIN_KEYS} == {
        **dict.fromkeys(train_command.TRAIN_KEYS),
        "visualization": False,
    }


def test_spec_commands_parse_their_spec_and_every_target():
    args = build_parser().parse_args(
        ["apply", "s.toml", "--target", "dataset.*", "--target", "model.*.split"]
    )
    assert (args.func, args.spec, args.target, args.quiet) == (
        cmd_apply,
        Path("s.toml"),
        ["dataset.*", "model.*.split"],
        False,
    )
    args = build_parser().parse_args(["plan", "s.toml", "--json"])
    assert (args.func, args.spec, args.target, args.json) == (
        cmd_plan,
        Path("s.toml"),
        None,
        True,
    )
    args = build_parser().parse_args(["unlock", "maps", "--force"])
    assert (args.func, args.folder, args.force) == (cmd_unlock, Path("maps"), True)


def _printed_spec(argv: list[str], capsys) -> dict:
    assert main([*argv, "--print-spec"]) == 0, capsys.readouterr().err
    return tomllib.loads(capsys.readouterr().out)


def _group_spec(maps: Path, data: dict, group: dict) -> dict:
    """The spec of a group command on `maps` with test_caps / test_tsv as its new data group `test`."""
    return {
        "version": 1,
        "models": {"maps": {"maps": str(maps.resolve())}},
        "datasets": {"test-data": {"caps": str(data["test_caps"]), "participants": str(data["test_tsv"])}},
        "groups": {"test": {"dataset": "test-data", "models": ["maps"], **group}},
    }


def test_predict_command_line_becomes_its_spec(clinicadl_maps, tiny_data, capsys):
    argv = ["predict", str(clinicadl_maps), "test", "--caps_directory", str(tiny_data["test_caps"]),
            "--participants_tsv", str(tiny_data["test_tsv"]), "-d", "AD", "-sm", "loss", "BA", "-np", "3",
            "--batch_size", "4", "--no-gpu", "--no_labels", "--label", "sex", "--skip_leak_check", "-s", "1",
            "--save_nifti"]  # fmt: skip
    assert _printed_spec(argv, capsys) == _group_spec(clinicadl_maps, tiny_data, {
        "predict": True, "skip_leak_check": True, "selection_metrics": ["loss", "BA"], "use_labels": False,
        "label": "sex", "diagnoses": ["AD"], "splits": [1], "save_tensors": {"nifti": True, "tensors": False},
        "compute": {"device": "cpu", "workers": 3, "batch_size": 4}})  # fmt: skip


def test_interpret_and_save_tensor_command_lines_become_their_specs(clinicadl_maps, tiny_data, capsys):
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tiny_data["test_tsv"])]
    argv = ["interpret", str(clinicadl_maps), "test", "n", "grad-cam", *data, "--target_node", "1",
            "--save_individual"]  # fmt: skip
    assert _printed_spec(argv, capsys) == _group_spec(clinicadl_maps, tiny_data, {
        "predict": False, "compute": {"workers": 2, "batch_size": 8},  # ClinicaDL 1.6.1's interpret batch size
        "interpret": [{"name": "n", "method": "grad-cam", "target_node": 1, "save_individual": True}]})  # fmt: skip
    argv = ["save-tensor", str(clinicadl_maps), "test", *data, "--save_nifti", "--batch_size", "3"]
    assert _printed_spec(argv, capsys) == _group_spec(clinicadl_maps, tiny_data, {
        "predict": False, "save_tensors": {"nifti": True}, "compute": {"workers": 2, "batch_size": 3}})  # fmt: skip


def test_train_command_line_becomes_its_spec(tmp_path, tiny_data, capsys):
    maps = tmp_path / "maps"
    argv = ["train", "image", "cnn", str(tiny_data["caps"]), "t1-linear", str(tiny_data["split"]), str(maps),
            "--epochs", "2", "--batch_size", "2", "-lr", "0.001", "-s", "0", "--no-gpu", "-np", "1", "--seed", "3",
            "--deterministic", "-a", "Conv4_FC3", "--dropout", "0.1", "-sm", "loss", "BA", "--patience", "2",
            "--tolerance", "0.1", "-asteps", "2", "-d", "AD", "CN", "-wd", "0", "--optimizer", "SGD"]  # fmt: skip
    assert _printed_spec(argv, capsys) == {
        "version": 1,
        "datasets": {"data": {"caps": str(tiny_data["caps"]), "participants": str(tiny_data["split"] / "train.tsv")}},
        "models": {"cnn": {
            "maps": str(maps.resolve()), "dataset": "data", "task": "classification", "mode": "image",
            "diagnoses": ["AD", "CN"], "architecture": "Conv4_FC3", "dropout": 0.1,
            "split": {"n_splits": 2, "directory": str(tiny_data["kfold"]), "splits": [0]},
            "train": {"epochs": 2, "learning_rate": 0.001, "weight_decay": 0.0, "optimizer": "SGD", "patience": 2,
                      "tolerance": 0.1, "accumulation_steps": 2, "selection_metrics": ["loss", "BA"]},
            "compute": {"device": "cpu", "workers": 1, "batch_size": 2, "seed": 3, "deterministic": True},
        }},
    }  # fmt: skip
    assert not maps.exists()  # --print-spec writes nothing


def test_interpret_takes_clinicadl_1_3_method_argument():
    assert build_parser().parse_args(["interpret", "maps", "g", "n"]).method == "gradients"
    args = build_parser().parse_args(["interpret", "maps", "g", "n", "grad-cam", "--level_grad_cam", "3"])
    assert args.method == "grad-cam" and args.level_grad_cam == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["interpret", "maps", "g", "n", "occlusion"])


def test_clinicadl_1_6_short_flags():
    args = build_parser().parse_args(
        ["predict", "m", "g", "-np", "3", "-d", "AD", "-o", "-sm", "loss", "BA", "-s", "0", "-s", "2"]
    )
    assert args.n_proc == 3 and args.diagnoses == ["AD"] and args.overwrite
    assert args.selection_metrics == ["loss", "BA"] and args.split == [0, 2]
    args = build_parser().parse_args(["interpret", "m", "g", "n", "grad-cam", "--amp", "-np", "1"])
    assert args.amp is True and args.n_proc == 1


def test_train_takes_clinicadl_1_3_task_form_and_its_short_flags():
    args = build_parser().parse_args(
        ["train", "regression", "caps", "extract_image.json", "split", "maps", "-lr", "0.01", "-wd", "0",
         "-a", "Conv4_FC3", "-asteps", "2", "-s", "1", "-sm", "MAE", "-d", "AD", "-np", "1", "-tp", "src",
         "-tsm", "loss", "--nondeterministic"]
    )  # fmt: skip
    assert (args.kind, args.network, args.input_type) == ("regression", "regression", None)
    assert args.learning_rate == 0.01 and args.weight_decay == 0 and args.architecture == "Conv4_FC3"
    assert args.accumulation_steps == 2 and args.split == [1] and args.selection_metrics == ["MAE"]
    assert args.diagnoses == ["AD"] and args.n_proc == 1 and str(args.transfer_path) == "src"
    assert args.transfer_selection_metric == "loss" and args.deterministic is False
    args = build_parser().parse_args(["train", "image", "autoencoder", "caps", "t1-linear", "split", "maps"])
    assert (args.kind, args.network, args.input_type) == ("image", "autoencoder", "image")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "segmentation", "caps", "t1-linear", "split", "maps"])


@pytest.mark.parametrize("command", list(SEEDS))
def test_dashed_spellings(command):
    dashed = [a.replace("_", "-") if a.startswith("--") else a for a in SEEDS[command]]
    assert dashed != SEEDS[command]
    plain = build_parser().parse_args(SEEDS[command])
    assert vars(build_parser().parse_args(dashed)) == vars(plain)


def test_legacy_dashed_spellings():
    dashed = [a.replace("_", "-") if a.startswith("--") else a for a in LEGACY[1:]]
    parser = legacy_interpret.build_parser()
    assert vars(parser.parse_args(dashed)) == vars(parser.parse_args(LEGACY[1:]))


HELP_LINES = {
    "train image": ["batch size (default: 8)", "epochs (default: 20)", "learning rate (default: 0.0001)",
                    "(0: the split directory's count)", "optimizer (default: Adam)", "dropout rate (default: 0.5)",
                    "labels kept (default: all labels)"],
    "train regression": ["label column (default: age)", "seed (default: 0)", "dropout rate (default: 0.0)",
                         "labels kept (default: AD CN)", "the GPU, an error without one", "loss (default: MSELoss)"],
    "predict": ["batch size (default: 8)", "DataLoader workers (default: 2)", "(default: the GPU when present)"],
    "interpret": ["batch size (default: 8)", "output node the gradients explain (default: 0)"],
    "save-tensor": ["batch size (default: 2)", "also save input/output NIfTIs (default: False)"],
}  # fmt: skip


@pytest.mark.parametrize("command", list(HELP_LINES))
def test_help_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # help wraps lines at the terminal's width
    assert [line for line in HELP_LINES[command] if line not in text] == []


LEGACY = ["interpret", "individual", "model", "name", "--use_cpu", "--nproc", "3", "--batch_size", "5", "--selection",
          "best_loss", "best_balanced_accuracy", "--tsv_path", "t", "--caps_dir", "c", "--diagnosis", "CN",
          "--target_diagnosis", "AD", "--baseline", "--keep_true", "--nifti_template_path", "tpl.nii.gz",
          "--multi_cohort", "--vmax", "0.7"]  # fmt: skip


def test_legacy_form_is_told_apart_by_its_first_argument(tmp_path, monkeypatch):
    assert legacy_interpret.wants(LEGACY)
    assert legacy_interpret.wants(["--debug", "interpret", "group", "m", "n"])
    assert not legacy_interpret.wants(["interpret", "maps", "group", "n"])
    assert not legacy_interpret.wants(["predict", "group", "g"])
    # A MAPS folder that happens to be called "group" is the newer form.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "group").mkdir()
    (tmp_path / "group" / "maps.json").write_text("{}")
    assert not legacy_interpret.wants(["interpret", "group", "g", "n"])


def test_legacy_flags_accepted():
    args = legacy_interpret.build_parser().parse_args(LEGACY[1:])
    assert args.level == "individual" and args.use_cpu and args.nproc == 3 and args.batch_size == 5
    assert args.selection == ["best_loss", "best_balanced_accuracy"] and args.diagnosis == "CN"
    assert args.keep_true is True and args.baseline and args.multi_cohort and args.vmax == 0.7
    args = legacy_interpret.build_parser().parse_args(["group", "m", "n", "--no-keep_true"])
    assert args.keep_true is False and args.diagnosis == "AD" and args.vmax == 0.5 and args.selection is None
    assert legacy_interpret.build_parser().parse_args(["group", "m", "n"]).keep_true is None
    with pytest.raises(SystemExit):
        legacy_interpret.build_parser().parse_args(["group", "m", "n", "--selection", "best_MAE"])


def test_legacy_help(capsys):
    from neuroexec.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["interpret", "group", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--use_cpu", "--nproc", "--selection", "--tsv_path", "--caps_dir", "--diagnosis", "--target_diagnosis",
                 "--baseline", "--keep_true", "--no-keep_true", "--nifti_template_path", "--multi_cohort", "--vmax"):  # fmt: skip
        assert flag in text
    assert "(default: 0.5)" in text and "(default: AD)" in text


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize(
    "command",
    ["train image", "train patch", "train classification", "train regression", "train reconstruction",
     "predict", "interpret", "save-tensor", "legacy interpret"],
)  # fmt: skip
def test_help_gives_every_flag_its_default(command):
    """Each option's help line (as --help renders it) says what its default is."""
    if command == "legacy interpret":
        parser = legacy_interpret.build_parser()
    else:
        parser = build_parser()
        for word in command.split():
            parser = _subparsers(parser)[word]
    assert any(action.option_strings and action.dest != "help" for action in parser._actions)
    formatter = parser._get_formatter()
    missing = [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings
        and action.dest != "help"
        and "default" not in formatter._get_help_string(action)
    ]
    assert missing == []
