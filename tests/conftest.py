"""Shared pytest setup.

Every helper lives in ``tests/support``; the test modules import it from there and
never from each other (tests/test_tests_layout.py checks). Its fixtures that more
than one module uses are registered here, for every test module, so that no
module imports a fixture by name.
"""

import pytest

# The helpers hold assertions used by several test modules (Recorder.wait_for,
# one_line_error, ...): registered before any of them is imported, so pytest
# rewrites their asserts.
pytest.register_assert_rewrite("tests.support")

pytest_plugins = (
    "tests.support.broker",  # broker, recorder
    "tests.support.home_assistant",  # home_assistant, home_assistant_factory
    "tests.support.llm_server",  # server
)
