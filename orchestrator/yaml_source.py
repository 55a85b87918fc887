"""YAML loading that remembers where every key and list item came from.

Validation errors are reported as ``file:line: dotted.key: message``; this module supplies the
line. It composes the document once with PyYAML's safe loader, builds the Python data from the
same node tree, and indexes each mapping key's and sequence item's line by its key path.

Two things PyYAML allows are refused here, before any Python data is built:

- a key given twice in one mapping (PyYAML keeps the last silently): the error names both lines;
- aliases that expand the document beyond ``MAX_EXPANDED_NODES`` nodes (the "billion laughs"
  document: a few lines that expand to 10^9 items). Anchors and aliases themselves are fine; the
  expanded size is counted on the node graph, each shared node once, so the count is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Far above any real spec (a 1000-trial list design is ~10^4 nodes), far below what hurts.
MAX_EXPANDED_NODES = 200_000


class YamlSyntaxError(ValueError):
    """The file is not valid YAML (or not a mapping at the top)."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


@dataclass
class YamlSource:
    """Parsed YAML data plus the 1-based line of each key path."""

    path: Path
    data: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    # Command-line overrides set into ``data`` (orchestrator.overrides): key path -> "key=value".
    overrides: dict[tuple[str | int, ...], str] = field(default_factory=dict)

    def override_for(self, key_path: tuple[str | int, ...]) -> str | None:
        """The override that set ``key_path``, a value under it or the section it is in."""
        for path, text in self.overrides.items():
            shorter = min(len(path), len(key_path))
            if shorter and tuple(path[:shorter]) == tuple(key_path[:shorter]):
                return text
        return None

    def line_of(self, key_path: tuple[str | int, ...]) -> int | None:
        """Line of the deepest prefix of ``key_path`` present in the file (None if none)."""
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(tuple(key_path[:end]))
            if line is not None:
                return line
        return None


def _index_lines(node: yaml.Node, prefix: tuple[str | int, ...], lines: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*prefix, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*prefix, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*prefix, index)] = item.start_mark.line + 1
            _index_lines(item, (*prefix, index), lines)


def _check_duplicate_keys(node: yaml.Node) -> None:
    """A key written twice in one mapping is an error naming both lines (PyYAML keeps the last)."""
    seen_nodes: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen_nodes:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first_line: dict[object, int] = {}
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = (key_node.tag, key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in first_line:
                        raise YamlSyntaxError(f"key '{key_node.value}' is given twice (lines {first_line[key]} and {line}); keep one", line)
                    first_line[key] = line
                stack.extend((key_node, value_node))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _check_expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> None:
    """Refuse documents whose aliases expand past ``limit`` nodes, and recursive aliases.

    Sizes are memoised per node, so a node shared through aliases is measured once: the work is
    linear in the document's text even when its expansion is exponential."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise YamlSyntaxError("invalid YAML: an alias refers to the node that contains it (recursive alias)", node.start_mark.line + 1)
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise YamlSyntaxError(
                    f"YAML aliases expand this document past {limit:,} nodes (from line {node.start_mark.line + 1}); "
                    "a study spec is far smaller: use fewer nested aliases",
                    node.start_mark.line + 1,
                )
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(root)


def load_yaml(path: str | Path) -> YamlSource:
    """Read a YAML mapping from ``path`` with its line index."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlSyntaxError(f"no such file: {path}", None) from None
    except (OSError, UnicodeDecodeError) as err:
        raise YamlSyntaxError(f"cannot read {path}: {err}", None) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expanded_size(node)
            _check_duplicate_keys(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(f"invalid YAML: {err.problem or err}", line) from None
    except yaml.YAMLError as err:
        raise YamlSyntaxError(f"invalid YAML: {err}", None) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise YamlSyntaxError("the spec must be a YAML mapping (key: value) at the top level", 1)
    lines: dict[tuple[str | int, ...], int] = {}
    _index_lines(node, (), lines)
    return YamlSource(path, data, lines)
