"""report.html in real headless Chromium: charts drawn, no console errors, no network.

Chromium is driven over the DevTools protocol (aiohttp websocket on loopback): the page's
exceptions, console errors and every request it makes are collected, then screenshots are
decoded with zlib + numpy and checked for ink. Set VPBATCH_SCREENSHOTS=DIR to keep the PNGs.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from test_report import make_run

from vpbatch.benchmark.dims import PVQ
from vpbatch.report import svg, write_report
from vpbatch.report.svg import VALUE_COLOURS
from vpbatch.report.trust_view import VERDICT_COLOURS

pytestmark = pytest.mark.browser

INSTALL_HINT = (
    "headless Chromium is required for the report rendering test and was not found on PATH. "
    "Install it: `apt-get update && apt-get install -y chromium` (Debian/Ubuntu; `make test` "
    "does this when it runs as root, see scripts/need-chromium), or set VPBATCH_SKIP_BROWSER=1 "
    "to skip these tests on purpose."
)

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    """The Chromium binary on PATH, under any of its Debian/Google names."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    """The Chromium binary, or the test fails saying how to install it (or skip on purpose)."""
    if os.environ.get("VPBATCH_SKIP_BROWSER") == "1":
        pytest.skip("VPBATCH_SKIP_BROWSER=1: the report rendering tests were skipped on purpose")
    exe = find_chromium()
    if exe is None:
        pytest.fail(INSTALL_HINT)
    return exe


@dataclass
class PageResult:
    """What the page did: errors, every URL it requested, screenshots, DOM facts."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    shots: dict[str, bytes] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


