from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuroexec.errors import NeuroexecError
from neuroexec.nn.autoencoder import AutoEncoder, CropMaxUnpool3d, build_autoencoder
from neuroexec.nn.networks import PadMaxPool3d, build_network


@pytest.mark.parametrize(
    "name, size",
    [
        ("TinyCNN", (1, 21, 26, 23)),
        ("Conv4_FC3", (1, 33, 35, 31)),
        ("TinyCNN", (2, 19, 20, 17)),
        ("Conv5_FC3", (1, 17, 18, 19)),
    ],
)
def test_reconstruction_has_the_input_shape_for_odd_sizes(name, size):
    ae = build_autoencoder(name, size).eval()
    with torch.no_grad():
        out = ae(torch.rand(2, *size))
    assert out.shape == (2, *size)


def test_encoder_copies_the_cnn_convolutions_with_the_same_indices():
    cnn = build_network("TinyCNN", (1, 21, 26, 23), 2)
    ae = AutoEncoder(cnn)
    cnn_state, ae_state = cnn.state_dict(), ae.state_dict()
    encoder = {k[len("encoder.") :]: v for k, v in ae_state.items() if k.startswith("encoder.")}
    convolutions = {
        k[len("convolutions.") :]: v for k, v in cnn_state.items() if k.startswith("convolutions.")
    }
    assert encoder.keys() == convolutions.keys()
    assert all(torch.equal(encoder[k], convolutions[k]) for k in encoder)
    # A copy, not the same modules: training the AE must not change the CNN.
    assert ae.encoder[0].weight.data_ptr() != cnn.convolutions[0].weight.data_ptr()


def test_conv5_fc3_decoder_matches_clinicadl_names_and_channels():
    ae = build_autoencoder("AE_Conv5_FC3", (1, 17, 18, 19))
    assert ae.architecture_name == "AE_Conv5_FC3"
    state = ae.state_dict()
    channels = [128, 64, 32, 16, 8, 1]
    decoder_keys = {k for k in state if k.startswith("decoder.")}
    expected = set()
    for block, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        conv, norm = 4 * block + 1, 4 * block + 2
        expected |= {f"decoder.{conv}.weight", f"decoder.{conv}.bias"}
        expected |= {
            f"decoder.{norm}.{p}"
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        }
        assert state[f"decoder.{conv}.weight"].shape == (c_in, c_out, 3, 3, 3)  # ConvTranspose3d layout
        assert state[f"decoder.{norm}.weight"].shape == (c_out,)
    assert decoder_keys == expected


def test_crop_max_unpool_puts_each_block_maximum_back_where_it_was():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 7, 6, 5, dtype=torch.float64) + 0.1  # positive: padding zeros never win
    pooled, indices, pad = PadMaxPool3d(2, 2).pool_with_indices(x)
    out = CropMaxUnpool3d(2, 2)(pooled, indices, pad, (8, 6, 6))
    assert out.shape == x.shape
    # Reference: a voxel survives iff it is the maximum of its (front-padded) 2x2x2 block.
    xp = np.pad(x.numpy(), [(0, 0), (0, 0), (1, 0), (0, 0), (1, 0)])
    block_max = xp.reshape(1, 2, 4, 2, 3, 2, 3, 2).max(axis=(3, 5, 7))
    upsampled = block_max.repeat(2, 2).repeat(2, 3).repeat(2, 4)[:, :, 1:, :, 1:]
    expected = np.where(x.numpy() == upsampled, x.numpy(), 0.0)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_crop_max_unpool_equals_torch_max_unpool_and_is_deterministic(recwarn):
    """Same values and gradients as F.max_unpool3d, with no nondeterminism warning: torch has no
    deterministic max_unpool3d, and deterministic training would warn on every batch."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 8, 7, dtype=torch.float64)
    pooled, indices, pad = PadMaxPool3d(2, 2).pool_with_indices(x)
    padded = (10, 8, 8)
    grad = torch.randn(2, 3, 9, 8, 7, dtype=torch.float64)

    ours_in = pooled.clone().requires_grad_()
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        ours = CropMaxUnpool3d(2, 2)(ours_in, indices, pad, padded)
        ours.backward(grad)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    assert not [w for w in recwarn if "deterministic" in str(w.message)]

    theirs_in = pooled.clone().requires_grad_()
    theirs = F.max_unpool3d(theirs_in, indices, 2, 2, output_size=padded)[:, :, pad[4] :, pad[2] :, pad[0] :]
    theirs.backward(grad)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours_in.grad, theirs_in.grad)


def test_autoencoder_trains_end_to_end():
    torch.manual_seed(0)
    ae = build_autoencoder("TinyCNN", (1, 13, 14, 15))
    x = torch.rand(4, 1, 13, 14, 15)
    optimizer = torch.optim.Adam(ae.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(ae(x), x)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert ae.decoder[1].weight.grad is not None and ae.encoder[0].weight.grad is not None


def test_a_cnn_without_conv_blocks_is_refused():
    cnn = build_network("TinyCNN", (1, 21, 26, 23), 2)
    cnn.convolutions = torch.nn.Sequential(*list(cnn.convolutions)[:-1])
    with pytest.raises(NeuroexecError, match="blocks of 4 layers"):
        AutoEncoder(cnn)
