"""The dashboard's panels: one Plotly figure each, from the monitoring table. Pure.

A panel with nothing to draw yet (no month has matured outcomes, no challenger
was shadowed) carries the reason instead of an empty chart. Every time axis is
marked with the months a new model version was served (dotted, labelled) and
the trigger's decisions (dashed; red when it fired).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from creditops.dashboard import timeline
from creditops.dashboard.timeline import Mark

HEIGHT = 380
LIGHTS = {"green": 0, "yellow": 1, "red": 2}
LIGHT_SCALE = [
    [0.0, "#2ca02c"],
    [0.33, "#2ca02c"],
    [0.34, "#f2c40f"],
    [0.66, "#f2c40f"],
    [0.67, "#d62728"],
    [1.0, "#d62728"],
]


@dataclass(frozen=True)
class Panel:
    """One panel: its figure, or why there is none yet."""

    key: str
    title: str
    figure: go.Figure | None
    note: str = ""


@dataclass(frozen=True)
class Frame:
    """What every panel draws from: the table, its calendar, the marks."""

    table: pd.DataFrame
    months: list[str]
    marks: list[Mark]


PanelBuilder = Callable[[Frame], Panel]


def _figure(title: str, frame: Frame, *, time_axis: bool = True) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        height=HEIGHT,
        margin={"l": 60, "r": 30, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.2},
        # the look of plotly_white, set directly: resolving a named template deep-copies
        # it for every figure (a third of the page's render time)
        template=None,
        plot_bgcolor="white",
        paper_bgcolor="white",
        xaxis={"gridcolor": "#ebebeb", "linecolor": "#cccccc"},
        yaxis={"gridcolor": "#ebebeb", "linecolor": "#cccccc"},
    )
    if time_axis:
        figure.update_xaxes(type="category", categoryorder="array", categoryarray=frame.months)
        _mark(figure, frame.marks)
    return figure


def _mark(figure: go.Figure, marks: list[Mark]) -> None:
    # shapes + annotations by hand: plotly's add_vline cannot label a category axis
    for mark in marks:
        colour = "#d62728" if mark.fired else ("#555555" if mark.kind == "version" else "#999999")
        figure.add_shape(
            type="line",
            x0=mark.month,
            x1=mark.month,
            y0=0,
            y1=1,
            xref="x",
            yref="paper",
            line={"dash": "dot" if mark.kind == "version" else "dash", "color": colour},
        )
        figure.add_annotation(
            x=mark.month,
            y=1,
            xref="x",
            yref="paper",
            text=mark.label,
            textangle=-90,
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"size": 10, "color": colour},
        )


def volume_panel(frame: Frame) -> Panel:
    """Applications scored and the approval rate, per month and version."""
    figure = _figure("Volume and approval rate", frame)
    for version, values in timeline.series(frame.table, "volume", frame.months).items():
        figure.add_bar(x=frame.months, y=values, name=f"v{version} applications")
    for version, values in timeline.series(frame.table, "approval_rate", frame.months).items():
        figure.add_scatter(
            x=frame.months,
            y=values,
            name=f"v{version} approval rate",
            yaxis="y2",
            mode="lines+markers",
        )
    figure.update_layout(
        barmode="stack",
        yaxis={"title": "applications"},
        yaxis2={"title": "approval rate", "overlaying": "y", "side": "right", "range": [0, 1]},
    )
    return Panel("volume", "Volume and approval rate", figure)


def drift_panel(frame: Frame) -> Panel:
    """PSI of each feature and of the score against the training reference: feature x month."""
    names = timeline.metrics_with_prefix(frame.table, "psi:")
    if not names:
        return Panel(
            "drift", "Drift (PSI)", None, "no PSI rows yet: run `creditops monitor --by month`"
        )
    rows: list[list[float | None]] = []
    for name in names:
        per_version = timeline.series(frame.table, name, frame.months).values()
        # the worst version of a month: a drifted challenger must not hide behind the champion
        rows.append([_max(values) for values in zip(*per_version, strict=True)])
    labels = [name.removeprefix("psi:") for name in names]
    figure = _figure("Drift: PSI against the training reference (feature x month)", frame)
    figure.add_heatmap(
        x=frame.months,
        y=labels,
        z=rows,
        colorscale="YlOrRd",
        zmin=0.0,
        zmax=0.5,
        colorbar={"title": "PSI"},
        hoverongaps=False,
    )
    figure.update_layout(height=max(HEIGHT, 28 * len(labels) + 120))
    return Panel("drift", "Drift (PSI)", figure)


def auc_panel(frame: Frame) -> Panel:
    """Estimated ROC AUC with its band, and the realised ROC AUC as outcomes mature."""
    estimated = timeline.series(frame.table, "est_roc_auc", frame.months)
    realised = timeline.series(frame.table, "roc_auc", frame.months)
    if not any(_present(v) for v in [*estimated.values(), *realised.values()]):
        return Panel(
            "auc",
            "ROC AUC",
            None,
            "no ROC AUC yet: no month has calibrated estimates or matured outcomes",
        )
    figure = _figure(
        "ROC AUC: estimated from the PDs (band) and realised on matured outcomes", frame
    )
    lower = timeline.series(frame.table, "est_roc_auc", frame.months, "lower")
    upper = timeline.series(frame.table, "est_roc_auc", frame.months, "upper")
    for version, values in estimated.items():
        figure.add_scatter(
            x=frame.months, y=upper[version], mode="lines", line={"width": 0}, showlegend=False
        )
        figure.add_scatter(
            x=frame.months,
            y=lower[version],
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(31,119,180,0.2)",
            name=f"v{version} estimate band",
        )
        figure.add_scatter(
            x=frame.months, y=values, mode="lines+markers", name=f"v{version} estimated"
        )
    for version, values in realised.items():
        figure.add_scatter(
            x=frame.months,
            y=values,
            mode="lines+markers",
            name=f"v{version} realised",
            line={"dash": "dash"},
        )
    figure.update_yaxes(title="ROC AUC")
    return Panel("auc", "ROC AUC", figure)


def vintage_panel(frame: Frame) -> Panel:
    """Cumulative bad rate by months on book, one curve per application month."""
    rows = frame.table[frame.table["kind"] == "vintage"]
    if rows["value"].notna().sum() == 0:
        return Panel("vintage", "Vintage curves", None, "no vintage has outcomes yet")
    figure = _figure(
        "Vintage curves: cumulative bad rate by months on book", frame, time_axis=False
    )
    rows = rows.assign(mob=rows["metric"].map(_months_on_book)).dropna(subset=["mob"])
    for (month, version), group in rows.groupby(["month", "model_version"]):
        group = group.sort_values("mob")
        figure.add_scatter(
            x=group["mob"], y=group["value"], mode="lines", name=f"{month} (v{version})"
        )
    figure.update_xaxes(title="months on book")
    figure.update_yaxes(title="cumulative bad rate")
    return Panel("vintage", "Vintage curves", figure)


def backtest_panel(frame: Frame) -> Panel:
    """The PD backtest's traffic light of each score band, month by month."""
    names = [
        name
        for name in timeline.metrics_with_prefix(frame.table, "backtest:")
        if name.removeprefix("backtest:") not in ("hosmer_lemeshow_p", "red_bands", "yellow_bands")
    ]
    found = _lights(frame, names)
    lights = [[found.get((n, m), (None, ""))[0] for m in frame.months] for n in names]
    hover = [[found.get((n, m), (None, ""))[1] for m in frame.months] for n in names]
    if not any(_present(row) for row in lights):
        return Panel("backtest", "PD backtest", None, "no band has enough matured outcomes yet")
    figure = _figure("PD backtest by score band: green / yellow (95 %) / red (99.9 %)", frame)
    figure.add_heatmap(
        x=frame.months,
        y=[name.removeprefix("backtest:") for name in names],
        z=lights,
        text=hover,
        hoverinfo="text",
        colorscale=LIGHT_SCALE,
        zmin=0,
        zmax=2,
        showscale=False,
        hoverongaps=False,
        xgap=2,
        ygap=2,
    )
    return Panel("backtest", "PD backtest", figure)


