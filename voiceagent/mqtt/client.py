"""aiomqtt's client, adapted where a daemon that runs for weeks needs it.

Both adaptations reach into aiomqtt's and paho's internals (named where they do),
so they live here, apart from the bridge's own logic, and are covered by
tests/test_mqtt.py and tests/test_broker_flapping.py against a real broker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiomqtt

logger = logging.getLogger(__name__)


class AgentClient(aiomqtt.Client):
    """aiomqtt's client with one race closed.

    paho asks for the socket to be watched for writing from its own thread, and
    aiomqtt hands that to the loop with ``call_soon_threadsafe``. When the broker
    drops the connection just then, the socket is closed before the loop gets to
    it, and asyncio logged a traceback ("Bad file descriptor") for every such
    reconnect: with a broker flapping every few seconds, a traceback each time
    (tests/test_broker_flapping.py). There is nothing to write to any more and
    the reader has seen the loss, so that case is only a debug line here.
    """

    def _on_socket_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        def callback() -> None:
            # As aiomqtt: a failed write means the connection broke.
            try:
                client.loop_write()
            except Exception as exc:  # handed to the session as its failure
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        fd = sock.fileno()

        def watch() -> None:
            try:
                self._loop.add_writer(fd, callback)
            except (OSError, ValueError) as err:
                logger.debug("MQTT socket closed before it could be watched: %s", err)

        self._loop.call_soon_threadsafe(watch)


def drop_without_disconnect(client: aiomqtt.Client) -> None:
    """Close the connection without an MQTT DISCONNECT.

    A clean DISCONNECT makes the broker discard the last will, so after an
    ``offline`` that did not go out (timed out on a loaded box, or cut by the
    shutdown deadline) the device would stay ``online`` in Home Assistant for
    good. Dropping the socket instead makes the broker publish the will, which is
    that same retained ``offline``. aiomqtt has no public way to do this; paho's
    ``_sock_close`` is what paho itself calls on a lost connection, and aiomqtt's
    exit then finds no connection to close.
    """
    paho = getattr(client, "_client", None)
    close = getattr(paho, "_sock_close", None)
    disconnected = getattr(client, "_disconnected", None)
    if close is None or not isinstance(disconnected, asyncio.Future):
        logger.warning("cannot drop the MQTT connection (aiomqtt changed); the broker may keep us online")
        return
    close()
    # aiomqtt's exit returns early on a finished ``_disconnected`` (as after a lost
    # connection) instead of trying a DISCONNECT on the closed socket and warning
    # "Could not gracefully disconnect".
    if not disconnected.done():
        disconnected.set_result(None)
