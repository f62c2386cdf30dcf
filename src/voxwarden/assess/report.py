"""Render the assessment report: one HTML page (jinja2, autoescaped) with charts inlined as PNG data URIs,
so the file is self-contained for archiving, hashing and printing to PDF."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from voxwarden.assess.checklist import Checklist, ControlResult
from voxwarden.assess.controls import UNVERIFIED_MARK

TEMPLATE = "report.html.j2"
STATUS_ORDER = {"not_met": 0, "partly": 1, "not_assessed": 2, "met": 3, "not_applicable": 4}


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` for a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _pct(v: Any) -> str:
    if v is None:
        return "n/a"
    try:
        return f"{100 * float(v):.1f} %"
    except (TypeError, ValueError):
        return str(v)


def _row(result: ControlResult) -> dict[str, Any]:
    """A control-table row; the table shows the unverified mark as a badge, so the citation drops its suffix."""
    d = result.to_dict()
    d["citation"] = d["source"].removesuffix(f" [{UNVERIFIED_MARK}]")
    return d


def render_html(figures: dict[str, Any], checklists: list[Checklist], charts: dict[str, Path]) -> str:
    """The report HTML from the figures (as written to figures.json), checklists and chart PNGs."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = _pct
    images = {k: png_data_uri(p) for k, p in charts.items() if Path(p).is_file()}
    tables = [
        {"framework": c.framework, "title": c.title, "regulation": c.regulation, "counts": c.counts(),
         "results": sorted((_row(r) for r in c.results), key=lambda d: STATUS_ORDER.get(d["status"], 9)),
         "unverified": sum(1 for r in c.results if not r.verified)}
        for c in checklists
    ]
    return env.get_template(TEMPLATE).render(f=figures, tables=tables, images=images)
