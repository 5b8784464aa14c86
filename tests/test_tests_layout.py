"""The tests themselves are easy to live in: every helper is in ``tests/support``,
no test module imports another one, and the ``voiceagent`` command is run by one
harness (``tests/support/cli.py``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth, ``from X import Y`` as X and X.Y)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_test_module_imports_another():
    for path in sorted(TESTS.rglob("*.py")):
        bad = {m for m in imported_modules(path)
               if re.match(r"(tests\.)?test_\w+$", m) or m.startswith("tests.test_")}
        assert not bad, f"{path.relative_to(TESTS)} imports {sorted(bad)}: move what it needs to tests/support"


def test_helpers_live_in_support():
    top = {p.name for p in TESTS.glob("*.py")}
    helpers = sorted(n for n in top if n != "conftest.py" and not n.startswith("test_"))
    assert not helpers, f"helper modules at the top of tests/: {helpers} (they belong in tests/support)"
    assert (TESTS / "support" / "__init__.py").exists()


def test_the_command_is_run_by_one_harness():
    harness = TESTS / "support" / "cli.py"
    spawn = re.compile(r"""["']-m["']\s*,\s*["']voiceagent["']""")
    for path in sorted(TESTS.rglob("*.py")):
        if path != harness:
            assert not spawn.search(path.read_text()), (
                f"{path.relative_to(TESTS)} runs voiceagent itself: use tests.support.cli"
            )
