"""The HTML report in a real headless browser (Chromium): it renders offline, shows the table and the plots, and
logs nothing to the console. Chromium comes from the Debian packages (.ci/run installs it where apt works)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.reporting import html

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1280, 3200)  # tall enough to hold the table and the first plots


def chromium() -> str:
    found = os.environ.get("HARNESS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium to render the report in: install it (`apt-get install chromium` on Debian; "
                    ".ci/run does where apt works) or point HARNESS_CHROMIUM at a Chromium binary")
    return found


@dataclass
class Rendered:
    pixels: np.ndarray  # (height, width, channels) uint8 screenshot
    dom: str  # the DOM after parsing, as Chromium serialises it
    console: list[str]  # console messages Chromium logged (JavaScript errors included)


def render(browser: str, page: Path, work: Path) -> Rendered:
    """Screenshot and DOM of a local page; Chromium's log goes to stderr, where console messages read CONSOLE."""
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
              "--enable-logging=stderr", "--log-level=0", f"--user-data-dir={work / 'profile'}",
              # nothing may come from the network: a page that needed it would render incomplete
              "--host-resolver-rules=MAP * ~NOTFOUND"]
    shot = work / "shot.png"
    logs = []
    for extra in ([f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}"], ["--dump-dom"]):
        done = subprocess.run([*common, *extra, page.resolve().as_uri()], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
        logs.append(done.stderr)
        dom = done.stdout
    console = [line for log in logs for line in log.splitlines() if ":CONSOLE" in line]
    return Rendered(read_png(shot), dom, console)


def read_png(path: Path) -> np.ndarray:
    """The pixels of an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes): chunks, inflate, unfilter."""
    data, pos, chunks = path.read_bytes(), 8, []
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body, pos = data[pos + 8:pos + 8 + length], pos + 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and not interlace, "only 8-bit RGB(A) non-interlaced PNGs"
        elif kind == b"IDAT":
            chunks.append(body)
    raw, channels = zlib.decompress(b"".join(chunks)), 3 if colour == 2 else 4
    stride = width * channels
    out, previous = np.zeros((height, stride), dtype=np.uint8), np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: a running sum along each channel
            row = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            row = line + previous
        else:  # Average, Paeth: sequential along the row
            row = np.frombuffer(_unfilter(kind, bytearray(line.tobytes()), previous.tobytes(), channels),
                                dtype=np.uint8)
        out[y], previous = row, row
    return out.reshape(height, width, channels)


def _unfilter(kind: int, row: bytearray, up: bytes, bpp: int) -> bytes:
    for i in range(len(row)):
        left, corner = (row[i - bpp], up[i - bpp]) if i >= bpp else (0, 0)
        if kind == 3:
            predicted = (left + up[i]) >> 1
        else:
            pa, pb, pc = abs(up[i] - corner), abs(left - corner), abs(left + up[i] - 2 * corner)
            predicted = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else corner)
        row[i] = (row[i] + predicted) & 255
    return bytes(row)


class Elements(HTMLParser):
    """Counts of the elements that show a report: tables and their body rows, plots and what they draw."""

    def __init__(self) -> None:
        super().__init__()
        self.tables = self.rows = self.plots = self.drawn_plots = 0
        self.cells: list[str] = []
        self._in_plot = self._drew = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables += 1
        elif tag == "tr":
            self.rows += 1
        elif tag == "td":
            self._in_cell = True
        elif tag == "svg" and ("class", "plot") in attrs:
            self.plots, self._in_plot, self._drew = self.plots + 1, True, False
        elif self._in_plot and tag in ("polyline", "circle"):
            self._drew = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self._in_plot:
            self.drawn_plots += self._drew
            self._in_plot = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)


def parse(dom: str) -> Elements:
    parser = Elements()
    parser.feed(dom)
    return parser


def colour_pixels(pixels: np.ndarray, hex_colour: str, tolerance: int = 40) -> int:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels[..., :3].astype(int) - target).max(axis=-1) <= tolerance).sum())


