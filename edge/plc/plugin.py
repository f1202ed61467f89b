"""The PLC output as a plugin: the ``[plc]`` section. Importing this is cheap (the section's
model only); pymodbus and asyncua load when a server is built."""

from __future__ import annotations

from pi_inspect.edge.outputs import Output, OutputContext, OutputPlugin
from pi_inspect.edge.plc.config import PlcConfig


def _build(section: PlcConfig, context: OutputContext) -> Output:
    """One handshake per station: a block of registers each on Modbus (station i at register
    ``100 * i``), an object each on OPC UA (``Station``; by name when there are several)."""
    from pi_inspect.edge.plc.handshake import Handshake
    from pi_inspect.edge.plc.output import PlcOutput

    handshakes = {name: Handshake(depth=section.buffer_depth) for name in context.stations}
    servers, problems = [], []
    try:
        if section.modbus.enabled:
            from pi_inspect.edge.plc.modbus import ModbusServer

            servers.append(ModbusServer(list(handshakes.values()), section.modbus))
        if section.opcua.enabled:
            from pi_inspect.edge.plc.opcua import OpcuaServer

            roots = handshakes if context.several else next(iter(handshakes.values()))
            servers.append(OpcuaServer(roots, section.opcua))
    except ImportError as exc:  # the [plc] extra is not installed: a fault, not a stop
        problems.append(f"{exc.name or exc}: not installed (pip install 'pi-inspect[plc]')")
    return PlcOutput(handshakes, servers, problems)


PLUGIN = OutputPlugin(
    name="plc",
    section=PlcConfig,
    build=_build,
    meanings={
        "enabled": "serve the PLC handshake (docs/plc.md)",
        "buffer_depth": "results kept in order while buffer_enable is set",
        "modbus.enabled": "serve the register map over Modbus TCP",
        "modbus.host": "address to bind (loopback by default: expose on purpose)",
        "modbus.port": "TCP port (502 is standard and needs CAP_NET_BIND_SERVICE)",
        "modbus.unit": "unit id answered (0: any)",
        "opcua.enabled": "serve the same handshake as an OPC UA namespace",
        "opcua.host": "address to bind (loopback by default: expose on purpose)",
        "opcua.port": "TCP port (4840 is standard)",
        "opcua.namespace": "namespace URI of the station's nodes",
    },
)