def fairness_panel(frame: Frame) -> Panel:
    """Approval-rate ratio of each Age band and Marital status to the most-approved group."""
    names = timeline.metrics_with_prefix(frame.table, "fairness:approval_ratio:")
    if not names:
        return Panel("fairness", "Fair lending", None, "no fairness rows yet")
    figure = _figure("Approval-rate ratio to the most-approved group (four-fifths screen)", frame)
    for name in names:
        group = name.removeprefix("fairness:approval_ratio:")
        for version, values in timeline.series(frame.table, name, frame.months).items():
            figure.add_scatter(
                x=frame.months, y=values, mode="lines+markers", name=f"{group} (v{version})"
            )
    figure.add_hline(y=0.8, line_dash="dash", line_color="#d62728", annotation_text="0.8")
    figure.update_yaxes(title="approval-rate ratio", range=[0, 1.05])
    return Panel("fairness", "Fair lending", figure)


def shadow_panel(frame: Frame) -> Panel:
    """Champion and shadowed challenger: decision agreement and the swap sets."""
    agreement = timeline.series(frame.table, "shadow:agreement", frame.months)
    if not any(_present(values) for values in agreement.values()):
        return Panel("shadow", "Shadow challenger", None, "no challenger was shadowed")
    figure = _figure("Shadow challenger: decision agreement and swap sets", frame)
    for name, label in (("shadow:swap_in", "swap-in"), ("shadow:swap_out", "swap-out")):
        for version, values in timeline.series(frame.table, name, frame.months).items():
            figure.add_bar(x=frame.months, y=values, name=f"{label} (champion v{version})")
    for version, values in agreement.items():
        figure.add_scatter(
            x=frame.months,
            y=values,
            mode="lines+markers",
            yaxis="y2",
            name=f"agreement (champion v{version})",
        )
    figure.update_layout(
        yaxis={"title": "applicants swapped"},
        yaxis2={"title": "agreement", "overlaying": "y", "side": "right", "range": [0, 1]},
    )
    return Panel("shadow", "Shadow challenger", figure)


