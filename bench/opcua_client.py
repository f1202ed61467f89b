"""The OPC UA side of bench/trigger_latency.py: a PLC simulator on asyncua's own client.

One session calls ``Station.Trigger(PartId)`` at the times asked; a second polls
``Status.ResultValid`` every millisecond, reads ``Result.PartId`` when it is set and pulses
``Control.ResultsAck``. Returns part ID -> seconds from just before the call to the moment the
result was seen.
"""

from __future__ import annotations

import asyncio
import logging
import time


async def _parts(host: str, port: int, times: list[float], first_id: int) -> dict[int, float]:
    from asyncua import Client, ua

    count = len(times)
    url = f"opc.tcp://{host}:{port}"
    async with Client(url) as trig, Client(url) as poll:
        ns = await trig.get_namespace_index("urn:pi-inspect")

        def node(client, path: str):
            return client.get_node(f"ns={ns};s=Station.{path}")

        await node(trig, "Control.BufferEnable").write_value(True)
        await node(trig, "Control.Enable").write_value(True)
        station = trig.get_node(f"ns={ns};s=Station")
        method = trig.get_node(f"ns={ns};s=Station.Trigger")
        valid, part = node(poll, "Status.ResultValid"), node(poll, "Result.PartId")
        ack = node(poll, "Control.ResultsAck")
        sent: dict[int, float] = {}
        got: dict[int, float] = {}

        async def poller() -> None:
            idle_since = None
            while len(got) < count:
                if await valid.read_value():
                    got.setdefault(await part.read_value(), time.perf_counter())
                    await ack.write_value(True)
                    await ack.write_value(False)
                    idle_since = None
                else:
                    await asyncio.sleep(0.001)
                    if len(sent) == count:
                        idle_since = idle_since or time.perf_counter()
                        if time.perf_counter() - idle_since > 5.0:
                            return

        task = asyncio.create_task(poller())
        start = time.perf_counter()
        for i, at in enumerate(times):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            part_id = first_id + i
            sent[part_id] = time.perf_counter()
            await station.call_method(method, ua.Variant(part_id, ua.VariantType.UInt32))
        await task
    return {p: got[p] - t for p, t in sent.items() if p in got}


def run_opcua(host: str, port: int, times: list[float], first_id: int) -> dict[int, float]:
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # its session-timeout notes
    return asyncio.run(_parts(host, port, times, first_id))
