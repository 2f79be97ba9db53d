"""The preprocessings a CAPS holds, as ClinicaDL 1.6.1 reads them: one table, one value object.

Per preprocessing: Clinica's folder of the session holding its NIfTI, ClinicaDL's `file_type` (the glob
pattern, cropped or not, its description and `needed_pipeline`: `clinica_utils.linear_nii`,
`pet_linear_nii`, `prepare_data_utils.compute_folder_and_file_type`) and the tensor subfolder under
`deeplearning_prepare_data/<mode>_based/`. Paths are built from it by `data/caps.py` (CapsLayout) only.

ClinicaDL 1.6.1 reads t1-linear, flair-linear, pet-linear (a `tracer` and a `suvr_reference_region` in
the pattern) and custom (a `custom_suffix`) from a CAPS. `t2-linear`: linear_nii knows its pattern, but
compute_folder_and_file_type has no branch for it (prepare-data and training raise NotImplementedError),
so neuroexec reads it (Clinica's folder `t2_linear`) and a MAPS trained on it is neuroexec's only.
`t1-extensive` (no pattern at all) and `dwi-dti` (its branch reads keys `measure`/`space` that
get_parameters_dict writes as `dti_measure`/`dti_space`, a KeyError) are refused (`refusal`).

>>> pet = Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons")
>>> pet.file_type(uncropped=False)["pattern"]
'pet_linear/*_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz'
>>> pet.session_folder, pet.tensor_folder
('pet_linear', 'pet_linear')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroexec.errors import InputError

_SPACE = "space-MNI152NLin2009cSym"
_CROP_NOTE = "and cropped (matrix size 169×208×179, 1 mm isotropic voxels)"


@dataclass(frozen=True)
class _Row:
    session_folder: str | None  # Clinica's folder of the session; None: anywhere below it (custom)
    cropped: str  # ClinicaDL's file_type pattern ({tracer}, {suvr}, {suffix} filled in)
    uncropped: str
    description: str  # {crop}: ClinicaDL's cropping note, or nothing for the uncropped image
    needed_pipeline: str | None  # None: ClinicaDL's file_type has no needed_pipeline key
    tensor_folder: str  # under deeplearning_prepare_data/<mode>_based/


def _linear(modality: str, pipeline: str) -> _Row:
    """ClinicaDL's linear_nii(modality): `*space-..._desc-Crop_res-1x1x1_<modality>.nii.gz`."""
    folder = pipeline.replace("-", "_")
    return _Row(
        folder,
        f"*{_SPACE}_desc-Crop_res-1x1x1_{modality}.nii.gz",
        f"*{_SPACE}_res-1x1x1_{modality}.nii.gz",
        f"{modality} Image registered in MNI152NLin2009cSym space using {pipeline} pipeline {{crop}}",
        pipeline,
        folder,
    )


_PET = "*_trc-{tracer}_" + _SPACE + "{crop}_res-1x1x1_suvr-{suvr}_pet.nii.gz"
PREPROCESSINGS: dict[str, _Row] = {
    "t1-linear": _linear("T1w", "t1-linear"),
    "t2-linear": _linear("T2w", "t2-linear"),
    "flair-linear": _linear("flair", "flair-linear"),
    "pet-linear": _Row(
        "pet_linear",
        "pet_linear/" + _PET.replace("{crop}", "_desc-Crop"),
        "pet_linear/" + _PET.replace("{crop}", ""),
        "",
        "pet-linear",
        "pet_linear",
    ),
    "custom": _Row(None, "*{suffix}", "*{suffix}", "Custom suffix", None, "custom"),
}
REFUSED = {
    "t1-extensive": "ClinicaDL 1.6.1 cannot read t1-extensive images from a CAPS (its prepare-data and "
    "training raise NotImplementedError for it); use t1-linear, or custom with the file's custom_suffix",
    "dwi-dti": "ClinicaDL 1.6.1 cannot read dwi-dti images from a CAPS (its prepare-data looks up keys "
    "'measure' and 'space' it never writes); use custom with the DTI map's custom_suffix, e.g. "
    "'_space-T1w_FA.nii.gz'",
}
NAMES = tuple(PREPROCESSINGS)
SUVR_REFERENCE_REGIONS = ("pons", "cerebellumPons", "pons2", "cerebellumPons2")  # ClinicaDL's choices
# The extra keys each preprocessing needs, as ClinicaDL names them (spec dataset keys too).
NEEDED_KEYS = {"pet-linear": ("tracer", "suvr_reference_region"), "custom": ("custom_suffix",)}
EXTRA_KEYS = ("tracer", "suvr_reference_region", "custom_suffix")


def refusal(name: str) -> str | None:
    """Why neuroexec does not read preprocessing `name` (None when it does)."""
    if name in PREPROCESSINGS:
        return None
    return REFUSED.get(name, f"unknown preprocessing {name!r}; one of {', '.join(NAMES)}")


