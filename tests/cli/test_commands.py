"""The ClinicaDL-style commands on tiny data: same files as the equivalent spec, --print-spec round trip,
a hand-built ClinicaDL 1.x MAPS predicted with and interpreted, unsafe checkpoints refused (exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import torch

from neuroexec.cli import main
from neuroexec.plan.graph import UP_TO_DATE, make_plan
from neuroexec.spec import load_spec
from tests.compat.conftest import make_clinicadl_maps


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".neuroexec" not in p.parts}


def predict_argv(maps: Path, data: dict, *extra: str) -> list[str]:
    return ["predict", str(maps), "test", "--caps_directory", str(data["test_caps"]), "--participants_tsv",
            str(data["test_tsv"]), "--no-gpu", "--n_proc", "0", "--quiet", *extra]  # fmt: skip


def test_predict_on_a_clinicadl_maps_and_print_spec_round_trip(tmp_path, tiny_data, capsys):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    assert main(predict_argv(maps, tiny_data, "--print-spec")) == 0
    printed = capsys.readouterr().out
    assert not (maps / "groups" / "test").exists()  # --print-spec runs nothing
    assert main(predict_argv(maps, tiny_data, "--selection_metrics", "loss", "BA")) == 0
    for split in (0, 1):
        for metric in ("loss", "BA"):
            table = pd.read_csv(
                maps / f"split-{split}" / f"best-{metric}" / "test" / "test_image_level_prediction.tsv",
                sep="\t",
            )
            assert sorted(table["participant_id"]) == ["sub-0100", "sub-0101", "sub-0102", "sub-0103"]
    # Independent check of one prediction: the checkpoint's weights on the extracted tensor, by hand.
    from neuroexec.nn.networks import build_network

    net = build_network("Conv4_FC3", (1, 20, 20, 20), 2, 0.0)
    net.load_state_dict(
        torch.load(maps / "split-0" / "best-loss" / "model.pth.tar", weights_only=True)["model"]
    )
    net.eval()
    tensor = next((tiny_data["test_caps"] / "subjects" / "sub-0100").rglob("*.pt"))
    with torch.no_grad():
        proba = torch.softmax(net(torch.load(tensor, weights_only=True)[None]), 1)[0]
    table = pd.read_csv(maps / "split-0" / "best-loss" / "test" / "test_image_level_prediction.tsv", sep="\t")
    row = table[table["participant_id"] == "sub-0100"].iloc[0]
    assert abs(row["proba0"] - proba[0].item()) < 1e-4 and abs(row["proba1"] - proba[1].item()) < 1e-4

    # The printed spec (with --selection_metrics loss only: the default) plans as up to date after the command.
    spec_file = tmp_path / "printed.toml"
    spec_file.write_text(printed)
    plan = make_plan(load_spec(spec_file))
    assert plan.steps and all(p.action == UP_TO_DATE for p in plan.steps)
    # Re-running the command (no data flags: the group is re-used) does nothing.
    before = {p: p.stat().st_mtime_ns for p in maps.rglob("*.tsv")}
    assert main(["predict", str(maps), "test", "--no-gpu", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in maps.rglob("*.tsv")} == before


def test_command_and_equivalent_spec_write_the_same_files(tmp_path, tiny_data, capsys):
    a = make_clinicadl_maps(tmp_path / "a", tiny_data, splits=(0,), metrics=("loss",))
    b = make_clinicadl_maps(tmp_path / "b", tiny_data, splits=(0,), metrics=("loss",))
    argv = ["interpret", str(a), "test", "grad", "--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv",
            str(tiny_data["test_tsv"]), "--no-gpu", "--n_proc", "0", "--save_individual", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv[:1], str(b), *argv[2:], "--print-spec"]) == 0
    spec_file = tmp_path / "b.toml"
    spec_file.write_text(capsys.readouterr().out)
    assert main(["apply", str(spec_file), "--quiet"]) == 0
    assert files(a) == files(b)
    assert "split-0/best-loss/test/interpret-grad/sub-0100_ses-M000_image-0_map.pt" in files(a)
    ma = torch.load(a / "split-0/best-loss/test/interpret-grad/mean_image-0_map.pt", weights_only=True)
    mb = torch.load(b / "split-0/best-loss/test/interpret-grad/mean_image-0_map.pt", weights_only=True)
    assert torch.equal(ma, mb)


def test_existing_group_with_new_data_needs_overwrite(tmp_path, tiny_data, capsys):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    assert main(predict_argv(maps, tiny_data)) == 0
    capsys.readouterr()
    other = [
        "--caps_directory",
        str(tiny_data["test_caps"]),
        "--participants_tsv",
        str(tiny_data["test_by_diagnosis"]),
    ]
    assert main(["save-tensor", str(maps), "test", *other, "--no-gpu", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    # With --overwrite the per-diagnosis folder (AD.tsv, CN.tsv) redefines the group.
    assert (
        main(
            ["predict", str(maps), "test", *other, "--overwrite", "--diagnoses", "AD", "--no-gpu", "--quiet"]
        )
        == 0
    )
    data = pd.read_csv(maps / "groups" / "test" / "data.tsv", sep="\t")
    assert sorted(data["participant_id"]) == ["sub-0102", "sub-0103"]


def test_unsafe_checkpoint_gives_exit_code_2(tmp_path, tiny_data, capsys):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    torch.save({"model": {}, "epoch": 0, "name": Evil()}, maps / "split-0" / "best-loss" / "model.pth.tar")
    assert main(predict_argv(maps, tiny_data)) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "weights_only=False" in err
    assert (tmp_path / "victim").is_dir()  # nothing was unpickled
    assert main(["import-maps", str(maps)]) == 2
    assert "UNUSABLE" in capsys.readouterr().out
