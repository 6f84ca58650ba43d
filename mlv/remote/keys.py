"""The key layout of a remote: where each object lives, relative to its root."""

from __future__ import annotations

from mlv.hashing import HASH_NAME, is_oid


def key_of(oid: str, namespace: str = HASH_NAME) -> str:
    return f"{namespace}/{oid[:2]}/{oid[2:]}"


def _oid_from_key(key: str, namespace: str = HASH_NAME) -> str | None:
    parts = key.rsplit("/", 2)
    if len(parts) < 3 or parts[0].rsplit("/", 1)[-1] != namespace:
        return None
    oid = parts[1] + parts[2]
    return oid if len(parts[1]) == 2 and is_oid(oid) else None
