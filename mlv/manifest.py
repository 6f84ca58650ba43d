"""Directory manifests: canonical JSON listing every file of a tracked directory."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from mlv.errors import PointerError
from mlv.hashing import HEX_RE


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
    try:
        items = json.loads(data)
        entries = [Entry(i["path"], i["xxh128"], i["size"], i.get("exec", False)) for i in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise PointerError(f"directory manifest {oid} in the cache is damaged ({exc})",
                           hint="delete that object from the cache and re-add the folder"
                           ) from None
    match = HEX_RE.match
    for e in entries:
        # Paths come from data: refuse anything that could leave the tracked folder.
        wrapped = "/" + e.path + "/"
        if ("/../" in wrapped or "/./" in wrapped or "//" in wrapped or "\0" in e.path
                or not match(e.oid) or type(e.size) is not int):
            raise PointerError(f"directory manifest {oid} has an unsafe entry {e.path!r}",
                               hint="re-add the folder to write a new manifest")
    return entries
