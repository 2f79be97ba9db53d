"""`predict --save_latent_tensor` alone writes only the latent tensors, as ClinicaDL 1.6.1 does (each of
its flags writes its own folder: --save_tensor tensors/, --save_nifti nifti_images/,
--save_latent_tensor latent_tensors/): the spec's `save_tensors.tensors = false`; with --save_tensor
the input/output tensors are written too. A save_tensors that writes nothing is refused by validate."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from inference_bench import make_bench

from neuroexec.cli import main
from neuroexec.inference.save_tensors import save_group_tensors
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.spec.model import SaveTensors
from tests.compat.conftest import make_clinicadl_maps, tiny_data  # noqa: F401  (a fixture)


@pytest.mark.parametrize("tensors", [False, True])
def test_latents_alone_write_no_input_output_tensors(tmp_path, cohort_a, tensors):
    bench = make_bench(tmp_path, [("A", cohort_a)], task="reconstruction")
    result = save_group_tensors(bench.task(save_tensors=SaveTensors(tensors=tensors, latent=True)), bench.ctx)
    where = (0, "loss", "test")
    assert result["latents"] == len(bench.frame) and result["tensors"] == (
        2 * len(bench.frame) if tensors else 0
    )
    for p, s in zip(bench.frame.participant_id, bench.frame.session_id):
        latent = bench.maps.latent_file(*where, p, s, "image", 0)
        assert torch.load(latent, weights_only=True).ndim >= 1
        for kind in ("input", "output"):
            assert bench.maps.tensor_file(*where, p, s, "image", 0, kind).is_file() == tensors
    assert bench.maps.tensors_dir(*where).exists() == tensors


def test_the_predict_flags_say_which_folders(tmp_path, tiny_data, capsys):  # noqa: F811  (the fixture)
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data)
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tiny_data["test_tsv"])]
    for flags, table in (
        (["--save_latent_tensor"], "latent = true\ntensors = false"),
        (["--save_nifti"], "nifti = true\ntensors = false"),
        (["--save_latent_tensor", "--save_tensor"], "latent = true"),
    ):
        assert main(["predict", str(maps), "test", *data, *flags, "--print-spec"]) == 0
        out = capsys.readouterr().out
        assert f"[groups.test.save_tensors]\n{table}\n" in out
        assert ("tensors = false" in out) == ("--save_tensor" not in flags)


def test_a_save_tensors_that_writes_nothing_is_refused_by_validate(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(MULTI_AE.replace("{ latent = true, tensors = false }", "{ tensors = false }"))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "groups.test.save_tensors" in err and "nothing to write" in err
    spec.write_text(MULTI_AE)
    assert main(["validate", str(spec)]) == 0


MULTI_AE = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 4, resolution_mm = 8, seed = 1 }
[models.ae]
maps = "maps/ae"
dataset = "demo"
architecture = "TinyCNN"
task = "reconstruction"
mode = "patch"
patch = { size = 12, stride = 10 }
multi_network = true
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[groups.test]
dataset = "demo"
models = ["ae"]
skip_leak_check = true
save_tensors = { latent = true, tensors = false }
"""


def test_a_multi_network_autoencoder_writes_each_network_s_latents_and_plans_nothing_after(tmp_path):
    """Each network's code of its own patch (ClinicaDL 1.6.1 writes them network by network), nothing
    else; the plan after the apply is all "=" (the outputs are the latent folder only)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(MULTI_AE)
    assert main(["apply", str(spec), "--quiet"]) == 0
    result = tmp_path / "maps" / "ae" / "split-0" / "best-loss" / "test"
    names = sorted(p.name for p in (result / "latent_tensors").iterdir())
    frame = pd.read_csv(tmp_path / "data" / "demo" / "participants.tsv", sep="\t", dtype=str)
    assert names == sorted(
        f"{p}_{s}_patch-{k}_latent.pt"
        for p, s in zip(frame.participant_id, frame.session_id)
        for k in range(4)
    )
    codes = [torch.load(result / "latent_tensors" / n, weights_only=True) for n in names[:4]]
    assert all(c.ndim >= 1 for c in codes) and not torch.equal(codes[0], codes[1])  # its own network, patch
    assert not (result / "tensors").exists() and not (result / "nifti_images").exists()
    assert {p.action for p in make_plan(load_spec(spec)).steps} == {"="}
