"""What Home Assistant may ask of the assistant, and which payloads are refused.

Anyone who can publish to the broker can send anything on a command topic, so
every payload is checked here before it reaches the daemon: oversized, not
UTF-8, control characters, empty, too long, or a mute that is not ON/OFF. A
refused payload comes back as a :class:`Malformed` saying why, never as an
exception; :mod:`voiceagent.mqtt.bridge` logs it (limited per topic and kind)
and goes on. Pure: no I/O and no logging, so it can be fuzzed on its own.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Protocol

from voiceagent.mqtt.discovery import MAX_STATE_CHARS, OFF, ON


class Controls(Protocol):
    """What Home Assistant can do to the assistant; called on the event loop thread."""

    def say(self, text: str) -> None:
        """Speak ``text`` as it is."""

    def ask(self, text: str) -> None:
        """Answer ``text`` as if the user had said it, and speak the answer."""

    def stop(self) -> None:
        """Stop the current reply, if any."""

    def set_muted(self, muted: bool) -> None:
        """Stop (True) or resume (False) listening to the microphone."""


@dataclass(frozen=True)
class Malformed:
    """A command payload that is ignored."""

    kind: str
    """What is wrong, one of a few (the log limit counts per topic and kind)."""
    why: str
    """For the log line."""


def parse_command(entity: str, payload: bytes, limit: int) -> str | Malformed:
    """The command's argument (one line of text, or ON/OFF), or why it is malformed.

    ``limit`` is ``mqtt.max_payload_bytes``.
    """
    if len(payload) > limit:
        return Malformed("size", f"{len(payload)} bytes is over mqtt.max_payload_bytes ({limit})")
    if entity == "stop":
        return ""  # any press
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Malformed("utf-8", "the payload is not UTF-8 text")
    # Home Assistant's text entity sends one line; other whitespace (a newline
    # from mosquitto_pub -f) becomes spaces, other control characters are refused.
    text = " ".join(text.split())
    if any(unicodedata.category(c) == "Cc" for c in text):
        return Malformed("control", "the text has control characters")
    if entity == "mute":
        if text.upper() not in (ON, OFF):
            return Malformed("mute", f"expected {ON} or {OFF}, got {text[:40]!r}")
        return text.upper()
    if not text:
        return Malformed("empty", "the text is empty")
    if len(text) > MAX_STATE_CHARS:
        return Malformed("length", f"{len(text)} characters is over the {MAX_STATE_CHARS} allowed")
    return text
