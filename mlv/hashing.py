"""xxh3-128 content hashing. Not cryptographic: it guards against accidents, not forgers."""

from __future__ import annotations

import os
import re

import xxhash

HASH_NAME = "xxh128"
BLOCK = 8 * 1024 * 1024
SMALL = 4 * 1024 * 1024  # files up to this size are read in one call
HEX_RE = re.compile(r"[0-9a-f]{32}\Z")  # use with .match: anchored at both ends
OID_RE = re.compile(r"[0-9a-f]{32}(\.dir)?\Z")


def hash_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: str) -> tuple[str, int]:
    """Return (hex digest, size) of a file, reading large files in large blocks."""
    with open(path, "rb", buffering=0) as fobj:
        if os.fstat(fobj.fileno()).st_size <= SMALL:
            data = fobj.readall()
            return hash_bytes(data), len(data)
        hasher = xxhash.xxh3_128()
        size = 0
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := fobj.readinto(buf):
            hasher.update(view[:n])
            size += n
        return hasher.hexdigest(), size


def is_oid(value: str) -> bool:
    return bool(OID_RE.match(value))


def intact(path: str, oid: str) -> bool:
    """True when the file's bytes hash to `oid` (a manifest's id is its hash + ".dir")."""
    return hash_file(path)[0] == oid.removesuffix(".dir")


def default_jobs() -> int:
    return max(4, (os.cpu_count() or 1) * 4)
