"""The OPC UA namespace of a station: the register map of ``registers`` as typed variables.

One object ``Station`` (string node IDs ``Station.<Group>.<Name>`` in the station's namespace;
on a device of several stations one object per station, named as the station)
with ``Control`` (writable: the control bits and the part ID), ``Status``, ``Result`` and
``Counters`` (read-only), and the method ``Station.Trigger``. Values are computed from the
register block, so OPC UA and Modbus clients see one handshake with the same rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import Node, Server, ua

from pi_inspect.edge.plc import registers as r

Values = Callable[[list[int], tuple[str, ...]], Any]  # (register block, labels) -> value
V = ua.VariantType
GROUPS = ("Control", "Status", "Result", "Counters")
ROOT = "Station"


@dataclass(frozen=True)
class Var:
    """One variable: where it sits, its type, how its value comes from the register block,
    and for a control variable what a client write changes (a coil, or the part ID)."""

    group: str
    name: str
    vtype: ua.VariantType
    value: Values
    coil: int | None = None  # control bit written by a client write (write_coils)
    part_id: bool = False  # the part ID (registers 1-2, written as two 16-bit values)
    length: int | None = None  # an array: its fixed length, 0 where it varies

    @property
    def path(self) -> str:
        return self.at(ROOT)

    def at(self, root: str) -> str:
        """Its node ID's text under ``root`` (``Station``, or a station's name when the
        device has several)."""
        return f"{root}.{self.group}.{self.name}"

    @property
    def writable(self) -> bool:
        return self.coil is not None or self.part_id

    def initial(self) -> Any:
        return self.value([0] * r.SIZE, ())


def camel(name: str) -> str:
    """``trigger_ack`` -> ``TriggerAck``."""
    return "".join(word.capitalize() for word in name.split("_"))


def _bit(address: int, bit: int) -> Values:
    return lambda regs, _labels: bool(regs[address] >> bit & 1)


def _u16(address: int) -> Values:
    return lambda regs, _labels: regs[address]


def _u32(address: int) -> Values:
    return lambda regs, _labels: (regs[address] << 16) | regs[address + 1]


def _scaled(address: int, scale: float) -> Values:
    return lambda regs, _labels: regs[address] / scale


def _scores(regs: list[int], _labels: tuple[str, ...]) -> list[float]:
    return [regs[26 + i] / 1000.0 for i in range(r.MAX_LABELS)]


def _labels(_regs: list[int], labels: tuple[str, ...]) -> list[str]:
    return list(labels)


def _layout() -> tuple[Var, ...]:
    control = [
        Var("Control", camel(name), V.Boolean, _bit(0, bit), coil=bit)
        for bit, name in enumerate(r.CONTROL_BITS)
    ]
    control.append(Var("Control", "PartId", V.UInt32, _u32(1), part_id=True))
    status = [
        Var("Status", camel(name), V.Boolean, _bit(8, bit))
        for bit, name in enumerate(r.STATUS_BITS)
    ]
    status += [
        Var("Status", "AcqId", V.UInt32, _u32(9)),
        Var("Status", "Buffered", V.UInt16, _u16(11)),
        Var("Status", "Model", V.UInt32, _u32(13)),
    ]
    result = [
        Var("Result", "AcqId", V.UInt32, _u32(16)),
        Var("Result", "PartId", V.UInt32, _u32(18)),
        Var("Result", "Code", V.UInt16, _u16(20)),
        Var("Result", "Verdict", V.UInt16, _u16(21)),
        Var("Result", "AlarmBits", V.UInt16, _u16(22)),
        Var("Result", "AnomalyScore", V.Double, _scaled(23, 1000.0)),
        Var("Result", "ProcessingMs", V.Double, _scaled(24, 1.0)),
        Var("Result", "LatencyMs", V.Double, _scaled(25, 1.0)),
        Var("Result", "Scores", V.Double, _scores, length=r.MAX_LABELS),
        Var("Result", "Labels", V.String, _labels, length=0),
    ]
    counters = [
        Var("Counters", name, V.UInt32, _u32(address))
        for name, address in (("Triggers", 48), ("Ok", 50), ("Ng", 52), ("Missed", 54),
                              ("Late", 56), ("Errors", 58), ("Overruns", 60))
    ]  # fmt: skip
    counters += [
        Var("Counters", name, V.UInt16, _u16(address))
        for name, address in (("ProcessingMaxMs", 62), ("ProcessingMinMs", 63), ("ProcessingAvgMs", 64))
    ]  # fmt: skip
    return (*control, *status, *result, *counters)


LAYOUT: tuple[Var, ...] = _layout()


def values(regs: list[int], labels: tuple[str, ...]) -> dict[str, Any]:
    """Every variable's value, by path, for one register block."""
    return {var.path: var.value(regs, labels) for var in LAYOUT}


def node_id(path: str, idx: int) -> ua.NodeId:
    return ua.NodeId(path, idx)


def argument(name: str, vtype: ua.VariantType, meaning: str) -> ua.Argument:
    return ua.Argument(
        Name=name,
        DataType=ua.NodeId(vtype.value),
        ValueRank=ua.ValueRank.Scalar,
        ArrayDimensions=[],
        Description=ua.LocalizedText(meaning),
    )


async def build(server: Server, idx: int, trigger: Callable[..., Any], root: str = ROOT) -> None:
    """Create the station's nodes in namespace ``idx`` under object ``root``; ``trigger``
    serves the method."""
    station = await server.nodes.objects.add_object(node_id(root, idx), ua.QualifiedName(root, idx))
    groups: dict[str, Node] = {}
    for group in GROUPS:
        nid, qname = node_id(f"{root}.{group}", idx), ua.QualifiedName(group, idx)
        groups[group] = await station.add_object(nid, qname)
    for var in LAYOUT:
        node = await groups[var.group].add_variable(
            node_id(var.at(root), idx),
            ua.QualifiedName(var.name, idx),
            var.initial(),
            varianttype=var.vtype,
        )
        if var.length is not None:
            await node.write_attribute(
                ua.AttributeIds.ValueRank,
                ua.DataValue(ua.Variant(ua.ValueRank.OneDimension, V.Int32)),
            )
            await node.write_attribute(
                ua.AttributeIds.ArrayDimensions, ua.DataValue(ua.Variant([var.length], V.UInt32))
            )
        if var.writable:
            await node.set_writable()
    await station.add_method(
        node_id(f"{root}.Trigger", idx),
        ua.QualifiedName("Trigger", idx),
        trigger,
        [argument("PartId", V.UInt32, "part ID echoed in the result (0: none)")],
        [argument("AcqId", V.UInt32, "acquisition ID of the trigger; 0: refused")],
    )
