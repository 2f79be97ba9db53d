"""End to end on the synthetic atrophy dataset: a TinyCNN trained a few epochs separates AD from CN, and
the group's mean saliency map concentrates in the atrophy region (the dataset's hippocampus mask)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from inference_bench import extract, write_maps

from neuroexec.context import RunContext
from neuroexec.data.caps import CapsLayout
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.inference.interpret import interpret_group
from neuroexec.inference.task import GroupTask
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn.networks import build_network
from neuroexec.progress import Reporter
from neuroexec.spec.model import Cohort, Compute, Dataset, Generate, Group, Interpretation, Model

RESOLUTION = 6.0


def tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    layout = CapsLayout(data.caps_dir)
    rows = data.participants
    x = torch.stack([torch.load(layout.image_tensor(p, s), weights_only=True)
                     for p, s in zip(rows.participant_id, rows.session_id)])  # fmt: skip
    return x, torch.tensor((rows.diagnosis == "CN").astype(int).to_numpy())


def train_tiny_cnn(x: torch.Tensor, y: torch.Tensor, epochs: int = 12) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("TinyCNN", tuple(x.shape[1:]), 2, dropout=0.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x)).split(4):
            optimizer.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            optimizer.step()
    return net.eval()


@pytest.mark.slow  # ~15-20 s alone, more on a busy machine: it trains a CNN
def test_saliency_concentrates_in_the_atrophy_region(tmp_path: Path):
    train = generate_atrophy_dataset(tmp_path / "train", subjects=32, resolution_mm=RESOLUTION, seed=1)
    test = generate_atrophy_dataset(tmp_path / "test", subjects=12, resolution_mm=RESOLUTION, seed=2,
                                    subject_offset=500)  # fmt: skip
    extract(train)
    extract(test)
    net = train_tiny_cnn(*tensors(train))
    x_test, y_test = tensors(test)
    with torch.no_grad():
        accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy >= 0.9

    root = tmp_path / "maps"
    write_maps(root, train.caps_dir, model=net)
    data_tsv = MapsLayout(root).group_data_tsv("test")
    data_tsv.parent.mkdir(parents=True)
    test.participants.assign(cohort="test").to_csv(data_tsv, sep="\t", index=False)
    dataset = Dataset(name="test", cohorts=(Cohort("test", test.caps_dir, test.participants_tsv),),
                      generate=Generate(subjects=12, resolution_mm=RESOLUTION, seed=2, subject_offset=500))  # fmt: skip
    interp = Interpretation(name="ad", target="AD")
    group = Group(name="test", models=("m",), dataset="test", interpret=(interp,),
                  compute=Compute(device="cpu", workers=0, batch_size=4))  # fmt: skip
    task = GroupTask(group, Model(name="m", maps=root, dataset=None), dataset, 0, "loss", interp)
    result = interpret_group(task, RunContext(reporter=Reporter(quiet=True)))

    summary = json.loads(MapsLayout(root).interpret_summary(0, "loss", "test", "ad").read_text())
    mask = summary["mask"]
    assert Path(mask["path"]) == test.mask
    assert result["mask"] == mask
    # the region is ~0.3% of the volume (~1% of the brain); a trained model puts many times that share
    # of the saliency there
    assert mask["mass_inside"] > 5 * mask["brain_share"] >= 5 * mask["volume_share"], mask
    assert summary["used"] == len(pd.read_csv(data_tsv, sep="\t"))
