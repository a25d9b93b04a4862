"""The HTML page: one self-contained file (CSS, JavaScript and plots inline; no network needed)."""

from __future__ import annotations

from importlib import resources

import jinja2
from markupsafe import Markup

from leaderboard import svgplot
from leaderboard.tables import Document, frontier_text


def _asset(name: str) -> str:
    return resources.files("leaderboard").joinpath("templates", name).read_text(encoding="utf-8")


def render(doc: Document) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    svgs = {plot.slug: Markup(svgplot.render(plot)) for section in doc.sections for plot in section.plots}
    counted = sum(len(row.seeds) for board in doc.leaderboard.boards for row in board.rows)
    return env.get_template("report.html.j2").render(
        doc=doc, svgs=svgs, frontier_text=frontier_text, counted=counted,
        css=Markup(_asset("report.css")), js=Markup(_asset("report.js")),
    )
