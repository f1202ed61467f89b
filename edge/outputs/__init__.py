"""Where daemon results go, and how commands come back (Frigate's communicator idea).

The daemon's dispatcher calls every configured ``Output``; each decides what to do with it.
Outputs must not block the inference loop for long: one that talks to the network queues and
returns. An output that takes commands (MQTT) is a ``CommandSource``: the dispatcher hands it
one ``Receiver`` callback, and every command goes through it and comes back as a ``Reply``.
No output ever holds the daemon itself. This package is the contract between the two sides, so
outputs import it, never ``pi_inspect.edge.daemon``.

Outputs are plugins (``OutputPlugin``): each brings its config section, builds its output from
it, and may add doctor checks and pre-flight checks. They are found through the entry-point
group ``pi_inspect.outputs`` (``pi_inspect.edge.outputs.registry``), as gpiozero finds its pin
factories, so a package of its own can add one; the built-in ones register the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.parts import PartResult


@runtime_checkable
class Output(Protocol):
    """What the daemon publishes. Implementations ignore what they don't care about."""

    def publish_event(self, event: DefectEvent) -> None: ...

    def publish_result(self, result: FrameResult) -> None: ...

    def publish_stats(self, stats: Stats) -> None: ...

    def publish_state(self, state: State) -> None: ...

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PartOutput(Protocol):
    """An output that also takes part results (a trigger's one outcome: the PLC servers,
    MQTT's ``part`` topic). The dispatcher sends them only to outputs that have this method,
    so an output written before parts existed keeps working."""

    def publish_part(self, result: PartResult) -> None: ...


@runtime_checkable
class Closeable(Protocol):
    """Anything the daemon closes at shutdown (idempotent, as gpiozero's devices are)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Command:
    """A validated request: a verb of ``pi_inspect.edge.verbs.VERBS`` and its arguments, as its
    argument model checked them (``{label: threshold}`` for ``thresholds``)."""

    verb: str
    args: Mapping[str, Any] = field(default_factory=dict)
    station: str | None = None  # the station it is for; None: the only one (or the first)


@dataclass(frozen=True)
class Reply:
    """The outcome of one command (for MQTT: what goes back on ``cmd/result``)."""

    command: str
    ok: bool
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "error": self.error, "result": self.result}


Receiver = Callable[[Command], Reply]  # thread-safe; never raises


@runtime_checkable
class CommandSource(Protocol):
    """An output that also takes commands: it passes each one to ``receiver``."""

    def subscribe(self, receiver: Receiver) -> None: ...


@dataclass(frozen=True)
class LiveFrame:
    """A captured frame offered to a live viewer, with the model's output if it was inspected."""

    image: Any  # BGR uint8 array as captured (not copied), or None when ``jpeg`` holds it
    index: int
    timestamp: float  # unix time of capture
    scores: dict[str, float] | None = None  # None: not inspected (trigger mode, no model)
    heat: Any = None  # float32 [h, w] in [0, 1] for ``heat_label``, only when asked for
    heat_label: str | None = None
    roi: tuple[float, float, float, float] | None = None  # the inspected region, as fractions
    jpeg: bytes | None = None  # the camera's own JPEG of ``image`` (sent as is: no re-encoding)
    station: str = "default"  # the station that captured it


class FrameTap(Protocol):
    """What an output that shows live frames offers (as its ``frame_tap`` attribute).

    The daemon asks ``wants_frame(station)`` for every frame a station captures (it must be
    cheap: true only while someone watches that station and the next frame of the viewer's rate
    is due) and only then builds a ``LiveFrame``; a heat map (an extra model run) only when
    ``wants_heat(station)`` says so.
    """

    def wants_frame(self, station: str = "default") -> bool: ...

    def wants_heat(self, station: str = "default") -> bool: ...

    def offer_frame(self, frame: LiveFrame) -> None: ...


@dataclass(frozen=True)
class OutputContext:
    """What an output plugin is built with, besides its own config section."""

    device: str  # the station's identity ([device] id): a valid MQTT topic level
    state_dir: Path  # where an output keeps its state (a spool, a review folder)
    snapshot_dir: Path | None  # defect snapshots, None when they are off
    version: str  # pi-inspect's version
    camera: str = ""  # what the station watches ([source] kind and address), for reports
    # The device's stations, in config order (one: "default"), and each one's snapshots.
    stations: tuple[str, ...] = ("default",)
    snapshot_dirs: Mapping[str, Path | None] = field(default_factory=dict)

    @property
    def several(self) -> bool:
        """More than one station: topics, pages and registers name the station."""
        return len(self.stations) > 1


Build = Callable[[Any, OutputContext], "Output | None"]  # None: nothing to add (logged why)
DoctorChecks = Callable[[Any, OutputContext], "list[tuple[str, Callable[[], Any]]]"]
Preflight = Callable[[Any, Path], "list[str]"]  # (section, state dir) -> "key.path: problem"


def changed_keys(old: Any, new: Any) -> tuple[str, ...]:
    """The top-level keys of config section ``new`` whose values differ from ``old``'s, sorted."""
    a, b = old.model_dump(), new.model_dump()
    return tuple(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))


def _enabled(section: Any) -> bool:
    return bool(getattr(section, "enabled", False))


@dataclass(frozen=True)
class OutputPlugin:
    """An output, as the core sees it: its config section ``[name]`` (a ``Section`` model whose
    defaults are valid), how to build it, and what the core asks of it besides.

    ``build`` runs only when ``enabled(section)``; an output that cannot start is one log line
    and ``None``, never the end of inspection. ``restart_keys``: the section's keys whose change
    takes effect only after a restart (``None``: every key). ``doctor`` adds checks to
    ``pi-inspect doctor`` (names and ready-to-run ``pi_inspect.edge.doctor.Check`` makers);
    ``preflight`` adds filesystem problems to ``run`` and ``check-config``; ``meanings``
    documents keys whose model line carries no comment (for ``config --reference``).
    """

    name: str
    section: type
    build: Build
    enabled: Callable[[Any], bool] = _enabled
    restart_keys: frozenset[str] | None = None
    doctor: DoctorChecks | None = None
    preflight: Preflight | None = None
    meanings: Mapping[str, str] = field(default_factory=dict)

    def needs_restart(self, old: Any, new: Any) -> tuple[str, ...]:
        """The keys that changed from ``old`` to ``new`` and take effect only after a restart."""
        changed = changed_keys(old, new)
        if self.restart_keys is None:
            return changed
        return tuple(k for k in changed if k in self.restart_keys)
