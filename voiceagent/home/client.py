"""A client of Home Assistant's WebSocket API: one connection at a time, kept up.

``run`` connects, authenticates with a long-lived access token, re-sends every
subscription, calls ``on_connect`` (where the house is read), then reads
messages until the connection drops, and reconnects with a doubling backoff.
The voice never waits for it: ``command`` fails at once with
:class:`HomeUnavailable` while there is no connection, so a device command is
answered "I can't reach Home Assistant" in milliseconds, not after a timeout.

One log line per change of state (connected, lost, refused token), not one
per retry: a daemon that has been retrying for a night should not fill the
journal.

Protocol: https://developers.home-assistant.io/docs/api/websocket (``auth``,
then numbered commands answered by ``result``; ``subscribe_events`` answers
with ``event`` messages carrying the subscription's id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

from voiceagent.aio import race
from voiceagent.errors import VoiceAgentError
from voiceagent.home.urls import websocket_url  # noqa: F401  (also this module's API)

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""A large house's entity registry arrives as one message (HA allows up to 4 MiB
per message by default and more when compressed; be generous)."""


class HomeUnavailable(VoiceAgentError):
    """Home Assistant cannot be reached (down, wrong address, token refused)."""

    code = "home-unavailable"


class HomeCommandError(VoiceAgentError):
    """Home Assistant answered a command with an error."""

    code = "home-command"

    def __init__(self, message: str, ha_code: str) -> None:
        super().__init__(message)
        self.ha_code = ha_code


@dataclass(frozen=True)
class ClientSettings:
    url: str
    """Home Assistant's base URL (``http://homeassistant.local:8123``)."""
    token: str
    timeout_s: float
    """Seconds to wait for the answer to one command."""
    connect_timeout_s: float
    reconnect_min_s: float
    reconnect_max_s: float
    verify_tls: bool


EventHandler = Callable[[dict[str, Any]], None]


