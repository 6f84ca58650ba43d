"""Pointer files (`<path>.mlv`): which bytes a tracked path should hold.

A pointer is read strictly: any field of the wrong type, an unknown hash, or a path
that could leave the repository is refused before anything on disk changes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from mlv import fsio, paths, yamlio
from mlv.errors import PointerError
from mlv.hashing import HEX_RE

SUFFIX = ".mlv"
HEADER = "# mlv pointer: `mlv checkout` restores this path from the cache\n"
_OUT_KEYS = {"path", "xxh128", "size", "nfiles", "exec"}
_SOURCE_KEYS = ("url", "path", "rev", "commit")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}\Z")
# git's transports that run a command or use a file descriptor: never from a pointer
_COMMAND_URL = re.compile(r"(?i)(ext|fd)::")
URL_LIMIT = 4096


@dataclass(frozen=True)
class Out:
    path: str  # relative to the pointer file, POSIX separators
    oid: str
    size: int
    nfiles: int | None = None
    exec: bool = False

    @property
    def is_dir(self) -> bool:
        return self.oid.endswith(".dir")


@dataclass(frozen=True)
class ImportSource:
    """Where an imported path came from (`mlv import`): a repository, a path in it, the
    revision asked for (None: its HEAD) and the commit that revision named then."""

    url: str  # as given to `mlv import` (a local path is made absolute)
    path: str  # POSIX, relative to that repository's root
    rev: str | None
    commit: str  # 40 hex


@dataclass(frozen=True)
class Pointer:
    file: str  # absolute path of the .mlv file
    outs: tuple[Out, ...]
    source: ImportSource | None = None  # an import's origin; then exactly one out

    def out_path(self, out: Out) -> str:
        """Absolute workspace path of an out."""
        return os.path.normpath(os.path.join(os.path.dirname(self.file), out.path))


def pointer_file_for(path: str) -> str:
    return path.rstrip(os.sep) + SUFFIX


def dumps(outs: list[Out], source: ImportSource | None = None) -> str:
    items = []
    for out in outs:
        item: dict[str, Any] = {"path": out.path, "xxh128": out.oid, "size": out.size}
        if out.nfiles is not None:
            item["nfiles"] = out.nfiles
        if out.exec:
            item["exec"] = True
        items.append(item)
    data: dict[str, Any] = {"outs": items}
    if source is not None:
        origin: dict[str, Any] = {"url": source.url, "path": source.path}
        if source.rev is not None:
            origin["rev"] = source.rev
        origin["commit"] = source.commit
        data["source"] = origin
    return HEADER + yamlio.dump(data)


def write(pointer: Pointer) -> None:
    fsio.atomic_write(pointer.file, dumps(list(pointer.outs), pointer.source).encode())


def load(file: str, root: str, display: str | None = None,
         cache_root: str | None = None) -> Pointer:
    """Read and validate a pointer file. `root` is the repository's real path; a
    workspace symlink may also point into `cache_root` (the `symlink` cache type)."""
    name = display or os.path.relpath(file, root)
    try:
        text = fsio.read_text(file, fsio.POINTER_LIMIT, name, PointerError)
    except OSError as exc:
        raise PointerError(f"{name}: cannot read ({exc.strerror})") from None
    return parse(text, file, root, name, cache_root)


def parse(text: str, file: str, root: str, name: str, cache_root: str | None = None,
          on_disk: bool = True) -> Pointer:
    """A pointer from its text. `on_disk` False (a pointer read from a git revision):
    its paths are held to the path rule but not checked against the workspace."""
    data, lines = _fast_parse(text) or yamlio.load(text, name, PointerError)
    return _validate(file, name, (root, cache_root or root, on_disk), data, lines)


# The exact text `dumps` writes for a plain path: read without a YAML parser (fast
# start-up). Anything else -- hand edits, quoted names -- goes through PyYAML.
_CANONICAL = re.compile(
    r"((?:#[^\n]*\n)*)outs:\n- path: ([A-Za-z_][A-Za-z0-9_.-]*)\n"
    r"  xxh128: ([0-9a-f]{32}(?:\.dir)?)\n  size: (0|[1-9][0-9]{0,18})\n"
    r"(?:  nfiles: (0|[1-9][0-9]{0,18})\n)?(  exec: true\n)?\Z")
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null"}  # not plain strings in YAML


def _fast_parse(text: str) -> tuple[dict[str, Any], yamlio.Lines] | None:
    match = _CANONICAL.match(text)
    if match is None or match.group(2).lower() in _YAML_WORDS:
        return None
    header, path, oid, size, nfiles, exec_bit = match.groups()
    first = header.count("\n") + 1  # line of `outs:`
    item: dict[str, Any] = {"path": path, "xxh128": oid, "size": int(size)}
    at = ("outs", 0)
    lines: yamlio.Lines = {(): first, ("outs",): first, at: first + 1, at + ("path",): first + 1,
                           at + ("xxh128",): first + 2, at + ("size",): first + 3}
    if nfiles is not None:
        item["nfiles"] = int(nfiles)
        lines[at + ("nfiles",)] = first + 4
    if exec_bit:
        item["exec"] = True
        lines[at + ("exec",)] = first + 4 + (nfiles is not None)
    return {"outs": [item]}, lines


def _fail(name: str, lines: yamlio.Lines, where: tuple[Any, ...], what: str) -> PointerError:
    line = yamlio.line_of(lines, where)
    loc = f"{name}:{line}" if line else name
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
    return PointerError(f"{loc}: {field + ': ' if field else ''}{what}",
                        hint=f"fix {name} (or restore it with `git checkout -- {name}`)")


def _validate(file: str, name: str, roots: tuple[str, str, bool], data: Any,
              lines: yamlio.Lines) -> Pointer:
    if not isinstance(data, dict) or "outs" not in data:
        raise _fail(name, lines, (), "not an mlv pointer (expected a mapping with `outs:`)")
    unknown = [key for key in data if key not in ("outs", "source")]
    if unknown:
        raise _fail(name, lines, (str(unknown[0]),), "unknown field")
    items = data["outs"]
    if not isinstance(items, list) or not items:
        raise _fail(name, lines, ("outs",), "must be a non-empty list")
    outs: list[Out] = []
    for i, item in enumerate(items):
        at = ("outs", i)
        if not isinstance(item, dict):
            raise _fail(name, lines, at, "must be a mapping with path, xxh128 and size")
        for key in item:
            if key not in _OUT_KEYS:
                raise _fail(name, lines, at + (str(key),), "unknown field")
        for key in ("path", "xxh128", "size"):
            if key not in item:
                raise _fail(name, lines, at, f"missing field `{key}`")
        path, oid, size = item["path"], item["xxh128"], item["size"]
        if not isinstance(path, str) or not path:
            raise _fail(name, lines, at + ("path",), "must be a non-empty string")
        if not isinstance(oid, str):
            raise _fail(name, lines, at + ("xxh128",), "must be a string of 32 hex digits")
        digest = oid.removesuffix(".dir")
        if not HEX_RE.match(digest):
            raise _fail(name, lines, at + ("xxh128",),
                        f"expected 32 lower-case hex digits (xxh3-128), got {oid!r} "
                        f"({len(digest)} characters)")
        if not is_count(size):
            raise _fail(name, lines, at + ("size",), "must be a whole number of bytes")
        nfiles = item.get("nfiles")
        if nfiles is not None and not is_count(nfiles):
            raise _fail(name, lines, at + ("nfiles",), "must be a whole number")
        execbit = item.get("exec", False)
        if not isinstance(execbit, bool):
            raise _fail(name, lines, at + ("exec",), "must be true or false")
        found = _path_problem(file, roots, path) or _overlap(path, [o.path for o in outs])
        if found:
            raise _fail(name, lines, at + ("path",), found)
        outs.append(Out(path, oid, size, nfiles, execbit))
    source = None
    if "source" in data:
        if len(outs) != 1:
            raise _fail(name, lines, ("outs",), "an import (with `source:`) has exactly one "
                                                "entry")
        source = _source(name, lines, data["source"])
    return Pointer(file, tuple(outs), source)


def _source(name: str, lines: yamlio.Lines, data: Any) -> ImportSource:
    """An import's `source:` mapping. From a clone, so nothing in it may become an
    option or a command: the url and rev never start with `-`, the url names no
    command-running transport, the path obeys the path rule, the commit is 40 hex."""
    at = ("source",)
    if not isinstance(data, dict):
        raise _fail(name, lines, at, "must be a mapping with url, path and commit")
    for key in data:
        if key not in _SOURCE_KEYS:
            raise _fail(name, lines, at + (str(key),), "unknown field")
    for key in ("url", "path", "commit"):
        if key not in data:
            raise _fail(name, lines, at, f"missing field `{key}`")
    url, path, rev, commit = (data.get(key) for key in _SOURCE_KEYS)
    for key, value in (("url", url), ("path", path), ("rev", rev)):
        if key == "rev" and value is None:
            continue
        if not isinstance(value, str) or not value or len(value) > URL_LIMIT:
            raise _fail(name, lines, at + (key,), "must be a non-empty string")
        if value.startswith("-") or paths.has_control_character(value):
            raise _fail(name, lines, at + (key,), "must not start with `-` or hold a "
                                                  "control character")
    assert isinstance(url, str) and isinstance(path, str)
    if _COMMAND_URL.match(url):
        raise _fail(name, lines, at + ("url",), "a URL that runs a command (ext::, fd::) "
                                                "is not allowed")
    found = paths.problem(path)
    if found:
        raise _fail(name, lines, at + ("path",), found)
    if not isinstance(commit, str) or not _COMMIT_RE.match(commit):
        raise _fail(name, lines, at + ("commit",), "expected a commit id of 40 lower-case "
                                                   "hex digits")
    return ImportSource(url, path, rev, commit)


def is_count(value: Any) -> TypeGuard[int]:
    """A whole number >= 0 (not a bool): sizes and file counts in committed files."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _path_problem(file: str, roots: tuple[str, str, bool], path: str) -> str | None:
    """Why an out's path (relative to the pointer's folder) is unsafe, by the one rule
    (checked against the workspace too when the pointer was read from it)."""
    found = paths.problem(path)
    if found:
        return found
    root, cache_root, on_disk = roots
    folder = os.path.relpath(os.path.dirname(file), root).replace(os.sep, "/")
    rel = path if folder == "." else f"{folder}/{path}"
    return paths.own_file(rel) or (
        paths.problem_on_disk(root, rel, allow_link_into=cache_root) if on_disk else None)


def _overlap(path: str, earlier: list[str]) -> str | None:
    for other in earlier:
        if other == path:
            return f"path {path!r} is listed twice"
        if path.startswith(other + "/") or other.startswith(path + "/"):
            return f"paths {other!r} and {path!r} overlap; a pointer tracks separate paths"
    return None
