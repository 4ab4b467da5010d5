"""The report: Markdown and JSON summaries, and report.html rendered in headless Chromium with its
tables and SVG plots in the rendered page."""

import json
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from spiral.bench.metrics import EpisodeMetrics
from spiral.bench.report import write_report
from spiral.bench.store import Appender, RunFolder

CHROMIUM = "/usr/bin/chromium"
METHODS = ("oneshot", "stepwise", "closed-loop")
BASE = EpisodeMetrics(
    "t", "closed-loop", "short", "tabletop", "oracle", "completed", True, 1.0, 1.0, 1.0, 0, 0.0, 1.0, 0.99, 0.98, 1.0,
    2, 2, 2, 0, 0, 3, 0, 0, 0.9, (0.4, 0.9), 1.5, 1.0, 0.3, 0.2,
)  # fmt: skip


@pytest.fixture
def run_folder(tmp_path):
    """Three methods x three levels, 4 episodes each, success falling with the horizon."""
    rng = np.random.default_rng(0)
    folder = RunFolder(tmp_path / "run")
    folder.claim({"tasks": "x"}, {"tasks_source": "tabletop-standard", "methods": list(METHODS)})
    with Appender(folder.results_path) as out:
        for m, method in enumerate(METHODS):
            for lv, level in enumerate(("short", "medium", "long")):
                for i in range(4):
                    ok = i < 4 - lv - (2 - m)
                    critic = float(rng.uniform(0.6, 1.0) if ok else rng.uniform(0.0, 0.5)) if method == "closed-loop" else None
                    out.append(
                        replace(BASE, task=f"{level}-{i}", method=method, level=level, goal_success=ok, critic_mean=critic)
                    )
    return folder.root


def test_markdown_and_json_summaries(run_folder):
    report, files = write_report(run_folder)
    table = files.markdown.read_text().splitlines()
    assert table[0].startswith("| method | level | n | success") and len(table) == 2 + 3 * 4
    assert "| closed-loop | short | 4 | 100% [51%, 100%] |" in files.markdown.read_text()
    cli = subprocess.run(
        [sys.executable, "-m", "spiral.bench", "report", str(run_folder), "--json"], capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0, cli.stderr
    summary = json.loads(cli.stdout)
    assert summary["episodes"] == 36 and len(summary["groups"]) == 12
    closed = next(g for g in summary["groups"] if g["method"] == "closed-loop" and g["level"] == "all")
    assert closed["success"]["value"] == pytest.approx(9 / 12) and len(closed["critic_success"]) == 9


def chromium(*args, tmp_path):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    try:
        return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium (Debian's package)")


def test_report_renders_in_headless_chromium_with_tables_and_plots(run_folder, tmp_path):
    _, files = write_report(run_folder)
    url = files.html.resolve().as_uri()
    dom = chromium("--dump-dom", url, tmp_path=tmp_path).stdout
    assert "<h1>ActWM-Bench report</h1>" in dom
    table = re.search(r'<table id="results">.*?</table>', dom, re.S).group(0)
    assert table.count("<tr") == 1 + 12 and "100% [51%, 100%]" in table
    plot = re.search(r'<svg[^>]*id="success-vs-horizon".*?</svg>', dom, re.S).group(0)
    assert plot.count("<polyline") == 3 and plot.count("<circle") == 9
    assert {m for m in METHODS} == set(re.findall(r'data-name="([^"]+)"', plot))
    hist = re.search(r'<svg[^>]*id="critic-closed-loop".*?</svg>', dom, re.S).group(0)
    assert hist.count('class="bar"') == 20 and "judged successful (n=9)" in hist and "judged failed (n=3)" in hist
    assert 'id="critic-stepwise"' not in dom  # no critic in the stepwise baseline

    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1400,1600", url, tmp_path=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    first_series = (np.abs(pixels - (0x1F, 0x77, 0xB4)).sum(1) < 30).sum()  # the plots' first colour was painted
    assert first_series > 200
