"""Plotly figures of :mod:`mixnas.analysis` data, and the offline HTML report of ``mixnas dashboard``.

The one module of mixnas that imports plotly (study reports draw theirs here too: :func:`seed_spread_html`).
Each ``*_figure`` function takes the plain data an analysis function returned and builds a figure;
:func:`build_report` lays them out, section by section, in one HTML file (the page is the template
``mixnas/templates/report.html``) with plotly.js included once (inline, or as ``plotly.min.js`` beside the
report), a sortable trials table linking every trial to its ArchConfig YAML, and a small script that records
JavaScript errors and which figures drew into ``#report-status`` (read by the browser test,
:mod:`mixnas.browser`).

The summary table's numbers are :func:`run_summary`: :func:`mixnas.runs.trial_counts`, the function the
search console's progress line and summary print, so the two always agree. Metric names, axis titles, units
and scales come from :data:`mixnas.vocab.METRICS`. Axes name their units (MACs and parameters are plotted in
millions), log axes label every tick in full (:func:`log_axis`), parameter paths read as :func:`param_label`
makes them, and metrics or table columns that no trial has are left out.
"""

from __future__ import annotations

import html
import json
import math
import re
import string
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline
from plotly.subplots import make_subplots

from mixnas import analysis as A
from mixnas import optuna_io
from mixnas.errors import MixnasError
from mixnas.plugins import yaml_header
from mixnas.runs import trial_counts
from mixnas.util import is_finite, short_number
from mixnas.vocab import COSTS, SEARCH_METRICS
from mixnas.vocab import METRICS as VOCAB

STYLE = {  # category -> marker (sizes in pixels, 2-D and 3-D alike); pareto points also get the front's line
    "pareto": {"color": "#d62728", "symbol": "circle", "size": 11, "line": {"color": "black", "width": 1}},
    "dominated": {"color": "#1f77b4", "symbol": "circle", "size": 8, "opacity": 0.8},
    "pruned": {"color": "#9e9e9e", "symbol": "circle-open", "size": 8},
    "infeasible": {"color": "#ff7f0e", "symbol": "x", "size": 8},
    "failed": {"color": "black", "symbol": "diamond-open", "size": 8},
}
RUN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
TEMPLATE = "plotly_white"
FONT = {"size": 13}  # every figure's base font (plotly's default is 12)
AXIS_FONT = {"size": 15}  # axis titles of the 3-D scene (they are drawn smaller in perspective)
TICK_FONT = {"size": 12}
METRICS = SEARCH_METRICS
NAMES = {m: VOCAB[m].title for m in METRICS}  # in titles
AXES = {m: VOCAB[m].axis for m in METRICS}
SCALE = {m: VOCAB[m].scale for m in METRICS if VOCAB[m].scale != 1.0}  # plotted in millions, as the axis titles say
# 3-D markers are drawn as font glyphs, larger than 2-D markers of the same size; "x" is the emoji U+274C
# (a box, or a colour emoji that ignores the marker's colour, in many fonts), so infeasible ones are "+" there.
STYLE_3D = {"pareto": {"size": 7}, "dominated": {"size": 5}, "pruned": {"size": 5},
            "infeasible": {"size": 6, "symbol": "cross"}, "failed": {"size": 5}}
CAMERA_3D = {"eye": {"x": 1.5, "y": 1.5, "z": 0.75}, "center": {"x": 0, "y": 0, "z": -0.2}}


def _hover(records: Sequence[dict[str, Any]], shown: Sequence[str] = METRICS) -> tuple[list[list[Any]], str]:
    """Hover text: trial, state, fidelity, digest, the ``shown`` metrics (those measured), the architecture."""
    custom = [[r["number"], r.get("digest", ""), r["summary"], r["category"], r.get("fidelity")]
              + [short_number(r.get(m)) for m in shown] for r in records]
    values = " | ".join(f"{NAMES[m]} %{{customdata[{5 + i}]}}{VOCAB[m].unit}" for i, m in enumerate(shown))
    template = ("trial %{customdata[0]} (%{customdata[3]}, %{customdata[4]} epochs)<br>digest %{customdata[1]}"
                + (f"<br>{values}" if values else "") + "<br>%{customdata[2]}<extra></extra>")
    return custom, template


