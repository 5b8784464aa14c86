"""audio.devices: device selection against a fake device list, and real PulseAudio devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pulse import PulseSinks, pulse_sinks_or_skip
from voiceagent.audio import devices
from voiceagent.audio.devices import DeviceInfo, format_device_table, resolve_device
from voiceagent.errors import AudioDeviceError

REPO = Path(__file__).resolve().parents[1]


def dev(index: int, name: str, ins: int, outs: int, **kw: object) -> DeviceInfo:
    return DeviceInfo(index, name, "ALSA", ins, outs, 44100.0, **kw)  # type: ignore[arg-type]


FAKE = [
    dev(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 2),
    dev(1, "HDA Intel PCH: HDMI 0 (hw:0,3)", 0, 8),
    dev(2, "USB Headset: Audio (hw:1,0)", 1, 2),
    dev(3, "pulse", 32, 32),
    dev(4, "default", 32, 32, is_default_input=True, is_default_output=True),
    dev(5, "Mic Only", 1, 0),
]


@pytest.fixture
def fake_devices(monkeypatch: pytest.MonkeyPatch) -> list[DeviceInfo]:
    monkeypatch.setattr(devices, "list_devices", lambda: list(FAKE))
    return FAKE


@pytest.mark.parametrize("spec", [None, "", "  "])
def test_none_is_portaudio_default(spec: str | None, fake_devices: list[DeviceInfo]) -> None:
    assert resolve_device(spec, "input") is None
    assert resolve_device(spec, "output") is None


@pytest.mark.parametrize(
    ("spec", "kind", "expected"),
    [
        (3, "input", 3),
        ("3", "output", 3),
        (" 2 ", "input", 2),
        (1, "output", 1),
        (5, "input", 5),
        ("pulse", "input", 3),
        ("default", "output", 4),
        ("usb", "input", 2),  # case-insensitive substring
        ("HDMI", "output", 1),
        ("mic only", "input", 5),
        ("analog", "input", 0),
    ],
)
def test_resolves(
    spec: str | int, kind: str, expected: int, fake_devices: list[DeviceInfo]
) -> None:
    assert resolve_device(spec, kind) == expected  # type: ignore[arg-type]


def test_exact_name_beats_substring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices",
                        lambda: [dev(0, "pulse monitor", 2, 0), dev(1, "pulse", 2, 2)])
    assert resolve_device("pulse", "input") == 1


def test_substring_unique_among_devices_of_that_kind(fake_devices: list[DeviceInfo]) -> None:
    # "hw:" matches devices 0, 1 and 2 but only 0 and 2 are inputs; "hdmi" only outputs.
    with pytest.raises(AudioDeviceError, match="ambiguous"):
        resolve_device("hw:", "input")
    assert resolve_device("hw:0", "input") == 0


@pytest.mark.parametrize(
    ("spec", "kind", "message"),
    [
        (9, "input", "audio input device 9 does not exist"),
        ("42", "output", "audio output device 42 does not exist"),
        (1, "input", "audio device 1 'HDA Intel PCH: HDMI 0 (hw:0,3)' has no input channels"),
        (5, "output", "audio device 5 'Mic Only' has no output channels"),
        ("Mic Only", "output", "audio device 5 'Mic Only' has no output channels"),
        ("hdmi", "input", "no audio input device matches 'hdmi'"),
        ("nonexistent", "output", "no audio output device matches 'nonexistent'"),
        ("hda", "output", "ambiguous: matches 0 'HDA Intel PCH: ALC3246 Analog (hw:0,0)', 1 "),
    ],
)
def test_errors_name_the_device(spec: str | int, kind: str, message: str,
                                fake_devices: list[DeviceInfo]) -> None:
    with pytest.raises(AudioDeviceError) as info:
        resolve_device(spec, kind)  # type: ignore[arg-type]
    err = info.value
    assert message in err.message
    assert "\n" not in str(err)
    assert err.hint is not None and "run 'voiceagent devices' to list them" in err.hint


def test_duplicate_exact_names_are_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "list_devices", lambda: [dev(0, "X", 1, 0), dev(1, "X", 1, 0)])
    with pytest.raises(AudioDeviceError, match="ambiguous"):
        resolve_device("X", "input")


@pytest.mark.parametrize("spec", [True, 1.5, b"pulse"])
def test_invalid_spec_type(spec: object, fake_devices: list[DeviceInfo]) -> None:
    with pytest.raises(AudioDeviceError, match="invalid audio input device"):
        resolve_device(spec, "input")  # type: ignore[arg-type]


def test_invalid_kind(fake_devices: list[DeviceInfo]) -> None:
    with pytest.raises(ValueError):
        resolve_device("pulse", "duplex")  # type: ignore[arg-type]


def test_explicit_device_list_skips_query(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> list[DeviceInfo]:
        raise AssertionError("list_devices must not be called")

    monkeypatch.setattr(devices, "list_devices", boom)
    assert resolve_device("usb", "output", devices=FAKE) == 2
    assert resolve_device(None, "output") is None  # no query for the default either


def test_missing_portaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(AudioDeviceError) as info:
        devices.list_devices()
    assert "PortAudio" in info.value.message
    assert info.value.hint is not None and "libportaudio2" in info.value.hint


def test_package_imports_without_sounddevice() -> None:
    code = ("import sys; sys.modules['sounddevice'] = None\n"
            "import voiceagent.audio.devices\n"
            "assert 'voiceagent.audio.devices' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_format_device_table() -> None:
    table = format_device_table(FAKE)
    lines = table.splitlines()
    assert lines[0].split() == ["index", "in", "out", "rate/Hz", "api", "name"]
    assert len(lines) == len(FAKE) + 2
    default_line = next(line for line in lines if line.rstrip().endswith("default"))
    assert default_line.lstrip().startswith("*")
    assert default_line.split()[1:5] == ["4", "32", "32", "44100"]
    usb_line = next(line for line in lines if "USB Headset" in line)
    assert usb_line.split()[:4] == ["2", "1", "2", "44100"]
    assert "default input" in lines[-1]
    assert format_device_table([]) == "no audio devices found"


def test_format_marks_separate_defaults() -> None:
    table = format_device_table([dev(0, "in", 1, 0, is_default_input=True),
                                 dev(1, "out", 0, 2, is_default_output=True)])
    assert table.splitlines()[1].startswith(">")
    assert table.splitlines()[2].startswith("<")


# -- real devices: PulseAudio null sinks ---------------------------------------------

LIST_IN_CHILD = textwrap.dedent("""
    import dataclasses, json
    from voiceagent.audio.devices import list_devices, resolve_device
    print(json.dumps({
        "devices": [dataclasses.asdict(d) for d in list_devices()],
        "pulse_input": resolve_device("pulse", "input"),
        "pulse_output": resolve_device("pulse", "output"),
    }))
""")


@pytest.fixture
def pulse() -> Iterator[PulseSinks]:
    yield from pulse_sinks_or_skip()


@pytest.mark.device
def test_pulse_devices_listed_in_child(pulse: PulseSinks) -> None:
    # PortAudio enumerates devices once per process, when sounddevice is imported,
    # so the listing must happen in a process started after the daemon.
    result = subprocess.run(
        [sys.executable, "-c", LIST_IN_CHILD],
        cwd=REPO, env=pulse.child_env(), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    found = [DeviceInfo(**d) for d in data["devices"]]
    names = [d.name for d in found]
    assert "pulse" in names, names
    pulse_dev = found[names.index("pulse")]
    assert pulse_dev.max_input_channels > 0 and pulse_dev.max_output_channels > 0
    assert data["pulse_input"] == pulse_dev.index == data["pulse_output"]
    assert "pulse" in format_device_table(found)
    assert pulse.env["PULSE_SOURCE"].endswith(".monitor")
