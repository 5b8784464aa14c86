"""Debian's headless Chromium for a test, with a WAV file as its microphone,
driven over the DevTools protocol (no clicking: the test calls the page's hooks).

Usage::

    from tests.support.chromium import CHROMIUM_MISSING, Chromium, chromium_path

    pytestmark = pytest.mark.skipif(chromium_path() is None, reason=CHROMIUM_MISSING)

    def test_page(tmp_path: Path) -> None:
        with Chromium(tmp_path / "chromium", mic=wav, url=f"{base}/?tap=1") as browser:
            browser.evaluate("window.voiceagent.start()", await_promise=True)
            browser.wait_for("window.voiceagent.captions.length > 0", timeout=60)
            assert not browser.errors, browser.errors

- The microphone is ``--use-file-for-fake-audio-capture=WAV%noloop``: the file is
  played once from when the page opens the microphone, then silence. The track is
  48 kHz whatever the file's rate; a page's ``AudioContext`` resamples it. With
  echoCancellation / noiseSuppression / autoGainControl on (the defaults), Chrome's
  audio processing changes the level and the waveform (seen: gain up to 1.9x,
  polarity inverted), but the words come through for Whisper; with them off the
  file arrives as it is (correlation 0.99).
- ``--use-fake-ui-for-media-stream`` grants the microphone without asking, and
  ``--autoplay-policy=no-user-gesture-required`` lets an ``AudioContext`` run
  without a click. The page must be a secure context for ``getUserMedia``:
  ``http://127.0.0.1`` or ``http://localhost`` are.
- There is no sound card: what the page plays goes nowhere (the voiceagent page's
  ``?tap=1`` hands it back).
- ``fake_devices=False`` drops the fake devices: Chromium then uses PulseAudio
  (``env`` gives it ``PULSE_SERVER`` / ``PULSE_SINK`` / ``PULSE_SOURCE``; see
  ``tests/support/pulse.py``), headless or not, for output and input. Its device
  list leaves out monitor sources, so with only null sinks it finds no microphone
  (``NotFoundError``): a ``module-remap-source`` of a monitor is one.
- :attr:`Chromium.errors` holds ``console.error`` calls and uncaught exceptions;
  :attr:`Chromium.console` every console call and browser log entry, as
  ``(level, text)``, e.g. failed loads (``"network.error"``), for failure messages.
"""

from __future__ import annotations

import contextlib

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

START_TIMEOUT_S = 20.0
CHROMIUM_MISSING = "chromium is not installed (Debian: apt-get install chromium)"


def chromium_path() -> str | None:
    """Debian's ``chromium`` on PATH, or None (a test skips with CHROMIUM_MISSING)."""
    return shutil.which("chromium")


class JavaScriptError(RuntimeError):
    """An expression given to :meth:`Chromium.evaluate` threw (or its promise rejected)."""


