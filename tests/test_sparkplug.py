"""Sparkplug B against a real mosquitto broker, every payload decoded by the reference protobuf
runtime (a Payload class built here from a FileDescriptorProto of sparkplug_b.proto's subset),
not by the hand-written codec under test."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from pydantic import ValidationError

from pi_inspect.edge.events import ModelInfo, State, Stats
from pi_inspect.edge.mqtt import make_output
from pi_inspect.edge.mqtt.config import MqttConfig, SparkplugConfig
from pi_inspect.edge.mqtt.output import MqttOutput
from pi_inspect.edge.mqtt.sparkplug import (
    make_sparkplug,
    sparkplug_client_id,
    sparkplug_topics,
)
from pi_inspect.edge.mqtt.sparkplug_fanout import SparkplugFanOut
from pi_inspect.edge.mqtt.sparkplug_metrics import DEVICE_METRICS
from pi_inspect.edge.mqtt.sparkplug_payload import (
    MalformedPayload,
    Metric,
    decode_command,
    encode_payload,
)
from pi_inspect.edge.outputs import CommandSource, PartOutput
from pi_inspect.edge.parts import PartResult

GROUP, NODE, DEVICE = "plant", "line1", "station"
NCMD = f"spBv1.0/{GROUP}/NCMD/{NODE}"
LABELS = ("error", "break", "length")
RUNNING = State("ok", (), ModelInfo("seam", "3", "ab" * 32, LABELS), 1_700_000_000.0)
INT32, INT64, UINT32, UINT64, FLOAT, DOUBLE, BOOLEAN, STRING = 3, 4, 7, 8, 9, 10, 11, 12


# -- the reference decoder ----------------------------------------------------------------------
def _payload_class() -> Any:
    """``Payload`` of sparkplug_b.proto (proto2), the fields pi-inspect uses."""
    f = descriptor_pb2.FieldDescriptorProto
    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(
        name="sparkplug_b_subset.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = fdp.message_type.add(name="Payload")
    payload.field.add(name="timestamp", number=1, label=opt, type=f.TYPE_UINT64)
    payload.field.add(
        name="metrics",
        number=2,
        label=rep,
        type=f.TYPE_MESSAGE,
        type_name=".org.eclipse.tahu.protobuf.Payload.Metric",
    )
    payload.field.add(name="seq", number=3, label=opt, type=f.TYPE_UINT64)
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in [
        ("name", 1, f.TYPE_STRING),
        ("alias", 2, f.TYPE_UINT64),
        ("timestamp", 3, f.TYPE_UINT64),
        ("datatype", 4, f.TYPE_UINT32),
        ("is_null", 7, f.TYPE_BOOL),
    ]:
        metric.field.add(name=name, number=number, label=opt, type=kind)
    for name, number, kind in [
        ("int_value", 10, f.TYPE_UINT32),
        ("long_value", 11, f.TYPE_UINT64),
        ("float_value", 12, f.TYPE_FLOAT),
        ("double_value", 13, f.TYPE_DOUBLE),
        ("boolean_value", 14, f.TYPE_BOOL),
        ("string_value", 15, f.TYPE_STRING),
    ]:
        metric.field.add(name=name, number=number, label=opt, type=kind, oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    return message_factory.GetMessageClass(pool.Add(fdp).message_types_by_name["Payload"])


Payload = _payload_class()


def decode(data: bytes) -> Any:
    msg = Payload()
    msg.ParseFromString(data)
    return msg


def values(msg: Any) -> dict[str, Any]:
    """name -> value of each metric (None where is_null)."""
    out = {}
    for m in msg.metrics:
        kind = m.WhichOneof("value")
        out[m.name] = None if m.is_null or kind is None else getattr(m, kind)
    return out


def types(msg: Any) -> dict[str, int]:
    return {m.name: m.datatype for m in msg.metrics}


def sparkplug(sub) -> list[tuple[str, Any]]:
    """(message type, decoded payload) of every message the node sent so far, in arrival order
    (the commands the tests send are left out)."""
    sent = [(t.split("/")[2], p) for t, p, _ in list(sub.messages)]
    return [(kind, decode(p)) for kind, p in sent if kind != "NCMD"]


def kinds(sub) -> list[str]:
    return [kind for kind, _ in sparkplug(sub)]


def seqs_after_last_nbirth(sub) -> list[int]:
    msgs = sparkplug(sub)
    start = max(i for i, (kind, _) in enumerate(msgs) if kind == "NBIRTH")
    return [msg.seq for kind, msg in msgs[start:] if kind != "NDEATH"]


# -- fixtures -------------------------------------------------------------------------------
def config_for(broker, **sparkplug) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "enabled": True,
            "host": broker.host,
            "port": broker.port,
            "reconnect_min_s": 1,
            "reconnect_max_s": 1,
            "discovery": {"enabled": False},
            "sparkplug": {"enabled": True, "group_id": GROUP, "device": DEVICE, **sparkplug},
        }
    )


@pytest.fixture
def spb_sub(mosquitto_broker, mqtt_subscribe):
    return mqtt_subscribe(mosquitto_broker, [f"spBv1.0/{GROUP}/#"])


@pytest.fixture
def born(mosquitto_broker, spb_sub):
    """A started publisher (edge node ``line1``) whose NBIRTH and DBIRTH have arrived."""
    out = make_sparkplug(config_for(mosquitto_broker), NODE, sw_version="9.9")
    assert spb_sub.wait_for(lambda m: kinds(spb_sub) == ["NBIRTH", "DBIRTH"])
    assert spb_sub.wait_for(lambda m: out.listening, timeout=5)
    yield out
    out.close()


@pytest.fixture
def running(born, spb_sub):
    """``born`` once it announced the model's labels (new metrics: a second NBIRTH, DBIRTH)."""
    born.publish_state(RUNNING)
    assert spb_sub.wait_for(lambda m: kinds(spb_sub) == ["NBIRTH", "DBIRTH"] * 2)
    return born


