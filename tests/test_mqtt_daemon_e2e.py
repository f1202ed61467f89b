"""End to end: ``pi-inspect run`` with the real model bundle publishing defects on MQTT.

The daemon is a real ``pi-inspect run --config FILE`` subprocess (its MQTT output made by the
daemon itself from the ``[mqtt]`` section) watching a synthetic seam video with known defects
(``pi_inspect.edge.synth.render_video``). The video is served by the test as an MJPEG-over-HTTP stream (an
IP camera) paced at ``STREAM_FPS`` and looping, so defects keep occurring in real time at a
small CPU cost. The daemon's stdout JSON lines are the ground truth of every defect event it
produced (they are written and flushed before the event reaches the MQTT spool).

Scenario (the spool's main guarantee): the broker is stopped for 20 s while defects occur,
the daemon is SIGKILLed during the outage and started again, the broker comes back: a real
persistent-session subscriber must get every event, duplicates only as the same event id with
the same payload. Then the daemon is SIGKILLed with the broker up (the subscriber sees
``offline``, the last will), started again and stopped with SIGTERM (``stopped``, exit 0).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stream_helpers import MjpegStream

REPO = Path(__file__).resolve().parents[1]
OUTAGE_S = 20.0
STREAM_FPS = 40.0  # a camera's pace: defects keep occurring during the outage, CPU stays low
VIDEO_FRAMES = 200
BUNDLE_ENV = "PI_INSPECT_TEST_BUNDLE"


@pytest.fixture(scope="module")
def real_bundle() -> Path:
    """The real demo bundle: $PI_INSPECT_TEST_BUNDLE, else edge/assets/demo_bundle."""
    candidates = [os.environ.get(BUNDLE_ENV)] if os.environ.get(BUNDLE_ENV) else []
    candidates += [REPO / "edge" / "assets" / "demo_bundle"]
    for candidate in candidates:
        if (Path(candidate) / "manifest.json").is_file():
            return Path(candidate)
    pytest.skip(f"no model bundle: edge/assets/demo_bundle is missing (or set {BUNDLE_ENV})")


@pytest.fixture(scope="module")
def seam_stream(tmp_path_factory) -> MjpegStream:
    """A looping, paced MJPEG stream of a synthetic seam video with known defects."""
    import cv2

    from pi_inspect.edge.synth import render_video

    video = tmp_path_factory.mktemp("seam") / "seam.mp4"
    truth = render_video(video, frames=VIDEO_FRAMES, seed=3, size=(320, 240), fps=15.0)
    if not truth.occurrences:
        raise RuntimeError("the synthetic video has no defects; pick another seed")
    cap = cv2.VideoCapture(str(video))
    jpegs = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    cap.release()
    stream = MjpegStream(jpegs, STREAM_FPS)
    stream.occurrences = truth.occurrences
    yield stream
    stream.close()


def write_config(path: Path, port: int, state_dir: Path, stream_url: str) -> Path:
    path.write_text(
        f"""
state_dir = "{state_dir}"

[source]
kind = "stream"
uri = "{stream_url}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0

[pipeline]
drop = "block"

[model]
num_threads = 1

[gpio]
enabled = false

[snapshots]
enabled = false

[stdout]
enabled = true

[output]
stats_interval_s = 1.0

[device]
id = "e2e"

