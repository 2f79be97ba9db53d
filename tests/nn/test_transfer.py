from __future__ import annotations

import pytest
import torch

from neuroexec.errors import NeuroexecError
from neuroexec.nn.autoencoder import build_autoencoder
from neuroexec.nn.networks import build_network
from neuroexec.nn.transfer import transfer_weights

SIZE = (1, 21, 26, 23)


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every floating tensor (weights and batch-norm running stats) random, counters non-zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.fill_(seed + 7)
    return module


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_autoencoder_to_cnn_copies_exactly_the_encoder_into_the_convolutions():
    source = _randomised(build_autoencoder("TinyCNN", SIZE), seed=1)
    target = build_network("TinyCNN", SIZE, 2)
    before = _snapshot(target)
    copied = transfer_weights(
        target, source.state_dict(), source_is_autoencoder=True, target_is_autoencoder=False
    )
    after = target.state_dict()
    assert copied == [k for k in after if k.startswith("convolutions.")]
    assert any("running_var" in k for k in copied) and any("num_batches_tracked" in k for k in copied)
    for key in copied:
        assert torch.equal(after[key], source.state_dict()["encoder." + key[len("convolutions.") :]])
    for key in after:
        if key.startswith("fc."):
            assert torch.equal(after[key], before[key])


def test_cnn_to_autoencoder_copies_the_convolutions_into_the_encoder_only():
    source = _randomised(build_network("TinyCNN", SIZE, 2), seed=2)
    target = build_autoencoder("TinyCNN", SIZE)
    before = _snapshot(target)
    copied = transfer_weights(
        target, source.state_dict(), source_is_autoencoder=False, target_is_autoencoder=True
    )
    after = target.state_dict()
    assert copied and all(k.startswith("encoder.") for k in copied)
    for key in copied:
        assert torch.equal(after[key], source.state_dict()["convolutions." + key[len("encoder.") :]])
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("decoder."))


@pytest.mark.parametrize("autoencoder", [False, True])
def test_same_kind_transfer_copies_every_tensor(autoencoder):
    build = (
        (lambda: build_autoencoder("TinyCNN", SIZE))
        if autoencoder
        else (lambda: build_network("TinyCNN", SIZE, 3))
    )
    source, target = _randomised(build(), seed=3), build()
    copied = transfer_weights(target, source.state_dict(), autoencoder, autoencoder)
    assert copied == list(target.state_dict())
    for key, value in target.state_dict().items():
        assert torch.equal(value, source.state_dict()[key])


def test_ddp_prefix_in_the_source_is_ignored():
    source = _randomised(build_network("TinyCNN", SIZE, 2), seed=4)
    target = build_network("TinyCNN", SIZE, 2)
    transfer_weights(target, {"module." + k: v for k, v in source.state_dict().items()}, False, False)
    assert torch.equal(target.state_dict()["fc.6.weight"], source.state_dict()["fc.6.weight"])


def test_shape_mismatches_name_every_layer_with_both_shapes_and_copy_nothing():
    source = build_network("TinyCNN", (2, 21, 26, 23), 3)  # 2 input channels, 3 classes
    target = build_network("TinyCNN", SIZE, 2)
    before = _snapshot(target)
    with pytest.raises(NeuroexecError) as error:
        transfer_weights(target, source.state_dict(), False, False)
    message = str(error.value)
    assert (
        "convolutions.0.weight" in message and "(4, 2, 3, 3, 3)" in message and "(4, 1, 3, 3, 3)" in message
    )
    assert "fc.6.weight" in message and "(3, 16)" in message and "(2, 16)" in message
    assert "fc.6.bias" in message
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_missing_and_unexpected_layers_are_reported():
    source = build_autoencoder("Conv4_FC3", (1, 33, 35, 31))  # 5 blocks, channels 8..128
    target = build_network("TinyCNN", (1, 33, 35, 31), 2)  # 3 blocks, channels 4..16
    with pytest.raises(NeuroexecError) as error:
        transfer_weights(target, source.state_dict(), True, False)
    message = str(error.value)
    assert "convolutions.4.weight" in message  # shape mismatch (16, 8, ...) vs (8, 4, ...)
    assert "encoder.12.weight" in message  # a source layer the target lacks
