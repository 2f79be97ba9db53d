"""The older `interpret group|individual MODEL_PATH NAME` (seed 004) on a legacy-layout model folder."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from neuroexec.cli import main
from neuroexec.nn.networks import build_network


def legacy_out(model, selection="best_balanced_accuracy", name="maps", fold=0):
    return model / f"fold-{fold}" / "gradients" / selection / name


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def reference_map(model, data, participant, metric_dir="best_balanced_accuracy", target=1):
    """|d output[target] / d input| of the checkpoint's network on the session's tensor, by hand (float64)."""
    net = build_network("Conv4_FC3", (1, 20, 20, 20), 2, 0.0).double().eval()
    ckpt = torch.load(model / "fold-0" / "models" / metric_dir / "model_best.pth.tar", weights_only=False)
    net.load_state_dict(ckpt["model"])
    x = torch.load(next((data["test_caps"] / "subjects" / participant).rglob("*.pt")), weights_only=True)
    x = x[None].double().requires_grad_(True)
    net(x)[0, target].backward()
    return x.grad.abs()[0, 0].numpy()


def test_group_level_files_and_values(legacy_model, tiny_data):
    argv = ["interpret", "group", str(legacy_model), "maps", "--use_cpu", "--nproc", "0", "--quiet"]
    assert main(argv) == 0
    out = legacy_out(legacy_model)
    assert tree(out) == ["commandline.json", "data.tsv", "map.nii.gz", "map.npy"]
    data = pd.read_csv(out / "data.tsv", sep="\t")
    assert sorted(data["participant_id"]) == [
        "sub-0102",
        "sub-0103",
    ]  # --diagnosis AD (the default) of AD.tsv
    expected = np.mean([reference_map(legacy_model, tiny_data, p) for p in ("sub-0102", "sub-0103")], axis=0)
    got = np.load(out / "map.npy")
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6 * np.abs(expected).max())
    # No template: the affine of the source image (never a silent identity).
    source = next((tiny_data["test_caps"] / "subjects" / "sub-0102").rglob("*.nii.gz"))
    image = nib.load(out / "map.nii.gz")
    np.testing.assert_allclose(image.affine, nib.load(source).affine)
    assert not np.allclose(image.affine, np.eye(4))
    np.testing.assert_allclose(image.get_fdata(), got, rtol=1e-6)

    # commandline.json re-runs to the same map.
    record = json.loads((out / "commandline.json").read_text())
    assert record["caps_dir"] == str(tiny_data["test_caps"]) and record["split"] == 0
    shutil.rmtree(legacy_model / "fold-0" / "gradients")
    shutil.rmtree(legacy_model / ".neuroexec")
    assert main([*record["argv"], "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(out / "map.npy"), got)


def test_individual_level_keep_true_template_and_baseline(legacy_model, tiny_data, tmp_path):
    template = tmp_path / "template.nii.gz"
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [-10, 5, 7]
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), affine), template)
    argv = ["interpret", "individual", str(legacy_model), "ind", "--use_cpu", "--nproc", "0", "--quiet",
            "--tsv_path", str(tiny_data["test_by_diagnosis"]), "--caps_dir", str(tiny_data["test_caps"]),
            "--diagnosis", "CN", "--target_diagnosis", "AD", "--nifti_template_path", str(template),
            "--selection", "best_loss", "best_balanced_accuracy"]  # fmt: skip
    assert main(argv) == 0
    for selection, metric_dir in (
        ("best_loss", "best_loss"),
        ("best_balanced_accuracy", "best_balanced_accuracy"),
    ):
        out = legacy_out(legacy_model, selection, "ind")
        assert tree(out) == ["commandline.json", "data.tsv"] + [
            f"{p}/ses-M000/{f}" for p in ("sub-0100", "sub-0101") for f in ("map.nii.gz", "map.npy")
        ]
        for p in ("sub-0100", "sub-0101"):
            got = np.load(out / p / "ses-M000" / "map.npy")
            ref = reference_map(legacy_model, tiny_data, p, metric_dir, target=1)  # AD = node 1 (older code)
            np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-6 * np.abs(ref).max())
            np.testing.assert_allclose(nib.load(out / p / "ses-M000" / "map.nii.gz").affine, affine)

    # keep_true: only the sessions the network classifies correctly (computed here from its outputs).
    net = build_network("Conv4_FC3", (1, 20, 20, 20), 2, 0.0).eval()
    net.load_state_dict(torch.load(legacy_model / "fold-0/models/best_balanced_accuracy/model_best.pth.tar",
                                   weights_only=False)["model"])  # fmt: skip
    frame = pd.read_csv(tiny_data["test_tsv"], sep="\t")
    correct = []
    for p, d in zip(frame["participant_id"], frame["diagnosis"]):
        x = torch.load(next((tiny_data["test_caps"] / "subjects" / p).rglob("*.pt")), weights_only=True)
        with torch.no_grad():
            correct.append((int(net(x[None]).argmax()) == {"CN": 0, "AD": 1}[d], p, d))
    for keep, flag in ((True, "--keep_true"), (False, "--no-keep_true")):
        name = f"k{int(keep)}"
        wanted = sorted(p for ok, p, d in correct if ok == keep and d == "CN")
        code = main(["interpret", "individual", str(legacy_model), name, "--use_cpu", "--nproc", "0", "--quiet",
                     "--diagnosis", "CN", flag])  # fmt: skip
        out = legacy_out(legacy_model, name=name)
        if not wanted:
            assert code != 0
            continue
        assert code == 0
        assert sorted(pd.read_csv(out / "data.tsv", sep="\t")["participant_id"]) == wanted
        assert sorted(p.name for p in out.iterdir() if p.is_dir()) == wanted

    # --baseline reads CN_baseline.tsv (one session) instead of CN.tsv.
    assert main(["interpret", "group", str(legacy_model), "base", "--use_cpu", "--nproc", "0", "--quiet",
                 "--diagnosis", "CN", "--baseline"]) == 0  # fmt: skip
    data = pd.read_csv(legacy_out(legacy_model, name="base") / "data.tsv", sep="\t")
    baseline = pd.read_csv(tiny_data["test_by_diagnosis"] / "CN_baseline.tsv", sep="\t")
    assert list(data["participant_id"]) == list(baseline["participant_id"])


def test_patch_model_without_validation_predictions_is_refused(tmp_path, tiny_data, capsys):
    from tests.compat.conftest import make_legacy_model

    model = make_legacy_model(tmp_path / "patch_model", tiny_data, with_tsvs=False, mode="patch")
    cmd = json.loads((model / "commandline.json").read_text())
    cmd.update(patch_size=20, stride_size=20)
    (model / "commandline.json").write_text(json.dumps(cmd))
    assert main(["interpret", "group", str(model), "m", "--use_cpu", "--keep_true", "--quiet"]) == 2
    assert "validation predictions" in capsys.readouterr().err


def test_older_command_on_a_clinicadl_maps(tmp_path, tiny_data):
    """The older interpret on a MAPS ClinicaDL 1.x wrote: its best-loss model, its label_code (AD = node 0)."""
    from tests.compat.conftest import make_clinicadl_maps

    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, splits=(0,))
    argv = ["interpret", "group", str(maps), "cl", "--use_cpu", "--nproc", "0", "--quiet", "--selection", "best_loss",
            "--caps_dir", str(tiny_data["test_caps"]), "--tsv_path", str(tiny_data["test_by_diagnosis"])]  # fmt: skip
    assert main(argv) == 0
    out = legacy_out(maps, "best_loss", "cl")
    assert tree(out) == ["commandline.json", "data.tsv", "map.nii.gz", "map.npy"]
    net = build_network("Conv4_FC3", (1, 20, 20, 20), 2, 0.0).double().eval()
    net.load_state_dict(
        torch.load(maps / "split-0" / "best-loss" / "model.pth.tar", weights_only=True)["model"]
    )
    expected = []
    for p in ("sub-0102", "sub-0103"):  # AD.tsv
        x = torch.load(next((tiny_data["test_caps"] / "subjects" / p).rglob("*.pt")), weights_only=True)
        x = x[None].double().requires_grad_(True)
        net(x)[0, 0].backward()
        expected.append(x.grad.abs()[0, 0].numpy())
    expected = np.mean(expected, axis=0)
    np.testing.assert_allclose(
        np.load(out / "map.npy"), expected, rtol=1e-3, atol=1e-6 * np.abs(expected).max()
    )