def _shown(records: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics some of ``records`` have (an unmeasured latency is left out of hover text)."""
    return [m for m in METRICS if any(is_finite(r.get(m)) for r in records)]



def _v(r: dict[str, Any], m: str) -> Any:
    """A record's metric as plotted (MACs and parameters in millions)."""
    v = r.get(m)
    return v * SCALE[m] if m in SCALE and is_finite(v) else v


def log_axis(values: Sequence[Any]) -> dict[str, Any]:
    """A log axis over ``values`` whose every tick label is a full number. When the axis spans a decade or
    more plotly puts ticks at 1, 2, ..., 9 per decade labelled by the digit alone (0.02, 0.03 read ``2``,
    ``3``); here they are 1, 2, 5 per decade (every power of ten beyond 4 decades), labelled in full. On a
    shorter axis (data within 3/4 of a decade, plus plotly's padding) plotly's own ticks are full numbers."""
    pos = [float(v) for v in values if is_finite(v) and v > 0]
    span = math.log10(max(pos) / min(pos)) if pos else 0.0
    ticks = {"dtick": 1} if span > 4 else {"dtick": "D2"} if span >= 0.75 else {}
    return {"type": "log", "tickformat": "~g", **ticks}


def _style(fig: go.Figure, **layout: Any) -> go.Figure:
    """The report's look: template, base font, titles a little larger."""
    fig.update_layout(template=TEMPLATE, font=FONT, title_font={"size": 16}, **layout)
    return fig


def param_label(path: str) -> str:
    """A search-space parameter path or an architecture feature as a readable label:
    ``arch.stages.token_mixer.strip.strip_width`` -> ``token mixer · strip · strip width``,
    ``arch.stages[1].depth`` -> ``stage 2 · depth``, ``arch.stem.dim`` -> ``stem · dim``, ``depth[0]`` ->
    ``depth (stage 1)``, ``channel_ratio`` -> ``channel ratio``. The ``arch.`` prefix goes, and so does
    ``stages`` when the parameter applies to every stage."""
    parts = []
    for seg in path.removeprefix("arch.").split("."):
        m = re.fullmatch(r"(\w+)\[(\d+)\]", seg)
        if seg == "stages" or not seg:
            continue
        if m and m.group(1) == "stages":
            parts.append(f"stage {int(m.group(2)) + 1}")
        elif m:
            parts.append(f"{m.group(1).replace('_', ' ')} (stage {int(m.group(2)) + 1})")
        else:
            parts.append(seg.replace("_", " "))
    return " · ".join(parts) or path


def _param_labels_in(text: str) -> str:
    """Every ``arch.`` parameter path inside ``text`` (a subset's description) as :func:`param_label`."""
    return re.sub(r"arch\.[\w.\[\]]*\w\]?", lambda m: param_label(m.group(0)), text)



def pareto_figure(points: dict[str, Any], title: str = "") -> go.Figure:
    """2-D (``metrics = [y, x]``) or 3-D (``[z, x, y]``) Pareto plot of :func:`mixnas.analysis.pareto_points`:
    the front (joined by a line in 2-D), dominated, pruned, infeasible and failed trials in distinct markers.
    MACs and parameters are plotted in millions; axis titles name the unit (``MACs (M)``, ``latency (ms)``)."""
    metrics = points["metrics"]
    fig = go.Figure()
    three = len(metrics) == 3
    known = [r["top1"] for c in ("front", "dominated", "pruned") for r in points.get(c) or []]
    floor = (min(known) - 0.05 * ((max(known) - min(known)) or 10.0)) if known else 0.0
    shown = _shown([r for c in ("front", "dominated", "pruned", "infeasible", "failed") for r in points.get(c) or []])
    for cat in ("dominated", "pruned", "infeasible", "failed", "front"):
        rs = points.get(cat) or []
        if not rs:
            continue
        custom, template = _hover(rs, shown)
        if cat in ("infeasible", "failed"):  # no top-1: a row at the bottom, by their costs
            rs = [{**r, metrics[0]: floor} for r in rs]
        style = dict(STYLE["pareto" if cat == "front" else cat])
        if three:
            style.update(STYLE_3D["pareto" if cat == "front" else cat])
        opacity = style.pop("opacity", 1.0)
        name = {"front": "Pareto front", "dominated": "dominated", "pruned": "pruned (lower fidelity)",
                "infeasible": "infeasible (not trained, top-1 unknown)", "failed": "failed (top-1 unknown)"}[cat]
        if three:
            fig.add_trace(go.Scatter3d(x=[_v(r, metrics[1]) for r in rs], y=[_v(r, metrics[2]) for r in rs],
                                       z=[_v(r, metrics[0]) for r in rs], mode="markers", name=name, marker=style,
                                       opacity=opacity, customdata=custom, hovertemplate=template))
        else:
            fig.add_trace(go.Scatter(x=[_v(r, metrics[1]) for r in rs], y=[_v(r, metrics[0]) for r in rs],
                                     mode="lines+markers" if cat == "front" else "markers", name=name,
                                     marker=style, opacity=opacity, customdata=custom, hovertemplate=template,
                                     line={"shape": "hv", "color": STYLE["pareto"]["color"]} if cat == "front" else None))
    title = title or f"{NAMES[metrics[0]]} vs {' and '.join(NAMES[m] for m in metrics[1:])}"

    def plotted(m: str) -> list[Any]:
        return [_v(r, m) for c in ("front", "dominated", "pruned", "infeasible", "failed") for r in points.get(c) or []]

    if three:
        def axis(m: str) -> dict[str, Any]:
            return {"title": {"text": AXES[m], "font": AXIS_FONT}, "tickfont": TICK_FONT,
                    **({"type": "linear"} if m == "top1" else log_axis(plotted(m)))}

        _style(fig, title=title, height=620, margin={"l": 10, "r": 10, "t": 60, "b": 50},
               legend={"orientation": "h", "y": 0, "x": 0.5, "xanchor": "center", "yanchor": "top"},
               scene={"xaxis": axis(metrics[1]), "yaxis": axis(metrics[2]), "zaxis": axis(metrics[0]),
                      "aspectmode": "cube", "camera": CAMERA_3D})
    else:
        fig.update_xaxes(title_text=AXES[metrics[1]], **(log_axis(plotted(metrics[1])) if metrics[1] != "top1" else {}))
        fig.update_yaxes(title_text=AXES[metrics[0]])
        _style(fig, title=title, height=460, legend={"orientation": "h", "y": -0.2})
    return fig


def pareto_overlay_figure(points_per_run: dict[str, dict[str, Any]]) -> go.Figure:
    """The COMPLETE trials of several runs in one 2-D plot, each run's front as a line."""
    fig = go.Figure()
    y, x = next(iter(points_per_run.values()))["metrics"] if points_per_run else ("top1", "macs")
    shown = _shown([r for p in points_per_run.values() for c in ("front", "dominated") for r in p[c]])
    for k, (label, points) in enumerate(points_per_run.items()):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        for cat, mode, size in (("dominated", "markers", 7), ("front", "lines+markers", 10)):
            rs = points[cat]
            if not rs:
                continue
            custom, template = _hover(rs, shown)
            fig.add_trace(go.Scatter(x=[_v(r, x) for r in rs], y=[_v(r, y) for r in rs], mode=mode,
                                     customdata=custom, hovertemplate=template,
                                     name=f"{label}: {'front' if cat == 'front' else 'dominated'}",
                                     legendgroup=label, line={"shape": "hv", "color": color},
                                     marker={"color": color, "size": size,
                                             "symbol": "circle" if cat == "front" else "circle-open"}))
    fig.update_xaxes(title_text=AXES[x], **log_axis([_v(r, x) for p in points_per_run.values()
                                                     for c in ("front", "dominated") for r in p[c]]))
    fig.update_yaxes(title_text=AXES[y])
    return _style(fig, title=f"Fronts side by side: {NAMES[y]} vs {NAMES[x]} (COMPLETE trials)", height=480)


def hv_figure(histories: dict[str, dict[str, list[float]]]) -> go.Figure:
    """Normalised hypervolume against finished trials and against wall-clock minutes, one line per run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("against trials finished", "against wall-clock time"))
    for k, (label, h) in enumerate(histories.items()):
        color = RUN_COLORS[k % len(RUN_COLORS)]
        fig.add_trace(go.Scatter(x=h["trials"], y=h["hv"], mode="lines", line={"shape": "hv", "color": color},
                                 name=label, legendgroup=label), row=1, col=1)
        fig.add_trace(go.Scatter(x=[t / 60 for t in h["time_s"]], y=h["hv_time"], mode="lines",
                                 line={"shape": "hv", "color": color}, name=label, legendgroup=label,
                                 showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="trials finished", row=1, col=1)
    fig.update_xaxes(title_text="minutes since the first trial started", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume (normalised)", rangemode="tozero")
    _style(fig, title="Hypervolume of the COMPLETE front", height=400)
    return fig


def parallel_figure(data: dict[str, Any], title: str = "") -> go.Figure:
    """Parallel coordinates of :func:`mixnas.analysis.parallel_dims`, lines coloured by top-1."""
    dims = [{"label": param_label(d["label"]), "values": d["values"], "tickvals": d["tickvals"], "ticktext": d["ticktext"],
             "range": [-0.3, max(d["tickvals"]) + 0.3]} for d in data["dims"]]
    fig = go.Figure(go.Parcoords(line={"color": data["color"], "colorscale": "Viridis", "showscale": True,
                                       "colorbar": {"title": {"text": "top-1"}}}, dimensions=dims))
    _style(fig, title=title or "Architecture parameters of COMPLETE trials, coloured by top-1", height=440,
           margin={"l": 60, "r": 60, "t": 90})
    return fig


def importance_figure(groups: list[dict[str, Any]], title: str = "") -> go.Figure:
    """Horizontal bars of :func:`mixnas.analysis.importances`, one colour per subset of trials; parameters
    are labelled by :func:`param_label` (``[k]`` names the subset when there are several)."""
    fig = go.Figure()
    rows = 0
    for k, g in enumerate(groups):
        items = list(g["importances"].items())[::-1]
        rows += len(items)
        tag = f" [{k + 1}]" if len(groups) > 1 else ""
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[param_label(p) + tag for p, _ in items], orientation="h",
                             name=f"{tag.strip()} {_param_labels_in(g['subset'])} ({g['n']} of {g['of']} trials)".strip(),
                             marker={"color": RUN_COLORS[k % len(RUN_COLORS)]}, customdata=[p for p, _ in items],
                             hovertemplate="%{y}: %{x:.3f}<br>%{customdata}<extra></extra>"))
    fig.update_xaxes(title_text="fANOVA importance for top-1 (share within the subset)")
    fig.update_yaxes(automargin=True)
    # the legend below the axis title: one line per subset (they wrap in a narrow cell), placed in pixels
    top, bottom, plot = 70, 75 + 24 * len(groups), max(160, 26 * rows + 20)
    return _style(fig, title=title or "Parameter importance (Optuna fANOVA, per subset where the parameters exist)",
                  height=top + plot + bottom, margin={"t": top, "b": bottom}, showlegend=True,
                  legend={"orientation": "h", "y": -62 / plot, "yanchor": "top", "x": 0})


def edf_figure(raw: dict[str, Any], normalised: dict[str, Any] | None) -> go.Figure:
    """Error EDFs with bootstrap bands (left) and complexity-normalised EDFs (right, when given)."""
    panels = [("error EDF", raw)] + ([("complexity-normalised error EDF", normalised)] if normalised else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    for col, (_, data) in enumerate(panels, start=1):
        for k, (label, d) in enumerate(data["runs"].items()):
            color = RUN_COLORS[k % len(RUN_COLORS)]
            fill = _rgba(color, 0.18)
            grid = data["grid"]
            xs_hi, hi = _steps(grid, d["hi"])
            xs_lo, lo = _steps(grid, d["lo"])
            fig.add_trace(go.Scatter(x=xs_hi + xs_lo[::-1], y=hi + lo[::-1], fill="toself",
                                     fillcolor=fill, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                     legendgroup=label), row=1, col=col)
            fig.add_trace(go.Scatter(x=grid, y=d["F"], mode="lines", line={"shape": "hv", "color": color},
                                     name=f"{label} (n={d['n']})", legendgroup=label, showlegend=col == 1,
                                     hovertemplate="error %{x:.2f} %: F %{y:.2f}<extra>" + label + "</extra>"),
                          row=1, col=col)
        fig.update_xaxes(title_text="error = 100 - top-1 (%)", row=1, col=col)
    fig.update_yaxes(title_text="fraction of models with error <= x", range=[0, 1.02])
    note = normalised["note"] if normalised else ""
    _style(fig, title="Design-space error EDFs, 95 % bootstrap bands" + (f"<br><sub>{note}</sub>" if note else ""),
           height=440)
    return fig


def _steps(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """The corners of a right-continuous step function through ``(xs, ys)`` (for a band polygon)."""
    px, py = [], []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i:
            px.append(x)
            py.append(ys[i - 1])
        px.append(x)
        py.append(y)
    return px, py


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def trends_figure(trends: dict[str, dict[str, Any]], title: str = "", cols: int = 4) -> go.Figure:
    """One panel per architecture feature: every COMPLETE trial's top-1 per value (points), the median and
    the interquartile range (box) and the mean (line)."""
    names = list(trends)
    rows = max(1, math.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[param_label(n) for n in names] or ["no varying feature"],
                        vertical_spacing=min(0.12, 0.5 / rows), horizontal_spacing=0.06)
    for k, name in enumerate(names):
        t = trends[name]
        r, c = k // cols + 1, k % cols + 1
        xs = [str(v) for v in t["values"]]
        fig.add_trace(go.Box(x=[x for x, pts in zip(xs, t["points"]) for _ in pts],
                             y=[p for pts in t["points"] for p in pts], boxpoints="all", jitter=0.4, pointpos=0,
                             marker={"size": 5, "color": "#1f77b4"}, line={"width": 1}, showlegend=False,
                             name=name), row=r, col=c)
        fig.add_trace(go.Scatter(x=xs, y=t["mean"], mode="lines+markers", line={"color": "#d62728"},
                                 marker={"size": 5}, showlegend=k == 0, name="mean", legendgroup="mean",
                                 customdata=t["n"], hovertemplate="%{x}: mean %{y:.2f} (n=%{customdata})<extra></extra>"),
                      row=r, col=c)
        fig.update_xaxes(type="category", row=r, col=c)
    fig.update_yaxes(title_text="top-1 (%)", col=1)
    return _style(fig, title=title or "Top-1 against each architecture feature (COMPLETE trials)",
                  height=260 * rows + 80, margin={"t": 90})


def seed_spread_html(values: dict[str, list[float]], paper: dict[str, float], title: str, metric: str) -> str:
    """A study report's page (``report.html`` of :func:`mixnas.study_run.report`): the seed spread per level
    (every seed a point, the box over them) with the paper's values beside, plotly.js inline."""
    fig = go.Figure()
    for label, xs in values.items():
        fig.add_trace(go.Box(y=xs, name=label, boxpoints="all", jitter=0.3, pointpos=0, showlegend=False))
    if paper:
        fig.add_trace(go.Scatter(x=list(paper), y=list(paper.values()), mode="markers", name="paper",
                                 marker={"symbol": "diamond", "size": 11, "color": "black"}, yaxis="y2"))
        fig.update_layout(yaxis2={"title": f"paper {metric}", "overlaying": "y", "side": "right"})
    fig.update_layout(title=title, yaxis_title=f"measured {metric} (%)", template="plotly_white")
    return fig.to_html(include_plotlyjs=True, full_html=True)


# -- the report ------------------------------------------------------------------------------------------------
# The page around the sections, its style and its scripts are the template mixnas/templates/report.html: one
# script records JavaScript errors and which figures drew into #report-status (read by mixnas.browser), another
# sorts a trials table by the clicked column.


class Report:
    """Collects figures and HTML sections; :func:`render_page` writes the page."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures = 0

    def figure(self, fig: go.Figure) -> str:
        self.figures += 1
        height = fig.layout.height or 450
        return ('<div class="fig">' + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                                   div_id=f"fig{self.figures}", default_height=f"{height}px",
                                                   config={"displaylogo": False, "responsive": True}) + "</div>")

    def add(self, text: str) -> None:
        self.parts.append(text)

    def side_by_side(self, cells: list[str]) -> None:
        self.parts.append(f'<div class="runs" style="grid-template-columns: repeat({len(cells)}, minmax(0, 1fr))">'
                          + "".join(cells) + "</div>")


def build_report(runs: Sequence[A.Run], out: str | Path, js: str = "inline", n_boot: int = 400) -> dict[str, Any]:
    """Write the report for ``runs`` to ``out`` (HTML) and its files to ``OUT_STEM_files/``; returns
    ``{"path", "figures", "bytes", "files"}``. ``js``: ``inline`` (plotly.js inside the HTML, one
    self-contained file) or ``file`` (``plotly.min.js`` beside the report, in the files folder)."""
    if js not in ("inline", "file"):
        raise MixnasError(f"--js must be inline or file, found {js!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = out.parent / f"{out.stem}_files"
    files.mkdir(exist_ok=True)
    labels = [A.run_label(r, runs) for r in runs]
    rep = Report()
    _header_section(rep, runs, labels)
    _fronts_section(rep, runs, labels)
    _hv_section(rep, runs, labels)
    _edf_section(rep, runs, n_boot)
    _parallel_section(rep, runs, labels)
    _importance_section(rep, runs, labels)
    _trends_section(rep, runs, labels)
    _trials_section(rep, runs, labels, out.parent, files)
    out.write_text(render_page(rep.parts, _plotly_tag(js, files)))
    written = sorted(p for p in files.rglob("*") if p.is_file())
    return {"path": out, "figures": rep.figures, "bytes": out.stat().st_size, "files": files,
            "files_bytes": sum(p.stat().st_size for p in written)}


def render_page(parts: Sequence[str], plotly_tag: str, title: str = "mixnas dashboard") -> str:
    """The report page: ``mixnas/templates/report.html`` (its style, the status and table scripts) around
    the report's ``parts``, with plotly.js loaded by ``plotly_tag``."""
    template = (resources.files("mixnas") / "templates" / "report.html").read_text(encoding="utf-8")
    return string.Template(template.removesuffix("\n")).substitute(
        title=html.escape(title), plotly=plotly_tag, body="\n".join(parts))


def _plotly_tag(js: str, files: Path) -> str:
    """plotly.js inline, or written once beside the report (``js="file"``) and loaded from there."""
    if js == "inline":
        return f"<script>{plotly.offline.get_plotlyjs()}</script>"
    (files / "plotly.min.js").write_text(plotly.offline.get_plotlyjs())
    return f'<script src="{html.escape(files.name)}/plotly.min.js"></script>'


def _header_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str]) -> None:
    """The title, the summary table of the runs' counts and the table of contents."""
    rep.add(f"<h1>mixnas dashboard: {html.escape(', '.join(labels))}</h1>")
    rep.add(_summary_table(runs, labels))
    rep.add('<p class="note">Sections: <a href="#fronts">Pareto fronts</a> · <a href="#hv">hypervolume and timeline</a> · '
            '<a href="#edf">design-space EDFs</a> · <a href="#parallel">parallel coordinates</a> · '
            '<a href="#importance">parameter importance</a> · <a href="#trends">trends</a> · '
            '<a href="#trials">trials</a></p>')


