"""Commands received on ``<prefix>/<device>/cmd/<verb>``: strictly validated, then executed.

Anything on the network may arrive here, so validation is total: a payload that is not exactly
what a verb accepts gets an ``ok: false`` reply and the controller is never called. Payloads:

- ``snapshot``, ``trigger``, ``reload``: the JSON object ``{}``. An empty payload is never a
  command (it is how a retained message is cleared); a retained command is never run.
- ``thresholds``: a JSON object ``{"<label>": <number in [0, 1]>, ...}``, at least one known
  label, no unknown label, no duplicate key, no NaN/Infinity, no booleans.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from edge.mqtt.topics import COMMAND_VERBS
from edge.outputs import Controller

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096


class InvalidCommand(ValueError):
    """A command payload that does not match its verb's schema (the message is the reply)."""


@dataclass(frozen=True)
class CommandReply:
    """What goes back on ``cmd/result``."""

    command: str
    ok: bool
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "error": self.error, "result": self.result}


def _reject_constant(name: str) -> float:
    raise InvalidCommand(f"{name} is not a number here")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidCommand("duplicate key")
    return dict(pairs)


def _parse_json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidCommand(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("payload is not UTF-8") from None
    if not text.strip():
        raise InvalidCommand("empty payload is not a command (send {})")
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise InvalidCommand("payload nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InvalidCommand(f"payload is not JSON ({exc.msg})") from None


def parse_empty(payload: bytes) -> None:
    """Accept an empty payload or ``{}``; anything else is an error."""
    value = _parse_json(payload)
    if not isinstance(value, dict) or value:
        raise InvalidCommand("this command takes no arguments (empty payload or {})")


def parse_thresholds(payload: bytes, labels: tuple[str, ...]) -> dict[str, float]:
    """A non-empty ``{label: threshold}`` with known labels and finite thresholds in [0, 1]."""
    value = _parse_json(payload)
    if not isinstance(value, dict) or not value:
        raise InvalidCommand('expected a JSON object like {"error": 0.6}')
    thresholds: dict[str, float] = {}
    for label, raw in value.items():
        if label not in labels:
            raise InvalidCommand(f"unknown label {label!r}; labels are {', '.join(labels)}")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise InvalidCommand(f"threshold for {label!r} must be a number")
        threshold = float(raw)
        if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
            raise InvalidCommand(f"threshold for {label!r} must be within [0, 1]")
        thresholds[label] = threshold
    return thresholds


class CommandHandler:
    """Validate one command and, only if it is valid and enabled, run it on the controller."""

    def __init__(self, controller: Controller, enabled: bool = True) -> None:
        self._controller = controller
        self._enabled = enabled

    def handle(self, verb: str, payload: bytes) -> CommandReply:
        """Never raises: every outcome, including a controller failure, is a reply."""
        if not self._enabled:
            return CommandReply(verb, False, "commands are disabled")
        if verb not in COMMAND_VERBS:
            return CommandReply(verb, False, f"unknown command; known: {', '.join(COMMAND_VERBS)}")
        thresholds: dict[str, float] | None = None
        try:
            if verb == "thresholds":
                thresholds = parse_thresholds(payload, tuple(self._controller.labels))
            else:
                parse_empty(payload)
        except InvalidCommand as exc:
            return CommandReply(verb, False, str(exc))
        try:
            return CommandReply(verb, True, result=self._execute(verb, thresholds))
        except Exception as exc:  # the daemon's problem must not kill the MQTT thread
            log.warning("command %s failed: %s", verb, exc)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return CommandReply(verb, False, message)

    def _execute(self, verb: str, thresholds: dict[str, float] | None) -> dict[str, Any]:
        if verb == "snapshot":
            return {"snapshot": self._controller.request_snapshot()}
        if verb == "trigger":
            self._controller.trigger()
            return {}
        if verb == "reload":
            self._controller.reload()
            return {}
        return {"thresholds": self._controller.set_thresholds(dict(thresholds or {}))}
