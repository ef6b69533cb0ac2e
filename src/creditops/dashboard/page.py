"""The dashboard page: the panels in one self-contained HTML file.

Plotly's JavaScript is inlined once, so the page opens with no network. After
the charts are drawn, a small script records on each panel how many data
points its chart holds (``data-points``) and whether its SVG was drawn
(``data-rendered``), and on ``<body>`` how many panels were drawn
(``data-panels-rendered``): what the browser test reads, and what anyone can
check in the browser's inspector.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs

from creditops.dashboard.panels import Panel, build_panels
from creditops.secrets import redact_url

log = logging.getLogger(__name__)

EMPTY_HINT = (
    "The monitoring table is empty. Run `creditops simulate` (traffic through the service), "
    "then `creditops monitor --by month` (or `creditops pipeline`, which does both), "
    "and open this page again."
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
header p { color: #555; margin: 0.2rem 0; }
section.panel { margin: 1.5rem 0; border-top: 1px solid #ddd; padding-top: 0.5rem; }
p.note { color: #666; font-style: italic; }
p.empty { font-size: 1.2rem; background: #fff8e1; padding: 1rem; border-left: 4px solid #f2c40f; }
"""

# Runs after every chart's own script: counts what each chart really drew.
CHECK_SCRIPT = """
<script>
(function () {
  function count(gd) {
    var points = 0;
    (gd._fullData || []).forEach(function (trace) {
      var values = trace.z || trace.y || [];
      (Array.isArray(values) ? values : []).forEach(function (v) {
        if (Array.isArray(v)) { v.forEach(function (w) { if (w !== null && w !== undefined) points++; }); }
        else if (v !== null && v !== undefined) { points++; }
      });
    });
    return points;
  }
  function check() {
    var sections = document.querySelectorAll('section.panel[data-has-chart="true"]');
    var drawn = 0;
    sections.forEach(function (section) {
      var gd = section.querySelector('.js-plotly-plot');
      var svg = section.querySelector('svg.main-svg');
      var ok = !!(gd && gd._fullLayout && svg);
      section.dataset.rendered = ok ? 'true' : 'false';
      section.dataset.points = ok ? String(count(gd)) : '0';
      if (ok) { drawn++; }
    });
    document.body.dataset.panelsRendered = String(drawn);
    if (drawn < sections.length) { setTimeout(check, 100); }
  }
  window.addEventListener('load', function () { setTimeout(check, 0); });
})();
</script>
"""


@dataclass(frozen=True)
class DashboardSummary:
    """What ``creditops dashboard`` wrote."""

    path: Path
    bytes: int
    seconds: float
    months: int
    versions: int
    panels_drawn: int
    panels_waiting: int


def render_page(table: pd.DataFrame, *, source: str, refresh_seconds: float = 0.0) -> str:
    """The HTML page of a monitoring table (the empty-table page when it holds no rows).

    Args:
        table: the monitoring table, as ``monitoring.table.read_table`` returns it.
        source: where it was read from (shown on the page, password redacted).
        refresh_seconds: reload the page this often (the live server); 0 = never.
    """
    return _render(table, source, refresh_seconds)[0]


def _render(table: pd.DataFrame, source: str, refresh_seconds: float) -> tuple[str, list[Panel]]:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = _head(refresh_seconds)
    intro = (
        f"<header><h1>creditops: the model month by month</h1>"
        f"<p>Monitoring table: {html.escape(redact_url(source))}. Generated {generated}.</p>"
    )
    if table.empty:
        body = f'{intro}</header><p class="empty">{html.escape(EMPTY_HINT)}</p>'
        return (
            f'<!DOCTYPE html><html lang="en">{head}<body data-empty="true">{body}</body></html>',
            [],
        )
    panels = build_panels(table)
    months = sorted(set(table["month"].astype(str)))
    versions = sorted(set(int(v) for v in table["model_version"]))
    intro += (
        f"<p>{len(months)} months ({months[0]} to {months[-1]}), model versions "
        f"{', '.join(f'v{v}' for v in versions)}. Dotted lines: a new version served; "
        "dashed: a trigger decision (red when it fired).</p></header>"
    )
    sections = "".join(_section(panel) for panel in panels)
    script = f"<script>{get_plotlyjs()}</script>"
    page = (
        f'<!DOCTYPE html><html lang="en">{head}<body>{script}{intro}{sections}'
        f"{CHECK_SCRIPT}</body></html>"
    )
    return page, panels


def write_dashboard(table: pd.DataFrame, output: Path, *, source: str) -> DashboardSummary:
    """Render the page and write it atomically to ``output`` (a temporary name, then renamed)."""
    started = time.perf_counter()
    page, panels = _render(table, source, 0.0)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(output)
    drawn = sum(panel.figure is not None for panel in panels)
    summary = DashboardSummary(
        path=output,
        bytes=len(page.encode("utf-8")),
        seconds=time.perf_counter() - started,
        months=table["month"].nunique() if not table.empty else 0,
        versions=table["model_version"].nunique() if not table.empty else 0,
        panels_drawn=drawn,
        panels_waiting=len(panels) - drawn,
    )
    log.info(
        "dashboard: %s (%d bytes, %d months, %d panels drawn, %d waiting for data) in %.2f s",
        output,
        summary.bytes,
        summary.months,
        summary.panels_drawn,
        summary.panels_waiting,
        summary.seconds,
    )
    return summary


def _head(refresh_seconds: float) -> str:
    refresh = (
        f'<meta http-equiv="refresh" content="{refresh_seconds:g}">' if refresh_seconds > 0 else ""
    )
    return (
        f'<head><meta charset="utf-8">{refresh}<title>creditops dashboard</title>'
        f"<style>{STYLE}</style></head>"
    )


def _section(panel: Panel) -> str:
    title = html.escape(panel.title)
    if panel.figure is None:
        return (
            f'<section class="panel" id="panel-{panel.key}" data-panel="{panel.key}" '
            f'data-has-chart="false"><h2>{title}</h2><p class="note">{html.escape(panel.note)}</p>'
            "</section>"
        )
    chart = panel.figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{panel.key}",
        config={"displaylogo": False, "responsive": True},
    )
    return (
        f'<section class="panel" id="panel-{panel.key}" data-panel="{panel.key}" '
        f'data-has-chart="true"><h2>{title}</h2>{chart}</section>'
    )
