"""A load test's outputs: ``report.json`` and a self-contained, offline HTML report.

The HTML has no external resources: plots are inline SVG drawn here (latency
percentiles over time, the TTFT distribution, and for sweeps throughput and latency
against load). A few lines of inline script mark each plot as rendered
(``data-rendered``) once the browser has laid it out, so a headless browser can check it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REQUESTS_JSONL = "requests.jsonl"
CONVERSATIONS_JSONL = "conversations.jsonl"

_W, _H, _PAD = 640, 260, 48
_COLORS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd")


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_JSON).write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
    (out / REPORT_HTML).write_text(render_html(report), encoding="utf-8")


def _scale(values: Sequence[float], lo: float | None = None) -> tuple[float, float]:
    low = min(values) if lo is None else lo
    high = max(values)
    if high <= low:
        high = low + 1.0
    return low, high


def line_chart(title: str, xlabel: str, ylabel: str, xs: Sequence[float],
               series: Sequence[tuple[str, Sequence[float | None]]], *, log_y: bool = False
               ) -> str:
    """An SVG line chart; ``None`` values are gaps."""
    import math

    points = [v for _, ys in series for v in ys if v is not None]
    if not xs or not points:
        return _empty(title)
    f = (lambda v: math.log10(max(v, 1e-3))) if log_y else (lambda v: v)
    x0, x1 = _scale(xs)
    y0, y1 = _scale([f(v) for v in points], None if log_y else 0.0)
    pw, ph = _W - 2 * _PAD, _H - 2 * _PAD

    def px(x: float) -> float:
        return _PAD + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return _H - _PAD - (f(y) - y0) / (y1 - y0) * ph

    parts = [_frame(title, xlabel, ylabel)]
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        label = 10 ** yv if log_y else yv
        y = _H - _PAD - ph * i / 4
        parts.append(f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#eee"/><text x="{_PAD - 4}" y="{y + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{label:.3g}</text>')
    for i in range(5):
        xv = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{px(xv):.1f}" y="{_H - _PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{xv:.3g}</text>')
    for k, (name, ys) in enumerate(series):
        color = _COLORS[k % len(_COLORS)]
        runs, current = [], []
        for x, y in zip(xs, ys, strict=True):
            if y is None:
                if current:
                    runs.append(current)
                current = []
            else:
                current.append(f"{px(x):.1f},{py(y):.1f}")
        if current:
            runs.append(current)
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
            else:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                             f'points="{" ".join(run)}"/>')
        parts.append(f'<text x="{_W - _PAD + 4}" y="{_PAD + 14 * k + 8}" font-size="11" '
                     f'fill="{color}">{html.escape(name)}</text>')
    return _svg(parts)


def bar_chart(title: str, xlabel: str, bins: Sequence[Sequence[float]]) -> str:
    """An SVG histogram of ``[low, high, count]`` bins (log-spaced x is shown by index)."""
    if not bins:
        return _empty(title)
    peak = max(b[2] for b in bins) or 1
    pw, ph = _W - 2 * _PAD, _H - 2 * _PAD
    width = pw / len(bins)
    parts = [_frame(title, xlabel, "requests")]
    for i, (low, _high, count) in enumerate(bins):
        h = ph * count / peak
        x = _PAD + i * width
        parts.append(f'<rect x="{x:.1f}" y="{_H - _PAD - h:.1f}" width="{max(width - 1, 1):.1f}"'
                     f' height="{h:.1f}" fill="{_COLORS[0]}"><title>{low:.3g} ms: {count:g}'
                     f'</title></rect>')
        if i % max(1, len(bins) // 5) == 0:
            parts.append(f'<text x="{x:.1f}" y="{_H - _PAD + 14}" font-size="10">{low:.3g}</text>')
    parts.append(f'<text x="{_PAD - 4}" y="{_PAD + 4}" font-size="10" text-anchor="end">'
                 f'{peak:g}</text>')
    return _svg(parts)


def _frame(title: str, xlabel: str, ylabel: str) -> str:
    return (f'<text x="{_W / 2}" y="18" font-size="13" text-anchor="middle" '
            f'font-weight="bold">{html.escape(title)}</text>'
            f'<text x="{_W / 2}" y="{_H - 8}" font-size="11" text-anchor="middle">'
            f'{html.escape(xlabel)}</text>'
            f'<text x="12" y="{_H / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 12 {_H / 2})">{html.escape(ylabel)}</text>'
            f'<rect x="{_PAD}" y="{_PAD}" width="{_W - 2 * _PAD}" height="{_H - 2 * _PAD}" '
            f'fill="none" stroke="#999"/>')


def _svg(parts: list[str]) -> str:
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{_W}" '
            f'height="{_H}" viewBox="0 0 {_W} {_H}">' + "".join(parts) + "</svg>")


def _empty(title: str) -> str:
    return _svg([_frame(title, "", ""),
                 f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>'])


def _cell(value: object) -> str:
    """A table cell; nothing measured (null) reads n/a, never 0."""
    return "n/a" if value is None else html.escape(str(value))


def _percentile_series(runs: dict[str, Any], key: str) -> tuple[list[float], list[Any]]:
    xs = [w["t"] for w in runs["timeseries"]]
    series = [(f"{key} {q}", [w[f"{key}_ms"].get(q) for w in runs["timeseries"]])
              for q in ("p50", "p90", "p99")]
    return xs, series


def render_html(report: dict[str, Any]) -> str:
    steps = report["steps"]
    plots = []
    for step in steps:
        label = f"{step['mode']} {step['load']:g}"
        xs, series = _percentile_series(step, "e2e")
        plots.append(line_chart(f"End-to-end latency over time ({label})",
                                "seconds since warm-up end", "ms from intended send", xs,
                                series))
        xs, series = _percentile_series(step, "ttft")
        plots.append(line_chart(f"TTFT over time ({label})", "seconds since warm-up end",
                                "ms from intended send", xs, series))
        plots.append(bar_chart(f"TTFT distribution ({label})", "ms from intended send",
                               step["ttft_distribution_ms"]))
    if len(steps) > 1:
        loads = [s["load"] for s in steps]
        what = steps[0]["mode"]
        plots.append(line_chart(f"Throughput vs {what}", what, "per second", loads, [
            ("requests/s", [s["throughput"]["requests_per_s"] for s in steps]),
            ("goodput/s", [s["throughput"]["goodput_requests_per_s"] for s in steps])]))
        plots.append(line_chart(f"Latency vs {what}", what, "ms (log)", loads, [
            (f"e2e {q}", [s["latency_ms"]["e2e_from_intended"].get(q) for s in steps])
            for q in ("p50", "p90", "p99")], log_y=True))
    rows = []
    for s in steps:
        lat = s["latency_ms"]
        rows.append(
            "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in (
                f"{s['mode']} {s['load']:g}", s["requests"]["measured"],
                sum(s["requests"]["errors"].values()), s["throughput"]["requests_per_s"],
                s["throughput"]["output_tokens_per_s"],
                s["throughput"]["goodput_requests_per_s"],
                lat["ttft_from_intended"].get("p50"), lat["ttft_from_intended"].get("p99"),
                lat["e2e_from_intended"].get("p50"), lat["e2e_from_intended"].get("p99"),
                lat["e2e_from_intended"].get("p99_9"), lat["send_lag"].get("p99"),
                "yes: " + "; ".join(s["client"]["reasons"]) if s["client"]["bottleneck"]
                else "no")) + "</tr>")
    conversation_rows = []
    for s in steps:
        conv = s["conversations"]
        duration, per = conv["duration_ms"], conv["requests_per_conversation"]
        conversation_rows.append(
            "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in (
                f"{s['mode']} {s['load']:g}", conv["started_measured"],
                conv["completed_measured"], conv["not_completed"], conv["completed_per_s"],
                conv["turns_mean"], per.get("mean"), duration.get("p50"), duration.get("p90"),
                duration.get("p99"), duration.get("max"),
                ", ".join(f"{k}: {n}" for k, n in conv["outcomes"].items()))) + "</tr>")
    tool_rows = []
    for s in steps:
        tools = s.get("tools") or {}
        if tools.get("answers"):
            tool_rows.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in (
                f"{s['mode']} {s['load']:g}", tools["answers"], tools["with_tool_calls"],
                tools["tool_call_rate"], tools["parse_failures"], tools["parse_failure_rate"],
                ", ".join(f"{k}: {n}" for k, n in tools["parse_failure_kinds"].items())))
                + "</tr>")
    tool_table = "" if not tool_rows else (
        "<h2>Tool calls</h2>\n<p>Answers to requests that offered tools: the share that "
        "called a tool, and the share whose tool call the server passed through as text "
        "(a parse failure).</p>\n<table><tr><th>load</th><th>answers</th>"
        "<th>with tool calls</th><th>tool-call rate</th><th>parse failures</th>"
        "<th>parse-failure rate</th><th>kinds</th></tr>" + "".join(tool_rows) + "</table>")
    knee = report.get("knee")
    partial = ""
    if report.get("partial"):
        partial = (f'<p class="partial"><b>Partial report</b>: stopped by '
                   f'{html.escape(str(report.get("stopped_by")))} after '
                   f'{len(steps)} of {report.get("steps_planned", len(steps))} steps; '
                   "it shows what completed.</p>")
    config = html.escape(json.dumps(report["config"], indent=2))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>writ load test</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}
svg{{display:block;margin:12px 0}}pre{{background:#f6f6f6;padding:8px}}</style></head>
<body><h1>writ load test</h1>
{partial}
<p>Latencies are measured from the intended send time (no coordinated omission).
{"<b>Knee: " + html.escape(str(knee["load"])) + "</b> (" + html.escape(knee["reason"]) + ")"
 if knee else ""}</p>
<table><tr><th>load</th><th>requests</th><th>errors</th><th>req/s</th><th>out tok/s</th>
<th>goodput/s</th><th>TTFT p50</th><th>TTFT p99</th><th>e2e p50</th><th>e2e p99</th>
<th>e2e p99.9</th><th>send lag p99</th><th>client-bound</th></tr>
{"".join(rows)}</table>
<h2>Conversations</h2>
<p>Started after the warm-up; completed: ran to their own end with every request
answered. Duration: first intended send to the last response (ms).</p>
<table><tr><th>load</th><th>started</th><th>completed</th><th>not completed</th>
<th>completed/s</th><th>turns (mean)</th><th>requests (mean)</th><th>duration p50</th>
<th>p90</th><th>p99</th><th>max</th><th>outcomes</th></tr>
{"".join(conversation_rows)}</table>
{tool_table}
{"".join(plots)}
<h2>Configuration</h2><pre>{config}</pre>
<script>
var n = 0;
document.querySelectorAll("svg.plot").forEach(function (s) {{
  var b = s.getBBox();
  if (b.width > 0 && b.height > 0 && s.childElementCount > 3) {{
    s.setAttribute("data-rendered", "1"); n++; }}
}});
document.body.setAttribute("data-plots-rendered", String(n));
</script></body></html>
"""
