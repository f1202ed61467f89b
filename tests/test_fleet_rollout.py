"""A staged rollout with three real stations on one mosquitto: a good bundle goes everywhere
ring by ring; a bundle whose golden set fails on the device stops at ring 1; a bundle that
alarms on everything is taken back out of shadow at ring 1 by its alarm-rate gate. Stations of
later rings are never touched by a failed rollout."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from bundle_helpers import make_bundle
from daemon_helpers import RecordingOutput, wait_until
from test_deploy import _golden_off
from test_fleet_desired import packed

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon
from pi_inspect.edge.daemon.app import open_outputs
from pi_inspect.edge.deploy import deploy_local
from pi_inspect.edge.fleet.rollout import Bundle, Gates, Plan, Rollout, ring_sizes
from pi_inspect.edge.fleet.watch import FleetWatch
from pi_inspect.edge.synth import render_video

STATIONS = ("line3-a", "line3-b", "line3-c")
GATES = Gates(soak_s=1.0, min_frames=20, min_agreement=0.95, max_alarm_delta=0.05,
              apply_timeout_s=60.0, poll_s=0.1)  # fmt: skip


def start_station(tmp_path: Path, name: str, port: int, prefix: str, video: Path):
    models = tmp_path / name / "models"
    models.mkdir(parents=True)
    deploy_local(make_bundle(tmp_path / name, "seam", "1"), models)
    config = parse_config(
        {
            "state_dir": str(tmp_path / name / "state"),
            "device": {"id": name},
            "model": {"bundle": str(models / "current")},
            "source": {"uri": str(video), "loop": True},
            "gpio": {"pin_factory": "mock"},
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.1},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port},
            "fleet": {"enabled": True, "url_prefix": prefix},
        }
    )
    out = RecordingOutput()
    daemon = Daemon(config, outputs=[*open_outputs(config), out])
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    return out, stop, thread


def version(out) -> str | None:
    return out.states[-1].model.version if out.states and out.states[-1].model else None


def shadow_of(out) -> dict | None:
    return out.stats[-1].extra.get("shadow") if out.stats else None


@pytest.mark.timeout(300)
def test_rollouts_promote_a_good_bundle_and_stop_bad_ones_at_ring_1(
    tmp_path,
    files,
    mosquitto_broker,
):
    www, prefix = files
    port = mosquitto_broker.port
    video = render_video(tmp_path / "seam.avi", frames=60, seed=3, size=(320, 240), fps=15.0).path
    stations = {name: start_station(tmp_path, name, port, prefix, video) for name in STATIONS}
    watch = FleetWatch("127.0.0.1", port).start()

    def rollout(bundle_dir: Path, rollout_id: str) -> Rollout:
        name, sha = packed(bundle_dir, www)
        plan = Plan.make(rollout_id, Bundle("seam", sha, prefix + name), STATIONS, "1,100%", GATES)
        return Rollout(plan, prefix="pi-inspect", publish=watch.publish, views=watch.views)

    try:
        assert watch.wait_connected(10)
        assert wait_until(lambda: all(version(out) == "1" for out, _, _ in stations.values()), 60)

        good = rollout(make_bundle(tmp_path, "seam", "2"), "r-good")
        assert good.run(), good.log
        assert wait_until(lambda: all(version(out) == "2" for out, _, _ in stations.values()), 60)
        assert [line for line in good.log if line.startswith("ring")] == [
            "ring 1: line3-a", "ring 2: line3-b, line3-c",
        ]  # fmt: skip

        # abort: every station the rollout touched goes back to what it ran before
        back = Rollout(good.plan, prefix="pi-inspect", publish=watch.publish, views=watch.views)
        assert back.abort(good.record()), back.log
        assert back.state == "aborted"
        assert wait_until(lambda: all(version(out) == "1" for out, _, _ in stations.values()), 60)

        bad = rollout(make_bundle(tmp_path, "seam", "3", edit=_golden_off), "r-bad")
        assert not bad.run()
        assert any(
            "line3-a could not apply it" in line and "golden set" in line for line in bad.log
        )
        assert all(version(out) == "1" for out, _, _ in stations.values())

        def eager(data: dict) -> None:
            # error above 0 and length below 1: an alarm on (nearly) every frame
            data["thresholds"] = {**data["thresholds"], "error": 0.0, "length": 1.0}

        loud = rollout(make_bundle(tmp_path, "seam", "4", edit=eager), "r-loud")
        assert not loud.run()
        assert any("line3-a: the candidate alarms on" in line for line in loud.log), loud.log
        out_a = stations["line3-a"][0]
        assert wait_until(lambda: shadow_of(out_a) is None, 30)  # taken back out of shadow
        for name, (out, _, _) in stations.items():
            assert version(out) == "1", name
            if name != "line3-a":  # later rings never saw it
                assert all(
                    (s.extra.get("desired") or {}).get("rollout") != "r-loud" for s in out.stats
                ), name
    finally:
        watch.close()
        for _, stop, _thread in stations.values():
            stop.set()
        for _, _, thread in stations.values():
            thread.join(30)


def test_rings_are_cumulative_counts_or_shares_of_the_stations():
    assert ring_sizes("1,10%,50%,100%", 20) == [1, 2, 10, 20]
    assert ring_sizes("1,10%,50%,100%", 3) == [1, 2, 3]
    assert ring_sizes("1,100%", 3) == [1, 3]
    assert ring_sizes("5", 3) == [3]
    with pytest.raises(ValueError):
        ring_sizes("0", 3)


def fleet_command(port: int, *args: str, **kw) -> list[str]:
    import sys

    return [sys.executable, "-m", "pi_inspect.edge.cli", "fleet", *args[:1],
            "--broker", f"127.0.0.1:{port}", *args[1:]]  # fmt: skip


@pytest.mark.timeout(240)
def test_an_interrupted_rollout_command_resumes_where_it_stopped(tmp_path, mosquitto_broker):
    import signal
    import subprocess

    port = mosquitto_broker.port
    video = render_video(tmp_path / "seam.avi", frames=30, seed=4, size=(320, 240), fps=15.0).path
    out, stop, thread = start_station(tmp_path, "line3-a", port, "http://127.0.0.1:", video)
    bundle = make_bundle(tmp_path, "seam", "2")
    watch = FleetWatch("127.0.0.1", port).start()
    try:
        assert wait_until(lambda: version(out) == "1", 60)
        first = subprocess.Popen(
            fleet_command(port, "rollout", str(bundle), "--stations", "line3-a", "--rings", "1",
                          "--serve", "127.0.0.1:0", "--soak", "6", "--min-frames", "10"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert wait_until(lambda: (watch.rollout() or {}).get("step") == "soak", 90)
        first.send_signal(signal.SIGINT)
        said, _ = first.communicate(timeout=30)
        assert first.returncode == 1, said
        assert "interrupted at ring 1 (soak)" in said and "--resume" in said, said
        assert wait_until(lambda: (watch.rollout() or {}).get("state") == "interrupted", 10)
        assert version(out) == "1" and shadow_of(out) is not None  # the shadow runs on

        other = subprocess.run(
            fleet_command(port, "rollout", str(make_bundle(tmp_path, "seam", "3")),
                          "--stations", "line3-a"),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert other.returncode == 1 and "--resume BUNDLE or --abort" in other.stdout

        status = subprocess.run(
            fleet_command(port, "status", "--wait", "0.5"), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert "interrupted, ring 1 of 1, 0 of 1 stations done" in status.stdout, status.stdout
        assert "shadow applied" in status.stdout  # the station's DESIRED column

        resumed = subprocess.run(
            fleet_command(port, "rollout", str(bundle), "--resume", "--serve", "127.0.0.1:0"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        after = resumed.stdout.split("resumed at ring 1", 1)[1]
        assert "desired shadow published" not in after  # it had applied that already
        assert "rolled out to 1 stations" in after
        assert wait_until(lambda: version(out) == "2", 60)
        assert wait_until(lambda: (watch.rollout() or {}).get("state") == "done", 10)
    finally:
        watch.close()
        stop.set()
        thread.join(30)
