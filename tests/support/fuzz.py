"""What the property-based tests (tests/test_fuzz_*.py) share: hypothesis
settings that give the same cases on every run, a count of the cases run per
module (printed on the terminal, for the issue's "report how many cases ran"),
and the check that an error is one line."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings

from voiceagent.errors import VoiceAgentError


def fuzz_settings(max_examples: int) -> settings:
    """Reproducible in CI (derandomized), with no per-case deadline: a case that
    hangs is caught by each test's own time limit instead."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def report(request: pytest.FixtureRequest, cases: Counter[str]) -> None:
    """One line per module on the terminal (shown without -s)."""
    line = f"fuzz: {request.module.__name__}: {sum(cases.values())} cases ({dict(cases)})"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or terminal is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line(line)


def case_reporter(cases: Counter[str]) -> Callable[..., Any]:
    """A module's autouse fixture that reports ``cases`` when the module is done."""

    @pytest.fixture(scope="module", autouse=True)
    def _report_cases(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
        yield
        report(request, cases)

    return _report_cases


def assert_one_line(err: VoiceAgentError) -> str:
    text = str(err)
    assert text and "\n" not in text and "\r" not in text, repr(text)
    assert len(text) < 500, f"an error line of {len(text)} characters"
    return text