def _fronts_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str]) -> None:
    """Pareto fronts: top-1 against each measured cost, a 3-D front, and the runs' fronts overlaid."""
    rep.add('<h2 id="fronts">Pareto fronts</h2><p class="note">Red: the non-dominated COMPLETE trials for the '
            "plotted metrics (one per architecture); blue: dominated COMPLETE trials; grey rings: pruned trials, at "
            "the lower fidelity they reached; orange crosses: infeasible candidates (over a budget, never trained: "
            "their top-1 is unknown, so they sit in a row below the others, placed by their costs); black diamonds: "
            "failed trials, likewise. Hover for the architecture and digest.</p>")
    costs = [m for m in COSTS if any(r.measured(m) for r in runs)]
    for cost in costs:
        rep.side_by_side([rep.figure(pareto_figure(A.pareto_points(r, ["top1", cost]),
                                                   f"{lab}: top-1 vs {NAMES[cost]}"))
                          for r, lab in zip(runs, labels)])
    if len(costs) >= 2:
        third = "latency_ms" if "latency_ms" in costs else costs[1]
        rep.side_by_side([rep.figure(pareto_figure(A.pareto_points(r, ["top1", "macs", third]),
                                                   f"{lab}: top-1 vs MACs and {NAMES[third]} (3-D)"))
                          for r, lab in zip(runs, labels)])
    if len(runs) > 1:
        rep.add(rep.figure(pareto_overlay_figure({lab: A.pareto_points(r, ["top1", "macs"])
                                                  for r, lab in zip(runs, labels)})))


