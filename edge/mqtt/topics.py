"""Every topic pi-inspect publishes or listens on, built in one place (documented in docs/mqtt.md)."""

from __future__ import annotations

from dataclasses import dataclass

from pi_inspect.edge.verbs import VERBS

COMMAND_VERBS = tuple(VERBS)  # every verb of the one vocabulary

ONLINE = "online"
OFFLINE = "offline"  # the last will: the broker publishes it when the daemon dies
STOPPED = "stopped"  # published on a clean exit


@dataclass(frozen=True)
class Topics:
    """Topics of one device: ``<prefix>/<device>/...``; of one of its stations when the device
    has several: ``<prefix>/<device>/<station>/...`` (availability, the fleet's report and
    desired state stay the device's)."""

    prefix: str
    device_id: str
    station: str | None = None  # set only when the device has more than one station

    @property
    def device_base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def base(self) -> str:
        return self.device_base if self.station is None else f"{self.device_base}/{self.station}"

    def of_station(self, station: str | None) -> Topics:
        """The topics of ``station`` of this device (None: the device's own)."""
        return Topics(self.prefix, self.device_id, station)

    @property
    def availability(self) -> str:
        return f"{self.device_base}/availability"

    @property
    def desired(self) -> str:
        return f"{self.device_base}/desired"

    @property
    def report(self) -> str:
        return f"{self.device_base}/report"

    @property
    def stations_command_filter(self) -> str:
        """Commands to any station of the device: ``<device>/+/cmd/+``."""
        return f"{self.device_base}/+/cmd/+"

    def command_target(self, topic: str) -> tuple[str | None, str] | None:
        """(station, verb) of a command topic (station None: the device's own ``cmd/``), or
        None if ``topic`` is not a command."""
        head = f"{self.device_base}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) == 2 and parts[0] == "cmd" and parts[1] != "result":
            return None, parts[1]
        if len(parts) == 3 and parts[1] == "cmd" and parts[2] != "result":
            return parts[0], parts[2]
        return None

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    def defect(self, label: str) -> str:
        return f"{self.base}/defect/{label}"

    @property
    def part(self) -> str:
        return f"{self.base}/part"

    @property
    def result(self) -> str:
        return f"{self.base}/result"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def snapshot(self) -> str:
        return f"{self.base}/snapshot"

    @property
    def command_filter(self) -> str:
        """The subscription for commands: ``<base>/cmd/+`` (one level, so ``cmd/result`` is ours)."""
        return f"{self.base}/cmd/+"

    @property
    def command_result(self) -> str:
        return f"{self.base}/cmd/result"
