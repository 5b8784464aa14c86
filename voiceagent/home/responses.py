"""Home Assistant's own response templates, rendered the way Home Assistant renders
them: Jinja2 (sandboxed: the templates are data from a package), with ``slots``,
``state`` (one entity), ``query`` (matched and unmatched entities) and
``state_attr()``.

The words spoken are Home Assistant's ("Turned on the lights", "Timer set for
five minutes"), so a user who moves between Assist and voiceagent hears the
same answers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

logger = logging.getLogger(__name__)

_ENV = SandboxedEnvironment(autoescape=False)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class StateView:
    """An entity's state as the templates see it (Home Assistant's ``TemplateState``)."""

    entity_id: str
    name: str
    state: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]

    @property
    def state_with_unit(self) -> str:
        unit = self.attributes.get("unit_of_measurement")
        return f"{self.state} {unit}" if unit else self.state

    @classmethod
    def of(cls, entity_id: str, name: str, state: dict[str, Any] | None) -> StateView:
        state = state or {}
        return cls(entity_id, name, str(state.get("state", "unknown")), dict(state.get("attributes") or {}))

    def __eq__(self, other: object) -> bool:  # templates compare ``state == "not_home"``
        if isinstance(other, str):
            return self.state == other
        return isinstance(other, StateView) and (self.entity_id, self.state) == (other.entity_id, other.state)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Query:
    matched: list[StateView] = field(default_factory=list)
    unmatched: list[StateView] = field(default_factory=list)


def render(
    template: str,
    slots: dict[str, Any] | None = None,
    state: StateView | None = None,
    query: Query | None = None,
    states: dict[str, StateView] | None = None,
    **extra: Any,
) -> str:
    """The spoken text of ``template``, white space collapsed; "" if it fails."""
    lookup = states or {}

    def state_attr(entity_id: str, name: str) -> Any:
        view = lookup.get(entity_id) or (state if state is not None and state.entity_id == entity_id else None)
        return None if view is None else view.attributes.get(name)

    try:
        text = _ENV.from_string(template).render(
            slots=slots or {}, state=state, query=query or Query(), state_attr=state_attr, **extra
        )
    except TemplateError as err:
        logger.error("rendering a response template failed: %s", err)
        return ""
    return _SPACES.sub(" ", text).strip()
