"""The MQTT connection to Home Assistant: discovery, states out, commands in.

One :class:`MqttBridge` runs as a task on the daemon's event loop for as long as
the daemon runs. It owns one connection at a time and reconnects with a doubling
backoff whenever the broker goes away, so the daemon itself never depends on the
broker: :meth:`MqttBridge.publish_state` only remembers the value and hands it to
the current connection, if there is one; every connection starts by publishing
everything Home Assistant needs (discovery, ``online``, the latest states).

Commands from Home Assistant arrive as messages on the ``.../set`` topics and are
turned into calls on :class:`Controls`, on the event loop thread. A bad command
(refused by :mod:`voiceagent.mqtt.commands`) is logged and ignored; a control
that raises is logged with its traceback. Neither ends the connection. What a
state may be and how it goes out is :mod:`voiceagent.mqtt.states`'s; where the
broker is and how to log in to it, :mod:`voiceagent.mqtt.connection`'s.

Nothing here grows with the number of messages: states waiting to go out are
one per entity (a state changed twice before it went out is published once, with
its latest value), events wait in a deque of ``MAX_PENDING_EVENTS``, incoming
messages in aiomqtt's queue of ``MAX_QUEUED_MESSAGES``, and the warnings about
what was ignored are limited per kind (:mod:`voiceagent.log_limit`), so a flood of
bad commands costs a line a minute. What the controls do with a flood of good
ones is theirs to bound (``voiceagent.daemon.controls``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

import aiomqtt

from voiceagent.aio import race
from voiceagent.config import Config
from voiceagent.mqtt.client import drop_without_disconnect
from voiceagent.log_limit import LimitFilter, LogLimiter
from voiceagent.mqtt.commands import Controls, Malformed, parse_command
from voiceagent.mqtt.connection import BrokerAccess
from voiceagent.mqtt.discovery import (
    COMMAND_ENTITIES,
    OFFLINE,
    ON,
    ONLINE,
    STATE_ENTITIES,
    Topics,
    discovery_messages,
)
from voiceagent.mqtt.states import check_state, state_messages

logger = logging.getLogger(__name__)
_client_logger = logging.getLogger(f"{__name__}.client")
"""aiomqtt's and paho's lines: aiomqtt warns once per message it drops."""
_client_logger.addFilter(LimitFilter())

SHUTDOWN_S = 0.8
"""Seconds allowed, once ``stop`` is set, to publish ``offline`` and disconnect,
half for each (with a third for the publish, a loaded 2-core box once lost the
``offline``). If
the broker does not answer in time it publishes the retained ``offline`` will
itself when it notices the connection is gone."""

QOS = 1
"""At least once: a dropped retained state would leave Home Assistant stale until
the next change."""

_ANNOUNCE = "<announce>"
"""Pending instead of an entity name: publish discovery, online and all states."""

_EVENT = "<event>"
"""Pending instead of an entity name: publish the events waiting."""
MAX_PENDING_EVENTS = 100
MAX_QUEUED_MESSAGES = 256
"""Incoming messages waiting for the event loop at most (aiomqtt's queue, unbounded
by default); more are dropped. Handling one takes microseconds, so this fills only
while the loop is blocked."""


class MqttBridge:
    """Home Assistant integration over MQTT for one voiceagent device.

    Raises :class:`ConfigError` at construction for a password file or TLS file
    that cannot be read, so that a typo stops the daemon at start-up instead of
    turning into an endless reconnect loop.

    With ``mqtt.enabled: false`` :meth:`run` logs that and returns at once;
    :meth:`publish_state` still works (it only remembers values).
    """

    def __init__(self, cfg: Config, controls: Controls | None, sw_version: str) -> None:
        self._cfg = cfg
        self._mqtt = cfg.mqtt
        self._controls = controls
        self._topics = Topics.from_config(cfg.mqtt)
        self._broker = BrokerAccess.from_config(cfg)  # raises ConfigError
        self._where = self._broker.where
        self._discovery = [
            (topic, json.dumps(payload, ensure_ascii=False))
            for topic, payload in discovery_messages(cfg.mqtt, sw_version, cfg.homeassistant.area)
        ]
        self._commands = {self._topics.command(e): e for e in COMMAND_ENTITIES}
        self._states: dict[str, str] = {}
        self._pending: dict[str, None] = {}
        """What the publisher has to send, in order, each once: entity names,
        _ANNOUNCE and _EVENT (an ordered set, at most one per entity)."""
        self._wake = asyncio.Event()
        """Set when something was added to ``_pending``."""
        self._events: deque[tuple[str, str]] = deque(maxlen=MAX_PENDING_EVENTS)
        self._limited = LogLimiter(logger)
        """For what a publisher can make happen per message (bad commands)."""
        self._client: aiomqtt.Client | None = None
        self._outage_since: float | None = None
        """time.monotonic() when the broker was last found missing; None while fine."""
        self._session_connected = False
        """Whether the current connection attempt got as far as a CONNACK."""
        self._subscribed = False

    def set_controls(self, controls: Controls) -> None:
        """What commands do (when they are made after the bridge)."""
        self._controls = controls

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def connected(self) -> bool:
        """True while connected, announced and subscribed to the command topics."""
        return self._client is not None and self._subscribed

    def publish_state(self, entity: str, value: str) -> None:
        """Set the state of ``entity`` (state, transcript, reply, latency or mute).

        The value is remembered and published (retained) by the current connection
        soon after this returns, or by the next one. Never blocks, never raises for
        a missing broker; raises ValueError for an unknown entity or a value Home
        Assistant would reject (a state not in ASSISTANT_STATES, a latency that is
        not a number, a mute that is not ON/OFF).
        """
        check_state(entity, value)
        self._states[entity] = value
        if self._client is not None:
            self._mark(entity)

    def publish_event(self, name: str, payload: dict[str, Any]) -> None:
        """Publish ``payload`` as JSON on ``<base>/event/<name>``, not retained (it
        happened once). Without a connection it is dropped: an event is news, not
        state. At most ``MAX_PENDING_EVENTS`` wait; the oldest go first."""
        if self._client is None:
            logger.debug("MQTT not connected: event %s not sent", name)
            return
        if len(self._events) == self._events.maxlen:
            self._limited.log(
                logging.WARNING, "events", "MQTT events are not going out fast enough: dropping the oldest"
            )
        self._events.append((self._topics.event(name), json.dumps(payload, ensure_ascii=False, default=str)))
        self._mark(_EVENT)

    def _mark(self, item: str) -> None:
        """Have the publisher send ``item`` (an entity's state, _ANNOUNCE, _EVENT)."""
        self._pending[item] = None
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set, then say ``offline`` and disconnect.

        Returns within about a second of ``stop`` being set, whatever the broker
        does. Connection failures are logged and retried; they never end this.
        """
        if not self._mqtt.enabled:
            logger.info("mqtt.enabled is false: not connecting to Home Assistant")
            return
        delay = self._mqtt.reconnect_min_s
        warned: str | None = None  # the kind of failure already warned about
        while True:
            self._session_connected = False
            try:
                await self._run_session(stop)
                return
            except aiomqtt.MqttError as err:
                if self._session_connected:
                    # A connection that worked resets the backoff: this is a new outage.
                    delay = self._mqtt.reconnect_min_s
                    warned = None
                    self._outage_since = time.monotonic()
                elif self._outage_since is None:
                    self._outage_since = time.monotonic()
                kind, reason = self._broker.describe_failure(err, self._session_connected)
            # Warn once per outage (and again if the broker comes back but refuses
            # the login); a retry every few seconds would otherwise flood the log
            # of a daemon left running for days.
            level = logging.WARNING if kind != warned else logging.DEBUG
            logger.log(level, "%s; retrying in %s s", reason, f"{delay:g}")
            warned = kind
            if await _wait_or_timeout(stop, delay):
                return
            delay = min(delay * 2, self._mqtt.reconnect_max_s)

    # -- one connection --------------------------------------------------------

    async def _run_session(self, stop: asyncio.Event) -> None:
        """One connection until it fails (MqttError) or ``stop`` ends it cleanly."""
        session = asyncio.create_task(self._session(stop), name="mqtt-session")
        try:
            # shielded: on stop the session goes on, to say offline
            which, _ = await race(asyncio.shield(session), stop.wait())
            if which == 0:
                return
            # The session saw `stop` too and is saying offline; it may be stuck
            # connecting or waiting on a silent broker, so it gets a deadline.
            try:
                await asyncio.wait_for(session, SHUTDOWN_S)
            except TimeoutError:
                if not self._session_connected:
                    logger.info("stopped while connecting to MQTT broker %s", self._where)
                    return
                logger.warning(
                    "MQTT broker %s did not answer within %s s while stopping; it will "
                    "mark the device offline (last will) once it notices",
                    self._where,
                    SHUTDOWN_S,
                )
            except aiomqtt.MqttError as err:
                logger.warning("could not say offline to MQTT broker %s: %s", self._where, err)
        finally:
            session.cancel()
            await asyncio.gather(session, return_exceptions=True)

    async def _session(self, stop: asyncio.Event) -> None:
        will = aiomqtt.Will(self._topics.availability, OFFLINE, qos=QOS, retain=True)
        client = self._broker.client(will, MAX_QUEUED_MESSAGES, _client_logger)
        async with client:
            self._on_connected()
            said_offline = False
            try:
                if not stop.is_set():
                    self._client = client
                    self._pending.clear()  # all states go out with the announce
                    if self._events:
                        self._mark(_EVENT)
                    await self._serve(client, stop)
                # Short timeouts from here: a broker that stopped answering must not
                # hold up the daemon's shutdown (this also bounds the DISCONNECT wait
                # in the context manager's exit).
                client.timeout = SHUTDOWN_S / 2
                await client.publish(self._topics.availability, OFFLINE, qos=QOS, retain=True)
                said_offline = True
            finally:
                self._client = None
                self._subscribed = False
                if not said_offline:
                    # Whatever ended the session before the broker had our offline (a
                    # lost connection, a failed publish, or the shutdown deadline
                    # cancelling a state still waiting for its PUBACK on a loaded box):
                    # a DISCONNECT from the context manager's exit would make the broker
                    # drop the will, and Home Assistant would show us online for good.
                    drop_without_disconnect(client)
        logger.info("disconnected from MQTT broker %s", self._where)

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Announce, then handle commands and publish changes until ``stop`` or a failure.

        All publishing happens in one task, raced against the listener: aiomqtt does
        not fail a pending publish when the connection drops (it times out after
        OPERATION_TIMEOUT_S), but the listener notices at once and ends the session.
        """
        # a connection failure raises MqttError here
        await race(self._listen(client), self._publish(client), stop.wait())

    def _on_connected(self) -> None:
        self._session_connected = True
        if self._outage_since is not None:
            # At warning level like the outage itself, so a log read at the default
            # level shows that it ended.
            logger.warning(
                "connected to MQTT broker %s again after %.1f s of retrying",
                self._where,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        else:
            logger.info("connected to MQTT broker %s as %s", self._where, self._broker.client_id)

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Everything Home Assistant needs after we connect or it restarts."""
        for topic, payload in self._discovery:
            await client.publish(topic, payload, qos=QOS, retain=True)
        await client.publish(self._topics.availability, ONLINE, qos=QOS, retain=True)
        for entity in STATE_ENTITIES:
            if entity in self._states:
                await self._publish_state(client, entity)

    async def _publish_state(self, client: aiomqtt.Client, entity: str) -> None:
        for topic, payload in state_messages(self._topics, entity, self._states[entity]):
            await client.publish(topic, payload, qos=QOS, retain=True)

    async def _publish(self, client: aiomqtt.Client) -> None:
        # Subscribed before saying online: a command Home Assistant sends as soon
        # as it sees the device online must not be lost.
        await client.subscribe(
            [(topic, QOS) for topic in self._commands] + [(self._topics.ha_status, QOS)]
        )
        self._subscribed = True
        await self._announce(client)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                item = next(iter(self._pending))
                del self._pending[item]
                if item == _ANNOUNCE:
                    await self._announce(client)
                elif item == _EVENT:
                    while self._events:
                        topic, payload = self._events.popleft()
                        await client.publish(topic, payload, qos=QOS, retain=False)
                else:
                    await self._publish_state(client, item)

    # -- commands --------------------------------------------------------------

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self._on_message(message)
        raise aiomqtt.MqttError("the message stream ended")

    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, (bytes, bytearray)):
            payload = b"" if payload is None else str(payload).encode()
        if topic == self._topics.ha_status:
            # A retained birth message arrives right after we subscribe, when we
            # have just announced everything anyway.
            if payload.strip() == ONLINE.encode() and not message.retain:
                self._limited.log(logging.INFO, "birth", "Home Assistant (re)started: publishing discovery again")
                self._mark(_ANNOUNCE)  # many births before it went out: one announce
            return
        entity = self._commands.get(topic)
        if entity is None:
            logger.debug("ignoring a message on %s", topic)
            return
        if message.retain:
            # A retained command would be replayed on every reconnect.
            self._limited.log(
                logging.WARNING, (topic, "retained"),
                "ignoring a retained %s command on %s (clear it with: mosquitto_pub -r -n -t %s)",
                entity, topic, topic,
            )
            return
        parsed = parse_command(entity, bytes(payload), self._mqtt.max_payload_bytes)
        if isinstance(parsed, Malformed):
            self._limited.log(
                logging.WARNING, (topic, parsed.kind), "ignoring a malformed command on %s: %s", topic, parsed.why
            )
            return
        try:
            self._dispatch(entity, parsed)
        except Exception:
            self._limited.log(
                logging.ERROR, (topic, "failed"),
                "the %s command from Home Assistant failed (topic %s)", entity, topic, exc_info=True,
            )

    def _dispatch(self, entity: str, value: str) -> None:
        logger.debug("Home Assistant command: %s %r", entity, value)
        match entity:
            case "say":
                self._controls.say(value)
            case "ask":
                self._controls.ask(value)
            case "stop":
                self._controls.stop()
            case "mute":
                self._controls.set_muted(value == ON)
                # Home Assistant's switch is not optimistic: it shows the new state
                # only once we echo it.
                self.publish_state("mute", value)


async def _wait_or_timeout(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
