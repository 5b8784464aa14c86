"""The environment is the locked one: every package pinned in requirements.lock
is installed at exactly that version, and the lock still fits pyproject.toml.

A fresh machine then tests what every other machine tests (``make test``
installs the lock with hashes); an edit to the dependencies that was not
followed by ``make lock`` fails here instead of drifting unnoticed.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.speech import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins(path) -> dict[str, str]:
    """name -> version of the pins in a uv/pip-compile lock that apply here."""
    found = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m and (m.group(3) is None or Marker(m.group(3)).evaluate()):
            found[canonicalize_name(m.group(1))] = m.group(2)
    return found


def test_every_locked_package_is_installed_at_its_pinned_version():
    locked = pins(ROOT / "requirements.lock") | pins(ROOT / "requirements-build.lock")
    assert len(locked) > 40
    wrong = {}
    for name, version in locked.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed differs from the lock (locked, installed): {wrong}; run 'make setup'"


def test_the_lock_fits_the_declared_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    locked = pins(ROOT / "requirements.lock")
    for spec in map(Requirement, declared):
        name = canonicalize_name(spec.name)
        assert name in locked, f"{spec} is not in requirements.lock: run 'make lock'"
        assert spec.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, outside {spec}: run 'make lock'"
        )
