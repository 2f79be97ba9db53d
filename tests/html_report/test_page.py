"""The results page of a tiny applied project: a section per model and data group and one saying what
produced it, every number equal to the MAPS' tables, every picture an inline PNG that decodes into a
real figure, and nothing the browser would fetch from the network."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from tests.html_report.conftest import Project


def cell(values: pd.DataFrame, metric: str) -> str:
    """How a metrics TSV's value and CI read on the page."""
    v, lo, hi = (float(values.loc[row, metric]) for row in ("Values", "Lower bound CI", "Upper bound CI"))
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", index_col=0)


def test_page_has_a_section_per_model_and_group_and_says_what_produced_it(project: Project):
    titles = [text for level, text in project.page.headings if level == 2]
    assert titles == [
        "Model cnn (classification)",
        "Model age (regression)",
        "Model ae (reconstruction)",
        "Data group test",
        "Data group ages",
        "Data group recon",
        "What produced this page",
    ]
    assert project.page_path == project.root / "spec.report.html"


def test_every_picture_is_an_inline_png_of_a_drawn_figure(project: Project):
    images = project.page.images
    # cnn: curves, mean curves; test: 2 confusion/ROC, 2 x (mean, std) maps; ages: scatter; recon: slices;
    # age and ae: curves
    assert len(images) == 12
    for src, alt in images:
        assert src.startswith("data:image/png;base64,"), alt
        picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        colours = len(np.unique(picture.reshape(-1, 3).astype(np.int32) @ [65536, 256, 1]))
        assert picture.shape[1] > 100 and colours > 20, f"{alt}: a blank picture ({colours} colours)"
    alts = " | ".join(alt for _, alt in images)
    for drawn in ("best epochs starred", "mean ± SD across 2 splits", "confusion matrix and ROC curve",
                  "predicted against true", "input and output slices", "saliency map over the anatomy"):  # fmt: skip
        assert drawn in alts


def test_nothing_on_the_page_points_to_the_network(project: Project):
    assert len(project.page.viewers) == 2  # nilearn's viewer of each split's mean map
    for text in (project.text, *project.page.viewers):
        assert not re.search(r"https?://", text)
        assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:|#)[a-z]+:""", text, re.IGNORECASE)
    assert all("brainsprite" in viewer.lower() for viewer in project.page.viewers)  # the viewer's JS inline


def test_validation_metrics_and_their_spread_equal_the_tsvs(project: Project):
    maps = MapsLayout(project.root / "maps" / "cnn")
    shown = project.page.table_under("best-loss: validation")
    tables = {s: tsv(maps.metrics_tsv(s, "loss", "validation", "image")) for s in (0, 1)}
    for metric in ("BA", "accuracy", "sensitivity"):
        assert shown[metric]["split-0"] == cell(tables[0], metric)
        assert shown[metric]["split-1"] == cell(tables[1], metric)
        values = [float(tables[s].loc["Values", metric]) for s in (0, 1)]
        spread = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
        assert shown[metric]["mean ± SD (2 splits)"] == spread


def test_best_epochs_marked_are_those_of_the_saved_models(project: Project):
    maps = MapsLayout(project.root / "maps" / "cnn")
    line = next(
        p for p in re.findall(r'<p class="note">([^<]*)</p>', project.text) if p.startswith("best-loss")
    )
    for split in (0, 1):
        _, epoch, _ = load_model_state(maps.best_model(split, "loss"))
        assert f"split-{split} epoch {epoch}" in line


def test_group_metrics_equal_the_tsvs_and_auc_is_the_probabilities(project: Project):
    maps = MapsLayout(project.root / "maps" / "cnn")
    shown = project.page.table_under("best-loss: metrics")  # group test, model cnn
    for split in (0, 1):
        table = tsv(maps.metrics_tsv(split, "loss", "test", "image"))
        assert shown["BA"][f"split-{split}"] == cell(table, "BA")
        assert shown["specificity"][f"split-{split}"] == cell(table, "specificity")
        predictions = pd.read_csv(maps.prediction_tsv(split, "loss", "test", "image"), sep="\t")
        area = roc_auc_score(predictions["true_label"] == 1, predictions["proba1"])
        if "AUC" in table.columns:  # the metrics tables' own AUC (and its CI) once they have one
            assert shown["AUC"][f"split-{split}"] == cell(table, "AUC")
        else:
            assert shown["AUC"][f"split-{split}"] == f"{area:.3f}"


def test_regression_and_reconstruction_metrics_equal_the_tsvs(project: Project):
    age = tsv(MapsLayout(project.root / "maps" / "age").metrics_tsv(0, "loss", "ages", "image"))
    recon = tsv(MapsLayout(project.root / "maps" / "ae").metrics_tsv(0, "loss", "recon", "image"))
    shown = project.page.table_under("best-loss: metrics", nth=1)
    assert shown["MAE"]["split-0"] == cell(age, "MAE") and shown["R2_score"]["split-0"] == cell(
        age, "R2_score"
    )
    shown = project.page.table_under("best-loss: metrics", nth=2)
    assert shown["SSIM"]["split-0"] == cell(recon, "SSIM") and shown["PSNR"]["split-0"] == cell(recon, "PSNR")


def test_saliency_block_gives_the_roi_mass_of_the_summary(project: Project):
    maps = MapsLayout(project.root / "maps" / "cnn")
    for split in (0, 1):
        summary = json.loads(maps.interpret_summary(split, "loss", "test", "grad").read_text())
        shown = project.page.table_under(f"saliency grad: test, split-{split}, best-loss")
        inside = summary["mask"]["mass_inside"]
        assert shown["saliency mass in the hippocampus region"][""] == f"{100 * inside:.2f}%"
        assert shown["maps averaged"][""] == str(summary["used"])


def test_provenance_gives_the_spec_versions_and_recorded_fingerprints(project: Project):
    assert project.spec.read_text() in project.page.pre
    versions = project.page.table_under("Versions")
    assert versions["torch"]["version"] == torch.__version__
    assert "nilearn" in versions and "python" in versions
    steps = project.page.table_under("Steps and fingerprints")
    state = json.loads((project.root / "maps" / "cnn" / ".neuroexec" / "state.json").read_text())["steps"]
    for step_id in ("model.cnn.train[split-0]", "model.cnn.train[split-1]"):
        assert steps[step_id]["fingerprint"] == state[step_id]["fingerprint"]
        assert steps[step_id]["plan"].startswith("=")
