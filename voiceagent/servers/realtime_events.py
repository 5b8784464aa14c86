"""The OpenAI Realtime API's messages, as far as a voice assistant needs them: pure
parsing and building, no I/O (``servers.realtime`` uses them on a connection).

Client events are checked here, and anything wrong (too large, not JSON, not an
object, an unknown type, bad base64, audio that is not whole 16-bit samples, a
format we do not take) is a ``ClientError``: the connection answers it with an
``error`` event and goes on. Server events use the GA names
(``response.output_audio.delta``); the ``session`` object is the GA shape, and
the beta ``session.update`` keys (``input_audio_format``,
``input_audio_transcription``) are understood too.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

RATES = (16000, 24000)
"""PCM16 rates taken and sent: the API's default (24 kHz) and the pipeline's own."""

CLIENT_EVENTS = frozenset({
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "conversation.item.create", "conversation.item.truncate", "conversation.item.delete",
    "conversation.item.retrieve", "response.create", "response.cancel", "output_audio_buffer.clear",
})
"""Every client event the API has that this server answers (some with an error that says why not)."""


class ClientError(Exception):
    """Something the client sent cannot be used: one ``error`` event, then the session goes on."""

    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None,
                 event_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.event_id = event_id


def shown(value: Any) -> str:
    """A client's value in an error message: short, one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse(raw: str | bytes, max_bytes: int) -> dict[str, Any]:
    """A client message as an event (a dict with a known ``type``)."""
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise ClientError(f"message of {size} bytes is over the limit of {max_bytes}", "message_too_large")
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ClientError(f"not JSON: {err}", "invalid_json") from None
    if not isinstance(event, dict):
        raise ClientError("an event must be a JSON object", "invalid_event")
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    kind = event.get("type")
    if not isinstance(kind, str):
        raise ClientError("the event has no type", "invalid_event", "type", event_id)
    if kind not in CLIENT_EVENTS:
        raise ClientError(f"unknown event type {shown(kind)}", "unknown_event", "type", event_id)
    return event


def field(event: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """``event[name]``, checked to be of ``kind``."""
    value = event.get(name, default)
    if value is ...:
        raise ClientError(f"{event['type']}: {name} is missing", "missing_field", name, event.get("event_id"))
    if value is not default and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise ClientError(f"{event['type']}: {name} has the wrong type", "invalid_value", name, event.get("event_id"))
    return value


def decode_pcm16(event: dict[str, Any]) -> np.ndarray:
    """``input_audio_buffer.append``'s audio as float32 samples."""
    audio = field(event, "audio", str)
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError("audio is not valid base64", "invalid_audio", "audio", event.get("event_id")) from None
    if len(data) % 2:
        raise ClientError(
            f"audio is {len(data)} bytes: PCM16 comes in whole 2-byte samples", "invalid_audio_format",
            "audio", event.get("event_id"),
        )
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def encode_pcm16(samples: np.ndarray) -> str:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    return base64.b64encode(pcm.tobytes()).decode("ascii")


@dataclass(frozen=True)
class SessionSettings:
    """What the client chose with ``session.update`` (the rest is voiceagent's own:
    turn detection, the voice, the model)."""

    input_rate: int = 24000
    output_rate: int = 24000
    transcribe: bool = False
    """Send the user's transcripts (the client asked for input transcription)."""
    transcription_model: str | None = None
    instructions: str | None = None
    """Kept and echoed; the assistant's own system prompt is the config's."""

    def update(self, event: dict[str, Any]) -> "SessionSettings":
        session = field(event, "session", dict)
        eid = event.get("event_id")
        changes: dict[str, Any] = {}
        audio = session.get("audio")
        if audio is not None and not isinstance(audio, dict):
            raise ClientError("session.audio must be an object", "invalid_value", "session.audio", eid)
        audio = audio or {}
        for side, key in (("input", "input_rate"), ("output", "output_rate")):
            part = audio.get(side)
            if isinstance(part, dict) and "format" in part:
                changes[key] = _rate(part["format"], f"session.audio.{side}.format", eid)
            if isinstance(part, dict) and side == "input" and "transcription" in part:
                changes.update(_transcription(part["transcription"], eid))
        for key, name in (("input_audio_format", "input_rate"), ("output_audio_format", "output_rate")):
            if key in session:  # the beta API's form: "pcm16" is 24 kHz
                if session[key] != "pcm16":
                    raise ClientError(f"session.{key} {shown(session[key])}: only pcm16 is taken",
                                      "unsupported_audio_format", f"session.{key}", eid)
                changes[name] = 24000
        if "input_audio_transcription" in session:
            changes.update(_transcription(session["input_audio_transcription"], eid))
        if isinstance(session.get("instructions"), str):
            changes["instructions"] = session["instructions"]
        return replace(self, **changes)

    def to_dict(self, session_id: str, model: str, voice: str) -> dict[str, Any]:
        """The GA ``session`` object of ``session.created``/``updated``."""
        transcription = {"model": self.transcription_model or "voiceagent"} if self.transcribe else None
        return {
            "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
            "output_modalities": ["audio"], "instructions": self.instructions or "",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.input_rate},
                    "transcription": transcription, "noise_reduction": None,
                    # voiceagent's own: pauses, continuations and barge-in (docs/echo-and-barge-in.md)
                    "turn_detection": {"type": "server_vad", "create_response": True, "interrupt_response": True},
                },
                "output": {"format": {"type": "audio/pcm", "rate": self.output_rate}, "voice": voice, "speed": 1.0},
            },
            "tools": [], "tool_choice": "auto", "max_output_tokens": "inf",
        }