class _Cdp:
    """Just enough of the DevTools protocol: numbered calls, events kept for later."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids = ws, itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        await self.ws.send_json({"id": i, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    async def wait_event(self, name: str, timeout: float) -> None:
        if any(e["method"] == name for e in self.events):
            return
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive_json()
                if "method" in msg:
                    self.events.append(msg)
                    if msg["method"] == name:
                        return


def _port(user_dir: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The DevTools port Chromium picked (--remote-debugging-port=0 writes it to a file)."""
    f = user_dir / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if f.exists() and f.read_text().strip():
            return int(f.read_text().split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port")


JS_FACTS = """(() => {
  const charts = [...document.querySelectorAll('svg.chart')];
  const drawn = charts.filter(s => { const r = s.getBoundingClientRect();
     return r.width > 50 && r.height > 50; }).length;
  return JSON.stringify({charts: charts.length, drawn,
    bars: document.querySelectorAll('svg rect.bar').length,
    cells: document.querySelectorAll('svg rect.cell').length,
    diag: document.querySelectorAll('svg rect.diag').length,
    pct: document.querySelectorAll('svg rect.pct').length,
    median: document.querySelectorAll('svg line.median').length,
    height: document.documentElement.scrollHeight});
})()"""


# What the reader sees before opening anything: the overview first, the detail folded.
JS_FIRST = """(() => {
  const sections = [...document.querySelectorAll('section')];
  const rows = [...document.querySelectorAll('#overview .ovrow')]
     .map(r => [r.getBoundingClientRect().top, r.firstElementChild.firstChild.textContent,
                r.classList.contains('ref'), r.querySelector('b.vb')?.textContent ?? null])
     .sort((a, b) => a[0] - b[0]).map(r => [r[1], r[2], r[3]]);
  const ov = document.querySelector('#overview').getBoundingClientRect();
  return JSON.stringify({first: sections[0].id, rows, overview_top: ov.top + scrollY,
    folded: [...document.querySelectorAll('details')].filter(d => !d.open).length,
    height: document.documentElement.scrollHeight});
})()"""
OPEN_ALL = "document.querySelectorAll('details').forEach(d => { d.open = true; })"
SEEN_FOLDED = ("top", "overview")  # shots taken before the details are opened


async def _drive(url: str, port: int, shots: dict[str, str | None], width: int,
                 height: int) -> PageResult:
    res = PageResult()
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
            target = await r.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _Cdp(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                await cdp.call(f"{domain}.enable")
            await cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=False)
            await cdp.call("Page.navigate", url=url)
            await cdp.wait_event("Page.loadEventFired", 30)
            ev = await cdp.call("Runtime.evaluate", expression=JS_FIRST, returnByValue=True)
            res.facts["first"] = json.loads(ev["result"]["value"])
            ordered = sorted(shots.items(), key=lambda kv: kv[0] not in SEEN_FOLDED)
            opened = False
            for name, selector in ordered:
                if name not in SEEN_FOLDED and not opened:
                    await cdp.call("Runtime.evaluate", expression=OPEN_ALL)
                    ev = await cdp.call("Runtime.evaluate", expression=JS_FACTS,
                                        returnByValue=True)
                    res.facts.update(json.loads(ev["result"]["value"]))
                    opened = True
                # optimizeForSpeed makes Chromium use the cheap "Up" filter: fast to decode.
                params: dict[str, Any] = {"format": "png", "optimizeForSpeed": True}
                if selector:
                    box = await cdp.call("Runtime.evaluate", returnByValue=True, expression=(
                        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                        "const r = e.getBoundingClientRect(); return [r.left + scrollX, "
                        "r.top + scrollY, r.width, r.height]; })()"))
                    x, y, w, h = box["result"]["value"]
                    params["clip"] = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
                    params["captureBeyondViewport"] = True
                shot = await cdp.call("Page.captureScreenshot", **params)
                res.shots[name] = base64.b64decode(shot["data"])
            for e in cdp.events:
                m, p = e["method"], e.get("params", {})
                if m == "Runtime.exceptionThrown":
                    res.errors.append(p["exceptionDetails"].get("text", "exception"))
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    res.errors.append("console: " + str(p.get("args")))
                elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                    res.errors.append("log: " + p["entry"].get("text", ""))
                elif m == "Network.requestWillBeSent":
                    res.requests.append(p["request"]["url"])
    return res


def render_page(path: Path, shots: dict[str, str | None], *, width: int = 1400,
                height: int = 1000, fragment: str = "") -> PageResult:
    """Open a file in a fresh headless Chromium; `shots` maps a name to a CSS selector."""
    exe = require_chromium()
    with tempfile.TemporaryDirectory(prefix="vpbatch-chromium-") as tmp:
        user = Path(tmp)
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={user}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            port = _port(user, proc, 30)
            url = path.resolve().as_uri() + (f"#{fragment}" if fragment else "")
            return asyncio.run(_drive(url, port, shots, width, height))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def decode_png(blob: bytes) -> np.ndarray:
    """(H, W, C) uint8 from an 8-bit RGB/RGBA PNG, with the stdlib and numpy only."""
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, [], 0
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, body = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6), f"unsupported PNG depth {depth} type {ctype}"
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, w * bpp + 1)
    out = np.zeros((h, w * bpp), np.uint8)
    prev = np.zeros(w * bpp, np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) % 256
        elif f == 2:
            cur = (line + prev) % 256
        else:
            cur = np.zeros_like(line)
            lv = line.reshape(w, bpp)
            up = prev.reshape(w, bpp)
            cv = cur.reshape(w, bpp)
            left = np.zeros(bpp, np.int32)
            ul = np.zeros(bpp, np.int32)
            for x in range(w):
                if f == 3:
                    cv[x] = (lv[x] + (left + up[x]) // 2) % 256
                else:
                    p = left + up[x] - ul
                    pa, pb, pc = np.abs(p - left), np.abs(p - up[x]), np.abs(p - ul)
                    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up[x], ul))
                    cv[x] = (lv[x] + pred) % 256
                left, ul = cv[x], up[x]
        out[y] = cur
        prev = cur.astype(np.int32)
    return out.reshape(h, w, bpp)


