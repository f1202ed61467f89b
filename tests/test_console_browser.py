"""End to end in headless Chromium: the console of a daemon running the demo model on a rendered
seam video, with gpiozero's MockFactory pins. ``PI_INSPECT_SCREENSHOTS=1`` saves the page's
screenshots into docs/ (they illustrate docs/console.md)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import needs_chromium
from console_helpers import TOKEN, free_port, listening, running_console
from daemon_helpers import wait_until

from pi_inspect.edge.sources import Frame, OpenCVSource

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = needs_chromium
RED_PIN = 27


class PacedVideo:
    """A video file played at camera speed, looping, that can be frozen on one frame (so a test
    decides when the line is clean)."""

    live = True
    name = "paced seam video"

    def __init__(self, path: Path, fps: float, hold_frame: int) -> None:
        self._video = OpenCVSource(str(path), live=False, loop=True)
        self._period = 1.0 / fps
        self._hold_frame = hold_frame
        self._held: np.ndarray | None = None
        self._next = time.monotonic()
        self._index = 0
        self.freeze = threading.Event()

    def open(self) -> None:
        self._video.open()

    def read(self) -> Frame | None:
        self._next = max(self._next + self._period, time.monotonic())
        time.sleep(max(0.0, self._next - time.monotonic()))
        self._index += 1
        if self.freeze.is_set() and self._held is not None:
            return Frame(self._index, time.time(), self._held)
        frame = self._video.read()
        if frame is None:
            return None
        if frame.index % self._length == self._hold_frame:
            self._held = frame.image.copy()
        return Frame(self._index, frame.timestamp, frame.image)

    @property
    def _length(self) -> int:
        return max(1, self._video._length)  # frames per pass, known once opened

    def close(self) -> None:
        self._video.close()


def clean_frame(labels: np.ndarray, margin: int = 12) -> int:
    """A frame with nothing but good seam ``margin`` frames either side (column 0: good)."""
    good = labels[:, 0]
    for i in range(margin, len(good) - margin):
        if good[i - margin : i + margin + 1].all():
            return i
    raise AssertionError("the rendered video has no clean stretch")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(60_000)  # the model loads after the console starts
    yield tab
    context.close()


def eager_candidate(dest: Path) -> Path:
    """The demo bundle, version 2, with an error threshold of 0: it alarms on every frame."""
    import shutil

    from pi_inspect.edge.bundle import default_bundle_dir, read_manifest, write_manifest

    shutil.copytree(default_bundle_dir(), dest)
    data = dict(read_manifest(dest).raw)
    data["version"], data["thresholds"] = "2", {**data["thresholds"], "error": 0.0}
    write_manifest(dest, data)
    return dest


@pytest.fixture
def station(tmp_path):
    """A daemon on the demo bundle with the console enabled, running in a thread."""
    from gpiozero.pins.mock import MockFactory

    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon
    from pi_inspect.edge.synth import render_video

    truth = render_video(tmp_path / "seam.mp4", frames=180, seed=3, size=(320, 240), fps=15.0)
    source = PacedVideo(truth.path, fps=15.0, hold_frame=clean_frame(truth.labels))
    port = free_port()
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "gpio": {"latch": True, "red_mode": "hold"},
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.5},
            "console": {"enabled": True, "port": port, "fps": 5.0},
            # a candidate that calls an error on every frame, in shadow: the page says so
            "shadow": {"bundle": str(eager_candidate(tmp_path / "candidate")), "collect": False},
        }
    )
    pins = MockFactory()
    daemon = Daemon(config, source=source, pin_factory=pins)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: listening(port), timeout=60)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "source": source,
            "pins": pins,
            "review": tmp_path / "state" / "review",
            "snapshots": tmp_path / "state" / "snapshots",
        }
    finally:
        stop.set()
        thread.join(timeout=30)


def live_image_bytes(page) -> str:
    """A digest of the pixels the live view shows right now; a frame still loading has no
    pixels yet, so the digest waits for it (polled in the page, one read per poll)."""
    return page.wait_for_function(
        """() => {
            const img = document.querySelector('#live-img');
            if (!img.complete || !img.naturalWidth) return null;
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let h = 0;
            for (let i = 0; i < data.length; i += 7) h = (h * 31 + data[i]) >>> 0;
            return `${canvas.width}x${canvas.height}:${h}`;
        }"""
    ).json_value()


def shoot(page, name: str) -> None:
    if os.environ.get("PI_INSPECT_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / name), full_page=True)


def test_operator_watches_acknowledges_and_flags_a_wrong_verdict(page, station):
    red = station["pins"].pin(RED_PIN)
    page.goto(station["url"])
    page.wait_for_selector("body[data-ready=true]")

    # the live image changes
    page.wait_for_function("() => document.querySelector('#live-img').dataset.frame !== ''")
    first_frame = page.get_attribute("#live-img", "data-frame")
    first_image = live_image_bytes(page)
    page.wait_for_function(
        "(f) => !['', f].includes(document.querySelector('#live-img').dataset.frame)",
        arg=first_frame,
    )
    assert wait_until(lambda: live_image_bytes(page) != first_image, timeout=30)

    # an event appears, with its heat-map snapshot
    page.wait_for_function(
        """() => [...document.querySelectorAll('#events li .thumb img')]
                 .some((img) => img.complete && img.naturalWidth > 0)""",
        timeout=60_000,
    )
    page.click("#heat")
    page.wait_for_function(
        "() => document.querySelector('#live-caption').textContent.includes('heat')"
    )
    shoot(page, "console.png")

    # an event names its alarm condition ("break present", "length absent"), not the label
    condition = page.inner_text("#events li .label")  # "break present — the thread is cut"
    assert condition.split(" — ")[0].endswith((" present", " absent")), condition

    # the line runs clean: the red LED stays on (latched) until acknowledged, and the page
    # says so instead of OK
    station["source"].freeze.set()
    page.wait_for_selector("#verdict[data-verdict=latched]")
    page.wait_for_selector("#led-red[data-on=true]")
    assert "press Acknowledge" in page.inner_text("#verdict")
    assert red.state == 1
    page.click("#ack")
    page.wait_for_selector("#led-red[data-on=false]")
    page.wait_for_selector("#verdict[data-verdict=ok]")
    assert red.state == 0
    assert wait_until(lambda: page.get_attribute("#led-green", "data-on") == "true")

    # "this verdict is wrong" keeps the frame and the model's output for relabelling
    page.click("#wrong")
    page.wait_for_selector("body[data-last-review]")
    item = station["review"] / page.get_attribute("body", "data-last-review")
    assert (item / "frame.jpg").read_bytes()[:2] == b"\xff\xd8"
    kept = json.loads((item / "item.json").read_text())
    assert set(kept["scores"]) == {"good", "error", "break", "length"}
    assert kept["model"]["sha256"] and kept["thresholds"]

    # the candidate in shadow, as the stats report it
    page.wait_for_function("() => Number(document.querySelector('#shadow').dataset.frames) > 0")
    shadow = page.inner_text("#shadow")
    assert shadow.startswith("shadow: ") and " 2 agrees on " in shadow and "error raised" in shadow

    # ... or keeps it as a sample for the next model, with the labels that are right
    page.check("#right-labels input[name=error]")
    page.click("#collect-form button[type=submit]")
    page.wait_for_selector("body[data-last-sample]")
    sample = station["snapshots"] / page.get_attribute("body", "data-last-sample")
    sidecar = json.loads(sample.with_suffix(".json").read_text())
    assert sidecar["sample"] == "operator" and sidecar["right_labels"] == ["error"]
    shoot(page, "console_learning.png")  # docs/learning-loop.md

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.wait_for_timeout(500)
    shoot(page, "console_phone.png")


def test_off_loopback_the_page_asks_for_the_token_and_refuses_actions_without_it(browser, tmp_path):
    with running_console(tmp_path, host="127.0.0.2") as (_, server):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(server.url)
        page.wait_for_selector("#login:not([hidden])")
        refused = page.evaluate(
            """async () => (await fetch('/api/action/acknowledge', {method: 'POST',
                 headers: {'X-Pi-Inspect': '1'}, body: '{}'})).status"""
        )
        assert refused == 401
        page.fill("#token", TOKEN)
        page.click("#login-form button")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("#ack:not([disabled])")
        page.click("#ack")
        page.wait_for_function(
            "() => document.querySelector('#msg').textContent === 'acknowledged'"
        )
        context.close()


def test_changing_one_threshold_sends_only_that_one_and_leaves_the_others_exactly_as_they_were(
    browser, tmp_path
):
    from console_helpers import model_state, receiver

    thresholds = {"error": 0.5, "break": 0.4512, "length": 0.3204}
    daemon = receiver()
    daemon.thresholds = dict(thresholds)
    with running_console(tmp_path, daemon) as (console, server):
        console.publish_state(
            model_state(thresholds=thresholds, alarms={"length": "below"})
        )
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(server.url)
        page.wait_for_selector("#threshold-inputs input[name=length]:not([disabled])")
        assert page.input_value("#threshold-inputs input[name=length]") == "0.3204"
        page.fill("#threshold-inputs input[name=error]", "0.6")
        page.click("#thresholds-form button")
        page.wait_for_function(
            "() => document.querySelector('#msg').textContent.startsWith('thresholds now')"
        )
        context.close()
    assert daemon.calls == [("thresholds", {"error": 0.6})]
    assert daemon.thresholds == {"error": 0.6, "break": 0.4512, "length": 0.3204}


DECLARED = (
    ("good", "never", "the seam is flawless"),
    ("error", "present", "a widened or looped stitch"),
    ("break", "present", "the thread is cut"),
    ("length", "absent", "stitch pitch is 2 mm"),
    ("anomaly", "present", "anything unlike the good parts it was trained on"),
)
THRESHOLDS = {"error": 0.5, "break": 0.5, "length": 0.3204, "anomaly": 0.81}
ALARMS = {"error": "above", "break": "above", "length": "below", "anomaly": "above"}


def declared_state(verdict: str, active: tuple[str, ...], lamps: dict[str, bool], **fields):
    """A state of a model whose data set declared what each label means and when it alarms."""
    from pi_inspect.edge.events import ModelInfo, State

    labels = tuple(label for label, _, _ in DECLARED)
    model = ModelInfo("seam", "3", "ab" * 32, labels, DECLARED)
    conditions = tuple(model.condition(label) for label in active)
    return State(
        verdict, active, model, time.time(), thresholds=THRESHOLDS, alarms=ALARMS,
        lamps=lamps, conditions=conditions, **fields,
    )  # fmt: skip


def length_absent_event(kind: str):
    from pi_inspect.edge.events import DefectEvent

    now = time.time()
    return DefectEvent(
        "e1", kind, "length", now - 3, now if kind == "end" else None, 0.0, 35, 100,
        last_frame=134, model_sha256="ab" * 32, condition="length absent",
        meaning="stitch pitch is 2 mm",
    )  # fmt: skip


def text(page, selector: str) -> str:
    return page.inner_text(selector)


def test_the_page_speaks_of_length_absent_with_its_meaning_and_shows_a_latched_alarm_as_latched(
    browser, tmp_path
):
    from console_helpers import receiver

    from pi_inspect.edge.events import FrameResult

    daemon = receiver()
    red = {"green": False, "red": True, "amber": False, "relay": True}
    with running_console(tmp_path, daemon) as (console, server):
        # length is absent on this frame; anomaly is raised but held by the debounce: this
        # frame's 0.68 does not alarm against > 0.81
        console.publish_state(declared_state("defect", ("length", "anomaly"), red))
        scores = {"good": 0.2, "error": 0.1, "break": 0.05, "length": 0.0, "anomaly": 0.68}
        console.publish_result(FrameResult(134, time.time(), scores, 4.0, ("length", "anomaly")))
        console.publish_event(length_absent_event("start"))
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(server.url)
        page.wait_for_selector("#verdict[data-verdict=defect]")
        header = text(page, "#verdict")
        assert "length absent — stitch pitch is 2 mm" in header
        assert "anomaly present — anything unlike the good parts" in header

        # the scores: the condition with its meaning, and the truth about each row
        page.wait_for_selector("#scores tr[data-label=length][data-alarm=alarm]")
        length = text(page, "#scores tr[data-label=length]")
        assert "length absent" in length and "stitch pitch is 2 mm" in length
        assert "< 0.32" in length and "ALARM" in length
        anomaly = text(page, "#scores tr[data-label=anomaly]")
        assert page.get_attribute("#scores tr[data-label=anomaly]", "data-alarm") == "held"
        assert "0.68" in anomaly and "> 0.81" in anomaly and "held by debounce" in anomaly
        assert "ALARM" not in anomaly
        assert "anomaly present is held" in text(page, "#scores-note")
        assert "never" in text(page, "#scores tr[data-label=good]")

        # the event: the condition with its meaning, its lowest score (it alarms below)
        page.wait_for_selector("#events li[data-kind=start]")
        console.publish_event(length_absent_event("end"))
        page.wait_for_selector("#events li[data-kind=end]")
        event = text(page, "#events li")
        assert "length absent — stitch pitch is 2 mm" in event
        assert "lowest score 0.00, 35 frames below the threshold" in event
        assert "peak" not in event

        # the defect ended; with gpio.latch red and the relay stay on: latched, not OK
        console.publish_state(declared_state("ok", (), red, latched=("length absent",)))
        page.wait_for_selector("#verdict[data-verdict=latched]")
        latched = text(page, "#verdict")
        assert latched.upper().startswith("LATCHED")
        assert "length absent — stitch pitch is 2 mm" in latched
        assert "press Acknowledge" in latched
        page.click("#ack")
        page.wait_for_function(
            "() => document.querySelector('#msg').textContent === 'acknowledged'"
        )
        assert ("acknowledge", None) in daemon.calls
        console.publish_state(
            declared_state("ok", (), {"green": True, "red": False, "amber": False, "relay": False})
        )
        page.wait_for_selector("#verdict[data-verdict=ok]")
        assert text(page, "#verdict").upper() == "OK"
        context.close()
