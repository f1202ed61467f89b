"""Mutated configs never give a traceback: each parses or is refused with key-path problems.

Seeded mutations of the shipped example and of a config that sets every section: wrong types,
odd values (huge, NaN, inf, negative, unicode, NUL, empty), deep nesting, unknown and dropped
keys, and paths that cannot work. Every mutant goes through ``parse_config`` and the pre-flight;
a sample is written as TOML and checked with the real CLI entry (exit 0 or 2, no traceback).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib

from pi_inspect.edge import preflight
from pi_inspect.edge.cli import main
from pi_inspect.edge.config import Config, parse_config
from pi_inspect.edge.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "systemd" / "config.example.toml"
MUTANTS_PER_BASE = 300  # two bases: 600 configs
CLI_EVERY = 12  # every 12th mutant also through `pi-inspect check-config`

FULL: dict[str, Any] = {
    "state_dir": "state",
    "source": {
        "kind": "usb",
        "uri": "0",
        "loop": False,
        "width": 640,
        "height": 480,
        "fps": 15.0,
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 10.0,
    },
    "model": {
        "bundle": "models/current",
        "backend": "auto",
        "num_threads": 2,
        "thresholds": {"error": 0.5, "length": 0.7},
        "retry_s": 15.0,
    },
    "trigger": {"mode": "gpio", "frames": 2, "pull_up": True, "bounce_s": 0.05, "pin": 5},
    "decide": {"n": 4, "m": 5, "k": 3},
    "gpio": {
        "enabled": True,
        "pin_factory": "mock",
        "green": 17,
        "red": 27,
        "amber": 22,
        "buzzer": 23,
        "relay": 24,
        "relay_active_high": True,
        "ack_button": 25,
        "red_mode": "hold",
        "latch": True,
        "beep_s": 0.3,
    },
    "snapshots": {
        "enabled": True,
        "dir": "snapshots",
        "max_count": 300,
        "max_bytes": 200_000_000,
        "max_age_s": 86400.0,
        "jpeg_quality": 85,
    },
    "stdout": {"enabled": True, "results": False},
    "output": {"stats_interval_s": 10.0},
    "pipeline": {"queue": 2, "drop": "auto", "heartbeat_timeout_s": 15.0},
    "device": {"id": "pi-7"},
    "mqtt": {
        "enabled": True,
        "host": "broker.lan",
        "port": 8883,
        "prefix": "factory/line1",
        "client_id": "pi-7-inspect",
        "tls": {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "k.pem"},
        "username": "pi",
        "password": "secret",
        "qos": 1,
        "keepalive": 30,
        "reconnect_min_s": 1,
        "reconnect_max_s": 30,
        "max_inflight": 20,
        "snapshot": True,
        "result": {"enabled": True, "max_rate_hz": 2.0},
        "commands": {"enabled": True},
        "discovery": {"enabled": True, "prefix": "homeassistant"},
        "spool": {"path": "spool.sqlite3", "max_events": 1000, "durable": False},
    },
}

ODD_VALUES: list[Any] = [
    0,
    -1,
    1,
    27,
    28,
    40,
    255,
    256,
    2**31,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
    0.0,
    -0.0,
    1e-300,
    1e300,
    math.inf,
    -math.inf,
    math.nan,
    0.5,
    1.5,
    True,
    False,
    "",
    " ",
    "0",
    "99999999999999999999",
    "٣",
    "²",
    "auto",
    "gpio",
    "ü∂ßå 🙂",
    "a\x00b",
    "\x00",
    "x" * 5000,
    "/dev/null",
    "/dev/video0",
    "~",
    "~/x",
    "~nosuchuser/x",
    "~root",
    "/etc/hostname/x",
    "../../etc/passwd",
    "rtsp://cam/1",
    "/",
    ".",
    "a/b/../../..",
    [],
    [1, 2],
    ["a"],
    {},
    {"x": 1},
    {"enabled": True},
    dt.datetime(1979, 5, 27, 7, 32, tzinfo=dt.timezone.utc),
    dt.date(2024, 1, 1),
]
ODD_KEYS = ["enabled ", "Enabled", "uri2", "", "ключ", "a\x00", "🙂", "x" * 300, "mqtt", "gpio"]


def _leaves(tree: Any, at: tuple = ()) -> list[tuple]:
    """Paths to every value (dicts, lists and scalars alike), down to 12 levels."""
    found = [at] if at else []
    if len(at) >= 12:
        return found
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _leaves(value, (*at, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += _leaves(value, (*at, i))
    return found


def _get(tree: Any, at: tuple) -> Any:
    for part in at:
        tree = tree[part]
    return tree


def _parent(tree: Any, at: tuple) -> tuple[Any, Any]:
    return _get(tree, at[:-1]), at[-1]


def _nested(depth: int, inner: Any) -> Any:
    value = inner
    for i in range(depth):
        value = {"n": value} if i % 2 else [value]
    return value


def mutate(base: dict[str, Any], rng: random.Random, tmp: Path) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for _ in range(rng.randint(1, 4)):
        paths = _leaves(data)
        op = rng.choice(["value", "value", "value", "path", "drop", "add", "nest", "number"])
        if not paths:
            op = "add"
        if op == "add":
            dicts = [()] + [p for p in paths if isinstance(_get(data, p), dict)]
            target = _get(data, rng.choice(dicts))
            target[rng.choice(ODD_KEYS)] = rng.choice(ODD_VALUES)
            continue
        at = rng.choice(paths)
        holder, key = _parent(data, at)
        if op == "drop" and isinstance(holder, dict):
            del holder[key]
        elif op == "nest":
            holder[key] = _nested(rng.choice([2, 30, 300, 3000]), holder[key])
        elif op == "path":
            holder[key] = rng.choice(
                [
                    str(tmp / "file"),
                    str(tmp / "file" / "below"),
                    str(tmp),
                    str(tmp / "new"),
                    "/dev/null",
                    "/proc/self/mem",
                    "~nosuchuser/x",
                    "a\x00b",
                    "/" + "x" * 300,
                    "/" + "/".join(["y"] * 3000),
                ]
            )
        elif op == "number":
            holder[key] = rng.choice(
                [
                    rng.randint(-(10**6), 10**6),
                    rng.uniform(-1e6, 1e6),
                    10 ** rng.randint(5, 50),
                    -(10 ** rng.randint(5, 50)),
                    rng.choice([math.inf, -math.inf, math.nan]),
                ]
            )
        else:
            holder[key] = rng.choice(ODD_VALUES)
    return data


# --- a small TOML writer (inline tables and arrays are enough for any tree) ---------------------


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else _toml_str(str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{_toml_str(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(type(value))


def to_toml(data: dict[str, Any]) -> str:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20_000))  # the writer recurses; the reader must cope itself
    try:
        return "".join(f"{_toml_str(str(k))} = {_toml_value(v)}\n" for k, v in data.items())
    finally:
        sys.setrecursionlimit(old)


def _check_problems(exc: ConfigError, seed: int) -> None:
    assert exc.problems, f"seed {seed}: {exc} without problems"
    for problem in exc.problems:
        assert isinstance(problem, str) and ": " in problem, (seed, problem)


@pytest.mark.parametrize("base_name", ["example", "full"])
def test_mutated_configs_parse_or_give_key_path_problems_never_a_traceback(
    base_name, tmp_path, capsys
):
    base = tomllib.loads(EXAMPLE.read_text()) if base_name == "example" else FULL
    parse_config(copy.deepcopy(base))  # the base itself is valid
    (tmp_path / "file").write_text("not a directory")
    rng = random.Random(f"config-fuzz-{base_name}")
    outcomes = {"valid": 0, "refused": 0, "cli_0": 0, "cli_2": 0}
    for seed in range(MUTANTS_PER_BASE):
        data = mutate(base, rng, tmp_path)
        try:
            config = parse_config(data)
        except ConfigError as exc:
            _check_problems(exc, seed)
            outcomes["refused"] += 1
        else:
            assert isinstance(config, Config)
            assert all(": " in p for p in preflight.problems(config)), seed
            outcomes["valid"] += 1
        if seed % CLI_EVERY == 0:
            path = tmp_path / f"mutant-{base_name}-{seed}.toml"
            path.write_text(to_toml(data), encoding="utf-8")
            code = main(["check-config", str(path)])
            err = capsys.readouterr().err
            assert code in (0, 2), (seed, code, err[-2000:])
            assert "Traceback" not in err, (seed, err[-2000:])
            if code == 2:
                assert err.rstrip().splitlines()[-1].startswith("pi-inspect check-config: error:")
            outcomes[f"cli_{code}"] += 1
    print(f"{base_name}: {outcomes}")
    # The mutations must exercise both outcomes, or the test proves little.
    assert outcomes["valid"] >= 10 and outcomes["refused"] >= MUTANTS_PER_BASE // 2, outcomes
    assert outcomes["cli_2"] >= 5, outcomes