def part(acq: int, code: str = "ok", part_id: int | None = None, late: bool = False):
    scores = {"error": round(0.01 * (acq % 100), 2), "break": 0.2, "length": 0.9}
    return PartResult(
        acq_id=acq,
        part_id=part_id,
        source="plc",
        code=code,
        verdict="ok" if code == "ok" else "ng",
        alarms=("error",) if code == "ng" else (),
        scores=scores,
        frames=(acq,),
        processing_ms=4.0,
        latency_ms=12.5 + acq,
        late=late,
        triggered_at=1_700_000_000.0 + acq,
    )


def stats(**kw) -> Stats:
    base = dict(
        fps=12.5,
        latency_p50_ms=20.0,
        latency_p95_ms=30.0,
        frames=100,
        dropped_frames=1,
        uptime_s=8.0,
        camera_online=True,
        cpu_temp_c=55.0,
    )
    return Stats(**{**base, **kw})


# -- tests ----------------------------------------------------------------------------------
def test_birth_then_data_in_sequence_with_the_part_result_fields(born, spb_sub):
    (_, nbirth), (_, dbirth) = sparkplug(spb_sub)
    assert nbirth.HasField("seq") and nbirth.seq == 0 and dbirth.seq == 1
    assert values(nbirth)["bdSeq"] == 0 and types(nbirth)["bdSeq"] == UINT64
    assert values(nbirth)["Node Control/Rebirth"] is False
    assert values(nbirth)["Properties/Software Version"] == "9.9"
    assert set(DEVICE_METRICS) <= set(values(dbirth))  # the full set, even before any value
    assert types(dbirth)["Last Part/Acq ID"] == UINT64 and values(dbirth)["Parts/Total"] == 0
    assert values(dbirth)["State/Verdict"] is None  # unknown yet: is_null

    born.publish_state(RUNNING)  # new metrics (a score per label): born again
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[2:] == ["NBIRTH", "DBIRTH"])
    reborn = sparkplug(spb_sub)[3][1]
    assert values(reborn)["State/Verdict"] == "ok" and values(reborn)["State/Model"] == "seam 3"
    assert {f"Last Part/Scores/{label}" for label in LABELS} <= set(values(reborn))
    assert values(sparkplug(spb_sub)[2][1])["bdSeq"] == 0  # same session, same bdSeq

    n = 270  # past 255: seq wraps
    born.publish_part(part(1, "ok", part_id=4242))
    born.publish_stats(stats())
    born.publish_state(State("defect", ("error",), RUNNING.model, 1_700_000_001.0))
    for acq in range(2, n + 1):
        born.publish_part(part(acq, "ng" if acq % 3 == 0 else "ok", late=acq % 10 == 0))
    expected = 2 + 1 + 2 + 1 + (n - 1)  # births, part 1, stats (NDATA + DDATA), state, parts
    assert spb_sub.wait_for(lambda m: len(seqs_after_last_nbirth(spb_sub)) == expected)
    assert seqs_after_last_nbirth(spb_sub) == [i % 256 for i in range(expected)]

    data = sparkplug(spb_sub)[4:]
    assert [kind for kind, _ in data[:4]] == ["DDATA", "NDATA", "DDATA", "DDATA"]
    first = values(data[0][1])
    assert first["Last Part/Acq ID"] == 1 and first["Last Part/Part ID"] == 4242
    assert first["Last Part/Code"] == "ok" and first["Last Part/Verdict"] == "ok"
    assert first["Last Part/Latency ms"] == 13.5
    assert first["Last Part/Scores/length"] == 0.9 and first["Last Part/Scores/error"] == 0.01
    assert first["Parts/Total"] == 1 and first["Parts/OK"] == 1
    assert "State/Verdict" not in first  # only what changed
    assert values(data[1][1]) == {"Node/CPU Temp C": 55.0}
    assert values(data[2][1])["Stats/FPS"] == 12.5 and values(data[2][1])["Stats/Frames"] == 100
    assert values(data[3][1]) == {"State/Verdict": "defect", "State/Active": "error"}
    last = values(data[-1][1])
    assert last["Last Part/Acq ID"] == n and last["Parts/Total"] == n
    assert last["Parts/NG"] == n // 3 and last["Parts/Late"] == n // 10
    assert data[-1][1].metrics[0].timestamp > 0 and data[-1][1].timestamp > 0


