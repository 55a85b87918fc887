"""YAML loading that remembers where every key and list item came from.

Validation errors are reported as ``file:line: dotted.key: message``; this module supplies the
line. It composes the document once with PyYAML's safe loader, builds the Python data from the
same node tree, and indexes each mapping key's and sequence item's line by its key path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


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