class Chromium:
    """A headless Chromium process and a DevTools connection to its one page.

    ``directory`` holds its profile (``--user-data-dir``) and its own log
    (``chromium.log``); ``mic`` is a WAV file (PCM16) the fake microphone plays
    once; ``url`` is the page it opens; ``args`` are more command-line switches;
    ``fake_devices=False`` uses the real audio devices (PulseAudio) instead of
    fake ones (``mic`` must then be None); ``env`` replaces its environment.
    """

    def __init__(
        self,
        directory: Path,
        *,
        mic: Path | None = None,
        url: str = "about:blank",
        args: tuple[str, ...] = (),
        fake_devices: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        path = chromium_path()
        if path is None:
            raise RuntimeError(CHROMIUM_MISSING)
        if mic is not None and not fake_devices:
            raise ValueError("a fake microphone file needs fake_devices=True")
        self.directory = directory
        if env is None and fake_devices:
            # No sound server: a PulseAudio daemon left running by the device tests
            # would take the page's output to its idle null sink, which stalls for
            # up to 2 s and delayed the page so that it missed the request's start.
            env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent"}
        self._env = dict(env) if env is not None else None
        self.log_path = directory / "chromium.log"
        self._errors: list[str] = []
        self._console: list[tuple[str, str]] = []
        self._profile = directory / "profile"
        self._profile.mkdir(parents=True, exist_ok=True)
        self._command = [
            path,
            "--headless=new",
            "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-dev-shm-usage",  # small /dev/shm in containers
            "--use-fake-ui-for-media-stream",
            *(["--use-fake-device-for-media-stream"] if fake_devices else []),
            "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={self._profile}",
            "--remote-debugging-port=0",  # a free port, written to DevToolsActivePort
            *([f"--use-file-for-fake-audio-capture={mic.resolve()}%noloop"] if mic else []),
            *args,
            url,
        ]
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._next_id = 0
        self._stack = contextlib.ExitStack()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Chromium:
        """Start Chromium and connect to its page; raises with its log if it cannot."""
        with open(self.log_path, "wb") as log:
            # Its own session, so that close() can end its helper processes with it.
            self._proc = subprocess.Popen(
                self._command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env=self._env,
            )
        try:
            port = self._devtools_port()
            page = self._page_target(port)
            # websockets wants its connection entered as a context: this object's life is that context
            self._ws = self._stack.enter_context(
                connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=START_TIMEOUT_S))
            self._call("Runtime.enable")
            self._call("Log.enable")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the connection and end Chromium and its helper processes."""
        if self._ws is not None:
            self._stack.close()  # closes the connection
            self._ws = None
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)  # the group of the process we started, no other
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self) -> str:
        """Chromium's own stderr so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the page ----------------------------------------------------------------

    @property
    def errors(self) -> list[str]:
        """``console.error`` calls and uncaught exceptions in the page so far."""
        self.drain()
        return list(self._errors)

    @property
    def console(self) -> list[tuple[str, str]]:
        """Every console call and browser log entry so far, as ``(level, text)``."""
        self.drain()
        return list(self._console)

    def evaluate(self, expression: str, await_promise: bool = False, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (JSON-like values only;
        with ``await_promise``, the value its promise resolves to). Raises
        :class:`JavaScriptError` if it throws or rejects."""
        result = self._call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise JavaScriptError(_exception_text(result["exceptionDetails"]))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Evaluate ``expression`` until its value is truthy; returns that value. An
        expression that throws counts as not yet (the page may still be loading) and
        its error is in the TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except JavaScriptError as e:
                value = e
            if value and not isinstance(value, JavaScriptError):
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still {value!r} after {timeout} s; console: {self.console[-20:]}")
            time.sleep(interval)

    def navigate(self, url: str, timeout: float = START_TIMEOUT_S) -> None:
        """Open ``url`` in the page and wait until the new document has loaded (not
        for a change of the fragment alone, which keeps the document)."""
        self.evaluate("window.__leaving = true")  # gone once the new document is there
        answer = self._call("Page.navigate", {"url": url}, timeout=timeout)
        if "errorText" in answer:
            raise RuntimeError(f"cannot open {url}: {answer['errorText']}")
        self.wait_for("!window.__leaving && document.readyState === 'complete'", timeout)

    def drain(self) -> None:
        """Take in the console events sent so far (after close(): nothing more comes)."""
        if self._ws is None:
            return
        try:
            while True:
                self._on_event(json.loads(self._ws.recv(timeout=0)))
        except (TimeoutError, ConnectionClosed):
            pass

    # -- internals ---------------------------------------------------------------

    def _devtools_port(self) -> int:
        # Chromium writes "PORT\n/devtools/browser/ID" once it listens.
        assert self._proc is not None
        active = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}:\n{self.log()}")
            try:
                return int(active.read_text().split()[0])
            except (FileNotFoundError, IndexError, ValueError):
                time.sleep(0.05)
        raise RuntimeError(f"chromium wrote no DevToolsActivePort in {START_TIMEOUT_S} s:\n{self.log()}")

    def _page_target(self, port: int) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
                pages = [t for t in json.load(reply) if t.get("type") == "page"]
            if pages:
                return pages[0]
            time.sleep(0.05)
        raise RuntimeError(f"chromium showed no page in {START_TIMEOUT_S} s:\n{self.log()}")

    def _call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer, keeping the events that
        arrive meanwhile."""
        assert self._ws is not None, "not started"
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method} in {timeout} s")
            try:
                message = json.loads(self._ws.recv(timeout=left))
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                raise RuntimeError(f"the DevTools connection closed during {method}:\n{self.log()}") from e
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            self._on_event(message)

    def _on_event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(a) for a in params.get("args", []))
            self._console.append((params.get("type", "log"), text))
            if params.get("type") in ("error", "assert"):
                self._errors.append(text)
        elif method == "Runtime.exceptionThrown":
            text = _exception_text(params.get("exceptionDetails", {}))
            self._console.append(("exception", text))
            self._errors.append(text)
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self._console.append((f"{entry.get('source')}.{entry.get('level')}", entry.get("text", "")))


def _remote_text(obj: dict[str, Any]) -> str:
    """A console argument (a Runtime.RemoteObject) as text."""
    if "value" in obj:
        return obj["value"] if isinstance(obj["value"], str) else json.dumps(obj["value"])
    return obj.get("description") or obj.get("unserializableValue") or obj.get("type", "?")


def _exception_text(details: dict[str, Any]) -> str:
    exception = details.get("exception") or {}
    where = f" ({details.get('url', '')}:{details.get('lineNumber', 0) + 1})" if details.get("url") else ""
    return (exception.get("description") or details.get("text") or "exception") + where
