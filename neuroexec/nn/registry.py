"""Every architecture neuroexec builds, by name: where a spec's or a MAPS's `architecture` is chosen.

An entry says which tasks the network serves, in which dimensions it builds (3D volumes, 2D slices)
and how to build it for an input size. Builders take the input size (C, D, H, W) or (C, H, W), the
output size (classes, 1 for regression, None for reconstruction), the dropout and ClinicaDL's
[Architecture] options as keywords (each builder takes the ones it knows). Every network built has
an `architecture_name` (what maps.json and the checkpoints record).

A reconstruction model named by a CNN (`Conv5_FC3`) is that CNN's autoencoder (`AE_Conv5_FC3`),
as neuroexec always did.

>>> build_architecture("Conv5_FC3", "reconstruction", (1, 33, 35, 31)).architecture_name
'AE_Conv5_FC3'
>>> entry("Conv5FC3")
Traceback (most recent call last):
...
neuroexec.errors.NeuroexecError: unknown architecture 'Conv5FC3' (did you mean Conv5_FC3?); known architectures: AE_Conv4_FC3, AE_Conv5_FC3, ...
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from neuroexec.errors import NeuroexecError
from neuroexec.nn import custom
from neuroexec.nn.autoencoder import build_autoencoder
from neuroexec.nn.cae import build_cae_half
from neuroexec.nn.networks import ARCHITECTURES, build_network
from neuroexec.nn.resnet2d import build_resnet18
from neuroexec.nn.resnet3d import build_resnet3d
from neuroexec.nn.secnn import build_secnn
from neuroexec.nn.stride_cnn import build_stride_conv5_fc3
from neuroexec.nn.unet import build_generator_unet
from neuroexec.nn.vanilla_vae import VAE_FAMILY, vae_builder

CLASSIFIERS = frozenset({"classification", "regression"})
RECONSTRUCTION = frozenset({"reconstruction"})

# build(input_size, output_size, dropout, **architecture options) -> nn.Module
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class Entry:
    name: str
    tasks: frozenset[str]
    dims: tuple[int, ...]  # spatial dimensions it builds for: 3 (volumes), 2 (slices)
    build: Builder
    description: str


def _cnn(name: str) -> Builder:
    def build(input_size, output_size, dropout, **_options):
        return build_network(name, tuple(input_size), int(output_size or 1), dropout)

    return build


def _derived_autoencoder(name: str) -> Builder:
    def build(input_size, _output_size, dropout, **_options):
        return build_autoencoder(name, tuple(input_size), dropout)

    return build


def _builtin() -> dict[str, Entry]:
    entries = {}
    for name, arch in ARCHITECTURES.items():
        entries[name] = Entry(name, CLASSIFIERS, (2, 3), _cnn(name), arch.description)
        ae = f"AE_{name}"
        entries[ae] = Entry(ae, RECONSTRUCTION, (2, 3), _derived_autoencoder(name), f"autoencoder of {name}")
    return entries


REGISTRY: dict[str, Entry] = _builtin()


def _clinicadl_cnns() -> dict[str, Entry]:
    """ClinicaDL 1.6.1's other CNNs (nn/stride_cnn.py, nn/resnet3d.py, nn/secnn.py, nn/resnet2d.py)."""
    return {e.name: e for e in (
        Entry("Stride_Conv5_FC3", CLASSIFIERS, (2, 3), build_stride_conv5_fc3,
              "ClinicaDL's Conv5_FC3 with stride-2 convolutions instead of pooling (a side >= 33)"),
        Entry("ResNet3D", CLASSIFIERS, (3,), build_resnet3d,
              "ClinicaDL's 3D ResNet: 5 residual blocks (ELU), FC 256, dropout 0.8 (sizes >= 63)"),
        Entry("SqueezeExcitationCNN", CLASSIFIERS, (3,), build_secnn,
              "ClinicaDL's 3D ResNet with squeeze-and-excitation blocks, FC 256, dropout 0.5 (sizes >= 63)"),
        Entry("resnet18", CLASSIFIERS, (2,), build_resnet18,
              "ClinicaDL's ResNet-18 for RGB slices; ImageNet weights from architecture_options.weights"),
    )}  # fmt: skip