class HomeAssistantClient:
    def __init__(
        self,
        settings: ClientSettings,
        on_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.ws_url = websocket_url(settings.url)
        self.on_connect = on_connect
        """Called (and awaited) after each successful authentication, before
        ``connected`` turns True: read the house here."""
        self.version: str | None = None
        """Home Assistant's version, from its ``auth_ok``."""
        self._ws: ClientConnection | None = None
        self._ready = False
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: list[tuple[str | None, EventHandler]] = []
        self._handlers: dict[int, EventHandler] = {}
        self._outage_logged = False

    @property
    def connected(self) -> bool:
        """Connected, authenticated, and the house read."""
        return self._ready

    def subscribe(self, event_type: str | None, handler: EventHandler) -> None:
        """Call ``handler`` with the ``data`` of every ``event_type`` event (None: all),
        on the event loop; kept across reconnects."""
        self._subscriptions.append((event_type, handler))

    async def command(self, type_: str, **fields: Any) -> Any:
        """Send one command and return its ``result``.

        Raises :class:`HomeUnavailable` at once without a connection, or if the
        connection drops or no answer comes within ``timeout_s``;
        :class:`HomeCommandError` if Home Assistant answers with an error.
        """
        if self._ws is None:
            raise HomeUnavailable(f"Home Assistant at {self.settings.url} is not connected")
        return await self._send(self._ws, {"type": type_, **fields})

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> Any:
        msg_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await ws.send(json.dumps({"id": msg_id, **message}))
            async with asyncio.timeout(self.settings.timeout_s):
                return await future
        except TimeoutError:
            raise HomeUnavailable(
                f"Home Assistant did not answer {message['type']} within {self.settings.timeout_s:g} s"
            ) from None
        except WebSocketException as err:
            raise HomeUnavailable(f"lost the connection to Home Assistant: {err}") from None
        finally:
            self._pending.pop(msg_id, None)

    # ---------------------------------------------------------------- running

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        delay = self.settings.reconnect_min_s
        while not stop.is_set():
            try:
                index, _ = await race(stop.wait(), self._session())
                if index == 0:
                    return
                delay = self.settings.reconnect_min_s  # it was up: retry soon
            except (HomeUnavailable, HomeCommandError) as err:
                self._log_outage(str(err))
            finally:
                self._closed()
            try:
                await race(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _session(self) -> None:
        """One connection, from the handshake until it drops."""
        ssl_context = None
        if self.ws_url.startswith("wss:"):
            ssl_context = ssl.create_default_context()
            if not self.settings.verify_tls:
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                ws = await connect(
                    self.ws_url, ssl=ssl_context, max_size=MAX_MESSAGE_BYTES,
                    open_timeout=None, ping_interval=20, ping_timeout=20,
                )
        except TimeoutError:
            raise HomeUnavailable(f"cannot reach Home Assistant at {self.settings.url}: timed out") from None
        except (OSError, InvalidHandshake, InvalidURI) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise HomeUnavailable(f"cannot reach Home Assistant at {self.settings.url}: {reason}") from None
        try:
            await self._authenticate(ws)
            self._ws = ws
            reader = asyncio.ensure_future(self._read(ws))
            try:
                for event_type, handler in self._subscriptions:
                    fields = {"event_type": event_type} if event_type else {}
                    sub_id = self._next_id
                    self._handlers[sub_id] = handler
                    await self._send(ws, {"type": "subscribe_events", **fields})
                if self.on_connect is not None:
                    try:
                        await self.on_connect()
                    except (HomeUnavailable, HomeCommandError):
                        raise
                    except Exception as err:  # a registry in a shape we did not expect
                        logger.debug("reading the house failed", exc_info=err)
                        raise HomeUnavailable(
                            f"cannot read the house from Home Assistant at {self.settings.url}: "
                            f"{type(err).__name__}: {err}"
                        ) from None
                self._ready = True
                was_out, self._outage_logged = self._outage_logged, False
                logger.info(
                    "connected to Home Assistant %s at %s%s", self.version, self.settings.url,
                    " (it is back)" if was_out else "",
                )
                await reader
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        finally:
            await ws.close()

    async def _authenticate(self, ws: ClientConnection) -> None:
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                hello = json.loads(await ws.recv())
                if hello.get("type") != "auth_required":
                    raise HomeUnavailable(f"{self.settings.url} does not speak Home Assistant's WebSocket API")
                await ws.send(json.dumps({"type": "auth", "access_token": self.settings.token}))
                answer = json.loads(await ws.recv())
        except TimeoutError:
            raise HomeUnavailable(f"Home Assistant at {self.settings.url} did not authenticate in time") from None
        except (WebSocketException, json.JSONDecodeError, AttributeError) as err:
            raise HomeUnavailable(f"Home Assistant at {self.settings.url} broke off the handshake: {err}") from None
        if answer.get("type") == "auth_invalid":
            raise HomeUnavailable(
                f"Home Assistant at {self.settings.url} refused the access token "
                f"({answer.get('message', 'invalid')}); make a new long-lived token in your HA profile"
            )
        if answer.get("type") != "auth_ok":
            raise HomeUnavailable(f"unexpected answer to authentication: {answer.get('type')!r}")
        self.version = answer.get("ha_version")

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except json.JSONDecodeError:
                    logger.warning("Home Assistant sent a message that is not JSON; ignored")
                    continue
                for item in message if isinstance(message, list) else [message]:
                    self._dispatch(item)
        except websockets.ConnectionClosed:
            pass
        if self._ready:
            self._log_outage("the connection was closed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        msg_id = message.get("id")
        if kind == "result":
            future = self._pending.get(msg_id)  # type: ignore[arg-type]
            if future is None or future.done():
                return
            if message.get("success"):
                future.set_result(message.get("result"))
            else:
                error = message.get("error") or {}
                future.set_exception(
                    HomeCommandError(error.get("message", "failed"), error.get("code", "unknown_error"))
                )
        elif kind == "event":
            handler = self._handlers.get(msg_id)  # type: ignore[arg-type]
            event = message.get("event")
            if handler is not None and isinstance(event, dict):
                try:
                    handler(event)
                except Exception:  # one bad event must not drop the connection
                    logger.exception("handling a Home Assistant event failed")

    def _closed(self) -> None:
        self._ws, self._ready = None, False
        self._handlers.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HomeUnavailable("lost the connection to Home Assistant"))
        self._pending.clear()

    def _log_outage(self, reason: str) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            logger.warning(
                "%s; device commands are answered \"I can't reach Home Assistant\" until it is back "
                "(retrying every %g s at most)", reason, self.settings.reconnect_max_s,
            )
