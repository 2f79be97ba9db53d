"""The data-side tasks: what an extract, split or group-define step works on, as frozen dataclasses.

Each task gives the step its config slice (what decides the result, fingerprinted by the plan), its
input files (read at plan time by identity) and the key files it leaves behind. The steps in
`neuroexec/steps/` only wire them into the graph (ids and dependencies).

>>> from neuroexec.spec import load_spec
>>> toml = 'version = 1\\n[datasets.demo]\\ngenerate = { subjects = 8, resolution_mm = 8 }\\n'
>>> _ = Path("spec.toml").write_text(toml + '[models.cnn]\\nmaps = "maps/cnn"\\ndataset = "demo"\\n')
>>> spec = load_spec(Path("spec.toml"))
>>> task = ExtractTask(spec.datasets["demo"], ExtractionMode.patch(50, 50))
>>> task.config()["patch_size"], task.mode.kind
(50, 'patch')
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import ExtractionPlan, patch_normalization, plan_extraction
from neuroexec.data.participants import check_images_exist, load_participants
from neuroexec.data.roi_extract import RoiExtraction, RoiSource, masks_refusal, preprocessing_name
from neuroexec.data.roi_masks import dataset_roi_masks, generated_roi_names
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.preprocessings import Preprocessing
from neuroexec.spec.model import Dataset, Group, Model, Roi, as_config


def dataset_frame(
    ds: Dataset, label: str | None, diagnoses: tuple[str, ...] | None, check_images: bool = True
) -> pd.DataFrame:
    """The participants of every cohort of a dataset (with a `cohort` column), filtered on `diagnoses`;
    with `check_images`, every session's image must exist (all missing ones reported together). Of
    several cohorts, each may lack some of the diagnoses (ClinicaDL's multi-cohort training), as long as
    the cohorts together have every one."""
    wanted = list(diagnoses) if diagnoses else None
    several = len(ds.cohorts) > 1
    frames = [
        load_participants(c.participants, label=label, diagnoses=wanted, baseline=ds.baseline,
                          partial=several).assign(cohort=c.name)
        for c in ds.cohorts
    ]  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    if several:
        _check_cohorts_together(ds, frame, label, wanted)
    if check_images:
        check_images_exist(frame, {c.name: c.caps for c in ds.cohorts}, ds.uncropped, Preprocessing.of(ds))
    return frame


def _check_cohorts_together(ds: Dataset, frame: pd.DataFrame, label: str | None, wanted: list[str] | None):
    files = ", ".join(str(c.participants) for c in ds.cohorts)
    if frame.empty:
        raise InputError(None, f"no (participant, session) left after filtering, in any cohort ({files})",
                         f"datasets.{ds.name}.cohorts")  # fmt: skip
    if wanted is None:
        return
    found = set()
    for column in dict.fromkeys(c for c in (label, "diagnosis") if c and c in frame.columns):
        found |= set(frame[column].dropna().astype(str)) & set(wanted)
    unknown = [d for d in wanted if d not in found]
    if unknown:
        raise InputError(None, f"requested diagnos{'es' if len(unknown) > 1 else 'is'} {', '.join(unknown)} "
                         f"found in no cohort's participants ({files})", "diagnoses")  # fmt: skip


def participants_files(ds: Dataset) -> tuple[Path, ...]:
    """External participant files of a dataset (not those a generate step makes)."""
    return tuple(c.participants for c in ds.cohorts if c.generated_by is None and c.participants.is_file())


@dataclass(frozen=True)
class ExtractTask:
    """`dataset.X.extract[<mode>]`: the tensors of one mode for every session of a dataset."""

    dataset: Dataset
    mode: ExtractionMode
    roi: Roi | None = None  # roi mode: the model's roi table (custom template and mask pattern)
    single_network: tuple[str, ...] = ()  # roi mode: the models reading every region with one network

    def roi_extraction(self) -> RoiExtraction | None:
        """Roi mode: the regions and where their masks are (InputError for a custom preprocessing
        without roi.custom_template); None for other modes."""
        if not self.mode.is_roi:
            return None
        roi = self.roi or Roi(self.mode.rois, self.mode.uncropped_roi)
        ds = self.dataset
        source = RoiSource.of(
            preprocessing_name(ds.preprocessing), ds.uncropped, roi.custom_template, roi.custom_mask_pattern
        )
        return RoiExtraction(self.mode, source, custom=bool(roi.custom_template))

    def config(self) -> dict:
        ds, mode = self.dataset, self.mode
        config = {
            "mode": mode.kind,
            "patch_size": mode.size,
            "stride": mode.stride,
            "normalize": ds.normalize,
            "uncropped": ds.uncropped,
            "preprocessing": ds.preprocessing,
            **Preprocessing.of(ds).record(),  # and tracer + suvr_reference_region, or custom_suffix
            "patch_layout": ds.patch_layout if mode.is_patch or mode.is_slice else None,
        }
        if mode.is_slice:  # every slice of the axis: `discarded` is read at training time
            config.update(slice_direction=mode.direction, slice_mode=mode.slice_mode)
        if mode.is_roi:  # regions min-max normalised one by one, as ClinicaDL feeds them
            config.update(roi_list=list(mode.rois), uncropped_roi=mode.uncropped_roi)
            config["roi_normalization"] = "each region" if ds.normalize else "none"
            with contextlib.suppress(InputError):  # the step's check reports it
                source = self.roi_extraction().source
                config.update(roi_template=source.template, roi_mask_pattern=source.pattern)
        if mode.is_patch:  # patches are min-max normalised one by one, as ClinicaDL feeds them (a
            # change of what the network sees: models trained on earlier bundles are planned again)
            config["patch_normalization"] = patch_normalization(ds.normalize)
        return config

    def inputs(self) -> tuple[Path, ...]:
        """The participants files and every session's NIfTI of a (non-generated) dataset, so a changed
        image shows in the plan. One directory listing per session; a session without its image is
        listed under its expected folder (shown as missing, then reported by the step)."""
        ds = self.dataset
        files: list[Path] = []
        for cohort in ds.cohorts:
            if cohort.generated_by is not None:
                continue  # not yet written at plan time: the generate step is a dependency instead
            files.append(cohort.participants)
            frame = load_participants(cohort.participants, label=None, diagnoses=None, baseline=ds.baseline)
            caps = CapsLayout(cohort.caps, Preprocessing.of(ds))
            for participant, session in zip(frame["participant_id"], frame["session_id"]):
                found = caps.find_nifti(participant, session, ds.uncropped)
                files.extend(found or [caps.image_dir(participant, session)])
            files.extend(self._mask_inputs(caps))
        return tuple(files)

    def roi_refusal(self) -> str | None:
        """Plan time (roi mode): why a CAPS's masks cannot give the regions (missing, not binary, not on
        the images' grid, boxes of different shapes for a single network); a CAPS still to be generated
        is judged by the names of the masks its generation writes."""
        try:
            extraction = self.roi_extraction()
        except InputError as exc:
            return str(exc)
        if extraction is None:
            return None
        for cohort in self.dataset.cohorts:
            caps = CapsLayout.of(cohort.caps, self.dataset)
            if cohort.generated_by is not None and not _generated_masks_in_place(self.dataset):
                refusal = _generated_rois_refusal(self.dataset, self.mode)  # the generate step writes them
            else:
                first = _first_image(cohort, caps, self.dataset)
                refusal = masks_refusal(cohort.caps, extraction, first, self.single_network)
            if refusal:
                return refusal
        return None

    def _mask_inputs(self, caps: CapsLayout) -> list[Path]:
        """Roi mode: the masks of the regions (a changed mask re-extracts); one not found stands as its
        folder (shown as missing, then refused by the step's check)."""
        try:
            extraction = self.roi_extraction()
        except InputError:
            return []
        if extraction is None:
            return []
        src = extraction.source
        found = [caps.find_roi_mask(src.template, src.pattern, n, src.cropped) for n in self.mode.rois]
        return [m or caps.roi_masks_dir(src.template) for m in found]

    def extraction_plan(self) -> ExtractionPlan:
        """What extracting does for each session now: its tensors and why (re-)extract them."""
        ds, mode = self.dataset, self.mode
        return plan_extraction(
            dataset_frame(ds, label=None, diagnoses=None, check_images=False),
            {c.name: CapsLayout.of(c.caps, ds) for c in ds.cohorts},
            mode,
            uncropped=ds.uncropped,
            layout=ds.patch_layout,
            normalize=ds.normalize,
            roi=self.roi_extraction(),
        )

    def outputs(self) -> list[Path]:
        """The tensors the extraction manifests record for this dataset's sessions (and the manifests):
        a tensor another spec extracted into the same CAPS is not this task's."""
        ds = self.dataset
        files: list[Path] = []
        for cohort in ds.cohorts:
            manifest = CapsLayout(cohort.caps).manifest_json(self.mode.kind)
            files.append(manifest)
            try:
                entries = json.loads(manifest.read_text()).get("entries", {})
                frame = load_participants(
                    cohort.participants, label=None, diagnoses=None, baseline=ds.baseline
                )
            except (OSError, ValueError, NeuroexecError):
                continue
            sessions = set(zip(frame["participant_id"], frame["session_id"]))
            # subjects/<p>/<s>/deeplearning_prepare_data/<mode>_based/<folder>/...: this preprocessing's
            folder = Preprocessing.of(ds).tensor_folder
            files.extend(
                cohort.caps / key
                for key in entries
                if tuple(key.split("/")[1:3]) in sessions
                and key.split("/")[5:6] == [folder]
                and self._owns(key)
            )
        return files

    def _owns(self, key: str) -> bool:
        """Whether a manifest entry is this mode's tensor: the slice manifest records every axis and
        channel mode the CAPS was cut into (and the image tensors, which each of them writes)."""
        mode = self.mode
        if not mode.is_slice:
            return True
        return "/image_based/" in key or f"_axis-{mode.axis_name}_channel-{mode.slice_mode}_" in key


def _generated_rois_refusal(ds: Dataset, mode: ExtractionMode) -> str | None:
    """Regions a generation of `ds` will not write masks for."""
    if ds.generate is None:
        return None
    known = generated_roi_names(ds.generate.kind, ds.generate.region)
    unknown = [n for n in mode.rois if n not in known]
    if not unknown:
        return None
    return (
        f"datasets.{ds.name}: the generated CAPS has ROI masks {' and '.join(known)} only, not "
        f"{', '.join(unknown)}: fix roi.list"
    )


def _generated_masks_in_place(ds: Dataset) -> bool:
    """Whether the ROI masks a generation of `ds` writes are all there (else it is planned again)."""
    return all(m.is_file() for m in dataset_roi_masks(ds))


def _first_image(cohort, caps: CapsLayout, ds: Dataset) -> Path | None:
    """The NIfTI of the cohort's first session, when the participants file and the image exist."""
    try:
        frame = load_participants(cohort.participants, label=None, diagnoses=None, baseline=ds.baseline)
    except (OSError, NeuroexecError):
        return None
    for p, s in zip(frame["participant_id"], frame["session_id"]):
        found = caps.find_nifti(p, s, ds.uncropped)
        if len(found) == 1:
            return found[0]
    return None


@dataclass(frozen=True)
class SplitTask:
    """`model.M.split`: the training participants of a model, split and recorded in its MAPS."""

    model: Model
    dataset: Dataset

    @property
    def label(self) -> str | None:
        """The label column the split stratifies on and keeps (none for reconstruction)."""
        return self.model.label if self.model.task != "reconstruction" else None

    def config(self) -> dict:
        model = self.model
        return {
            "dataset": model.dataset,
            "label": self.label,
            "diagnoses": list(model.diagnoses or []),
            "split": as_config(model.split),
        }

    def inputs(self) -> tuple[Path, ...]:
        """The dataset's participants files and the user's split files (split.directory)."""
        inputs = participants_files(self.dataset)
        if self.model.split.directory is not None:
            inputs += tuple(sorted(p for p in self.model.split.directory.rglob("*.tsv")))
        return inputs

    def frame(self) -> pd.DataFrame:
        """All training participants of the model (every cohort), filtered on diagnoses, images checked."""
        return dataset_frame(self.dataset, self.label, self.model.diagnoses)

    def outputs(self) -> list[Path]:
        model = self.model
        maps = MapsLayout(model.maps)
        cohorts = [maps.caps_cohorts_tsv] if self.dataset.multi_cohort else []
        return [maps.train_validation_tsv, *cohorts] + [
            maps.split_group_tsv(group, i) for i in model.split.indices for group in ("train", "validation")
        ]


def group_config(group: Group) -> dict:
    """What decides a data group's sessions (part of every result step's config too)."""
    return {
        "dataset": group.dataset,
        "from_training": group.from_training,
        "label": group.label,
        "use_labels": group.use_labels,
        "diagnoses": list(group.diagnoses or []),
    }


@dataclass(frozen=True)
class GroupDefineTask:
    """`group.G.define[M]`: a data group's sessions recorded in model M's MAPS (groups/<G>/)."""

    group: Group
    model: Model
    dataset: Dataset

    @property
    def maps(self) -> MapsLayout:
        return MapsLayout(self.model.maps)

    def config(self) -> dict:
        return {**group_config(self.group), "skip_leak_check": self.group.skip_leak_check}

    def inputs(self) -> tuple[Path, ...]:
        return participants_files(self.dataset)

    def outputs(self) -> list[Path]:
        return [self.maps.group_maps_json(self.group.name), self.maps.group_data_tsv(self.group.name)]

    def sessions(self) -> pd.DataFrame:
        """The group's participants (all cohorts), filtered on diagnoses, images checked, with the label
        column of the group or of the model (a pretrained model's MAPS must be readable)."""
        group, model = self.group, self.model
        model_label = model.label if not model.pretrained else read_maps_info(model.maps).label
        label = (group.label or model_label) if group.use_labels else None
        return dataset_frame(self.dataset, label, group.diagnoses)

    def label(self) -> str | None:
        """The label column the group's data.tsv keeps (None without labels, or for an unreadable MAPS)."""
        group, model = self.group, self.model
        if not group.use_labels:
            return None
        if group.label or not model.pretrained:
            return group.label or model.label
        try:
            return read_maps_info(model.maps).label
        except NeuroexecError:
            return None


def leak_check(frame: pd.DataFrame, maps: MapsLayout, group: str) -> None:
    """Refuse a group that shares participants with the model's training data."""
    path = maps.train_validation_tsv
    if not path.is_file():
        raise InputError(
            path,
            "the training participants of this MAPS are unknown, so data leakage cannot "
            f"be checked; set groups.{group}.skip_leak_check = true (the ClinicaDL-style commands: "
            "--skip_leak_check) if you accept that",
        )
    train = pd.read_csv(path, sep="\t", dtype=str)
    shared = sorted(set(frame["participant_id"]) & set(train["participant_id"]))
    if shared:
        listed = ", ".join(shared[:20]) + (f" and {len(shared) - 20} more" if len(shared) > 20 else "")
        raise InputError(
            path,
            f"data leakage: {len(shared)} participant(s) of group '{group}' were used to "
            f"train this model: {listed}. Use other participants, or set "
            f"groups.{group}.skip_leak_check = true (the ClinicaDL-style commands: --skip_leak_check; "
            "not good practice)",
        )
