"""ClinicaDL's resnet18: ResNet-18 on 2D RGB slices, with ImageNet weights from a local file.

`convolutions` is Sequential(conv1, bn1, relu, maxpool, layer1..layer4, avgpool) of ResNet-18 (two
BasicBlocks per layer, a 1x1 `downsample` where the stride or the width changes) and `fc` is
Flatten, Linear 512 -> 1000 (`fc.1`, ImageNet's classifier kept), Dropout (`fc.drop_out`), Linear
1000 -> outputs (`fc.fc_out`): ClinicaDL's state-dict names. The average pooling covers the whole last
feature map, so the network is built for one slice size, as in ClinicaDL.

ClinicaDL downloads torchvision's ImageNet weights at build time. Here nothing is downloaded: the
spec's `architecture_options.weights` names a torchvision resnet18 state-dict file (its names:
`conv1.weight`, `layer1.0.bn1.bias`, ..., `fc.weight`), read with weights_only=True and mapped into
`convolutions`/`fc.1` as ClinicaDL does; without it the network starts from ClinicaDL's random
initialisation and a warning says so.

>>> torchvision_names({"convolutions.4.0.conv1.weight": 0, "fc.1.bias": 1})
{'layer1.0.conv1.weight': 0, 'fc.bias': 1}
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuroexec.errors import InputError, NeuroexecError
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.nn.networks import CNN
from neuroexec.nn.sizes import require_output_size, require_values_per_channel, spatial_dims

NAME = "resnet18"
WIDTHS = (64, 128, 256, 512)
BLOCKS = (2, 2, 2, 2)
# torchvision's resnet18 names -> ClinicaDL's (conv1, bn1, layer1..4 in `convolutions`, fc at fc.1)
_PREFIXES = {"conv1.": "convolutions.0.", "bn1.": "convolutions.1.", "layer1.": "convolutions.4.",
             "layer2.": "convolutions.5.", "layer3.": "convolutions.6.", "layer4.": "convolutions.7.",
             "fc.": "fc.1."}  # fmt: skip
_REBUILT = object()  # `weights` not given: rebuilt for a saved state dict (inference), no warning


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)), 3x3 convolutions without bias."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def residual_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:  # made before the blocks, as torchvision draws its weights
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
        )
    layers = [BasicBlock(inplanes, planes, stride, downsample)]
    layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def final_shape(spatial: tuple[int, ...]) -> tuple[int, ...]:
    """The last feature map's size: conv1, maxpool and layers 2-4 each map n to (n - 1) // 2 + 1.

    >>> final_shape((64, 70))
    (2, 3)
    """
    for _ in range(5):
        spatial = tuple((size - 1) // 2 + 1 for size in spatial)
    return spatial


def _reinitialise(modules: nn.Module) -> None:
    """ClinicaDL's ResNet initialisation: convolutions N(0, sqrt(2 / (k * k * out))), batch norms 1, 0."""
    for m in modules.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()


def resnet18_convolutions(input_size: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    ]
    inplanes = 64
    for i, (planes, blocks) in enumerate(zip(WIDTHS, BLOCKS, strict=True)):
        layers.append(residual_layer(inplanes, planes, blocks, stride=1 if i == 0 else 2))
        inplanes = planes
    layers.append(nn.AvgPool2d(final_shape(tuple(input_size[1:])), stride=1))
    return nn.Sequential(*layers)


def check_rgb(input_size: tuple[int, ...]) -> None:
    spatial_dims(NAME, input_size, (2,))
    if int(input_size[0]) != 3:
        raise NeuroexecError(
            f"architecture {NAME} takes RGB slices (3 channels), got input size {tuple(input_size)}: "
            'set the model\'s slice mode to "rgb" (slice = { mode = "rgb" })'
        )


def build_resnet18(
    input_size: tuple[int, ...], output_size: int | None, dropout: float, weights: Any = _REBUILT, **_options
) -> CNN:
    """resnet18 for (3, H, W) slices with a side >= 33. `weights`: a torchvision resnet18 state-dict file (ImageNet's);
    None: random start, with a warning; not given: rebuilt to receive a saved state dict."""
    check_rgb(input_size)
    require_values_per_channel(NAME, input_size, final_shape(tuple(input_size[1:])), 33)
    out = require_output_size(NAME, int(output_size or 1))
    convolutions = resnet18_convolutions(input_size)
    imagenet_fc = nn.Linear(512, 1000)
    _reinitialise(convolutions)
    fc = nn.Sequential(nn.Flatten(), imagenet_fc)
    fc.add_module("drop_out", nn.Dropout(p=dropout))
    fc.add_module("fc_out", nn.Linear(1000, out))
    net = CNN(convolutions, fc, NAME, tuple(int(s) for s in input_size), out)
    if weights is not None and weights is not _REBUILT:
        load_imagenet_weights(net, Path(weights))
    elif weights is None:
        warnings.warn(
            "resnet18 starts from random weights: ClinicaDL would have used torchvision's ImageNet weights "
            "(give a local copy as the model's architecture_options.weights)",
            stacklevel=2,
        )
    return net


def clinicadl_names(state: dict[str, Any]) -> dict[str, Any]:
    """A torchvision resnet18 state dict under ClinicaDL's names (conv1. -> convolutions.0. ...)."""
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        renamed[_PREFIXES[prefix] + key[len(prefix) :] if prefix else key] = value
    return renamed


def torchvision_names(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of clinicadl_names (the ImageNet part; fc.fc_out is dropped)."""
    back = {v: k for k, v in _PREFIXES.items()}
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in back if key.startswith(p)), None)
        if prefix:
            renamed[back[prefix] + key[len(prefix) :]] = value
    return renamed


def _mismatches(net: nn.Module, state: dict[str, Any], original: dict[str, str]) -> list[str]:
    """What keeps `state` (under ClinicaDL's names) from loading, said in the file's names (`original`)."""
    own = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.fc_out.")}
    optional = {k for k in own if k.endswith("num_batches_tracked")}  # torchvision's 2017 file has none
    missing = sorted(torchvision_names(dict.fromkeys(set(own) - set(state) - optional)))
    unexpected = sorted(original[k] for k in set(state) - set(own))
    shapes = sorted(
        original[k]
        for k in set(own) & set(state)
        if not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape
    )
    found = [f"missing {', '.join(missing[:3])}"] if missing else []
    found += [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []
    return found + ([f"wrong shape for {', '.join(shapes[:3])}"] if shapes else [])


def load_imagenet_weights(net: CNN, path: Path) -> None:
    """Load a torchvision resnet18 state-dict file (weights_only) into `net`; fc.fc_out stays random."""
    if not path.is_file():
        raise InputError(path, "resnet18 weights file not found", field="architecture_options.weights")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise InputError(
            path, "not a resnet18 state dict (keys are not names)", field="architecture_options.weights"
        )
    mapped = clinicadl_names(state)
    problems = _mismatches(net, mapped, dict(zip(mapped, state, strict=True)))
    if problems:
        raise InputError(
            path,
            f"not a torchvision resnet18 state dict ({'; '.join(problems)}): save one with "
            "torch.save(resnet18(weights='IMAGENET1K_V1').state_dict(), path)",
            field="architecture_options.weights",
        )
    net.load_state_dict(mapped, strict=False)
