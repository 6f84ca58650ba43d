"""S3's tuning: how big objects move in parts, how much memory transfers hold, when a
listing is cheaper than asking about each object, and the s3fs options."""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

# On S3, one listing page (1000 keys, pages fetched one after another) takes about as
# long as this many HEAD requests with 32 in flight (measured: a page 0.2 s and a HEAD
# 1.9 ms on moto; on AWS a page takes about 0.1-0.2 s and a HEAD 10-30 ms, one at a time).
PAGE_COST_IN_HEADS = 100
# S3 objects up to this size move in one request each; bigger ones in parallel parts.
# One request is the least work for the endpoint, and with many objects in flight the
# connections are busy anyway; parts pay off only when one stream would be the
# bottleneck (rclone switches to multi-stream downloads at the same size).
WHOLE_OBJECT_MAX = 256 * 2**20
PART_SIZE = 64 * 2**20  # bigger objects move in parts of this size, 10 at a time
# Uploads (and downloads in parts) hold data in memory: what they hold stays under this.
BUFFER_MAX = 2**30


class ByteBudget:
    """Lets tasks hold a share of a byte budget, first come first served; a task that
    needs more than the whole budget waits until it can have all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._queue: deque[object] = deque()
        self._changed: asyncio.Condition | None = None  # made on the event loop, when
        # first needed (asyncio takes tens of milliseconds to import)

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        share = min(size, self.limit)
        if self._changed is None:
            import asyncio

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


def filesystem(options: dict[str, Any]) -> Any:
    """An s3fs filesystem for a remote's options (endpoint, credentials, profile …)."""
    from s3fs import S3FileSystem

    return S3FileSystem(**s3_options(options))


def s3_options(options: dict[str, Any]) -> dict[str, Any]:
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


def head(fs: Any, path: str) -> Any:
    """One HEAD request for `path` ("bucket/key"): s3fs's info() would follow a missing
    key with a listing, to see whether it is a folder. A coroutine."""
    bucket, _, key = path.partition("/")
    return fs._call_s3("head_object", Bucket=bucket, Key=key)


async def put_file(fs: Any, src: str, path: str, budget: ByteBudget, callback: Any) -> None:
    """Upload the file `src` to `path`: in one PUT up to WHOLE_OBJECT_MAX, else in parts."""
    size = os.path.getsize(src)
    # s3fs sends an object under 2 x chunksize in one PUT, else in parts,
    # max_concurrency of them read into memory at a time
    whole = size <= WHOLE_OBJECT_MAX
    buffered = size if whole else PART_SIZE * fs.max_concurrency
    async with budget.hold(buffered):
        await fs._put_file(src, path, chunksize=WHOLE_OBJECT_MAX if whole else PART_SIZE,
                           callback=callback)


async def get_file(fs: Any, path: str, dst: str, size: int | None, budget: ByteBudget,
                   callback: Any) -> None:
    """Download `path` to the file `dst`; `size` is the object's size where known."""
    if size is not None and size > WHOLE_OBJECT_MAX:
        # ranged GETs, max_concurrency parts held in memory at a time
        async with budget.hold(PART_SIZE * fs.max_concurrency):
            await fs._get_file(path, dst, chunksize=PART_SIZE, callback=callback)
    else:
        # one streamed GET, also when the size is unknown (an object named
        # only in other commits): it holds little memory. (s3fs by default
        # opens the object, closes it, and fetches it again in ranges.)
        await fs._get_file(path, dst, max_concurrency=1, callback=callback)


def list_until_cheaper(fs: Any, prefix: str, paths: list[str]) -> tuple[set[str], str | None]:
    """List `prefix` ("bucket/folder/") in key order, noting which of `paths` (sorted,
    each under `prefix`) it shows, until the listing has cost about as much as asking
    about the paths it has not reached yet. Returns the paths seen, and the last key
    listed when the listing stopped early (None when it got past the last path or to
    its end). Without knowing how big the remote is, listing then asking costs at most
    about twice the cheaper of listing everything and asking about everything."""
    from fsspec.asyn import sync

    asked = set(paths)
    bucket, _, key_prefix = prefix.partition("/")
    listed: set[str] = set()  # the paths asked about that the listing showed
    reached = ""  # the last path listed; the listing is in key order

    async def walk() -> bool:
        nonlocal reached
        count = 0
        pages = fs._iterdir(bucket, delimiter="", prefix=key_prefix)
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

    complete = sync(fs.loop, walk)
    return listed, None if complete else reached


class RangeReader:
    """Ranged GETs through botocore's own (blocking) client, from many threads at once.

    A format-2 pull reads packs in ranges from several threads. Through s3fs, every
    response body is read on its one event-loop thread, which then bounds the transfer
    (measured on moto: 1 GiB in 65 packs, 8 threads, 1.6-2.1 s through s3fs, 1.0-1.3 s
    through botocore's client, whose sockets release the GIL while they read). This is
    only the fast path: a request that fails here is made again through s3fs, whose
    errors every command already reports; after a failure that is not a missing key,
    this remote stops using the fast path."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._client: Any = None
        self._lock = threading.Lock()
        self.usable = True

    def _make(self) -> Any:
        import botocore.config
        import botocore.session

        kw = s3_options(self._options)
        config = dict(kw["config_kwargs"])
        session = botocore.session.Session(profile=kw.get("profile"))
        return session.create_client(
            "s3", endpoint_url=kw.get("endpoint_url"),
            region_name=kw.get("client_kwargs", {}).get("region_name"),
            aws_access_key_id=kw.get("key"), aws_secret_access_key=kw.get("secret"),
            aws_session_token=kw.get("token"), config=botocore.config.Config(**config))

    def get(self, path: str, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of `path` ("bucket/key"), or None when this path could not
        give them (the caller asks s3fs)."""
        if not self.usable:
            return None
        bucket, _, key = path.partition("/")
        try:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
            body = self._client.get_object(Bucket=bucket, Key=key,
                                           Range=f"bytes={start}-{end - 1}")["Body"]
            try:  # never more than was asked for, whatever length the server gives
                data: bytes = body.read(end - start)
            finally:
                body.close()
        except Exception as exc:  # noqa: BLE001 - s3fs asks again and reports it
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in ("NoSuchKey", "404", "InvalidRange"):
                self.usable = False
            return None
        return data  # shorter when the range goes past the end, as through s3fs
