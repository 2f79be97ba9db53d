"""The spec reference in Markdown, generated from spec/schema.json (never written by hand)."""

from __future__ import annotations

import json
from typing import Any

from neuroexec.spec.load import schema


def schema_markdown() -> str:
    lines = [
        "# neuroexec spec reference",
        "",
        "Generated from `spec/schema.json` (`neuroexec schema --markdown`).",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    _walk(schema(), "", lines)
    return "\n".join(lines) + "\n"


def _walk(node: dict[str, Any], prefix: str, lines: list[str]) -> None:
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        lines.append(f"| `{path}` | {_type(sub)} | {_default(sub)} | {sub.get('description', '')} |")
        if sub.get("type") == "object":
            if "properties" in sub:
                _walk(sub, path, lines)
            elif isinstance(sub.get("additionalProperties"), dict):
                inner = sub["additionalProperties"]
                lines.append(f"| `{path}.<name>` | table | | {inner.get('description', '')} |")
                _walk(inner, f"{path}.<name>", lines)
        elif sub.get("type") == "array" and "properties" in sub.get("items", {}):
            _walk(sub["items"], f"{path}[]", lines)


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if node.get("type") == "array":
        return f"list of {_type(node.get('items', {}))}"
    return {
        "object": "table",
        "integer": "integer",
        "number": "number",
        "string": "string",
        "boolean": "boolean",
    }.get(node.get("type", ""), str(node.get("type", "")))


def _default(node: dict[str, Any]) -> str:
    return f"`{json.dumps(node['default'])}`" if "default" in node else ""
