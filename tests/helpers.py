"""Fixture helpers shared by every test folder (import as `from tests.helpers import make_tiny_caps`)."""

from __future__ import annotations

from pathlib import Path


def make_tiny_caps(
    root: Path,
    n_subjects: int = 8,
    shape: tuple[int, int, int] = (21, 26, 22),
    seed: int = 0,
    extract: bool = False,
    sessions: int = 1,
) -> tuple[Path, Path]:
    """A small synthetic CAPS (half AD, half CN, atrophy in the hippocampi) under `root`, built by
    neuroexec.data.synthetic; returns (caps_dir, participants_tsv). `shape` is the image grid (the
    field of view stays the MNI crop, so voxels are ~8 mm at the default shape). With `extract`, the
    image tensors (min-max normalised) are extracted too, as the extract step would.

    >>> caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=6, shape=(12, 14, 12), seed=1)
    """
    from neuroexec.data.extract import plan_extraction, run_extraction
    from neuroexec.data.participants import load_participants
    from neuroexec.data.synthetic import generate_atrophy_dataset

    data = generate_atrophy_dataset(
        Path(root), subjects=n_subjects, resolution_mm=8.0, seed=seed, sessions=sessions, shape=tuple(shape)
    )
    if extract:
        frame = load_participants(data.participants_tsv)
        run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    return data.caps_dir, data.participants_tsv


def two_cohort_spec(architecture: str = "TinyCNN", resolution_mm: int = 8, extra: str = "") -> str:
    """A spec whose model trains on two synthetic cohorts, A and B, that the spec itself generates
    (`cohorts = [{ name, dataset }]`), on split 0 of 2, for one epoch; `extra` is appended."""
    return f"""
version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.both]
cohorts = [{{ name = "A", dataset = "a" }}, {{ name = "B", dataset = "b" }}]
[datasets.a]
generate = {{ subjects = 6, resolution_mm = {resolution_mm}, seed = 1 }}
[datasets.b]
generate = {{ subjects = 6, resolution_mm = {resolution_mm}, seed = 2, subject_offset = 100 }}
[models.cnn]
maps = "maps/cnn"
dataset = "both"
architecture = "{architecture}"
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = 1, learning_rate = 1e-3 }}
{extra}"""


def as_preprocessing(
    caps_dir: Path, preprocessing, folder: str | None = None, keep: bool = False
) -> list[Path]:
    """Move the t1-linear NIfTIs of a tiny CAPS (make_tiny_caps) to where and under the name Clinica's
    `preprocessing` (a neuroexec.preprocessings.Preprocessing) puts them, or into `folder` of the
    session (custom images are found anywhere below it); `keep`: copy them instead (the CAPS then holds
    both). Returns the new paths."""
    import shutil

    from neuroexec.data.caps import CapsLayout

    t1, other = CapsLayout(caps_dir), CapsLayout(caps_dir, preprocessing)
    moved = []
    for nifti in sorted(t1.subjects_dir.glob("*/*/t1_linear/*.nii.gz")):
        participant, session = nifti.parts[-4], nifti.parts[-3]
        target_dir = (
            t1.session_dir(participant, session) / folder if folder else other.image_dir(participant, session)
        )
        target = target_dir / other.nifti_name(participant, session, uncropped=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        if keep:
            shutil.copy2(nifti, target)
        else:
            nifti.rename(target)
        moved.append(target)
    return moved


def round_trip_checked(write):
    """A stand-in for tomli_w whose `dumps` fails when the text it writes does not read back (tomllib)
    as the document: tests/conftest.py puts it under neuroexec.spec.toml_writer for every test."""
    from types import SimpleNamespace

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    def dumps(doc):
        text = write(doc)
        assert tomllib.loads(text) == doc, f"the spec written does not read back as the document:\n{text}"
        return text

    return SimpleNamespace(dumps=dumps)
