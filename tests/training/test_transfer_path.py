"""maps.json's transfer_path names the MAPS folder a model transferred from, whichever generation that
MAPS is (the older one keeps its models under fold-<i>/models/best_<metric>/model_best.pth.tar)."""

from __future__ import annotations

import json
import shutil

from tests.training.training_specs import run_apply, write_spec

ONE_EPOCH = "train = { epochs = 1 }"


def test_transfer_path_is_the_source_maps_root_in_either_generation(tmp_path):
    run_apply(write_spec(tmp_path, {"src": ONE_EPOCH}))
    legacy = tmp_path / "legacy"  # the older generation's layout of the same weights
    (legacy / "fold-0" / "models" / "best_loss").mkdir(parents=True)
    shutil.copy(
        tmp_path / "maps" / "src" / "split-0" / "best-loss" / "model.pth.tar",
        legacy / "fold-0" / "models" / "best_loss" / "model_best.pth.tar",
    )
    models = {
        "src": ONE_EPOCH,
        "old": f'{ONE_EPOCH}\ntransfer = {{ maps = "legacy" }}',
        "new": f'{ONE_EPOCH}\ntransfer = {{ model = "src" }}',
    }
    run_apply(write_spec(tmp_path, models))

    def transfer_path(name: str) -> str:
        return json.loads((tmp_path / "maps" / name / "maps.json").read_text())["transfer_path"]

    assert transfer_path("old") == str(legacy.resolve())  # before: .../legacy/fold-0
    assert transfer_path("new") == str((tmp_path / "maps" / "src").resolve())
    assert transfer_path("src") == ""
