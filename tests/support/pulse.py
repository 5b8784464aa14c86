"""PulseAudio null sinks as real audio devices for tests, on machines without a sound card.

A null sink swallows what is played into it; its ``NAME.monitor`` source is a
capture device that hears it. With two of them a test drives a program like a
person would: it plays the user's speech into ``va_mic`` with ``paplay``, the
program records from ``va_mic.monitor`` and plays to ``va_spk``, and the test
records what the program said from ``va_spk.monitor`` with ``parecord``.

The recipe (checked on Debian 12, PulseAudio 16.1, as root, no sound card)::

    pulseaudio --start --exit-idle-time=-1   # as root: a warning, but it works;
                                             # no --system, no extra modules
    pactl load-module module-null-sink sink_name=va_mic
    pactl load-module module-null-sink sink_name=va_spk
    parec --latency-msec=10 -d va_mic.monitor >/dev/null &   # keep-alive, see below
    parec --latency-msec=10 -d va_spk.monitor >/dev/null &
    export PULSE_SERVER=unix:/tmp/pulse-XXXX/native   # "Server String" of `pactl info`
    PULSE_SOURCE=va_mic.monitor PULSE_SINK=va_spk program   # device "pulse" or "default"
    paplay --device=va_mic speech.wav
    parecord --device=va_spk.monitor --latency-msec=20 --rate=16000 --channels=1 \\
        --format=s16le --file-format=wav said.wav   # SIGINT/SIGTERM finalize the header

Notes from the experiment:

* Without ``XDG_RUNTIME_DIR`` the daemon's socket is ``/tmp/pulse-XXXX/native``,
  found by clients through ``~/.config/pulse/<machine-id>-runtime``; with it, it is
  ``$XDG_RUNTIME_DIR/pulse/native``. A child with another ``HOME`` or
  ``XDG_RUNTIME_DIR`` would not find the daemon, hence ``PULSE_SERVER`` in the env.
* PortAudio (through ALSA) lists the devices ``pulse`` and ``default`` only if the
  daemon runs when ``sounddevice`` is imported; the ALSA pulse plugin honours
  ``PULSE_SOURCE`` / ``PULSE_SINK`` for both.
* Keep-alive: a null sink that no low-latency client is using renders in blocks
  of its maximum latency, 2 s, and a stream that connects then gets its first
  data only when the current block ends (seen: 1.3-1.9 s stalls, output
  underflows on a duplex stream). A monitor reader asking for 10 ms keeps the
  sink rendering every 10 ms, after which paplay -> program latency is 10-50 ms.
* Loading a null sink whose name is taken gives it a new name (``va_mic.2``), so
  the names actually used are looked up by module and exposed in ``env``.

Acoustic echo: ``module-loopback`` copies a source into a sink, so
``pactl load-module module-loopback source=va_spk.monitor sink=va_mic latency_msec=50``
sends what the program plays back into its own microphone, like a loudspeaker
heard by a microphone in a room; ``pactl set-sink-input-volume N 0.5`` on the
loopback's sink input (found by its owner module) attenuates it by 6 dB
(:meth:`PulseSinks.loopback`). Not ``-6dB``: a signed volume is relative to the
current one, and module-stream-restore starts each new loopback at the volume the
last one was left at, so repeated runs would attenuate it further and further.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

TOOLS = ("pulseaudio", "pactl", "paplay", "parec", "parecord")
INSTALL_HINT = "install the Debian packages pulseaudio pulseaudio-utils libasound2-plugins"

_PACTL_TIMEOUT_S = 10.0
_START_TIMEOUT_S = 15.0
_WARMUP_TIMEOUT_S = 5.0


class PulseUnavailable(RuntimeError):
    """PulseAudio is not installed or its daemon cannot be started (tests skip on it)."""


def missing_tools() -> list[str]:
    """The PulseAudio command line tools this helper needs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def available() -> bool:
    """Whether the PulseAudio daemon and client tools are installed (starts nothing)."""
    return not missing_tools()


