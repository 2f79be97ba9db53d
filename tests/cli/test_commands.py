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


def test_older_generation_model_folder_predicted_and_interpreted(tmp_path, tiny_data, capsys):
    """fold-<i>/models/best_<metric>/model_best.pth.tar + commandline.json, used as is by the newer commands."""
    from tests.compat.conftest import make_legacy_model

    model = make_legacy_model(tmp_path / "model", tiny_data)
    argv = ["predict", str(model), "test", "--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv",
            str(tiny_data["test_by_diagnosis"]), "--no-gpu", "--n_proc", "0", "--quiet"]  # fmt: skip
    # It records no training participants: the leakage check cannot run, and the message names the flag.
    assert main(argv) == 2
    assert "--skip_leak_check" in capsys.readouterr().err
    assert (
        main(
            [*argv, "--skip_leak_check", "--diagnoses", "AD", "--selection_metrics", "best_balanced_accuracy"]
        )
        == 0
    )
    table = pd.read_csv(model / "split-0" / "best-BA" / "test" / "test_image_level_prediction.tsv", sep="\t")
    assert sorted(table["participant_id"]) == ["sub-0102", "sub-0103"]
    from neuroexec.nn.networks import build_network

    net = build_network("Conv4_FC3", (1, 20, 20, 20), 2, 0.0).eval()
    ckpt = torch.load(model / "fold-0/models/best_balanced_accuracy/model_best.pth.tar", weights_only=False)
    net.load_state_dict(ckpt["model"])
    for _, row in table.iterrows():
        x = torch.load(
            next((tiny_data["test_caps"] / "subjects" / row["participant_id"]).rglob("*.pt")),
            weights_only=True,
        )
        with torch.no_grad():
            proba = torch.softmax(net(x[None]), 1)[0]
        assert abs(row["proba1"] - proba[1].item()) < 1e-4  # the older generation's codes: CN 0, AD 1
        assert row["true_label"] == 1

    # Re-using the group (no data flags) keeps what it was defined with: AD only, no leakage check.
    data_tsv = model / "groups" / "test" / "data.tsv"
    before = (data_tsv.read_text(), data_tsv.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(["interpret", str(model), "test", "g", "--no-gpu", "--n_proc", "0", "--quiet"]) == 0
    assert (data_tsv.read_text(), data_tsv.stat().st_mtime_ns) == before
    used = pd.read_csv(model / "split-0" / "best-loss" / "test" / "interpret-g" / "data.tsv", sep="\t")
    assert sorted(used["participant_id"]) == ["sub-0102", "sub-0103"]


def test_clinicadl_maps_as_transfer_learning_source(tmp_path, tiny_data):
    """`train image cnn --transfer_learning_path` on a MAPS ClinicaDL 1.x wrote: the best-BA weights (the
    seed's default selection) initialise the network (a learning rate of 1e-12 keeps them)."""
    source = make_clinicadl_maps(tmp_path / "source", tiny_data, splits=(0,))
    maps = tmp_path / "target"
    argv = ["train", "image", "cnn", str(tiny_data["caps"]), "t1-linear", str(tiny_data["split"]), str(maps),
            "--architecture", "Conv4_FC3", "--epochs", "1", "--learning_rate", "1e-12", "--split", "0",
            "--no-gpu", "--n_proc", "0", "--quiet", "--transfer_learning_path", str(source)]  # fmt: skip
    assert main(argv) == 0
    got = torch.load(maps / "split-0" / "best-loss" / "model.pth.tar", weights_only=True)["model"]
    for metric, same in (("BA", True), ("loss", False)):
        src = torch.load(source / "split-0" / f"best-{metric}" / "model.pth.tar", weights_only=True)["model"]
        weights = [k for k in src if k.endswith("weight")]
        assert all(torch.allclose(got[k], src[k], atol=1e-6) for k in weights) is same


def test_predict_the_validation_group_of_a_clinicadl_maps(tmp_path, tiny_data):
    """ClinicaDL records its training groups (groups/validation/split-<i>/data.tsv, CAPS in maps.json):
    neuroexec evaluates them as they are, with no train.toml of its own."""
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    assert main(["predict", str(maps), "validation", "--no-gpu", "--n_proc", "0", "--quiet"]) == 0
    for split in (0, 1):
        recorded = pd.read_csv(maps / f"groups/validation/split-{split}/data.tsv", sep="\t", dtype=str)
        table = pd.read_csv(maps / f"split-{split}/best-loss/validation/validation_image_level_prediction.tsv",
                            sep="\t", dtype={"participant_id": str})  # fmt: skip
        assert sorted(table["participant_id"]) == sorted(recorded["participant_id"])
        assert (maps / f"split-{split}/best-loss/validation/validation_image_level_metrics.tsv").is_file()


def test_interpret_method_argument_reaches_the_spec_and_grad_cam_levels_are_refused(
    tmp_path, tiny_data, capsys
):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tiny_data["test_tsv"])]
    assert main(["interpret", str(maps), "test", "cam", "grad-cam", *data, "--print-spec"]) == 0
    assert 'method = "grad-cam"' in capsys.readouterr().out
    assert main(["interpret", str(maps), "test", "cam", "grad-cam", *data, "--level_grad_cam", "2"]) == 2
    err = capsys.readouterr().err
    assert "--level_grad_cam 2 is not supported" in err and "last convolution block" in err
    assert not (maps / "groups" / "test").exists()


def test_predict_split_flag_evaluates_only_those_splits(tmp_path, tiny_data, capsys):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    assert main(predict_argv(maps, tiny_data, "--split", "7")) == 2
    assert "no split 7 in this MAPS (it has 0, 1)" in capsys.readouterr().err
    assert main(predict_argv(maps, tiny_data, "-s", "1")) == 0
    assert (maps / "split-1/best-loss/test/test_image_level_prediction.tsv").is_file()
    assert not (maps / "split-0/best-loss/test").exists()


def test_damaged_state_file_is_a_sentence_and_keeps_every_result(tmp_path, tiny_data, capsys):
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,), metrics=("loss",))
    assert main(predict_argv(maps, tiny_data)) == 0
    before = {p: p.read_bytes() for p in maps.rglob("*") if p.is_file() and ".neuroexec" not in p.parts}
    state = maps / ".neuroexec" / "state.json"
    for damaged in (
        "[]",
        '{"steps": {"model.maps.train[split-0]"',
        "\udcff".encode("utf-8", "surrogateescape"),
    ):
        capsys.readouterr()
        state.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
        assert main(predict_argv(maps, tiny_data, "--overwrite")) == 2
        err = capsys.readouterr().err
        assert str(state) in err and "Traceback" not in err
        assert {p: p.read_bytes() for p in before} == before
