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


# Deeper than this is no pipeline, pointer or params file; mlv's own code walks the data
# recursively, so a limit far below Python's recursion limit keeps it safe.
MAX_DEPTH = 100


def load(text: str, filename: str, error: type[MlvError] = MlvError) -> tuple[Any, Lines]:
    """Parse YAML; return the data and a map from key path to 1-based line number.

    The files mlv reads come from clones, so aliases (`&a` … `*a`) are refused before
    anything is built: the work stays linear in the file's size (no billion laughs), and
    a recursive alias cannot loop. Nesting deeper than MAX_DEPTH is refused too.
    """
    yaml, loader_class, _ = _yaml()
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            lines = _walk(node, filename, error) if node is not None else {}
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}: invalid YAML: {problem}",
                    hint=f"fix the syntax of {filename}") from None
    except (ValueError, OverflowError) as exc:  # a value YAML parses but Python cannot
        # build: an integer of more than 4300 digits, a date like 2001-02-31
        raise error(f"{filename}: invalid YAML value: {str(exc).splitlines()[0]}",
                    hint=f"fix {filename}") from None
    except RecursionError:  # only without libyaml: the pure-Python composer recurses
        raise error(f"{filename}: YAML nested too deeply",
                    hint=f"fix {filename}: at most {MAX_DEPTH} levels") from None
    return data, lines


def check_depth(data: Any, filename: str, error: type[MlvError] = MlvError) -> None:
    """Refuse data (parsed JSON or TOML) nested deeper than MAX_DEPTH, the limit YAML
    has: mlv's own code walks params and metrics recursively. Iterative, so any depth
    is checked safely."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise too_deep(filename, error)
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


def too_deep(filename: str, error: type[MlvError] = MlvError) -> MlvError:
    return error(f"{filename}: nested deeper than {MAX_DEPTH} levels",
                 hint=f"fix {filename}: at most {MAX_DEPTH} levels")


def _walk(root: Any, filename: str, error: type[MlvError]) -> Lines:
    """Line numbers of every key path, visiting each node once (in document order, with
    an explicit stack). A node reached twice is an alias: refused, naming its line."""
    import yaml

    lines: Lines = {}
    seen: set[int] = set()
    stack: list[tuple[Any, tuple[Any, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            line = line_of(lines, path) or node.start_mark.line + 1
            raise error(f"{filename}:{line}: YAML aliases (&/*) are not allowed in {filename}",
                        hint="write the value out in full where the alias is")
        seen.add(id(node))
        if len(path) > MAX_DEPTH:
            raise error(f"{filename}:{node.start_mark.line + 1}: YAML nested deeper than "
                        f"{MAX_DEPTH} levels", hint=f"fix {filename}")
        lines.setdefault(path, node.start_mark.line + 1)
        children: list[tuple[Any, tuple[Any, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                scalar = isinstance(key, yaml.ScalarNode)  # else a list or mapping as a key
                at = path + (key.value if scalar else None,)
                if scalar:
                    lines[at] = key.start_mark.line + 1
                children += [(key, at), (value, at)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, path + (i,)) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))
    return lines


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