def missing_keys(name: str, values: dict[str, Any]) -> list[str]:
    """The keys preprocessing `name` needs that `values` lacks (or has empty)."""
    return [k for k in NEEDED_KEYS.get(name, ()) if not values.get(k)]


def misplaced_keys(name: str, values: dict[str, Any]) -> list[str]:
    """The extra keys `values` gives that preprocessing `name` does not use."""
    return [k for k in EXTRA_KEYS if values.get(k) is not None and k not in NEEDED_KEYS.get(name, ())]


@dataclass(frozen=True)
class Preprocessing:
    """One preprocessing of a CAPS with its parameters; InputError when refused or incomplete.

    >>> Preprocessing("custom", custom_suffix="graymatter_probability.nii.gz").glob(False)
    '*graymatter_probability.nii.gz'
    >>> Preprocessing("pet-linear", tracer="18FFDG")
    Traceback (most recent call last):
    neuroexec.errors.InputError: [suvr_reference_region]: pet-linear needs suvr_reference_region
    """

    name: str = "t1-linear"
    tracer: str | None = None
    suvr_reference_region: str | None = None
    custom_suffix: str | None = None

    def __post_init__(self) -> None:
        why = refusal(self.name)
        if why:
            raise InputError(None, why, "preprocessing")
        for key in missing_keys(self.name, self.params):
            raise InputError(None, f"{self.name} needs {key}", key)
        for key in misplaced_keys(self.name, self.params):
            raise InputError(None, f"{key} is only read with preprocessing {needing(key)}", key)

    @classmethod
    def of(cls, source: Any) -> Preprocessing:
        """The preprocessing of a spec Dataset, a MapsInfo or anything with these attributes."""
        return cls(
            getattr(source, "preprocessing", None) or "t1-linear",
            *(getattr(source, k, None) for k in EXTRA_KEYS),
        )

    @classmethod
    def from_record(cls, record: dict[str, Any], where: Any = None) -> Preprocessing:
        """From ClinicaDL's extract_<mode>.json or a maps.json `preprocessing_dict`; InputError naming
        `where` when it names a preprocessing neuroexec cannot read or lacks a key."""
        name = str(record.get("preprocessing") or "t1-linear")
        try:
            return cls(name, **{k: record.get(k) for k in NEEDED_KEYS.get(name, ())})
        except InputError as err:
            raise InputError(where, str(err).removeprefix(f"[{err.field}]: "), err.field) from None

    @property
    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in EXTRA_KEYS}

    @property
    def _row(self) -> _Row:
        return PREPROCESSINGS[self.name]

    @property
    def session_folder(self) -> str | None:
        """Clinica's folder of a session holding the NIfTI (None: anywhere below the session, custom)."""
        return self._row.session_folder

    @property
    def tensor_folder(self) -> str:
        """ClinicaDL's subfolder of `deeplearning_prepare_data/<mode>_based/` (compute_folder_and_file_type)."""
        return self._row.tensor_folder

    def pattern(self, uncropped: bool) -> str:
        """ClinicaDL's file_type pattern (relative to the session, searched below it)."""
        row = self._row
        raw = row.uncropped if uncropped else row.cropped
        return raw.format(tracer=self.tracer, suvr=self.suvr_reference_region, suffix=self.custom_suffix)

    def glob(self, uncropped: bool) -> str:
        """The file-name glob of the pattern (its last component)."""
        return self.pattern(uncropped).rsplit("/", 1)[-1]

    def file_type(self, uncropped: bool) -> dict[str, str]:
        """ClinicaDL's `file_type` record: pattern, description and (but for custom) needed_pipeline."""
        row = self._row
        out = {
            "pattern": self.pattern(uncropped),
            "description": row.description.format(crop="" if uncropped else _CROP_NOTE),
        }
        if row.needed_pipeline is not None:
            out["needed_pipeline"] = row.needed_pipeline
        return out

    def record(self) -> dict[str, Any]:
        """ClinicaDL's keys of this preprocessing in an extraction record (get_parameters_dict)."""
        return {"preprocessing": self.name, **{k: getattr(self, k) for k in NEEDED_KEYS.get(self.name, ())}}

    def nifti_name(self, participant: str, session: str, uncropped: bool) -> str:
        """The name Clinica gives the session's NIfTI (the pattern with its `*` replaced by
        `<participant>_<session>` and, for the linear MRI pipelines, the BIDS suffix)."""
        name = self.glob(uncropped)
        if self.name == "custom":
            return f"{participant}_{session}_{name[1:].lstrip('_')}"
        if self.name != "pet-linear":
            modality = name.rsplit("_", 1)[-1].split(".")[0]
            return name.replace("*", f"{participant}_{session}_{modality}_", 1)
        return name.replace("*", f"{participant}_{session}", 1)

    def __str__(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.params.items() if v is not None)
        return f"{self.name} ({extra})" if extra else self.name


def needing(key: str) -> str:
    """The preprocessings that read extra key `key`."""
    return " or ".join(n for n, keys in NEEDED_KEYS.items() if key in keys)


T1_LINEAR = Preprocessing()
