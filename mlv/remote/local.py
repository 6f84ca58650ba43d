"""A remote in a folder on this machine: plain file operations, temp file in the
target folder, then rename.

Keys (format 2's packs, index segments and recipes, the marker, gc schedules) are the
shared durable copy, and one pack holds many objects, so they are written as restic's
local backend saves a file: write the temp file, fsync it, rename it into place, fsync
the folder (where the OS can open one). Loose objects (format 1) are renamed without
fsync: one fsync per small object costs more than the whole push (see
docs/formats.md, "What mlv does not do")."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from mlv import fsio
from mlv.errors import MlvError
from mlv.hashing import HASH_NAME, is_oid
from mlv.odb import iter_store
from mlv.remote.base import After, Failures, Remote, RootMissingError, announce
from mlv.remote.keys import check_key, check_prefix, check_range, valid_key
from mlv.workspace import Progress, bytes_of, parallel_map


class LocalRemote(Remote):
    """A folder on this machine (another disk, a network mount …)."""

    def __init__(self, name: str, url: str, jobs: int, root: str) -> None:
        super().__init__(name, url, jobs)
        self.root = root
        self.base = os.path.join(root, HASH_NAME)
        self._made: set[str] = set()

    def with_namespace(self, namespace: str) -> Remote:
        other = super().with_namespace(namespace)
        assert isinstance(other, LocalRemote)
        other.base = os.path.join(other.root, namespace)
        other._made = set()
        return other

    def path_of(self, oid: str) -> str:
        return os.path.join(self.base, oid[:2], oid[2:])

    def check(self) -> None:
        if not os.path.isdir(self.root):
            what = "is not a folder" if os.path.lexists(self.root) else "does not exist"
            raise RootMissingError(f"remote '{self.name}': folder {self.root} {what}",
                                   hint=f"create it (mkdir -p {self.root}) or fix the URL "
                                        f"with `mlv remote modify {self.name} url …`")

    def list_oids(self) -> set[str]:
        return {oid for oid, _ in self._entries()}

    def list_mtimes(self) -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        for oid, entry in self._entries():
            try:
                found[oid] = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue  # deleted since the listing
        return found

    def _entries(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(oid, directory entry) of every object under its final name."""
        self.check()
        try:
            prefixes = os.listdir(self.base)
        except FileNotFoundError:
            return
        for prefix in prefixes:
            if len(prefix) != 2:
                continue
            try:
                with os.scandir(os.path.join(self.base, prefix)) as entries:
                    yield from ((prefix + e.name, e) for e in entries
                                if is_oid(prefix + e.name) and not e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                continue

    def _exist_each(self, oids: list[str]) -> set[str]:
        self.check()
        return {oid for oid in oids if os.path.isfile(self.path_of(oid))}

    def _run(self, fn: Callable[[Any], None], items: list[Any], key: Callable[[Any], str],
             progress: Progress | None, sizes: dict[str, int] | None = None) -> Failures:
        failures: Failures = {}
        known = sizes or {}

        def one(item: Any) -> None:
            try:
                fn(item)
            except (OSError, MlvError) as exc:
                failures[key(item)] = exc
            if progress:
                progress(1)

        parallel_map(one, items, self.jobs, size=lambda item: known.get(key(item), 0))
        return failures

    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        self.check()
        announce(progress, items, sizes, upload=True)
        on_bytes = bytes_of(progress)

        def put(item: tuple[str, str]) -> None:
            src, oid = item
            final = self.path_of(oid)
            folder = os.path.dirname(final)
            if folder not in self._made:
                fsio.makedirs(folder)
                self._made.add(folder)
            tmp = fsio.tmp_name(final)
            try:
                fsio.copy_new(src, tmp, 0o444, from_store=True, on_bytes=on_bytes)
                fsio.commit(tmp, final)
            except BaseException:
                fsio.remove_file(tmp)
                raise

        return self._run(put, items, lambda item: item[1], progress, sizes)

    def download(self, items: list[tuple[str, str]], progress: Progress | None,
                 after: After | None = None, sizes: dict[str, int] | None = None
                 ) -> Failures:
        self.check()
        announce(progress, items, sizes)
        on_bytes = bytes_of(progress)

        def get(item: tuple[str, str]) -> None:
            oid, dst = item
            fsio.copy_new(self.path_of(oid), dst, 0o444, from_store=True, on_bytes=on_bytes)
            if after:
                after(oid, dst, None)

        return self._run(get, items, lambda item: item[0], progress, sizes)

    def delete(self, oids: list[str]) -> Failures:
        return self._run(lambda oid: fsio.remove_file(self.path_of(oid)), oids,
                         lambda oid: oid, None)

    def open(self, oid: str) -> Any:
        return open(self.path_of(oid), "rb")

    def remove_stale_temps(self, older_than: float) -> int:
        self.check()
        cutoff = time.time() - older_than
        removed = 0
        for oid, path in iter_store(self.base):
            if not oid and fsio.is_tmp_name(os.path.basename(path)):
                try:
                    if os.lstat(path).st_mtime >= cutoff:
                        continue
                except FileNotFoundError:
                    continue
                fsio.remove_file(path)
                removed += 1
        return removed

    # ---- keys ------------------------------------------------------------------------------

    def key_path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def put_key(self, key: str, data: bytes) -> None:
        path = self.key_path(key)
        self.check()
        fsio.makedirs(os.path.dirname(path))
        self._durably(path, lambda tmp: fsio.write_new(tmp, data, 0o444))

    def put_key_file(self, key: str, path: str, progress: Progress | None = None) -> None:
        final = self.key_path(key)
        self.check()
        fsio.makedirs(os.path.dirname(final))
        self._durably(final, lambda tmp: fsio.copy_new(path, tmp, 0o444, from_store=True,
                                                       on_bytes=bytes_of(progress)))

    @staticmethod
    def _durably(final: str, write: Callable[[str], object]) -> None:
        """Write a temp file beside `final` with `write(tmp)`, flush it to stable storage,
        rename it onto `final`, then flush the folder's entries."""
        tmp = fsio.tmp_name(final)
        try:
            write(tmp)
            _sync_file(tmp)
            fsio.commit(tmp, final)
        except BaseException as exc:
            fsio.remove_file(tmp)
            if isinstance(exc, OSError):
                raise fsio.storage_error(exc, final) from exc
            raise
        _sync_folder(os.path.dirname(final))

    def get_key(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        path = self.key_path(key)
        first, end = check_range(start, end)
        try:
            with os.fdopen(_open_key(path, key), "rb") as f:
                f.seek(first)
                return f.read() if end is None else f.read(max(0, end - first))
        except (FileNotFoundError, NotADirectoryError):
            self.check()  # no folder at all is one clear error, not a missing key
            raise

    def is_empty(self) -> bool:
        self.check()
        with os.scandir(self.root) as entries:
            return not any(not fsio.is_tmp_name(e.name) for e in entries)

    def list_keys(self, prefix: str) -> dict[str, int]:
        prefix = check_prefix(prefix)
        self.check()
        found: dict[str, int] = {}
        folders = [(self.key_path(prefix) if prefix else self.root, prefix)]
        while folders:
            folder, under = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        key = f"{under}/{entry.name}" if under else entry.name
                        if entry.is_dir(follow_symlinks=False):
                            folders.append((entry.path, key))
                        elif (entry.is_file(follow_symlinks=False)
                              and not fsio.is_tmp_name(entry.name) and valid_key(key)):
                            try:
                                found[key] = entry.stat(follow_symlinks=False).st_size
                            except FileNotFoundError:
                                continue  # deleted since the listing
            except (FileNotFoundError, NotADirectoryError):
                continue
        return found

    def delete_keys(self, keys: list[str]) -> Failures:
        paths = {key: self.key_path(key) for key in keys}
        return self._run(lambda key: fsio.remove_file(paths[key]), keys, lambda key: key, None)

    def keys_exist(self, keys: list[str]) -> set[str]:
        paths = {key: self.key_path(key) for key in keys}
        self.check()
        return {key for key, path in paths.items() if os.path.isfile(path)}


def _open_key(path: str, key: str) -> int:
    """Open the file of `key` to read: never through a symlink (a clone can name a folder
    of its own tree as its remote: `mlv-remote.json -> /dev/zero` would fill the memory),
    never a FIFO or a device."""
    from mlv.remote.packs import CorruptDataError

    return fsio.open_regular(path, lambda kind: CorruptDataError(
        key, f"it is {kind}, not a regular file (mlv never follows one)"))


def _sync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: str) -> None:
    """fsync a folder, so that a rename into it survives a power loss; a no-op where the
    OS cannot open or flush a folder (Windows, some network filesystems)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def local_root(url: str) -> str | None:
    """The folder a local remote's URL names (a path or file:// URL), else None."""
    protocol, _, rest = url.partition("://")
    if not rest:
        protocol, rest = "file", url
    if protocol not in ("file", "local"):
        return None
    return os.path.abspath(os.path.expanduser(rest))
