"""A reproducible spoken corpus with sample-exact boundaries, made on the fly.

Questions a voice assistant gets, spoken by espeak-ng in varied voices, rates
and levels, on one WAV timeline with low pink noise under it. About 40% have a
mid-sentence pause (a hesitation after a function word, see ``SENTENCES``),
made with an SSML ``<break>`` so the
prosody on both sides stays that of one sentence: that is the pause an
endpointer must not take for the end of the turn.

The truth (speech start, speech end, pauses) is read off the clean espeak
signal, before gain and noise, with an energy threshold, so it does not depend
on the noise drawn. The same seed gives the same audio, sample for sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from voiceagent.errors import VoiceAgentError

logger = logging.getLogger(__name__)

SENTENCES: tuple[str, ...] = (
    # "|" is where a pause may go: a hesitation after a function word ("the",
    # "to", "a", "about", ...), before the content word being looked for, which
    # is where speakers pause most inside a sentence. The words before it are
    # never a complete request. (A pause after a complete-sounding phrase, as in
    # "Play some music | in the kitchen", cannot be told from the end of a turn in
    # espeak's flat prosody except by waiting; on human voices the end-of-turn
    # model hears the intonation.) No digits, so that the WER does not depend on
    # how numbers are written.
    "Could you tell me about | the weather for tomorrow?",
    "What is the best way to | cook brown rice?",
    "Can you remind me to | call my sister tonight?",
    "How far away is the | moon from the earth?",
    "I would like to know why the | sky is blue.",
    "Please tell me a | short story about a dragon.",
    "What should I pack for | a weekend in the mountains?",
    "Can you explain how a | rainbow forms?",
    "What is the difference between a frog and | a toad?",
    "Tell me something interesting about | octopuses.",
    "How do I make a | good cup of tea?",
    "Which planet is closest to | the sun?",
    "Could you suggest a good book for | a long flight?",
    "Why do cats purr at | night?",
    "What is the capital of | Australia?",
    "How long should I boil an | egg for breakfast?",
    "Can you give me some tips for | sleeping better?",
    "What goes into a | classic pizza dough?",
    "Who wrote the play about | Romeo and Juliet?",
    "How do bees make their | honey?",
    "What is a healthy snack that I can eat at | work?",
    "Can you tell me a joke about | computers?",
    "Why do the leaves change color in the | autumn?",
    "What is the tallest mountain in | Africa?",
    "How can I keep my | bread from going stale?",
    "What should I do if my | phone gets wet?",
    "Where do penguins live in | the wild?",
    "How do airplanes stay up in the | air?",
    "When is the best time to | plant tomatoes?",
    "Could you explain what a | black hole is?",
    "What language do people speak in | Brazil?",
    "How do I get rid of | a headache quickly?",
    "What is the weather like in London in | the spring?",
    "Can you recommend a simple recipe for | soup?",
    "Why is the water in the | ocean salty?",
    "How do I say thank you in | Japanese?",
    "Which animals live in the | rainforest?",
    "How can I learn to | play the guitar?",
    "What makes the | thunder so loud?",
    "Is it safe to | swim right after eating?",
    "Who invented the | telephone?",
    "What is the fastest way to | learn a new language?",
)

VOICES: tuple[str, ...] = (
    # espeak-ng's own (gmw) voices and variants; the mbrola ones need extra packages.
    # Not en-gb-scotland or en-029: whisper tiny.en misheard 20-47% of their words
    # (5-20% for these), and the benchmark is about the pipeline, not accents.
    "en-us", "en-gb", "en-us+f2", "en-gb+m3", "en+f4", "en-us+m1",
    "en-us-nyc+f3", "en-gb-x-rp+m2", "en-us+m3", "en-gb+f2",
)

THRESHOLD = 0.01
"""|x| (-40 dBFS) above which the clean espeak signal counts as speech."""
MIN_PAUSE_S = 0.15
"""Seconds: a silent stretch inside the speech at least this long is a pause."""
PAUSE_SHARE = 0.4
"""Share of utterances given a mid-sentence pause."""
BREAK_MS = (300, 700)
"""Range of the SSML break, milliseconds."""
WPM = (140, 190)
"""Range of espeak's speaking rate, words per minute."""
GAIN_DB = (-9.0, -3.0)
"""Range of the gain on espeak's output (peaks ~0.7), decibels."""
NOISE_DBFS = (-50.0, -40.0)
"""Range of the RMS level of the background noise, dBFS."""
LEAD_S = 1.0
"""Seconds of background noise alone at the start of the timeline."""
PRE_S = (0.3, 1.0)
"""Range of extra silence before each utterance, seconds."""


@dataclass(frozen=True)
class Utterance:
    """One question on the timeline. Positions are samples from the first sample."""

    index: int
    text: str
    """What is said, without markup: the reference for the WER."""
    voice: str
    """espeak-ng voice and variant; in a corpus of real recordings, the recording's name."""
    wpm: int
    """Speaking rate, words per minute."""
    gain_db: float
    """Decibels applied to espeak's output."""
    break_ms: int
    """Milliseconds of the SSML break asked for at the phrase boundary (0: none)."""
    start: int
    """First sample of speech (true speech start)."""
    end: int
    """One past the last sample of speech (true speech end)."""
    pauses: tuple[tuple[int, int], ...]
    """Silent intervals inside the speech, [start, end) in samples."""

    @property
    def has_pause(self) -> bool:
        return bool(self.pauses)


