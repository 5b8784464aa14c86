"""The documentation stays true to the code and to itself.

- ``docs/configuration.md`` is what ``voiceagent.config_reference`` renders from
  the config schema: a key added, renamed or redescribed in ``voiceagent/config/``
  fails here until the page is regenerated.
- Every relative link in ``README.md`` and ``docs/*.md`` points at a file that
  exists, and a ``#fragment`` into a Markdown file at one of its headings, so
  moving a section does not leave dead links behind.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from voiceagent import config_reference

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "configuration.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_configuration_reference_is_generated_from_the_schema() -> None:
    expected = config_reference.render()
    actual = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(), expected.splitlines(), "docs/configuration.md", "render()", lineterm="", n=1
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            "docs/configuration.md differs from the config schema; regenerate it with\n"
            f"    {config_reference.REGENERATE}\n{shown}",
            pytrace=False,
        )


def test_reference_notes_only_fill_gaps_in_the_schema() -> None:
    """A note for a key the schema no longer has, or that now describes itself, is stale."""
    described = config_reference.schema_keys()
    unknown = sorted(key for key in config_reference.ADDENDA if key not in described)
    assert not unknown, f"ADDENDA in voiceagent/config_reference.py for keys the schema lacks: {unknown}"
    for notes in (config_reference.NOTES, config_reference.SECTION_NOTES):
        unknown = sorted(key for key in notes if key not in described)
        assert not unknown, f"notes in voiceagent/config_reference.py for keys the schema lacks: {unknown}"
        redundant = sorted(key for key in notes if described[key])
        assert not redundant, (
            "the schema now describes these keys itself; drop their notes from "
            f"voiceagent/config_reference.py: {redundant}"
        )


def test_reference_shows_every_key() -> None:
    text = config_reference.render()
    missing = [key for key in config_reference.schema_keys() if f"`{key}`" not in text and f"# {key}\n" not in text]
    assert not missing, f"keys missing from the reference: {missing}"
    assert "base_dir" not in text  # set by the loader, not a setting


_FENCE = re.compile(r"^ *(```|~~~).*?^ *\1 *$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_HTML = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _without_code(text: str) -> str:
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _without_code(text)
    return [m.group(1) for pattern in (_INLINE, _REFERENCE_DEF, _HTML) for m in pattern.finditer(prose)]


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_FENCE.sub("", text)):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link: its text
        title = re.sub(r"[`*]", "", title).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text))
    return found


def test_link_helpers() -> None:
    text = (
        "# The `voiceagent` manual\n## Echo & barge-in\n## Echo & barge-in\n"
        "```\n# not a heading [x](nowhere.md)\n```\n"
        "See [a](docs/a.md#b), ![p](docs/p.png \"title\"), `[c](code.md)` and "
        "[`satellites[].name`](configuration.md#satellites).\n[ref]: ../config.yaml\n"
    )
    assert links(text) == ["docs/a.md#b", "docs/p.png", "configuration.md#satellites", "../config.yaml"]
    assert anchors(text) == {"the-voiceagent-manual", "echo--barge-in", "echo--barge-in-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for link in links(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", link):  # https:, mailto:
            continue
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.is_relative_to(ROOT):
            broken.append(f"{link} (outside the repository)")
        elif not target.exists():
            broken.append(f"{link} (no such file)")
        elif fragment and target.suffix == ".md":
            if fragment not in anchors(target.read_text(encoding="utf-8")):
                broken.append(f"{link} (no such heading in {target.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"
