"""xxh3-128 content hashing. Not cryptographic: it guards against accidents, not forgers."""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Callable
from typing import BinaryIO

import xxhash

from mlv.errors import PathError
from mlv.fsio import kind_of

HASH_NAME = "xxh128"
BLOCK = 8 * 1024 * 1024
SMALL = 4 * 1024 * 1024  # files up to this size are read in one call
HEX_RE = re.compile(r"[0-9a-f]{32}\Z")  # use with .match: anchored at both ends
OID_RE = re.compile(r"[0-9a-f]{32}(\.dir)?\Z")


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def open_regular(path: str) -> io.FileIO:
    """Open a file to read its bytes (following a symlink), refusing anything that is not
    a regular file with one line: opening with O_NONBLOCK means a FIFO cannot block, and
    the check on the open file means a device never gets read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PathError(f"{path} is {kind_of(mode)}, not a regular file",
                            hint="mlv tracks regular files and folders; remove it or move it "
                                 "out of the way")
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb")


def hasher_hex(fobj: BinaryIO, block: int = BLOCK) -> tuple[str, int]:
    """(hex digest, size) of what is left to read in the open binary file `fobj`."""
    hasher = xxhash.xxh3_128()
    size = 0
    while chunk := fobj.read(block):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def hash_file(path: str, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Return (hex digest, size) of a file, reading large files in large blocks.
    `on_bytes(n)` is called as each block is read (progress of a big file)."""
    with open_regular(path) as fobj:
        if os.fstat(fobj.fileno()).st_size <= SMALL:
            data = fobj.readall()
            if on_bytes:
                on_bytes(len(data))
            return hash_bytes(data), len(data)
        hasher = xxhash.xxh3_128()
        size = 0
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := fobj.readinto(buf):
            hasher.update(view[:n])
            size += n
            if on_bytes:
                on_bytes(n)
        return hasher.hexdigest(), size


def is_oid(value: str) -> bool:
    return bool(OID_RE.match(value))


def intact(path: str, oid: str) -> bool:
    """True when the file's bytes hash to `oid` (a manifest's id is its hash + ".dir")."""
    return hash_file(path)[0] == oid.removesuffix(".dir")


def default_jobs() -> int:
    return max(4, (os.cpu_count() or 1) * 4)