def test_an_abrupt_connection_loss_delivers_ndeath_with_the_births_bdseq(running, spb_sub):
    running.publish_part(part(1))
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[4:] == ["DDATA"])
    running._client.socket().shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the broker sends the will
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[5:] == ["NDEATH", "NBIRTH", "DBIRTH"])
    msgs = sparkplug(spb_sub)
    nbirth, ndeath, rebirth = msgs[0][1], msgs[5][1], msgs[6][1]
    assert values(ndeath) == {"bdSeq": values(nbirth)["bdSeq"]} == {"bdSeq": 0}
    assert types(ndeath)["bdSeq"] == UINT64 and not ndeath.HasField("seq")
    assert values(rebirth)["bdSeq"] == 1 and rebirth.seq == 0  # a new session: the next bdSeq
    assert values(msgs[7][1])["Last Part/Acq ID"] == 1  # the new DBIRTH has the current values
    running.close()
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[8:] == ["DDEATH", "NDEATH"])
    assert values(sparkplug(spb_sub)[9][1]) == {"bdSeq": 1}


CHILD = """
import sys, time
from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.mqtt.sparkplug import make_sparkplug
config = MqttConfig.model_validate({"enabled": True, "host": "127.0.0.1", "port": int(sys.argv[1]),
    "sparkplug": {"enabled": True, "group_id": "plant"}})
make_sparkplug(config, "line1")
time.sleep(60)
"""


