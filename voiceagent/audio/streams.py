"""Input and output streams for ``voiceagent run``: WAV files and raw PCM pipes.

Inputs deliver mono float32 blocks at the pipeline rate whatever the file's own
rate and channel count; outputs take mono float32 blocks at the pipeline rate.
``-`` means stdin/stdout with the raw PCM format from the config's ``audio.pcm``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from voiceagent.audio.convert import (
    StreamResampler,
    pcm_bytes_per_frame,
    pcm_decode,
    pcm_encode,
    resample,
    to_mono,
)
from voiceagent.config import PcmFormat
from voiceagent.errors import AudioInputError, AudioOutputError

logger = logging.getLogger(__name__)


class BlockInput(Protocol):
    async def read(self, n: int) -> np.ndarray | None:
        """The next ``n`` samples (zero-padded at the end), or None after the end."""
        ...

    def close(self) -> None: ...


class BlockOutput(Protocol):
    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


MIN_FILE_RATE = 1000
MAX_FILE_RATE = 768_000
"""The sample rates (hertz) read from a file's header. Outside them the header
lies or the file is no recording, and resampling from 1 Hz would turn a few
bytes into hours of audio."""

_INPUT_HINT = "give a WAV file (any rate, channels and sample format) or '-' for raw PCM"


def read_wav(path: Path, rate: int) -> np.ndarray:
    """A whole audio file as mono float32 at ``rate`` hertz, within full scale."""
    import soundfile

    if not path.exists():
        raise AudioInputError(f"input file not found: {path}")
    if path.is_dir():
        raise AudioInputError(f"input {path} is a directory", _INPUT_HINT)
    try:
        audio, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        reason = " ".join(str(err).split())  # libsndfile's messages can span lines
        raise AudioInputError(f"cannot read {path} as audio: {reason}", _INPUT_HINT) from None
    file_rate = int(file_rate)
    if not MIN_FILE_RATE <= file_rate <= MAX_FILE_RATE:
        raise AudioInputError(
            f"input file {path} says its sample rate is {file_rate} Hz",
            f"only {MIN_FILE_RATE} to {MAX_FILE_RATE} Hz is audio; the header is damaged",
        )
    if audio.shape[0] == 0:
        raise AudioInputError(f"input file {path} contains no audio")
    check_finite(audio, file_rate, str(path))
    audio = to_mono(clip_full_scale(audio, str(path)))  # clipped first: a mean of huge floats overflows
    out = np.clip(resample(audio, file_rate, rate), -1.0, 1.0)  # resampling overshoots a little
    if out.size == 0:
        raise AudioInputError(
            f"input file {path} is too short: {audio.size} frame(s) at {file_rate} Hz"
        )
    return out


def clip_full_scale(audio: np.ndarray, where: str, warn: bool = True) -> np.ndarray:
    """``audio`` clipped to [-1, 1] (a new array), or ``audio`` itself if it is within.

    Integer formats cannot go beyond full scale, float ones can (a float WAV, f32le
    on stdin): their peaks are cut here, as a sound card would, instead of
    overflowing the resampler or a model's features downstream."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak <= 1.0:
        return audio
    if warn:
        logger.warning("%s: samples beyond full scale (peak %.3g), clipped to -1..1", where, peak)
    return np.clip(audio, -1.0, 1.0)


def check_finite(audio: np.ndarray, rate: int, where: str, offset_s: float = 0.0) -> None:
    """Raise ``AudioInputError`` if any sample is NaN or infinite: such input is
    corrupt (or decoded with the wrong format), and would turn every level,
    VAD decision and model input downstream into garbage."""
    bad = ~np.isfinite(audio)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
        raise AudioInputError(
            f"{where}: {int(bad.sum())} samples are NaN or infinite, the first at "
            f"{offset_s + first / rate:.2f} s",
            "the audio is corrupt, or its sample format is not what it says",
        )


