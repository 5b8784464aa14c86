"""The bounded conversation history the LLM sees."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Exchange:
    turn: int
    user: str
    assistant: str
    """What the user actually heard of the reply."""
    interrupted: bool = False


class History:
    """The last ``max_turns`` exchanges, oldest first, in turn order."""

    def __init__(self, max_turns: int) -> None:
        self._exchanges: deque[Exchange] = deque(maxlen=max(max_turns, 0) or None)
        self._max_turns = max_turns

    def add(self, exchange: Exchange) -> None:
        if self._max_turns == 0:
            return
        self._exchanges.append(exchange)
        if len(self._exchanges) > 1 and self._exchanges[-2].turn > exchange.turn:
            ordered = sorted(self._exchanges, key=lambda e: e.turn)
            self._exchanges.clear()
            self._exchanges.extend(ordered)

    def truncate(self, turn: int, heard: str) -> bool:
        """The user heard only ``heard`` of ``turn``'s reply (fewer words than
        recorded): keep that. False if the turn is not in the history."""
        for i, ex in enumerate(self._exchanges):
            if ex.turn == turn:
                if len(heard.split()) < len(ex.assistant.split()):
                    self._exchanges[i] = Exchange(ex.turn, ex.user, heard, interrupted=True)
                return True
        return False

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self._exchanges)

    def messages(self, system_prompt: str, user_text: str) -> list[dict[str, str]]:
        """Chat messages for a new user turn: system, history, then the new text."""
        messages = self.prefix(system_prompt)
        messages.append({"role": "user", "content": user_text})
        return messages

    def prefix(self, system_prompt: str) -> list[dict[str, str]]:
        """System prompt and history: what every next turn's prompt starts with."""
        messages = [{"role": "system", "content": system_prompt}]
        for ex in self._exchanges:
            messages.append({"role": "user", "content": ex.user})
            # An interrupted reply is kept as far as it was heard, unmarked: the
            # small default model copied a " -" cut-off marker into every later
            # reply ("The moon is -") and then stopped there.
            if ex.assistant.strip():
                messages.append({"role": "assistant", "content": ex.assistant.strip()})
        return messages
