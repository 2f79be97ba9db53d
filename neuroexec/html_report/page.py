"""The results page of a spec: one self-contained HTML file (figures as inline PNGs, the saliency viewer's
JavaScript inline, no network address), written atomically. `neuroexec report SPEC --html [OUT]`.

    <h1> title, a table of contents
    Model <m> ...            curves.py: training curves, best epochs, validation metrics with CIs
    Data group <g> ...       group_results.py: metrics with CIs, confusion matrix, ROC, scatter,
                             reconstructions; saliency.py: maps over the anatomy, viewer, ROI mass
    What produced this page  provenance.py: the spec, the versions, the step fingerprints
"""

from __future__ import annotations

import datetime
from pathlib import Path

from neuroexec import atomic
from neuroexec.errors import InputError
from neuroexec.html_report import default_page
from neuroexec.html_report.curves import model_section
from neuroexec.html_report.elements import anchor_name, esc
from neuroexec.html_report.group_results import group_section
from neuroexec.html_report.provenance import provenance_section
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Spec

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1150px; color: #222; }
h1 { border-bottom: 2px solid #345; } h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #eef; } td:first-child { text-align: left; font-weight: 600; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.note, .path { color: #555; font-size: 0.9em; }
.saliency { border-left: 3px solid #c60; padding-left: 1em; margin: 1em 0; }
iframe.viewer { width: 820px; max-width: 100%; height: 330px; border: 1px solid #ccc; }
nav li { margin: 0.1em 0; }
.row { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
"""


def _contents(spec: Spec) -> str:
    items = [f'<li><a href="#{anchor_name("model", m)}">Model {esc(m)}</a></li>' for m in spec.models]
    items += [f'<li><a href="#{anchor_name("group", g)}">Data group {esc(g)}</a></li>' for g in spec.groups]
    items.append('<li><a href="#provenance">What produced this page</a></li>')
    return f"<nav><ul>{''.join(items)}</ul></nav>"


def render_page(spec: Spec) -> str:
    """The whole page as text."""
    made = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    parts = [model_section(name, MapsLayout(model.maps), model.task) for name, model in spec.models.items()]
    for name, group in spec.groups.items():
        models = {m: MapsLayout(spec.models[m].maps) for m in group.models if m in spec.models}
        parts.append(group_section(name, models))
    parts.append(provenance_section(spec))
    title = f"Results of {spec.path.name}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="note">{esc(spec.path)}, page made {made}</p>'
        f"{_contents(spec)}{''.join(parts)}</body></html>\n"
    )


def write_page(spec: Spec, out: Path | None = None) -> Path:
    """Write the page (atomically) at `out` (a file, or a folder to write `<spec stem>.report.html` into),
    by default `<spec stem>.report.html` beside the spec; returns its path."""
    target = Path(out) if out is not None else default_page(spec.path)
    if target.is_dir():  # a folder given as OUT: the page goes inside it
        target = target / default_page(spec.path).name
    check_page_target(target)
    try:
        atomic.write_text(target, render_page(spec))
    except OSError as exc:
        raise InputError(target, f"cannot write the results page there ({exc.strerror})") from exc
    return target


def check_page_target(target: Path) -> None:
    """Refuse a page whose folder is missing (the page never creates folders) or is a file."""
    folder = target.parent
    if not folder.exists():
        raise InputError(target, f"its folder {folder} does not exist; create it or give another path")
    if not folder.is_dir():
        raise InputError(target, f"{folder} is a file, not a folder; give another path for the page")
