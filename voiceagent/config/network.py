"""Endpoints that other programs and browsers connect to: ``web:`` (the browser
page and the OpenAI Realtime API) and ``wyoming:`` (Home Assistant's voice protocol)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator

from voiceagent.config.sections import WYOMING_URI, _Section, split_wyoming_uri


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


class WebConfig(_Section):
    """The browser page at ``/`` and the OpenAI Realtime API at ``/v1/realtime``
    (``voiceagent serve``): each connection is a session of its own."""

    enabled: bool = Field(False, description="serve the page and /v1/realtime")
    host: str = Field(
        "127.0.0.1", min_length=1,
        description="the address to listen on; anything but loopback needs web.token or web.token_file",
    )
    port: int = Field(8765, ge=0, le=65535, description="0: any free port (the log says which)")
    token: str | None = Field(
        None, min_length=1, description="the bearer token clients must present (Authorization, or the "
        "openai-insecure-api-key.<token> WebSocket subprotocol from a browser)",
    )
    token_file: Path | None = Field(None, description="read the token from this file")
    tls_cert: Path | None = Field(
        None, description="a PEM certificate: serve https/wss (a phone's browser opens the microphone "
        "only on https or localhost)",
    )
    tls_key: Path | None = Field(None, description="the certificate's PEM private key")
    max_sessions: int = Field(4, ge=1, le=64, description="connections beyond this are refused (HTTP 503)")
    max_message_bytes: int = Field(
        1 << 20, ge=4096, le=16 << 20,
        description="a larger client message is answered with an error event and dropped",
    )

    @model_validator(mode="after")
    def _exposed_needs_a_token(self) -> "WebConfig":
        if self.enabled and not is_loopback(self.host) and self.token is None and self.token_file is None:
            raise ValueError(
                f"web.host {self.host} is reachable from other machines: set web.token or web.token_file"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set web.tls_cert and web.tls_key together")
        return self


class WyomingConfig(_Section):
    """Home Assistant's voice protocol (``voiceagent serve``): our ASR, TTS, wake word
    and conversation as Wyoming services on the shared models.

    The protocol has no token (Home Assistant sends none), so an endpoint other
    machines can reach admits only the addresses named in ``allowed_clients``."""

    uri: str | None = Field(
        None, pattern=WYOMING_URI,
        description="where to listen, e.g. tcp://127.0.0.1:10700; null: off",
    )
    allowed_clients: list[str] = Field(
        default_factory=list, max_length=64,
        description="addresses or networks (e.g. 192.168.1.10, 10.0.0.0/24) that may connect; "
        "needed when uri is not loopback, since Wyoming has no token; others are disconnected at once",
    )

    @model_validator(mode="after")
    def _exposed_needs_an_allowlist(self) -> "WyomingConfig":
        for entry in self.allowed_clients:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"wyoming.allowed_clients: {entry[:60]!r} is no address or network") from None
        if self.uri is not None and not self.allowed_clients:
            if not is_loopback(split_wyoming_uri(self.uri)[0]):
                raise ValueError(
                    f"wyoming.uri {self.uri} is reachable from other machines and the Wyoming protocol "
                    "has no token: name who may connect in wyoming.allowed_clients (e.g. Home Assistant's address)"
                )
        return self

    def admits(self, address: str) -> bool:
        """Whether a client at ``address`` may connect (loopback always may)."""
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:  # a dual-stack listener's IPv4 peer
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return True
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.allowed_clients)
