"""Directory manifests: canonical JSON listing every file of a tracked directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlv.errors import PointerError
from mlv.hashing import HEX_RE


@dataclass(frozen=True)
class Entry:
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
        entries = [
            Entry(i["path"], i["xxh128"], int(i["size"]), bool(i.get("exec", False)))
            for i in items
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise PointerError(f"directory manifest {oid} in the cache is damaged ({exc})",
                           hint="run `mlv fsck` or re-add the directory") from None
    for e in entries:
        if not HEX_RE.match(e.oid) or _unsafe(e.path):
            raise PointerError(f"directory manifest {oid} has an unsafe entry {e.path!r}")
    return entries


def _unsafe(path: str) -> bool:
    parts = path.split("/")
    return path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path
