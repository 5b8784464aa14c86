"""Grow the real-speech development set by splicing real recordings.

    .venv/bin/python benchmarks/splice_corpus.py --speech ../shared/speech --out /tmp/spliced [--seed 0]

Writes WAVs (16 kHz mono int16), ``requests.tsv``, ``paused.tsv`` and a README.md
that ``voiceagent bench --corpus DIR`` reads unchanged (``bench.recordings``):
long pauses inside one utterance (``pause_*``), a second part led by "and" or
"not" (``cont_*``), card lists said with pauses (``list_*``) and requests after
a step from digital zeros to room tone (``step_*``). Only room tone is made:
noise shaped like the source's quietest frames, at their level, because looping
a real quiet stretch repeats its breaths and clicks, and digital zeros would
show the VAD where the splice is. Some sources may not be redistributed
(shared/speech/README.md): write the output outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
EDGE_S = 0.3  # room tone before the first and after the last word: the loader keeps 0.3 s
FADE_S = 0.02  # equal-power crossfade between real audio and made room tone
GAP_DB = 8.0  # an envelope frame this far over the noise floor is speech (bounds of a natural gap)
SMOOTH = 10  # 10 ms frames averaged when looking for the quietest point between two words
CANDIDATES = 8  # cut points Whisper checks (quietest first) before settling for the quietest
STEP_ZEROS_S, STEP_DBFS, STEP_LEAD_S = 1.0, -47.0, 0.56


@dataclass
class Source:
    name: str
    audio: np.ndarray
    start: float
    end: float
    words: list[str]
    pauses: list[tuple[float, float]]
    live: tuple[float, float]  # first and last non-zero sample: sox's pads are digital zeros
    floor_rms: float
    psd: np.ndarray


@dataclass
class Piece:
    src: Source
    a: float  # real audio kept, source seconds
    b: float
    s0: float  # speech inside it
    s1: float
    words: list[str]
    pauses: list[tuple[float, float]]


def load_sources(folder: Path) -> dict[str, Source]:
    sources = {}
    for table in ("requests.tsv", "paused.tsv"):
        with open(folder / table, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                audio, rate = soundfile.read(str(folder / f"{row['name']}.wav"), dtype="float32")
                assert rate == RATE and audio.ndim == 1, row["name"]
                nz = np.flatnonzero(audio)
                pauses = [tuple(map(float, p.split("-"))) for p in (row.get("pauses_s") or "").split(",") if p]
                sources[row["name"]] = Source(
                    row["name"], audio, float(row["speech_start_s"]), float(row["speech_end_s"]),
                    row["transcript"].split(), pauses, (nz[0] / RATE, (nz[-1] + 1) / RATE), *room_model(audio))
    return sources


def room_model(audio: np.ndarray) -> tuple[float, np.ndarray]:
    """RMS and mean power spectrum of the quietest 15% of 32 ms frames (digital zeros left out)."""
    frames = audio[: audio.size // 512 * 512].reshape(-1, 512).astype(np.float64)
    rms = np.sqrt((frames**2).mean(1))
    live = rms > 10 ** (-90 / 20)
    quiet = frames[live & (rms <= np.percentile(rms[live], 15))]
    psd = (np.abs(np.fft.rfft(quiet * np.hanning(512), axis=1)) ** 2).mean(0)
    return float(np.sqrt((quiet**2).mean())), psd


def room_tone(rms: float, psd: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian noise with the room's spectrum and level."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    shape = np.sqrt(np.interp(np.linspace(0, 1, spectrum.size), np.linspace(0, 1, psd.size), psd))
    noise = np.fft.irfft(spectrum * shape, n)
    return noise * rms / max(float(np.sqrt((noise**2).mean())), 1e-12)


def envelope_db(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """25 ms RMS every 10 ms, in dBFS, and each frame's centre in seconds."""
    n = (audio.size - 400) // 160 + 1
    frames = audio[np.arange(400)[None, :] + 160 * np.arange(n)[:, None]].astype(np.float64)
    return 20 * np.log10(np.sqrt((frames**2).mean(1)) + 1e-9), (160 * np.arange(n) + 200) / RATE


NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def norm(word: str) -> str:
    word = re.sub(r"[^a-z0-9']", "", word.lower())
    return NUMBERS[int(word)] if word.isdigit() and int(word) < len(NUMBERS) else word


