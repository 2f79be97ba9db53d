"""neuroexec's optional packages: which extra of `pip install 'neuroexec[...]'` brings each one, and
whether it is installed here (spec/checks.py refuses a spec that needs a missing one at validate time;
training/observers.py imports them only when a training asks for them)."""

from __future__ import annotations

import importlib.util

# package -> the extra of neuroexec that installs it (pyproject.toml [project.optional-dependencies])
EXTRAS = {"mlflow": "track", "wandb": "track", "codecarbon": "emissions"}


def missing_package(package: str) -> str | None:
    """Why `package` cannot be used here (not installed), None when it can.

    >>> missing_package("wandb") is None or "pip install 'neuroexec[track]'" in missing_package("wandb")
    True
    """
    if importlib.util.find_spec(package) is not None:
        return None
    return f"needs the {package} package, which is not installed: pip install 'neuroexec[{EXTRAS[package]}]'"
