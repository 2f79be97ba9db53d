"""TOML text of the specs the ClinicaDL-style commands build: tomli-w, refusing nan and infinity.

tomli-w writes what a spec holds (strings, booleans, numbers, lists, nested tables, lists of tables)
and nothing else; it would write `nan` and `inf`, which no spec field means, so a non-finite number
(a front end's bug) is refused here with the key path that holds it.

>>> print(dumps({"version": 1, "models": {"cnn": {"maps": "/m", "train": {"epochs": 2}}}}))
version = 1
<BLANKLINE>
[models.cnn]
maps = "/m"
<BLANKLINE>
[models.cnn.train]
epochs = 2
<BLANKLINE>
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import tomli_w


def _refuse_non_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} at {path} in a spec: no spec field takes nan or infinity")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _refuse_non_finite(item, f"{path}[{index}]")


def dumps(doc: Mapping[str, Any]) -> str:
    """`doc` as TOML text (tomli-w's layout: tables after their parent's values, blank line between)."""
    _refuse_non_finite(doc, "")
    return tomli_w.dumps(doc)