def nth(words: list[str], key: str) -> int:
    """Index of ``word`` or ``word#n`` (the n-th occurrence) in ``words``."""
    word, _, n = key.partition("#")
    hits = [i for i, w in enumerate(words) if norm(w) == word]
    if len(hits) < int(n or 1):
        raise ValueError(f"no {key!r} in {' '.join(words)}")
    return hits[int(n or 1) - 1]


class Cutter:
    """Finds the gap before a word: Whisper places it, the envelope refines it."""

    def __init__(self, model_dir: Path):
        from faster_whisper import WhisperModel  # only the cuts need it

        self.model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=1)

    def heard(self, audio: np.ndarray, **kw) -> list:
        segments, _ = self.model.transcribe(audio.astype(np.float32), language="en", beam_size=5, **kw)
        return [w for s in segments for w in (s.words if kw else map(norm, s.text.split()))]

    def splits(self, src: Source, m: int, key: str) -> bool:
        """Whether a cut at sample ``m`` leaves ``key`` first in the second part."""
        word, _, n = key.partition("#")
        return self.heard(src.audio[:m]).count(word) == int(n or 1) - 1 and self.heard(src.audio[m:])[:1] == [word]

    def gap(self, src: Source, key: str) -> tuple[float, float, float]:
        """(end of speech before, cut point, start of speech after), source seconds."""
        words = [(w.word, w.start) for w in self.heard(src.audio, word_timestamps=True)]
        i = nth([w for w, _ in words], key)
        # tiny.en's word starts are often 0.1-0.3 s late: look from just after the
        # previous word began to the start of the next one.
        lo = words[i - 1][1] + 0.1 if i else words[i][1] - 0.3
        hi = words[i + 1][1] if i + 1 < len(words) else src.end
        for a, b in src.pauses:  # a labelled pause there: the reference label wins
            if lo <= (a + b) / 2 <= hi:
                return a, (a + b) / 2, b
        env, times = envelope_db(src.audio)
        smooth = 10 * np.log10(np.convolve(10 ** (env / 10), np.ones(SMOOTH) / SMOOTH, mode="same"))
        near = np.flatnonzero((times >= lo) & (times <= hi))
        # Quietest 100 ms first (a comma pause beats a stop's closure), but where
        # the words run together the quietest point may be inside "and": keep the
        # first candidate after which Whisper hears the word first.
        tried: list[int] = []
        for k in near[np.argsort(smooth[near])]:
            if not any(abs(k - j) < 5 for j in tried):
                tried.append(int(k))
                if (ok := self.splits(src, int(times[k] * RATE), key)) or len(tried) == CANDIDATES:
                    break
        m = tried[-1] if ok else tried[0]
        if not ok:
            logger.warning("%s: Whisper hears no cut before %r; the quietest point it is", src.name, key)
        threshold = 20 * np.log10(src.floor_rms) + GAP_DB
        g0 = g1 = m
        while env[m] < threshold and g0 > 0 and env[g0 - 1] < threshold:
            g0 -= 1
        while env[m] < threshold and g1 + 1 < env.size and env[g1 + 1] < threshold:
            g1 += 1
        logger.info("%s: cut before %r at %.2f s (candidate %d, Whisper's window %.2f-%.2f), gap %.2f-%.2f",
                    src.name, key, times[m], len(tried), lo, hi, times[g0], times[g1])
        return float(times[g0]), float(times[m]), float(times[g1])


def pieces_of(src: Source, cuts: list[str], cutter: Cutter) -> list[Piece]:
    """The recording cut before each word in ``cuts``: one piece more than cuts."""
    edges = [(src.start, max(src.live[0], src.start - EDGE_S), 0)]
    for key in cuts:
        g0, m, g1 = cutter.gap(src, key)
        edges.append((g0, m, nth(src.words, key)))
        edges.append((g1, m, nth(src.words, key)))
    edges.append((src.end, min(src.live[1], src.end + EDGE_S), len(src.words)))
    pieces = []
    for (s0, a, w0), (s1, b, w1) in zip(edges[::2], edges[1::2]):
        inside = [(p, q) for p, q in src.pauses if s0 < p < q < s1]
        pieces.append(Piece(src, a, b, s0, s1, src.words[w0:w1], inside))
    return pieces


