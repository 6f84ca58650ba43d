"""YAML reading that remembers line numbers, and deterministic YAML writing."""

from __future__ import annotations

from typing import Any

from mlv.errors import MlvError

Lines = dict[tuple[Any, ...], int]


def _yaml() -> tuple[Any, Any, Any]:
    """PyYAML with its C loader and dumper, imported only when a file needs parsing."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml, loader, dumper


def load(text: str, filename: str, error: type[MlvError] = MlvError) -> tuple[Any, Lines]:
    """Parse YAML; return the data and a map from key path to 1-based line number."""
    yaml, loader_class, _ = _yaml()
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}: invalid YAML: {problem}",
                    hint=f"fix the syntax of {filename}") from None
    lines: Lines = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node: Any, path: tuple[Any, ...], lines: Lines) -> None:
    import yaml

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _walk(value, path + (key.value,), lines)
            lines[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def line_of(lines: Lines, path: tuple[Any, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def dump(data: Any) -> str:
    """Deterministic YAML: keys in the order given, block style, trailing newline."""
    yaml, _, dumper = _yaml()
    return str(yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=1000))