def _hv_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str]) -> None:
    """Hypervolume histories (runs with the same objectives share one reference point) and Optuna's timeline."""
    rep.add('<h2 id="hv">Hypervolume</h2>')
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):
        groups.setdefault(tuple(r.objectives), []).append(i)
    for objs, idx in groups.items():
        ideal, ref = A.reference_point([runs[i] for i in idx])
        rep.add(f'<p class="note">Objectives {", ".join(f"{m}:{d}" for m, d in objs)}; hypervolume of the front of '
                f"COMPLETE trials, normalised by the box from the best values seen ({_vals(ideal)}) to the reference "
                f"point ({_vals(ref)}: the worst COMPLETE values of these runs, 10 % of the range further).</p>")
        rep.add(rep.figure(hv_figure({labels[i]: A.hv_history(runs[i], ideal, ref) for i in idx})))

    rep.add('<h3>Timeline</h3><p class="note">Optuna\'s timeline plot: when each trial ran, by Optuna state '
            "(infeasible and invalid candidates are PRUNED there, recorded in an instant).</p>")
    rep.side_by_side([rep.figure(_titled(optuna_io.timeline_figure(r.storage_url, r.study_name), f"{lab}: timeline"))
                      for r, lab in zip(runs, labels)])


def _edf_section(rep: Report, runs: Sequence[A.Run], n_boot: int) -> None:
    """Design-space error EDFs with bootstrap bands, complexity-normalised beside them when several runs."""
    rep.add('<h2 id="edf">Design-space comparison: error EDFs</h2><p class="note">The empirical distribution '
            "function of the error (100 - top-1) over each run's COMPLETE architectures, F(e) = share of models with "
            "error at most e (Radosavovic et al. 2019/2020); the shaded band is a pointwise 95 % bootstrap band "
            f"({n_boot} resamples of the models). A curve further up and left is a better design space. The "
            "complexity-normalised EDF reweights each run's models so that their MACs distributions match (uniform "
            "over the log-MACs bins every run covers), so a space is not credited for merely holding larger "
            "models. The samples come from the search's sampler, not uniform sampling: they describe the explored "
            "part of each space.</p>")
    raw = A.design_space_edfs(runs, n_boot=n_boot)
    norm, why = None, ""
    if len(runs) > 1:
        try:
            norm = A.design_space_edfs(runs, normalize=True, n_boot=n_boot)
        except MixnasError as err:
            why = str(err)
    if raw["runs"]:
        rep.add(rep.figure(edf_figure(raw, norm)))
    else:
        rep.add('<p class="note">No COMPLETE trials: no EDF.</p>')
    if why:
        rep.add(f'<p class="note">No complexity-normalised EDF: {html.escape(why)}.</p>')


