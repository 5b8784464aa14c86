"""One OpenAI Realtime API connection: a session of its own on the shared models.

The client's events go to the session (its audio to the ``NetworkTransport``,
typed text to ``Conversation.ask``, ``response.cancel`` to ``stop``, the
played position to ``truncate``); the session's events come back as the API's:

- ``speech_start``/``speech_end`` -> ``input_audio_buffer.speech_started``/``stopped``;
- ``asr_partial`` -> ``conversation.item.input_audio_transcription.delta``;
- ``request`` (the turn is answered) -> ``input_audio_buffer.committed``, the user's
  ``conversation.item.created``, ``...input_audio_transcription.completed``, and
  ``response.created``;
- the reply's audio as it is played (the transport's output, with the speaker's
  start and end of each turn) -> ``response.output_audio.delta`` and, for the
  words played so far, ``response.output_audio_transcript.delta``; its end ->
  ``response.done``, ``cancelled`` when it was cut (speech over it, a stop).

Turn detection is voiceagent's own, whatever the client asks. Every reply is
sent at playback pace (the transport's clock), so a response is in progress
while it is heard, and speech over it ends it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from voiceagent.audio.convert import StreamResampler
from voiceagent.audio.speaker import NoticeKind, PlaybackNotice
from voiceagent.events import (
    AnyEvent, AsrPartial, Reason, RequestAccepted, SpeechEnd, SpeechStart, TextRequest, TurnEnd,
)
from voiceagent.log_limit import LogLimiter
from voiceagent.servers import realtime_events as rt
from voiceagent.session.session import Session
from voiceagent.transports.web import NetworkTransport

logger = logging.getLogger(__name__)

MAX_TYPED = 8
"""Typed items kept waiting for a ``response.create`` (the latest)."""
MAX_QUEUED = 2000
"""Messages waiting to be sent (a few seconds of reply audio): beyond this the client
has stopped reading, and the connection is closed."""


class Socket(Protocol):
    async def send(self, message: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def __aiter__(self) -> Any: ...


@dataclass
class _Response:
    turn: int
    id: str
    item_id: str
    started: bool = False
    """Its first audio was played."""
    sent: int = 0
    """Samples of its audio sent (at the session's rate)."""
    words: int = 0
    """Words of its transcript sent."""
    cancel_requested: bool = False


class RealtimeConnection:
    def __init__(self, ws: Socket, name: str, model: str, rate: int, voice: str, max_message_bytes: int) -> None:
        self.ws = ws
        self.name = name
        self.model = model
        self.rate = rate
        """The session's own sample rate (the pipeline's)."""
        self.voice = voice
        self.max_message_bytes = max_message_bytes
        self.ids = rt.Ids(name.replace("-", "") + "_")
        self.settings = rt.SessionSettings()
        self.session: Session | None = None
        self.transport: NetworkTransport | None = None
        self._out: asyncio.Queue[str | None] = asyncio.Queue()
        self._responses: dict[int, _Response] = {}
        self._playing: _Response | None = None
        self._partials: dict[int, str] = {}
        """The partial transcript sent so far, per turn (deltas only extend it)."""
        self._typed: deque[str] = deque(maxlen=MAX_TYPED)
        """Text items added (``conversation.item.create``), answered at ``response.create``."""
        self._limited = LogLimiter(logger)
        self._in = StreamResampler(self.settings.input_rate, rate)
        self._out_rs = StreamResampler(rate, self.settings.output_rate)
        self.closed = asyncio.Event()

    def attach(self, session: Session, transport: NetworkTransport) -> None:
        self.session = session
        self.transport = transport
        session.bus.subscribe(self.on_event)

    # ------------------------------------------------------------ sending

    def emit(self, kind: str, **fields: Any) -> None:
        """Queue a server event (sent in order by ``_writer``)."""
        if self.closed.is_set():
            return
        if self._out.qsize() >= MAX_QUEUED:
            logger.warning("%s: the client is not reading; closing the connection", self.name)
            self.closed.set()
            self._out.put_nowait(None)
            return
        self._put(kind, **fields)

    def _put(self, kind: str, **fields: Any) -> None:
        self._out.put_nowait(json.dumps({"type": kind, "event_id": self.ids.event(), **fields}))

    async def _writer(self) -> None:
        while True:
            message = await self._out.get()
            if message is None:
                return
            await self.ws.send(message)

    # ------------------------------------------------------------ the connection

    async def serve(self, stop: asyncio.Event) -> None:
        """Until the client goes, or ``stop``: read its events; the session runs beside."""
        assert self.session is not None and self.transport is not None
        self.emit("session.created", session=self._session_dict())
        writer = asyncio.ensure_future(self._writer())
        audio = asyncio.ensure_future(self.session.run(self.transport, stop))
        reader = asyncio.ensure_future(self._read())
        closed = asyncio.ensure_future(self.closed.wait())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([reader, audio, writer, closed, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, writer):  # the client went: that is how connections end
                if task.done() and not task.cancelled() and task.exception() is not None:
                    err = task.exception()
                    logger.info("%s: connection ended (%s: %s)", self.name, type(err).__name__, err)
            if audio.done() and not audio.cancelled() and audio.exception() is not None:
                logger.error("%s: the session failed; closing its connection", self.name,
                             exc_info=audio.exception())
        finally:
            self.closed.set()
            self.transport.close()  # the session's clock stops at its next block
            for task in (reader, closed, stopped):
                task.cancel()
            await asyncio.gather(audio, return_exceptions=True)
            await self.session.aclose()
            if not writer.done():  # the client is still there: its replies end, then the socket
                for resp in list(self._responses.values()):  # past emit's closed check, on purpose
                    self._put("response.done", response=rt.response(resp.id, "cancelled", [], "shutdown"))
            self._out.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 1.0)
                if stop.is_set():
                    await self.ws.close(1001, "voiceagent is stopping")
            except (TimeoutError, Exception):  # a client gone mid-send: nothing more to tell it
                writer.cancel()

    async def _read(self) -> None:
        async for message in self.ws:
            try:
                self.handle(message)
            except rt.ClientError as err:
                # the client decides how often: one line per kind a minute, the rest counted
                self._limited.log(logging.INFO, err.code, "%s: %s", self.name, err.message)
                self.emit("error", **_strip_type(rt.error_event(err)))

    def handle(self, message: str | bytes) -> None:
        event = rt.parse(message, self.max_message_bytes)
        kind = event["type"]
        assert self.session is not None and self.transport is not None
        if kind == "input_audio_buffer.append":
            samples = rt.decode_pcm16(event)
            samples = self._in(samples)
            if not self.transport.feed(samples):
                raise rt.ClientError("input buffer full: audio is sent faster than real time",
                                     "input_buffer_full", "audio", event.get("event_id"))
        elif kind == "session.update":
            before = self.settings
            self.settings = self.settings.update(event)
            if self.settings.input_rate != before.input_rate:
                self._in = StreamResampler(self.settings.input_rate, self.rate)
            if self.settings.output_rate != before.output_rate:
                self._out_rs = StreamResampler(self.rate, self.settings.output_rate)
            self.emit("session.updated", session=self._session_dict())
        elif kind == "input_audio_buffer.commit":
            self.transport.input_done()  # the end of speech is heard now, not after a wait
        elif kind == "input_audio_buffer.clear":
            self.transport.clear()
            self.emit("input_audio_buffer.cleared")
        elif kind == "conversation.item.create":
            text = rt.user_text(event)
            item_id = self.ids.text_item()
            item = rt.user_item(item_id, None)
            item["content"] = [{"type": "input_text", "text": text}]
            self.emit("conversation.item.created", previous_item_id=None, item=item)
            self._typed.append(text)
        elif kind == "response.create":
            if self._typed:
                text = " ".join(self._typed)
                self._typed.clear()
                self.session.conv.ask(text)
            else:  # speech is answered by itself; nothing typed waits
                logger.debug("%s: response.create with nothing typed to answer", self.name)
        elif kind == "response.cancel":
            if self._playing is not None:
                self._playing.cancel_requested = True
            for resp in self._responses.values():
                resp.cancel_requested = True
            self.session.conv.stop()
        elif kind == "conversation.item.truncate":
            self._truncate(event)
        elif kind == "output_audio_buffer.clear":
            self.session.conv.stop()
        else:
            raise rt.ClientError(f"{rt.shown(kind)} is not supported by voiceagent", "unsupported_event", "type",
                                 event.get("event_id"))

    def _truncate(self, event: dict[str, Any]) -> None:
        assert self.session is not None
        item_id = rt.field(event, "item_id", str)
        ms = rt.field(event, "audio_end_ms", int)
        content_index = rt.field(event, "content_index", int, 0)
        turn = _turn_of(item_id, self.ids)
        if turn is None or ms < 0:
            raise rt.ClientError(f"no assistant audio item {rt.shown(item_id)}", "item_not_found", "item_id",
                                 event.get("event_id"))
        self.session.conv.truncate(turn, ms * self.rate // 1000)
        self.emit("conversation.item.truncated", item_id=item_id, content_index=content_index, audio_end_ms=ms)

    def _session_dict(self) -> dict[str, Any]:
        return self.settings.to_dict(f"sess_{self.ids.prefix.rstrip('_')}", self.model, self.voice)

    # ------------------------------------------------------------ the session's events

    def on_event(self, event: AnyEvent) -> None:
        match event:
            case SpeechStart(t=t, turn=turn):
                self.emit("input_audio_buffer.speech_started", audio_start_ms=int(t * 1000),
                          item_id=self.ids.user_item(turn))
            case SpeechEnd(t=t, turn=turn):
                self.emit("input_audio_buffer.speech_stopped", audio_end_ms=int(t * 1000),
                          item_id=self.ids.user_item(turn))
            case AsrPartial(turn=turn, text=text) if self.settings.transcribe:
                before = self._partials.get(turn, "")
                if text.startswith(before) and len(text) > len(before):
                    self.emit("conversation.item.input_audio_transcription.delta",
                              item_id=self.ids.user_item(turn), content_index=0, delta=text[len(before):])
                    self._partials[turn] = text
            case RequestAccepted(turn=turn, text=text):
                item_id = self.ids.user_item(turn)
                self.emit("input_audio_buffer.committed", previous_item_id=None, item_id=item_id)
                self.emit("conversation.item.created", previous_item_id=None, item=rt.user_item(item_id, text))
                if self.settings.transcribe:
                    self.emit("conversation.item.input_audio_transcription.completed", item_id=item_id,
                              content_index=0, transcript=text,
                              usage={"type": "duration", "seconds": 0})
                self._partials.pop(turn, None)
                self._create(turn)
            case TextRequest(turn=turn):
                self._create(turn)
            case TurnEnd(turn=turn, reason=reason):
                resp = self._responses.get(turn)
                if resp is not None and not resp.started:  # it ended without a sound
                    status = "cancelled" if reason.cut_off or reason is Reason.CONTINUED else (
                        "failed" if reason is Reason.ERROR else "completed")
                    self._done(resp, status, "", "turn_detected")
            case _:
                pass

    def _create(self, turn: int) -> _Response:
        resp = self._responses.get(turn)
        if resp is None:
            resp = _Response(turn, self.ids.response(turn), self.ids.assistant_item(turn))
            self._responses[turn] = resp
            self.emit("response.created", response=rt.response(resp.id, "in_progress", []))
        return resp

    # ------------------------------------------------------------ the reply's audio

    def on_output(self, block: np.ndarray, notices: list[PlaybackNotice]) -> None:
        """One output block as it plays (``NetworkTransport``'s clock): the turns'
        audio in it goes to the client, with their start and end."""
        assert self.session is not None
        speaker = self.session.speaker
        starts = {n.turn: n.offset for n in notices if n.kind is NoticeKind.START}
        for notice in notices:
            if notice.kind is NoticeKind.START:
                resp = self._create(notice.turn)
                if not resp.started:
                    resp.started = True
                    self._start(resp)
                self._playing = resp
            elif notice.kind is NoticeKind.END:
                resp = self._responses.get(notice.turn)
                if resp is None or not resp.started:
                    continue
                self._audio(resp, block, notice.played_samples, starts.get(resp.turn, 0))
                self._words(resp, notice.heard)
                status = "cancelled" if notice.flushed else "completed"
                reason = "client_cancelled" if resp.cancel_requested else "turn_detected"
                self._done(resp, status, notice.heard, reason)
                if self._playing is resp:
                    self._playing = None
        resp = self._playing
        if resp is not None:
            self._audio(resp, block, speaker.played_samples(resp.turn), starts.get(resp.turn, 0))
            self._words(resp, speaker.heard_text(resp.turn))

    def _start(self, resp: _Response) -> None:
        item = rt.assistant_item(resp.item_id, None, "in_progress")
        self.emit("response.output_item.added", response_id=resp.id, output_index=0, item=item)
        self.emit("conversation.item.created", previous_item_id=None, item=item)
        self.emit("response.content_part.added", response_id=resp.id, item_id=resp.item_id, output_index=0,
                  content_index=0, part={"type": "audio", "transcript": ""})

    def _audio(self, resp: _Response, block: np.ndarray, played: int, start: int) -> None:
        """Send the samples of ``resp``'s turn that this block played (the speaker's
        count: a held reply's silence is not sent, so the client's position in the
        item is the reply's own)."""
        new = played - resp.sent
        if new <= 0:
            return
        chunk = block[start : start + new]
        resp.sent += new
        chunk = self._out_rs(chunk)
        if chunk.size:
            self.emit("response.output_audio.delta", response_id=resp.id, item_id=resp.item_id, output_index=0,
                      content_index=0, delta=rt.encode_pcm16(chunk))

    def _words(self, resp: _Response, heard: str) -> None:
        words = heard.split()
        if len(words) > resp.words:
            delta = " ".join(words[resp.words:])
            self.emit("response.output_audio_transcript.delta", response_id=resp.id, item_id=resp.item_id,
                      output_index=0, content_index=0, delta=(" " if resp.words else "") + delta)
            resp.words = len(words)

    def _done(self, resp: _Response, status: str, heard: str, reason: str) -> None:
        self._responses.pop(resp.turn, None)
        output: list[dict[str, Any]] = []
        if resp.started:
            # the resampler's tail, then a fresh one for the next reply
            tail = self._out_rs(np.zeros(0, np.float32), last=True)
            if tail.size and status == "completed":  # a cut reply's last few ms were never heard
                self.emit("response.output_audio.delta", response_id=resp.id, item_id=resp.item_id,
                          output_index=0, content_index=0, delta=rt.encode_pcm16(tail))
            self._out_rs = StreamResampler(self.rate, self.settings.output_rate)
            item_status = "completed" if status == "completed" else "incomplete"
            item = rt.assistant_item(resp.item_id, heard, item_status)
            where = dict(response_id=resp.id, item_id=resp.item_id, output_index=0, content_index=0)
            self.emit("response.output_audio.done", **where)
            self.emit("response.output_audio_transcript.done", transcript=heard, **where)
            self.emit("response.content_part.done", part={"type": "audio", "transcript": heard}, **where)
            self.emit("response.output_item.done", response_id=resp.id, output_index=0, item=item)
            output.append(item)
        self.emit("response.done", response=rt.response(resp.id, status, output,
                                                        reason if status == "cancelled" else None))


def _turn_of(item_id: str, ids: rt.Ids) -> int | None:
    prefix = f"item_{ids.prefix}a"
    if item_id.startswith(prefix) and item_id[len(prefix):].isdigit():
        return int(item_id[len(prefix):])
    return None


def _strip_type(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "type"}
