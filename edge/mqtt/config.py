"""The ``[mqtt]`` config section: broker, topics, TLS, credentials, spool, commands, discovery.

Pure validation, no I/O: files named here (CA, certificates, credentials) are read when the
output is built (``pi_inspect.edge.mqtt.make_output``), so ``check-config`` works on a machine without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pi_inspect.edge.identity import TopicLevel, TopicPrefix
from pi_inspect.edge.section import ConfigPath, Secret, Section


class TlsConfig(Section):
    """TLS to the broker. With no ``ca_file`` the system trust store is used."""

    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None  # client certificate (mutual TLS)
    key_file: ConfigPath | None = None
    insecure: bool = False  # skip the host name check (self-signed lab brokers only)

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class ResultConfig(Section):
    """Per-frame scores on ``<prefix>/<device>/result`` (QoS 0), off by default: chatty."""

    enabled: bool = False
    max_rate_hz: float = Field(default=2.0, gt=0.0, le=100.0)


class CommandsConfig(Section):
    enabled: bool = True


class DiscoveryConfig(Section):
    """Home Assistant MQTT discovery (retained configs under ``prefix``)."""

    enabled: bool = True
    prefix: TopicPrefix = "homeassistant"


class SpoolConfig(Section):
    """The on-disk SQLite spool that keeps defect events until the broker acknowledges them."""

    path: ConfigPath | None = None  # default: <state_dir>/spool.sqlite3
    max_events: int = Field(default=10_000, ge=10, le=10_000_000)
    durable: bool = False  # fsync every event (survives power loss; slower on SD cards)


class SparkplugConfig(Section):
    """Sparkplug B (Ignition and other SCADA hosts): a second session under ``spBv1.0/``."""

    enabled: bool = False
    group_id: TopicLevel = "pi-inspect"
    edge_node: TopicLevel | None = None  # Sparkplug edge node id (unset: the [device] id)
    device: TopicLevel = "station"


class MqttConfig(Section):
    """Everything the MQTT output needs. Disabled unless ``enabled = true``."""

    enabled: bool = False
    host: str = Field(default="localhost", min_length=1, max_length=253)
    port: int = Field(default=1883, ge=1, le=65535)
    prefix: TopicPrefix = "pi-inspect"
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    tls: TlsConfig | None = None
    username: str | None = Field(default=None, min_length=1)
    password: Secret | None = None
    credentials_file: ConfigPath | None = None  # "password" or "username\npassword"; never logged
    qos: Literal[1, 2] = 1  # for defect events; the spool needs an acknowledgement
    keepalive: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: int = Field(default=1, ge=1, le=60)
    reconnect_max_s: int = Field(default=30, ge=1, le=3600)
    max_inflight: int = Field(default=20, ge=1, le=1000)
    snapshot: bool = False  # publish the JPEG overlay of each defect on <prefix>/<device>/snapshot
    result: ResultConfig = Field(default_factory=ResultConfig)
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    sparkplug: SparkplugConfig = Field(default_factory=SparkplugConfig)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password is not None and self.credentials_file is not None:
            raise ValueError("give either password or credentials_file, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def spool_path(self, state_dir: Path) -> Path:
        """Where the spool lives: ``spool.path`` or ``<state_dir>/spool.sqlite3``."""
        return self.spool.path if self.spool.path is not None else Path(state_dir) / "spool.sqlite3"
