"""2D networks (slice mode): ClinicaDL's layers and state-dict names, checked against a float64 reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuroexec.errors import NeuroexecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.nn.networks import PadMaxPool2d, build_network

# The state-dict names ClinicaDL 1.6.1's Conv5_FC3 / Conv4_FC3 have in 2D (5 blocks, 3 linear layers).
CLINICADL_KEYS = [
    "convolutions.0.weight", "convolutions.0.bias",
    "convolutions.1.weight", "convolutions.1.bias", "convolutions.1.running_mean",
    "convolutions.1.running_var", "convolutions.1.num_batches_tracked",
    "convolutions.4.weight", "convolutions.4.bias",
    "convolutions.5.weight", "convolutions.5.bias", "convolutions.5.running_mean",
    "convolutions.5.running_var", "convolutions.5.num_batches_tracked",
    "convolutions.8.weight", "convolutions.8.bias",
    "convolutions.9.weight", "convolutions.9.bias", "convolutions.9.running_mean",
    "convolutions.9.running_var", "convolutions.9.num_batches_tracked",
    "convolutions.12.weight", "convolutions.12.bias",
    "convolutions.13.weight", "convolutions.13.bias", "convolutions.13.running_mean",
    "convolutions.13.running_var", "convolutions.13.num_batches_tracked",
    "convolutions.16.weight", "convolutions.16.bias",
    "convolutions.17.weight", "convolutions.17.bias", "convolutions.17.running_mean",
    "convolutions.17.running_var", "convolutions.17.num_batches_tracked",
    "fc.2.weight", "fc.2.bias", "fc.4.weight", "fc.4.bias", "fc.6.weight", "fc.6.bias",
]  # fmt: skip


@pytest.mark.parametrize("name, hidden", [("Conv5_FC3", (1300, 50)), ("Conv4_FC3", (50, 40))])
def test_2d_networks_have_clinicadl_names_layers_and_shapes(name, hidden):
    net = build_network(name, (3, 169, 208), output_size=2)
    state = net.state_dict()
    assert list(state) == CLINICADL_KEYS
    layers = [type(m).__name__ for m in net.convolutions[:4]]
    assert layers == ["Conv2d", "BatchNorm2d", "ReLU", "PadMaxPool2d"]
    assert state["convolutions.0.weight"].shape == (8, 3, 3, 3)
    assert state["convolutions.16.weight"].shape == (128, 64, 3, 3)
    # 169 x 208 -> 85 x 104 -> 43 x 52 -> 22 x 26 -> 11 x 13 -> 6 x 7 (padding in front when odd)
    assert state["fc.2.weight"].shape == (hidden[0], 128 * 6 * 7)
    assert state["fc.4.weight"].shape == (hidden[1], hidden[0])


def _reference_pool(x: torch.Tensor) -> torch.Tensor:
    """PadMaxPool2d(2, 2) by hand: zeros in front of each odd axis, then the max of each 2 x 2 block."""
    n, c, h, w = x.shape
    padded = torch.zeros(n, c, h + h % 2, w + w % 2, dtype=x.dtype)
    padded[:, :, h % 2 :, w % 2 :] = x
    blocks = padded.reshape(n, c, padded.shape[2] // 2, 2, padded.shape[3] // 2, 2)
    return blocks.amax(dim=(3, 5))


def _reference_forward(state: dict, x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """The network's eval forward in float64 from its state dict, layer by layer."""
    s = {k: v.double() for k, v in state.items()}
    for j in range(n_blocks):
        conv, norm = f"convolutions.{4 * j}", f"convolutions.{4 * j + 1}"
        x = F.conv2d(x, s[f"{conv}.weight"], s[f"{conv}.bias"], padding=1)
        scale = s[f"{norm}.weight"] / torch.sqrt(s[f"{norm}.running_var"] + 1e-5)
        x = (x - s[f"{norm}.running_mean"][:, None, None]) * scale[:, None, None] + s[f"{norm}.bias"][
            :, None, None
        ]
        x = _reference_pool(torch.relu(x))
    x = x.flatten(1)
    x = torch.relu(x @ s["fc.2.weight"].T + s["fc.2.bias"])
    x = torch.relu(x @ s["fc.4.weight"].T + s["fc.4.bias"])
    return x @ s["fc.6.weight"].T + s["fc.6.bias"]