@dataclass(frozen=True)
class Corpus:
    rate: int
    """Hertz."""
    seed: int
    gap_s: float
    """Seconds of silence after each true speech end, for the reply."""
    noise_dbfs: float
    """RMS level of the background noise, dBFS."""
    utterances: tuple[Utterance, ...]
    audio: np.ndarray
    """The whole timeline, mono float32."""

    @property
    def seconds(self) -> float:
        return self.audio.size / self.rate

    def window_end(self, index: int) -> int:
        """Sample where the reply window of utterance ``index`` ends: the next question."""
        if index + 1 < len(self.utterances):
            return self.utterances[index + 1].start
        return self.audio.size

    def describe(self) -> dict[str, object]:
        """The boundaries and texts as JSON-ready data (seconds and samples)."""
        rate = self.rate
        return {
            "rate": rate,
            "seed": self.seed,
            "gap_s": self.gap_s,
            "noise_dbfs": round(self.noise_dbfs, 2),
            "seconds": round(self.seconds, 3),
            "utterances": [
                {
                    "index": u.index,
                    "text": u.text,
                    "voice": u.voice,
                    "wpm": u.wpm,
                    "gain_db": round(u.gain_db, 2),
                    "break_ms": u.break_ms,
                    "start": u.start,
                    "end": u.end,
                    "start_s": round(u.start / rate, 4),
                    "end_s": round(u.end / rate, 4),
                    "pauses_s": [[round(a / rate, 4), round(b / rate, 4)] for a, b in u.pauses],
                }
                for u in self.utterances
            ],
        }


def espeak_ssml(ssml: str, rate: int, voice: str, wpm: int) -> np.ndarray:
    """SSML spoken by espeak-ng, mono float32 at ``rate`` hertz."""
    from voiceagent.demo import espeak

    return espeak(ssml, rate, voice=voice, wpm=wpm, ssml=True)


def to_ssml(sentence: str, break_ms: int) -> tuple[str, str]:
    """(plain text, SSML) of a sentence with its ``|`` boundary, breaking there if asked."""
    first, _, rest = (part.strip() for part in sentence.partition("|"))
    text = f"{first} {rest}".strip()
    pause = f' <break time="{break_ms}ms"/> ' if break_ms else " "
    return text, f"<speak>{escape(first)}{pause}{escape(rest)}</speak>"


def speech_bounds(clean: np.ndarray, rate: int) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """(start, end, pauses) of the speech in a clean signal, in samples.

    Start is the first sample above ``THRESHOLD``, end one past the last; a
    pause is a run of at least ``MIN_PAUSE_S`` between two loud samples.
    """
    loud = np.flatnonzero(np.abs(clean) > THRESHOLD)
    if loud.size == 0:
        raise ValueError("no speech in the signal")
    gaps = np.flatnonzero(np.diff(loud) > MIN_PAUSE_S * rate)
    pauses = tuple((int(loud[i]) + 1, int(loud[i + 1])) for i in gaps)
    return int(loud[0]), int(loud[-1]) + 1, pauses


def pink_noise(n: int, rms_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise of ``n`` samples at ``rms_dbfs`` RMS, shaped in the frequency domain."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    spectrum /= np.sqrt(f)
    spectrum[0] = 0.0  # no DC offset
    noise = np.fft.irfft(spectrum, n)
    noise *= 10 ** (rms_dbfs / 20) / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    return noise.astype(np.float32)


def build_corpus(turns: int, seed: int, rate: int = 16000, gap_s: float = 10.0) -> Corpus:
    """``turns`` utterances on one timeline, all drawn from ``seed``."""
    if turns < 1:
        raise ValueError("turns must be at least 1")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < turns:  # every sentence once before any repeats
        order.extend(int(i) for i in rng.permutation(len(SENTENCES)))
    paused = set(int(i) for i in rng.choice(turns, size=round(PAUSE_SHARE * turns), replace=False))
    parts = [np.zeros(int(LEAD_S * rate), np.float32)]
    pos = parts[0].size
    utterances = []
    for i in range(turns):
        voice = VOICES[int(rng.integers(len(VOICES)))]
        wpm = int(rng.integers(WPM[0], WPM[1] + 1))
        gain_db = float(rng.uniform(*GAIN_DB))
        break_ms = int(rng.integers(BREAK_MS[0] // 10, BREAK_MS[1] // 10 + 1)) * 10
        pre = np.zeros(int(rng.uniform(*PRE_S) * rate), np.float32)
        if i not in paused:
            break_ms = 0
        text, ssml = to_ssml(SENTENCES[order[i]], break_ms)
        clean = espeak_ssml(ssml, rate, voice, wpm)
        start, end, pauses = speech_bounds(clean, rate)
        if break_ms and not pauses:
            raise VoiceAgentError(f"espeak-ng made no pause in {ssml!r} with voice {voice}")
        # The gap is counted from the true end of speech, not from the end of
        # espeak's file with its own trailing silence.
        clip = clean[:end] * np.float32(10 ** (gain_db / 20))
        offset = pos + pre.size
        utterances.append(Utterance(
            i, text, voice, wpm, gain_db, break_ms, offset + start, offset + end,
            tuple((offset + a, offset + b) for a, b in pauses),
        ))
        parts += [pre, clip, np.zeros(int(gap_s * rate), np.float32)]
        pos = offset + clip.size + parts[-1].size
    audio = np.concatenate(parts)
    noise_dbfs = float(rng.uniform(*NOISE_DBFS))
    audio += pink_noise(audio.size, noise_dbfs, rng)
    np.clip(audio, -1.0, 1.0, out=audio)
    logger.info("corpus: %d utterances, %.1f s, seed %d", turns, audio.size / rate, seed)
    return Corpus(rate, seed, gap_s, noise_dbfs, tuple(utterances), audio)


def write_wav(corpus: Corpus, path: Path) -> None:
    """The timeline as a 16-bit mono WAV (what an external peer is fed)."""
    import soundfile

    soundfile.write(str(path), corpus.audio, corpus.rate, subtype="PCM_16")
