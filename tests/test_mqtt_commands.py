"""Command validation: 10 000 random and malformed payloads never crash and never change state.

Fed to the validation directly (no broker) so it is fast; the broker-level reply is proven in
test_mqtt_output.py. Hypothesis is derandomized, so every run checks the same examples.
"""

from __future__ import annotations

import json

from conftest import RecordingReceiver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pi_inspect.edge.mqtt.topics import COMMAND_VERBS
from pi_inspect.edge.verbs import MAX_BODY_BYTES as MAX_PAYLOAD_BYTES
from pi_inspect.edge.verbs import answer

LABELS = ("error", "break", "length")
NO_ARG_VERBS = ("snapshot", "trigger", "reload", "acknowledge")
SETTINGS = dict(
    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bad_threshold_values = (
    st.booleans()
    | st.none()
    | st.text(max_size=5)
    | st.lists(st.floats(0, 1), max_size=2)
    | st.floats(min_value=1.0, exclude_min=True, allow_infinity=False)
    | st.floats(max_value=0.0, exclude_max=True, allow_infinity=False)
    | st.integers(min_value=2)
    | st.integers(max_value=-1)
)
valid_thresholds = st.dictionaries(st.sampled_from(LABELS), st.floats(0.0, 1.0), min_size=1)


def _enc(value) -> bytes:
    return json.dumps(value).encode()


@st.composite
def invalid_commands(draw) -> tuple[str, bytes]:
    """A (verb, payload) pair that is invalid by construction."""
    kind = draw(st.integers(0, 9))
    verb = draw(st.sampled_from(COMMAND_VERBS))
    if kind == 0:  # not UTF-8
        return verb, b"\xff" + draw(st.binary(max_size=40))
    if kind == 1:  # not JSON at all (and not blank)
        text = draw(st.text(min_size=1, max_size=40).filter(lambda t: t.strip()))
        return verb, ("{" + text).encode()
    if kind == 2:  # JSON, but not an object
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return verb, _enc(value)
    if kind == 3:  # arguments to a command that takes none
        args = draw(st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=3))
        return draw(st.sampled_from(NO_ARG_VERBS)), _enc(args)
    if kind == 4:  # a threshold for an unknown label
        good = draw(valid_thresholds)
        unknown = draw(st.text(max_size=10).filter(lambda t: t not in LABELS))
        return "thresholds", _enc({**good, unknown: 0.5})
    if kind == 5:  # a threshold that is not a number in [0, 1]
        good = draw(valid_thresholds)
        label = draw(st.sampled_from(LABELS))
        return "thresholds", _enc({**good, label: draw(bad_threshold_values)})
    if kind == 6:  # NaN / Infinity literals, duplicate keys, empty object
        return "thresholds", draw(
            st.sampled_from(
                [
                    b'{"error": NaN}',
                    b'{"break": Infinity}',
                    b'{"length": -Infinity}',
                    b'{"error": 0.5, "error": 0.6}',
                    b"{}",
                    b"",
                ]
            )
        )
    if kind == 7:  # too large, though otherwise valid
        padding = " " * (MAX_PAYLOAD_BYTES + 1)
        return verb, (padding + ("{}" if verb != "thresholds" else '{"error": 0.5}')).encode()
    if kind == 8:  # deeply nested
        depth = draw(st.integers(500, 3000))
        return verb, b"[" * depth + b"]" * depth
    # an unknown verb, whatever the payload
    unknown_verb = draw(st.text(max_size=12).filter(lambda v: v not in COMMAND_VERBS))
    return unknown_verb, draw(st.binary(max_size=40))


@settings(max_examples=10_000, **SETTINGS)
@given(invalid_commands())
def test_malformed_commands_get_an_error_reply_and_change_nothing(command):
    verb, payload = command
    receiver = RecordingReceiver(LABELS)
    before = dict(receiver.thresholds)
    reply = answer(verb, payload, LABELS, receiver)
    assert reply.ok is False and reply.error
    assert receiver.calls == [] and receiver.thresholds == before
    json.dumps(reply.to_dict())  # the reply itself is always publishable JSON


@settings(max_examples=1_000, **SETTINGS)
@given(st.sampled_from((*COMMAND_VERBS, "bogus")), st.binary(max_size=64))
def test_random_bytes_never_crash_and_only_a_success_reaches_the_receiver(verb, payload):
    receiver = RecordingReceiver(LABELS)
    reply = answer(verb, payload, LABELS, receiver)
    assert len(receiver.calls) == (1 if reply.ok else 0)


@settings(max_examples=300, **SETTINGS)
@given(valid_thresholds, st.sampled_from(["", " ", "\n"]))
def test_valid_thresholds_reach_the_receiver_exactly(thresholds, pad):
    receiver = RecordingReceiver(LABELS)
    reply = answer("thresholds", (pad + json.dumps(thresholds)).encode(), LABELS, receiver)
    assert reply.ok, reply.error
    assert receiver.calls == [("thresholds", thresholds)]
    assert reply.result["thresholds"] == receiver.thresholds


def test_commands_without_arguments_accept_only_the_empty_object():
    for verb in NO_ARG_VERBS:
        for payload in (b"{}", b" { } \n"):
            receiver = RecordingReceiver(LABELS)
            reply = answer(verb, payload, LABELS, receiver)
            assert reply.ok and receiver.calls == [(verb, None)]
    reply = answer("snapshot", b"{}", LABELS, RecordingReceiver(LABELS))
    assert reply.result == {"snapshot": "snap-0001.jpg"}


def test_an_empty_payload_is_not_a_command():
    for verb in COMMAND_VERBS:
        for payload in (b"", b" \n"):
            receiver = RecordingReceiver(LABELS)
            reply = answer(verb, payload, LABELS, receiver)
            assert not reply.ok and receiver.calls == []


def test_a_failing_command_becomes_an_error_reply():
    from pi_inspect.edge.daemon.dispatch import Dispatcher

    class Station:
        def reload(self):
            raise OSError("bundle unreadable\nsecond line")

    dispatcher = Dispatcher(lambda *_: None, Station())
    reply = answer("reload", b"{}", LABELS, dispatcher.receive)
    assert reply.ok is False and reply.error == "bundle unreadable"
