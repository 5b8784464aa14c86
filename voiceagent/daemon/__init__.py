"""``voiceagent serve``: the conversation as a long-running Home Assistant daemon.

- ``listener``: what sits between the audio driver and the conversation (the
  mute switch, the wake word detector);
- ``state``: the assistant's state (idle, listening, thinking, speaking) from events;
- ``log``: the conversation log on disk (a JSON line per turn);
- ``serve``: the wiring, signals and shutdown.

MQTT itself is in ``voiceagent.mqtt``; the wake word rules in ``voiceagent.rules.wake_gate``.
"""