# --- the tests -------------------------------------------------------------------------

SHOTS = {"top": None, "overview": "#overview", "trust": "#trust", "profiles": "#profiles",
         "humans": "#humans", "personas": "#personas", "steering": "#steering"}


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[k:k + 2], 16) for k in (1, 3, 5)])


def _share_near(img: np.ndarray, colour: str, tol: int = 12) -> float:
    """Fraction of pixels within `tol` of a colour (antialiasing blurs edges only)."""
    diff = np.abs(img[..., :3].astype(np.int32) - _rgb(colour)).max(axis=-1)
    return float((diff <= tol).mean())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> PageResult:
    require_chromium()
    root = make_run(tmp_path_factory.mktemp("browser") / "run", data_dir)
    _, html = write_report(root, data=data_dir, n_boot=100)
    res = render_page(html, SHOTS)
    keep = os.environ.get("VPBATCH_SCREENSHOTS")
    for name, png in res.shots.items():
        (root / f"{name}.png").write_bytes(png)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"report-{name}.png").write_bytes(png)
    return res


def test_page_loads_without_console_errors(page: PageResult) -> None:
    assert page.errors == []


def test_page_requests_nothing_but_itself(page: PageResult) -> None:
    assert page.requests and all(u.startswith(("file:", "data:")) for u in page.requests), (
        page.requests)


def test_the_page_opens_with_the_overview_and_folds_the_detail(page: PageResult) -> None:
    first = page.facts["first"]
    assert first["first"] == "overview" and first["overview_top"] < 400
    assert sorted(row[0] for row in first["rows"]) == ["alpha-7b", "beta-chat"]
    assert first["folded"] >= 4  # bar charts x 3 families, personas per model, steering


def test_every_overview_row_shows_a_verdict_badge_in_its_colour(page: PageResult) -> None:
    assert all(row[2] for row in page.facts["first"]["rows"])  # v1 and v1_reversed: one test
    img = decode_png(page.shots["overview"])
    for verdict in {row[2] for row in page.facts["first"]["rows"]}:  # the badge names it
        assert _share_near(img, VERDICT_COLOURS[verdict]) > 1e-4, verdict


def test_the_trust_scatter_is_drawn(page: PageResult) -> None:
    img = decode_png(page.shots["trust"])
    assert _share_near(img, "#555555", tol=20) > 1e-4  # the threshold lines


def test_every_chart_is_laid_out_with_a_size(page: PageResult) -> None:
    f = page.facts
    assert f["charts"] >= 2 * 3 + 2 and f["drawn"] == f["charts"]
    assert f["bars"] > 2 * 19 and f["cells"] == 2 * 100 and f["diag"] == 2 * 10


def test_screenshots_are_not_blank(page: PageResult) -> None:
    for name, png in page.shots.items():
        img = decode_png(png)
        assert img.shape[0] > 200 and img.shape[1] > 600, name
        rgb = img[..., :3].reshape(-1, 3).astype(np.int64)
        ink = float((rgb < 235).any(axis=1).mean())
        colours = len(np.unique(rgb @ np.array([1 << 16, 1 << 8, 1])))
        assert ink > 0.03 and colours > 50, (name, ink, colours)


def test_profile_bars_are_drawn_in_their_value_colours(page: PageResult) -> None:
    img = decode_png(page.shots["profiles"])
    for value in ("Universalism", "Power", "Stimulation", "Self_Direction"):
        assert _share_near(img, VALUE_COLOURS[value]) > 1e-4, value


def test_human_percentiles_are_painted_on_both_sides_of_the_median(page: PageResult) -> None:
    img = decode_png(page.shots["humans"])
    # The bars are drawn at 0.8 opacity over white: that blend is what reaches the screen.
    below, above = (tuple(round(0.8 * c + 0.2 * 255) for c in _rgb(x)) for x in
                    (svg.PERCENTILE_BELOW, svg.PERCENTILE_ABOVE))
    assert _share_near(img, "#{:02x}{:02x}{:02x}".format(*below)) > 0.001
    assert _share_near(img, "#{:02x}{:02x}{:02x}".format(*above)) > 0.001
    assert page.facts["pct"] == 2 * 19 and page.facts["median"] == 19


