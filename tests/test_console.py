"""The console without a daemon: security rules, live tap, review folder, metrics, over real HTTP."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from console_helpers import TOKEN, action, receiver, request, running_console
from prometheus_client.parser import text_string_to_metric_families

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.console.live import LiveView
from pi_inspect.edge.console.review import ReviewStore
from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.events import DefectEvent, ModelInfo, State, Stats
from pi_inspect.edge.outputs import LiveFrame


def test_a_console_off_loopback_without_credentials_is_a_config_error_with_its_key_path():
    with pytest.raises(ConfigError) as caught:
        parse_config({"console": {"enabled": True, "host": "0.0.0.0"}})
    assert any(p.startswith("console.credentials:") for p in caught.value.problems)
    parse_config({"console": {"enabled": True, "host": "::1"}})  # loopback needs none


def test_frames_flow_only_while_someone_watches_and_at_the_live_rate():
    now = [100.0]
    live = LiveView(fps=5.0, idle_s=3.0, clock=lambda: now[0])
    assert not live.wants_frame()  # nobody watching: the daemon builds nothing
    live.offer_frame(LiveFrame(np.zeros((8, 8, 3), np.uint8), 1, 0.0, {"error": 0.1}))
    got = live.request("viewer-1", after=0, wait_s=0)
    assert got is not None and got[1].jpeg[:2] == b"\xff\xd8"
    assert live.wants_frame() is False  # the frame just offered: next one in 1/5 s
    now[0] += 0.21
    assert live.wants_frame() and not live.wants_heat()
    live.request("viewer-1", heat=True, after=99, wait_s=0)
    assert live.wants_heat() and live.watching() == 1
    now[0] += 3.5  # the viewer closed the page
    assert not live.wants_frame() and not live.wants_heat() and live.watching() == 0


def test_the_review_folder_keeps_at_most_max_count_items(tmp_path):
    store = ReviewStore(tmp_path / "review", max_count=3)
    ids = [store.add(b"\xff\xd8jpeg", None, {"n": i}) for i in range(5)]
    assert store.ids() == ids[2:]
    assert store.read(ids[-1])["n"] == 4
    assert store.path(ids[0], "item.json") is None  # pruned
    assert store.path("../" + ids[-1], "item.json") is None
    assert store.path(ids[-1], "../../etc/passwd") is None


def test_actions_need_the_action_header_and_the_consoles_own_origin(tmp_path):
    daemon = receiver()
    with running_console(tmp_path, daemon) as (_, server):
        base = server.url
        status, _, _ = request(f"{base}/api/action/trigger", data={}, method="POST")
        assert status == 403  # a cross-site form cannot add the header
        status, _, _ = action(base, "trigger", Origin="http://evil.example")
        assert status == 403
        status, _, body = action(base, "trigger", Origin=base)
        assert status == 200 and json.loads(body)["ok"]
        assert daemon.calls == [("trigger", None)]


def test_a_loopback_console_refuses_a_host_name_it_does_not_own(tmp_path):
    with running_console(tmp_path) as (_, server):
        status, _, _ = request(f"{server.url}/api/overview", headers={"Host": "rebound.example"})
        assert status == 403
        assert request(f"{server.url}/api/overview")[0] == 200


def test_off_loopback_an_action_without_the_token_is_refused(tmp_path):
    daemon = receiver()
    with running_console(tmp_path, daemon, host="127.0.0.2") as (_, server):
        base = server.url
        assert action(base, "acknowledge")[0] == 401
        assert request(f"{base}/api/overview")[0] == 401  # viewing too, unless allowed
        assert request(f"{base}/metrics")[0] == 401
        assert action(base, "acknowledge", Authorization="Bearer wrong-token-000000")[0] == 401
        assert daemon.calls == []
        assert action(base, "acknowledge", Authorization=f"Bearer {TOKEN}")[0] == 200
        assert daemon.calls == [("acknowledge", None)]
        headers = {"X-Pi-Inspect": "1", "Content-Type": "application/json"}
        status, got, _ = request(
            f"{base}/api/login", data={"token": TOKEN}, headers=headers, method="POST"
        )
        cookie = got["Set-Cookie"]
        assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        session = cookie.split(";")[0]
        assert request(f"{base}/api/overview", headers={"Cookie": session})[0] == 200


def test_read_only_viewing_when_allowed_still_needs_the_token_to_act(tmp_path):
    with running_console(tmp_path, host="127.0.0.2", allow_readonly_view=True) as (_, server):
        assert request(f"{server.url}/api/overview")[0] == 200
        assert action(server.url, "trigger")[0] == 401


def test_no_request_reaches_a_file_outside_snapshots_and_review_items(tmp_path):
    (tmp_path / "secret.json").write_text("{}")
    with running_console(tmp_path) as (_, server):
        for path in (
            "/api/snapshots/..%2fsecret.json",
            "/api/snapshots/../secret.json",
            "/api/review/..%2f..%2fsecret.json/item.json",
            "/api/review/20260101-000000-00001/..%2f..%2fsecret.json",
            "/static/..%2f__init__.py",
            "/static/console.py",
        ):
            status, _, body = request(server.url + path)
            assert status == 404, path
            assert body != b"{}"


def test_every_response_carries_the_security_headers(tmp_path):
    with running_console(tmp_path) as (_, server):
        for path in ("/", "/static/console.js", "/api/overview", "/nope", "/metrics"):
            _, headers, _ = request(server.url + path)
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["X-Frame-Options"] == "DENY"
            assert headers["Referrer-Policy"] == "no-referrer"


def test_a_threshold_change_says_it_does_not_outlast_a_restart(tmp_path):
    daemon = receiver()
    with running_console(tmp_path, daemon) as (_, server):
        status, _, body = action(server.url, "thresholds", {"error": 0.7})
        reply = json.loads(body)
        assert status == 200 and reply["result"]["persistent"] is False
        assert "restart" in reply["result"]["lasts"]
        assert action(server.url, "thresholds", {"nope": 0.7})[0] == 400
        assert action(server.url, "reload")[0] == 400  # not an action of the page
        assert daemon.calls == [("thresholds", {"error": 0.7})]


def test_metrics_give_each_models_invoke_time_when_two_run_on_one_frame(tmp_path):
    cost = {"model": {"p50": 4.0, "p95": 6.5}, "anomaly": {"p50": 2.0, "p95": 3.0}}
    with running_console(tmp_path) as (console, server):
        console.publish_stats(Stats(14.5, 7.0, 9.0, 100, 0, 8.0, True, extra={"model_invoke_ms": cost}))
        _status, _headers, body = request(f"{server.url}/metrics")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("pi_inspect_model_invoke_p50_seconds", (("model", "model"), ("station", "default")))] == pytest.approx(0.004)
    assert samples[("pi_inspect_model_invoke_p95_seconds", (("model", "anomaly"), ("station", "default")))] == pytest.approx(0.003)


def test_metrics_parse_with_the_prometheus_text_parser(tmp_path):
    with running_console(tmp_path) as (console, server):
        model = ModelInfo("seam", "3", "ab" * 32, ("good", "error", "break"))
        console.publish_state(
            State("defect", ("error",), model, time.time(), lamps={"red": True, "green": False})
        )
        for kind in ("start", "end"):
            console.publish_event(
                DefectEvent("e1", kind, "error", time.time(), None, 0.9, 3, 10, model_sha256="x")
            )
        console.publish_event(DefectEvent("e2", "start", "break", time.time(), None, 0.8, 3, 20))
        console.publish_state(State("fault", (), model, time.time(), fault="camera unplugged"))
        console.publish_stats(Stats(14.5, 3.0, 5.0, 1200, 7, 80.0, True, cpu_temp_c=51.5))
        status, headers, body = request(f"{server.url}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("pi_inspect_defect_events_total", (("label", "error"), ("station", "default")))] == 1
    assert samples[("pi_inspect_defect_events_total", (("label", "break"), ("station", "default")))] == 1
    assert samples[("pi_inspect_faults_total", (("station", "default"),))] == 1
    assert samples[("pi_inspect_fault", (("station", "default"),))] == 1
    assert samples[("pi_inspect_verdict", (("station", "default"), ("verdict", "fault")))] == 1
    assert samples[("pi_inspect_fps", (("station", "default"),))] == 14.5
    assert samples[("pi_inspect_latency_p95_seconds", (("station", "default"),))] == pytest.approx(0.005)
    assert samples[("pi_inspect_dropped_frames_total", (("station", "default"),))] == 7
    assert samples[("pi_inspect_cpu_temperature_celsius", (("station", "default"),))] == 51.5
    info = (("name", "seam"), ("sha256", "ab" * 32), ("station", "default"), ("version", "3"))
    assert samples[("pi_inspect_model_info", info)] == 1


def test_the_spool_depth_is_read_from_the_spool_file_without_writing_it(tmp_path):
    from pi_inspect.edge.mqtt.spool import Spool, read_depth

    path = tmp_path / "spool.sqlite3"
    assert read_depth(path) is None and not path.exists()  # nothing created
    with Spool(path, max_events=10) as spool:
        spool.append("t", b"1")
        spool.append("t", b"2")
        assert read_depth(path) == 2
