"""In headless Chromium: the console of a daemon with two stations shows a tile for each, and
the station a click chooses full-size, its verdict, events and actions its own.
``PI_INSPECT_SCREENSHOTS=1`` saves the page into docs/ (it illustrates docs/stations.md)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from browser_helpers import needs_chromium
from console_helpers import free_port, listening
from daemon_helpers import ERROR_BGR, OK_BGR, ScriptedClassifier, script, wait_until, write_video
from gpiozero.pins.mock import MockFactory

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon.cell import Cell

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = needs_chromium


@pytest.fixture
def cell_url(tmp_path):
    """Two stations: ``left`` sees a seam error in every frame, ``right`` only good seams."""
    videos = {
        "left": write_video(tmp_path / "left.avi", script((ERROR_BGR, 60))),
        "right": write_video(tmp_path / "right.avi", script((OK_BGR, 60))),
    }
    pins = {"left": (17, 27, 22), "right": (5, 6, 13)}
    port = free_port()
    stations = {
        name: {
            "source": {"uri": str(videos[name]), "loop": True, "realtime": True},
            "gpio": dict(zip(("green", "red", "amber"), pins[name], strict=True)),
        }
        for name in videos
    }
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.5},
            "console": {"enabled": True, "port": port, "fps": 5.0},
            "stations": stations,
        }
    )
    cell = Cell(
        config,
        pin_factory={name: MockFactory() for name in videos},
        classifier_loader=lambda _model: ScriptedClassifier(),
    )
    stop = threading.Event()
    runner = threading.Thread(target=cell.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert wait_until(lambda: listening(port), timeout=30)
        yield f"http://127.0.0.1:{port}", tmp_path / "state" / "stations"
    finally:
        stop.set()
        runner.join(timeout=30)


def test_each_station_has_a_tile_and_a_click_shows_that_station_full_size(browser, cell_url):
    url, state = cell_url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(url)
        page.wait_for_selector("#stations:not([hidden])")
        page.wait_for_selector(".tile[data-station=left][data-verdict=defect]")
        page.wait_for_selector(".tile[data-station=right][data-verdict=ok]")
        assert page.locator("#stations .tile").count() == 2
        # the first station is shown full-size: its defect, its events, its live frames
        page.wait_for_selector(".tile[data-station=left][aria-pressed=true]")
        page.wait_for_selector("#verdict[data-verdict=defect]")
        page.wait_for_selector("#events li[data-kind=start]")
        page.wait_for_selector("#live-img[data-frame]:not([data-frame=''])")
        page.wait_for_selector(".tile[data-station=right] small:has-text('fps')")
        if os.environ.get("PI_INSPECT_SCREENSHOTS"):
            page.screenshot(path=str(DOCS / "console_stations.png"), full_page=True)

        page.click(".tile[data-station=right]")
        page.wait_for_selector(".tile[data-station=right][aria-pressed=true]")
        page.wait_for_selector("#verdict[data-verdict=ok]")
        assert page.text_content("#station-name") == "right"
        page.wait_for_selector("#events-total:text-is('(0)')")
        assert page.locator("#events li").count() == 0

        # an action from the page reaches the station shown, not the other one
        page.click("#snap")
        assert wait_until(lambda: any((state / "right" / "snapshots").glob("*.jpg")), timeout=15)
        assert not any((state / "left" / "snapshots").glob("*request*"))
    finally:
        context.close()
