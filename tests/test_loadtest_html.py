"""The load test's HTML report, opened in headless Chromium (issue 7).

Two independent proofs that the plots rendered with content, both from the browser:
the DOM after layout (a probe script appended to a copy of the page measures every
plot's data marks: polylines, points and bars with a non-empty bounding box), and the
painted pixels (a screenshot, decoded here, holds series-coloured pixels inside every
plot's frame). An extra empty plot ("no data") rides along as the negative control: both
checks must find nothing in it. Skips with a clear message only where Chromium is absent.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from writ_async.loadtest.cli import load_test
from writ_async.loadtest.report import REPORT_HTML, bar_chart
from writ_async.loadtest.run import LoadConfig
from writ_async.loadtest.traffic import IntRange, SyntheticTraffic
from writ_async.mock.config import MockConfig
from writ_async.mock.server import open_mock_server

SERIES_RGB = [(0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0xD6, 0x27, 0x28), (0x2C, 0xA0, 0x2C),
              (0x94, 0x67, 0xBD)]  # the report's series colours (report._COLORS)
WIDTH = 720  # the browser window: wide enough for a plot (640 px) and its page margin
FRAME_PAD = 48  # the report's plot padding (report._PAD): data marks lie inside it

# Appended to a copy of the report: after layout, one record per plot, written into the
# DOM so that --dump-dom carries it out.
PROBE = """<script>
var out = [];
document.querySelectorAll("svg.plot").forEach(function (s) {
  var r = s.getBoundingClientRect(), marks = 0;
  s.querySelectorAll("polyline, circle, rect").forEach(function (m) {
    var b = m.getBBox(), fill = m.getAttribute("fill");
    if (m.tagName === "rect" && fill === "none") return;  // the frame, not data
    if (m.tagName === "polyline" && m.points.numberOfItems < 2) return;
    if (b.width > 0 || b.height > 0) marks++;
  });
  out.push({x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width,
            h: r.height, marks: marks, title: s.querySelector("text").textContent});
});
var pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = JSON.stringify({plots: out,
  height: document.documentElement.scrollHeight});
document.body.appendChild(pre);
</script>"""


def _browser() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (Debian's `chromium` package; .ci/run "
                    "installs it when run as root with apt): the HTML report was written "
                    "but not rendered")
    return browser


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--no-first-run", *args],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def decode_png(data: bytes, rows: int) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, unfiltered pixels) of the first ``rows`` rows of an
    8-bit, non-interlaced RGB or RGBA PNG, which is what Chromium writes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    assert height >= rows, (height, rows)  # every plot is in the picture
    height, bpp = rows, 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + a) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + b) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += row
        prev = row
    return width, height, bpp, bytes(out)


def series_pixels(png: tuple[int, int, int, bytes], box: dict[str, Any]) -> int:
    """Pixels inside a plot's frame painted in one of the series colours."""
    width, height, bpp, pixels = png
    x0, y0 = round(box["x"]) + FRAME_PAD + 2, round(box["y"]) + FRAME_PAD + 2
    x1 = min(width, round(box["x"] + box["w"]) - FRAME_PAD - 2)
    y1 = min(height, round(box["y"] + box["h"]) - FRAME_PAD - 2)
    count = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            i = (y * width + x) * bpp
            if pixels[i] == pixels[i + 1] == pixels[i + 2]:
                continue  # white page, grey grid, frame and text
            if any(_blend_of(pixels[i:i + 3], colour) for colour in SERIES_RGB):
                count += 1
    return count


def _blend_of(pixel: bytes, colour: tuple[int, int, int]) -> bool:
    """Whether ``pixel`` is ``colour`` painted at 35 % coverage or more over the white page
    (thin lines are anti-aliased, so few of their pixels carry the pure colour); greys
    (grid, frame, text) fit no series colour."""
    ink = [255 - c for c in colour]
    seen = [255 - p for p in pixel]
    coverage = sum(s * k for s, k in zip(seen, ink, strict=True)) / sum(k * k for k in ink)
    return coverage >= 0.35 and all(
        abs(s - coverage * k) <= 16 for s, k in zip(seen, ink, strict=True))


async def _sweep_report(out: Path) -> Path:
    traffic = SyntheticTraffic(turns=IntRange(1, 2), system_tokens=IntRange(50, 50),
                               user_tokens=IntRange(10, 10), output_tokens=None)
    async with open_mock_server(MockConfig(ttft_ms=2)) as server:
        configs = [LoadConfig(base_url=server.url, model="m", concurrency=c, requests=60,
                              window_s=0.01) for c in (2, 4)]
        await load_test(configs, traffic, out)
    return out / REPORT_HTML


def test_html_report_plots_render_in_headless_chromium(tmp_path: Path) -> None:
    page = asyncio.run(_sweep_report(tmp_path / "report"))
    browser = _browser()
    html = page.read_text()
    plots = html.count('<svg class="plot"')
    assert plots == 8  # 3 per step and 2 for the sweep

    # The page's own check, as a user's browser runs it.
    dom = _chromium(browser, "--dump-dom", page.as_uri()).stdout
    assert f'data-plots-rendered="{plots}"' in dom

    # The probe, on a copy with one empty plot added as the negative control.
    checked = tmp_path / "checked.html"
    checked.write_text(html.replace(
        "<h2>Configuration</h2>", bar_chart("Empty control", "ms", []) + "<h2>Configuration</h2>")
        .replace("</body>", PROBE + "</body>"))
    dom = _chromium(browser, f"--window-size={WIDTH},1000", "--dump-dom", checked.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    boxes = probe["plots"]
    assert len(boxes) == plots + 1
    control = next(b for b in boxes if b["title"] == "Empty control")
    data_plots = [b for b in boxes if b is not control]
    assert control["marks"] == 0
    assert all(b["marks"] > 0 and b["w"] > 0 and b["h"] > 0 for b in data_plots), data_plots

    # The painted pixels: a screenshot as tall as the page.
    shot = tmp_path / "shot.png"
    # The same width as the probe's run, so that the layout (and every plot's box) matches.
    _chromium(browser, f"--window-size={WIDTH},{probe['height'] + 40}",
              f"--screenshot={shot}", checked.as_uri())
    png = decode_png(shot.read_bytes(), rows=round(max(b["y"] + b["h"] for b in boxes)))
    assert series_pixels(png, control) == 0
    painted = {b["title"]: series_pixels(png, b) for b in data_plots}
    assert all(n >= 20 for n in painted.values()), json.dumps([painted, data_plots])
