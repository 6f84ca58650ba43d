"""Remotes: object stores with the cache's layout, reached through fsspec.

A local folder (or `file://` URL) is handled with plain file operations: temp file
in the target folder, then rename. Anything else goes through fsspec; asynchronous
filesystems (s3fs) run many requests at once on their event loop, others run on a
thread pool. S3 writes need no temp name: an object appears whole or not at all.
"""

from __future__ import annotations

import asyncio
import copy
import os
import posixpath
import re
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from mlv import fsio
from mlv.errors import MlvError
from mlv.hashing import HASH_NAME, is_oid
from mlv.odb import iter_store
from mlv.workspace import Progress, bytes_of, parallel_map

# Fewer queries than this are asked one by one; more use one listing of the remote.
EXISTS_ONE_BY_ONE = 64
# On S3, one listing page (1000 keys, pages fetched one after another) takes about as
# long as this many HEAD requests with 32 in flight (measured: a page 0.2 s and a HEAD
# 1.9 ms on moto; on AWS a page takes about 0.1-0.2 s and a HEAD 10-30 ms, one at a time).
PAGE_COST_IN_HEADS = 100
SECRET_KEYS = ("access_key_id", "secret_access_key", "session_token")
REMOTE_KEYS = ("url", "endpoint_url", "profile", "region", "jobs") + SECRET_KEYS
MASK = "***"
# Parts of an option name that mark its value as a secret. Hand-added options go to the
# fsspec filesystem (sftp `password`, azure `account_key`, `sas_token`, `client_secret`,
# `connection_string` …); showing a harmless value masked costs less than leaking a key.
_SECRET_PARTS = ("pass", "secret", "token", "key", "credential", "auth", "sas", "sig",
                 "connection_string")
# In a URL (or a message quoting one): `scheme://user:PASSWORD@`, and `?name=VALUE` or
# `&name=VALUE` where the name marks a secret.
_URL_PASSWORD = re.compile(r"(?P<user>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*)"
                           r":(?P<pw>[^/?#@\s]*)@")
_URL_QUERY_PAIR = re.compile(r"(?P<name>(?<=[?&])[^=&#\s]+)=(?P<value>[^&#\s)'\"]*)")
# S3 objects up to this size move in one request each; bigger ones in parallel parts.
# One request is the least work for the endpoint, and with many objects in flight the
# connections are busy anyway; parts pay off only when one stream would be the
# bottleneck (rclone switches to multi-stream downloads at the same size).
WHOLE_OBJECT_MAX = 256 * 2**20
PART_SIZE = 64 * 2**20  # bigger objects move in parts of this size, 10 at a time
# Uploads (and downloads in parts) hold data in memory: what they hold stays under this.
BUFFER_MAX = 2**30


def is_secret(key: str) -> bool:
    """Whether a remote option's value (or a URL's query value) is a secret, by its name."""
    name = str(key).lower()
    return key in SECRET_KEYS or any(part in name for part in _SECRET_PARTS)


def masked_url(text: str) -> str:
    """`text` with the password and the secret query values (`sig=`,
    `X-Amz-Signature=` …) of every URL in it replaced by `***`."""
    if "://" not in text:
        return text
    text = _URL_PASSWORD.sub(rf"\g<user>:{MASK}@", text)
    return _URL_QUERY_PAIR.sub(lambda m: f"{m['name']}={MASK}" if is_secret(m["name"])
                               else m[0], text)


def _url_secrets(url: str) -> list[str]:
    """The password and secret query values in `url`, longest first: a library's error
    may quote them outside the URL (an sftp root `user:pw@host/…`)."""
    found = [m["pw"] for m in _URL_PASSWORD.finditer(url)]
    found += [m["value"] for m in _URL_QUERY_PAIR.finditer(url) if is_secret(m["name"])]
    return sorted({f for f in found if f}, key=len, reverse=True)


class RemoteError(MlvError):
    """The remote could not be used at all (unreachable, no access, no bucket)."""


Failures = dict[str, BaseException]  # oid -> what went wrong
After = Callable[[str, str], None]  # called with (oid, local path) after each download


