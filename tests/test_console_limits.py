"""The console under abuse, over real sockets to its real waitress server: idle connections,
wrong tokens on both token paths, malformed values, and Host names on a loopback console."""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import time

import pytest
from console_helpers import TOKEN, receiver, request, running_console
from daemon_helpers import wait_until

from pi_inspect.edge.console.connections import FIRST_REQUEST_S, MAX_OPEN, PER_CLIENT
from pi_inspect.edge.console.throttle import (
    FORGET_S,
    FREE_FAILURES,
    MAX_WAIT_S,
    Throttle,
    Throttled,
    client_key,
)

OPERATOR = "127.0.0.1"
ATTACKER = "127.0.0.3"
ACTION = {"X-Pi-Inspect": "1", "Content-Type": "application/json"}


class Clock:
    """Time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """One keep-alive HTTP connection from a chosen source address."""

    def __init__(self, server, source: str) -> None:
        self.conn = http.client.HTTPConnection(
            server.host, server.port, timeout=10, source_address=(source, 0)
        )

    def send(self, path: str, *, body=None, headers=None, method: str = "GET"):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.conn.request(method, path, body=data, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def close(self) -> None:
        self.conn.close()


def once(server, source: str, path: str, **kw):
    client = Client(server, source)
    try:
        return client.send(path, **kw)
    finally:
        client.close()


def hoard(server, source: str, count: int) -> list[socket.socket]:
    """``count`` connections from ``source`` that never send a byte."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(10)
        s.connect((server.host, server.port))
        sockets.append(s)
    return sockets


