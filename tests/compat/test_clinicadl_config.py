"""ClinicaDL's train config TOML -> `neuroexec train` options."""

from __future__ import annotations

import pytest

from neuroexec.compat.clinicadl_config import read_train_config
from neuroexec.errors import InputError

CONFIG = """
[Model]
architecture = "Conv4_FC3"
multi_network = false
[Architecture]
dropout = 0.2
[Classification]
selection_metrics = ["loss", "BA"]
label = "diagnosis"
loss = "CrossEntropyLoss"
[Computational]
gpu = false
n_proc = 1
batch_size = 4
evaluation_steps = 0
[Reproducibility]
seed = 7
deterministic = true
[Cross_validation]
n_splits = 3
split = 1
[Optimization]
optimizer = "Adam"
epochs = 5
learning_rate = 0.001
"""


def test_mapped_sections(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    options = read_train_config(path)
    assert options == {
        "architecture": "Conv4_FC3", "dropout": 0.2, "selection_metrics": ["loss", "BA"], "label": "diagnosis",
        "gpu": False, "n_proc": 1, "batch_size": 4, "seed": 7, "deterministic": True, "n_splits": 3, "split": [1],
        "optimizer": "Adam", "epochs": 5, "learning_rate": 0.001, "multi_network": False,
        "loss": "CrossEntropyLoss", "evaluation_steps": 0,
    }  # fmt: skip


def test_unknown_and_unsupported_options_are_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG + "frobnicate = 1\n[Data]\nepochs = 2\n[Whatever]\nx = 1\n")
    with pytest.raises(InputError) as err:
        read_train_config(path)
    text = str(err.value)
    assert "[Optimization] frobnicate: unknown option" in text
    assert "[Data] epochs: not an option of [Data] (ClinicaDL reads it in [Optimization])" in text
    assert "[Whatever]: not a section of ClinicaDL's train_config.toml" in text


def test_bad_toml_names_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[Model\n")
    with pytest.raises(InputError, match="not valid TOML"):
        read_train_config(path)
