"""``web:``: the browser page at ``/`` and the OpenAI Realtime API at ``/v1/realtime``.

One WebSocket server (``websockets``) answers both: plain GETs get the page's
files (``servers/static``), the upgrade to ``/v1/realtime`` gets a session of
its own on the shared models (``RealtimeConnection``), ended when the client
goes. It listens only once the process has loaded and warmed the models.

Who gets in is decided at the upgrade, before a session exists:

- the token (``web.token``/``token_file``), as ``Authorization: Bearer`` (the SDKs)
  or as the ``openai-insecure-api-key.<token>`` subprotocol (a browser cannot set
  headers on a WebSocket): missing or wrong is HTTP 401;
- a browser's ``Origin`` must be the page's own (another site's page cannot use
  a visitor's browser to talk to it): else 403; clients that send none (the
  SDKs) are judged by the token alone;
- beyond ``web.max_sessions`` connections: 503, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voiceagent.config import Config
from voiceagent.errors import ConfigError
from voiceagent.servers.realtime import RealtimeConnection
from voiceagent.session.session import Session
from voiceagent.transports.web import NetworkTransport

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
PATH = "/v1/realtime"
CLOSE_WAIT_S = 1.5
"""Seconds the sessions have, at the stop, to end their replies and tell their clients."""
KEY_PROTOCOL = "openai-insecure-api-key."
HARD_MAX_BYTES = 32 << 20
"""websockets drops a connection whose message is over this; under it, a message
over ``web.max_message_bytes`` gets an error event and the session goes on."""

SECRET_HEADERS = frozenset({"authorization", "sec-websocket-protocol", "cookie"})
"""Headers that carry the token: websockets logs every header at debug level."""


class _RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in SECRET_HEADERS:
            record.args = (args[0], "[redacted]")
        return True


ws_logger = logging.getLogger(__name__ + ".websocket")
"""websockets' own log lines, with the token's headers redacted (log_level: debug)."""
ws_logger.addFilter(_RedactSecrets())

OpenSession = Callable[[str], Session]
"""Builds the session named so (the caller's ``build_session`` over the shared models)."""


@dataclass(frozen=True)
class Credentials:
    """What ``web:`` needs from files, read before the models load (so a bad
    token file or certificate is a one-line error at once, not a minute later)."""

    token: str | None
    ssl: ssl.SSLContext | None

    @classmethod
    def read(cls, cfg: Config) -> "Credentials":
        return cls(cfg.secret(cfg.web.token, cfg.web.token_file, "web.token"),
                   _ssl_context(cfg) if cfg.web.tls_cert else None)


class WebServer:
    def __init__(self, cfg: Config, open_session: OpenSession, forget: Callable[[str], None] = lambda name: None,
                 voice: str = "voiceagent", credentials: Credentials | None = None) -> None:
        self.cfg = cfg
        self.web = cfg.web
        self.open_session = open_session
        self.forget = forget
        self.voice = voice
        credentials = credentials or Credentials.read(cfg)
        self.token = credentials.token
        self.ssl = credentials.ssl
        self.connections: dict[str, RealtimeConnection] = {}
        self._numbers = itertools.count(1)
        self.port: int | None = None
        self.listening = asyncio.Event()
        self._stop = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl else "http"
        host = f"[{self.web.host}]" if ":" in self.web.host else self.web.host
        return f"{scheme}://{host}:{self.port}/"

    @property
    def idle(self) -> bool:
        return all(c.session is None or c.session.idle for c in self.connections.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop``; then every session ends and its client is told."""
        self._stop = stop
        try:
            server = await serve(
                self._connection, self.web.host, self.web.port, ssl=self.ssl,
                process_request=self._http, select_subprotocol=_subprotocol, compression=None,
                max_size=HARD_MAX_BYTES, server_header=None, ping_interval=20, ping_timeout=20,
                logger=ws_logger,
            )
        except OSError as err:
            raise ConfigError(
                f"web: cannot listen on {self.web.host}:{self.web.port}: {err.strerror or err}",
                "set web.host and web.port to a free address of this machine",
            ) from None
        async with server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self.listening.set()
            logger.info("web page and Realtime API at %s (%s)", self.url, PATH)
            await stop.wait()
            for conn in list(self.connections.values()):
                conn.closed.set()  # each session ends and tells its client, then its socket closes
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_S):
                    while self.connections:
                        await asyncio.sleep(0.02)

    # ------------------------------------------------------------ HTTP

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path.rstrip("/") == PATH:
            return self._admit(connection, request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return _text(HTTPStatus.NOT_FOUND, f"the WebSocket endpoint is {PATH}\n")
        name = {"/": "index.html", "/favicon.ico": "icon.svg"}.get(path, path.lstrip("/"))
        file = STATIC / name
        if "/" in name or file.suffix not in TYPES or not file.is_file():
            return _text(HTTPStatus.NOT_FOUND, "not found\n")
        headers = Headers({
            "Content-Type": TYPES[file.suffix], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:",
        })
        return Response(200, "OK", headers, file.read_bytes())

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """The upgrade's checks: the token, the Origin, room for one more."""
        headers = request.headers
        if self.token is not None and not self._has_token(headers):
            logger.info("web: refused %s: missing or wrong token", _peer(connection))
            return _text(HTTPStatus.UNAUTHORIZED, "missing or wrong token (Authorization: Bearer <web.token>)\n",
                         {"WWW-Authenticate": 'Bearer realm="voiceagent"'})
        origin = headers.get("Origin")
        if origin is not None and not self._own_origin(origin, headers.get("Host", "")):
            logger.info("web: refused %s: Origin %s is not this page's", _peer(connection), origin[:100])
            return _text(HTTPStatus.FORBIDDEN, "this page's Origin may not connect\n")
        if len(self.connections) >= self.web.max_sessions:
            logger.warning("web: refused %s: %d sessions already (web.max_sessions)", _peer(connection),
                           len(self.connections))
            return _text(HTTPStatus.SERVICE_UNAVAILABLE,
                         f"busy: {len(self.connections)} sessions already (web.max_sessions); try again later\n")
        return None

    def _has_token(self, headers: Headers) -> bool:
        assert self.token is not None
        given: list[str] = []
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given.append(auth[7:].strip())
        for value in headers.get_all("Sec-WebSocket-Protocol"):
            given += [p.strip()[len(KEY_PROTOCOL):] for p in value.split(",") if p.strip().startswith(KEY_PROTOCOL)]
        want = self.token.encode()
        return any(hmac.compare_digest(g.encode(), want) for g in given)

    def _own_origin(self, origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        scheme = "https" if self.ssl else "http"
        return parts.scheme == scheme and parts.netloc.lower() == host.lower() and bool(host)

    # ------------------------------------------------------------ sessions

    async def _connection(self, ws: ServerConnection) -> None:
        if len(self.connections) >= self.web.max_sessions:  # two upgrades raced for the last place
            await ws.close(1013, "busy: web.max_sessions reached")
            return
        name = f"web-{next(self._numbers)}"
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        model = (query.get("model") or ["voiceagent"])[0][:100]
        conn = RealtimeConnection(ws, name, model, self.cfg.audio.sample_rate, self.voice, self.web.max_message_bytes)
        self.connections[name] = conn
        peer = _peer(ws)
        try:
            transport = NetworkTransport(self.cfg, conn.on_output, f"web client {peer}")
            conn.attach(self.open_session(name), transport)
            logger.info("%s: connected from %s", name, peer)
            await conn.serve(self._stop)
        except ConnectionClosed:
            pass
        except Exception:  # one client's failure must not end the server or the other sessions
            logger.exception("%s: session failed", name)
        finally:
            del self.connections[name]
            self.forget(name)
            logger.info("%s: closed", name)


def _subprotocol(connection: ServerConnection, offered: list[str]) -> str | None:
    return "realtime" if "realtime" in offered else None


def _text(status: HTTPStatus, body: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": "text/plain; charset=utf-8", **(extra or {})})
    return Response(status.value, status.phrase, headers, body.encode())


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


def _ssl_context(cfg: Config) -> ssl.SSLContext:
    web = cfg.web
    assert web.tls_cert is not None and web.tls_key is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cfg.resolve(web.tls_cert), cfg.resolve(web.tls_key))
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"cannot load web.tls_cert/web.tls_key: {err}") from None
    return context
