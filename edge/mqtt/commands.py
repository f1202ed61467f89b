"""Commands received on ``<prefix>/<device>/cmd/<verb>``: strict validation, nothing else.

Anything on the network may arrive here, so validation is total: a payload that is not exactly
what a verb accepts gets an ``ok: false`` reply and never reaches the daemon. Payloads:

- ``snapshot``, ``trigger``, ``reload``, ``acknowledge``: the JSON object ``{}``. An empty
  payload is never a command (it is how a retained message is cleared); a retained command is
  never run.
- ``thresholds``: a JSON object ``{"<label>": <number in [0, 1]>, ...}``, at least one known
  label, no unknown label, no duplicate key, no NaN/Infinity, no booleans.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edge.mqtt.topics import COMMAND_VERBS
from edge.outputs import Command, Receiver, Reply

MAX_PAYLOAD_BYTES = 4096


class InvalidCommand(ValueError):
    """A command payload that does not match its verb's schema (the message is the reply)."""


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
    """Accept ``{}``; anything else is an error."""
    value = _parse_json(payload)
    if not isinstance(value, dict) or value:
        raise InvalidCommand("this command takes no arguments (send {})")


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


def validate(verb: str, payload: bytes, labels: tuple[str, ...]) -> Command:
    """The ``Command`` a message on ``cmd/<verb>`` asks for; raises ``InvalidCommand``.

    ``labels`` are the running model's (from the last ``State``); none before a model loads.
    """
    if verb not in COMMAND_VERBS:
        raise InvalidCommand(f"unknown command; known: {', '.join(COMMAND_VERBS)}")
    if verb == "thresholds":
        return Command(verb, parse_thresholds(payload, labels))
    parse_empty(payload)
    return Command(verb)


def answer(verb: str, payload: bytes, labels: tuple[str, ...], receiver: Receiver) -> Reply:
    """Validate one message; only a valid command reaches ``receiver``. Never raises."""
    try:
        command = validate(verb, payload, labels)
    except InvalidCommand as exc:
        return Reply(verb, False, str(exc))
    return receiver(command)
