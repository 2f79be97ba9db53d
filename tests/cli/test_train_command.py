"""`neuroexec train image cnn ...`: the same MAPS as its printed spec, re-run is a no-op, transfer from an
older-generation model folder, ClinicaDL config file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import torch

from neuroexec.cli import main
from neuroexec.maps.info import read_maps_info


def files(root: Path) -> set[str]:
    skip = {".neuroexec", "tensorboard"}
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not skip & set(p.parts)}


def test_train_command_equals_its_spec(tmp_path, tiny_data, legacy_model, capsys):
    config = tmp_path / "config.toml"
    config.write_text(
        '[Model]\narchitecture = "Conv4_FC3"\n[Optimization]\nepochs = 3\n[Reproducibility]\ndeterministic = true\n'
    )
    argv = ["train", "image", "cnn", str(tiny_data["caps"]), "t1-linear", str(tiny_data["split"]), "", "--epochs", "1",
            "--batch_size", "2", "--no-gpu", "--n_proc", "0", "--split", "0", "--config_file", str(config),
            "--transfer_learning_path", str(legacy_model), "--transfer_learning_selection", "best_loss", "--quiet"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    argv[6] = str(a)
    assert main(argv) == 0
    capsys.readouterr()
    argv[6] = str(b)
    assert main([*argv, "--print-spec"]) == 0
    spec = tmp_path / "b.toml"
    spec.write_text(capsys.readouterr().out)
    assert (
        "epochs = 1" in spec.read_text() and 'architecture = "Conv4_FC3"' in spec.read_text()
    )  # flag over config
    assert f'maps = "{legacy_model}"' in spec.read_text()  # the older model folder, read as is
    assert main(["apply", str(spec), "--quiet"]) == 0
    assert files(a) == files(b)
    assert "split-0/best-loss/model.pth.tar" in files(a) and "split-1" not in {
        f.split("/")[0] for f in files(a)
    }
    wa = torch.load(a / "split-0/best-loss/model.pth.tar", weights_only=True)
    wb = torch.load(b / "split-0/best-loss/model.pth.tar", weights_only=True)
    assert wa["name"] == "Conv4_FC3" and set(wa["model"]) == set(wb["model"])
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])  # deterministic, same seed
    info = read_maps_info(a)
    assert info.architecture == "Conv4_FC3" and info.splits == (0,)
    capsys.readouterr()
    argv[6] = str(a)
    assert main(argv) == 0
    assert "Nothing to do" in capsys.readouterr().out


def test_unknown_config_option_is_exit_2(tmp_path, tiny_data, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[Model]\nwhatever = 1\n")
    argv = ["train", "image", "cnn", str(tiny_data["caps"]), "t1-linear", str(tiny_data["split"]), str(tmp_path / "m"),
            "--config_file", str(config)]  # fmt: skip
    assert main(argv) == 2
    assert "[Model] whatever: unknown option" in capsys.readouterr().err


def test_train_task_form_trains_a_regression_on_age_by_default(tmp_path, tiny_data, capsys):
    # ClinicaDL 1.3+'s `train regression CAPS PREPROCESSING_JSON TSV_DIRECTORY MAPS`, whose default label
    # is age, as ClinicaDL's train_config.toml says.
    split = tmp_path / "split"
    shutil.copytree(tiny_data["split"], split)
    for tsv in split.rglob("*.tsv"):
        frame = pd.read_csv(tsv, sep="\t", dtype=str)
        frame["age"] = [str(60 + int(p[-1])) for p in frame["participant_id"]]
        frame.to_csv(tsv, sep="\t", index=False)
    maps = tmp_path / "maps"
    argv = ["train", "regression", str(tiny_data["caps"]), "t1-linear", str(split), str(maps), "--epochs", "1",
            "--batch_size", "2", "--no-gpu", "-np", "0", "-s", "0", "-a", "Conv4_FC3", "--quiet"]  # fmt: skip
    assert main([*argv, "--print-spec"]) == 0
    printed = capsys.readouterr().out
    assert (
        "[models.regression]" in printed and 'task = "regression"' in printed and 'label = "age"' in printed
    )
    assert main(argv) == 0
    info = read_maps_info(maps)
    assert (info.task, info.label, info.splits, info.architecture) == ("regression", "age", (0,), "Conv4_FC3")
    assert (maps / "split-0/best-loss/validation/validation_image_level_metrics.tsv").is_file()
    assert main(["train", "classification", str(tiny_data["caps"]), "t1-linear", str(split), str(maps),
                 "--visualization"]) == 2  # fmt: skip
    assert "--visualization is for autoencoders" in capsys.readouterr().err
