"""`train resume MAPS [--split]`: an interrupted command-line training, resumed, equals an uninterrupted one
bit for bit; --split resumes those splits only; a MAPS ClinicaDL left half-trained is refused, saying why.
`train from_json CONFIG_JSON MAPS [--split]`: a maps.json trains the model it describes again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuroexec.cli import main
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.training.resume import INTERRUPT_ENV
from tests.compat.conftest import make_clinicadl_maps

EPOCHS = 2
FAST = ["--no-gpu", "-a", "TinyCNN", "--epochs", str(EPOCHS), "--batch_size", "2", "-np", "0", "-lr", "1e-3",
        "--deterministic", "--quiet"]  # fmt: skip


def train_argv(data: dict, maps: Path, *flags: str) -> list[str]:
    return [
        "train",
        "classification",
        str(data["caps"]),
        "t1-linear",
        str(data["split"]),
        str(maps),
        *FAST,
        *flags,
    ]


def interrupted(monkeypatch, argv: list[str], after_epoch: int) -> None:
    """Run argv, stopped (as Ctrl-C would) right after the checkpoint of epoch `after_epoch`."""
    with monkeypatch.context() as m:
        m.setenv(INTERRUPT_ENV, str(after_epoch))
        assert main(argv) == 130


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_an_interrupted_command_bit_identically(tmp_path, tiny_data, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    # Both are stopped after the last epoch, so that their final weights (tmp/checkpoint.pth.tar, which a
    # finished training deletes) can be compared; b is stopped after its first epoch too, then resumed.
    interrupted(monkeypatch, train_argv(tiny_data, a, "-s", "0"), EPOCHS - 1)
    interrupted(monkeypatch, train_argv(tiny_data, b, "-s", "0"), 0)
    assert load_checkpoint(MapsLayout(b).checkpoint(0))["epoch"] == 0
    interrupted(monkeypatch, ["train", "resume", str(b), "--quiet"], EPOCHS - 1)
    assert "split-0: training resumed after epoch 0" in MapsLayout(b).staged_information_log(0).read_text()
    final_a, final_b = (weights(MapsLayout(m).checkpoint(0)) for m in (a, b))
    assert same(final_a, final_b)
    assert main(["train", "resume", str(b), "--quiet"]) == 0  # the last step: the split is published
    assert (b / "split-0" / "best-loss" / "model.pth.tar").is_file() and not MapsLayout(b).checkpoint(
        0
    ).exists()


def test_resume_split_resumes_those_splits_only(tmp_path, tiny_data, monkeypatch, capsys):
    maps = tmp_path / "m"
    interrupted(
        monkeypatch, train_argv(tiny_data, maps, "--epochs", "1"), 0
    )  # split 0 stopped, 1 not started
    layout = MapsLayout(maps)
    assert layout.checkpoint(0).is_file() and not (maps / "split-1").exists()
    assert main(["train", "resume", str(maps), "--split", "1", "--quiet"]) == 0
    assert (maps / "split-1" / "best-loss" / "model.pth.tar").is_file()
    assert layout.checkpoint(0).is_file() and not (maps / "split-0" / "best-loss").exists()  # left as it was
    capsys.readouterr()
    assert main(["train", "resume", str(maps), "--quiet"]) == 0
    assert (maps / "split-0" / "best-loss" / "model.pth.tar").is_file() and not layout.checkpoint(0).exists()
    assert main(["train", "resume", str(maps), "--split", "7"]) == 2  # not a split of this training
    assert "split-7" in capsys.readouterr().err


def test_resume_split_outside_the_recorded_splits_is_refused(tmp_path, tiny_data, capsys):
    maps = tmp_path / "m"
    assert main(train_argv(tiny_data, maps, "--epochs", "1", "-s", "0")) == 0
    spec = MapsLayout(maps).command_spec("train")
    before = spec.read_text()
    capsys.readouterr()
    assert main(["train", "resume", str(maps), "-s", "1"]) == 2
    err = capsys.readouterr().err
    assert (
        "split(s) [1] are not trained by this training (its splits: [0])" in err
        and spec.read_text() == before
    )
    assert main(["train", "resume", str(maps), "-s", "0", "--quiet"]) == 0  # done: nothing to do
    assert "Nothing to do" in capsys.readouterr().out


def test_resume_refuses_what_it_cannot_continue(tmp_path, tiny_data, capsys):
    clinicadl = make_clinicadl_maps(tmp_path / "cdl", tiny_data)
    tmp = clinicadl / "split-1" / "tmp"
    tmp.mkdir()
    state = torch.load(clinicadl / "split-1" / "best-loss" / "model.pth.tar", weights_only=True)
    torch.save({**state, "epoch": 1}, tmp / "checkpoint.pth.tar")
    torch.save({"optimizer": {"state": {}, "param_groups": []}, "epoch": 1, "name": "Conv4_FC3"},
               tmp / "optimizer.pth.tar")  # fmt: skip
    assert main(["train", "resume", str(clinicadl)]) == 2
    err = capsys.readouterr().err
    assert str(tmp) in err and "ClinicaDL's checkpoint" in err and "no random-number state" in err
    assert "clinicadl train resume" in err and "neuroexec train from_json" in err and "Traceback" not in err
    assert main(["train", "resume", str(tmp_path / "nothing")]) == 2
    assert "no training to resume here" in capsys.readouterr().err
    spec_trained = tmp_path / "spec_maps"
    MapsLayout(spec_trained).neuroexec_dir.mkdir(parents=True)
    assert main(["train", "resume", str(spec_trained)]) == 2
    assert "trained by a spec" in capsys.readouterr().err


def test_from_json_trains_the_model_a_maps_json_describes(tmp_path, tiny_data):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(train_argv(tiny_data, a, "--epochs", "1", "-s", "1", "--seed", "3")) == 0
    assert main(["train", "from_json", str(a / "maps.json"), str(b), "--split", "1", "--quiet"]) == 0
    params_a, params_b = (json.loads((m / "maps.json").read_text()) for m in (a, b))
    assert params_a == params_b  # the same parameters, seed included
    best = "split-1/best-loss/model.pth.tar"
    assert same(weights(a / best), weights(b / best))  # deterministic: the same model
    assert not (b / "split-0").exists()  # the JSON's split is not read: --split chooses
    assert main(["train", "resume", str(b), "--quiet"]) == 0  # from_json's spec is the one resume applies


def test_from_json_of_a_clinicadl_maps_json(tmp_path, tiny_data, capsys):
    source = make_clinicadl_maps(tmp_path / "cdl", tiny_data)
    out = tmp_path / "out"
    assert main(["train", "from_json", str(source / "maps.json"), str(out), "-s", "1", "--print-spec"]) == 0
    text = capsys.readouterr().out
    for line in ('architecture = "Conv4_FC3"', "dropout = 0.0", "epochs = 3",
                 "batch_size = 2", 'device = "cpu"', "splits = [\n    1,\n]", f'directory = "{tiny_data["kfold"]}"',
                 f'caps = "{tiny_data["caps"]}"', "AD = 0"):  # fmt: skip
        assert line in text, line
    assert "normalization" not in text and "[models.classification.transfer]" not in text  # BatchNorm, ""
    assert "latent_space_size" not in text  # its 2 is a VAE's option, which Conv4_FC3 does not read
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads((source / "maps.json").read_text()), "network_task": None}))
    assert main(["train", "from_json", str(broken), str(out)]) == 2
    assert "needs network_task" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["from_json", "c.json", "m"], ["resume", "m"]])
def test_the_commands_parse(command):
    from neuroexec.cli import build_parser

    args = build_parser().parse_args(["train", *command, "-s", "0", "-s", "2"])
    assert args.split == [0, 2]