PANELS: tuple[PanelBuilder, ...] = (
    volume_panel,
    drift_panel,
    auc_panel,
    vintage_panel,
    backtest_panel,
    fairness_panel,
    shadow_panel,
)


def build_panels(table: pd.DataFrame) -> list[Panel]:
    """Every panel of the page, from a non-empty monitoring table."""
    table = timeline.checked_table(table)
    months = timeline.month_range(table["month"])
    frame = Frame(table, months, timeline.marks(table, months))
    return [builder(frame) for builder in PANELS]


def _lights(frame: Frame, names: list[str]) -> dict[tuple[str, str], tuple[float, str]]:
    """The worst light of each (band metric, month) over the versions, with its hover text."""
    rows = frame.table[frame.table["metric"].isin(names)]
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for metric, month, version, value, detail_text in zip(
        rows["metric"],
        rows["month"],
        rows["model_version"],
        rows["value"],
        rows["detail"],
        strict=True,
    ):
        detail = timeline.parse_detail(detail_text)
        light = LIGHTS.get(str(detail.get("light", "")))
        if light is None or light <= out.get((metric, month), (-1.0, ""))[0]:
            continue
        out[(metric, month)] = (
            float(light),
            f"{month} {metric.removeprefix('backtest:')} v{version}: observed {_fmt(value)}, "
            f"predicted {_fmt(detail.get('predicted'))}, {detail.get('rows', '?')} loans",
        )
    return out


def _months_on_book(metric: str) -> float | None:
    match = re.fullmatch(r"vintage:mob(\d+)", metric)
    return float(match.group(1)) if match else None


def _max(values: tuple[float | None, ...]) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _present(values: list[float | None]) -> bool:
    return any(value is not None for value in values)


def _fmt(value: object) -> str:
    try:
        return f"{float(str(value)):.3f}"
    except ValueError:
        return "?"
