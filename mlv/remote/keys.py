"""The key layout of a remote: where each object lives, relative to its root, and the
rule every key is held to.

A key is a POSIX path relative to the remote's root (`xxh128/ab/cdef…`,
`packs/ab/ABCD…`, `mlv-remote.json`). Keys come from mlv's own code but also from
files read from a remote (an index names its packs), so each one is checked before it
names anything: relative, normalized (no empty, `.` or `..` part), no control character,
no backslash (the same rule as tracked paths, `mlv.paths.problem`).
"""

from __future__ import annotations

from mlv import paths
from mlv.errors import MlvError
from mlv.hashing import HASH_NAME, is_oid


class InvalidKeyError(MlvError):
    """A key that cannot name anything under a remote's root."""


def check_key(key: str) -> str:
    """`key` when it may name a file under a remote's root; else InvalidKeyError."""
    problem = paths.problem(key)
    if problem is None and "\\" in key:
        problem = f"key {key!r} contains a backslash"
    if problem is not None:
        raise InvalidKeyError(f"invalid remote key: {problem}",
                              hint="the remote holds a damaged file; check it with "
                                   "`mlv fsck --remote NAME`")
    return key


def valid_key(key: str) -> bool:
    """Whether `key` passes `check_key` (for listings, which skip what does not)."""
    return paths.problem(key) is None and "\\" not in key


def check_prefix(prefix: str) -> str:
    """A key prefix for listing: "" (the whole remote) or a key, with or without a
    trailing `/`; returned without the `/`."""
    prefix = prefix[:-1] if prefix.endswith("/") else prefix
    return prefix and check_key(prefix)


def check_range(start: int | None, end: int | None) -> tuple[int, int | None]:
    """A byte range as (start, end or None for "to the end"); like a slice, but never
    counting from the end (negative values are a bug of the caller)."""
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise ValueError(f"byte range {start}:{end} counts from the end")
    return start or 0, end


def key_of(oid: str, namespace: str = HASH_NAME) -> str:
    return f"{namespace}/{oid[:2]}/{oid[2:]}"


def _oid_from_key(key: str, namespace: str = HASH_NAME) -> str | None:
    parts = key.rsplit("/", 2)
    if len(parts) < 3 or parts[0].rsplit("/", 1)[-1] != namespace:
        return None
    oid = parts[1] + parts[2]
    return oid if len(parts[1]) == 2 and is_oid(oid) else None
