"""Networks (ClinicaDL-compatible CNNs and their autoencoders) and transfer learning."""

from __future__ import annotations

from neuroexec.nn.autoencoder import AutoEncoder, build_autoencoder
from neuroexec.nn.networks import ARCHITECTURES, CNN, PadMaxPool2d, PadMaxPool3d, build_network
from neuroexec.nn.transfer import transfer_weights

__all__ = [
    "ARCHITECTURES",
    "CNN",
    "AutoEncoder",
    "PadMaxPool2d",
    "PadMaxPool3d",
    "build_autoencoder",
    "build_network",
    "transfer_weights",
]
