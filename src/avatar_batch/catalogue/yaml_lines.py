"""A YAML reader that remembers where each value came from.

It parses with PyYAML's SafeLoader rules (plain data only: no Python objects,
no tags that run code) and returns the plain data plus a map from a value's
path, e.g. `("entries", 3, "answer")`, to its 1-based line, so every problem
found later can point at a line. It also reports keys written twice in one
mapping, which PyYAML would silently collapse to the last value.

It knows nothing about what a catalogue contains.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

Path_ = tuple[Any, ...]  # a value's position: mapping keys and list indexes

# Walking every path of a document whose aliases nest (`b: [*a, *a]`, ...)
# costs exponential time, and an alias cycle never ends; a catalogue of a few
# hundred entries has a few thousand values nested about five deep, so these
# bounds are generous.
MAX_VALUES = 100_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class DuplicateKey:
    path: Path_  # path of the repeated key
    first_line: int
    second_line: int


@dataclass(frozen=True)
class ParsedYaml:
    data: Any
    lines: Mapping[Path_, int]
    duplicates: tuple[DuplicateKey, ...]


class YamlShapeError(ValueError):
    """The document cannot be walked: an alias cycle, nesting deeper than
    MAX_DEPTH or more than MAX_VALUES values once aliases are expanded."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that notes, per constructed container, the line of each key or item.

    Containers are remembered by `id()`; they stay alive inside the result, so
    the ids stay unique until `parse_yaml` has walked them.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.key_lines: dict[int, dict[Any, int]] = {}
        self.item_lines: dict[int, list[int]] = {}
        self.repeated: dict[int, list[tuple[Any, int, int]]] = {}

    def construct_line_map(self, node: yaml.MappingNode) -> Iterator[dict]:
        data: dict = {}
        yield data
        data.update(self.construct_mapping(node))  # flattens `<<` merges into node.value
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in lines:
                self.repeated.setdefault(id(data), []).append((key, lines[key], line))
            lines[key] = line
        self.key_lines[id(data)] = lines

    def construct_line_seq(self, node: yaml.SequenceNode) -> Iterator[list]:
        data: list = []
        yield data
        data.extend(self.construct_sequence(node))
        self.item_lines[id(data)] = [item.start_mark.line + 1 for item in node.value]


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_line_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_line_seq)


def parse_yaml(text: str) -> ParsedYaml:
    """Parse one YAML document. Raises `yaml.YAMLError` (with a mark) on bad
    syntax and `YamlShapeError` for cyclic, too deep or too large documents."""
    loader = _LineLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    duplicates: list[DuplicateKey] = []
    _Walk(loader, lines, duplicates).visit(data, ())
    return ParsedYaml(data, lines, tuple(duplicates))


class _Walk:
    """Depth-first visit of every path, filling `lines` and `duplicates`."""

    def __init__(self, loader: _LineLoader, lines: dict[Path_, int], duplicates: list[DuplicateKey]):
        self.loader = loader
        self.lines = lines
        self.duplicates = duplicates
        self.count = 0
        self.open_ids: set[int] = set()  # containers on the current path: a repeat is a cycle

    def visit(self, value: Any, path: Path_) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            raise YamlShapeError(f"the document expands to more than {MAX_VALUES} values through aliases")
        if len(path) > MAX_DEPTH:
            raise YamlShapeError(f"the document nests deeper than {MAX_DEPTH} levels")
        if not isinstance(value, (dict, list)):
            return
        if id(value) in self.open_ids:
            raise YamlShapeError("an alias refers to a value that contains it (a cycle)")
        self.open_ids.add(id(value))
        if isinstance(value, dict):
            self._visit_map(value, path)
        else:
            self._visit_seq(value, path)
        self.open_ids.discard(id(value))

    def _visit_map(self, value: dict, path: Path_) -> None:
        loader = self.loader
        key_lines = loader.key_lines.get(id(value), {})
        for key, first, second in loader.repeated.get(id(value), []):
            self.duplicates.append(DuplicateKey(path + (key,), first, second))
        for key, item in value.items():
            if key in key_lines:
                self.lines.setdefault(path + (key,), key_lines[key])
            self.visit(item, path + (key,))

    def _visit_seq(self, value: list, path: Path_) -> None:
        item_lines = self.loader.item_lines.get(id(value), [])
        for index, item in enumerate(value):
            if index < len(item_lines):
                self.lines.setdefault(path + (index,), item_lines[index])
            self.visit(item, path + (index,))
