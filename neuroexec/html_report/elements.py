"""The pieces a results page is made of: escaped text, tables, sections, and matplotlib figures turned
into inline PNGs (base64 `data:` URIs), so the page needs nothing but itself when it is opened.

>>> table(["metric", "value"], [["BA", "0.750"]])
'<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody><tr><td>BA</td><td>0.750</td></tr></tbody></table>'
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the page is written on clusters without a display

from matplotlib.figure import Figure  # noqa: E402

DPI = 80  # small figures: a page of several models stays a few MB


def esc(text: object) -> str:
    """`text` safe inside HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], css: str = "") -> str:
    """An HTML table; cells are escaped text (a cell already marked up is given as `Markup`)."""
    head = "".join(f"<th>{_cell(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    klass = f' class="{esc(css)}"' if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup(str):
    """Text that is already HTML (not escaped again by `table`)."""


def _cell(value: object) -> str:
    return value if isinstance(value, Markup) else esc(value)


def section(title: str, body: str, level: int = 2, anchor: str = "") -> str:
    """A titled part of the page; `anchor` gives it an id the table of contents links to."""
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h{level}>{esc(title)}</h{level}>{body}</section>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def new_figure(width: float = 4.0, height: float = 3.0) -> Figure:
    """A matplotlib figure drawn by the Agg canvas (no pyplot state, nothing shown)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png_uri(figure: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image(figure: Figure, alt: str) -> str:
    """An <img> holding the figure itself."""
    return f'<img src="{png_uri(figure)}" alt="{esc(alt)}">'


def anchor_name(*parts: object) -> str:
    """An id made of the parts: letters, digits and dashes.

    >>> anchor_name("model", "cnn 2", "split-0")
    'model-cnn-2-split-0'
    """
    text = "-".join(str(p) for p in parts)
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")