def still_open(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has not closed (a closed one reads as end of file)."""
    ready, _, _ = select.select(sockets, [], [], 0)
    closed = 0
    for s in ready:
        try:
            closed += s.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            closed += 1
    return len(sockets) - closed


def close_all(sockets: list[socket.socket]) -> None:
    for s in sockets:
        s.close()


# -- connection budgets ------------------------------------------------------------------------
def test_two_hundred_idle_connections_from_one_client_leave_another_client_answered(tmp_path):
    with running_console(tmp_path) as (_, server):
        idle = hoard(server, ATTACKER, 200)
        try:
            started = time.monotonic()
            status, _, _ = once(server, OPERATOR, "/api/overview")
            assert status == 200 and time.monotonic() - started < 5
            assert wait_until(lambda: still_open(idle) <= PER_CLIENT, timeout=5)
        finally:
            close_all(idle)


def test_a_client_holding_two_hundred_idle_connections_still_gets_its_real_requests_answered(
    tmp_path, caplog
):
    caplog.set_level(logging.WARNING, "pi_inspect.edge.console.connections")
    with running_console(tmp_path) as (_, server):
        idle = hoard(server, OPERATOR, 200)
        try:
            started = time.monotonic()
            assert once(server, OPERATOR, "/api/overview")[0] == 200
            assert once(server, OPERATOR, "/api/events")[0] == 200
            assert time.monotonic() - started < 5
        finally:
            close_all(idle)
    budget_lines = [r for r in caplog.records if "connection budget" in r.getMessage()]
    assert len(budget_lines) == 1  # one line, not one per connection


def test_idle_connections_from_many_clients_stay_within_the_global_budget(tmp_path):
    with running_console(tmp_path) as (_, server):
        idle = [s for n in range(4, 10) for s in hoard(server, f"127.0.0.{n}", 20)]
        try:
            assert once(server, OPERATOR, "/api/overview")[0] == 200
            assert wait_until(lambda: still_open(idle) <= MAX_OPEN, timeout=5)
        finally:
            close_all(idle)


def test_a_connection_that_sends_nothing_is_closed_sooner_than_an_idle_keep_alive_one(tmp_path):
    with running_console(tmp_path) as (_, server):
        quiet = hoard(server, ATTACKER, 1)
        keep_alive = Client(server, OPERATOR)
        try:
            assert keep_alive.send("/api/overview")[0] == 200
            first_socket = keep_alive.conn.sock
            assert wait_until(lambda: len(server.servers[0].active_channels) == 2, timeout=5)
            # the server's timeout pass, as it would run FIRST_REQUEST_S + 1 s from now
            server.servers[0].maintenance(time.time() + FIRST_REQUEST_S + 1)
            assert wait_until(lambda: still_open(quiet) == 0, timeout=5)
            assert keep_alive.send("/api/overview")[0] == 200
            assert keep_alive.conn.sock is first_socket  # the same connection still served
        finally:
            keep_alive.close()
            close_all(quiet)


# -- wrong tokens ------------------------------------------------------------------------------
def test_wrong_tokens_make_only_their_client_wait_and_each_wait_doubles_up_to_the_cap():
    clock = Clock()
    throttle = Throttle(clock)
    assert not any(throttle.attempt("a", False) for _ in range(FREE_FAILURES))
    assert throttle.waiting("a") == 0  # the free ones cost nothing
    assert throttle.attempt("a", False) is False
    assert throttle.waiting("a") == 1.0
    with pytest.raises(Throttled):
        throttle.attempt("a", True)  # while it waits even the right token is not compared
    assert throttle.attempt("b", True)  # another client is never slowed
    waits = []
    for _ in range(12):
        clock.now += throttle.waiting("a")
        throttle.attempt("a", False)
        waits.append(throttle.waiting("a"))
    assert waits[:4] == [2.0, 4.0, 8.0, 16.0] and waits[-1] == MAX_WAIT_S
    clock.now += MAX_WAIT_S
    assert throttle.attempt("a", True)  # waited: the right token works and clears the count
    assert throttle.waiting("a") == 0
    for _ in range(FREE_FAILURES + 1):
        throttle.attempt("a", False)
    clock.now += FORGET_S
    assert throttle.waiting("a") == 0  # forgotten an hour after the last wrong token


def test_one_client_is_an_ipv4_address_or_an_ipv6_slash_64():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8:0:1::1") != client_key("2001:db8::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_wrong_tokens_on_login_and_bearer_share_one_count_and_throttle_only_their_address(
    tmp_path,
):
    clock = Clock()
    with running_console(tmp_path, host="127.0.0.2", clock=clock) as (_, server):
        attacker = Client(server, ATTACKER)
        wrong_bearer = {"Authorization": "Bearer wrong-token-0000000000"}
        right_bearer = {"Authorization": f"Bearer {TOKEN}"}
        try:
            for _ in range(3):
                login = attacker.send(
                    "/api/login", body={"token": "wrong"}, headers=ACTION, method="POST"
                )
                assert login[0] == 401
            for _ in range(FREE_FAILURES - 3 + 1):
                assert attacker.send("/api/overview", headers=wrong_bearer)[0] == 401
            status, headers, _ = attacker.send("/api/overview", headers=wrong_bearer)
            assert status == 429 and int(headers["Retry-After"]) >= 1
            # while it waits, the right token on either path is refused unread
            assert attacker.send("/api/overview", headers=right_bearer)[0] == 429
            login = attacker.send(
                "/api/login", body={"token": TOKEN}, headers=ACTION, method="POST"
            )
            assert login[0] == 429
            # the operator on another address is not slowed at all
            assert once(server, OPERATOR, "/api/overview", headers=right_bearer)[0] == 200
            login = once(
                server, OPERATOR, "/api/login", body={"token": TOKEN}, headers=ACTION, method="POST"
            )
            assert login[0] == 200
            clock.now += 1.0  # the attacker's first wait is over
            assert attacker.send("/api/overview", headers=right_bearer)[0] == 200
        finally:
            attacker.close()


def test_three_hundred_wrong_bearer_tokens_get_only_a_handful_compared(tmp_path):
    with running_console(tmp_path, host="127.0.0.2", clock=Clock()) as (_, server):
        attacker = Client(server, ATTACKER)
        headers = {"Authorization": "Bearer wrong-token-0000000000"}
        try:
            statuses = [attacker.send("/metrics", headers=headers)[0] for _ in range(300)]
        finally:
            attacker.close()
        assert statuses.count(401) == FREE_FAILURES + 1
        assert statuses.count(429) == 300 - FREE_FAILURES - 1
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert once(server, OPERATOR, "/metrics", headers=right)[0] == 200


def test_a_session_already_opened_keeps_working_while_its_address_waits(tmp_path):
    with running_console(tmp_path, host="127.0.0.2", clock=Clock()) as (_, server):
        client = Client(server, ATTACKER)
        try:
            status, headers, _ = client.send(
                "/api/login", body={"token": TOKEN}, headers=ACTION, method="POST"
            )
            session = {"Cookie": headers["Set-Cookie"].split(";")[0]}
            wrong = {"Authorization": "Bearer wrong-token-0000000000"}
            for _ in range(FREE_FAILURES + 2):
                client.send("/api/overview", headers=wrong)
            assert client.send("/api/overview", headers=wrong)[0] == 429
            assert client.send("/api/overview", headers=session)[0] == 200
        finally:
            client.close()


# -- malformed values --------------------------------------------------------------------------
MALFORMED_QUERIES = [
    "/api/events?page=%C2%B2",  # a superscript two: str.isdigit() says yes, int() says no
    "/api/events?size=%C2%B2",
    "/api/events?page=" + "9" * 5000,
    "/api/events?size=" + "9" * 5000,
    "/api/events?page=%D9%A3",  # an Arabic-Indic three
    "/api/events?page=%EF%BC%91",  # a full-width one
    "/api/events?page=-1",
    "/api/events?page=1.5",
    "/api/events?size=0",
    "/api/events?size=51",
    "/api/live.jpg?after=%C2%B2",
    "/api/live.jpg?after=" + "9" * 5000,
]
MALFORMED_BODIES = [
    ("/api/login", b'{"token": "\\ud800"}'),  # a lone surrogate: no UTF-8 text
    ("/api/login", b"[" * 4000),  # nested too deeply for the JSON parser
    ("/api/login", b"\xff\xfe"),
    ("/api/login", b'{"token": 5}'),
    ("/api/login", b'{"token": ""}'),
    ("/api/login", json.dumps({"token": "x" * 2000}).encode()),
    ("/api/login", b"1" * 5000),  # over the body cap
    ("/api/review", b"[" * 4000),
    ("/api/review", b'{"note": "\\ud800", "event_id": "\\ud800"}'),
    ("/api/action/thresholds", b"[" * 4000),
    ("/api/action/thresholds", b'{"error": 1e999}'),
    ("/api/action/thresholds", b'{"error": "\\ud800"}'),
]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2"])
def test_every_malformed_value_gets_a_4xx_and_logs_no_traceback(tmp_path, host, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with running_console(tmp_path, receiver(), host=host) as (_, server):
        auth = {"Authorization": f"Bearer {TOKEN}"} if host != "127.0.0.1" else {}
        for path in MALFORMED_QUERIES:
            status, _, body = request(server.url + path, headers=auth)
            assert 400 <= status < 500 and json.loads(body)["ok"] is False, path
        for path, data in MALFORMED_BODIES:
            headers = {**ACTION, **(auth if path != "/api/login" else {})}
            status, _, _ = request(server.url + path, data=data, headers=headers, method="POST")
            assert 400 <= status < 500, (path, data[:30])
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text + capfd.readouterr().err


# -- Host names on a loopback console ----------------------------------------------------------
def test_a_loopback_console_accepts_loopback_names_on_any_port_and_refuses_foreign_hosts(
    tmp_path,
):
    daemon = receiver()
    with running_console(tmp_path, daemon) as (_, server):
        url = f"{server.url}/api/overview"
        for host in ("localhost:9000", "LOCALHOST:9001", "127.0.0.1:9002", "[::1]:9003",
                     "127.0.0.5:80", "localhost", f"localhost:{server.port}"):
            assert request(url, headers={"Host": host})[0] == 200, host
        for host in ("rebound.example", "rebound.example:9000", f"rebound.example:{server.port}",
                     "localhost.rebound.example:9000", "127.0.0.1.rebound.example:9000",
                     "localhost:99999", "localhost:x", "localhost:", "[::1]x", "192.0.2.1:9000"):
            assert request(url, headers={"Host": host})[0] == 403, host
        # a tunnelled page acts as its own origin; another local port's page does not
        tunnel = {"Host": "localhost:9000"}
        status, _, _ = request(
            f"{server.url}/api/action/trigger",
            data={},
            headers={**ACTION, **tunnel, "Origin": "http://localhost:9000"},
            method="POST",
        )
        assert status == 200
        status, _, _ = request(
            f"{server.url}/api/action/trigger",
            data={},
            headers={**ACTION, **tunnel, "Origin": "http://localhost:3000"},
            method="POST",
        )
        assert status == 403
        assert daemon.calls == [("trigger", None)]
