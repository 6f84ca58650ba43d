"""The local object store: content-addressed, immutable, written by rename.

Layout (shared with every remote): `<root>/xxh128/ab/cdef…` for files and
`<root>/xxh128/ab/cdef….dir` for directory manifests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

from mlv import fsio
from mlv.errors import StorageError
from mlv.hashing import HASH_NAME, SMALL, hash_bytes, hash_file, intact, is_oid, open_regular

OBJECT_MODE = 0o444
# A manifest lists about 100 bytes a file: 1 GiB is ten million files.
MANIFEST_MAX = 1 << 30
# The bytes of small objects just stored are kept in memory up to this much (in all),
# so that the checkout after a fetch writes them without opening the cache objects.
RECENT_MAX = 256 << 20
RECENT_ONE_MAX = 1 << 20


class ObjectStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.base = os.path.join(root, HASH_NAME)
        self._made: set[str] = set()
        self._recent: dict[str, bytes] = {}
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()

    def path_of(self, oid: str) -> str:
        return f"{self.base}/{oid[:2]}/{oid[2:]}"  # os.path.join's result, 5x as fast

    def exists(self, oid: str) -> bool:
        return os.path.exists(self.path_of(oid))

    def existing(self, oids: list[str]) -> set[str]:
        """Which of `oids` are stored: one listing per prefix folder when there are many."""
        wanted = set(oids)
        if len(wanted) < 256:
            return {oid for oid in wanted if self.exists(oid)}
        found: set[str] = set()
        for prefix in {oid[:2] for oid in wanted}:
            try:
                names = os.listdir(os.path.join(self.base, prefix))
            except FileNotFoundError:
                continue
            found.update(prefix + name for name in names)
        return wanted & found

    def generation(self) -> str:
        """Changes whenever an object is added to or removed from the store."""
        try:
            names = sorted(os.listdir(self.base))
        except FileNotFoundError:
            return "empty"
        parts = []
        for name in names:
            try:
                parts.append(f"{name}:{os.stat(os.path.join(self.base, name)).st_mtime_ns}")
            except FileNotFoundError:
                continue
        return hash_bytes("\n".join(parts).encode())

    def _folder(self, oid: str) -> str:
        folder = os.path.join(self.base, oid[:2])
        if folder not in self._made:
            fsio.makedirs(folder)
            self._made.add(folder)
        return folder

    def add_bytes(self, data: bytes, suffix: str = "") -> str:
        """Store bytes whose hash names them; return the object id."""
        oid = hash_bytes(data) + suffix
        if not self.exists(oid):
            self._folder(oid)
            fsio.atomic_write(self.path_of(oid), data, OBJECT_MODE)
        return oid

    def add_file(self, path: str, on_bytes: Callable[[int], None] | None = None
                 ) -> tuple[str, int]:
        """Store a file; return (oid, size). What enters the store is verified.

        Small files are read once and stored from memory. Large files are hashed,
        skipped if already stored, else copied by the kernel to a temp file whose
        bytes are hashed again before it is renamed to its final name.
        """
        try:
            with open_regular(path) as fobj:
                data = fobj.readall() if os.fstat(fobj.fileno()).st_size <= SMALL else None
            if data is not None and len(data) <= SMALL:
                if on_bytes:
                    on_bytes(len(data))
                return self.add_bytes(data), len(data)
            oid, size = hash_file(path, on_bytes)
            if self.exists(oid):
                return oid, size
            fsio.makedirs(self.base)
            tmp = fsio.tmp_name(os.path.join(self.base, "incoming"))
            try:
                fsio.copy_new(path, tmp, OBJECT_MODE)
                if hash_file(tmp) != (oid, size):
                    raise StorageError(f"{path} changed while it was being added",
                                       hint="run the command again when nothing writes to it")
                self._folder(oid)
                fsio.commit(tmp, self.path_of(oid))
            except BaseException:
                fsio.remove_file(tmp)
                raise
            return oid, size
        except OSError as exc:
            raise fsio.storage_error(exc, path) from exc

    def temp_for(self, oid: str) -> str:
        """A fresh temp path in the folder where `oid` will live."""
        return fsio.tmp_name(os.path.join(self._folder(oid), oid[2:]))

    def adopt(self, tmp: str, oid: str, verified: bool = False) -> bool:
        """Verify a downloaded temp file and rename it into place. False (and the temp
        removed) when its bytes do not hash to `oid`. `verified`: the caller wrote the
        temp file itself from bytes it had checked against `oid` (not hashed again)."""
        try:
            if not verified and not intact(tmp, oid):
                fsio.remove_file(tmp)
                return False
            os.chmod(tmp, OBJECT_MODE)
            fsio.commit(tmp, self.path_of(oid))
            return True
        except BaseException:
            fsio.remove_file(tmp)
            raise

    def remember(self, oid: str, data: bytes) -> None:
        """Keep the bytes of object `oid`, just stored and checked against it, for
        `recalled` (within RECENT_MAX in all; safe from threads)."""
        if len(data) > RECENT_ONE_MAX:
            return
        with self._recent_lock:
            if self._recent_bytes + len(data) <= RECENT_MAX:
                self._recent[oid] = data
                self._recent_bytes += len(data)

    def recalled(self, oid: str) -> bytes | None:
        """The bytes of object `oid` when `remember` kept them, else None."""
        return self._recent.get(oid)

    def read_bytes(self, oid: str, limit: int = MANIFEST_MAX) -> bytes:
        """An object's bytes (a manifest's, in practice): a regular file of at most
        `limit` bytes, never read through a symlink."""
        path = self.path_of(oid)
        try:
            return fsio.read_regular(path, limit, f"cache object {oid}")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise fsio.storage_error(exc, path) from exc

    def remove(self, oid: str) -> None:
        fsio.remove_file(self.path_of(oid))

    def iter_objects(self) -> Iterator[tuple[str, str]]:
        """Yield (oid, path) for every object; temp files are yielded with oid ''."""
        return iter_store(self.base)


def iter_store(base: str) -> Iterator[tuple[str, str]]:
    """(oid, path) of every file in a store laid out as `base/ab/cdef…` (the cache, or a
    folder remote); files that are not objects (temp files) come with oid ''."""
    if not os.path.isdir(base):
        return
    for prefix in sorted(os.listdir(base)):
        folder = os.path.join(base, prefix)
        if fsio.is_tmp_name(prefix):  # a large object's temp file
            yield "", folder
            continue
        if len(prefix) != 2 or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            oid = prefix + name
            path = os.path.join(folder, name)
            yield (oid if is_oid(oid) else ""), path