def _base_env(server: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PULSE_SERVER", None)
    if server:
        env["PULSE_SERVER"] = server
    env["LC_ALL"] = "C"  # pactl's text output is translated otherwise
    return env


def _pactl(args: Sequence[str], server: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pactl", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_PACTL_TIMEOUT_S,
        env=_base_env(server),
    )


def server_address(server: str | None = None) -> str | None:
    """The address of a running daemon as a ``PULSE_SERVER`` value, or None.

    Asks ``pactl info`` (with ``PULSE_SERVER=server`` if given, else the current
    environment) and turns its "Server String" into ``unix:/path/native``.
    """
    try:
        result = _pactl(["info"], server)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    for line in result.stdout.splitlines():
        if line.startswith("Server String:"):
            address = line.split(":", 1)[1].strip()
            return f"unix:{address}" if address.startswith("/") else address
    return None


def ensure_daemon(timeout_s: float = _START_TIMEOUT_S) -> str:
    """Start the PulseAudio daemon unless one answers; return its ``PULSE_SERVER`` address.

    Idempotent: a running daemon (the one ``PULSE_SERVER`` or the user's runtime
    directory points to) is used as it is. Never stops a daemon.

    Raises:
        PulseUnavailable: tools missing, or the daemon does not answer within
            ``timeout_s`` seconds after ``pulseaudio --start``.
    """
    missing = missing_tools()
    if missing:
        raise PulseUnavailable(f"PulseAudio tools not found: {', '.join(missing)}; {INSTALL_HINT}")
    address = server_address(os.environ.get("PULSE_SERVER"))
    if address:
        return address
    # `--start` daemonizes and is a no-op when a daemon already runs (it takes
    # the autospawn lock, so concurrent callers are fine). --exit-idle-time=-1:
    # never exit when idle between tests.
    env = _base_env()
    with tempfile.TemporaryFile(mode="w+") as err:
        try:
            proc = subprocess.run(
                ["pulseaudio", "--start", "--exit-idle-time=-1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                timeout=timeout_s + 15,
            )
        except subprocess.TimeoutExpired as exc:
            raise PulseUnavailable(f"'pulseaudio --start' hung for {exc.timeout:.0f} s") from exc
        err.seek(0)
        stderr = " ".join(
            line.strip() for line in err.read().splitlines()
            if "not intended to be run as root" not in line  # the usual warning as root
        )
    deadline = time.monotonic() + timeout_s
    while True:
        address = server_address()
        if address:
            return address
        if time.monotonic() > deadline:
            raise PulseUnavailable(
                f"PulseAudio daemon did not start (pulseaudio --start exited {proc.returncode}"
                + (f": {stderr}" if stderr else "") + ")"
            )
        time.sleep(0.1)


def _sinks(server: str) -> list[dict[str, object]]:
    """Sinks as dicts with ``name``, ``owner_module`` (int) and ``monitor_source``."""
    result = _pactl(["--format=json", "list", "sinks"], server)
    if result.returncode == 0:
        try:
            return [
                {"name": s["name"], "owner_module": int(s["owner_module"]),
                 "monitor_source": s["monitor_source"]}
                for s in json.loads(result.stdout)
            ]
        except (ValueError, KeyError, TypeError):
            pass
    result = _pactl(["list", "sinks"], server)  # pactl < 15 has no JSON output
    sinks: list[dict[str, object]] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("Sink #"):
            sinks.append({})
        elif sinks and ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            if key == "Name":
                sinks[-1]["name"] = value
            elif key == "Owner Module":
                sinks[-1]["owner_module"] = int(value) if value.isdigit() else -1
            elif key == "Monitor Source":
                sinks[-1]["monitor_source"] = value
    return sinks


def _sink_inputs_of(module: int, server: str) -> list[int]:
    """Indexes of the sink inputs owned by ``module``."""
    result = _pactl(["--format=json", "list", "sink-inputs"], server)
    if result.returncode == 0:
        try:
            return [int(i["index"]) for i in json.loads(result.stdout)
                    if str(i.get("owner_module")) == str(module)]
        except (ValueError, KeyError, TypeError):
            pass
    result = _pactl(["list", "sink-inputs"], server)  # pactl < 15 has no JSON output
    found: list[int] = []
    index: int | None = None
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("Sink Input #"):
            tail = line[len("Sink Input #"):]
            index = int(tail) if tail.isdigit() else None
        elif line.startswith("Owner Module:") and index is not None:
            if line.split(":", 1)[1].strip() == str(module):
                found.append(index)
    return found


class PulseSinks:
    """Null sinks loaded into a running daemon, and the means to use them.

    Attributes:
        server: the daemon's address (a ``PULSE_SERVER`` value).
        sinks: requested sink name -> actual sink name (they differ only when the
            name was taken, e.g. by a concurrent test run).
        module_ids: requested sink name -> index of its module-null-sink.
        env: what a child process needs to record from the source and play to the
            sink through the ALSA ``pulse``/``default`` devices: ``PULSE_SERVER``,
            ``PULSE_SOURCE`` (a sink monitor) and ``PULSE_SINK``.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        self.sinks: dict[str, str] = {}
        self.module_ids: dict[str, int] = {}
        self.env: dict[str, str] = {"PULSE_SERVER": server}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._keepalives: list[subprocess.Popen[bytes]] = []
        self._loopbacks: list[int] = []

    # -- names ---------------------------------------------------------------
    def sink(self, name: str) -> str:
        """Actual name of the sink requested as ``name`` (actual names pass through)."""
        return self.sinks.get(name, name)

    def monitor(self, name: str) -> str:
        """Monitor source (capture device) of sink ``name``: ``'<actual>.monitor'``."""
        if name.endswith(".monitor"):
            return self.sink(name[: -len(".monitor")]) + ".monitor"
        return self.sink(name) + ".monitor"

    def child_env(self, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        """A complete environment for a child: ``base`` (default ``os.environ``) + ``env``."""
        return {**(os.environ if base is None else base), **self.env, **extra}

    # -- setup / teardown ------------------------------------------------------
    def _load(self, name: str) -> None:
        result = _pactl(["load-module", "module-null-sink", f"sink_name={name}",
                         f"sink_properties=device.description={name}"], self.server)
        if result.returncode != 0 or not result.stdout.strip().isdigit():
            raise PulseUnavailable(
                f"cannot load a null sink {name!r}: {(result.stderr or result.stdout).strip()}"
            )
        module = int(result.stdout.strip())
        self.module_ids[name] = module
        actual = next((str(s["name"]) for s in _sinks(self.server)
                       if s.get("owner_module") == module), None)
        if actual is None:
            raise PulseUnavailable(f"null sink {name!r} (module {module}) did not appear")
        self.sinks[name] = actual

    def _pa_cmd(self, args: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(args), stdin=subprocess.DEVNULL,
                                env=_base_env(self.server), **kwargs)  # type: ignore[call-overload]

    def _warm_up(self) -> None:
        """Keep every sink rendering in 10 ms blocks (see the module docstring)."""
        for actual in self.sinks.values():
            self._keepalives.append(self._pa_cmd(
                ["parec", "--latency-msec=10", f"--device={actual}.monitor"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # The keep-alive takes effect when the current (up to 2 s) block ends; a
        # probe's first bytes arrive at that moment.
        probes = [self._pa_cmd(["parec", "--latency-msec=10", f"--device={a}.monitor"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                  for a in self.sinks.values()]
        deadline = time.monotonic() + _WARMUP_TIMEOUT_S
        try:
            for probe in probes:
                assert probe.stdout is not None
                ready, _, _ = select.select([probe.stdout], [], [],
                                            max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise PulseUnavailable("null sink monitors deliver no audio")
        finally:
            for probe in probes:
                _terminate(probe, signal.SIGTERM)

    # -- loopbacks (acoustic echo) ---------------------------------------------
    def loopback(
        self,
        source: str,
        sink: str,
        latency_msec: int = 50,
        volume_db: float | None = None,
    ) -> int:
        """Copy ``source`` into ``sink`` with ``module-loopback``; returns the module index.

        Args:
            source: a monitor (``"va_spk.monitor"``) or a sink name, meaning its monitor.
            sink: the sink to play into (e.g. ``"va_mic"``).
            latency_msec: the loopback's target latency (PulseAudio keeps it
                roughly, adapting its rate).
            volume_db: gain of the loopback's sink input, in decibels (e.g.
                -6.0); None leaves it at 100 %.

        The module is unloaded by :meth:`unload_loopback` or :meth:`close`.

        Raises:
            PulseUnavailable: the module cannot be loaded.
        """
        result = _pactl(["load-module", "module-loopback", f"source={self.monitor(source)}",
                         f"sink={self.sink(sink)}", f"latency_msec={int(latency_msec)}",
                         "source_dont_move=true", "sink_dont_move=true"], self.server)
        if result.returncode != 0 or not result.stdout.strip().isdigit():
            raise PulseUnavailable(
                f"cannot load module-loopback {source} -> {sink}: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        module = int(result.stdout.strip())
        self._loopbacks.append(module)
        if volume_db is not None:
            try:
                self.set_loopback_volume(module, volume_db)
            except PulseUnavailable:
                self.unload_loopback(module)
                raise
        return module

    def loopback_sink_input(self, module: int, timeout_s: float = _PACTL_TIMEOUT_S) -> int:
        """Index of the sink input that loopback ``module`` plays through."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = _sink_inputs_of(module, self.server)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise PulseUnavailable(f"module-loopback {module} has no sink input")
            time.sleep(0.05)

    def set_loopback_volume(self, module: int, volume_db: float) -> None:
        """Set the gain (decibels) of loopback ``module``'s sink input."""
        sink_input = self.loopback_sink_input(module)
        # A linear factor: "-6dB" would be *relative* to the current volume (pactl
        # reads a leading sign that way), and module-stream-restore gives a new
        # loopback the volume the last one had.
        result = _pactl(["set-sink-input-volume", str(sink_input), f"{10 ** (volume_db / 20):.6f}"],
                        self.server)
        if result.returncode != 0:
            raise PulseUnavailable(
                f"cannot set the volume of sink input {sink_input}: "
                f"{(result.stderr or result.stdout).strip()}"
            )

    def unload_loopback(self, module: int) -> None:
        """Unload a loopback made by :meth:`loopback` (no error if already gone)."""
        if module in self._loopbacks:
            self._loopbacks.remove(module)
        try:
            _pactl(["unload-module", str(module)], self.server)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        """Stop the processes this object started and unload its loopbacks and sinks."""
        for module in list(self._loopbacks):
            self.unload_loopback(module)
        for proc in self._procs:
            _terminate(proc, signal.SIGINT)  # SIGINT lets parecord finish its WAV header
        for proc in self._keepalives:
            _terminate(proc, signal.SIGTERM)
        self._procs.clear()
        self._keepalives.clear()
        for module in self.module_ids.values():
            try:
                _pactl(["unload-module", str(module)], self.server)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.module_ids.clear()

    # -- playing and recording -------------------------------------------------
    def play(self, wav_path: str | os.PathLike[str], sink: str) -> subprocess.Popen[bytes]:
        """Start playing a sound file into ``sink`` (e.g. "va_mic"); returns paplay's Popen.

        ``proc.wait()`` returns when the file has been played (in real time).
        """
        path = Path(wav_path)
        if not path.is_file():
            raise FileNotFoundError(path)
        proc = self._pa_cmd(["paplay", f"--device={self.sink(sink)}", str(path)])
        self._procs.append(proc)
        return proc

    def record(
        self,
        sink_monitor: str,
        out_wav_path: str | os.PathLike[str],
        rate: int = 16000,
        wait_started: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Start recording ``sink_monitor`` (e.g. "va_spk.monitor") to a 16-bit mono WAV.

        Args:
            sink_monitor: a monitor source; a bare sink name means its monitor.
            out_wav_path: the WAV file to write.
            rate: sample rate of the file, in hertz.
            wait_started: return only once samples are being written (at most
                5 s), so nothing played right afterwards is missed.

        Returns:
            parecord's Popen. Stop it with :meth:`stop` (SIGINT; SIGTERM works as
            well): parecord then writes the final WAV header. SIGKILL would not.
        """
        path = Path(out_wav_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = self._pa_cmd([
            "parecord", f"--device={self.monitor(sink_monitor)}", "--latency-msec=20",
            f"--rate={int(rate)}", "--channels=1", "--format=s16le", "--file-format=wav",
            str(path),
        ])
        self._procs.append(proc)
        if wait_started:
            deadline = time.monotonic() + _WARMUP_TIMEOUT_S
            while not (path.exists() and path.stat().st_size > 44):
                if proc.poll() is not None:
                    raise RuntimeError(f"parecord exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> int:
        """Stop a process from :meth:`play` or :meth:`record` (SIGINT); return its exit code."""
        return _terminate(proc, signal.SIGINT, timeout_s)


def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout_s: float = 5.0) -> int:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


@contextmanager
def pulse_null_sinks(
    names: Sequence[str] = ("va_mic", "va_spk"),
    *,
    source: str | None = None,
    sink: str | None = None,
) -> Iterator[PulseSinks]:
    """Start PulseAudio if needed, load null sinks, yield a :class:`PulseSinks`.

    Args:
        names: sinks to create. By default the first is the microphone (its
            monitor becomes ``PULSE_SOURCE``) and the last the speaker
            (``PULSE_SINK``).
        source: override ``PULSE_SOURCE``: a sink name (its monitor is used) or a
            ``*.monitor`` name.
        sink: override ``PULSE_SINK`` (a sink name).

    On exit, processes started through the object are stopped and the sinks are
    unloaded; the daemon keeps running.

    Raises:
        PulseUnavailable: PulseAudio is not installed or cannot be started.
    """
    if not names:
        raise ValueError("need at least one sink name")
    pulse = PulseSinks(ensure_daemon())
    try:
        for name in names:
            pulse._load(name)
        pulse.env["PULSE_SOURCE"] = pulse.monitor(source or names[0])
        pulse.env["PULSE_SINK"] = pulse.sink(sink or names[-1])
        pulse._warm_up()
        yield pulse
    finally:
        pulse.close()


def pulse_sinks_or_skip(names: Sequence[str] = ("va_mic", "va_spk")) -> Iterator[PulseSinks]:
    """For a pytest fixture: ``yield from pulse_sinks_or_skip()``; skips if unavailable."""
    import pytest

    manager = pulse_null_sinks(names)
    try:
        pulse = manager.__enter__()
    except PulseUnavailable as exc:
        pytest.skip(f"PulseAudio unavailable: {exc}")
    try:
        yield pulse
    finally:
        manager.__exit__(None, None, None)


def loop_speaker_into_mic_or_skip(pulse: PulseSinks, latency_msec: int, volume_db: float) -> None:
    """A room: what is played on ``va_spk`` reaches ``va_mic`` ``latency_msec`` later at
    ``volume_db``; skips the test when PulseAudio cannot loop back."""
    import pytest

    try:
        pulse.loopback("va_spk.monitor", "va_mic", latency_msec=latency_msec, volume_db=volume_db)
    except PulseUnavailable as exc:
        pytest.skip(f"PulseAudio loopback unavailable: {exc}")
