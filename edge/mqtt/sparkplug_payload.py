"""The Sparkplug B ``Payload`` protobuf, written and read by hand so the runtime needs no
protobuf package: the few fields pi-inspect sends, and just enough of an incoming one to see a
``Node Control/Rebirth`` command.

Wire format (sparkplug_b.proto, proto2): Payload ``timestamp=1`` (uint64), ``metrics=2``
(Metric), ``seq=3`` (uint64); Metric ``name=1``, ``alias=2``, ``timestamp=3``, ``datatype=4``,
``is_null=7`` and one value: ``int_value=10`` (uint32), ``long_value=11`` (uint64),
``float_value=12``, ``double_value=13``, ``boolean_value=14``, ``string_value=15``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

# Sparkplug B DataType codes (the ones pi-inspect uses, and their value fields)
INT32, INT64, UINT32, UINT64 = 3, 4, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12

_INT_TYPES = {1, 2, 3, 5, 6, 7}  # Int8/16/32, UInt8/16/32 -> int_value (uint32)
_LONG_TYPES = {4, 8, 13}  # Int64, UInt64, DateTime -> long_value (uint64)
_STRING_TYPES = {12, 14, 15}  # String, Text, UUID -> string_value

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class MalformedPayload(ValueError):
    """An incoming payload that is not a readable Sparkplug B protobuf."""


@dataclass(frozen=True)
class Metric:
    """One metric as sent: ``value`` None is sent as ``is_null``."""

    name: str
    datatype: int
    value: Any = None
    timestamp: int | None = None  # ms since the epoch


# -- writing ----------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= 0xFFFFFFFFFFFFFFFF  # negative numbers as protobuf does: 64-bit two's complement
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len_field(field: int, data: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(data)) + data


def _value(datatype: int, value: Any) -> bytes:
    if datatype in _INT_TYPES:
        return _key(10, _VARINT) + _varint(int(value) & 0xFFFFFFFF)
    if datatype in _LONG_TYPES:
        return _key(11, _VARINT) + _varint(int(value))
    if datatype == FLOAT:
        return _key(12, _FIXED32) + struct.pack("<f", float(value))
    if datatype == DOUBLE:
        return _key(13, _FIXED64) + struct.pack("<d", float(value))
    if datatype == BOOLEAN:
        return _key(14, _VARINT) + _varint(1 if value else 0)
    if datatype in _STRING_TYPES:
        return _len_field(15, str(value).encode("utf-8"))
    raise ValueError(f"unsupported Sparkplug datatype {datatype}")


def encode_metric(metric: Metric) -> bytes:
    out = _len_field(1, metric.name.encode("utf-8"))
    if metric.timestamp is not None:
        out += _key(3, _VARINT) + _varint(metric.timestamp)
    out += _key(4, _VARINT) + _varint(metric.datatype)
    if metric.value is None:
        return out + _key(7, _VARINT) + _varint(1)
    return out + _value(metric.datatype, metric.value)


def encode_payload(timestamp: int, metrics: list[Metric], seq: int | None = None) -> bytes:
    """A Payload: its timestamp (ms since the epoch), metrics and ``seq`` (absent in NDEATH)."""
    out = bytearray(_key(1, _VARINT) + _varint(timestamp))
    for metric in metrics:
        out += _len_field(2, encode_metric(metric))
    if seq is not None:
        out += _key(3, _VARINT) + _varint(seq)
    return bytes(out)


# -- reading ----------------------------------------------------------------------------------
def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise MalformedPayload("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field: ints for varints and fixed, bytes for
    length-delimited. Raises ``MalformedPayload`` on anything that does not parse."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise MalformedPayload("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(data):
                raise MalformedPayload("truncated fixed-size field")
            value, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise MalformedPayload("truncated length-delimited field")
            value, pos = bytes(data[pos : pos + size]), pos + size
        else:
            raise MalformedPayload(f"unsupported wire type {wire}")
        out.append((field, wire, value))
    return out


def decode_command(data: bytes) -> dict[str, Any]:
    """The metrics of an incoming command payload by name: booleans as bool, varints as int,
    strings as str (others are skipped). Raises ``MalformedPayload``."""
    metrics: dict[str, Any] = {}
    for field, wire, raw in _fields(bytes(data)):
        if field != 2 or wire != _LEN:
            continue
        name: str | None = None
        value: Any = None
        for mfield, mwire, mraw in _fields(raw):
            if mfield == 1 and mwire == _LEN:
                try:
                    name = mraw.decode("utf-8")
                except UnicodeDecodeError:
                    raise MalformedPayload("metric name is not UTF-8") from None
            elif mfield == 14 and mwire == _VARINT:
                value = bool(mraw)
            elif mfield in (10, 11) and mwire == _VARINT:
                value = mraw
            elif mfield == 15 and mwire == _LEN:
                value = mraw.decode("utf-8", errors="replace")
        if name is not None:
            metrics[name] = value
    return metrics
