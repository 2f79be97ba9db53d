"""ClinicaDL's [Architecture] options: from the spec into maps.json, back into MapsInfo, and from
there into the network the inference builds."""

from __future__ import annotations

import json

import pytest
from torch import nn

from neuroexec.errors import InputError
from neuroexec.inference.model_io import build_model
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import registry
from tests.training.training_specs import run_apply, write_spec

# ClinicaDL 1.6.1's defaults (resources/config/train_config.toml, [Architecture])
CLINICADL_DEFAULTS = {
    "latent_space_size": 128,
    "feature_size": 1024,
    "n_conv": 4,
    "io_layer_channels": 8,
    "recons_weight": 1,
    "kl_weight": 1,
    "normalization": "batch",
}
ARCHITECTURE_KEYS = list(CLINICADL_DEFAULTS)

VAE_LIKE = (
    'task = "reconstruction"\nmode = "slice"\ntrain = { epochs = 1, learning_rate = 1e-3 }\n'
    "architecture_options = { latent_space_size = 64, kl_weight = 0.25 }"
)


def vae_spec(tmp_path, body: str, **kwargs):
    """A spec whose model is a VAE that reads these options (validate refuses options a network does
    not read, and TinyCNN's autoencoder reads none): the 2D VanillaDenseVAE, on slices."""
    path = write_spec(tmp_path, {"ae": body}, **kwargs)
    path.write_text(path.read_text().replace('architecture = "TinyCNN"', 'architecture = "VanillaDenseVAE"'))
    return path


def _write_maps_json(folder, **record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "maps.json").write_text(
        json.dumps({"network_task": "reconstruction", "mode": "image", **record})
    )
    return folder


def test_the_spec_options_are_in_maps_json_and_back_in_maps_info(tmp_path):
    run_apply(vae_spec(tmp_path, VAE_LIKE, subjects=6))
    maps = MapsLayout(tmp_path / "maps/ae")
    raw = json.loads(maps.maps_json.read_text())
    assert raw["architecture"] == "VanillaDenseVAE"
    assert raw["latent_space_size"] == 64 and raw["n_conv"] == 4 and raw["kl_weight"] == 0.25
    assert raw["normalization"] == "batch" and raw["feature_size"] == 1024  # not given: the default
    # ClinicaDL's order: right after architecture, multi_network, dropout
    keys = list(raw)
    assert keys[keys.index("dropout") + 1 : keys.index("dropout") + 8] == ARCHITECTURE_KEYS
    info = read_maps_info(maps.root)
    assert info.architecture_options == {
        **CLINICADL_DEFAULTS,
        "latent_space_size": 64,
        "kl_weight": 0.25,
    }


def test_a_training_without_options_records_clinicadl_defaults(tmp_path):
    run_apply(write_spec(tmp_path, {"ae": 'task = "reconstruction"\ntrain = { epochs = 1 }'}, subjects=6))
    raw = json.loads(MapsLayout(tmp_path / "maps/ae").maps_json.read_text())
    assert {key: raw[key] for key in ARCHITECTURE_KEYS} == CLINICADL_DEFAULTS


def test_build_model_passes_the_recorded_options_to_the_builder(tmp_path, monkeypatch):
    seen = {}

    def build(input_size, output_size, dropout, **options):
        seen.update(options, dropout=dropout, input_size=input_size)
        return nn.Identity()

    fake = registry.Entry("FakeVAE", registry.RECONSTRUCTION, (3,), build, "records its options")
    monkeypatch.setitem(registry.REGISTRY, "FakeVAE", fake)
    root = _write_maps_json(
        tmp_path / "maps",
        architecture="FakeVAE",
        input_size=[1, 8, 8, 8],
        dropout=0.0,
        latent_space_size=7,
        normalization="group",
    )
    build_model(read_maps_info(root))
    assert seen["latent_space_size"] == 7 and seen["normalization"] == "group"
    assert seen["feature_size"] == 1024 and seen["input_size"] == (1, 8, 8, 8)
    assert seen["dropout"] == 0.0


@pytest.mark.parametrize("recorded, read", [({"dropout": 0.0}, 0.0), ({"dropout": 0.2}, 0.2), ({}, 0.5)])
def test_a_recorded_dropout_of_zero_stays_zero(tmp_path, recorded, read):
    assert read_maps_info(_write_maps_json(tmp_path / "maps", **recorded)).dropout == read


def test_options_absent_from_maps_json_take_clinicadl_defaults(tmp_path):
    # a MAPS of ClinicaDL before 1.3 (no VAE keys), and neuroexec's earlier maps.json ("BatchNorm")
    assert read_maps_info(_write_maps_json(tmp_path / "a")).architecture_options == CLINICADL_DEFAULTS
    earlier = read_maps_info(_write_maps_json(tmp_path / "b", latent_space_size=2, normalization="BatchNorm"))
    assert earlier.architecture_options == {**CLINICADL_DEFAULTS, "latent_space_size": 2}


def test_an_option_of_the_wrong_type_names_the_file_and_key(tmp_path):
    root = _write_maps_json(tmp_path / "maps", latent_space_size="large")
    with pytest.raises(
        InputError, match=r"maps\.json \[latent_space_size\]: latent_space_size must be an integer"
    ):
        read_maps_info(root)


def test_the_options_enter_the_training_fingerprint_only_when_set(tmp_path):
    from neuroexec.spec import load_spec
    from neuroexec.training.task import training_config

    def config(options: str) -> dict:
        body = f'task = "reconstruction"\nmode = "slice"\ntrain = {{ epochs = 1 }}\n{options}'
        return training_config(load_spec(vae_spec(tmp_path, body)).models["ae"])

    default, stated_default = config(""), config("architecture_options = { latent_space_size = 128 }")
    assert "architecture_options" not in default and stated_default == default  # MAPS trained before: same
    assert (
        config("architecture_options = { latent_space_size = 64 }")["architecture_options"][
            "latent_space_size"
        ]
        == 64
    )
    assert config("architecture_options = { kl_weight = 0.5 }") != default
