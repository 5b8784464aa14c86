"""One conversation with one user or room, on the process's shared models.

- ``build``: ``build_session``, the one wiring of a conversation (used by run,
  talk, demo, serve and bench);
- ``session``: ``Session``, what one room owns and how it runs over a transport;
- ``listener``: between the transport and the conversation (mute, wake word);
- ``controls``: Home Assistant's commands to this room, bounded;
- ``state``: the assistant's state in this room (idle, listening, thinking, speaking);
- ``log``: the room's conversation log (a JSON line per turn);
- ``house``: the room's intents, timers and Home Assistant conversation;
- ``publisher``: the room's transcript, reply and latency to its MQTT device;
- ``display``: the console lines and the JSONL event log.
"""
