"""Every flag of every seed page is accepted, in ClinicaDL's spelling and dashed; help shows defaults."""

from __future__ import annotations

import pytest

from neuroexec.cli import build_parser, legacy_interpret

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


@pytest.mark.parametrize("command", list(SEEDS))
def test_seed_flags_accepted(command):
    args = build_parser().parse_args(SEEDS[command])
    assert args.func is not None
    assert args.batch_size in (2, 4)


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
    assert args.diagnoses == ["AD"] and args.n_proc == 1 and str(args.transfer_learning_path) == "src"
    assert args.transfer_learning_selection == "loss" and args.deterministic is False
    args = build_parser().parse_args(["train", "image", "autoencoder", "caps", "t1-linear", "split", "maps"])
    assert (args.kind, args.network, args.input_type) == ("image", "autoencoder", "image")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "segmentation", "caps", "t1-linear", "split", "maps"])


def test_parsed_values():
    args = build_parser().parse_args(SEEDS["train"])
    assert args.split == [0, 1] and args.selection_metrics == ["loss", "BA"] and args.gpu is True and args.amp
    args = build_parser().parse_args(SEEDS["predict"])
    assert (
        args.gpu is False
        and args.amp is False
        and args.use_labels is False
        and args.diagnoses == ["AD", "CN"]
    )
    args = build_parser().parse_args(["predict", "m", "g"])
    assert args.gpu is None and args.use_labels is True and args.n_proc == 2 and args.batch_size == 8


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


@pytest.mark.parametrize(
    "command", ["train image", "train regression", "predict", "interpret", "save-tensor"]
)
def test_help_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "default" in text
    if command == "predict":
        assert "batch size (default: 8)" in text and "DataLoader workers (default: 2)" in text
    if command == "interpret":
        assert "(default: 2)" in text and "--target_node" in text


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
