"""Real PDF of the assessment report: the shipped example printed by headless Chromium, then rasterised
(pdftoppm) and read back (pdftotext) to check the PDF has pages, ink and the headline figures.
Skipped, with the reason, only when chromium or poppler-utils are not installed
(``scripts/system-deps.sh`` installs them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxwarden.assess.config import load_config
from voxwarden.assess.run import CHROMIUM_NAMES, print_pdf, run_assessment

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "assessment.yaml"

_CHROMIUM = next((n for n in CHROMIUM_NAMES if shutil.which(n)), None)
_POPPLER = shutil.which("pdftoppm") and shutil.which("pdftotext")
needs_tools = pytest.mark.skipif(
    _CHROMIUM is None or not _POPPLER,
    reason="real PDF test needs chromium and poppler-utils (pdftoppm, pdftotext): run scripts/system-deps.sh",
)


def _read_png(path: Path) -> np.ndarray:
    """Decode a PNG to a grey array with PyAV (a runtime dependency already), no imaging library needed."""
    import av

    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    return frame.to_ndarray(format="gray").astype(np.float64)


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, timeout=60, check=True)
    return re.sub(r"\s+", " ", out.stdout.decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def example_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The shipped example assessed twice against one store: the second report (printed) is a
    re-assessment with a comparison section."""
    tmp = tmp_path_factory.mktemp("assess-pdf")
    first = load_config(EXAMPLE)
    first.data_dir = tmp / "store"
    assert first.live is not None
    first.live.seconds = 3.0  # the first run only has to exist
    run_assessment(first, tmp / "first", pdf=False)
    cfg = load_config(EXAMPLE)
    cfg.data_dir = tmp / "store"
    out = tmp / "out"
    o = run_assessment(cfg, out)
    figs = json.loads(o.figures_json.read_text(encoding="utf-8"))
    return out, figs


@needs_tools
def test_example_prints_a_real_pdf(example_report: tuple[Path, dict]) -> None:
    out, figs = example_report
    pdf = out / "report.pdf"
    assert figs["pdf"]["written"] is True, figs["pdf"]["note"]
    assert figs["pdf"]["note"].startswith("printed with ")
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
    assert "report.pdf printed from this page" in (out / "report.html").read_text(encoding="utf-8")

    png_dir = out / "png"
    png_dir.mkdir()
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(png_dir / "page")],
                   capture_output=True, timeout=120, check=True)
    pages = sorted(png_dir.glob("page-*.png"))
    assert len(pages) >= 3  # the one-page summary, then the measured sections, controls and findings
    first = _read_png(pages[0])
    assert first.shape[0] > 300 and first.shape[1] > 300  # A4/Letter at 50 dpi is ~410 x 580
    assert first.std() > 10.0, "first page is blank"
    assert (first < 128).mean() > 0.005, "first page has almost no dark (text) pixels"
    # every chart embedded in the HTML (data: PNG) must come through as an image in the PDF
    charts = len(re.findall(r'src="data:image/png;base64,', (out / "report.html").read_text(encoding="utf-8")))
    assert charts >= 7  # DET (system, codec, length), histogram, watermark, live latency, previous vs now
    for page in pages[1:]:
        assert _read_png(page).std() > 5.0, f"{page.name} is blank"
    if shutil.which("pdfimages"):  # same package (poppler-utils)
        listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, timeout=60, check=True)
        rows = [ln for ln in listing.stdout.decode().splitlines()[2:] if ln.split()[2:3] == ["image"]]
        assert len(rows) >= charts


@needs_tools
def test_pdf_text_carries_headline_figures(example_report: tuple[Path, dict]) -> None:
    out, figs = example_report
    text = _text(out / "report.pdf")
    compact = re.sub(r"\s+", "", text)  # table cells wrap long ids ("CAC18-LIVE-" / "MONITORING")
    assert figs["run_id"] in compact
    assert f"overall risk: {figs['risk']}" in text.lower()
    eer = figs["detection"]["eer"]
    assert eer is not None
    shown = [f"{100 * eer:.1f} %", f"{100 * eer:.1f}%", f"{eer:.3f}", f"{eer:.2f}"]
    assert any(re.search(rf"EER {re.escape(s)}", text) for s in shown), (
        f"EER {eer} (figures.json) not found in the PDF text as any of {shown}")
    assert "CAC18-LOG-RETENTION" in compact
    # the summary says what changed since the previous run; the sections are there with their figures
    prev = figs["comparison"]["previous_run_id"]
    assert prev and f"Comparedwithrun{prev}" in compact
    for heading in ("Since the last assessment", "Live monitoring", "Per codec degradation", "Per clip length",
                    "Re-assessment: what changed", "Control status changes"):
        assert heading in text, heading
    p95 = figs["live"]["alert_latency_s_p95"]
    assert p95 is not None and f"{p95:.3f}" in text
    assert f"{100 * figs['detection']['per_condition']['opus:16k']['eer']:.1f} %" in text
    n_cmp = len(figs["comparison"]["figures"])
    assert n_cmp >= 10 and text.count("unchanged") + text.count("improved") + text.count("regressed") >= n_cmp
    assert figs["findings"]
    for item in figs["findings"]:
        assert item["id"] in compact


@needs_tools
def test_print_pdf_replaces_stale_file_and_reports_timeout(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    html.write_text("<html><body><h1>voxwarden pdf check</h1></body></html>", encoding="utf-8")
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(b"stale, not a pdf")
    ok, note = print_pdf(html, pdf, timeout=120)
    assert ok, note
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert "voxwarden pdf check" in _text(pdf)
    ok, note = print_pdf(html, pdf, timeout=0.01)
    assert not ok and note == "PDF skipped: chromium timed out after 0.01 s"
    assert not pdf.exists()  # a failed print leaves no report.pdf that could pass for this run's