def assemble(pieces: list[Piece], gaps: list[float], rng: np.random.Generator):
    """The pieces with ``gaps`` seconds between one's last word and the next one's first,
    laid over a bed of each piece's room tone. Returns audio, speech start/end, pauses."""
    for i, gap in enumerate(gaps):  # a whole recording's tail and head may be longer than the pause
        left, right = pieces[i], pieces[i + 1]
        if left.src is right.src and right.s0 - left.s1 > gap:
            raise ValueError(f"{left.src.name}: the natural gap is longer than {gap} s")
        room = max(gap - 4 * FADE_S, 0.0) / 2  # leaves at least 40 ms of made room tone between
        left.b, right.a = min(left.b, left.s1 + room), max(right.a, right.s0 - room)
    starts = [EDGE_S]
    for piece, gap in zip(pieces, gaps):
        starts.append(starts[-1] + piece.s1 - piece.s0 + gap)
    end = starts[-1] + pieces[-1].s1 - pieces[-1].s0
    n = int(round((end + EDGE_S) * RATE))
    # Room tone bed: each piece's own, crossfaded (equal power) from one piece's middle to the next's.
    middles = [o + (p.s1 - p.s0) / 2 for o, p in zip(starts, pieces)]
    where = np.interp(np.arange(n) / RATE, middles, np.arange(len(pieces))) if len(pieces) > 1 else np.zeros(n)
    bed = sum(room_tone(p.src.floor_rms, p.src.psd, n, rng) * np.sqrt(np.clip(1 - np.abs(where - k), 0, 1))
              for k, p in enumerate(pieces))
    out, weight, pauses = np.zeros(n), np.zeros(n), []
    for o, p in zip(starts, pieces):
        i0 = max(int(round((o - (p.s0 - p.a)) * RATE)), 0)
        clip = p.src.audio[int(round(p.a * RATE)): int(round(p.b * RATE))][: n - i0]
        w = faded(np.ones(clip.size), np.sin(np.linspace(0, np.pi / 2, int(FADE_S * RATE))))
        out[i0: i0 + clip.size] += clip * w
        weight[i0: i0 + clip.size] = w
        pauses += [(o + a - p.s0, o + b - p.s0) for a, b in p.pauses]
    out += bed * np.sqrt(1 - weight**2)
    pauses += [(starts[i] + pieces[i].s1 - pieces[i].s0, starts[i + 1]) for i in range(len(gaps))]
    return out, EDGE_S, end, sorted(pauses)


