"""An [Architecture] option set off its default must be one the model's network reads (its registry
builder's parameters, or its class's __init__ for a network of your own): validate refuses the others,
naming the key and the networks that read it, since they would change the fingerprint and not the
network. No network of neuroexec reads normalization (batch norm, as in ClinicaDL)."""

from __future__ import annotations

import pytest

from neuroexec.errors import SpecError
from neuroexec.spec import load_spec

SPEC = """version = 1
[datasets.d]
caps = "data/d"
generate = {{ subjects = 8, resolution_mm = 8 }}
[models.m]
maps = "maps/m"
dataset = "d"
split = {{ n_splits = 2, splits = [0] }}
{model}
"""

NETS = """
import torch

class Named(torch.nn.Module):
    def __init__(self, input_size, output_size, dropout=0.0, n_conv=4, normalization="batch"):
        super().__init__()
        self.fc = torch.nn.Linear(1, output_size)

class TakesAll(torch.nn.Module):
    def __init__(self, input_size, output_size, dropout=0.0, **options):
        super().__init__()
        self.fc = torch.nn.Linear(1, output_size)
"""


def load(tmp_path, model: str):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(model=model))
    return load_spec(path)


def problems(tmp_path, model: str) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        load(tmp_path, model)
    return {p.key: p.message for p in err.value.problems}


def test_an_option_the_cnn_does_not_read_is_refused_naming_the_networks_that_read_it(tmp_path):
    said = problems(tmp_path, 'architecture = "Conv5_FC3"\narchitecture_options = { latent_space_size = 64 }')
    message = said.pop("models.m.architecture_options.latent_space_size")
    assert not said
    assert message.startswith("Conv5_FC3 reads no latent_space_size")
    assert "CAE_half" in message and "CVAE_3D_half" in message and "VanillaDenseVAE" in message
    assert "VanillaSpatialVAE" not in message  # its latent is spatial: it reads no latent_space_size


def test_an_option_at_its_default_is_accepted_on_any_network(tmp_path):
    spec = load(tmp_path, 'architecture = "Conv5_FC3"\narchitecture_options = { latent_space_size = 128, '
                'normalization = "batch" }')  # fmt: skip
    assert spec.models["m"].architecture_options.latent_space_size == 128


def test_normalization_is_refused_saying_the_networks_use_batch_norm(tmp_path):
    said = problems(tmp_path, 'architecture = "TinyCNN"\narchitecture_options = { normalization = "group" }')
    assert list(said) == ["models.m.architecture_options.normalization"]
    assert "batch norm" in said["models.m.architecture_options.normalization"]


def test_a_vae_reads_the_options_its_constructor_names(tmp_path):
    model = 'task = "reconstruction"\narchitecture = "CVAE_3D"\narchitecture_options = {{ {} }}'
    assert load(tmp_path, model.format("latent_space_size = 16")).models["m"].architecture == "CVAE_3D"
    said = problems(tmp_path, model.format("latent_space_size = 16, recons_weight = 0.5"))
    assert list(said) == ["models.m.architecture_options.recons_weight"]
    assert said["models.m.architecture_options.recons_weight"].startswith("CVAE_3D reads no recons_weight")
    assert "CVAE_3D_half" in said["models.m.architecture_options.recons_weight"]


def test_a_network_of_your_own_reads_what_its_init_names_or_everything_with_kwargs(tmp_path):
    (tmp_path / "options_read_nets.py").write_text(NETS)
    named = 'architecture = "options_read_nets:Named"\narchitecture_options = {{ {} }}'
    spec = load(tmp_path, named.format('n_conv = 7, normalization = "group"'))
    assert spec.models["m"].architecture_options.n_conv == 7
    said = problems(tmp_path, named.format("n_conv = 7, latent_space_size = 3"))
    assert list(said) == ["models.m.architecture_options.latent_space_size"]
    assert said["models.m.architecture_options.latent_space_size"].startswith(
        "options_read_nets:Named reads no latent_space_size"
    )
    takes_all = (
        'architecture = "options_read_nets:TakesAll"\narchitecture_options = { latent_space_size = 3 }'
    )
    assert load(tmp_path, takes_all).models["m"].architecture_options.latent_space_size == 3
