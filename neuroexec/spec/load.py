"""TOML -> dict, checked against spec/schema.json. Every problem is collected (file, key path, what was
expected) and raised together as one SpecError."""

from __future__ import annotations

import difflib
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from neuroexec.errors import Problem, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_PATH = Path(__file__).with_name("schema.json")


@cache
def schema() -> dict[str, Any]:
    """The spec's JSON Schema (draft 2020-12): field names, types, defaults and descriptions."""
    return json.loads(SCHEMA_PATH.read_text())


def parse_toml(path: Path) -> dict[str, Any]:
    """Read and parse a spec file; a syntax error names the line and column."""
    if not path.is_file():
        raise SpecError([Problem(str(path), "", "spec file not found")])
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([Problem(str(path), "", f"not valid TOML: {exc}")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(str(path), "", f"not UTF-8 text: {exc}")]) from None


def schema_problems(doc: dict[str, Any], file: str) -> list[Problem]:
    """Every schema violation of `doc`, as readable problems sorted by key path."""
    validator = jsonschema.Draft202012Validator(schema())
    problems = [_describe(err, file) for err in validator.iter_errors(doc)]
    return sorted(problems, key=lambda p: p.key)


def key_path(parts: Any) -> str:
    """('models', 'cnn', 'train', 'epochs') -> 'models.cnn.train.epochs'; list indices as [i]."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: jsonschema.ValidationError, file: str) -> Problem:
    path = key_path(err.absolute_path)
    kind = err.validator
    if kind == "additionalProperties" and isinstance(err.instance, dict):
        known = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        if known:
            msgs = []
            for key in extra:
                hint = difflib.get_close_matches(key, known, n=1)
                did = f" (did you mean '{hint[0]}'?)" if hint else ""
                msgs.append(f"unknown key '{key}'{did}")
            where = key_path([*err.absolute_path, extra[0]]) if len(extra) == 1 else path
            return Problem(file, where, "; ".join(msgs) + f"; expected one of: {', '.join(known)}")
        return Problem(file, path, err.message)
    if kind == "type":
        return Problem(file, path, f"expected {_a(err.validator_value)}, got {_show(err.instance)}")
    if kind == "enum":
        choices = ", ".join(repr(c) for c in err.validator_value)
        return Problem(file, path, f"expected one of {choices}, got {_show(err.instance)}")
    if kind == "const":
        return Problem(file, path, f"expected {err.validator_value!r}, got {_show(err.instance)}")
    if kind == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return Problem(file, key_path([*err.absolute_path, missing]), "required key is missing")
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return Problem(
            file, path, f"expected a number {sign} {err.validator_value}, got {_show(err.instance)}"
        )
    if kind == "pattern":
        return Problem(
            file, path, f"expected a name matching {err.validator_value}, got {_show(err.instance)}"
        )
    if kind == "propertyNames":
        return Problem(file, path, f"invalid name {_show(err.instance)}: letters, digits, '-' and '_' only")
    if kind in ("oneOf", "anyOf"):
        forms = " or ".join(_form(alternative) for alternative in err.validator_value)
        return Problem(file, path, f"expected {forms}, got {_show(err.instance)}")
    return Problem(file, path, err.message)


def _form(node: dict[str, Any]) -> str:
    """A schema alternative in words: 'an integer >= 0', 'a list of 1 to 2 integers >= 0'.

    >>> _form({"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 2})
    'a list of 1 to 2 integers >= 0'
    """
    kind = node.get("type")
    bound = f" >= {node['minimum']}" if "minimum" in node else ""
    if kind == "array":
        items = node.get("items", {})
        noun = f"{items.get('type', 'value')}s" + (f" >= {items['minimum']}" if "minimum" in items else "")
        count = f"{node.get('minItems', 0)} to {node['maxItems']} " if "maxItems" in node else ""
        return f"a list of {count}{noun}"
    return f"{_a(kind)}{bound}" if kind else "a value"


def _a(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    words = {
        "object": "a table",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
    }
    return " or ".join(words.get(t, t) for t in names)


def _show(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "table"}
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind.get(type(value), type(value).__name__)} {text}"
