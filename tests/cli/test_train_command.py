"""`neuroexec train image cnn ...`: the same MAPS as its printed spec, re-run is a no-op, transfer from an
older-generation model folder, ClinicaDL config file."""

from __future__ import annotations

from pathlib import Path

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