def test_a_killed_station_process_gets_ndeath_from_the_broker(mosquitto_broker, spb_sub):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(mosquitto_broker.port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert spb_sub.wait_for(lambda m: kinds(spb_sub) == ["NBIRTH", "DBIRTH"], timeout=20)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert spb_sub.wait_for(lambda m: kinds(spb_sub) == ["NBIRTH", "DBIRTH", "NDEATH"])
        nbirth, ndeath = sparkplug(spb_sub)[0][1], sparkplug(spb_sub)[2][1]
        assert values(ndeath)["bdSeq"] == values(nbirth)["bdSeq"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _command(metrics: list[Metric]) -> bytes:
    msg = Payload(timestamp=int(time.time() * 1000), seq=0)
    for m in metrics:
        metric = msg.metrics.add(name=m.name, datatype=m.datatype)
        if m.datatype == BOOLEAN:
            metric.boolean_value = m.value
        else:
            metric.string_value = m.value
    return msg.SerializeToString()


def test_a_rebirth_command_gives_a_new_nbirth_and_dbirth_and_junk_is_ignored(running, spb_sub):
    pub = spb_sub.client
    running.publish_part(part(1))
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[4:] == ["DDATA"])
    for junk in (b"\xff\xff\xff", b"\x12\x05ab", b"\x0b", b"", b"\x12\x02\x0a\x09"):
        pub.publish(NCMD, junk, qos=1)
    pub.publish(NCMD, _command([Metric("Node Control/Rebirth", BOOLEAN, False)]), qos=1)
    pub.publish(NCMD, _command([Metric("Other", STRING, "x")]), qos=1)
    pub.publish(f"{NCMD}/other", _command([Metric("Node Control/Rebirth", BOOLEAN, True)]), qos=1)
    pub.publish(NCMD, _command([Metric("Node Control/Rebirth", BOOLEAN, True)]), qos=1)
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[5:] == ["NBIRTH", "DBIRTH"])
    msgs = sparkplug(spb_sub)
    assert (msgs[5][1].seq, msgs[6][1].seq) == (0, 1)
    assert values(msgs[5][1])["bdSeq"] == values(msgs[0][1])["bdSeq"] == 0
    assert values(msgs[6][1])["Last Part/Acq ID"] == 1
    running.publish_part(part(2))
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[7:] == ["DDATA"])
    assert sparkplug(spb_sub)[7][1].seq == 2 and running.born


def test_a_clean_close_sends_ddeath_then_ndeath_and_no_will(running, spb_sub):
    running.publish_part(part(1))
    running.close()
    running.close()  # idempotent
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[4:] == ["DDATA", "DDEATH", "NDEATH"])
    msgs = sparkplug(spb_sub)
    assert msgs[5][1].seq == 3 and not msgs[5][1].metrics
    assert values(msgs[6][1]) == {"bdSeq": 0} and not msgs[6][1].HasField("seq")
    time.sleep(0.3)  # a will would follow the socket's close at once
    assert kinds(spb_sub).count("NDEATH") == 1
    running.publish_part(part(2))  # after close: dropped, never raises
    assert not running.born


def test_make_output_fans_out_to_the_mqtt_output_and_sparkplug(
    mosquitto_broker, mqtt_subscribe, spb_sub, tmp_path: Path
):
    main = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/state"])
    out = make_output(config_for(mosquitto_broker), tmp_path, NODE)
    try:
        assert isinstance(out, SparkplugFanOut)
        assert isinstance(out, CommandSource) and isinstance(out, PartOutput)
        assert spb_sub.wait_for(lambda m: kinds(spb_sub) == ["NBIRTH", "DBIRTH"])
        assert spb_sub.wait_for(lambda m: out.connected, timeout=5)  # the MQTT output's
        out.publish_state(RUNNING)
        out.publish_part(part(7))
        assert main.wait_for(lambda m: len(m) == 1)
        assert spb_sub.wait_for(lambda m: kinds(spb_sub)[-1:] == ["DDATA"])
        assert values(sparkplug(spb_sub)[-1][1])["Last Part/Acq ID"] == 7
        health = out.health().stats
        assert health["mqtt_connected"] is True and health["sparkplug_connected"] is True
        assert spb_sub.wait_for(lambda m: out.spool_depth == 0, timeout=5)  # the MQTT output's
    finally:
        out.close()
    assert spb_sub.wait_for(lambda m: kinds(spb_sub)[-2:] == ["DDEATH", "NDEATH"])
    plain = make_output(config_for(mosquitto_broker, enabled=False), tmp_path / "b", NODE)
    plain.close()
    assert isinstance(plain, MqttOutput)