@pytest.mark.parametrize(
    "name, size", [("Conv5_FC3", (1, 37, 41)), ("Conv4_FC3", (3, 33, 34)), ("TinyCNN", (3, 21, 26))]
)
def test_2d_forward_matches_a_float64_reference(name, size):
    torch.manual_seed(0)
    net = build_network(name, size, output_size=2)
    with torch.no_grad():  # non-trivial batch-norm statistics
        for module in net.convolutions:
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(2, *size)
    n_blocks = len(net.convolutions) // 4
    with torch.no_grad():
        got = net(x).double()
    want = _reference_forward(net.state_dict(), x.double(), n_blocks)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pad_max_pool_2d_pads_odd_sizes_in_front():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    assert torch.equal(PadMaxPool2d(2, 2)(x), _reference_pool(x))
    out, pad = PadMaxPool2d(2, 2, return_pad=True)(x)
    assert out.shape == (1, 1, 2, 3) and pad == (1, 0, 1, 0)  # ClinicaDL's (w, 0, h, 0)


def test_a_clinicadl_2d_checkpoint_loads_with_weights_only(tmp_path):
    """A checkpoint as ClinicaDL saves it ({"model", "epoch", "name"}) from another 2D network with the
    same names loads with weights_only=True, strictly, and predicts what its source network predicts."""
    torch.manual_seed(1)
    source = build_network("Conv4_FC3", (1, 40, 48), output_size=2).eval()
    path = tmp_path / "model.pth.tar"
    torch.save({"model": source.state_dict(), "epoch": 3, "name": "Conv4_FC3"}, path)
    state, epoch, name = load_model_state(path)
    net = build_network(name, (1, 40, 48), output_size=2)
    net.load_state_dict(state, strict=True)
    x = torch.randn(3, 1, 40, 48)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), source(x))
    assert epoch == 3


def test_a_2d_slice_too_small_for_the_poolings_is_refused():
    with pytest.raises(NeuroexecError, match="Conv5_FC3 pools 5 times .* >= 17"):
        build_network("Conv5_FC3", (1, 16, 40), output_size=2)


def test_2d_autoencoder_mirrors_the_cnn_under_clinicadl_names():
    from neuroexec.nn.autoencoder import build_autoencoder

    ae = build_autoencoder("AE_Conv5_FC3", (3, 37, 41))
    state = ae.state_dict()
    cnn_keys = [k for k in CLINICADL_KEYS if k.startswith("convolutions.")]
    assert [k for k in state if k.startswith("encoder.")] == [
        k.replace("convolutions.", "encoder.") for k in cnn_keys
    ]
    decoder = sorted({int(k.split(".")[1]) for k in state if k.startswith("decoder.")})
    # ClinicaDL's CNN_Transformer in 2D: each block reversed (unpool, act, norm of c_out, transposed conv)
    assert decoder == [2, 3, 6, 7, 10, 11, 14, 15, 18, 19]
    assert state["decoder.2.weight"].shape == (128,) and state["decoder.3.weight"].shape == (128, 64, 3, 3)
    assert state["decoder.19.weight"].shape == (8, 3, 3, 3)
    names = ["CropMaxUnpool2d", "ReLU", "BatchNorm2d", "ConvTranspose2d"]
    assert [type(m).__name__ for m in ae.decoder[:4]] == names
    assert ae(torch.rand(2, 3, 37, 41)).shape == (2, 3, 37, 41)


def test_crop_max_unpool_2d_inverts_the_padded_pooling_as_max_unpool2d():
    from neuroexec.nn.autoencoder import CropMaxUnpool2d

    x = torch.randn(2, 3, 7, 9)
    pool = PadMaxPool2d(2, 2)
    pooled, indices, pad = pool.pool_with_indices(x)
    padded = F.pad(x, pad)
    want = F.max_unpool2d(pooled, indices, 2, 2, output_size=padded.shape[-2:])[:, :, 1:, 1:]
    got = CropMaxUnpool2d(2, 2)(pooled, indices, pad, padded.shape[-2:])
    assert got.shape == x.shape and torch.equal(got, want)
