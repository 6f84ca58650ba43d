"""A remote held in memory, for tests and the conformance suite: every operation of
the Remote interface over one dictionary of keys. Not reachable from a user's config
(no URL scheme); only built in code."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

from mlv import fsio
from mlv.errors import MlvError
from mlv.remote.base import After, Failures, Remote, announce
from mlv.remote.keys import _oid_from_key, check_key, check_prefix, check_range, key_of
from mlv.workspace import Progress


class MemoryRemote(Remote):
    """Keys and their bytes in a dictionary. The copies `with_namespace` makes share it."""

    def __init__(self, name: str = "memory", jobs: int = 1) -> None:
        super().__init__(name, "memory://", jobs)
        self.files: dict[str, tuple[bytes, float]] = {}  # key -> (bytes, mtime)
        self._lock = threading.Lock()

    def _key(self, oid: str) -> str:
        return key_of(oid, self.namespace)

    def _read(self, key: str) -> bytes:
        with self._lock:
            found = self.files.get(key)
        if found is None:
            raise FileNotFoundError(f"{self.url}{key}")
        return found[0]

    def _write(self, key: str, data: bytes) -> None:
        with self._lock:
            self.files[key] = (bytes(data), time.time())

    # ---- objects ----------------------------------------------------------------------------

    def list_oids(self) -> set[str]:
        return set(self.list_mtimes())

    def list_mtimes(self) -> dict[str, float | None]:
        with self._lock:
            listed = list(self.files.items())
        found: dict[str, float | None] = {}
        for key, (_, mtime) in listed:
            oid = _oid_from_key(key, self.namespace)
            if oid and key == self._key(oid):
                found[oid] = mtime
        return found

    def _exist_each(self, oids: list[str]) -> set[str]:
        with self._lock:
            return {oid for oid in oids if self._key(oid) in self.files}

    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        announce(progress, items, sizes, upload=True)

        def put(src: str, oid: str) -> None:
            fsio.check_object(src)  # never upload what a symlink in the cache names
            with open(src, "rb") as f:
                data = f.read()
            self._write(self._key(oid), data)
            if progress:
                progress(0, len(data))

        return self._each(items, lambda item: item[1], lambda item: put(*item), progress)

    def download(self, items: list[tuple[str, str]], progress: Progress | None,
                 after: After | None = None, sizes: dict[str, int] | None = None
                 ) -> Failures:
        announce(progress, items, sizes)

        def get(oid: str, dst: str) -> None:
            data = self._read(self._key(oid))
            fsio.write_new(dst, data, 0o444)
            if progress:
                progress(0, len(data))
            if after:
                after(oid, dst, None)

        return self._each(items, lambda item: item[0], lambda item: get(*item), progress)

    def delete(self, oids: list[str]) -> Failures:
        with self._lock:
            for oid in oids:
                self.files.pop(self._key(oid), None)
        return {}

    def open(self, oid: str) -> Any:
        return io.BytesIO(self._read(self._key(oid)))

    def _each(self, items: list[Any], name: Any, fn: Any, progress: Progress | None
              ) -> Failures:
        failures: Failures = {}
        for item in items:
            try:
                fn(item)
            except (OSError, MlvError) as exc:
                failures[name(item)] = exc
            if progress:
                progress(1)
        return failures

    # ---- keys -------------------------------------------------------------------------------

    def put_key(self, key: str, data: bytes) -> None:
        self._write(check_key(key), data)

    def put_key_file(self, key: str, path: str, progress: Progress | None = None) -> None:
        check_key(key)
        fsio.check_object(path)
        with open(path, "rb") as f:
            data = f.read()
        self._write(key, data)
        if progress:
            progress(0, len(data))

    def get_key(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        first, end = check_range(start, end)
        return self._read(check_key(key))[first:end]

    def list_keys(self, prefix: str) -> dict[str, int]:
        prefix = check_prefix(prefix)
        under = f"{prefix}/" if prefix else ""
        with self._lock:
            return {key: len(data) for key, (data, _) in self.files.items()
                    if key.startswith(under)}

    def delete_keys(self, keys: list[str]) -> Failures:
        for key in keys:
            check_key(key)
        with self._lock:
            for key in keys:
                self.files.pop(key, None)
        return {}

    def keys_exist(self, keys: list[str]) -> set[str]:
        for key in keys:
            check_key(key)
        with self._lock:
            return {key for key in keys if key in self.files}
