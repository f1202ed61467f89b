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
    """Topics of one device: ``<prefix>/<device>/...``."""

    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def desired(self) -> str:
        return f"{self.base}/desired"

    @property
    def report(self) -> str:
        return f"{self.base}/report"

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

    def command_verb(self, topic: str) -> str | None:
        """The verb of a command topic, or None if ``topic`` is not under ``<base>/cmd/``."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        verb = topic[len(head) :]
        return None if "/" in verb or verb == "result" else verb
