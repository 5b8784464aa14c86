"""A real mosquitto broker for tests, and a client that records what it sees.

Usage in a test module (the `broker` and `recorder` fixtures are registered for
every test module by tests/conftest.py)::

    from tests.support.broker import Broker, Recorder

    def test_something(broker: Broker, recorder: Recorder) -> None:
        cfg = config_from_dict({"mqtt": broker.mqtt_config()}, tmp_path)
        ...
        msg = recorder.wait_for("voiceagent/x/availability", "online")

- :class:`Broker` runs ``mosquitto`` on a free loopback port with a generated
  config (anonymous by default; ``users=`` for a password file; ``tls=`` for a
  TLS listener), and can be stopped (SIGTERM), killed (SIGKILL) and restarted on
  the same port. Nothing is persisted: a restarted broker has no retained messages.
- :class:`Recorder` is a paho client on its own thread that subscribes to ``#``
  (again after every reconnect) and keeps every message, retained ones included,
  numbered in arrival order. ``wait_for`` blocks (use ``wait_for_async`` from a
  coroutine, so the event loop keeps running).
- :func:`make_tls_files` makes a throwaway CA and a server certificate for
  ``localhost`` / ``127.0.0.1`` with openssl.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"
START_TIMEOUT_S = 5.0


def _find(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


MOSQUITTO = _find("mosquitto")
MOSQUITTO_PASSWD = _find("mosquitto_passwd")


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a test CA and a server certificate it signed."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A fresh CA and a server certificate for localhost and 127.0.0.1 (EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=voiceagent test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)  # fmt: skip
    return TlsFiles(ca=ca, cert=cert, key=key)


class Broker:
    """A mosquitto process on ``127.0.0.1:<port>``, configured in ``directory``."""

    host = HOST

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        """``users``: user name -> password; when given, anonymous clients are refused."""
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed")
        self.directory = directory
        self.users = dict(users or {})
        self.tls = tls
        self.port = 0
        """The TCP port, fixed by the first start and kept by restart()."""
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "mosquitto.log"
        directory.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Broker:
        """Start on a free port (first time) or the same port (later); wait until ready."""
        if self.running:
            raise RuntimeError("the broker is already running")
        if self.port:
            self._launch()
            return self
        for _ in range(5):  # a free port can be taken between finding and binding it
            self.port = free_port()
            try:
                self._launch()
                return self
            except RuntimeError:
                if "in use" not in self.log():
                    raise
        raise RuntimeError(f"mosquitto found no free port:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM: clients are disconnected cleanly; wills of connected clients are sent."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the connections just drop, as when the broker's host crashes."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Start again on the same port (stopping first if it runs)."""
        if self.running:
            self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """The broker's log so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mqtt_config(self, **overrides: Any) -> dict[str, Any]:
        """An ``mqtt`` config section pointing at this broker, for ``config_from_dict``."""
        section: dict[str, Any] = {"enabled": True, "host": self.host, "port": self.port}
        if self.tls is not None:
            section["tls"] = {"enabled": True, "ca_file": str(self.tls.ca)}
        section.update(overrides)
        return section

    def recorder(self, **kwargs: Any) -> Recorder:
        """A connected :class:`Recorder` on this broker (close it, or use ``with``)."""
        return Recorder(self, **kwargs).connect()

    # -- internals ---------------------------------------------------------------

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Run as root, mosquitto switches to the user named here (default
            # "mosquitto"), who could not read the files in a test's tmp dir.
            f"user {getpass.getuser()}",
        ]
        if self.users:
            passwd = self.directory / "passwd"
            passwd.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if i == 0 else []
                command = [MOSQUITTO_PASSWD or "mosquitto_passwd", "-b", *create]
                subprocess.run(
                    [*command, str(passwd), user, password],
                    check=True,
                    capture_output=True,
                )
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
            ]
        path = self.directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _launch(self) -> None:
        conf = self._write_config()
        self.log_path.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self._proc.returncode}:\n{self.log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {START_TIMEOUT_S} s")

    def _end(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(sig)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass(frozen=True)
class Received:
    """One message as the recorder saw it."""

    seq: int
    """Arrival number, from 1, over all topics (compare with Recorder.mark())."""
    topic: str
    payload: bytes
    retain: bool
    """True for a retained message delivered on subscribing (MQTT clears the flag on
    messages forwarded live)."""

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)


Match = str | bytes | Callable[[Received], bool] | None


class Recorder:
    """A test-side MQTT client that records every message on ``topics``.

    Runs paho's network loop on its own thread, reconnects on its own (quickly)
    after the broker restarts and subscribes again each time.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        topics: tuple[str, ...] = ("#",),
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._subscribed = 0
        """How many times the subscription was (re)made."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"recorder-{id(self):x}")
        client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        if username is not None:
            client.username_pw_set(username, password)
        if broker.tls is not None:
            client.tls_set(ca_certs=str(broker.tls.ca))
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def connect(self, timeout: float = 5.0) -> Recorder:
        """Connect and wait until subscribed (retained messages then start arriving)."""
        self._client.connect(self.broker.host, self.broker.port, keepalive=10)
        self._client.loop_start()
        self._wait(lambda: self._subscribed > 0, timeout, "the recorder to subscribe")
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- looking at messages -------------------------------------------------------

    def mark(self) -> int:
        """The seq of the latest message: pass as ``since`` to wait for newer ones."""
        with self._cond:
            return len(self._messages)

    def messages(self, topic: str | None = None, since: int = 0) -> list[Received]:
        """Messages after ``since`` (all topics, or one), oldest first."""
        with self._cond:
            return [
                m for m in self._messages[since:] if topic is None or m.topic == topic
            ]

    def last(self, topic: str) -> Received | None:
        found = self.messages(topic)
        return found[-1] if found else None

    def wait_for(
        self, topic: str, payload: Match = None, *, since: int = 0, timeout: float = 5.0
    ) -> Received:
        """The first message on ``topic`` after ``since`` matching ``payload``.

        ``payload``: the text or bytes expected, a predicate on the Received, or None
        for any. Raises AssertionError (listing what arrived) after ``timeout`` s.
        """
        found: list[Received] = []

        def ready() -> bool:
            found[:] = [
                m for m in self._messages[since:] if m.topic == topic and _matches(m, payload)
            ]
            return bool(found)

        self._wait(ready, timeout, f"{payload!r} on {topic}")
        return found[0]

    async def wait_for_async(
        self, topic: str, payload: Match = None, *, since: int = 0, timeout: float = 5.0
    ) -> Received:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(
            self.wait_for, topic, payload, since=since, timeout=timeout
        )

    def wait_subscribed(self, count: int, timeout: float = 5.0) -> None:
        """Wait until the subscription was made ``count`` times (after reconnects)."""
        self._wait(lambda: self._subscribed >= count, timeout, f"subscription #{count}")

    @property
    def subscriptions(self) -> int:
        with self._cond:
            return self._subscribed

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 and wait until the broker has it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)
        if not info.is_published():
            raise AssertionError(f"publishing on {topic} timed out")

    # -- internals -------------------------------------------------------------------

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(ready, timeout):
                seen = "\n".join(
                    f"  #{m.seq} {m.topic} {m.payload[:80]!r}{' (retained)' if m.retain else ''}"
                    for m in self._messages[-30:]
                )
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; last messages:\n{seen}"
                )

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client: paho.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._subscribed += 1
            self._cond.notify_all()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(
                Received(len(self._messages) + 1, msg.topic, bytes(msg.payload), bool(msg.retain))
            )
            self._cond.notify_all()


def _matches(message: Received, payload: Match) -> bool:
    if payload is None:
        return True
    if isinstance(payload, str):
        return message.payload == payload.encode()
    if isinstance(payload, bytes):
        return message.payload == payload
    return payload(message)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """An anonymous mosquitto on a free loopback port, stopped after the test."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    b = Broker(tmp_path / "broker").start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def recorder(broker: Broker) -> Iterator[Recorder]:
    """A Recorder subscribed to everything on ``broker``."""
    with broker.recorder() as rec:
        yield rec
