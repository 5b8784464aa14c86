"""How the bridge reaches the MQTT broker: address, identity, credentials, TLS.

Everything here is read and checked once, when the bridge is made: a password
file or TLS file that cannot be read raises :class:`ConfigError` then, so that
a typo stops the daemon at start-up instead of turning into an endless
reconnect loop. After that it only makes clients, one per connection attempt,
and says in one line what a failed attempt means and which settings to check.
No I/O beyond those checks and no logging: :mod:`voiceagent.mqtt.bridge` runs
the connections and logs what happens to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from voiceagent.config import Config, MqttConfig
from voiceagent.errors import ConfigError
from voiceagent.mqtt.client import AgentClient

OPERATION_TIMEOUT_S = 10.0
"""Seconds to wait for the broker's CONNACK, SUBACK or PUBACK before giving the
connection up as lost (aiomqtt's default)."""

_AUTH_REFUSED = {4, 5, 134, 135}
"""CONNACK codes for a bad user name/password or not authorized (MQTT 3.1.1 and 5)."""


@dataclass(frozen=True)
class BrokerAccess:
    """The checked settings for connecting to the broker of ``cfg.mqtt``."""

    mqtt: MqttConfig
    client_id: str
    password: str | None
    tls: aiomqtt.TLSParameters | None

    @classmethod
    def from_config(cls, cfg: Config) -> BrokerAccess:
        """Raises :class:`ConfigError` for a password or TLS file that cannot be used."""
        m = cfg.mqtt
        return cls(
            mqtt=m,
            client_id=m.client_id or f"voiceagent-{m.node()}",
            password=_read_password(cfg),
            tls=_tls_parameters(cfg),
        )

    @property
    def where(self) -> str:
        """``host:port``, for log lines."""
        return f"{self.mqtt.host}:{self.mqtt.port}"

    def client(self, will: aiomqtt.Will, max_queued: int, logger: logging.Logger) -> aiomqtt.Client:
        """A new client for one connection attempt: at most ``max_queued`` incoming
        messages wait for the event loop; aiomqtt's and paho's lines go to ``logger``."""
        m = self.mqtt
        return AgentClient(
            m.host,
            m.port,
            identifier=self.client_id,
            username=m.username,
            password=self.password,
            tls_params=self.tls,
            # paho refuses tls_insecure without TLS, hence None when TLS is off.
            tls_insecure=m.tls.insecure if m.tls.enabled else None,
            keepalive=m.keepalive_s,
            will=will,
            timeout=OPERATION_TIMEOUT_S,
            max_queued_incoming_messages=max_queued,
            logger=logger,
        )

    def describe_failure(self, err: aiomqtt.MqttError, connected: bool) -> tuple[str, str]:
        """("auth" or "down", one line saying what went wrong and what to check).

        ``connected``: whether the attempt that failed got as far as a CONNACK.
        """
        if isinstance(err, MqttConnectError) and _code(err) in _AUTH_REFUSED:
            return "auth", (
                f"MQTT broker {self.where} refused the login as "
                f"{self.mqtt.username or '(anonymous)'} ({err}): check mqtt.username and "
                "mqtt.password (or mqtt.password_file)"
            )
        detail = str(err)
        if err.__cause__ is not None:
            detail += f": {err.__cause__}"
        if connected:
            return "down", f"lost the connection to MQTT broker {self.where}: {detail}"
        checks = "mqtt.host and mqtt.port"
        if self.mqtt.tls.enabled:
            checks = "mqtt.host, mqtt.port and mqtt.tls"
        return "down", (
            f"cannot connect to MQTT broker {self.where}: {detail} "
            f"(is it running? check {checks})"
        )


def _read_password(cfg: Config) -> str | None:
    m = cfg.mqtt
    password = cfg.secret(m.password, m.password_file, "mqtt.password")
    if password is not None and m.username is None:
        raise ConfigError("mqtt.password is set but mqtt.username is not")
    return password


def _tls_parameters(cfg: Config) -> aiomqtt.TLSParameters | None:
    tls = cfg.mqtt.tls
    if not tls.enabled:
        return None
    files: dict[str, str | None] = {}
    named = (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file))
    for key, path in named:
        if path is None:
            files[key] = None
            continue
        resolved = cfg.resolve(path)
        if not resolved.is_file():
            raise ConfigError(f"mqtt.tls.{key}: {resolved} does not exist")
        files[key] = str(resolved)
    return aiomqtt.TLSParameters(
        ca_certs=files["ca_file"], certfile=files["cert_file"], keyfile=files["key_file"]
    )


def _code(err: MqttConnectError) -> int | None:
    rc = err.rc
    return rc if isinstance(rc, int) or rc is None else rc.value
