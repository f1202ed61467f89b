"""Build a configured paho-mqtt 2.x client: credentials, TLS, last will, backoff.

Secrets are read here (not in the config validators) and handed to paho only; they never reach a
log line or an exception message.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.mqtt.topics import OFFLINE, Topics


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never show the password, even in a debugger or a traceback
        return f"Credentials(username={self.username!r}, password=***)"


def read_credentials(config: MqttConfig) -> Credentials:
    """Username/password from the config or the credentials file.

    The file holds either one line (the password; the username comes from the config) or two
    lines (username, then password) -- the first form fits systemd's ``LoadCredential=``.
    """
    if config.credentials_file is None:
        password = config.password.get_secret_value() if config.password is not None else None
        return Credentials(config.username, password)
    path = Path(config.credentials_file)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ConfigError(f"mqtt.credentials_file {path}: {reason}") from None
    lines = [line for line in lines if line]
    if len(lines) == 1 and config.username is not None:
        return Credentials(config.username, lines[0])
    if len(lines) == 2:
        return Credentials(lines[0], lines[1])
    raise ConfigError(
        f"mqtt.credentials_file {path}: expected 'password' (with mqtt.username) "
        "or 'username' and 'password' on two lines"
    )


def _check_file(key: str, path: Path | None) -> str | None:
    if path is None:
        return None
    if not Path(path).is_file():
        raise ConfigError(f"mqtt.tls.{key} {path}: no such file")
    return str(path)


def build_client(config: MqttConfig, topics: Topics):
    """A paho client ready for ``connect_async`` (not connected; no callbacks set)."""
    import paho.mqtt.client as mqtt

    client_id = config.client_id or f"pi-inspect-{topics.device_id}"[:64]
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,  # our own spool is the persistent state, not the broker session
        protocol=mqtt.MQTTv311,
    )
    credentials = read_credentials(config)
    if credentials.username is not None:
        client.username_pw_set(credentials.username, credentials.password)
    if config.tls is not None:
        tls = config.tls
        try:
            client.tls_set(
                ca_certs=_check_file("ca_file", tls.ca_file),
                certfile=_check_file("cert_file", tls.cert_file),
                keyfile=_check_file("key_file", tls.key_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except ssl.SSLError as exc:
            raise ConfigError(f"mqtt.tls: cannot load certificates ({exc.reason})") from None
        client.tls_insecure_set(tls.insecure)
    client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
    client.max_inflight_messages_set(config.max_inflight)
    client.max_queued_messages_set(0)
    return client