def faded(x: np.ndarray, ramp: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x[: ramp.size] *= ramp
    x[-ramp.size:] *= ramp[::-1]
    return x


def step(src: Source, rng: np.random.Generator):
    """1 s of zeros, then pink noise at -47 dBFS, the request 0.56 s after the step."""
    begin = STEP_ZEROS_S + STEP_LEAD_S
    end = begin + src.end - src.start
    n = int(round((end + EDGE_S + 0.5) * RATE))
    out = np.zeros(n)
    z = int(STEP_ZEROS_S * RATE)
    pink = np.r_[0.0, 1 / np.arange(1.0, 257)]  # power falling as 1/f, no DC
    out[z:] = room_tone(10 ** (STEP_DBFS / 20), pink, n - z, rng)  # abrupt: the step is the test
    a, b = max(src.live[0], src.start - EDGE_S), min(src.live[1], src.end + EDGE_S)
    clip = faded(src.audio[int(round(a * RATE)): int(round(b * RATE))], np.linspace(0, 1, int(FADE_S * RATE)))
    i0 = int(round((begin - (src.start - a)) * RATE))
    out[i0: i0 + clip.size] += clip  # over the pink noise: the room goes on under the speech
    return out, begin, end, []


# name, recordings ("a + b": joined whole; "a / word": cut before the word), pauses in seconds
SET = [
    ("pause_ill_cold", "read_ill_disposed + read_cold_hearted", [0.6]),
    ("pause_wizard", "p_wizard / who", [0.6]),
    ("pause_woman_himself", "read_amiable_woman + read_amiable_himself", [0.9]),
    ("pause_expression_that", "read_expression / that", [0.9]),
    ("pause_dashwood_ill", "read_dashwood + read_ill_disposed", [1.2]),
    ("pause_child_drop", "read_child_dog + read_drop_the_two", [1.2]),
    ("pause_cold_himself", "read_cold_hearted + read_amiable_himself", [1.5]),
    ("pause_woman_comma", "read_amiable_woman / he#2", [1.5]),
    ("cont_go_somewhere_and", "req_go_somewhere / and", [0.6]),
    ("cont_cold_and", "read_cold_hearted / and", [0.9]),
    ("cont_himself_and_dashwood", "read_amiable_himself + read_dashwood", [1.2]),
    ("cont_expression_not", "read_expression / not", [1.2]),
    ("cont_dublin_and", "p_lecture_dublin / and#2", [1.5]),
    ("list_cards_hand", "req_cards_hand / four / seven", [0.6, 0.9]),
    ("list_ten_seven_four", "req_cards_ten_of_clubs + req_cards_seven_of_clubs + req_cards_four_queen", [0.5, 0.7]),
    ("list_seven_ten_five", "req_cards_seven_of_clubs + req_cards_ten_of_clubs + req_cards_five_five", [0.8, 0.9]),
] + [(f"step_{n.split('_', 1)[1]}", n, []) for n in
     ("req_go_forward", "req_go_somewhere", "req_forever", "req_wealth_tax", "read_child_dog")]
REDISTRIBUTABLE = re.compile(r"req_go_|req_forever|req_cards_|read_dashwood|read_ill_disposed|read_cold_hearted"
                             r"|read_amiable_")


def build(speech: Path, out: Path, seed: int, whisper: Path) -> None:
    sources, cutter = load_sources(speech), Cutter(whisper)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[list[str]]] = {"requests.tsv": [], "paused.tsv": []}
    readme = []
    for index, (name, spec, gaps) in enumerate(SET):
        rng = np.random.default_rng([seed, index])  # one stream per file: each is deterministic alone
        parts = [[w.strip() for w in part.split("/")] for part in spec.split("+")]
        used = [part[0] for part in parts]
        if name.startswith("step_"):
            audio, start, end, pauses = step(sources[used[0]], rng)
            words, kind = sources[used[0]].words, "step"
        else:
            pieces = [p for n, *cuts in parts for p in pieces_of(sources[n], cuts, cutter)]
            audio, start, end, pauses = assemble(pieces, gaps, rng)
            words, kind = [w for p in pieces for w in p.words], "join" if len(parts) > 1 else "cut"
        peak = float(np.abs(audio).max())
        if peak > max([0.999] + [float(np.abs(sources[n].audio).max()) for n in used]):  # cards_* are at full scale
            raise ValueError(f"{name}: would clip (peak {peak:.3f})")
        soundfile.write(str(out / f"{name}.wav"), audio.astype(np.float32), RATE, subtype="PCM_16")
        text, spans = " ".join(words), ",".join(f"{a:.2f}-{b:.2f}" for a, b in pauses)
        rows["paused.tsv" if pauses else "requests.tsv"].append(
            [name, f"{start:.2f}", f"{end:.2f}"] + ([spans] if pauses else []) + [text])
        free = "yes" if all(REDISTRIBUTABLE.match(n) for n in used) else "no"
        readme.append(f"| {name} | {kind} | {spec} | {spans or '-'} | {free} | {text} |")
        logger.info("%s: speech %.2f-%.2f s, pauses %s, peak %.1f dBFS", name, start, end, spans or "-",
                    20 * np.log10(peak))
    for table, header in (("requests.tsv", ["name", "speech_start_s", "speech_end_s", "transcript"]),
                          ("paused.tsv", ["name", "speech_start_s", "speech_end_s", "pauses_s", "transcript"])):
        with open(out / table, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t", lineterminator="\n").writerows([header] + rows[table])
    (out / "README.md").write_text(README.format(seed=seed, speech=speech, rows="\n".join(readme)))


README = """# Spliced real speech

`benchmarks/splice_corpus.py --speech {speech} --seed {seed}`, from real recordings
only; play with `voiceagent bench --corpus DIR`. "join": two recordings of one
speaker; "cut": one recording cut at a word gap that is widened. `cont_*`: the part
after the pause starts with "and"/"not" (no "no" or "but" was recorded), so it is
a continuation. `step_*`: 1.0 s of digital zeros, pink noise at -47 dBFS, the
request 0.56 s after the step; the loader keeps only 0.3 s before the speech, so
`bench --corpus` does not play the step itself. Pauses hold noise shaped like the
source's own quietest frames, at their level; levels are the sources'. Only files
marked "yes" may be copied into a repository (shared/speech/README.md).

| file | kind | from ("a / word": cut before word) | pauses_s | redistributable | transcript |
| --- | --- | --- | --- | --- | --- |
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speech", type=Path, default=ROOT.parent / "shared" / "speech")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--whisper", type=Path, default=ROOT / "models" / "whisper-tiny.en")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build(args.speech, args.out, args.seed, args.whisper)


if __name__ == "__main__":
    main()
