"""Protocols that serve the process's sessions and shared models to other programs.

- ``web``: the browser page and the OpenAI Realtime API over WebSocket (``web:``);
  ``realtime`` is one connection, ``realtime_events`` the API's messages.
"""
