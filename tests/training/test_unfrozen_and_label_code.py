"""transfer.nb_unfrozen_layer: a transferred model trains only its last 2 * n parameter tensors (ClinicaDL's
"layers": a weight and a bias), the others keep the source's values. label_code: the class index of
each label instead of the sorted labels, in the items, the predictions and maps.json; a label of the
data without an index, or an index beyond the network's outputs, is refused naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec.errors import PlanRefused, SpecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec import load_spec
from neuroexec.spec.model import Model
from neuroexec.training.task import training_config
from tests.training.training_specs import run_apply, write_spec

SOURCE = 'task = "classification"\ntrain = { epochs = 1, learning_rate = 1e-2 }'


def transferred(layers: int) -> str:
    return (
        'task = "classification"\n'
        f'transfer = {{ model = "src", nb_unfrozen_layer = {layers} }}\n'
        "train = { epochs = 2, learning_rate = 1e-2 }"
    )


def parameters(maps: MapsLayout) -> dict[str, torch.Tensor]:
    state = load_model_state(maps.best_model(0, "loss"))[0]
    return {
        k: v
        for k, v in state.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def test_only_the_last_layers_of_a_transferred_model_train(tmp_path):
    path = write_spec(tmp_path, {"src": SOURCE, "dst": transferred(1)}, subjects=8)
    run_apply(path)
    src, dst = MapsLayout(tmp_path / "maps/src"), MapsLayout(tmp_path / "maps/dst")
    before, after = parameters(src), parameters(dst)
    names = list(before)
    assert names == list(after)
    trained = [n for n in names if not torch.equal(before[n], after[n])]
    assert trained == names[-2:] and trained[0].startswith("fc.")  # the last layer's weight and bias
    assert json.loads(dst.maps_json.read_text())["nb_unfrozen_layer"] == 1
    assert training_config(load_spec(path).models["dst"])["transfer"]["nb_unfrozen_layer"] == 1


def diagnoses(maps: MapsLayout) -> pd.DataFrame:
    return pd.read_csv(maps.split_group_tsv("validation", 0), sep="\t", dtype={"participant_id": str})


def test_a_label_code_numbers_the_classes(tmp_path):
    body = 'task = "classification"\nlabel_code = { CN = 0, AD = 1 }\ntrain = { epochs = 1 }'
    path = write_spec(tmp_path, {"m": body}, subjects=8)
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/m")
    assert json.loads(maps.maps_json.read_text())["label_code"] == {"CN": 0, "AD": 1}  # sorted: AD 0, CN 1
    predictions = pd.read_csv(maps.prediction_tsv(0, "loss", "validation", "image"), sep="\t")
    merged = predictions.merge(diagnoses(maps), on="participant_id")
    assert len(merged) == len(predictions) and set(merged.diagnosis) == {"AD", "CN"}
    assert (merged.true_label == merged.diagnosis.map({"CN": 0, "AD": 1})).all()


@pytest.mark.parametrize(
    "code, why",
    [
        ("{ CN = 0, MCI = 1 }", "the 'diagnosis' labels ['AD'] have no class index in models.m.label_code"),
        ("{ AD = 0, CN = 2 }", "models.m.label_code gives {'CN': 2}, but the network has 2 outputs"),
    ],
)
def test_a_label_code_that_does_not_fit_the_data_is_refused(tmp_path, code, why):
    path = write_spec(
        tmp_path, {"m": f'task = "classification"\nlabel_code = {code}\ntrain = {{ epochs = 1 }}'}
    )
    # refused by the plan, which knows the labels (tests/training/test_label_code_plan.py)
    with pytest.raises(PlanRefused) as info:
        run_apply(path)
    assert why in str(info.value)


def test_validate_refuses_a_label_code_without_classes_or_without_a_kept_diagnosis(tmp_path):
    regression = 'task = "regression"\nlabel = "age"\nlabel_code = { CN = 0, AD = 1 }'
    kept = 'task = "classification"\ndiagnoses = ["AD", "CN"]\nlabel_code = { CN = 0, MCI = 1 }'
    path = write_spec(tmp_path, {"r": regression, "c": kept})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    found = {p.key: p.message for p in info.value.problems}
    assert found == {
        "models.r.label_code": "class indices are for classification, not 'regression': remove it",
        "models.c.label_code": "no class index for the diagnoses ['AD']: add them to label_code",
    }


def test_a_label_code_enters_the_fingerprint_only_when_set():
    assert "label_code" not in training_config(Model("m", Path("maps"), "d"))
    coded = Model("m", Path("maps"), "d", label_code=(("CN", 0), ("AD", 1)))
    assert training_config(coded)["label_code"] == [["CN", 0], ["AD", 1]]
