"""A room's transcript, reply and latency, sent to its MQTT device."""

from __future__ import annotations

from voiceagent.events import AnyEvent, IntentHandled, RequestAccepted
from voiceagent.mqtt import MqttBridge
from voiceagent.session.log import TurnSummary


class StatePublisher:
    """Sends the last transcript, reply and voice-to-voice latency to MQTT
    (a ``TurnSummaries`` sink).

    The transcript goes out as soon as the turn is accepted (``RequestAccepted``,
    an event listener), not when its reply has been played: automations that
    react to what was said see it seconds sooner."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge
        self._sent: set[int] = set()

    def on_event(self, event: AnyEvent) -> None:
        match event:
            case RequestAccepted(turn=turn, text=text) if text:
                self._sent.add(turn)
                self.bridge.publish_state("transcript", text)
            case IntentHandled():
                self.bridge.publish_event("intent", event.to_dict())

    def __call__(self, turn: TurnSummary) -> None:
        sent = turn.turn in self._sent
        self._sent.discard(turn.turn)
        if not turn.reason.is_request:
            return
        if turn.transcript and not sent:
            self.bridge.publish_state("transcript", turn.transcript)
        if turn.reply:
            self.bridge.publish_state("reply", turn.reply)
        if turn.latency_ms is not None and turn.source == "voice":  # the sensor is voice-to-voice
            self.bridge.publish_state("latency", str(turn.latency_ms))