def _parallel_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str]) -> None:
    """Parallel coordinates of each run's COMPLETE trials, side by side."""
    rep.add('<h2 id="parallel">Parallel coordinates</h2><p class="note">COMPLETE trials, one line each, coloured by '
            "top-1; one axis per architecture feature that varies (n/a where a conditional feature does not exist). "
            "Drag along an axis to filter.</p>")
    rep.side_by_side([_or_note(rep, lambda r=r, lab=lab: parallel_figure(A.parallel_dims(r), f"{lab}")
                               if A.parallel_dims(r)["dims"] else None, "no varying feature among COMPLETE trials")
                      for r, lab in zip(runs, labels)])


def _importance_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str]) -> None:
    """fANOVA parameter importance per run, per subset of trials where the parameters exist."""
    rep.add('<h2 id="importance">Parameter importance</h2><p class="note">Optuna\'s fANOVA evaluator on the COMPLETE '
            "trials (one per architecture), target top-1. Optuna evaluates only trials that have every parameter "
            "evaluated and by default drops conditional parameters; here the trials are grouped by which parameters "
            "exist (all trials; the trials of one mixer family; ...) and each group's importances are computed on "
            "exactly those trials, over every parameter they all have. Bars of one colour share a subset and sum "
            "to 1.</p>")
    cells = []
    for r, lab in zip(runs, labels):
        groups_imp = A.importances(r)
        cells.append(rep.figure(importance_figure(groups_imp, f"{lab}: parameter importance for top-1"))
                     if groups_imp else '<p class="note">Too few COMPLETE trials (fewer than 4) for importances.</p>')
    rep.side_by_side(cells)


