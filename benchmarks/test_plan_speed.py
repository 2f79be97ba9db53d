"""The engine's own speed: `plan` on a spec with 2,000 subjects and nothing to do must answer in under
2 s (target; reported, not asserted). Input files are fingerprinted by path/size/mtime and hashed only
when those change, so an up-to-date plan costs one stat and one directory listing per session."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neuroexec.context import RunContext
from neuroexec.data.caps import CapsLayout
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

SUBJECTS = 2000


@pytest.fixture(scope="module")
def big_spec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plan2000")
    caps = CapsLayout(root / "caps")
    image = nib.Nifti1Image(np.random.default_rng(0).random((6, 7, 6), dtype=np.float32), np.eye(4))
    rows = []
    for i in range(SUBJECTS):
        sub, ses = f"sub-{i:05d}", "ses-M000"
        path = caps.t1_linear_dir(sub, ses) / caps.nifti_name(sub, ses)
        path.parent.mkdir(parents=True)
        nib.save(image, path)
        rows.append({"participant_id": sub, "session_id": ses, "diagnosis": "AD" if i % 2 else "CN"})
    pd.DataFrame(rows).to_csv(root / "participants.tsv", sep="\t", index=False)
    spec = root / "spec.toml"
    spec.write_text(f"""
version = 1
[datasets.big]
caps = "{caps.root}"
participants = "{root / "participants.tsv"}"
[models.cnn]
maps = "maps/cnn"
dataset = "big"
architecture = "TinyCNN"
split = {{ n_splits = 5 }}
""")
    apply(
        make_plan(load_spec(spec)),
        RunContext(reporter=Reporter(quiet=True)),
        target="model.cnn.split",
    )
    apply(
        make_plan(load_spec(spec)),
        RunContext(reporter=Reporter(quiet=True)),
        target="dataset.big.extract[image]",
    )
    return spec


def test_plan_2000_subjects_nothing_to_do(benchmark, big_spec):
    def plan():
        p = make_plan(load_spec(big_spec))
        return {s.step.id: s.action for s in p.steps}

    benchmark.extra_info.update(role="neuroexec", subjects=SUBJECTS, target_s=2.0)
    actions = benchmark.pedantic(plan, rounds=3, iterations=1, warmup_rounds=1)
    assert actions["dataset.big.extract[image]"] == "=" and actions["model.cnn.split"] == "="
