"""Shared pytest setup."""

import pytest

# tests.broker holds assertions used by several test modules (Recorder.wait_for);
# registered before any of them imports it, so pytest rewrites its asserts.
pytest.register_assert_rewrite("tests.broker")
