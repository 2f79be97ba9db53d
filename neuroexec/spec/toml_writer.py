"""A tiny TOML emitter for the specs the ClinicaDL-style commands build (no extra dependency).

Supports what a spec holds: strings, booleans, integers, floats, lists of those, nested tables and
arrays of tables. Keys are emitted bare when they are plain names, quoted otherwise.

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

import json
import math
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"cannot write {value!r} in a spec")
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write a {type(value).__name__} ({value!r}) in a spec")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, dict) for v in value)


def _emit(table: dict[str, Any], prefix: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for k, v in scalars.items():
        out.append(f"{_key(k)} = {_value(v)}")
    if scalars:
        out.append("")
    for k, v in table.items():
        path = [*prefix, _key(k)]
        if isinstance(v, dict):
            if any(not isinstance(x, dict) and not _is_table_array(x) for x in v.values()) or not v:
                out.append(f"[{'.'.join(path)}]")
            _emit(v, path, out)
        elif _is_table_array(v):
            for item in v:
                out.append(f"[[{'.'.join(path)}]]")
                _emit(item, path, out)


def dumps(doc: dict[str, Any]) -> str:
    """`doc` as TOML text (tables after the scalars of their parent, blank line between sections)."""
    out: list[str] = []
    _emit(doc, [], out)
    return "\n".join(out).rstrip("\n") + "\n"
