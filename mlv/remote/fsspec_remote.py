"""A remote on any fsspec filesystem. Asynchronous filesystems (s3fs) run many
requests at once on their event loop, others run on a thread pool. S3 writes need no
temp name: an object appears whole or not at all; S3's tuning lives in `s3.py`."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mlv import fsio
from mlv.errors import MlvError
from mlv.remote import s3
from mlv.remote.base import (
    EXISTS_ONE_BY_ONE,
    After,
    Failures,
    Remote,
    RemoteError,
    RootMissingError,
    announce,
    masked_url,
)
from mlv.remote.keys import _oid_from_key, check_key, check_prefix, check_range, key_of, valid_key
from mlv.workspace import Progress, parallel_map


class FsspecRemote(Remote):
    """Any fsspec filesystem; asynchronous ones (s3fs) run requests concurrently."""

    def __init__(self, name: str, url: str, jobs: int, fs: Any, root: str,
                 endpoint: str | None = None, ranges: s3.RangeReader | None = None
                 ) -> None:
        super().__init__(name, url, jobs)
        self.fs = fs
        self.ranges = ranges  # S3: ranged GETs that need not pass s3fs's event loop
        self.endpoint = endpoint
        self.root = root.rstrip("/")
        self.is_async = bool(getattr(fs, "async_impl", False))
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else [fs.protocol]
        self.is_s3 = "s3" in protocols

    def path_of(self, oid: str) -> str:
        return f"{self.root}/{key_of(oid, self.namespace)}"

    def list_oids(self) -> set[str]:
        return set(self._find(detail=False))

    def list_mtimes(self) -> dict[str, float | None]:
        return {oid: _mtime_of(info) for oid, info in self._find(detail=True).items()}

    def _find(self, detail: bool) -> dict[str, Any]:
        """oid -> the listing's details of it (None without `detail`), from one listing."""
        with self.errors():
            try:
                listed = self.fs.find(f"{self.root}/{self.namespace}/", detail=detail)
            except FileNotFoundError:
                self.check_root()
                return {}
            if not listed:
                self.check_root()
        infos = listed if detail else dict.fromkeys(listed)
        found = {}
        for path, info in infos.items():
            oid = _oid_from_key(path, self.namespace)
            if oid:
                found[oid] = info
        return found

    def check_root(self) -> None:
        """Raise a clear error when the bucket (or root folder) is missing."""
        bucket = self.root.split("/", 1)[0]
        with self.errors():
            try:
                self.fs.info(bucket)  # raises the real cause: no access, no endpoint …
            except FileNotFoundError:
                raise self._missing_root() from None

    def _missing_root(self) -> RootMissingError:
        bucket = self.root.split("/", 1)[0]
        if self.url.split("://")[0] in ("s3", "s3a", "gs", "gcs", "az", "abfs"):
            return RootMissingError(
                f"remote '{self.name}' ({self.shown_url}): bucket '{bucket}' does not exist",
                hint="create the bucket, or fix the URL with "
                     f"`mlv remote modify {self.name} url s3://BUCKET/PATH`")
        return RootMissingError(f"remote '{self.name}' ({self.shown_url}): {bucket} does not "
                                "exist", hint="create it, or fix the URL with "
                                              f"`mlv remote modify {self.name} url URL`")

    def has(self, oids: list[str]) -> set[str]:
        if (len(oids) > EXISTS_ONE_BY_ONE and self.is_s3 and self.is_async
                and hasattr(self.fs, "_iterdir")):  # s3fs's paged listing, in key order
            return self._list_then_ask(oids)
        return super().has(oids)

    def _list_then_ask(self, oids: list[str]) -> set[str]:
        """List the remote in key order until the listing has cost about as much as
        asking about the objects it has not reached yet, then ask about those one by
        one. Without knowing how big the remote is, this costs at most about twice the
        cheaper of listing everything and asking about everything."""
        from bisect import bisect_right

        wanted = sorted((self.path_of(oid), oid) for oid in oids)
        paths = [path for path, _ in wanted]
        with self.errors():
            try:
                listed, reached = s3.list_until_cheaper(
                    self.fs, f"{self.root}/{self.namespace}/", paths)
            except FileNotFoundError:
                self.check_root()
                listed, reached = set(), None
        present = {oid for path, oid in wanted if path in listed}
        if reached is None:
            return present
        rest = [oid for _, oid in wanted[bisect_right(paths, reached):]]
        return present | self._exist_each(rest)

    def _head(self, path: str) -> Any:
        """Is the file there? On S3 one HEAD request: s3fs's info() would follow a
        missing key with a listing, to see whether it is a folder."""
        if self.is_s3 and hasattr(self.fs, "_call_s3"):
            return s3.head(self.fs, path)
        return self.fs._info(path)

    def _exist_each(self, oids: list[str]) -> set[str]:
        return self._paths_exist({oid: self.path_of(oid) for oid in oids})

    def _paths_exist(self, paths: dict[str, str]) -> set[str]:
        """Which of the names in `paths` (name -> path) exist, asking about each one."""
        if not paths:
            return set()
        names = list(paths)
        if self.is_async:
            async def one(name: str) -> None:
                await self._head(paths[name])

            failures = self._gather(one, names, None)
        else:
            failures = self._threads(lambda name: self.fs.info(paths[name]), names, None)
        self._raise_fatal(failures)
        if failures:
            self.check_root()  # "not found" may mean no bucket: one clear error for that
        return {name for name in names if name not in failures}

    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        announce(progress, items, sizes, upload=True)
        if self.is_async:
            budget = s3.ByteBudget(s3.BUFFER_MAX)

            async def one(item: tuple[str, str]) -> None:
                src, oid = item
                fsio.check_object(src)  # never upload what a symlink in the cache names
                if not self.is_s3:
                    await self.fs._put_file(src, self.path_of(oid), callback=counter(progress))
                    return
                await s3.put_file(self.fs, src, self.path_of(oid), budget, counter(progress))

            failures = self._gather(one, items, progress, key=lambda item: item[1])
        else:
            def put(item: tuple[str, str]) -> None:
                fsio.check_object(item[0])
                self.fs.put_file(item[0], self.path_of(item[1]), callback=counter(progress))

            failures = self._threads(put, items, progress, key=lambda item: item[1])
        self._raise_fatal(failures)
        return failures

    def download(self, items: list[tuple[str, str]], progress: Progress | None,
                 after: After | None = None, sizes: dict[str, int] | None = None
                 ) -> Failures:
        sizes = sizes or {}
        announce(progress, items, sizes)
        if self.is_async:
            budget = s3.ByteBudget(s3.BUFFER_MAX)

            async def one(item: tuple[str, str]) -> None:
                oid, dst = item
                if not self.is_s3:
                    await self.fs._get_file(self.path_of(oid), dst, callback=counter(progress))
                else:
                    await s3.get_file(self.fs, self.path_of(oid), dst, sizes.get(oid), budget,
                                      counter(progress))
                if after:
                    after(oid, dst, None)

            failures = self._gather(one, items, progress, key=lambda item: item[0])
        else:
            def get(item: tuple[str, str]) -> None:
                self.fs.get_file(self.path_of(item[0]), item[1], callback=counter(progress))
                if after:
                    after(*item, None)

            failures = self._threads(get, items, progress, key=lambda item: item[0])
        self._raise_fatal(failures)
        if any(isinstance(exc, FileNotFoundError) for exc in failures.values()):
            self.check_root()  # a missing bucket is one clear error, not N missing objects
        return failures

    def delete(self, oids: list[str]) -> Failures:
        if not oids:
            return {}
        with self.errors():
            self.fs.rm([self.path_of(oid) for oid in oids])
        gone = self.has(oids)  # what is still there did not go
        return {oid: OSError("still present after delete") for oid in gone}

    def open(self, oid: str) -> Any:
        with self.errors():
            return self.fs.open(self.path_of(oid), "rb")

    # ---- keys ------------------------------------------------------------------------------

    def key_path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def put_key(self, key: str, data: bytes) -> None:
        path = self.key_path(key)
        with self.errors():
            self.fs.pipe_file(path, data)  # on S3 one PUT: the object appears whole

    def put_key_file(self, key: str, path: str, progress: Progress | None = None) -> None:
        final = self.key_path(key)
        with self.errors():
            if self.is_s3 and self.is_async:
                from fsspec.asyn import sync

                sync(self.fs.loop, s3.put_file, self.fs, path, final,
                     s3.ByteBudget(s3.BUFFER_MAX), counter(progress))
            else:
                self.fs.put_file(path, final, callback=counter(progress))

    def get_key(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        path = self.key_path(key)
        first, end = check_range(start, end)
        try:
            with self.errors():
                if end is not None and end <= first:  # no bytes to ask for
                    if not self.fs.exists(path):
                        raise FileNotFoundError(path)
                    return b""
                try:
                    # S3 answers a range past the end (also of an empty object) with an
                    # error, so ask for a range only when it does not start at 0
                    return bytes(self.fs.cat_file(path, start=first or None, end=end))
                except OSError as exc:
                    if exc.errno == errno.EINVAL and "range" in str(exc).lower():
                        return b""  # the object exists; the range starts at or past its end
                    raise
        except FileNotFoundError:
            self.check_root()  # a missing bucket is one clear error, not a missing key
            raise

    def get_bulk(self, key: str, start: int, end: int) -> bytes:
        if self.ranges is not None and 0 <= start < end:
            data = self.ranges.get(self.key_path(key), start, end)
            if data is not None:
                return data
        return self.get_key(key, start, end)

    def is_empty(self) -> bool:
        with self.errors():  # one request: the top level only, not the whole remote
            try:
                return not self.fs.ls(self.root, detail=False, refresh=True)
            except FileNotFoundError:
                self.check_root()
                return True

    def list_keys(self, prefix: str) -> dict[str, int]:
        prefix = check_prefix(prefix)
        folder = f"{self.root}/{prefix}" if prefix else self.root
        with self.errors():
            try:
                listed = self.fs.find(folder, detail=True)
            except FileNotFoundError:
                listed = {}
            if not listed:
                self.check_root()
        found: dict[str, int] = {}
        for path, info in listed.items():
            key = path[len(self.root) + 1:]
            if (path.startswith(f"{folder}/") and info.get("type", "file") == "file"
                    and valid_key(key)):
                found[key] = int(info.get("size") or 0)
        return found

    def delete_keys(self, keys: list[str]) -> Failures:
        paths = {key: self.key_path(key) for key in keys}
        if not paths:
            return {}
        with self.errors():
            try:
                self.fs.rm(list(paths.values()))
            except FileNotFoundError:  # some were gone already (S3 does not mind)
                for path in paths.values():
                    if self.fs.exists(path):
                        self.fs.rm_file(path)
        gone = self._paths_exist(paths)  # what is still there did not go
        return {key: OSError("still present after delete") for key in gone}

    def keys_exist(self, keys: list[str]) -> set[str]:
        return self._paths_exist({key: self.key_path(key) for key in keys})

    # ---- running many requests ---------------------------------------------------------

    def _gather(self, fn: Callable[[Any], Any], items: list[Any], progress: Progress | None,
                key: Callable[[Any], str] = lambda item: item) -> Failures:
        import asyncio  # tens of milliseconds: only for a remote that runs requests

        from fsspec.asyn import sync

        failures: Failures = {}

        async def run_all() -> None:
            sem = asyncio.Semaphore(self.jobs)

            async def one(item: Any) -> None:
                async with sem:
                    try:
                        await fn(item)
                    except Exception as exc:  # noqa: BLE001 - sorted out by the caller
                        failures[key(item)] = exc
                if progress:
                    progress(1)

            await asyncio.gather(*(one(item) for item in items))

        with self.errors():
            sync(self.fs.loop, run_all)
        return failures

    def _threads(self, fn: Callable[[Any], Any], items: list[Any], progress: Progress | None,
                 key: Callable[[Any], str] = lambda item: item) -> Failures:
        failures: Failures = {}

        def one(item: Any) -> None:
            try:
                fn(item)
            except Exception as exc:  # noqa: BLE001 - sorted out by the caller
                failures[key(item)] = exc
            if progress:
                progress(1)

        parallel_map(one, items, self.jobs)
        return failures

    def _raise_fatal(self, failures: Failures) -> None:
        """Errors that doom every request (no access, no endpoint) end the command."""
        for exc in failures.values():
            if not isinstance(exc, FileNotFoundError):
                fatal = self.translate(exc)
                if fatal is not None:
                    raise fatal from exc

    @contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except MlvError as exc:
            self._hidden(exc)
            raise
        except Exception as exc:  # noqa: BLE001 - every remote failure gets one clear line
            translated = self.translate(exc)
            if translated is None and isinstance(exc, FileNotFoundError):
                raise  # one object is missing: the caller decides what that means
            translated = translated or RemoteError(
                f"remote '{self.name}' ({self.shown_url}): {type(exc).__name__}: {exc}")
            raise self._hidden(translated) from exc

    def _hidden(self, exc: MlvError) -> MlvError:
        """`exc` with this remote's URL secrets taken out of its message and hint (a
        library's error quotes the URL, or the root path that holds the password)."""
        exc.message = self.hide(exc.message)
        exc.args = (exc.message,)
        exc.hint = exc.hint and self.hide(exc.hint)
        return exc

    def translate(self, exc: BaseException) -> RemoteError | None:
        """A clear error for failures that are about the remote as a whole."""
        text = f"{type(exc).__name__}: {exc}"
        where = f"remote '{self.name}' ({self.shown_url})"
        creds = ("NoCredentialsError", "Unable to locate credentials", "PartialCredentials")
        if any(c in text for c in creds):
            return RemoteError(f"{where}: no credentials found",
                               hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile "
                                    f"(`mlv remote modify {self.name} profile NAME`), or "
                                    f"`mlv remote modify --local {self.name} access_key_id …`")
        denied = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden",
                  "ExpiredToken")
        if isinstance(exc, PermissionError) or any(d in text for d in denied):
            return RemoteError(f"{where}: access denied ({_short(exc)})",
                               hint="check the credentials and that they may use this bucket")
        unreachable = ("EndpointConnectionError", "ConnectTimeout", "ClientConnectorError",
                       "Could not connect", "Connection refused", "ConnectionRefused",
                       "Name or service not known", "ReadTimeout")
        if any(u in text for u in unreachable) or isinstance(exc, ConnectionError):
            return RemoteError(f"{where}: cannot reach {masked_url(self.endpoint or self.url)}",
                               hint="check the network and the remote's endpoint_url "
                                    "(`mlv remote list`)")
        if isinstance(exc, FileNotFoundError) and ("NoSuchBucket" in text or
                                                   "bucket does not exist" in text.lower()):
            return self._missing_root()
        return None


def counter(progress: Progress | None) -> Any:
    """An fsspec callback that reports the bytes of one transfer to `progress` as they
    move (fsspec's no-op callback without `progress`)."""
    from fsspec.callbacks import DEFAULT_CALLBACK, Callback

    if progress is None:
        return DEFAULT_CALLBACK
    report = progress

    class _Bytes(Callback):
        told = 0

        def call(self, *args: Any, **kwargs: Any) -> None:
            delta = (self.value or 0) - self.told
            if delta > 0:
                self.told += delta
                report(0, delta)

    return _Bytes()


def _mtime_of(info: Any) -> float | None:
    """The modification time in a listing entry (S3's LastModified, a local mtime …),
    or None when the filesystem does not give one."""
    from datetime import datetime

    for key in ("LastModified", "mtime", "last_modified", "modified", "created"):
        value = info.get(key) if isinstance(info, dict) else None
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
