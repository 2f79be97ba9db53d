"""ClinicaDL's VAEs (nn/vae.py, nn/vanilla_vae.py) and their losses (nn/vae_losses.py): sizes in 2D
and 3D, the [Architecture] options, ClinicaDL's input-size rules, the losses against a float64 hand
computation, each network's weighting, the latent sample, and train.loss checked at validate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroexec.errors import NeuroexecError, SpecError
from neuroexec.nn import vae_losses
from neuroexec.nn.registry import REGISTRY, build_architecture
from neuroexec.nn.vae import VAE
from neuroexec.nn.vanilla_vae import VAE_FAMILY
from neuroexec.spec import load_spec

SMALL = {"latent_space_size": 3, "feature_size": 8, "n_conv": 3, "io_layer_channels": 2}


def build(name: str, size, **options) -> VAE:
    return build_architecture(name, "reconstruction", size, None, 0.5, {**SMALL, **options})


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("VanillaDenseVAE", (1, 26, 22)),
        ("VanillaSpatialVAE", (3, 17, 35)),
        ("Vanilla3DdenseVAE", (1, 32, 40, 32)),
        ("Vanilla3DspacialVAE", (2, 33, 40, 35)),
        ("CVAE_3D_half", (1, 32, 40, 32)),
        ("CVAE_3D_final_conv", (1, 40, 48, 40)),
    ],
)
def test_train_mode_gives_the_latent_and_eval_mode_one_reconstruction(name, size):
    net = build(name, size)
    assert net.architecture_name == name
    x = torch.rand(2, *size)
    recon, mu, logvar = net.train()(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape and mu.shape[0] == 2
    out = net.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape


def test_the_full_size_networks_reconstruct_the_t1_linear_image():
    with torch.device("meta"):  # shapes only: no weights allocated
        for name in ("CVAE_3D", "Vanilla3DspacialVAE"):
            net = build(name, (1, 169, 208, 179)).eval()
            assert net(torch.zeros(1, 1, 169, 208, 179)).shape == (1, 1, 169, 208, 179)


def test_the_options_size_the_networks():
    dense = build("VanillaDenseVAE", (1, 26, 22), latent_space_size=5, feature_size=7)
    assert dense.mu_layer.weight.shape == (5, 7)
    assert dense.encoder.sequential[4][1].weight.shape == (7, 256 * 1 * 1)  # 4 halvings: 26 x 22 -> 1 x 1
    deep = build("Vanilla3DdenseVAE", (1, 40, 48, 40), n_conv=2, io_layer_channels=3, feature_size=0)
    blocks = [m for m in deep.encoder if hasattr(m, "layer")]
    assert [b.layer[0].out_channels for b in blocks] == [3, 6]
    assert deep.mu_layer.weight.shape == (3, 6 * 10 * 12 * 10)  # no feature layer: from the blocks
    assert build("CVAE_3D_half", (1, 40, 48, 40), latent_space_size=6).fc10.weight.shape == (
        6,
        128 * 5 * 6 * 5,
    )


@pytest.mark.parametrize(
    ("name", "size", "options", "message"),
    [
        ("CVAE_3D", (1, 80, 96, 80), {}, "reads inputs of 1@169x208x179 only"),
        ("CVAE_3D_half", (1, 33, 40, 32), {}, "1@32x40x32 (size_reduction_factor 5) only"),
        ("Vanilla3DdenseVAE", (1, 169, 208, 179), {}, "1@80x96x80 (size_reduction_factor 2)"),
        ("Vanilla3DdenseVAE", (1, 32, 40, 32), {"n_conv": 6}, "every side must be at least 64"),
        ("VanillaDenseVAE", (1, 15, 40), {}, "every side must be at least 16, not 1@15x40"),
        ("VanillaDenseVAE", (1, 20, 20, 20), {}, "reads 2D slices (mode = 'slice')"),
        ("VanillaDenseVAE", (1, 20, 20), {"feature_size": 0}, "only Vanilla3DdenseVAE takes 0"),
        ("Vanilla3DspacialVAE", (1, 31, 40, 40), {}, "every side must be at least 32"),
    ],
)
def test_clinicadls_input_sizes_are_required(name, size, options, message):
    with pytest.raises(NeuroexecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(name, size, **options)


def test_the_reduced_sizes_are_those_of_size_reduction():
    from neuroexec.data.size_reduction import reduced_shape
    from neuroexec.nn.vae import REDUCED

    assert {size: how for size, how in REDUCED.items()} == {
        (1, *reduced_shape(f)): f"size_reduction_factor {f}" for f in (2, 3, 4, 5)
    }


def test_the_registry_holds_every_vae():
    names = {cls.architecture_name for cls, _dims, _text in VAE_FAMILY}
    assert names == vae_losses.VAE_ARCHITECTURES
    assert all(REGISTRY[n].tasks == {"reconstruction"} for n in names)
    assert REGISTRY["VanillaDenseVAE"].dims == (2,) and REGISTRY["CVAE_3D"].dims == (3,)


# --- losses ------------------------------------------------------------------------------------


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 1, 4, 5, generator=g)
    recon = torch.rand(3, 1, 4, 5, generator=g) * 0.9 + 0.05
    recon[0, 0, 0, :3] = torch.tensor([0.5, 0.500001, 0.499995])  # within eps of 1/2: the Taylor branch
    mu, logvar = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g) * 0.5
    return x, recon, mu, logvar


def _hand(x, r, mu, logvar):
    """Per-sample (squared error, BCE, log C, KL) in float64, from the formulas."""
    x, r, mu, lv = (t.double().numpy().reshape(t.shape[0], -1) for t in (x, r, mu, logvar))
    sse = ((r - x) ** 2).sum(1)
    bce = -(x * np.log(r) + (1 - x) * np.log(1 - r)).sum(1)
    rc = np.clip(r, 1e-5, 1 - 1e-5)
    far = np.abs(rc - 0.5) >= 1e-5
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.log((np.log(1 - rc) - np.log(rc)) / (1 - 2 * rc))
    taylor = np.log(2) + np.log(1 + (1 - 2 * rc) ** 2 / 3)
    log_c = np.where(far, exact, taylor).sum(1)
    kl = 0.5 * (-1 - lv + mu**2 + np.exp(lv)).sum(1)
    return sse, bce, log_c, kl


def test_the_losses_per_sample_are_the_formulas():
    x, r, mu, logvar = _data()
    sse, bce, log_c, kl = _hand(x, r, mu, logvar)
    gaussian = vae_losses.sample_terms("VAEGaussianLoss", x, r, mu, logvar)
    bernoulli = vae_losses.sample_terms("VAEBernoulliLoss", x, r, mu, logvar)
    continuous = vae_losses.sample_terms("VAEContinuousBernoulliLoss", x, r, mu, logvar)
    for ours, hand in zip([*gaussian, *bernoulli, *continuous], [sse, kl, bce, kl, kl, bce, log_c]):
        np.testing.assert_allclose(ours.double().numpy(), hand, rtol=1e-5)


def test_a_batch_adds_the_reconstruction_up_and_averages_the_kl():
    x, r, mu, logvar = _data(1)
    sse, bce, log_c, kl = _hand(x, r, mu, logvar)
    gaussian = vae_losses.batch_terms(
        vae_losses.sample_terms("VAEGaussianLoss", x, r, mu, logvar), "VAEGaussianLoss"
    )
    np.testing.assert_allclose([float(t) for t in gaussian], [sse.sum(), kl.mean()], rtol=1e-5)
    name = "VAEContinuousBernoulliLoss"
    continuous = vae_losses.batch_terms(vae_losses.sample_terms(name, x, r, mu, logvar), name)
    np.testing.assert_allclose([float(t) for t in continuous], [kl.mean(), bce.sum(), log_c.sum()], rtol=1e-5)


def _raw(net: VAE, size, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, *size, generator=g)
    recon = torch.rand(2, *size, generator=g) * 0.9 + 0.05
    with torch.no_grad():
        mu, logvar = net.eval().encode(x)
    return x, (recon, torch.randn(mu.shape, generator=g), torch.randn(mu.shape, generator=g) * 0.3)


@pytest.mark.parametrize(
    ("name", "size", "loss", "expected"),
    [  # (squared error or BCE summed, KL averaged, log C summed) -> the network's weighting
        ("VanillaDenseVAE", (1, 16, 16), "VAEGaussianLoss", lambda s, b, c, k: 0.7 * s.sum() + 1.3 * k.mean()),
        ("VanillaDenseVAE", (1, 16, 16), "VAEBernoulliLoss", lambda s, b, c, k: 0.7 * b.sum() + 1.3 * k.mean()),
        ("VanillaDenseVAE", (1, 16, 16), "VAEContinuousBernoulliLoss",
         lambda s, b, c, k: 0.7 * k.mean() + 1.3 * b.sum() + c.sum()),
        ("CVAE_3D_half", (1, 32, 40, 32), "VAEGaussianLoss", lambda s, b, c, k: s.sum() + 1.3 * k.mean()),
        ("CVAE_3D_half", (1, 32, 40, 32), "VAEContinuousBernoulliLoss",
         lambda s, b, c, k: 0.7 * k.mean() + 1.3 * b.sum() + c.sum()),
    ],
)  # fmt: skip
def test_each_network_weighs_the_terms_as_clinicadl(name, size, loss, expected):
    net = build(name, size, recons_weight=0.7, kl_weight=1.3)
    x, raw = _raw(net, size)
    recon, value = net.training_loss(raw, x, loss)
    assert recon is raw[0]
    np.testing.assert_allclose(float(value), expected(*_hand(x, *raw)), rtol=1e-5)


def test_cvae_3d_trains_with_its_own_loss_whatever_train_loss_says():
    with torch.device("meta"):  # its loss reads no weight
        net = build("CVAE_3D", (1, 169, 208, 179))
    x, recon, mu, logvar = _data(3)
    sse, _bce, _c, kl = _hand(x, recon, mu, logvar)
    for loss in (None, "VAEBernoulliLoss", "MSELoss"):
        value = net.training_loss((recon, mu, logvar), x, loss)[1]
        np.testing.assert_allclose(float(value), sse.mean() + 5 * kl.mean(), rtol=1e-5)


def test_a_vae_loss_is_required_by_the_other_vaes():
    net = build("VanillaDenseVAE", (1, 16, 16))
    x, raw = _raw(net, (1, 16, 16))
    with pytest.raises(NeuroexecError, match="train.loss: VanillaDenseVAE trains with VAEGaussianLoss"):
        net.training_loss(raw, x, "MSELoss")
    default = net.training_loss(raw, x, None)[1]
    assert torch.equal(default, net.training_loss(raw, x, "VAEGaussianLoss")[1])


@pytest.mark.parametrize(
    ("name", "size"), [("VanillaDenseVAE", (1, 16, 20)), ("CVAE_3D_half", (1, 32, 40, 32))]
)
def test_an_eval_samples_loss_is_its_batch_loss_alone_with_the_latent_mean(name, size):
    net = build(name, size, recons_weight=0.5, kl_weight=2.0).eval()
    x = torch.rand(3, *size)
    with torch.no_grad():
        out = net(x)
        losses = net.evaluation_losses(x, out, "VAEBernoulliLoss")
        mu, logvar = net.encode(x)
        alone = [net.training_loss((out[i : i + 1], mu[i : i + 1], logvar[i : i + 1]), x[i : i + 1], "VAEBernoulliLoss")[1] for i in range(3)]  # fmt: skip
    torch.testing.assert_close(losses, torch.stack(alone))
    with torch.no_grad():  # a maps.json's MSELoss (ClinicaDL's task default) cannot have trained it
        torch.testing.assert_close(
            net.evaluation_losses(x, out, "MSELoss"), net.evaluation_losses(x, out, None)
        )


def test_the_training_pass_records_each_samples_vae_loss():
    from neuroexec.context import RunContext
    from neuroexec.progress import Reporter
    from neuroexec.spec.model import Compute
    from neuroexec.training.loop import Trainer

    net = build("VanillaDenseVAE", (1, 16, 20))
    ctx = RunContext(reporter=Reporter(quiet=True))
    trainer = Trainer(net, torch.optim.SGD(net.parameters()), "reconstruction", "slice", Compute(device="cpu"), 1, ctx,
                      loss_name="VAEBernoulliLoss")  # fmt: skip
    x = torch.rand(3, 1, 16, 20)
    recon, mu, logvar = net.train()(x)
    losses = trainer.item_losses((recon, mu, logvar), x)
    alone = [net.training_loss((recon[i : i + 1], mu[i : i + 1], logvar[i : i + 1]), x[i : i + 1], "VAEBernoulliLoss")[1] for i in range(3)]  # fmt: skip
    torch.testing.assert_close(losses, torch.stack(alone).detach())
    plain = torch.nn.Linear(2, 1)
    other = Trainer(
        plain, torch.optim.SGD(plain.parameters()), "regression", "image", Compute(device="cpu"), 1, ctx
    )
    assert other.item_losses(torch.zeros(3, 1), torch.zeros(3, 2)) is None  # the collector's task loss


# --- the latent sample ---------------------------------------------------------------------------


def test_the_cvaes_share_one_draw_over_the_batch_and_the_vanilla_vaes_draw_per_sample():
    zeros = torch.zeros(4, 3)
    torch.manual_seed(0)
    shared = build("CVAE_3D_half", (1, 32, 40, 32)).sample(zeros, zeros)
    per_sample = build("VanillaDenseVAE", (1, 16, 16)).sample(zeros, zeros)
    assert torch.equal(shared, shared[:1].expand(4, 3)) and shared.abs().sum() > 0
    assert len({tuple(row.tolist()) for row in per_sample}) == 4
    assert torch.equal(build("CVAE_3D_half", (1, 32, 40, 32), kl_weight=0.0).sample(zeros, zeros), zeros)


def test_training_draws_from_the_global_generator_and_eval_draws_nothing():
    net = build("VanillaDenseVAE", (1, 16, 16))
    x = torch.rand(2, 1, 16, 16)
    net.eval()
    before = torch.get_rng_state()
    first = net(x)
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(net(x), first)
    net.train()
    torch.manual_seed(7)
    a = net(x)[0]
    torch.manual_seed(7)
    b = net(x)[0]
    assert torch.equal(a, b) and not torch.equal(a, net(x)[0])


# --- train.loss at validate ------------------------------------------------------------------------

SPEC = """version = 1
[datasets.d]
caps = "data/d"
generate = {{ subjects = 8, resolution_mm = 8 }}
[models.m]
maps = "maps/m"
dataset = "d"
task = "reconstruction"
architecture = "{architecture}"
split = {{ n_splits = 2, splits = [0] }}
train = {{ loss = "{loss}" }}
"""


def _loss_problems(tmp_path, architecture: str, loss: str) -> list:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(architecture=architecture, loss=loss))
    try:
        load_spec(path)
    except SpecError as err:
        return [p for p in err.problems if p.key == "models.m.train.loss"]
    return []


def test_train_loss_must_fit_the_network_at_validate(tmp_path):
    (problem,) = _loss_problems(tmp_path, "VanillaDenseVAE", "MSELoss")
    assert "VanillaDenseVAE is a VAE: train.loss must be one of VAEGaussianLoss" in problem.message
    (problem,) = _loss_problems(tmp_path, "TinyCNN", "VAEBernoulliLoss")
    assert "TinyCNN is not a VAE" in problem.message
    assert _loss_problems(tmp_path, "CVAE_3D", "MSELoss") == []  # its own loss, as in ClinicaDL
    assert _loss_problems(tmp_path, "Vanilla3DdenseVAE", "VAEContinuousBernoulliLoss") == []
