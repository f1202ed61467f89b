"""The PLC handshake, protocol-free: control bits in, status bits and a result block out.

The PLC raises ``enable``; for each part it writes the part ID, raises ``trigger`` and holds it
until ``trigger_ack``; it then waits for ``result_valid`` (or the ``completed`` toggle), reads
the result block, and raises ``results_ack`` to take the next one (with ``buffer_enable``, up to
``depth`` results wait in order; without, the newest replaces the one shown). Edges, not
levels, act: a trigger bit held high triggers once. The Modbus and OPC UA servers share one
``Handshake`` per station and only translate their reads and writes into it. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from pi_inspect.edge.events import State
from pi_inspect.edge.parts import PartResult
from pi_inspect.edge.plc import registers as r

TriggerFn = Callable[[int | None], "int | None"]  # part ID -> acquisition ID, None: refused
U16, U32 = 0xFFFF, 0xFFFFFFFF


def _u16(value: float) -> int:
    return max(0, min(U16, int(round(value))))


def _put32(regs: list[int], address: int, value: int) -> None:
    value &= U32
    regs[address], regs[address + 1] = value >> 16, value & U16


class Handshake:
    """The register block of one station and the rules that change it."""

    def __init__(self, *, depth: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        self.depth = depth
        self._clock = clock
        self._lock = threading.RLock()
        self._trigger: TriggerFn = lambda _part_id: None
        self._control = 0
        self._part_id = 0
        self._flags = 0  # sticky status bits: trigger_ack, missed, overrun, completed, late, ...
        self._results: deque[PartResult] = deque()
        self._valid = False
        self._acq_id = 0
        self._outstanding: set[int] = set()
        self._ready_state = False  # a model, the camera, no fault (from the station's state)
        self._fault = False
        self._labels: tuple[str, ...] = ()
        self._model = 0
        self._clear()

    def connect(self, trigger: TriggerFn) -> None:
        """Where a PLC trigger goes (the station's ``trigger`` command)."""
        self._trigger = trigger

    # -- writes from the PLC ------------------------------------------------------------------
    def write(self, address: int, values: list[int]) -> bool:
        """Holding-register write; False (and nothing written) outside the control block or
        with a value that is not 16 bits."""
        end = address + len(values)
        if not values or address < r.WRITABLE.start or end > r.WRITABLE.stop:
            return False
        if any(not 0 <= v <= U16 for v in values):
            return False
        with self._lock:
            block = [self._control, self._part_id >> 16, self._part_id & U16]
            block[address:end] = values
            self._part_id = (block[1] << 16) | block[2]
            self._set_control(block[0])
        return True

    def write_coils(self, address: int, bits: list[bool]) -> bool:
        """Coil write (the control bits one by one); False outside coils 0-4."""
        if not bits or address < 0 or address + len(bits) > len(r.CONTROL_BITS):
            return False
        with self._lock:
            word = self._control
            for offset, bit in enumerate(bits):
                mask = 1 << (address + offset)
                word = (word | mask) if bit else (word & ~mask)
            self._set_control(word)
        return True

    def pulse_trigger(self, part_id: int) -> int | None:
        """One trigger as a method call (OPC UA's ``Trigger``): the part ID, then a rising and
        a falling edge of the trigger bit (dropped first if a client holds it high), as one
        step for every other client. The acquisition ID, or None when refused."""
        with self._lock:
            self.write(1, [part_id >> 16 & U16, part_id & U16])
            word = self._control & ~(1 << r.TRIGGER)
            self._set_control(word)
            self._set_control(word | 1 << r.TRIGGER)
            taken = not self._flags >> r.TRIGGER_FAILED & 1
            self._set_control(word)
            return self._acq_id if taken else None

    def _set_control(self, word: int) -> None:
        rising = word & ~self._control
        falling = self._control & ~word
        self._control = word
        if rising & (1 << r.CLEAR_COUNTERS):
            self._clear()
            self._flags &= ~((1 << r.MISSED) | (1 << r.OVERRUN))
        if rising & (1 << r.RESULTS_ACK):
            self._acknowledge()
        if falling & (1 << r.TRIGGER):
            self._flags &= ~(1 << r.TRIGGER_ACK)
        if rising & (1 << r.TRIGGER):
            self._take_trigger()
        if falling & (1 << r.BUFFER_ENABLE):
            while len(self._results) > 1:  # back to one result: the newest stays
                self._results.popleft()
            self._late_flag()

    def _take_trigger(self) -> None:
        acq = None
        if self._control & (1 << r.ENABLE):
            part_id = self._part_id
            acq = self._trigger(part_id)
        if acq is None:
            self._flags |= 1 << r.TRIGGER_FAILED
            self._flags &= ~(1 << r.TRIGGER_ACK)
            return
        self._acq_id = acq
        self._outstanding.add(acq)
        self._counters["triggers"] += 1
        self._flags |= 1 << r.TRIGGER_ACK
        self._flags &= ~(1 << r.TRIGGER_FAILED)

    def _acknowledge(self) -> None:
        self._flags &= ~((1 << r.MISSED) | (1 << r.OVERRUN))
        if self._results:
            self._results.popleft()
        self._valid = bool(self._results)
        self._late_flag()

    # -- from the station ---------------------------------------------------------------------
    def on_part(self, result: PartResult) -> None:
        with self._lock:
            if result.acq_id in self._outstanding:
                self._outstanding.discard(result.acq_id)
            else:  # a trigger from elsewhere (GPIO, MQTT) counts for the PLC too
                self._counters["triggers"] += 1
            self._counters[result.code] += 1
            if result.late:
                self._counters["late"] += 1
            if result.code == "missed":
                self._flags |= 1 << r.MISSED
            if result.code in ("ok", "ng"):
                self._timing.append(result.processing_ms)
            buffered = bool(self._control & (1 << r.BUFFER_ENABLE))
            if not buffered:
                self._results.clear()
            if len(self._results) >= (self.depth if buffered else 1):
                self._counters["overruns"] += 1
                self._flags |= 1 << r.OVERRUN
            else:
                self._results.append(result)
            self._valid = True
            self._late_flag()
            self._flags ^= 1 << r.COMPLETED

    def on_state(self, state: State) -> None:
        with self._lock:
            self._fault = state.verdict == "fault"
            self._ready_state = state.model is not None and state.verdict in ("ok", "defect")
            if state.model is not None and state.model.labels != self._labels:
                self._labels = state.model.labels[: r.MAX_LABELS]
            if state.model is not None:
                self._model = int((state.model.sha256 or "0")[:8] or "0", 16)

    # -- reads --------------------------------------------------------------------------------
    def status(self) -> int:
        with self._lock:
            word = self._flags & ~((1 << r.READY) | (1 << r.BUSY) | (1 << r.RESULT_VALID))
            word &= ~((1 << r.FAULT) | (1 << r.HEARTBEAT))
            if self._control & (1 << r.ENABLE) and self._ready_state and not self._fault:
                word |= 1 << r.READY
            if self._outstanding:
                word |= 1 << r.BUSY
            if self._valid:
                word |= 1 << r.RESULT_VALID
            if self._fault:
                word |= 1 << r.FAULT
            if int(self._clock()) % 2:
                word |= 1 << r.HEARTBEAT
            return word

    def registers(self) -> list[int]:
        """The whole block, ``registers.SIZE`` values of 16 bits."""
        with self._lock:
            regs = [0] * r.SIZE
            regs[0] = self._control
            _put32(regs, 1, self._part_id)
            regs[8] = self.status()
            _put32(regs, 9, self._acq_id)
            regs[11] = len(self._results) if self._valid else 0
            regs[12] = len(self._labels)
            _put32(regs, 13, self._model)
            if self._valid and self._results:
                self._result_block(regs, self._results[0])
            c = self._counters
            for name, address in (("triggers", 48), ("ok", 50), ("ng", 52), ("missed", 54),
                                  ("late", 56), ("error", 58), ("overruns", 60)):  # fmt: skip
                _put32(regs, address, c[name])
            if self._timing:
                regs[62] = _u16(max(self._timing))
                regs[63] = _u16(min(self._timing))
                regs[64] = _u16(sum(self._timing) / len(self._timing))
            return regs

    def bits(self) -> list[bool]:
        """The status word as discrete inputs 0-10."""
        word = self.status()
        return [bool(word >> i & 1) for i in range(len(r.STATUS_BITS))]

    def control_bits(self) -> list[bool]:
        with self._lock:
            return [bool(self._control >> i & 1) for i in range(len(r.CONTROL_BITS))]

    def labels(self) -> tuple[str, ...]:
        with self._lock:
            return self._labels

    def _result_block(self, regs: list[int], result: PartResult) -> None:
        _put32(regs, 16, result.acq_id)
        _put32(regs, 18, result.part_id or 0)
        regs[20] = r.CODES[result.code]
        regs[21] = r.VERDICTS[result.verdict]
        labels = list(result.scores)[: r.MAX_LABELS]
        regs[22] = sum(1 << i for i, label in enumerate(labels) if label in result.alarms)
        regs[23] = _u16(1000 * result.scores.get("anomaly", 0.0))
        regs[24] = _u16(result.processing_ms)
        regs[25] = _u16(result.latency_ms)
        for i, label in enumerate(labels):
            regs[26 + i] = _u16(1000 * result.scores[label])

    def _late_flag(self) -> None:
        if self._results and self._valid and self._results[0].late:
            self._flags |= 1 << r.LATE
        else:
            self._flags &= ~(1 << r.LATE)

    def _clear(self) -> None:
        self._counters = dict.fromkeys(
            ("triggers", "ok", "ng", "missed", "late", "error", "overruns"), 0
        )
        self._timing: deque[float] = deque(maxlen=1000)