def test_heatmap_is_painted_with_its_diagonal_outlined(page: PageResult) -> None:
    img = decode_png(page.shots["steering"])
    rgb = img[..., :3].astype(np.int32)
    reddish = ((rgb[..., 0] - rgb[..., 2]) > 40).mean()
    bluish = ((rgb[..., 2] - rgb[..., 0]) > 40).mean()
    black = (rgb.max(axis=-1) < 30).mean()
    assert reddish > 0.01 and bluish > 0.005 and black > 0.002, (reddish, bluish, black)


def test_png_decoder_reads_every_filter_type() -> None:
    """decode_png undoes all five PNG row filters (Chromium's slow path uses Paeth)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    rows = []
    prev = np.zeros(21, np.int32)
    for y, f in enumerate(range(5)):
        cur = img[y].reshape(-1).astype(np.int32)
        left = np.concatenate([np.zeros(3, np.int32), cur[:-3]])
        ul = np.concatenate([np.zeros(3, np.int32), prev[:-3]])
        p = left + prev - ul
        pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, ul))
        pred = [0 * cur, left, prev, (left + prev) // 2, paeth][f]
        rows.append(bytes([f]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 5, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    np.testing.assert_array_equal(decode_png(png), img)


@pytest.fixture(scope="module")
def reference_report(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A 2-model run's report with the paper's 33 recorded models as reference rows."""
    root = make_run(tmp_path_factory.mktemp("reference") / "run", data_dir,
                    personas=(), steer=())
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("VPBATCH_CACHE")
    os.environ["VPBATCH_CACHE"] = str(cache)  # never the user's cache
    try:
        _, html = write_report(root, data=data_dir, n_boot=0, reference="paper")
    finally:
        if old is None:
            del os.environ["VPBATCH_CACHE"]
        else:
            os.environ["VPBATCH_CACHE"] = old
    return html


@pytest.mark.slow
def test_reference_rows_are_greyed_among_the_models(reference_report: Path) -> None:
    res = render_page(reference_report, {"overview": "#overview"}, height=1400)
    rows = res.facts["first"]["rows"]
    assert sum(ref for _, ref, _ in rows) == 33 and len(rows) == 35
    assert {"alpha-7b", "beta-chat"} <= {name for name, ref, _ in rows if not ref}
    assert all(name.endswith(" (paper)") for name, ref, _ in rows if ref)
    assert all(badge is None for _, ref, badge in rows if ref)  # no panel for reference rows
    keep = os.environ.get("VPBATCH_SCREENSHOTS")
    if keep:
        (Path(keep) / "report-reference.png").write_bytes(res.shots["overview"])
    img = decode_png(res.shots["overview"])
    assert img.shape[0] > 35 * 18  # every row drawn


@pytest.mark.slow
def test_a_value_heading_sorts_the_rows_by_that_value(reference_report: Path) -> None:
    import re

    html = reference_report.read_text()
    power = PVQ.index("Power")
    res = render_page(reference_report, {}, fragment=f"ovs-{power}")
    order = [name for name, _, _ in res.facts["first"]["rows"]]
    # Each row's Power cell, read back from the page's own text: highest first.
    cells = dict(re.findall(r'<span title="([^"]+)">[^<]+(?:<b [^>]*>[^<]*</b>)?</span>'
                            r'((?:<span[^>]*>[^<]*</span>){10})', html))
    values = [float(re.findall(r">([^<]*)</span>", cells[n])[power]) for n in order]
    assert values == sorted(values, reverse=True)
    assert len(order) == 35
