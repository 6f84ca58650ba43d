"""A remote in a folder on this machine: plain file operations, temp file in the
target folder, then rename."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from mlv import fsio
from mlv.errors import MlvError
from mlv.hashing import HASH_NAME, is_oid
from mlv.odb import iter_store
from mlv.remote.base import After, Failures, Remote, RemoteError, announce
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
            raise RemoteError(f"remote '{self.name}': folder {self.root} does not exist",
                              hint=f"create it (mkdir -p {self.root}) or fix the URL with "
                                   f"`mlv remote modify {self.name} url …`")

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
                after(oid, dst)

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


def local_root(url: str) -> str | None:
    """The folder a local remote's URL names (a path or file:// URL), else None."""
    protocol, _, rest = url.partition("://")
    if not rest:
        protocol, rest = "file", url
    if protocol not in ("file", "local"):
        return None
    return os.path.abspath(os.path.expanduser(rest))
