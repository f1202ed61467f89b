"""The station's command vocabulary, in one table: verb -> argument model -> handler.

Every protocol that takes commands (MQTT's ``cmd/<verb>``, the console's actions, any later
one) only translates its wire format: the request body into ``answer(verb, body, ...)``, the
``Reply`` back into its own. Anything on the network may arrive, so validation is total: a body
that is not exactly what a verb accepts gets an ``ok: false`` reply and never reaches the
station. Bodies are JSON objects: ``{}`` for a verb without arguments, ``{"<label>": <number in
[0, 1]>, ...}`` for ``thresholds`` (known labels only, no duplicate key, no NaN or Infinity, no
booleans). An empty body is never a command (it is how a retained MQTT message is cleared).

Adding a verb is one entry in ``VERBS``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pi_inspect.edge.fleet.desired import Desired, InvalidDesired, parse_desired
from pi_inspect.edge.outputs import Command, Receiver, Reply
from pi_inspect.edge.parts import PART_ID_MAX

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096


class InvalidCommand(ValueError):
    """A body that does not match its verb's argument model (the message is the reply)."""


class Station(Protocol):
    """What the verbs ask of the station; every method is thread-safe."""

    def request_snapshot(self) -> str | None: ...

    def trigger(self, part_id: int | None = None, source: str = "command") -> int | None: ...

    def reload(self) -> bool: ...

    def set_thresholds(self, thresholds: dict[str, float]) -> dict[str, float]: ...

    def acknowledge(self) -> None: ...

    def collect(self, right: list[str] | None) -> str | None: ...

    def apply_desired(self, desired: Desired) -> bool: ...


Arguments = Callable[[Any, tuple[str, ...]], dict[str, Any]]  # (JSON value, labels) -> args
Handler = Callable[[Station, dict[str, Any]], Mapping[str, Any]]  # (station, args) -> result


def no_arguments(value: Any, _labels: tuple[str, ...]) -> dict[str, Any]:
    """The argument model of a verb that takes none: ``{}``."""
    if not isinstance(value, dict) or value:
        raise InvalidCommand("this command takes no arguments (send {})")
    return {}


def label_thresholds(value: Any, labels: tuple[str, ...]) -> dict[str, float]:
    """A non-empty ``{label: threshold}`` with known labels and finite thresholds in [0, 1]."""
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


def right_labels(value: Any, labels: tuple[str, ...]) -> dict[str, Any]:
    """``{}`` (no verdict said) or ``{"right": [<label>, ...]}``: the labels that are right for
    the latest frame, known labels without repeats; ``[]`` says it is good."""
    if not isinstance(value, dict) or set(value) - {"right"}:
        raise InvalidCommand('expected {} or {"right": [labels]} ([] for a good frame)')
    if "right" not in value:
        return {"right": None}
    right = value["right"]
    if not isinstance(right, list) or not all(isinstance(r, str) for r in right):
        raise InvalidCommand('"right" must be a list of labels ([] for a good frame)')
    unknown = [r for r in right if r not in labels]
    if unknown:
        raise InvalidCommand(f"unknown label {unknown[0]!r}; labels are {', '.join(labels)}")
    if len(set(right)) != len(right):
        raise InvalidCommand('"right" names a label twice')
    return {"right": list(right)}


def _collect(station: Station, args: dict[str, Any]) -> Mapping[str, Any]:
    sample = station.collect(args["right"])
    if sample is None:
        raise ValueError("no sample kept: no frame inspected yet, or the sample store refused it")
    return {"sample": sample}


def part_id(value: Any, _labels: tuple[str, ...]) -> dict[str, Any]:
    """``{}`` or ``{"part_id": <integer 0..4294967295>}``: the PLC's ID for the part, echoed
    in its result (0 or absent: none)."""
    if not isinstance(value, dict) or set(value) - {"part_id"}:
        raise InvalidCommand('expected {} or {"part_id": <integer>}')
    raw = value.get("part_id")
    if raw is None:
        return {"part_id": None}
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= PART_ID_MAX:
        raise InvalidCommand(f'"part_id" must be an integer in [0, {PART_ID_MAX}]')
    return {"part_id": raw or None}