class WavInput:
    def __init__(self, path: Path, rate: int) -> None:
        self.audio = read_wav(path, rate)
        self._pos = 0

    async def read(self, n: int) -> np.ndarray | None:
        if self._pos >= self.audio.size:
            return None
        block = self.audio[self._pos : self._pos + n]
        self._pos += n
        if block.size < n:
            block = np.concatenate([block, np.zeros(n - block.size, np.float32)])
        return block

    def close(self) -> None:
        pass


class ArrayInput(WavInput):
    """Audio already in memory (the demo's synthesized user side)."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio.astype(np.float32)
        self._pos = 0


class EndlessInput:
    """Silence after the input ends: a daemon fed a file or a pipe keeps running
    (and answering typed requests) until it is stopped."""

    def __init__(self, source: BlockInput) -> None:
        self.source = source
        self.ended = False

    async def read(self, n: int) -> np.ndarray | None:
        if not self.ended:
            try:
                block = await self.source.read(n)
            except AudioInputError as err:  # the daemon goes on; what it heard is kept
                logger.error("input failed, listening to silence until stopped: %s", err)
                block = None
            if block is not None:
                return block
            self.ended = True
            logger.info("input ended; listening to silence until stopped")
        return np.zeros(n, np.float32)

    def close(self) -> None:
        self.source.close()


class SilenceInput:
    """Endless silence (a daemon whose microphone is gone)."""

    async def read(self, n: int) -> np.ndarray | None:
        return np.zeros(n, np.float32)

    def close(self) -> None:
        pass


class _DaemonReader:
    """Reads a blocking stream on a daemon thread, one chunk per request.

    ``asyncio.to_thread`` would use the default executor, whose threads the
    interpreter joins at exit: a pipe whose writer stays open but sends nothing
    would then keep a stopped daemon alive. One chunk per request keeps the
    backpressure: nothing is read ahead of real time.
    """

    def __init__(self, stream: BinaryIO, chunk_bytes: int) -> None:
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._requests: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[bytes]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    async def read(self) -> bytes:
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="va-pcm-in", daemon=True)
            self._thread.start()
        future: asyncio.Future[bytes] = loop.create_future()
        self._requests.put((loop, future))
        return await future

    def _pump(self) -> None:
        while True:
            loop, future = self._requests.get()
            try:
                result: bytes | BaseException = self._stream.read(self._chunk_bytes)
            except (OSError, ValueError) as err:  # handed to the reader, who reports it
                result = err
            try:
                loop.call_soon_threadsafe(_settle, future, result)
            except RuntimeError:
                return  # the loop is closed: the program is ending
            if result == b"" or isinstance(result, BaseException):
                return


def _settle(future: asyncio.Future[bytes], result: bytes | BaseException) -> None:
    if future.cancelled():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class PcmInput:
    """Raw PCM from a binary stream (stdin), read on a thread, resampled on the fly."""

    def __init__(self, stream: BinaryIO, fmt: PcmFormat, rate: int) -> None:
        self._stream = stream
        self._fmt = fmt
        self._frame_bytes = pcm_bytes_per_frame(fmt)
        self._resampler = StreamResampler(fmt.sample_rate, rate)
        self._buf = np.zeros(0, np.float32)
        self._eof = False
        self._chunk_bytes = self._frame_bytes * max(fmt.sample_rate // 100, 1)  # 10 ms
        self._reader = _DaemonReader(stream, self._chunk_bytes)
        self._remainder = b""
        self._frames_read = 0
        self._clipped = False

    async def read(self, n: int) -> np.ndarray | None:
        while self._buf.size < n and not self._eof:
            data = await self._reader.read()
            if not data:
                self._eof = True
                tail = np.clip(self._resampler(np.zeros(0, np.float32), last=True), -1.0, 1.0)
                self._buf = np.concatenate([self._buf, tail])
                break
            data = self._remainder + data
            usable = len(data) - len(data) % self._frame_bytes
            self._remainder = data[usable:]
            with np.errstate(over="ignore", invalid="ignore"):
                # channels of huge floats average to inf: reported just below as
                # corrupt, not as a RuntimeWarning on stderr
                decoded = pcm_decode(data[:usable], self._fmt)
            check_finite(decoded, self._fmt.sample_rate, "stdin",
                         self._frames_read / self._fmt.sample_rate)
            self._frames_read += decoded.size
            # warned about once: a stream that clips usually goes on clipping
            clipped = clip_full_scale(decoded, "stdin", warn=not self._clipped)
            self._clipped |= clipped is not decoded
            samples = np.clip(self._resampler(clipped), -1.0, 1.0)  # resampling overshoots a little
            self._buf = np.concatenate([self._buf, samples])
        if self._buf.size == 0 and self._eof:
            return None
        block, self._buf = self._buf[:n], self._buf[n:]
        if block.size < n:
            block = np.concatenate([block, np.zeros(n - block.size, np.float32)])
        return block

    def close(self) -> None:
        pass


class WavOutput:
    """16-bit WAV at the pipeline rate, written as it goes so a crash keeps the audio."""

    _SFC_SET_UPDATE_HEADER_AUTO = 0x1061  # sndfile.h

    def __init__(self, path: Path, rate: int) -> None:
        import soundfile

        try:
            self._file = soundfile.SoundFile(
                str(path), mode="w", samplerate=rate, channels=1, subtype="PCM_16"
            )
        except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioOutputError(f"cannot write output file {path}: {err}") from None
        # libsndfile writes the data length into the header only on close; a
        # killed daemon would leave a WAV that strict readers (Python's wave)
        # take for empty. Rewrite the header after every block instead.
        soundfile._snd.sf_command(
            self._file._file, self._SFC_SET_UPDATE_HEADER_AUTO, soundfile._ffi.NULL, 1
        )

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.clip(block, -1.0, 1.0))

    def close(self) -> None:
        self._file.close()


class PcmOutput:
    """Raw PCM to a binary stream (stdout) in the configured format."""

    def __init__(self, stream: BinaryIO, fmt: PcmFormat, rate: int) -> None:
        self._stream = stream
        self._fmt = fmt
        self._resampler = StreamResampler(rate, fmt.sample_rate)

    def write(self, block: np.ndarray) -> None:
        try:
            self._stream.write(pcm_encode(self._resampler(block), self._fmt))
            self._stream.flush()
        except BrokenPipeError:
            raise AudioOutputError("the output pipe was closed by the reader") from None

    def close(self) -> None:
        try:
            self._stream.write(pcm_encode(self._resampler(np.zeros(0, np.float32), last=True), self._fmt))
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the reader went away at the very end: nothing left to lose


class MemoryOutput:
    """Keeps the speaker signal in memory (the demo's mix, tests)."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block.copy())

    def close(self) -> None:
        pass

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


class NullOutput:
    def write(self, block: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass


def open_input(spec: str, rate: int, fmt: PcmFormat) -> BlockInput:
    if spec == "-":
        return PcmInput(sys.stdin.buffer, fmt, rate)
    return WavInput(Path(spec), rate)


def check_output(spec: str) -> None:
    """Fail now, before anything slow (loading models), on an output that cannot
    be written: not ``-`` or a ``.wav`` path, a directory, a missing folder, no
    permission. Leaves an existing file as it is and creates none."""
    if spec == "-":
        return
    path = Path(spec)
    hint = "give a path ending in .wav, or '-' for raw PCM on stdout (e.g. '-o - > /dev/null' to discard it)"
    if path.suffix.lower() != ".wav":
        raise AudioOutputError(f"output {spec}: not a .wav file", hint)
    if path.is_dir():
        raise AudioOutputError(f"output {spec} is a directory", hint)
    try:  # the only sure test is to try (root passes access(2) checks, a read-only mount does not)
        if path.exists():
            with open(path, "r+b"):  # writable, and not truncated yet
                pass
        else:
            with open(path, "xb"):
                pass
            path.unlink()
    except OSError as err:
        raise AudioOutputError(f"cannot write output file {spec}: {err.strerror or err}") from None


def open_output(spec: str | None, rate: int, fmt: PcmFormat) -> BlockOutput:
    if spec is None:
        return NullOutput()
    check_output(spec)
    if spec == "-":
        return PcmOutput(sys.stdout.buffer, fmt, rate)
    return WavOutput(Path(spec), rate)
