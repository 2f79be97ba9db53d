from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroexec.errors import NeuroexecError
from neuroexec.nn.networks import ARCHITECTURES, PadMaxPool3d, build_network


def _clinicadl_cnn_keys(n_blocks: int) -> set[str]:
    keys = set()
    for block in range(n_blocks):
        conv, norm = 4 * block, 4 * block + 1
        keys |= {f"convolutions.{conv}.weight", f"convolutions.{conv}.bias"}
        keys |= {
            f"convolutions.{norm}.{p}"
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        }
    keys |= {f"fc.{i}.{p}" for i in (2, 4, 6) for p in ("weight", "bias")}
    return keys


def test_conv5_fc3_has_clinicadl_parameter_names_and_fc_size_for_t1_linear_images():
    net = build_network("Conv5_FC3", (1, 169, 208, 179), output_size=2)
    state = net.state_dict()
    assert set(state) == _clinicadl_cnn_keys(5)
    channels = [8, 16, 32, 64, 128]
    for block, (c_in, c_out) in enumerate(zip([1, *channels[:-1]], channels)):
        assert state[f"convolutions.{4 * block}.weight"].shape == (c_out, c_in, 3, 3, 3)
        assert state[f"convolutions.{4 * block + 1}.running_mean"].shape == (c_out,)
    assert state["fc.2.weight"].shape == (1300, 128 * 6 * 7 * 6)
    assert state["fc.4.weight"].shape == (50, 1300)
    assert state["fc.6.weight"].shape == (2, 50)


def test_conv4_fc3_is_five_blocks_with_a_small_head_and_fits_50_cubed_patches():
    net = build_network("Conv4_FC3", (1, 50, 50, 50), output_size=3)
    state = net.state_dict()
    assert set(state) == _clinicadl_cnn_keys(5)
    # 50 -> 25 -> 13 -> 7 -> 4 -> 2
    assert state["fc.2.weight"].shape == (50, 128 * 2 * 2 * 2)
    assert state["fc.4.weight"].shape == (40, 50)
    assert state["fc.6.weight"].shape == (3, 40)


@pytest.mark.parametrize(
    "name, size",
    [
        ("Conv5_FC3", (1, 37, 41, 33)),
        ("Conv4_FC3", (2, 33, 35, 31)),
        ("TinyCNN", (1, 21, 26, 23)),
        ("TinyCNN", (1, 45, 45, 45)),
    ],
)
def test_fc_input_size_matches_the_real_convolution_output(name, size):
    torch.manual_seed(0)
    net = build_network(name, size, output_size=2).eval()
    x = torch.randn(2, *size)
    with torch.no_grad():
        features = net.convolutions(x)
        out = net(x)
    assert features[0].numel() == net.fc[2].in_features
    assert out.shape == (2, 2)


def _reference_pad_max_pool(x: np.ndarray) -> np.ndarray:
    """Zero-pad each spatial axis in front up to an even size, then max over 2x2x2 blocks."""
    pads = [(0, 0), (0, 0)] + [(s % 2, 0) for s in x.shape[2:]]
    p = np.pad(x, pads)
    b, c, d, h, w = p.shape
    return p.reshape(b, c, d // 2, 2, h // 2, 2, w // 2, 2).max(axis=(3, 5, 7))


def test_pad_max_pool_pads_odd_sizes_in_front_with_zeros():
    x = torch.randn(2, 3, 7, 6, 5, dtype=torch.float64)  # negative values: padding zeros can win
    pool = PadMaxPool3d(2, 2)
    out = pool(x)
    np.testing.assert_array_equal(out.numpy(), _reference_pad_max_pool(x.numpy()))
    out2, indices, pad = PadMaxPool3d(2, 2, return_indices=True, return_pad=True)(x)
    assert torch.equal(out, out2) and indices.shape == out.shape
    assert pad == (1, 0, 0, 0, 1, 0)


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(NeuroexecError) as error:
        build_network("Conv7_FC9", (1, 40, 40, 40), 2)
    for name in ARCHITECTURES:
        assert name in str(error.value)


def test_too_small_input_names_architecture_and_size():
    with pytest.raises(NeuroexecError) as error:
        build_network("Conv5_FC3", (1, 16, 40, 40), 2)
    assert "Conv5_FC3" in str(error.value) and "(1, 16, 40, 40)" in str(error.value)
    build_network("Conv5_FC3", (1, 17, 17, 17), 2)  # the smallest size it accepts


@pytest.mark.parametrize("size", [(1, 40), (1, 40, 40, 40, 40)])
def test_input_size_neither_2d_nor_3d_is_refused(size):
    with pytest.raises(NeuroexecError, match="TinyCNN: input_size must be .* 2D slice"):
        build_network("TinyCNN", size, 2)


def test_tiny_cnn_learns_a_trivial_problem_in_a_few_steps():
    torch.manual_seed(0)
    net = build_network("TinyCNN", (1, 20, 20, 20), output_size=2, dropout=0.0)
    x = torch.randn(8, 1, 20, 20, 20)
    y = torch.tensor([0, 1] * 4)
    x[y == 1] += 1.0
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