@pytest.mark.parametrize("key", ["group_id", "edge_node", "device"])
@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x\x00"])
def test_config_rejects_ids_that_are_not_one_topic_level(key: str, bad: str):
    with pytest.raises(ValidationError, match=f"sparkplug.{key}"):
        MqttConfig.model_validate({"sparkplug": {key: bad}})


def test_config_defaults_topics_and_client_id():
    spb = SparkplugConfig()
    assert (spb.enabled, spb.group_id, spb.edge_node, spb.device) == (
        False,
        "pi-inspect",
        None,
        "station",
    )
    config = MqttConfig()
    topics = sparkplug_topics(config, "line7")
    assert topics.node("NBIRTH") == "spBv1.0/pi-inspect/NBIRTH/line7"
    assert topics.of_device("DDATA") == "spBv1.0/pi-inspect/DDATA/line7/station"
    named = MqttConfig.model_validate({"sparkplug": {"edge_node": "cell-4"}, "client_id": "pi9"})
    assert sparkplug_topics(named, "line7").node("NCMD") == "spBv1.0/pi-inspect/NCMD/cell-4"
    assert sparkplug_client_id(named, "line7") == "pi9-spb"
    assert sparkplug_client_id(config, "line7") == "pi-inspect-line7-spb"
    assert len(sparkplug_client_id(MqttConfig(client_id="c" * 64), "x")) == 64


def test_the_codec_matches_the_reference_runtime_both_ways():
    metrics = [
        Metric("i32", INT32, -5),
        Metric("u32", UINT32, 4_000_000_000),
        Metric("i64", INT64, -7),
        Metric("u64", UINT64, 2**64 - 1),
        Metric("f", FLOAT, 1.5),
        Metric("d", DOUBLE, -0.1),
        Metric("b", BOOLEAN, True),
        Metric("s", STRING, "naïve ✓"),
        Metric("null", DOUBLE, None, timestamp=123),
    ]
    msg = decode(encode_payload(1_700_000_000_123, metrics, seq=255))
    assert (msg.timestamp, msg.seq) == (1_700_000_000_123, 255)
    got = values(msg)
    assert got["i32"] == 2**32 - 5 and got["i64"] == 2**64 - 7  # two's complement, per the spec
    assert got["u32"] == 4_000_000_000 and got["u64"] == 2**64 - 1
    assert (got["f"], got["d"], got["b"], got["s"]) == (1.5, -0.1, True, "naïve ✓")
    assert got["null"] is None and msg.metrics[-1].timestamp == 123
    assert types(msg) == {m.name: m.datatype for m in metrics}
    assert not decode(encode_payload(1, [])).HasField("seq")

    command = _command(
        [Metric("Other", STRING, "x"), Metric("Node Control/Rebirth", BOOLEAN, True)]
    )
    assert decode_command(command) == {"Other": "x", "Node Control/Rebirth": True}


def test_malformed_commands_raise_only_malformed_payload():
    rng = random.Random(7)
    good = _command([Metric("Node Control/Rebirth", BOOLEAN, True)])
    samples = [good[:cut] for cut in range(len(good))]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(500)]
    rejected = 0
    for data in samples:  # any other exception fails the test
        try:
            decode_command(data)
        except MalformedPayload:
            rejected += 1
    assert rejected > len(samples) // 2
    assert decode_command(good) == {"Node Control/Rebirth": True}
