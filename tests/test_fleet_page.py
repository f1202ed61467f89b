"""The live fleet page: simulated stations publish retained reports on a real mosquitto, a
FleetWatch and the page's server run in-process, and headless Chromium shows the rows.
``PI_INSPECT_SCREENSHOTS=1`` saves the page into docs/fleet_page.png (docs/fleet.md)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_helpers import needs_chromium

from pi_inspect.edge.fleet.report import station_report
from pi_inspect.edge.fleet.server import FleetServer
from pi_inspect.edge.fleet.status import BrokerUnreachable, collect
from pi_inspect.edge.fleet.watch import FleetWatch
from pi_inspect.edge.fleet.web import SECURITY_HEADERS, create_app

DOCS = Path(__file__).resolve().parents[1] / "docs"
PREFIX = "plant"
INVENTORY = ["line3-a", "line3-b", "line3-c", "line3-d"]
EXPECTED = {"line3-a": "ok", "line3-b": "fault", "line3-c": "offline", "line3-d": "missing"}


def report(
    device: str, verdict: str = "ok", fault: str | None = None, age_s: float = 1.0, shadow=None
) -> dict:
    """A schema-1 report as a station sends it, ``age_s`` old."""
    body = station_report(
        device,
        {"hostname": device, "version": "0.1.0", "board": "Raspberry Pi 5 Model B Rev 1.0"},
        None,
        None,
        now=time.time() - age_s,
    )
    body["bundle"] = {"name": "seam-demo", "version": "1.0.0", "sha256": "6a08cad2"}
    body["health"].update(verdict=verdict, fault=fault, fps=14.8, cpu_temp_c=51.2)
    body["alarm_rate"] = 0.0123
    if shadow:
        body["shadow"] = {"name": "seam", "version": shadow, "agreement": 0.994}
        body["desired"] = {"rollout": "r-5e1f-1", "mode": "shadow", "name": "seam",
                           "sha256": "5e" * 32, "state": "applied", "reason": None}  # fmt: skip
    return body


def rollout_record() -> dict:
    """A rollout in its first ring's soak, as ``fleet rollout`` publishes it."""
    now = time.time()
    return {
        "schema": 1, "id": "r-5e1f-1",
        "bundle": {"name": "seam", "sha256": "5e" * 32, "url": "http://ws:8765/x.tar"},
        "stations": INVENTORY, "sizes": [1, 4], "rings": 2,
        "gates": {"soak_s": 600.0, "min_frames": 100, "min_agreement": 0.95,
                  "max_alarm_delta": 0.05, "apply_timeout_s": 300.0, "poll_s": 0.5},
        "state": "running", "ring": 1, "done": 0, "step": "soak", "reason": None,
        "started": now - 90, "updated": now - 2,
        "log": [{"at": now - 90, "line": "ring 1: line3-a"},
                {"at": now - 89, "line": "desired shadow published to line3-a"},
                {"at": now - 80, "line": "shadow applied on line3-a"},
                {"at": now - 80, "line": "soak: 600 s and 100 shadow frames each"}],
    }  # fmt: skip


