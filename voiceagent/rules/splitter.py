"""Pure clause splitting of a streamed LLM reply, so TTS can start early.

Tokens arrive a few characters at a time; ``push`` returns the clauses that are
complete. A sentence ends at ``.``, ``!``, ``?`` or a newline followed by more
text (so "3.5" and "e.g." are not cut); a clause ends at ``,``, ``;`` or ``:``
once it has enough words, and only in the first sentence: the time to the
first sound matters there, so its first clause has a lower word count. After
it, whole sentences only, because piper sounds better with them, and because
a reply the token limit cuts must end on its last whole sentence: a clause
already spoken ("... or need help with something else,") cannot be taken back.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st vs etc e.g i.e prof sr jr no approx fig dept inc ltd co".split()
)
_MARKUP = re.compile(r"[*_#`~|>\[\]]+")
# Emojis and pictographs: piper would spell them out or produce noise.
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = ".!?\u2026"
_CLAUSE_END = ",;:"


def clean_for_speech(text: str) -> str:
    """Remove markup and emojis and collapse white space."""
    text = _EMOJI.sub("", _MARKUP.sub("", text))
    return _SPACES.sub(" ", text).strip()


class ClauseSplitter:
    def __init__(self, first_min_words: int, min_words: int, first_max_words: int) -> None:
        self.first_min_words = first_min_words
        self.min_words = min_words
        self.first_max_words = first_max_words
        """Cut the first clause at a word boundary after this many words (0: never)."""
        self.sentences = 0
        """Sentences completed so far (for the max-sentences cut)."""
        self._buf = ""
        self._emitted = 0

    def push(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while (cut := self._find_cut()) is not None:
            piece, self._buf = self._buf[:cut], self._buf[cut:]
            self._emit(piece, out)
        return out

    def flush(self, keep_unfinished: bool = True) -> list[str]:
        """The rest of the reply, once the LLM is done.

        With ``keep_unfinished=False`` a trailing fragment without a sentence end
        is dropped if a whole sentence was already said: a reply cut by the token
        limit sounds better ending on its last full sentence.
        """
        out: list[str] = []
        piece, self._buf = self._buf, ""
        if (
            not keep_unfinished
            and self.sentences > 0
            and piece.rstrip()[-1:] not in _SENTENCE_END
        ):
            return out
        before = self.sentences
        self._emit(piece, out)
        if out and self.sentences == before:
            self.sentences += 1  # an unterminated last sentence still counts
        return out

    def _emit(self, piece: str, out: list[str]) -> None:
        if piece.rstrip()[-1:] in _SENTENCE_END or piece.endswith("\n"):
            self.sentences += 1
        clause = clean_for_speech(piece)
        if clause and any(c.isalnum() for c in clause):
            out.append(clause)
            self._emitted += 1

    def _find_cut(self) -> int | None:
        """Index just after the first boundary in the buffer, or None."""
        buf = self._buf
        min_words = self.first_min_words if self._emitted == 0 else self.min_words
        for i, ch in enumerate(buf[:-1]):
            nxt = buf[i + 1]
            if ch == "\n":
                if buf[:i].strip():
                    return i + 1
                continue
            if not nxt.isspace():
                continue
            if ch in _SENTENCE_END and not self._is_abbreviation(buf[: i + 1]):
                return i + 1
            if ch in _CLAUSE_END and self.sentences == 0 and len(buf[:i].split()) >= min_words:
                return i + 1
        if self._emitted == 0 and self.first_max_words:
            # A long first sentence would keep the user waiting for all of it.
            words = list(re.finditer(r"\S+\s", buf))
            if len(words) >= self.first_max_words:
                return words[self.first_max_words - 1].end()
        return None

    @staticmethod
    def _is_abbreviation(text: str) -> bool:
        if not text.endswith("."):
            return False
        word = text[:-1].split()[-1].lower() if text[:-1].split() else ""
        word = word.lstrip("(\"'")
        return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())
