"""ClinicaDL 1.6.1's VAEs (NEUROEXEC_CLINICADL=/path/to/clinicadl, its venv's python beside it) and
neuroexec's have the same state-dict names and shapes, reconstruct the same images from the same
weights in eval mode, and give the same training loss on the same (reconstruction, mu, logvar).

ClinicaDL 1.6.1 cannot build VanillaDenseVAE, VanillaSpatialVAE (its 2D encoder is called with
`input_size`, and gives Conv2d an `output_padding`) nor Vanilla3DspacialVAE (a fourth decoder padding
read from a list of three): the script below mends those three calls in ClinicaDL's modules, in its
own process, to build what the classes lay out. Its Vanilla VAEs sample the latent in predict too;
their eval reconstruction here is decode(mu), what neuroexec's eval gives."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from neuroexec.nn.registry import build_architecture

CLINICADL = os.environ.get("NEUROEXEC_CLINICADL")
pytestmark = pytest.mark.skipif(
    not (CLINICADL and Path(CLINICADL).exists()), reason="set NEUROEXEC_CLINICADL to a clinicadl executable"
)

WEIGHTS = {"recons_weight": 0.7, "kl_weight": 1.3}
# name: (ClinicaDL's constructor arguments, neuroexec's input size and options)
CASES = {
    "CVAE_3D": ({"latent_space_size": 3}, (1, 169, 208, 179), {"latent_space_size": 3}),
    "CVAE_3D_half": (
        {"size_reduction_factor": 5, "latent_space_size": 3, **WEIGHTS},
        (1, 32, 40, 32),
        {"latent_space_size": 3, **WEIGHTS},
    ),
    "CVAE_3D_final_conv": (
        {"size_reduction_factor": 4, "latent_space_size": 3, **WEIGHTS},
        (1, 40, 48, 40),
        {"latent_space_size": 3, **WEIGHTS},
    ),
    "Vanilla3DdenseVAE": (
        {"size_reduction_factor": 5, "latent_space_size": 3, "feature_size": 16, "n_conv": 3,
         "io_layer_channels": 4, **WEIGHTS},
        (1, 32, 40, 32),
        {"latent_space_size": 3, "feature_size": 16, "n_conv": 3, "io_layer_channels": 4, **WEIGHTS},
    ),
    "Vanilla3DdenseVAE_no_features": (
        {"size_reduction_factor": 5, "latent_space_size": 3, "feature_size": 0, "n_conv": 4,
         "io_layer_channels": 2, **WEIGHTS},
        (1, 32, 40, 32),
        {"latent_space_size": 3, "feature_size": 0, "n_conv": 4, "io_layer_channels": 2, **WEIGHTS},
    ),
    "VanillaDenseVAE": (
        {"input_size": [2, 35, 26], "latent_space_size": 3, "feature_size": 16, **WEIGHTS},
        (2, 35, 26),
        {"latent_space_size": 3, "feature_size": 16, **WEIGHTS},
    ),
    "VanillaSpatialVAE": (
        {"input_size": [1, 33, 40], "latent_space_size": 3, "feature_size": 16, **WEIGHTS},
        (1, 33, 40),
        WEIGHTS,
    ),
    "Vanilla3DspacialVAE": (
        {"input_size": [1, 169, 208, 179], "latent_space_size": 3, "feature_size": 16, **WEIGHTS},
        (1, 169, 208, 179),
        WEIGHTS,
    ),
}  # fmt: skip
LOSSES = ("VAEGaussianLoss", "VAEBernoulliLoss", "VAEContinuousBernoulliLoss")

SCRIPT = r"""
import inspect, sys, types
import torch
import clinicadl.utils.network as networks
import clinicadl.utils.network.vae.vae_layers as layers
import clinicadl.utils.network.vae.vanilla_vae as vanilla
from clinicadl.utils.network.vae import vae_utils

# Mend ClinicaDL 1.6.1's three broken calls (see the test's docstring), in this process only.
class Conv2d(torch.nn.Conv2d):
    def __init__(self, *args, output_padding=0, **kwargs):
        super().__init__(*args, **kwargs)
