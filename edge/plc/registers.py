"""The register map: one table, read by the Modbus server, the OPC UA namespace and the docs.

Addresses are 0-based holding registers (Modbus "4x", function codes 3/6/16); 32-bit values
take two registers, high word first. Only the control block (``WRITABLE``) may be written; a
write anywhere else is refused with Modbus exception 2 (illegal data address). The control bits
are also coils 0-4 and the status bits discrete inputs 0-10, for PLCs that prefer bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["u16", "u32", "bits"]

# control word bits (HR 0, coils 0-4)
ENABLE, TRIGGER, RESULTS_ACK, CLEAR_COUNTERS, BUFFER_ENABLE = 0, 1, 2, 3, 4
CONTROL_BITS = ("enable", "trigger", "results_ack", "clear_counters", "buffer_enable")

# status word bits (HR 8, discrete inputs 0-10)
STATUS_BITS = (
    "ready",  # enabled, a model loaded, the camera online, no fault
    "busy",  # a part is being inspected
    "trigger_ack",  # the last trigger was taken; held while the trigger bit is held
    "result_valid",  # the result block holds a result not yet acknowledged
    "missed",  # a part was missed since the last results_ack / clear_counters
    "overrun",  # a result was lost: the buffer was full
    "fault",  # the station has a fault (see its state)
    "heartbeat",  # toggles every second while the station runs
    "completed",  # toggles with every new result
    "late",  # the result in the block came after trigger.deadline_ms
    "trigger_failed",  # the last trigger was refused (not enabled, or continuous mode)
)
(
    READY,
    BUSY,
    TRIGGER_ACK,
    RESULT_VALID,
    MISSED,
    OVERRUN,
    FAULT,
    HEARTBEAT,
    COMPLETED,
    LATE,
    TRIGGER_FAILED,
) = range(11)  # noqa: E501

# result codes (HR 20) and verdicts (HR 21)
CODES = {"none": 0, "ok": 1, "ng": 2, "error": 3, "missed": 4}
VERDICTS = {"none": 0, "ok": 1, "ng": 2}
MAX_LABELS = 16


@dataclass(frozen=True)
class Register:
    address: int
    name: str
    kind: Kind
    writable: bool
    meaning: str

    @property
    def size(self) -> int:
        return 2 if self.kind == "u32" else 1


MAP: tuple[Register, ...] = (
    Register(
        0,
        "control",
        "bits",
        True,
        "control word: bit 0 enable, 1 trigger, 2 results_ack, 3 clear_counters, 4 buffer_enable",
    ),  # noqa: E501
    Register(1, "part_id", "u32", True, "part ID for the next trigger, echoed in its result"),
    Register(8, "status", "bits", False, "status word: bits as STATUS_BITS (see docs/plc.md)"),
    Register(9, "acq_id", "u32", False, "acquisition ID of the last trigger taken"),
    Register(11, "buffered", "u16", False, "results waiting, the one in the block included"),
    Register(12, "label_count", "u16", False, "labels of the model (alarm bit i = label i)"),
    Register(13, "model", "u32", False, "the model's identity: first 8 hex digits of its hash"),
    Register(16, "result_acq_id", "u32", False, "acquisition ID of the result in the block"),
    Register(18, "result_part_id", "u32", False, "part ID echoed (0 when none was written)"),
    Register(20, "result_code", "u16", False, "0 none, 1 OK, 2 NG, 3 error, 4 missed"),
    Register(
        21, "verdict", "u16", False, "what to do: 1 pass, 2 reject (late/error/missed: see docs)"
    ),  # noqa: E501
    Register(22, "alarm_bits", "bits", False, "bit i set: label i alarmed on the part"),
    Register(
        23, "anomaly_x1000", "u16", False, "anomaly score x 1000 (0 without an anomaly model)"
    ),  # noqa: E501
    Register(24, "processing_ms", "u16", False, "the model's own time for the part, ms"),
    Register(25, "latency_ms", "u16", False, "trigger to result, ms (65535: longer)"),
    *(
        Register(26 + i, f"score_{i}_x1000", "u16", False, f"score of label {i} x 1000")
        for i in range(MAX_LABELS)
    ),  # noqa: E501
    Register(48, "count_triggers", "u32", False, "triggers counted"),
    Register(50, "count_ok", "u32", False, "parts passed"),
    Register(52, "count_ng", "u32", False, "parts found defective"),
    Register(54, "count_missed", "u32", False, "parts missed (no frame)"),
    Register(56, "count_late", "u32", False, "results after the deadline"),
    Register(58, "count_errors", "u32", False, "parts the model could not judge"),
    Register(60, "count_overruns", "u32", False, "results lost to a full buffer"),
    Register(62, "processing_max_ms", "u16", False, "longest processing time since clear"),
    Register(63, "processing_min_ms", "u16", False, "shortest processing time since clear"),
    Register(64, "processing_avg_ms", "u16", False, "mean processing time since clear"),
)
SIZE = 68  # registers in the block (0 .. 67)
# A device of several stations: station i's block starts at register i * STATION_STRIDE, its
# coils and discrete inputs at bit i * STATION_BIT_STRIDE (station 0 is where one station is).
STATION_STRIDE = 100
STATION_BIT_STRIDE = 16
WRITABLE = range(0, 3)  # control and part ID
BY_NAME = {r.name: r for r in MAP}
