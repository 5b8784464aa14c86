"""``llm.seed``: every reply sampled from one seed, in process and through an
OpenAI-compatible server, so a benchmark's replies are the same from run to run
(unseeded, the first real-recordings reply decided whether v2v p50 was 536 or
1340 ms: its first clause set the length of every first clause after it)."""

from __future__ import annotations

import pytest

from tests.support.llm_server import STORY, chat_model
from tests.support.speech import ROOT, require_models
from voiceagent.config import Config, LlmConfig
from voiceagent.stages.llama import LlamaChatModel

pytestmark = pytest.mark.realmodel

# Hot enough that two unseeded replies to a story all but never agree.
SAMPLED = {"temperature": 1.5, "top_k": 0, "top_p": 1.0, "max_tokens": 24}


def test_a_seeded_reply_is_the_same_every_time_in_process():
    require_models()
    model = LlamaChatModel(ROOT / Config().llm.model, LlmConfig(seed=7, **SAMPLED))
    replies = ["".join(model.stream_chat(STORY)) for _ in range(3)]
    assert replies[0] and replies.count(replies[0]) == 3, replies


def test_a_seeded_reply_is_the_same_every_time_through_a_server(server):
    model = chat_model(server.url, seed=7, **SAMPLED)
    replies = ["".join(model.stream_chat(STORY)) for _ in range(3)]
    assert replies[0] and replies.count(replies[0]) == 3, replies
