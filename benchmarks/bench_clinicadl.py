"""neuroexec `train image cnn` vs ClinicaDL 1.6.1 `train classification` on the same job (issue 8 target:
<= 0.6x the wall time, no more peak memory): Conv5_FC3, 4 training + 4 validation full-size (169x208x179)
synthetic images, 2 epochs, batch 2, CPU. Wall time and peak RSS (getrusage of the child) of each command.

    .venv/bin/python benchmarks/bench_clinicadl.py [--workdir DIR] [--n_proc 2]

ClinicaDL is run only when an executable is found (env NEUROEXEC_CLINICADL, else `clinicadl` on PATH);
otherwise only neuroexec is measured and the comparison is reported as skipped. Nothing is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

EPOCHS, BATCH, SUBJECTS = 2, 2, 8


def measure(cmd: list[str]) -> dict:
    """Run `cmd` in a fresh child of a fresh interpreter, so the peak RSS is that command's alone."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter(); rc = subprocess.call(sys.argv[1:])\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': rc, 'wall_s': wall, 'peak_rss_mb': rss / 1024}), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    result = json.loads(last)
    if result["rc"]:
        result["log"] = proc.stdout[-2000:] + proc.stderr[-2000:]
    return result


def make_data(root: Path) -> tuple[Path, Path]:
    """A full-size synthetic CAPS (tensors extracted) and a one-split directory (4 train + 4 validation)."""
    from neuroexec.data.extract import plan_extraction, run_extraction
    from neuroexec.data.participants import load_participants
    from neuroexec.data.synthetic import generate_atrophy_dataset

    data = generate_atrophy_dataset(root / "caps", subjects=SUBJECTS, resolution_mm=1.0, seed=0)
    plan = plan_extraction(load_participants(data.participants_tsv), data.caps_dir, "image")
    run_extraction(plan, normalize=True)
    frame = pd.read_csv(data.participants_tsv, sep="\t", dtype=str)
    valid = frame.iloc[[0, 2, 4, 6]] if SUBJECTS == 8 else frame.iloc[::2]
    train = frame.drop(valid.index)
    # ClinicaDL's layout (FORMATS.md): <tsv_dir>/train.tsv with every training session, and the split
    # files in <tsv_dir>/<kfold_dir>/ (the TSV_DIRECTORY given to `train`), directly and as split-0/.
    tsv_dir = root / "split"
    tsv_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(tsv_dir / "train.tsv", sep="\t", index=False)
    split = tsv_dir / "1_fold"
    for folder in (split, split / "split-0"):
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in (("train", train), ("train_baseline", train), ("validation", valid),
                           ("validation_baseline", valid)):  # fmt: skip
            part.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    return data.caps_dir, split


def clinicadl_executable() -> str | None:
    return os.environ.get("NEUROEXEC_CLINICADL") or shutil.which("clinicadl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep data and MAPS here (default: a temp dir)"
    )
    parser.add_argument("--n_proc", type=int, default=2)
    args = parser.parse_args(argv)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench_clinicadl_"))
    caps, split = make_data(root)
    common = ["--epochs", str(EPOCHS), "--batch_size", str(BATCH), "--no-gpu", "--n_proc", str(args.n_proc)]
    shutil.rmtree(root / "maps_neuroexec", ignore_errors=True)
    ours = measure([sys.executable, "-m", "neuroexec", "train", "image", "cnn", str(caps), "t1-linear", str(split),
                    str(root / "maps_neuroexec"), "--architecture", "Conv5_FC3", "--quiet", *common])  # fmt: skip
    report = {"job": f"Conv5_FC3, {SUBJECTS // 2}+{SUBJECTS // 2} images 169x208x179, {EPOCHS} epochs, batch {BATCH}",
              "neuroexec": ours}  # fmt: skip
    exe = clinicadl_executable()
    if exe is None:
        report["clinicadl"] = "skipped: no clinicadl executable (set NEUROEXEC_CLINICADL or put it on PATH)"
    else:
        # ClinicaDL reads its own extraction record; prepare-data is outside the timed run.
        subprocess.run(
            [exe, "prepare-data", "image", str(caps), "t1-linear"], check=False, capture_output=True
        )
        jsons = sorted((caps / "tensor_extraction").glob("extract_*.json"))
        shutil.rmtree(root / "maps_clinicadl", ignore_errors=True)
        theirs = measure([exe, "train", "classification", str(caps), jsons[-1].name if jsons else "extract_image.json",
                          str(split), str(root / "maps_clinicadl"), "--architecture", "Conv5_FC3", *common])  # fmt: skip
        report["clinicadl"] = theirs
        if not ours["rc"] and not theirs["rc"]:
            report["wall_ratio"] = ours["wall_s"] / theirs["wall_s"]
            report["peak_rss_ratio"] = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
            report["target_met"] = report["wall_ratio"] <= 0.6 and report["peak_rss_ratio"] <= 1.0
    print(json.dumps(report, indent=2))
    return 0 if not ours["rc"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
