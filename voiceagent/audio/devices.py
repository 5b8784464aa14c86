"""Audio device discovery and selection (what ``voiceagent devices`` shows).

Devices are PortAudio devices as reported by ``sounddevice``. A device is chosen
by the ``audio.input_device`` / ``audio.output_device`` settings, which may be

* ``None`` (or an empty string): the PortAudio default device;
* an index (``3`` or ``"3"``): that device, which must have channels of the
  requested kind;
* a name: an exact name match first, else a case-insensitive substring that must
  match exactly one device of the requested kind.

Every failure raises :class:`voiceagent.errors.AudioDeviceError` with a one-line
message that names the device and a hint on how to list the devices.

``sounddevice`` is imported lazily, inside the functions, so that ``voiceagent``
imports (and e.g. ``voiceagent --help`` works) on machines without PortAudio.
Note that PortAudio enumerates devices once, when ``sounddevice`` is first
imported; devices that appear later (a PulseAudio daemon started afterwards, a USB
headset plugged in) are only seen by a new process.

On a Linux machine without a sound card, the devices come from PulseAudio through
the ALSA ``pulse`` plugin: start ``pulseaudio`` and the ALSA devices ``pulse`` and
``default`` appear; the environment variables ``PULSE_SOURCE`` and ``PULSE_SINK``
pick which PulseAudio source/sink they use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from voiceagent.errors import AudioDeviceError

logger = logging.getLogger(__name__)

DeviceKind = Literal["input", "output"]

LIST_HINT = "run 'voiceagent devices' to list them"
PORTAUDIO_HINT = "install the Debian package libportaudio2 (apt-get install libportaudio2)"


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device.

    Attributes:
        index: PortAudio device index (what ``sounddevice`` takes as ``device=``).
        name: device name as PortAudio reports it, e.g. ``"pulse"``.
        hostapi: name of the host API, e.g. ``"ALSA"``.
        max_input_channels: number of capture channels (0: not an input device).
        max_output_channels: number of playback channels (0: not an output device).
        default_samplerate: the device's default sample rate, in hertz.
        is_default_input: whether this is PortAudio's default input device.
        is_default_output: whether this is PortAudio's default output device.
    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False

    def channels(self, kind: DeviceKind) -> int:
        """Number of channels of ``kind`` ("input" or "output")."""
        return self.max_input_channels if kind == "input" else self.max_output_channels


def _sounddevice() -> ModuleType:
    """Import ``sounddevice``, turning a missing PortAudio into AudioDeviceError."""
    try:
        import sounddevice
    except OSError as exc:  # raised by sounddevice when libportaudio is missing
        raise AudioDeviceError(f"cannot load the PortAudio library: {exc}", PORTAUDIO_HINT) from exc
    return sounddevice


def _default_index(sd: ModuleType, kind: DeviceKind) -> int | None:
    try:
        index = int(sd.query_devices(kind=kind)["index"])
    except (sd.PortAudioError, ValueError, TypeError, KeyError):
        return None
    return index if index >= 0 else None


def list_devices() -> list[DeviceInfo]:
    """Return every PortAudio device, in index order.

    Raises:
        AudioDeviceError: PortAudio cannot be loaded or cannot be queried.
    """
    sd = _sounddevice()
    try:
        raw: list[dict[str, Any]] = list(sd.query_devices())
        hostapis = [str(api["name"]) for api in sd.query_hostapis()]
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list audio devices: {exc}", None) from exc
    default_in = _default_index(sd, "input")
    default_out = _default_index(sd, "output")
    devices = []
    for dev in raw:
        index = int(dev["index"])
        api = int(dev["hostapi"])
        devices.append(
            DeviceInfo(
                index=index,
                name=str(dev["name"]),
                hostapi=hostapis[api] if 0 <= api < len(hostapis) else str(api),
                max_input_channels=int(dev["max_input_channels"]),
                max_output_channels=int(dev["max_output_channels"]),
                default_samplerate=float(dev["default_samplerate"]),
                is_default_input=index == default_in,
                is_default_output=index == default_out,
            )
        )
    logger.debug("found %d audio devices (default input %s, output %s)",
                 len(devices), default_in, default_out)
    return devices


def format_device_table(devices: list[DeviceInfo]) -> str:
    """Format devices as the table ``voiceagent devices`` prints.

    Columns: default marker (``>`` default input, ``<`` default output, ``*``
    both), index, input channels, output channels, default sample rate in hertz,
    host API and name. Ends with a legend line; no trailing newline.
    """
    if not devices:
        return "no audio devices found"
    rows = [("", "index", "in", "out", "rate/Hz", "api", "name")]
    for dev in devices:
        marker = {(True, True): "*", (True, False): ">", (False, True): "<"}.get(
            (dev.is_default_input, dev.is_default_output), ""
        )
        rows.append((
            marker,
            str(dev.index),
            str(dev.max_input_channels),
            str(dev.max_output_channels),
            f"{dev.default_samplerate:g}",
            dev.hostapi,
            dev.name,
        ))
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]) - 1)]
    right = {1, 2, 3, 4}  # numbers are right-aligned
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if col in right else cell.ljust(w)
                 for col, (cell, w) in enumerate(zip(row[:-1], widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    lines.append("(> default input, < default output, * both)")
    return "\n".join(lines)


def _describe(dev: DeviceInfo) -> str:
    return f"{dev.index} '{dev.name}'"


def _check_kind(kind: str) -> None:
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', not {kind!r}")


def resolve_device(
    spec: str | int | None,
    kind: DeviceKind,
    devices: list[DeviceInfo] | None = None,
) -> int | None:
    """Turn a device setting into a PortAudio device index.

    Args:
        spec: ``None`` or ``""`` for the PortAudio default device; an ``int`` or a
            string of digits for a device index; otherwise a device name (exact
            match first, else a case-insensitive substring that must be unique
            among the devices of ``kind``).
        kind: ``"input"`` or ``"output"``; the device must have channels of it.
        devices: the devices to choose from; :func:`list_devices` when ``None``.

    Returns:
        The device index, or ``None`` for the PortAudio default.

    Raises:
        AudioDeviceError: no such device, no channels of ``kind``, an ambiguous
            name, or PortAudio cannot be loaded.
        ValueError: ``kind`` is neither "input" nor "output".
    """
    _check_kind(kind)
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        logger.debug("%s device: PortAudio default", kind)
        return None
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise AudioDeviceError(
            f"invalid audio {kind} device {spec!r}: expected a name or an index", LIST_HINT
        )
    if devices is None:
        devices = list_devices()

    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        found = next((d for d in devices if d.index == index), None)
        if found is None:
            raise AudioDeviceError(f"audio {kind} device {index} does not exist", LIST_HINT)
        if found.channels(kind) < 1:
            raise AudioDeviceError(
                f"audio device {_describe(found)} has no {kind} channels", LIST_HINT
            )
        logger.debug("%s device %r -> %s", kind, spec, _describe(found))
        return found.index

    name = spec.strip()
    exact = [d for d in devices if d.name == name]
    exact_kind = [d for d in exact if d.channels(kind) > 0]
    if len(exact_kind) == 1:
        logger.debug("%s device %r -> %s (exact name)", kind, spec, _describe(exact_kind[0]))
        return exact_kind[0].index
    if len(exact_kind) > 1:
        raise AudioDeviceError(
            f"audio {kind} device name '{name}' is ambiguous: "
            + ", ".join(f"{d.index} ({d.hostapi})" for d in exact_kind),
            "give the device index instead; " + LIST_HINT,
        )
    if exact:
        raise AudioDeviceError(
            f"audio device {_describe(exact[0])} has no {kind} channels", LIST_HINT
        )

    needle = name.casefold()
    matches = [d for d in devices if d.channels(kind) > 0 and needle in d.name.casefold()]
    if len(matches) == 1:
        logger.debug("%s device %r -> %s (substring)", kind, spec, _describe(matches[0]))
        return matches[0].index
    if not matches:
        raise AudioDeviceError(f"no audio {kind} device matches '{name}'", LIST_HINT)
    raise AudioDeviceError(
        f"audio {kind} device '{name}' is ambiguous: matches "
        + ", ".join(_describe(d) for d in matches),
        "use a longer name or the index; " + LIST_HINT,
    )