def _trends_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str]) -> None:
    """Top-1 against each architecture feature, one figure per run."""
    rep.add('<h2 id="trends">Per-parameter trends</h2><p class="note">Top-1 of each COMPLETE trial against each '
            "architecture feature: all points, the box (median and quartiles) and the mean.</p>")
    for r, lab in zip(runs, labels):
        trends = A.param_trends(r)
        rep.add(rep.figure(trends_figure(trends, f"{lab}: top-1 against each feature")) if trends else
                f'<p class="note">{html.escape(lab)}: no varying feature among COMPLETE trials.</p>')


def _trials_section(rep: Report, runs: Sequence[A.Run], labels: Sequence[str], base: Path, files: Path) -> None:
    """The sortable trials table of each run, each architecture linked to its ArchConfig YAML."""
    rep.add('<h2 id="trials">Trials</h2><p class="note">Click a column header to sort. Each architecture links '
            "to its ArchConfig YAML (the run's pareto/ file for Pareto trials when the run folder is inside the "
            "report's folder, else a file written beside this report); <code>mixnas inspect FILE</code> or "
            "<code>mixnas train FILE</code> take it.</p>")
    for r, lab in zip(runs, labels):
        rep.add(f"<h3>{html.escape(lab)}</h3>" + _trials_table(r, base, files / "trials" / _safe(r.name)))


