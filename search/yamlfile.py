"""Reading the YAML files users write (search specs, recipes): every way a file can be wrong is one line
naming the file and what was expected, never a parser's multi-line report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice is an error (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (list, dict, set)):  # unhashable: no mapping can hold it
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, got a {type(key).__name__}", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Deeper flow nesting ([[[...]]] or {a: {a: ...}}) than any spec needs: PyYAML's scanner takes quadratic time
# over it (20 s for 3,000 levels on a loaded 2-core machine) before its composer runs out of recursion.
_MAX_FLOW_DEPTH = 100


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } outside quotes and comments (a cheap scan before the parser)."""
    depth = deepest = 0
    quote = ""
    comment = False
    for char in text:
        if comment:
            comment = char != "\n"
        elif quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def _too_deep(source: str) -> str:
    return f"{source}: YAML nested too deeply to read (hundreds of levels); expected a mapping of fields, a few levels deep"


def parse_yaml(text: str, source: str, error: type[Exception]) -> Any:
    """The YAML document in `text`; a syntax error or a repeated key raises `error` in one line."""
    if _flow_depth(text) > _MAX_FLOW_DEPTH:
        raise error(_too_deep(source))
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # PyYAML composes nested nodes recursively: thousands of lines of traceback
        raise error(_too_deep(source)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise error(f"{source}: not valid YAML{where}: {problem}") from None


def read_yaml_file(path: str | Path, *, what: str, error: type[Exception]) -> Any:
    """The YAML document in the file `path`, which must exist, be a file, hold something and be UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} {path} is a folder; expected a YAML file")
    if not path.is_file():
        problem = "is not a regular file (a device, pipe or socket)" if path.exists() else "does not exist"
        raise error(f"{what} {path} {problem}; expected a YAML file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}); expected a YAML file") from None
    if not text.strip():
        raise error(f"{what} {path} is empty; expected a YAML mapping of fields")
    return parse_yaml(text, str(path), error)
