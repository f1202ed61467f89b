"""The line's PLC: one handshake and register map (``registers``, ``handshake``), served over
Modbus TCP (``modbus``) and OPC UA (``opcua``) by output plugins. The map and the handshake are
plain Python; the servers only translate their protocol's reads and writes into it."""