class Publisher:
    """A plain paho client publishing retained messages as the stations would."""

    def __init__(self, broker) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-stations")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def station(self, device: str, availability: str, body: dict | None = None) -> None:
        if body is not None:
            self.send(f"{PREFIX}/{device}/report", json.dumps(body))
        self.send(f"{PREFIX}/{device}/availability", availability)

    def send(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_fleet(publisher: Publisher) -> None:
    publisher.station("line3-a", "online", report("line3-a", shadow="1.1.0"))
    publisher.station("line3-b", "online", report("line3-b", "fault", "camera: no frame for 5 s"))
    publisher.station("line3-c", "offline", report("line3-c", age_s=40))
    publisher.send(f"{PREFIX}/rollout", json.dumps(rollout_record()))


def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def fleet(mosquitto_broker):
    """Three stations on the broker, the watch that sees them and the page's server."""
    publisher = Publisher(mosquitto_broker)
    publish_fleet(publisher)
    watch = FleetWatch(mosquitto_broker.host, mosquitto_broker.port, PREFIX).start()
    server = FleetServer(create_app(watch, INVENTORY, stale_s=60.0), port=0).start()
    try:
        assert wait_until(lambda: len(watch.views()) == 3), watch.views()
        yield {"broker": mosquitto_broker, "publisher": publisher, "watch": watch, "server": server}
    finally:
        server.close()
        watch.close()
        publisher.close()


def request(server, method: str, path: str, headers: dict | None = None):
    """(status, headers, body); the Host header is local unless ``headers`` names one."""
    port = server.address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        for name, value in {"Host": f"127.0.0.1:{port}", **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def api_rows(server) -> dict[str, dict]:
    status, _, body = request(server, "GET", "/api/fleet")
    assert status == 200
    return {row["device"]: row for row in json.loads(body)["rows"]}


def test_the_api_lists_every_station_and_the_missing_one(fleet):
    server = fleet["server"]
    status, headers, body = request(server, "GET", "/api/fleet")
    assert status == 200 and headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert abs(data["at"] - time.time()) < 5 and data["connected"] is True
    by_name = {row["device"]: row for row in data["rows"]}
    assert {name: row["condition"] for name, row in by_name.items()} == EXPECTED
    assert by_name["line3-b"]["fault"] == "camera: no frame for 5 s"
    assert by_name["line3-a"]["bundle"] == "seam-demo 1.0.0" and by_name["line3-a"]["fps"] == 14.8
    assert by_name["line3-c"]["last_seen_s"] >= 40
    assert by_name["line3-d"]["in_inventory"] and by_name["line3-d"]["version"] is None
    # a station that sends what is not a report keeps its row, with the problem said
    fleet["publisher"].send(f"{PREFIX}/line3-e/report", '{"schema": 1, "at": "noon"}')
    row = wait_until(lambda: api_rows(server).get("line3-e"))
    assert row["condition"] == "unknown" and row["problems"] == ["report has no time (at)"]


def test_foreign_hosts_origins_methods_and_paths_are_refused(fleet):
    server = fleet["server"]
    port = server.address[1]
    for path in ("/", "/fleet.js", "/fleet.css", "/api/fleet"):
        status, headers, _ = request(server, "GET", path, {"Host": f"localhost:{port}"})
        assert status == 200, path
        assert {k: headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
    assert request(server, "HEAD", "/api/fleet")[0] == 200
    refused = [
        ("GET", "/api/fleet", {"Host": "evil.example"}, 403),
        ("GET", "/api/fleet", {"Host": f"evil.example:{port}"}, 403),
        ("GET", "/api/fleet", {"Host": "127.0.0.1:1"}, 403),
        ("GET", "/api/fleet", {"Origin": "http://evil.example"}, 403),
        ("GET", "/nothing", {}, 404),
        ("GET", "/api/fleet/", {}, 404),
        ("GET", "/static/fleet.js", {}, 404),
        ("GET", "/fleet.html", {}, 404),
        ("GET", "/%2e%2e/pyproject.toml", {}, 400),
        ("GET", "/../pyproject.toml", {}, 400),
        ("POST", "/api/fleet", {"Content-Length": "0"}, 405),
        ("DELETE", "/", {}, 405),
    ]
    for method, path, headers, expected in refused:
        status, got, body = request(server, method, path, headers)
        assert status == expected, (method, path, headers, status, body)
        assert {k: got[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS, (method, path)
        assert got["Content-Type"] == "application/json" and "error" in json.loads(body)


def test_the_security_headers_are_the_labelling_tools():
    from pi_inspect.edge.label.app import SECURITY_HEADERS as LABEL_HEADERS

    assert SECURITY_HEADERS == LABEL_HEADERS


def test_the_watch_survives_a_broker_restart(fleet):
    broker, watch = fleet["broker"], fleet["watch"]
    broker.restart()  # no persistence: the retained reports are gone with it
    assert wait_until(lambda: not watch.connected, 10)
    assert wait_until(lambda: watch.connected, 30), watch.error
    publisher = Publisher(broker)  # the stations republish after their own reconnect
    try:
        publisher.station("line3-d", "online", report("line3-d"))
        assert wait_until(
            lambda: api_rows(fleet["server"]).get("line3-d", {}).get("condition") == "ok"
        )
    finally:
        publisher.close()


def test_collect_says_when_the_broker_cannot_be_reached():
    from conftest import free_loopback_port

    port = free_loopback_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match=rf"^broker 127.0.0.1:{port} not reachable: "):
        collect("127.0.0.1", port, PREFIX, wait_s=0.1)
    assert time.monotonic() - started < 5  # a refused connection is known at once


def test_fleet_serve_prints_the_url_serves_and_stops_on_ctrl_c(mosquitto_broker, tmp_path):
    inventory = tmp_path / "line3.txt"
    inventory.write_text("line3-d  # not built yet\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pi_inspect.edge.cli", "fleet", "serve", "--broker",
         f"127.0.0.1:{mosquitto_broker.port}", "--prefix", PREFIX, "--port", "0",
         "--inventory", str(inventory)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.fullmatch(r"fleet page: http://127\.0\.0\.1:(\d+)/ \(Ctrl-C stops\)\n", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        conn = http.client.HTTPConnection("127.0.0.1", int(found[1]), timeout=10)
        conn.request("GET", "/api/fleet")
        data = json.loads(conn.getresponse().read())
        conn.close()
        assert data["connected"] and [r["condition"] for r in data["rows"]] == ["missing"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert out.strip() == "stopped"


# ---------------------------------------------------------------------------------------------
# in headless Chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 240})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def shown(page) -> dict[str, str]:
    return {
        tr.get_attribute("data-device"): tr.query_selector("td.status").inner_text()
        for tr in page.query_selector_all("#rows tr")
    }


@needs_chromium
def test_the_page_shows_every_station_and_a_new_report_within_seconds(fleet, page):
    server = fleet["server"]
    page.goto(server.url)
    page.wait_for_selector("body[data-ready=true]")
    assert shown(page) == EXPECTED
    assert page.inner_text("#summary") == "4 stations, 1 ok, 3 not ok"
    fault = page.inner_text("#rows tr[data-device=line3-b] td.fault")
    assert fault == "camera: no frame for 5 s"
    cells = [td.inner_text() for td in page.query_selector_all("#rows tr[data-device=line3-a] td")]
    assert cells[:8] == [
        "line3-a",
        "ok",
        "0.1.0",
        "seam-demo 1.0.0",
        "seam 1.1.0",
        "14.8",
        "51 °C",
        "1.2 %",
    ]
    assert cells[8] == "shadow applied"  # the desired state sent to it, and how it went
    assert page.inner_text("#rollout-where") == (
        "running: ring 1 of 2 (soak), 0 of 4 stations done"
    )
    assert page.inner_text("#rollout-log").splitlines()[-1].endswith(
        "soak: 600 s and 100 shadow frames each"
    )
    assert re.fullmatch(r"\d+ s ago", cells[9]) and cells[10] == "–"
    colours = {
        name: page.eval_on_selector(
            f"#rows tr[data-device={name}] td.status", "td => getComputedStyle(td).color"
        )
        for name in EXPECTED
    }
    assert colours["line3-a"] != colours["line3-b"] and colours["line3-d"] != colours["line3-a"]
    if os.environ.get("PI_INSPECT_SCREENSHOTS"):  # docs/fleet.md
        page.screenshot(path=str(DOCS / "fleet_page.png"), full_page=True)

    started = time.monotonic()
    fleet["publisher"].station("line3-d", "online", report("line3-d"))
    page.wait_for_function(
        """() => document.querySelector('#rows tr[data-device="line3-d"]')
                    ?.dataset.condition === 'ok'""",
        timeout=6_000,
    )
    assert time.monotonic() - started < 6
    assert page.inner_text("#summary") == "4 stations, 2 ok, 2 not ok"
    # nothing the stations send is read as markup
    fleet["publisher"].station("<b>x", "online", report("<b>x", "fault", "<img src=x>"))
    page.wait_for_selector("#rows tr:nth-child(5)")
    assert page.eval_on_selector("#rows", "t => t.querySelectorAll('b, img').length") == 0
    assert page.inner_text("#rows tr:nth-child(1) td.device") == "<b>x"
    assert page.inner_text("#rows tr:nth-child(1) td.fault") == "<img src=x>"
