"""The spec: TOML -> schema check -> resolved frozen dataclasses -> semantic checks.

>>> toml = 'version = 1\\n[datasets.demo]\\ngenerate = { subjects = 8, resolution_mm = 8 }\\n'
>>> _ = Path("spec.toml").write_text(toml + '[models.cnn]\\nmaps = "maps/cnn"\\ndataset = "demo"\\n')
>>> spec = load_spec(Path("spec.toml"))
>>> spec.models["cnn"].architecture, spec.models["cnn"].train.epochs  # defaults filled in
('Conv5_FC3', 20)
"""

from __future__ import annotations

from pathlib import Path

from neuroexec.errors import Problem, SpecError
from neuroexec.spec.checks import semantic_problems
from neuroexec.spec.load import parse_toml, schema_problems
from neuroexec.spec.model import Spec
from neuroexec.spec.resolve import resolve
from neuroexec.spec.shape import shape_problems

__all__ = ["Spec", "load_spec", "spec_from_dict"]


def load_spec(path: str | Path) -> Spec:
    """Load and fully validate a spec file; raises SpecError listing every problem."""
    path = Path(path)
    return spec_from_dict(parse_toml(path), path)


def spec_from_dict(doc: dict, path: Path) -> Spec:
    """Validate an already-parsed spec (the ClinicaDL-style commands build one in memory)."""
    problems = schema_problems(doc, str(path))
    if problems:
        raise SpecError(once(problems))
    spec = resolve(doc, path)
    problems = shape_problems(doc, str(spec.path)) + semantic_problems(spec)
    if problems:
        raise SpecError(once(problems))
    return spec


def once(problems: list[Problem]) -> list[Problem]:
    """Each problem once: a model's or group's compute block that inherits a setting of `[compute]`
    has its problem (`models.cnn.compute.amp`) said at `compute.amp` only; exact repeats dropped.

    >>> a = Problem("s.toml", "compute.amp", "needs a GPU")
    >>> [p.key for p in once([a, Problem("s.toml", "models.cnn.compute.amp", "needs a GPU"), a])]
    ['compute.amp']
    """
    top = {(p.file, p.key, p.message) for p in problems if p.key.startswith("compute.")}
    kept: list[Problem] = []
    for p in problems:
        head, _, rest = p.key.partition(".compute.")
        inherited = head.count(".") == 1 and (p.file, f"compute.{rest}", p.message) in top
        if not inherited and p not in kept:
            kept.append(p)
    return kept