class Remote(ABC):
    """The interface every remote offers; objects are named by their ids."""

    def __init__(self, name: str, url: str, jobs: int) -> None:
        self.name = name
        self.url = url
        self.shown_url = masked_url(url)  # for messages: the URL without its secrets
        self.jobs = jobs
        self.namespace = HASH_NAME  # the top folder: objects, or "runs" for the run-cache

    def hide(self, text: str) -> str:
        """`text` (a message, a library's error) without this remote's URL secrets."""
        for secret in _url_secrets(self.url):
            text = text.replace(secret, MASK)
        return masked_url(text)

    def with_namespace(self, namespace: str) -> Remote:
        """The same remote, looking at another top folder (e.g. the run-cache's)."""
        other = copy.copy(self)
        other.namespace = namespace
        other.__dict__.pop("_made", None)
        if isinstance(other, LocalRemote):
            other.base = os.path.join(other.root, namespace)
            other._made = set()
        return other

    @abstractmethod
    def list_oids(self) -> set[str]:
        """Every object id on the remote, from one listing."""

    @abstractmethod
    def list_mtimes(self) -> dict[str, float | None]:
        """Every object id on the remote with its modification time (seconds since the
        epoch), or None where the listing does not say; from one listing (for gc)."""

    def has(self, oids: list[str]) -> set[str]:
        """Which of `oids` the remote holds: one listing, or one request per object."""
        if len(oids) > EXISTS_ONE_BY_ONE:
            return self.list_oids() & set(oids)
        return self._exist_each(oids)

    @abstractmethod
    def _exist_each(self, oids: list[str]) -> set[str]:
        """Which of `oids` exist, asking about each one."""

    @abstractmethod
    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        """Upload (local path, oid) pairs; `sizes` are the objects' sizes where known.
        Returns the failures by oid."""

    @abstractmethod
    def download(self, items: list[tuple[str, str]], progress: Progress | None,
                 after: After | None = None, sizes: dict[str, int] | None = None
                 ) -> Failures:
        """Download (oid, local temp path) pairs. `after(oid, path)` runs as soon as each
        one has arrived (to verify and keep it); `sizes` are the expected sizes where
        known. Returns the failures by oid."""

    @abstractmethod
    def delete(self, oids: list[str]) -> Failures:
        """Delete objects (for `gc --cloud`)."""

    @abstractmethod
    def open(self, oid: str) -> Any:
        """A binary file object for reading one object (for `fsck`)."""

    def remove_stale_temps(self, older_than: float) -> int:
        """Delete temp files that interrupted uploads left, if older than `older_than`
        seconds; returns how many. Only folders have them (an S3 object appears whole)."""
        return 0


def key_of(oid: str, namespace: str = HASH_NAME) -> str:
    return f"{namespace}/{oid[:2]}/{oid[2:]}"


def _oid_from_key(key: str, namespace: str = HASH_NAME) -> str | None:
    parts = key.rsplit("/", 2)
    if len(parts) < 3 or parts[0].rsplit("/", 1)[-1] != namespace:
        return None
    oid = parts[1] + parts[2]
    return oid if len(parts[1]) == 2 and is_oid(oid) else None


class LocalRemote(Remote):
    """A folder on this machine (another disk, a network mount …)."""

    def __init__(self, name: str, url: str, jobs: int, root: str) -> None:
        super().__init__(name, url, jobs)
        self.root = root
        self.base = os.path.join(root, HASH_NAME)
        self._made: set[str] = set()

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