def _titled(fig: go.Figure, title: str) -> go.Figure:
    return _style(fig, title=title, height=max(360, fig.layout.height or 0))


def _or_note(rep: Report, make: Any, note: str) -> str:
    fig = make()
    return rep.figure(fig) if fig is not None else f'<p class="note">{html.escape(note)}</p>'


def _vals(xs: Sequence[float]) -> str:
    return ", ".join(short_number(float(x)) for x in xs)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_summary(run: A.Run) -> dict[str, Any]:
    """The numbers of the report's summary table for ``run``: its space, objectives and epochs, and
    :func:`mixnas.runs.trial_counts` of its study, the function the search console's progress line and
    summary print (so ``trained``, ``complete``, ``reused``, ``infeasible``, ``invalid``, ``requeued``,
    ``pareto`` and ``best_top1`` agree with what ``mixnas search`` printed)."""
    return {"space": run.space, "objectives": [f"{m}:{d}" for m, d in run.objectives], "epochs": run.max_epochs,
            **trial_counts(run.trials, run.metrics, run.directions)}


SUMMARY_COLUMNS = [  # (key, header); requeued / running / waiting only when some run has any
    ("trials", "trials"), ("trained", "trained"), ("complete", "COMPLETE"), ("pruned", "pruned"),
    ("failed", "failed"), ("reused", "re-used"), ("infeasible", "infeasible"), ("invalid", "invalid"),
    ("requeued", "re-queued"), ("running", "running"), ("waiting", "waiting"), ("pareto", "Pareto"),
    ("best_top1", "best top-1 (%)")]


