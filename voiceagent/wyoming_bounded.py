"""Wyoming events read within bounds, from a client, a satellite or a remote stage.

A Wyoming event is a JSON header line, then ``data_length`` bytes of more JSON
and ``payload_length`` bytes of payload. The ``wyoming`` library's readers take
whatever lengths the other side names, and allocate them: one broken or hostile
peer could make the process that serves the whole house reserve gigabytes. Here
the header line, its data and its payload each have a limit, and what breaks
one is ``BadInput`` (one log line, that peer dropped), never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from typing import BinaryIO

from wyoming.event import Event

HEADER_LIMIT = 64 * 1024
"""Bytes of a header line at most (asyncio's line limit for our readers)."""
MAX_DATA = 1 << 20
"""Bytes of an event's additional JSON at most (wyoming-piper's info is ~100 kB)."""
MAX_PAYLOAD = 1 << 20
"""Bytes of one event's payload at most (an audio chunk is a few kB)."""


class BadInput(ValueError):
    """What the peer sent is no Wyoming event we can read: it is disconnected."""


def parse_header(line: bytes) -> tuple[str, dict, int, int]:
    """The type, inline data, data length and payload length of a header line."""
    try:
        header = json.loads(line)
    except ValueError:
        raise BadInput("a header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadInput("a header with no type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise BadInput("data that is not an object")
    sizes = []
    for key, limit in (("data_length", MAX_DATA), ("payload_length", MAX_PAYLOAD)):
        size = header.get(key) or 0
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limit:
            raise BadInput(f"{key} {str(size)[:20]} (at most {limit})")
        sizes.append(size)
    return header["type"][:100], data, sizes[0], sizes[1]


def _merge(data: dict, extra: bytes) -> dict:
    try:
        more = json.loads(extra)
    except ValueError:
        raise BadInput("additional data that is not JSON") from None
    if not isinstance(more, dict):
        raise BadInput("additional data that is not an object")
    data.update(more)
    return data


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event from an asyncio stream (opened with ``limit=HEADER_LIMIT``);
    None at the end. A stream ending mid-event raises IncompleteReadError."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError):
        raise BadInput(f"a header line over {HEADER_LIMIT} bytes") from None
    if not line:
        return None
    kind, data, data_length, payload_length = parse_header(line)
    if data_length:
        data = _merge(data, await reader.readexactly(data_length))
    payload = await reader.readexactly(payload_length) if payload_length else None
    return Event(type=kind, data=data, payload=payload)


def read_event_sync(reader: BinaryIO) -> Event | None:
    """The next event from a blocking binary stream (a socket's file); None at
    the end. A stream ending mid-event raises EOFError."""
    line = reader.readline(HEADER_LIMIT + 1)
    if not line:
        return None
    if len(line) > HEADER_LIMIT:
        raise BadInput(f"a header line over {HEADER_LIMIT} bytes")
    kind, data, data_length, payload_length = parse_header(line)
    if data_length:
        data = _merge(data, _exactly(reader, data_length))
    payload = _exactly(reader, payload_length) if payload_length else None
    return Event(type=kind, data=data, payload=payload)


def _exactly(reader: BinaryIO, n: int) -> bytes:
    data = reader.read(n)
    if data is None or len(data) < n:
        raise EOFError("the peer closed the connection mid-event")
    return data