class FsspecRemote(Remote):
    """Any fsspec filesystem; asynchronous ones (s3fs) run requests concurrently."""

    def __init__(self, name: str, url: str, jobs: int, fs: Any, root: str,
                 endpoint: str | None = None) -> None:
        super().__init__(name, url, jobs)
        self.fs = fs
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

    def _missing_root(self) -> RemoteError:
        bucket = self.root.split("/", 1)[0]
        if self.url.split("://")[0] in ("s3", "s3a", "gs", "gcs", "az", "abfs"):
            return RemoteError(f"remote '{self.name}' ({self.shown_url}): bucket '{bucket}' does "
                               "not exist", hint="create the bucket, or fix the URL with "
                               f"`mlv remote modify {self.name} url s3://BUCKET/PATH`")
        return RemoteError(f"remote '{self.name}' ({self.shown_url}): {bucket} does not exist",
                           hint=f"create it, or fix the URL with `mlv remote modify {self.name} "
                                "url URL`")

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

        from fsspec.asyn import sync

        wanted = sorted((self.path_of(oid), oid) for oid in oids)
        paths = [path for path, _ in wanted]
        asked = set(paths)
        bucket, _, prefix = f"{self.root}/{self.namespace}/".partition("/")
        listed: set[str] = set()  # the paths asked about that the listing showed
        reached = ""  # the last path listed; the listing is in key order

        async def walk() -> bool:
            nonlocal reached
            count = 0
            pages = self.fs._iterdir(bucket, delimiter="", prefix=prefix)
            try:
                async for info in pages:
                    reached = info["name"]
                    if reached in asked:
                        listed.add(reached)
                    if reached >= paths[-1]:
                        return True
                    count += 1
                    if count % 1000 == 0:
                        left = len(paths) - bisect_right(paths, reached)
                        if count // 1000 * PAGE_COST_IN_HEADS >= left:
                            return False
            finally:
                await pages.aclose()
            return True

        with self.errors():
            try:
                complete = sync(self.fs.loop, walk)
            except FileNotFoundError:
                self.check_root()
                complete = True
        present = {oid for path, oid in wanted if path in listed}
        if complete:
            return present
        rest = [oid for _, oid in wanted[bisect_right(paths, reached):]]
        return present | self._exist_each(rest)

    def _head(self, oid: str) -> Any:
        """Is the object there? On S3 one HEAD request: s3fs's info() would follow a
        missing key with a listing, to see whether it is a folder."""
        path = self.path_of(oid)
        if self.is_s3 and hasattr(self.fs, "_call_s3"):
            bucket, _, key = path.partition("/")
            return self.fs._call_s3("head_object", Bucket=bucket, Key=key)
        return self.fs._info(path)

    def _exist_each(self, oids: list[str]) -> set[str]:
        if not oids:
            return set()
        if self.is_async:
            async def one(oid: str) -> None:
                await self._head(oid)

            failures = self._gather(one, oids, None)
        else:
            failures = self._threads(lambda oid: self.fs.info(self.path_of(oid)), oids, None)
        self._raise_fatal(failures)
        if failures:
            self.check_root()  # "not found" may mean no bucket: one clear error for that
        return {oid for oid in oids if oid not in failures}

    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        announce(progress, items, sizes, upload=True)
        if self.is_async:
            budget = _ByteBudget(BUFFER_MAX)

            async def one(item: tuple[str, str]) -> None:
                src, oid = item
                fsio.check_object(src)  # never upload what a symlink in the cache names
                if not self.is_s3:
                    await self.fs._put_file(src, self.path_of(oid), callback=counter(progress))
                    return
                size = os.path.getsize(src)
                # s3fs sends an object under 2 x chunksize in one PUT, else in parts,
                # max_concurrency of them read into memory at a time
                whole = size <= WHOLE_OBJECT_MAX
                buffered = size if whole else PART_SIZE * self.fs.max_concurrency
                async with budget.hold(buffered):
                    await self.fs._put_file(src, self.path_of(oid),
                                            chunksize=WHOLE_OBJECT_MAX if whole else PART_SIZE,
                                            callback=counter(progress))

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
            budget = _ByteBudget(BUFFER_MAX)

            async def one(item: tuple[str, str]) -> None:
                oid, dst = item
                size = sizes.get(oid)
                if not self.is_s3:
                    await self.fs._get_file(self.path_of(oid), dst, callback=counter(progress))
                elif size is not None and size > WHOLE_OBJECT_MAX:
                    # ranged GETs, max_concurrency parts held in memory at a time
                    async with budget.hold(PART_SIZE * self.fs.max_concurrency):
                        await self.fs._get_file(self.path_of(oid), dst, chunksize=PART_SIZE,
                                                callback=counter(progress))
                else:
                    # one streamed GET, also when the size is unknown (an object named
                    # only in other commits): it holds little memory. (s3fs by default
                    # opens the object, closes it, and fetches it again in ranges.)
                    await self.fs._get_file(self.path_of(oid), dst, max_concurrency=1,
                                            callback=counter(progress))
                if after:
                    after(oid, dst)

            failures = self._gather(one, items, progress, key=lambda item: item[0])
        else:
            def get(item: tuple[str, str]) -> None:
                self.fs.get_file(self.path_of(item[0]), item[1], callback=counter(progress))
                if after:
                    after(*item)

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

    # ---- running many requests ---------------------------------------------------------

    def _gather(self, fn: Callable[[Any], Any], items: list[Any], progress: Progress | None,
                key: Callable[[Any], str] = lambda item: item) -> Failures:
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


