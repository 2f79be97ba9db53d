"""Transfer learning: copy weights from a source state dict into a target network.

source -> target   what is copied
AE     -> CNN      encoder.*       into convolutions.*  (conv and batch-norm, running stats included)
CNN    -> AE       convolutions.*  into encoder.*
CNN    -> CNN      everything
AE     -> AE       everything
"""

from __future__ import annotations

import torch
from torch import nn

from neuroexec.errors import NeuroexecError


def _strip_ddp_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def _shape(value: object) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def transfer_weights(
    target: nn.Module,
    source_state: dict[str, torch.Tensor],
    source_is_autoencoder: bool,
    target_is_autoencoder: bool,
) -> list[str]:
    """Copy the transferable tensors of `source_state` into `target`; return the target names copied.

    Every problem (a tensor missing on either side, a shape mismatch) is gathered into one
    NeuroexecError naming each layer with both shapes; nothing is copied in that case.

    >>> from neuroexec.nn.autoencoder import build_autoencoder
    >>> from neuroexec.nn.networks import build_network
    >>> autoencoder = build_autoencoder("TinyCNN", (1, 21, 26, 22))
    >>> cnn = build_network("TinyCNN", (1, 21, 26, 22), output_size=2)
    >>> names = transfer_weights(cnn, autoencoder.state_dict(), True, False)
    >>> names[0]
    'convolutions.0.weight'
    >>> torch.equal(cnn.state_dict()["convolutions.0.weight"], autoencoder.state_dict()["encoder.0.weight"])
    True
    """
    source_prefix, target_prefix = _prefixes(source_is_autoencoder, target_is_autoencoder)
    mapped = {
        target_prefix + key[len(source_prefix) :]: value
        for key, value in _strip_ddp_prefix(source_state).items()
        if key.startswith(source_prefix)
    }
    target_state = target.state_dict()
    wanted = [key for key in target_state if key.startswith(target_prefix)]
    problems = _mismatches(mapped, target_state, wanted, source_prefix, target_prefix)
    if problems:
        kinds = (
            f"{'autoencoder' if source_is_autoencoder else 'CNN'} -> "
            f"{'autoencoder' if target_is_autoencoder else 'CNN'}"
        )
        raise NeuroexecError(
            f"cannot transfer weights ({kinds}), {len(problems)} mismatching layer(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )

    with torch.no_grad():
        for key in wanted:
            target_state[key].copy_(mapped[key])
    return wanted


def _prefixes(source_is_autoencoder: bool, target_is_autoencoder: bool) -> tuple[str, str]:
    """The source and target name prefixes of the tensors copied (see the module's table)."""
    if source_is_autoencoder == target_is_autoencoder:
        return "", ""
    if source_is_autoencoder:
        return "encoder.", "convolutions."
    return "convolutions.", "encoder."


def _mismatches(
    mapped: dict[str, torch.Tensor],
    target_state: dict[str, torch.Tensor],
    wanted: list[str],
    source_prefix: str,
    target_prefix: str,
) -> list[str]:
    """Every tensor missing on either side or of another shape, one line each, with both shapes."""
    problems = []
    for key in wanted:
        if key not in mapped:
            problems.append(f"{key}: missing in the source (target shape {_shape(target_state[key])})")
        elif _shape(mapped[key]) != _shape(target_state[key]):
            problems.append(
                f"{key}: source shape {_shape(mapped[key])} != target shape {_shape(target_state[key])}"
            )
    for key in mapped:
        if key not in target_state:
            problems.append(
                f"{source_prefix + key[len(target_prefix) :]}: in the source (shape "
                f"{_shape(mapped[key])}) but the target has no {key}"
            )
    if not wanted:
        problems.append(f"the target has no '{target_prefix}*' tensors to receive weights")
    return problems
