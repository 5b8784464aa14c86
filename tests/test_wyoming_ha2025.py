"""Home Assistant 2025.4.4's Assist answered by our Wyoming ``handle``.

2025.4.4 (``.venv-ha2025``, ``make ha2025-venv``: the newest release on Python 3.13.0)
is the first line of Home Assistant that the tests run with a Wyoming conversation
agent: 2024.3.3 (``.venv-ha``) has none, and its Wyoming flow aborts with
``no_services`` for a handle-only service. Here a real Home Assistant adds
``voiceagent serve``'s Wyoming services (real models) through its own config flow
over REST, as a user does in its UI, and sends text through Assist
(``/api/conversation/process``) to the conversation entity that the flow made:

- the flow makes one entry, titled by our first service (``voiceagent-asr``), with
  ``stt.voiceagent_asr``, ``tts.voiceagent_tts`` and ``conversation.voiceagent``
  (English only), which Assist lists among its agents;
- a timer is set by our local intents (our log says so; HA's own agent sets no timer
  without a satellite device), to ring in the house's room;
- a house command goes round: HA -> our handle -> our intents -> HA's services, and
  the light is on in HA;
- a free question is answered by our LLM.

What 2025.4.4 sends us for each ``/api/conversation/process``, on a new TCP
connection each time: ``{"type": "transcript", "version": "1.5.4", "data_length": N}``
then ``{"text": "..."}``. Nothing else: no language, no area or device, and no
conversation id (HA passes ``context={"conversation_id": ...}`` to wyoming 1.5.4's
``Transcript``, whose ``event()`` drops it), so a follow-up reaches us with no trace
of the turn before it. HA reads only the ``text`` of our ``handled``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.home_assistant import ROOT, HomeAssistant
from tests.support.speech import require_models
from tests.support.web import free_port, serving

pytestmark = pytest.mark.realmodel

HASS_2025 = ROOT / ".venv-ha2025" / "bin" / "hass"
AGENT = "conversation.voiceagent"
"""The entity of our handle: wyoming/conversation.py names it after the handle program."""
OFFICE = "light.office_light"


@dataclass(frozen=True)
class Serve:
    """``voiceagent serve`` with its Wyoming services on ``port``; its stderr in ``log``."""

    port: int
    log: Path

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"serve never logged {text!r}:\n{self.log.read_text()[-2000:]}"
            time.sleep(0.05)


@dataclass(frozen=True)
class Entry:
    """The Wyoming config entry that HA's flow made, and its entities."""

    flow: dict[str, Any]
    entry: dict[str, Any]
    entities: dict[str, dict[str, Any]]
    """entity_id -> its entity registry entry."""


def require_ha2025_venv() -> None:
    """Fail (not skip) when .venv-ha2025 is not there."""
    if not HASS_2025.exists():
        pytest.fail(f"{HASS_2025} is missing: run 'make ha2025-venv' first", pytrace=False)


def ask(ha: HomeAssistant, text: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    """Assist's answer to ``text`` from our agent: its speech and the whole reply."""
    reply = ha.api("POST", "/api/conversation/process", {"text": text, "agent_id": AGENT, **extra})
    return reply["response"]["speech"]["plain"]["speech"], reply


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    """Home Assistant 2025.4.4 with the default house (onboarded, token, areas)."""
    require_ha2025_venv()
    home = HomeAssistant(tmp_path_factory.mktemp("ha2025"), hass=HASS_2025).start()
    try:
        yield home
    finally:
        home.kill()


@pytest.fixture(scope="module")
def serve(ha: HomeAssistant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """``voiceagent serve`` (real models) with Wyoming on a free port, controlling ``ha``'s
    house; yielded once it has read the house."""
    require_models()
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    token = ha.write_token_file(tmp / "ha-token")
    with serving(
        tmp, b"Wyoming services at", wyoming={"uri": f"tcp://127.0.0.1:{port}"},
        homeassistant={"url": ha.url, "token_file": str(token)},
        # a room for a timer set through Assist to ring in (a satellite that is away:
        # the room runs, and its replies go nowhere until it comes)
        satellites=[{"name": "den", "wyoming": f"tcp://127.0.0.1:{free_port()}"}],
    ) as log:
        running = Serve(port, log)
        running.wait_for("Home Assistant: ")  # connected, house read
        yield running


@pytest.fixture(scope="module")
def entry(ha: HomeAssistant, serve: Serve) -> Entry:
    """Our services added by HA's Wyoming config flow, as a user adds them."""
    done, loaded = ha.add_wyoming(serve.port)
    entities = {
        e["entity_id"]: e for e in ha.entity_registry() if e["config_entry_id"] == loaded["entry_id"]
    }
    return Entry(done, loaded, entities)


def test_the_config_flow_adds_our_asr_tts_and_conversation_agent(ha: HomeAssistant, entry: Entry) -> None:
    assert entry.flow["title"] == "voiceagent-asr"  # HA titles an entry by its first service
    assert entry.flow["result"]["domain"] == "wyoming"
    assert {"stt.voiceagent_asr", "tts.voiceagent_tts", AGENT} <= entry.entities.keys(), entry.entities
    assert entry.entities[AGENT]["unique_id"] == f"{entry.entry['entry_id']}-conversation"
    assert all(e["platform"] == "wyoming" and e["disabled_by"] is None for e in entry.entities.values())
    agents = {a["id"]: a for a in ha.ws({"type": "conversation/agent/list"})["agents"]}
    assert agents[AGENT]["name"] == "voiceagent"
    assert agents[AGENT]["supported_languages"] == ["en"]


def test_a_timer_is_set_by_our_local_intents(ha: HomeAssistant, serve: Serve, entry: Entry) -> None:
    speech, reply = ask(ha, "set a timer for five minutes")
    assert "timer" in speech.lower() and "five minutes" in speech.lower(), speech
    assert reply["response"]["response_type"] == "action_done"
    assert reply["response"]["language"] == "en"
    serve.wait_for("5 minutes")  # our timers log it ("timer N: 5 minutes"): the answer is ours


def test_a_house_command_goes_from_assist_through_us_to_home_assistant(
    ha: HomeAssistant, serve: Serve, entry: Entry
) -> None:
    ha.reset()
    assert ha.state(OFFICE)["state"] == "off"
    speech, _ = ask(ha, "turn on the office light")
    assert speech.lower().startswith("turned on"), speech
    ha.wait_for_state(OFFICE, "on")
    speech, _ = ask(ha, "set the office light to 50 percent")
    assert speech, speech
    ha.wait_for_state(OFFICE, lambda s: s["attributes"].get("brightness") == 128)
    speech, _ = ask(ha, "turn off the office light")
    assert speech.lower().startswith("turned off"), speech
    ha.wait_for_state(OFFICE, "off")


def test_a_free_question_is_answered_by_our_llm(ha: HomeAssistant, entry: Entry) -> None:
    began = time.monotonic()
    speech, reply = ask(ha, "What is the capital of France?")
    assert len(speech.split()) >= 2, reply
    assert "error" not in reply["response"]["response_type"], reply
    assert reply["conversation_id"], reply  # HA makes one (it never reaches us)
    assert time.monotonic() - began < 20.0
