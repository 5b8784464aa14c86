"""YAML read with bounds on nesting and on what aliases expand to.

A config is a few levels deep and a few hundred values, but a file handed to
``voiceagent`` may be anything. PyYAML composes nested collections recursively,
so ``[[[[...]]]]`` 2,000 deep ran to Python's recursion limit (slowly, and at a
depth that depends on the caller's stack: once fast, once over two seconds in a
fuzz run), and aliases (``&a [*a, *a]`` ten times over) expand into millions of
values that validation then walks. Both are refused early here, before any of it
is built, so that loading a hostile or broken file stays fast.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64
"""Collections inside collections; the shipped config is 4 deep."""

MAX_VALUES = 100_000
"""Scalars and collections after every alias is expanded; the shipped config has ~300."""


_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"


class TooLarge(ValueError):
    """The document nests too deeply or expands to too many values."""


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner reads up to 1,024 characters ahead for a possible key, at a
        # cost that grows with every open bracket: refusing here, while scanning,
        # keeps ``[[[[...`` from taking a third of a second before the composer
        # below ever sees it.
        if self.flow_level >= MAX_DEPTH:
            raise TooLarge(_TOO_DEEP)
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        # Checked before descending, so the recursion never gets deep.
        if self._depth >= MAX_DEPTH:
            raise TooLarge(_TOO_DEEP)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node


def _check_expanded_size(root: yaml.Node) -> None:
    """An alias is the same node object as its anchor, so the document is a DAG:
    its expanded size is counted once per node, memoized by identity."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        sizes[id(node)] = total
        if total > MAX_VALUES:
            raise TooLarge(f"expands to more than {MAX_VALUES:,} values (aliases)")
        return total

    size(root)  # depth is bounded by compose_node, so this recursion is too


def load(text: str) -> Any:
    """``yaml.safe_load`` with the bounds above; raises TooLarge or yaml.YAMLError."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