class _ByteBudget:
    """Lets tasks hold a share of a byte budget, first come first served; a task that
    needs more than the whole budget waits until it can have all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._queue: deque[object] = deque()
        self._changed: asyncio.Condition | None = None  # made on the event loop

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        share = min(size, self.limit)
        if self._changed is None:
            self._changed = asyncio.Condition()
        turn = object()
        async with self._changed:
            self._queue.append(turn)
            try:
                await self._changed.wait_for(
                    lambda: self._queue[0] is turn and self.free >= share)
            finally:
                self._queue.remove(turn)
                self._changed.notify_all()
            self.free -= share
        try:
            yield
        finally:
            async with self._changed:
                self.free += share
                self._changed.notify_all()


def announce(progress: Progress | None, items: list[tuple[str, str]],
             sizes: dict[str, int] | None, upload: bool = False) -> None:
    """Add a transfer's files and bytes (where known) to `progress`'s totals."""
    if not progress:
        return
    known = sizes or {}
    total = 0
    for item in items:
        src, oid = item if upload else (item[1], item[0])
        size = known.get(oid)
        if size is None and upload:
            try:
                size = os.path.getsize(src)
            except OSError:
                size = 0
        total += size or 0
    progress(total_files=len(items), total_bytes=total)


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


def _s3_options(options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "skip_instance_cache": True,
        "config_kwargs": {
            "connect_timeout": 3,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
            "max_pool_connections": 64,
            # mlv verifies every object by its own hash; skip botocore's extra checksums.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
    }
    if options.get("access_key_id"):
        kwargs["key"] = options["access_key_id"]
        kwargs["secret"] = options.get("secret_access_key")
        if options.get("session_token"):
            kwargs["token"] = options["session_token"]
    elif options.get("profile"):
        kwargs["profile"] = options["profile"]
    if options.get("endpoint_url"):
        kwargs["endpoint_url"] = options["endpoint_url"]
    if options.get("region"):
        kwargs["client_kwargs"] = {"region_name": options["region"]}
    return kwargs


def local_root(url: str) -> str | None:
    """The folder a local remote's URL names (a path or file:// URL), else None."""
    protocol, _, rest = url.partition("://")
    if not rest:
        protocol, rest = "file", url
    if protocol not in ("file", "local"):
        return None
    return os.path.abspath(os.path.expanduser(rest))


def open_remote(name: str, options: dict[str, Any], default_jobs: int,
                jobs: int | None = None, local_jobs: int | None = None) -> Remote:
    """Build the Remote for a configured remote's options. `default_jobs` is for network
    remotes (many requests in flight); `local_jobs` for folders (disk-bound)."""
    url = str(options.get("url", ""))
    if not url:
        raise RemoteError(f"remote '{name}' has no url",
                          hint=f"set one with `mlv remote modify {name} url URL`")
    configured = jobs or int(options.get("jobs") or 0)
    protocol, _, rest = url.partition("://")
    folder = local_root(url)
    if folder is not None:
        return LocalRemote(name, url, configured or local_jobs or default_jobs, folder)
    jobs = configured or default_jobs
    import fsspec

    try:
        if protocol in ("s3", "s3a"):
            from s3fs import S3FileSystem

            fs: Any = S3FileSystem(**_s3_options(options))
        else:
            extra = {k: v for k, v in options.items() if k not in REMOTE_KEYS}
            fs = fsspec.filesystem(protocol, **extra)
    except (ImportError, ValueError) as exc:
        raise RemoteError(f"remote '{name}': protocol {protocol}:// is not available "
                          f"({masked_url(str(exc))})",
                          hint="install the fsspec package for it (e.g. gcsfs, adlfs, sshfs)"
                          ) from None
    return FsspecRemote(name, url, jobs, fs, posixpath.normpath(rest),
                        options.get("endpoint_url"))