def test_the_browser_checks_can_fail(browser: str, tmp_path: Path) -> None:
    """What the report test relies on: a blank page reads blank, a console error is caught, the decoder is right."""
    page = tmp_path / "blank.html"
    page.write_text('<!DOCTYPE html><html><body style="background:#0072B2"><script>console.error("boom");'
                    "missing();</script></body></html>")
    shown = render(browser, page, tmp_path)
    assert shown.pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    assert colour_pixels(shown.pixels, "#0072B2", tolerance=0) == WINDOW[0] * WINDOW[1]  # every pixel, exactly
    assert any('"boom"' in line for line in shown.console)
    assert any("missing is not defined" in line for line in shown.console)
    assert parse(shown.dom).plots == 0


@pytest.fixture(scope="module")
def browser() -> str:
    """Chromium, or a skip saying how to get it (before any fine-tuning is spent on records)."""
    return chromium()


@pytest.fixture(scope="module")
def real_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds of one tiny cell fine-tuned here, beside the committed smoke baselines."""
    out = tmp_path_factory.mktemp("runs")
    code = cli.main(["run", "--models", "tiny-bert", "--tasks", "syn-sst2", "--seeds", "0,1", "--epochs", "2",
                     "--max-train-samples", "128", "--max-eval-samples", "64", "--threads", "1", "--output", str(out)])
    assert code == 0
    return out


def test_html_report_renders_in_chromium(browser: str, real_records: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code = cli.main(["report", str(real_records), str(ROOT / "results" / "baselines" / "smoke"), "--format", "html",
                     "--output", str(tmp_path)])
    assert code in (0, 1)  # 1 only when the committed baselines' environment differs and something regressed
    markup = page.read_text(encoding="utf-8")
    assert "<script" not in markup and "<link" not in markup and "src=" not in markup
    shown = render(browser, page, tmp_path)
    assert shown.console == [], f"the page logged to the console: {shown.console}"
    found = parse(shown.dom)
    # the cell run here and the committed baseline of the same cell (other settings) are two rows
    assert found.tables >= 2 and len({c for c in found.cells if c.startswith("syn-sst2-tiny-bert [epochs=")}) == 2
    assert found.plots >= 3 and found.drawn_plots == found.plots, \
        f"{found.drawn_plots} of {found.plots} plots draw anything"
    non_white = int((shown.pixels[..., :3] < 235).any(axis=-1).sum())
    assert non_white > 0.02 * WINDOW[0] * WINDOW[1], f"the screenshot is nearly blank ({non_white} pixels)"
    drawn = colour_pixels(shown.pixels, html.PALETTE[0]) + colour_pixels(shown.pixels, html.PALETTE[1])
    assert drawn > 500, f"no plot drawn in the screenshot ({drawn} pixels in the plots' colours)"


def test_history_dashboard_renders_in_chromium(browser: str, tmp_path: Path) -> None:
    """The nightly dashboard of a synthetic history with a planted slowdown: tables, series drawn, the change marked
    in the plots' mark colour, nothing logged, nothing loaded from outside the page."""
    from harness.history import synthetic
    from harness.store import recordsets

    cells = synthetic.templates(recordsets.load([ROOT / "results" / "smoke-tf5"]).records)[:2]
    noise = synthetic.Noise(step_night=0.03, step_seed=0.02, metric_seed=0.01, metric_night=0.0, memory=0.01)
    synthetic.write_history(tmp_path / "h", cells, nights=20, seeds=2, noise=noise,
                            plants=[synthetic.Plant(9, cells[0].group, "train_step_s", 0.15, {"torch": "2.13.1"})])
    assert cli.main(["history", str(tmp_path / "h"), "--output", str(tmp_path), "--no-index"]) == 0
    page = tmp_path / "history.html"
    markup = page.read_text(encoding="utf-8")
    assert "<script" not in markup and "<link" not in markup and "src=" not in markup
    shown = render(browser, page, tmp_path)
    assert shown.console == [], f"the page logged to the console: {shown.console}"
    found = parse(shown.dom)
    assert found.tables in (3, 4), "since last night (with its unchanged rows folded), changes, nights"
    assert found.plots >= 4 and found.drawn_plots == found.plots
    assert any("SLOWER" in c for c in found.cells) and any("torch" in c and "2.13.1" in c for c in found.cells)
    assert colour_pixels(shown.pixels, html.PALETTE[0]) > 500, "no series drawn in the screenshot"
    assert colour_pixels(shown.pixels, html.PALETTE[1], tolerance=30) > 50, "no change marked in the screenshot"
