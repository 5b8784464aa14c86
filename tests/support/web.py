"""``voiceagent serve`` with only its network endpoints (``satellites: []``), as the
web and Wyoming tests use it: real models, a free port on loopback (and a token)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from tests.support.cli import start
from tests.support.config import write_config

TOKEN = "a-token-for-the-web-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(tmp: Path, ready: bytes, **sections: object) -> Iterator[Path]:
    """``voiceagent serve`` on the repository's config changed by ``sections``, with no
    MQTT and no room of its own unless ``sections`` gives ``satellites``, until its stderr says ``ready``; yields the stderr
    log and stops it (SIGTERM, exit 0) afterwards."""
    config = write_config(tmp, **{"mqtt": {"enabled": False}, "satellites": [], "log_level": "info", **sections})
    path = tmp / "stderr.log"
    log = open(path, "w+b")
    proc = start("serve", "-c", str(config), stderr=log, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while ready not in path.read_bytes():
            assert proc.poll() is None, path.read_text()
            assert time.monotonic() < deadline, f"serve never printed {ready!r}"
            time.sleep(0.2)
        yield path
        proc.terminate()
        assert proc.wait(15) == 0, path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def web_serve(tmp: Path, **web: object) -> Iterator[tuple[str, Path]]:
    """Yields the base URL (``http://127.0.0.1:PORT``) and the daemon's stderr log,
    once the endpoint listens."""
    port = free_port()
    with serving(tmp, b"web page at", web={"enabled": True, "port": port, "token": TOKEN, **web}) as log:
        yield f"http://127.0.0.1:{port}", log