def _count(key: str, v: Any) -> str:
    """A summary cell as the console writes it (best top-1 with two decimals, ``-`` when there is none)."""
    return "-" if v is None else f"{v:.2f}" if key == "best_top1" else str(v)


def _summary_table(runs: Sequence[A.Run], labels: Sequence[str]) -> str:
    data = [run_summary(r) for r in runs]
    cols = [(k, h) for k, h in SUMMARY_COLUMNS if k not in ("requeued", "running", "waiting") or any(d[k] for d in data)]
    head = ("<tr><th>run</th><th>space</th><th>objectives</th><th>epochs</th>"
            + "".join(f"<th>{h}</th>" for _, h in cols) + "</tr>")
    body = []
    for d, lab in zip(data, labels):
        body.append(f"<tr><td>{html.escape(lab)}</td><td>{html.escape(d['space'])}</td>"
                    f"<td>{html.escape(', '.join(d['objectives']))}</td><td>{d['epochs']}</td>"
                    + "".join(f'<td data-k="{k}">{_count(k, d[k])}</td>' for k, _ in cols)
                    + "</tr>")
    return (f'<table class="trials summary"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
            '<p class="note">The counts of <code>mixnas search</code>\'s progress line and summary: trained = '
            "COMPLETE + pruned + failed, the architectures trained (what <code>--trials</code> counts); re-used "
            "repeats, infeasible and invalid candidates (never trained) and trials re-queued after a crash are "
            "recorded but not counted; Pareto: the front of COMPLETE trials, one per architecture.</p>")


TRIAL_COLUMNS = ["number", "category", "status", "top1", "macs", "params", "latency_ms", "fidelity", "wall_time_s",
                 "digest", "architecture", "reason"]
HEADERS = {"number": "trial", **{m: VOCAB[m].column for m in METRICS}, "fidelity": "epochs",
           "wall_time_s": VOCAB["wall_time_s"].column}


def table_columns(rows: Sequence[dict[str, Any]], cols: Sequence[str] = TRIAL_COLUMNS) -> list[str]:
    """The columns of ``cols`` that some row fills (an unmeasured latency, reasons when no trial has one,
    are left out); ``architecture`` (each row's link) always stays."""
    return [c for c in cols if c == "architecture" or any(r.get(c) not in (None, "") for r in rows)]


def _trials_table(run: A.Run, base: Path, trial_dir: Path) -> str:
    import os

    from mixnas.config import ArchConfig

    rows = A.table_rows(run)
    cols = table_columns(rows)
    head = "".join(f'<th data-c="{c}" onclick="sortTable(this)">{HEADERS.get(c, c)}</th>' for c in cols)
    body = []
    for row in rows:
        link = ""
        target = row["pareto_file"]
        if target is not None and not Path(target).resolve().is_relative_to(base.resolve()):
            target = None  # keep the report's folder self-contained (--serve serves only that folder)
        if target is None and isinstance(row["arch"], dict):
            trial_dir.mkdir(parents=True, exist_ok=True)
            target = trial_dir / f"trial_{row['number']:05d}.yaml"
            try:
                text = yaml_header() + ArchConfig.from_dict(row["arch"]).with_name(
                    f"{run.study_name}-t{row['number']}").to_yaml()  # with the run's plugins: trainable as is
            except MixnasError:
                import yaml

                text = yaml.safe_dump(row["arch"], sort_keys=False)
            target.write_text(text)
        if target is not None:
            href = Path(os.path.relpath(Path(target).resolve(), base.resolve())).as_posix()
            link = f'<a href="{html.escape(href)}">{html.escape(row["summary"])}</a>'
        else:
            link = html.escape(row["summary"])
        cells = []
        for c in cols:
            if c == "architecture":
                cells.append(f'<td class="l" data-v="{html.escape(row["summary"])}">{link}</td>')
                continue
            v = row.get(c)
            sv = "" if v is None or v == "" else (repr(float(v)) if isinstance(v, float) else str(v))
            cls = ' class="l"' if c in ("category", "status", "digest", "reason") else ""
            shown = "" if v in (None, "") else f"{v * SCALE[c]:.3g}" if c in SCALE and is_finite(v) else short_number(v)
            cells.append(f'<td{cls} data-v="{html.escape(sv)}">{html.escape(shown)}</td>')
        body.append(f'<tr class="{row["category"]}">' + "".join(cells) + "</tr>")
    return (f'<table class="trials" data-run="{html.escape(run.name)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """A figure as plain JSON data (for tests and debugging)."""
    return json.loads(fig.to_json())