layers.nn = types.SimpleNamespace(**{**vars(torch.nn), "Conv2d": Conv2d})
vanilla.VAE_Encoder = lambda input_size, **kw: layers.VAE_Encoder(input_shape=input_size, **kw)
vanilla.VAE_Decoder = lambda input_size, **kw: layers.VAE_Decoder(input_shape=input_size, **kw)
source = inspect.getsource(vanilla.Vanilla3DspacialVAE)
fixed = source.replace("decoder_output_padding[i]", "decoder_output_padding[n_conv - 1 - i]")
assert fixed != source
exec(fixed, vanilla.__dict__)
networks.Vanilla3DspacialVAE = vanilla.Vanilla3DspacialVAE

cases, out = eval(sys.argv[1]), {}
for case, kwargs in cases.items():
    name = case.split("_no_")[0]
    torch.manual_seed(0)
    model = getattr(networks, name)(gpu=False, **kwargs).eval()
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    size = kwargs.get("input_size") or getattr(model, "input_size", [1, 169, 208, 179])
    x = torch.rand(2, *size)
    with torch.no_grad():
        if name.startswith("CVAE"):
            y = model.predict(x)
        else:  # its predict samples the latent: the reconstruction from mu
            y = model.decode(model.encode(x)[0])
        mu, logvar = model.encoder(x) if name.startswith("CVAE") else model.encode(x)
        recon = torch.rand_like(x) * 0.98 + 0.01
        recon.view(-1)[:5] = 0.5  # the continuous Bernoulli's Taylor branch
        mu, logvar = torch.randn_like(mu), torch.randn_like(logvar) * 0.5
        losses = {}
        for loss in %(losses)r:
            if name.startswith("CVAE"):
                model.forward = lambda _x: (mu, logvar, recon)
            else:
                model.forward = lambda _x: (recon, mu, logvar)
            criterion = getattr(vae_utils, loss)
            losses[loss] = model.compute_outputs_and_loss({"image": x}, criterion)[1]["loss"]
            losses[loss + " terms"] = torch.stack([t.float() for t in criterion(x, recon, mu, logvar)])
    out[case] = {"state": model.state_dict(), "keys": list(model.state_dict()), "x": x, "y": y,
                 "recon": recon, "mu": mu, "logvar": logvar, "losses": losses}
torch.save(out, sys.argv[2])
"""


@pytest.fixture(scope="module")
def theirs(tmp_path_factory) -> dict:
    python = Path(CLINICADL).parent / "python"
    where = tmp_path_factory.mktemp("clinicadl_vae") / "vaes.pt"
    cases = repr({case: clinicadl for case, (clinicadl, _size, _options) in CASES.items()})
    script = SCRIPT % {"losses": LOSSES}
    done = subprocess.run(
        [str(python), "-c", script, cases, str(where)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(where, weights_only=True)


def ours(case: str) -> torch.nn.Module:
    _clinicadl, size, options = CASES[case]
    return build_architecture(case.split("_no_")[0], "reconstruction", size, None, 0.5, options)


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_names_and_shapes_are_clinicadls(theirs, case):
    state = ours(case).state_dict()
    assert list(state) == theirs[case]["keys"]
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in theirs[case]["state"].items()
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_reconstruction_from_clinicadls_weights(theirs, case):
    net = ours(case)
    net.load_state_dict(theirs[case]["state"])
    with torch.no_grad():
        y = net.eval()(theirs[case]["x"])
    torch.testing.assert_close(y, theirs[case]["y"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_training_loss_is_clinicadls(theirs, case, loss):
    from neuroexec.nn.vae_losses import batch_terms, sample_terms

    data = theirs[case]
    raw = (data["recon"], data["mu"], data["logvar"])
    _, value = ours(case).training_loss(raw, data["x"], loss)
    torch.testing.assert_close(value, data["losses"][loss].float(), rtol=1e-5, atol=1e-4)
    terms = torch.stack(batch_terms(sample_terms(loss, data["x"], *raw), loss))
    torch.testing.assert_close(terms, data["losses"][loss + " terms"], rtol=1e-5, atol=1e-4)
