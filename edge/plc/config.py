"""The ``[plc]`` config section: one handshake, served over Modbus TCP and/or OPC UA.

Both servers bind loopback by default: a PLC network exposes them on purpose (docs/plc.md says
how, and what to put in front). Pure validation, no I/O.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pi_inspect.edge.section import Section

Port = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port (tests)


class ModbusConfig(Section):
    """Modbus TCP server (pymodbus): holding registers, coils and discrete inputs."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 5020  # 502 is the standard port; binding it needs CAP_NET_BIND_SERVICE
    unit: Annotated[int, Field(ge=0, le=247)] = 1  # 0: answer every unit id


class OpcuaConfig(Section):
    """OPC UA server (asyncua): typed variables and a Trigger method in one namespace."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 4840
    namespace: str = "urn:pi-inspect"


class PlcConfig(Section):
    """The PLC handshake. Disabled unless ``enabled = true``."""

    enabled: bool = False
    buffer_depth: Annotated[int, Field(ge=1, le=64)] = 8  # results kept with buffer_enable
    modbus: ModbusConfig = ModbusConfig()
    opcua: OpcuaConfig = OpcuaConfig()
