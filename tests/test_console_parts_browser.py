"""The operator sees triggered parts on the console: counts of OK, NG and missed parts, and a
missed part stands out (a trigger while the camera is gone is never silent)."""

from __future__ import annotations

import socket
import threading

import pytest
from browser_helpers import needs_chromium
from console_helpers import free_port
from daemon_helpers import FlakySource, wait_until

pytestmark = needs_chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_console_counts_parts_and_flags_a_missed_one(page, tmp_path, make_daemon):
    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon.app import open_outputs

    port = free_port()
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "source": {"uri": "0"},
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.2},
            "trigger": {"mode": "demand"},
            "console": {"enabled": True, "port": port},
        }
    )
    source = FlakySource(die_after=150, refusals=10**9, period_s=0.01)
    daemon = make_daemon(config, source=source, outputs=open_outputs(config))
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: listening(port), timeout=30)
        assert wait_until(lambda: source.index > 5)
        daemon.trigger(part_id=1)  # the camera is up: an OK part
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("() => !document.querySelector('#parts').hidden")
        page.wait_for_function(
            "() => document.querySelector('#parts').textContent.includes('1 OK')"
        )
        assert "warn" not in (page.get_attribute("#parts", "class") or "")
        assert wait_until(lambda: daemon.status.faults.active().get("camera"), timeout=30)
        daemon.trigger(part_id=2)  # the camera is gone: a missed part
        page.wait_for_function("() => document.querySelector('#parts').dataset.missed === '1'")
        text = page.inner_text("#parts")
        assert "2 triggered" in text and "1 OK" in text and "1 missed" in text
        assert "warn" in page.get_attribute("#parts", "class")
    finally:
        stop.set()
        thread.join(timeout=30)