def _trigger(station: Station, args: dict[str, Any]) -> Mapping[str, Any]:
    acq_id = station.trigger(args.get("part_id"), args.get("source", "command"))
    if acq_id is None:
        raise ValueError(
            'trigger.mode is "continuous": every frame is inspected already; a trigger applies '
            'with mode "gpio" or "demand"'
        )
    return {"acq_id": acq_id}


def _acknowledge(station: Station, _args: dict[str, Any]) -> Mapping[str, Any]:
    station.acknowledge()
    return {}


def desired_state(value: Any, _labels: tuple[str, ...]) -> dict[str, Any]:
    """A desired-state message of the fleet (``pi_inspect.edge.fleet.desired``, schema 1)."""
    try:
        return {"desired": parse_desired(value)}
    except InvalidDesired as exc:
        raise InvalidCommand(str(exc)) from None


def _desired(station: Station, args: dict[str, Any]) -> Mapping[str, Any]:
    return {"accepted": station.apply_desired(args["desired"])}


@dataclass(frozen=True)
class Verb:
    arguments: Arguments
    handler: Handler
    help: str
    operator: bool = True  # offered to the operator as a console action


VERBS: dict[str, Verb] = {
    "snapshot": Verb(
        no_arguments,
        lambda station, _args: {"snapshot": station.request_snapshot()},
        "save the latest inspected frame with the heat map of its top alarm label",
    ),
    "trigger": Verb(
        part_id,
        _trigger,
        "inspect the next trigger.frames frames as one part (optional part_id echoed)",
    ),
    "reload": Verb(
        no_arguments,
        lambda station, _args: {"reloaded": station.reload()},
        "re-read the config file and the bundle; anything bad is refused, the old one runs",
        operator=False,
    ),
    "thresholds": Verb(
        label_thresholds,
        lambda station, args: {"thresholds": station.set_thresholds(dict(args))},
        "set label thresholds until the next restart or reload",
    ),
    "acknowledge": Verb(no_arguments, _acknowledge, "release a latched red LED, relay and buzzer"),
    "collect": Verb(
        right_labels,
        _collect,
        "keep the latest inspected frame as a sample for retraining, with the right labels",
    ),
    "desired": Verb(
        desired_state,
        _desired,
        "run a bundle from the workstation in shadow or promote it ([fleet]; docs/fleet.md)",
        operator=False,
    ),
}
OPERATOR_VERBS = tuple(name for name, verb in VERBS.items() if verb.operator)


def _reject_constant(name: str) -> float:
    raise InvalidCommand(f"{name} is not a number here")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidCommand("duplicate key")
    return dict(pairs)


def decode(body: bytes) -> Any:
    """A request body as JSON: bounded, UTF-8, no duplicate keys, no NaN/Infinity."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidCommand(f"payload larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
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


def command(
    verb: str, body: bytes, labels: tuple[str, ...], known: tuple[str, ...] = ()
) -> Command:
    """The ``Command`` a request for ``verb`` with ``body`` asks for; raises ``InvalidCommand``.

    ``labels`` are the running model's (none before a model loads); ``known`` narrows the verbs
    a protocol offers (default: all of them).
    """
    offered = known or tuple(VERBS)
    if verb not in offered:
        raise InvalidCommand(f"unknown command; known: {', '.join(offered)}")
    return Command(verb, VERBS[verb].arguments(decode(body), labels))


def answer(
    verb: str,
    body: bytes,
    labels: tuple[str, ...],
    receiver: Receiver,
    known: tuple[str, ...] = (),
    station: str | None = None,
) -> Reply:
    """Validate one request for ``station`` (None: the only one); only a valid command
    reaches ``receiver``. Never raises."""
    try:
        valid = command(verb, body, labels, known)
    except InvalidCommand as exc:
        return Reply(verb, False, str(exc))
    return receiver(replace(valid, station=station) if station is not None else valid)


def run(station: Station, valid: Command) -> Reply:
    """Run a validated command on ``station``; a failure is an ``ok: false`` reply."""
    verb = VERBS.get(valid.verb)
    if verb is None:
        return Reply(valid.verb, False, f"unknown command {valid.verb!r}")
    try:
        return Reply(valid.verb, True, result=dict(verb.handler(station, dict(valid.args))))
    except Exception as exc:  # the station's problem must not kill the caller's thread
        log.warning("command %s failed: %s", valid.verb, exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Reply(valid.verb, False, message)
