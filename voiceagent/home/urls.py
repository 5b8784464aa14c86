"""Home Assistant's addresses (pure: the config validates with it, the client connects with it)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from voiceagent.errors import ConfigError


def websocket_url(url: str) -> str:
    """``http(s)://host:port[/path]`` -> ``ws(s)://host:port[/path]/api/websocket``."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConfigError(f"homeassistant.url {url!r} is not an http:// or https:// address")
    path = parts.path.rstrip("/")
    if not path.endswith("/api/websocket"):
        path += "/api/websocket"
    return urlunsplit((scheme, parts.netloc, path, "", ""))