[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
reconnect_min_s = 1
reconnect_max_s = 1

[mqtt.discovery]
enabled = false
"""
    )
    return path


def start_daemon(config: Path, bundle: Path, stdout: Path) -> subprocess.Popen:
    exe = shutil.which("pi-inspect")
    cmd = [exe] if exe else [sys.executable, "-m", "pi_inspect.edge.cli"]
    cmd += ["run", "--config", str(config), "--bundle", str(bundle)]
    with stdout.open("wb") as out, stdout.with_suffix(".log").open("wb") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err)


def produced_events(stdout: Path) -> list[dict]:
    """The defect events a daemon printed, in order (a SIGKILL may cut the last line)."""
    events = []
    for line in stdout.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("type") == "event":
            events.append({k: v for k, v in record.items() if k != "type"})
    return events


def matches_video(starts: list[dict], occurrences, frames: int, slack: int = 3) -> bool:
    """Every start is a real defect of the looping video, and every occurrence of each pass
    the daemon saw through was reported once: the model agrees with the video's truth."""
    found = []
    for event in starts:
        frame = event["first_frame"] % frames
        hits = [
            i
            for i, occ in enumerate(occurrences)
            if occ.label == event["label"] and occ.first_frame - slack <= frame <= occ.last_frame
        ]
        if len(hits) != 1:
            return False
        found.append((event["first_frame"] // frames, hits[0]))
    passes = max((p for p, _ in found), default=0)  # the last pass may be cut short
    complete = {(p, i) for p in range(passes) for i in range(len(occurrences))}
    return len(set(found)) == len(found) and complete <= set(found)


def key(event: dict) -> tuple[str, str]:
    return event["event_id"], event["kind"]


def test_pi_inspect_run_killed_during_a_20s_outage_delivers_every_defect_event(
    make_mosquitto, mqtt_subscribe, real_bundle: Path, seam_stream: MjpegStream, tmp_path: Path
):
    broker = make_mosquitto(persistence=True)  # the subscriber's session survives the outage
    availability = "pi-inspect/e2e/availability"
    sub = mqtt_subscribe(
        broker, ["pi-inspect/e2e/defect/#", availability], client_id="truth", clean_session=False
    )
    received_keys = lambda: {key(json.loads(p)) for t, p, _ in sub.messages if t != availability}  # noqa: E731
    last_availability = lambda: (sub.payloads(availability) or [b""])[-1]  # noqa: E731
    config = write_config(
        tmp_path / "pi-inspect.toml", broker.port, tmp_path / "state", seam_stream.url
    )
    outs = [tmp_path / f"{name}.jsonl" for name in ("a", "b", "c")]
    procs: list[subprocess.Popen] = []

    def truth_keys(*stdouts: Path) -> set[tuple[str, str]]:
        return {key(e) for out in stdouts for e in produced_events(out)}

    def log_of(i: int) -> str:
        return outs[i].with_suffix(".log").read_text()[-3000:]

    try:
        procs.append(start_daemon(config, real_bundle, outs[0]))
        assert sub.wait_for(lambda m: len(received_keys()) >= 2, timeout=60), log_of(0)
        broker.stop()
        outage = (time.time(), time.monotonic())
        time.sleep(OUTAGE_S / 3)  # defects keep occurring: spooled only
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        procs.append(start_daemon(config, real_bundle, outs[1]))
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage[1])))
        outage_ended = time.time()
        broker.start()
        # everything so far arrives (the one event a SIGKILL may catch between stdout and the
        # spool aside), then the restarted daemon dies with the broker up: the last will
        a_keys = truth_keys(outs[0])
        assert sub.wait_for(lambda m: len(a_keys - received_keys()) <= 1, timeout=30), log_of(1)
        time.sleep(2.0)  # a few more events from the second daemon, live
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=10)
        assert sub.wait_for(lambda m: last_availability() == b"offline", timeout=10)
        procs.append(start_daemon(config, real_bundle, outs[2]))
        assert sub.wait_for(lambda m: last_availability() == b"online", timeout=30), log_of(2)
        b_keys = truth_keys(outs[1])
        assert sub.wait_for(lambda m: len(b_keys - received_keys()) <= 1, timeout=30), log_of(2)
        procs[2].send_signal(signal.SIGTERM)
        assert procs[2].wait(timeout=30) == 0, log_of(2)
        assert sub.wait_for(lambda m: last_availability() == b"stopped", timeout=10)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    runs = [produced_events(out) for out in outs]
    truth = {key(e): e for events in runs for e in events}
    assert len(truth) == sum(map(len, runs))  # the daemon's own ids are unique
    # defects really occurred during the outage, in the killed daemon and in its successor
    in_outage = lambda e: outage[0] < (e["ended_at"] or e["started_at"]) < outage_ended  # noqa: E731
    assert sum(map(in_outage, runs[0])) >= 1 and sum(map(in_outage, runs[1])) >= 1, runs
    for run in runs:  # a model problem, not an MQTT one, if this fails
        starts = [e for e in run if e["kind"] == "start"]
        assert matches_video(starts, seam_stream.occurrences, VIDEO_FRAMES), (
            f"the model's events disagree with the video's occurrences: {starts} vs "
            f"{seam_stream.occurrences}"
        )
    # a SIGKILL can land between a daemon's stdout line and its spool write: only the last
    # event of a killed daemon may be missing, nothing else
    may_miss = {key(run[-1]) for run in runs[:2] if run}
    assert sub.wait_for(lambda m: set(truth) - received_keys() <= may_miss, timeout=15), (
        f"{len(set(truth) - received_keys())} of {len(truth)} events missing"
    )
    copies: dict[tuple[str, str], set[bytes]] = {}
    for topic, payload, _ in sub.messages:
        if topic != availability:
            copies.setdefault(key(json.loads(payload)), set()).add(payload)
    assert set(copies) <= set(truth)  # nothing invented
    assert len(copies) >= len(truth) - len(may_miss)
    assert all(len(c) == 1 for c in copies.values())  # a duplicate is the identical event
    for topic, payload, _ in sub.messages:
        if topic != availability:
            message = json.loads(payload)
            assert message == truth[key(message)]
            assert topic == f"pi-inspect/e2e/defect/{message['label']}"