REGISTRY.update(_clinicadl_cnns())


def _reconstruction_networks() -> dict[str, Entry]:
    """ClinicaDL 1.6.1's autoencoders not derived from a CNN (nn/cae.py, nn/unet.py)."""

    def cae_half(input_size, _output_size, _dropout, latent_space_size=128, **_options):
        return build_cae_half(input_size, latent_space_size)

    def generator_unet(input_size, _output_size, _dropout, **_options):
        return build_generator_unet(input_size)

    return {e.name: e for e in (
        Entry("CAE_half", RECONSTRUCTION, (3,), cae_half,
              "ClinicaDL's 3D convolutional autoencoder with a dense code of latent_space_size (1@73x89x73 only)"),
        Entry("GeneratorUNet", RECONSTRUCTION, (3,), generator_unet,
              "ClinicaDL's 3D U-Net generator (sides multiples of 32, ClinicaDL's 1@128x128x128)"),
    )}  # fmt: skip


REGISTRY.update(_reconstruction_networks())

# ClinicaDL 1.6.1's variational autoencoders (nn/vae.py, nn/vanilla_vae.py; losses: nn/vae_losses.py)
REGISTRY.update(
    {cls.architecture_name: Entry(cls.architecture_name, RECONSTRUCTION, dims, vae_builder(cls), text)
     for cls, dims, text in VAE_FAMILY}
)  # fmt: skip

# ClinicaDL names neuroexec refuses, with the reason (entry() says it instead of "unknown").
OUT_OF_SCOPE = {
    "Conv5_FC3_SSDA": "ClinicaDL's semi-supervised domain adaptation network (it trains on a second, target "
    "CAPS) is not supported by neuroexec; use Conv5_FC3",
    "RandomArchitecture": "ClinicaDL's random-search architecture (clinicadl random-search) is not supported "
    "by neuroexec; name a fixed architecture",
}


def known() -> list[str]:
    return sorted(REGISTRY)


def entry(name: str) -> Entry:
    """The entry named `name`; a NeuroexecError listing the known names (and the closest) otherwise."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in OUT_OF_SCOPE:
        raise NeuroexecError(f"architecture {name}: {OUT_OF_SCOPE[name]}")
    if custom.is_custom(name):  # `module:Class` or an entry point: a network of your own
        return _custom_entry(name)
    close = difflib.get_close_matches(name, known(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise NeuroexecError(f"unknown architecture {name!r}{hint}; known architectures: {', '.join(known())}")


def _custom_entry(name: str) -> Entry:
    cls = custom.resolve(name)
    tasks = CLASSIFIERS | RECONSTRUCTION  # its output size decides (checked at plan time)
    return Entry(name, tasks, (2, 3), partial(custom.build_custom, cls, name), custom.description(cls))


def resolved_name(name: str, task: str) -> str:
    """The architecture a model of `task` builds: a CNN's autoencoder for reconstruction."""
    if task == "reconstruction" and name in REGISTRY and f"AE_{name}" in REGISTRY:
        return f"AE_{name}"
    return name


def build_architecture(
    name: str,
    task: str,
    input_size: tuple[int, ...],
    output_size: int | None = None,
    dropout: float = 0.0,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The untrained network `name` for a model of `task` reading inputs of `input_size`; a
    NeuroexecError when the name is unknown or the network does not serve the task."""
    found = entry(resolved_name(name, task))
    if task not in found.tasks:
        serves = " or ".join(sorted(found.tasks))
        raise NeuroexecError(f"architecture {name} is for {serves}, not {task}")
    return found.build(tuple(int(s) for s in input_size), output_size, dropout, **dict(options or {}))