def _rate(fmt: Any, param: str, eid: str | None) -> int:
    if isinstance(fmt, str):  # the beta form
        fmt = {"type": "audio/pcm"} if fmt == "pcm16" else {"type": fmt}
    if not isinstance(fmt, dict) or fmt.get("type") != "audio/pcm":
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise ClientError(f"audio format {shown(kind)}: only audio/pcm (PCM16) is taken",
                          "unsupported_audio_format", param, eid)
    rate = fmt.get("rate", 24000)
    if rate not in RATES:
        raise ClientError(f"audio rate {shown(rate)}: 16000 or 24000 are taken", "unsupported_audio_format", param, eid)
    return int(rate)


def _transcription(value: Any, eid: str | None) -> dict[str, Any]:
    if value is None:
        return {"transcribe": False, "transcription_model": None}
    if not isinstance(value, dict):
        raise ClientError("transcription must be an object or null", "invalid_value", "transcription", eid)
    model = value.get("model")
    return {"transcribe": True, "transcription_model": model if isinstance(model, str) else None}


def user_text(event: dict[str, Any]) -> str:
    """The text of ``conversation.item.create`` (a user message of input_text parts)."""
    item = field(event, "item", dict)
    eid = event.get("event_id")
    if item.get("type", "message") != "message" or item.get("role") != "user":
        raise ClientError("only user messages can be added (type message, role user)",
                          "unsupported_item", "item", eid)
    content = item.get("content")
    if not isinstance(content, list):
        raise ClientError("item.content must be a list", "invalid_value", "item.content", eid)
    texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "input_text"]
    text = " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
    if not text:
        raise ClientError("the item has no input_text to answer (typed text only; speak for audio)",
                          "unsupported_item", "item.content", eid)
    return text[:2000]


class Ids:
    """Ids for events, items and responses, unique on one connection."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._n = itertools.count(1)

    def event(self) -> str:
        return f"event_{self.prefix}{next(self._n)}"

    def user_item(self, turn: int) -> str:
        return f"item_{self.prefix}u{turn}"

    def assistant_item(self, turn: int) -> str:
        return f"item_{self.prefix}a{turn}"

    def response(self, turn: int) -> str:
        return f"resp_{self.prefix}{turn}"

    def text_item(self) -> str:
        return f"item_{self.prefix}t{next(self._n)}"


def error_event(err: ClientError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": "invalid_request_error", "code": err.code, "message": err.message,
                  "param": err.param, "event_id": err.event_id},
    }


def user_item(item_id: str, transcript: str | None, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": status,
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant_item(item_id: str, transcript: str | None, status: str) -> dict[str, Any]:
    return {
        "id": item_id, "object": "realtime.item", "type": "message", "role": "assistant", "status": status,
        "content": [{"type": "output_audio", "transcript": transcript}],
    }


def response(response_id: str, status: str, output: list[dict[str, Any]], reason: str | None = None,
             ) -> dict[str, Any]:
    """The ``response`` object; ``reason`` for a cancelled one: ``turn_detected``
    (the user talked over it) or ``client_cancelled`` (``response.cancel``)."""
    details = {"type": status, "reason": reason} if status in ("cancelled", "incomplete") else None
    return {
        "id": response_id, "object": "realtime.response", "status": status, "status_details": details,
        "output": output, "output_modalities": ["audio"], "conversation_id": None, "usage": None,
        "metadata": None,
    }
