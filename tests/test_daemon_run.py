"""The daemon end to end with a scripted model: events, LEDs over time, snapshots, triggers, reload."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from daemon_helpers import (
    BREAK_BGR,
    ERROR_BGR,
    OK_BGR,
    WRONG_PITCH_BGR,
    CountingNotifier,
    FlakySource,
    RecordingOutput,
    ScriptedClassifier,
    script,
    wait_until,
    write_video,
)

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon, load_from_config
from pi_inspect.edge.errors import BundleError

GREEN, RED, AMBER = 17, 27, 22


def config(tmp_path: Path, uri: str, **sections):
    data = {
        "source": {"uri": uri},
        "gpio": {"red_mode": "hold"},
        "snapshots": {"dir": str(tmp_path / "snaps")},
        "output": {"stats_interval_s": 0.05},
        **sections,
    }
    return parse_config(data)


def run_in_thread(daemon: Daemon, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    return thread


def test_video_with_three_defects_gives_three_events_and_snapshots(
    tmp_path: Path, pins, make_daemon
):
    frames = script(
        (OK_BGR, 10),
        (ERROR_BGR, 6),
        (OK_BGR, 10),
        (BREAK_BGR, 5),
        (OK_BGR, 10),
        (WRONG_PITCH_BGR, 8),
        (OK_BGR, 10),
    )
    video = write_video(tmp_path / "line.avi", frames)
    out = RecordingOutput()
    daemon = make_daemon(
        config(tmp_path, str(video)),
        outputs=[out],
    )
    summary = daemon.run(threading.Event())

    assert summary.frames == len(frames) and summary.dropped == 0  # a file loses nothing
    ends = [(e.label, e.first_frame, e.last_frame) for e in out.events if e.kind == "end"]
    assert ends == [("error", 10, 15), ("break", 26, 30), ("length", 41, 48)]
    starts = [e for e in out.events if e.kind == "start"]
    assert all(e.snapshot for e in starts) and len(out.snapshots) == 3
    snapshot_of = {e.event_id: e.snapshot for e in starts}
    assert [e.snapshot for e in out.events if e.kind == "end"] == list(snapshot_of.values())
    assert [event for _jpeg, event in out.snapshots] == starts  # sent complete, once
    snaps = tmp_path / "snaps"
    sidecars = sorted(snaps.glob("*.json"))
    assert len(sidecars) == 3 and len(list(snaps.glob("*.heat.jpg"))) == 3
    meta = json.loads(sidecars[0].read_text())
    assert meta["event"]["label"] == "error" and meta["model_sha256"] == "a" * 64
    assert {s.verdict for s in out.states} >= {"ok", "defect"}
    assert out.stats and out.stats[-1].frames == len(frames)
    # after the run every LED is off (clean shutdown)
    assert not any(pins.pin(p).state for p in (GREEN, RED, AMBER))


def test_red_led_follows_the_defect_and_green_returns(tmp_path: Path, pins, make_daemon):
    frames = script((OK_BGR, 10), (ERROR_BGR, 10), (OK_BGR, 10))
    video = write_video(tmp_path / "line.avi", frames)
    lamps = []
    daemon = make_daemon(
        config(tmp_path, str(video)),
        outputs=[],
        on_lamps=lamps.append,
    )
    daemon.run(threading.Event())
    shown = [(lamp.green, lamp.red, lamp.amber) for lamp in lamps]
    assert shown == [
        (True, False, False),
        (False, True, False),
        (True, False, False),
        (False, False, False),
    ]
    red_history = [s.state for s in pins.pin(RED).states]
    assert red_history == [False, True, False]


def test_camera_that_dies_shows_amber_then_recovers_without_exiting(
    tmp_path: Path, pins, make_daemon
):
    source = FlakySource(die_after=20, refusals=3)
    out = RecordingOutput()
    cfg = config(
        tmp_path, "0", source={"uri": "0", "reconnect_min_s": 0.02, "reconnect_max_s": 0.05}
    )
    daemon = make_daemon(
        cfg,
        source=source,
        outputs=[out],
    )
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: any(s.verdict == "fault" for s in out.states))
    assert wait_until(lambda: pins.pin(GREEN).state and source.index > 30)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    faults = [s.fault for s in out.states if s.verdict == "fault"]
    assert faults[0].startswith("camera offline: ")
    assert daemon.summary.faults[0] == "camera offline: camera unplugged"  # as it started
    amber = [s.state for s in pins.pin(AMBER).states]
    assert amber[:3] == [False, True, False]  # on while offline, off once it came back


def test_truncated_video_is_a_fault_with_amber_and_a_clear_message(
    tmp_path: Path, pins, make_daemon
):
    good = write_video(tmp_path / "v.mp4", script((OK_BGR, 30)))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out = RecordingOutput()
    daemon = make_daemon(
        config(tmp_path, str(cut)),
        outputs=[out],
    )
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: pins.pin(AMBER).state)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    fault = next(s.fault for s in out.states if s.verdict == "fault")
    assert "truncated or not a video" in fault and str(cut) in fault


def test_folder_with_corrupt_images_processes_the_good_ones(tmp_path: Path, pins, make_daemon):
    import cv2
    from daemon_helpers import solid

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:02d}.png"), solid(ERROR_BGR if 2 <= i <= 4 else OK_BGR))
    (folder / "03b.jpg").write_bytes(b"\xff\xd8garbage")
    out = RecordingOutput()
    daemon = make_daemon(
        config(tmp_path, str(folder)),
        outputs=[out],
    )
    summary = daemon.run(threading.Event())
    assert summary.frames == 6
    assert [e.label for e in out.events if e.kind == "end"] == ["error"]


def test_missing_bundle_is_a_fault_with_amber_and_no_crash(tmp_path: Path, pins, make_daemon):
    out = RecordingOutput()
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 5)))
    cfg = config(
        tmp_path,
        str(video),
        model={"bundle": str(tmp_path / "no-such-bundle")},
        source={"uri": str(video), "loop": True},
    )
    daemon = make_daemon(cfg, outputs=[out], classifier_loader=load_from_config)  # real loader
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: pins.pin(AMBER).state)
    assert wait_until(lambda: any(s.verdict == "fault" for s in out.states))
    stop.set()
    thread.join(10)
    fault = next(s.fault for s in out.states if s.verdict == "fault")
    assert fault.startswith("no model:") and "no-such-bundle" in fault
    assert "\n" not in fault


def test_bad_bundle_on_reload_is_refused_and_the_old_model_keeps_running(
    tmp_path: Path, pins, make_daemon
):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 5)))
    cfg = config(tmp_path, str(video), source={"uri": str(video), "loop": True})
    models = [ScriptedClassifier(sha="1" * 64)]

    def loader(model_config):
        if models:
            return models.pop()
        raise BundleError("bundle /x: model.tflite sha256 does not match the manifest (tampered?)")

    out = RecordingOutput()
    daemon = make_daemon(cfg, outputs=[out], classifier_loader=loader)
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: len(out.results) > 3)
    assert daemon.reload() is False
    seen = len(out.results)
    assert wait_until(lambda: len(out.results) > seen + 3)  # still inspecting with the old model
    stop.set()
    thread.join(10)
    assert out.results[-1].scores and out.states[-1].model.sha256 == "1" * 64
    assert all(s.verdict != "fault" for s in out.states)
    assert True not in [s.state for s in pins.pin(AMBER).states]  # amber never came on


def looping_video_config(tmp_path: Path, extra: str = "") -> Path:
    """A config file that loops a short OK video, with mock pins and no snapshots/stdout."""
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 5)))
    path = tmp_path / "pi.toml"
    path.write_text(
        f'[source]\nuri = "{video}"\nloop = true\n[gpio]\npin_factory = "mock"\n'
        f"[snapshots]\nenabled = false\n[stdout]\nenabled = false\n{extra}"
    )
    return path


def file_daemon(make_daemon, path: Path, out, loader, overrides=None) -> Daemon:
    """A daemon started from (and reloading) the config file at ``path``."""
    from pi_inspect.edge.config import load_config

    config = load_config(path)
    return make_daemon(
        overrides(config) if overrides is not None else config,
        config_path=path,
        overrides=overrides,
        outputs=[out],
        classifier_loader=loader,
    )


def test_sighup_reload_swaps_in_the_new_model_and_its_thresholds(tmp_path: Path, pins, make_daemon):
    path = looping_video_config(tmp_path)
    loaded = []

    def loader(model_config):
        loaded.append(ScriptedClassifier(sha=str(len(loaded)) * 64))
        return loaded[-1]

    out = RecordingOutput()
    daemon = file_daemon(make_daemon, path, out, loader)
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: len(out.results) > 2)
    path.write_text(path.read_text() + "[model]\nthresholds = { error = 0.9 }\n")
    daemon.request_reload()
    assert wait_until(lambda: out.states[-1].model.sha256 == "1" * 64)
    assert daemon.set_thresholds({}) == {"error": 0.9, "break": 0.5, "length": 0.5}
    stop.set()
    thread.join(10)
    assert loaded[0].closed  # the old interpreter was released


def test_sighup_reload_keeps_the_command_line_bundle_override(tmp_path: Path, pins, make_daemon):
    from functools import partial

    from pi_inspect.edge.config import with_overrides

    path = looping_video_config(tmp_path, '[model]\nbundle = "from-file"\n')
    overrides = partial(with_overrides, bundle=str(tmp_path / "from-cli"))
    bundles = []

    def loader(model_config):
        bundles.append(Path(model_config.bundle).name)
        return ScriptedClassifier(sha=str(len(bundles)) * 64)

    out = RecordingOutput()
    daemon = file_daemon(make_daemon, path, out, loader, overrides)
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: len(out.results) > 2)
    daemon.request_reload()
    assert wait_until(lambda: out.states[-1].model.sha256 == "2" * 64)
    stop.set()
    thread.join(10)
    assert bundles == ["from-cli", "from-cli"]


def test_on_demand_trigger_inspects_only_after_it_is_asked(tmp_path: Path, make_daemon):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.005)
    out = RecordingOutput()
    cfg = config(tmp_path, "0", trigger={"mode": "demand", "frames": 3})
    daemon = make_daemon(cfg, source=source, outputs=[out])
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: source.index > 20)
    assert out.results == []
    daemon.trigger()
    assert wait_until(lambda: len(out.results) == 3)
    asked_at = source.index
    assert wait_until(lambda: source.index > asked_at + 20)  # later frames flow past
    stop.set()
    thread.join(10)
    assert len(out.results) == 3


def test_gpio_trigger_edge_starts_an_inspection(tmp_path: Path, pins, make_daemon):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.005)
    out = RecordingOutput()
    cfg = config(tmp_path, "0", trigger={"mode": "gpio", "pin": 5, "frames": 2, "bounce_s": 0.0})
    daemon = make_daemon(
        cfg,
        source=source,
        outputs=[out],
    )
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: source.index > 10)
    assert out.results == []
    pins.pin(5).drive_low()  # part-present sensor pulls the input low
    assert wait_until(lambda: len(out.results) == 2)
    stop.set()
    thread.join(10)


def test_watchdog_pings_stop_when_the_capture_thread_hangs(tmp_path: Path, make_daemon):
    from daemon_helpers import BlockingSource, ManualClock

    source = BlockingSource()
    notifier = CountingNotifier()
    clock = ManualClock()
    out = RecordingOutput()
    cfg = config(
        tmp_path, "0", pipeline={"heartbeat_timeout_s": 5.0}, output={"stats_interval_s": 1}
    )
    daemon = make_daemon(cfg, source=source, outputs=[out], notifier=notifier, clock=clock)
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: notifier.calls.count("watchdog") > 0)  # healthy at first
    clock.advance(6.0)  # the hung read has not beaten its heart for longer than the timeout
    assert wait_until(lambda: len(out.stats) >= 1)  # a loop iteration saw the new time
    pings_then = notifier.calls.count("watchdog")
    clock.advance(1.0)
    assert wait_until(lambda: len(out.stats) >= 2)  # at least one whole iteration since
    pings_later = notifier.calls.count("watchdog")
    stop.set()
    thread.join(10)
    source.release.set()
    assert pings_later == pings_then  # no more pings once the heartbeat went stale
    assert not thread.is_alive()


def test_without_gpio_the_station_inspects_and_reports_the_fault_instead_of_exiting(
    tmp_path: Path, make_daemon
):
    """A pin factory that cannot work here (RPi.GPIO missing, not a Pi, a busy pin) must not end
    the daemon: systemd's start limit would then leave the line with no inspection at all."""
    video = write_video(tmp_path / "v.mp4", script((OK_BGR, 10), (ERROR_BGR, 8), (OK_BGR, 10)))
    out = RecordingOutput()
    cfg = config(tmp_path, str(video), gpio={"red_mode": "hold", "pin_factory": "rpigpio"})
    daemon = make_daemon(cfg, outputs=[out], pin_factory=None)
    summary = daemon.run(threading.Event())
    faults = {s.fault for s in out.states if s.fault}
    assert any(f.startswith("no GPIO: gpio pin factory 'rpigpio' is not usable") for f in faults)
    assert summary.frames == 28
    assert [e.kind for e in out.events] == ["start", "end"]


def test_commands_reach_the_daemon_through_its_receiver_and_come_back_as_replies(
    tmp_path: Path, make_daemon
):
    from pi_inspect.edge.outputs import Command

    source = FlakySource(die_after=10**9, refusals=0, period_s=0.005)
    out = RecordingOutput()
    daemon = make_daemon(config(tmp_path, "0"), source=source, outputs=[out])
    stop = threading.Event()
    thread = run_in_thread(daemon, stop)
    assert wait_until(lambda: len(out.results) > 3)
    reply = daemon.receive(Command("thresholds", {"error": 0.8}))
    assert reply.ok and reply.result["thresholds"]["error"] == 0.8
    snapshot = daemon.receive(Command("snapshot"))
    assert snapshot.ok and (tmp_path / "snaps" / snapshot.result["snapshot"]).is_file()
    unknown = daemon.receive(Command("shutdown"))
    assert not unknown.ok and "unknown command" in unknown.error
    stop.set()
    thread.join(10)
