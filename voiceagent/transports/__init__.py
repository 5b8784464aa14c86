"""How one session's audio comes and goes, at its own clock (see ``base``).

- ``paced``: files and pipes (``FileTransport``);
- ``device``: sound devices (``DeviceTransport``), retried while one is gone;
- ``web``: a network client's messages made into a clock (``NetworkTransport``);
- ``wyoming``: a Wyoming satellite's microphone and speaker (``WyomingSatelliteTransport``).
"""

from __future__ import annotations

from voiceagent.audio.streams import open_input, open_output
from voiceagent.config import Config, SatelliteConfig
from voiceagent.transports.base import BlockHandler, Transport, block_samples, make_echo_canceller
from voiceagent.transports.paced import FileTransport

__all__ = ["BlockHandler", "Transport", "block_samples", "make_echo_canceller", "open_transport"]


def open_transport(
    cfg: Config, room: SatelliteConfig, *, endless: bool, input: str | None = None, output: str | None = None,
) -> Transport:
    """The room's audio: its ``input``/``output`` files or pipes (``input`` and
    ``output`` here override them: the command line's), else its sound devices.
    Opened now, so a bad file or a missing device fails before the models load."""
    if room.wyoming is not None and input is None:
        from voiceagent.transports.wyoming import WyomingSatelliteTransport

        return WyomingSatelliteTransport(cfg.for_room(room), room.wyoming)
    source_name = input if input is not None else room.input
    sink_name = output if output is not None else room.output
    rcfg = cfg.for_room(room)
    if source_name is not None and sink_name is not None:
        rate, pcm = rcfg.audio.sample_rate, rcfg.audio.pcm
        source = open_input(source_name, rate, pcm)
        try:
            sink = open_output(sink_name, rate, pcm)
        except BaseException:
            source.close()
            raise
        return FileTransport(rcfg, source, sink, endless=endless, description=f"{source_name} -> {sink_name}")
    from voiceagent.transports.device import DeviceTransport

    return DeviceTransport(rcfg, rcfg.audio.input_device, rcfg.audio.output_device)
