"""The process: the models with one worker each, shared by every session; the
connection to Home Assistant; signals, the watchdog, memory trimming and the
shutdown; the sessions' lifetimes in one TaskGroup.

- ``host``: ``Host`` and ``share`` (the models lent to sessions);
- ``serve``: ``voiceagent serve``, every room of the house in one process;
- ``run``: one session over one transport (``run``, ``talk``, ``demo``, ``bench``);
- ``memory``: giving freed memory back to the system while idle.
"""
