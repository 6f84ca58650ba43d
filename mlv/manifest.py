"""Directory manifests: canonical JSON listing every file of a tracked directory."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from mlv import paths
from mlv.errors import PointerError
from mlv.hashing import HEX_RE

# The largest manifest mlv reads (it is parsed whole, from the cache or a remote): about
# 2.5 million files at ~100 bytes each, far above any folder mlv is meant to track.
MAX_BYTES = 256 << 20


class Entry(NamedTuple):
    path: str  # POSIX, relative to the tracked directory
    oid: str
    size: int
    exec: bool = False


def dumps(entries: list[Entry]) -> bytes:
    """The canonical bytes: sorted by path, fixed key order, no spaces, UTF-8."""
    items: list[dict[str, Any]] = []
    for e in sorted(entries, key=lambda e: e.path):
        item: dict[str, Any] = {"path": e.path, "xxh128": e.oid, "size": e.size}
        if e.exec:
            item["exec"] = True
        items.append(item)
    return json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes, oid: str) -> list[Entry]:
    """The entries of manifest `oid`, held to the format (docs/formats.md): a JSON list
    of objects with exactly the keys path, xxh128, size and optional exec; each path safe
    (`mlv.paths.problem`), listed once, and not both a file and a folder; file ids; sizes
    that are non-negative ints. A manifest may come from someone else's remote: this
    check keeps what checkout writes inside the tracked folder. Read it with at most
    MAX_BYTES + 1 bytes: more is refused."""
    if len(data) > MAX_BYTES:
        raise PointerError(f"directory manifest {oid} is larger than {MAX_BYTES >> 20} MiB, "
                           "the most mlv reads for one", hint=_HINT)
    try:
        items = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _damaged(oid, f"it is not valid JSON ({str(exc)[:100]})") from None
    if type(items) is not list:
        raise _damaged(oid, "it is not a JSON list")
    entries: list[Entry] = []
    names: list[str] = []
    match = HEX_RE.match
    # Entry(...) without NamedTuple's Python-level __new__: about 10 % less time for a
    # folder of 20,000 files
    make = tuple.__new__
    for item in items:
        try:
            path, xxh, size = item["path"], item["xxh128"], item["size"]
        except (KeyError, TypeError):
            raise _bad_entry(oid, len(entries), item) from None
        executable = False
        if len(item) != 3:
            executable = item.get("exec")
            if len(item) != 4 or type(executable) is not bool:
                raise _bad_entry(oid, len(entries), item)
        if (type(path) is not str or type(xxh) is not str or type(size) is not int
                or not match(xxh) or size < 0):
            raise _bad_entry(oid, len(entries), item)
        entries.append(make(Entry, (path, xxh, size, executable)))
        names.append(path)
    _check_paths(oid, names)
    return entries


def _bad_entry(oid: str, n: int, item: Any) -> PointerError:
    """The error for entry `n` (counted from 0), saying what is wrong with it."""
    if type(item) is not dict:
        return _refused(oid, n, item, "it is not a JSON object")
    shown = item.get("path")
    unknown = [k for k in item if k not in _KEYS]
    if unknown:
        return _refused(oid, n, shown, f"unknown key {unknown[0]!r}")
    for key in _KEYS[:3]:
        if key not in item:
            return _refused(oid, n, shown, f"it has no {key!r}")
    if type(shown) is not str:
        return _refused(oid, n, shown, "'path' is not a string")
    xxh, size = item["xxh128"], item["size"]
    if type(xxh) is not str or not HEX_RE.match(xxh):
        return _refused(oid, n, shown, "'xxh128' is not the id of a file (32 lower-case hex "
                        "digits)")
    if type(size) is not int or size < 0:
        return _refused(oid, n, shown, "'size' is not a whole number of bytes")
    return _refused(oid, n, shown, "'exec' is neither true nor false")


def _check_paths(oid: str, names: list[str]) -> None:
    """Every path safe, listed once, and not both a file and a folder (`a` and `a/b`)."""
    found = paths.first_problem(names)
    if found:
        n, why = found
        raise _refused(oid, n, names[n], why)
    files = set(names)
    if len(files) != len(names):
        seen: set[str] = set()
        for n, name in enumerate(names):
            if name in seen:
                raise _refused(oid, n, name, "the path is listed twice")
            seen.add(name)
    folders: set[str] = set()
    for folder in {name.rpartition("/")[0] for name in files}:
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    both = files & folders
    if both:
        name = min(both)
        raise _refused(oid, names.index(name), name, "the path is both a file and a folder")


_KEYS = ("path", "xxh128", "size", "exec")
_ASK = ("ask whoever committed the pointer to re-add the folder with `mlv add`, or check "
        "out another revision")
_HINT = "mlv never writes such a manifest: " + _ASK


def _damaged(oid: str, why: str) -> PointerError:
    return PointerError(f"directory manifest {oid} is damaged: {why}",
                        hint="`mlv fsck` tells whether the cache's copy was damaged (then "
                        "delete it and pull again); if not, " + _ASK)


def _refused(oid: str, n: int, path: object, why: str) -> PointerError:
    return PointerError(f"directory manifest {oid}: entry {n + 1} ({_short(repr(path))}) is "
                        f"refused: {_short(why, 160)}", hint=_HINT)


def _short(text: str, limit: int = 80) -> str:
    """A path from a manifest can be any length; a message stays one readable line."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
