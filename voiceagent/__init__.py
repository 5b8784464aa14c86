"""voiceagent: a local, real-time, full-duplex voice assistant."""

__version__ = "0.1.0"
