"""Read one object's bytes straight from a remote, as a seekable read-only file object,
without writing the cache or the workspace.

The interface (what `mlv.api.open`, `get_url` and the fsspec filesystem build on):

- `open_object(remote, oid, size) -> BinaryIO`: a read-only `io.RawIOBase` (`read(n)`,
  `readinto`, `readall`, `seek`/`tell`, `seekable()` True, `close`, a context manager).
  `read(n)` returns `n` bytes, fewer only at the end of the object; `b""` past it.
  `remote` is what `mlv.remote.open.open_remote` or `mlv.api.remote.resolve` give (a
  format-2 remote is a `PackedRemote`); `size` is the object's size as the pointer or
  manifest records it. Works for files and `.dir` manifests, in every format.
- `object_url(remote, oid) -> str | None`: a URL another engine can read the whole object
  from, or None when there is none (see its docstring).
- `ObjectNotFoundError`: the remote does not have the object (it was not pushed).
- `ObjectCorruptError`: the bytes the remote returned do not match the object's hash (or
  its size): the remote is damaged. No wrong byte is ever returned.

How each kind of object is read and verified:

- A loose object (format 1; and in format 2 the `.dir` manifests and big files stored
  whole) and a small object in a format-2 pack: read whole once (a loose one, which may be
  big, is spooled to a temporary file outside the repository, hashed as it arrives), its
  hash and size checked before the first byte is returned; reads and seeks are then
  served from that copy.
- A big file stored as a recipe of chunks (format 2): the recipe is read and checked (its
  size must be `size`), and each read fetches only the chunks that overlap it (ranged
  reads of their packs, neighbours merged), each checked against its id before any of
  its bytes is returned. A few recently read chunks are kept, so small sequential reads do
  not fetch a chunk again. A ranged read cannot check the whole file's hash (that needs
  every byte); when the chunks are read in order from the first to the last (a whole
  read, or sequential reads), the whole file's hash is checked too, before the last
  chunk's bytes are returned.

Nothing is written to the cache's objects or to a workspace. A format-2 remote keeps
the index segments it reads in the cache's index folder (they never change, and every
command that uses the remote reads them), as it always does.
"""

from __future__ import annotations

import bisect
import io
import tempfile
from collections import OrderedDict
from typing import IO, Any, BinaryIO, cast

import xxhash

from mlv.errors import ObjectCorrupted
from mlv.hashing import is_oid
from mlv.remote.base import Failures, Remote, RemoteError
from mlv.remote.keys import key_of
from mlv.remote.packed import PackedRemote
from mlv.remote.packs import CorruptDataError, MiB, Recipe, Record

BLOCK = 8 * MiB  # a loose object is read in ranged reads of this size
SPOOL_IN_MEMORY = 8 * MiB  # a loose object up to this size is held in memory
CHUNKS_KEPT = 8 * MiB  # bytes of recently read chunks kept (at least one chunk)
BATCH = 16 * MiB  # chunks fetched together for one read, at most this many bytes at once


class ObjectNotFoundError(RemoteError):
    """The remote does not have the object."""

    def __init__(self, remote: Remote, oid: str) -> None:
        super().__init__(f"object {oid[:8]} is not on remote '{remote.name}'",
                         hint="push it with `mlv push` from the repository that made it")
        self.oid = oid
        self.remote = remote.name


class ObjectCorruptError(RemoteError, ObjectCorrupted):
    """The bytes the remote returned for the object do not match its hash or size
    (also an ObjectCorrupted: it may be raised by any read, long after the open)."""

    def __init__(self, remote: Remote, oid: str, problem: str) -> None:
        super().__init__(f"remote '{remote.name}' returned damaged bytes for object "
                         f"{oid[:8]}: {remote.hide(problem)}",
                         hint=f"the remote is damaged; run `mlv fsck --remote {remote.name}`")
        self.oid = oid
        self.remote = remote.name
        self.problem = problem


def open_object(remote: Remote, oid: str, size: int) -> BinaryIO:
    """A seekable, read-only binary file of object `oid` (`size` bytes) on `remote`,
    verified as the module's docstring says. ObjectNotFoundError when the remote does
    not have it, ObjectCorruptError when its bytes are damaged; RemoteError when the
    remote cannot be reached."""
    _check_args(oid, size)
    if isinstance(remote, PackedRemote):
        rec = remote.index().lookup(oid)
        if rec is not None:
            reader: io.RawIOBase = RawView(io.BytesIO(_blob(remote, oid, rec, size)))
        elif oid in remote.recipes():
            reader = _ChunkedReader(remote, oid, _recipe(remote, oid, size))
        else:
            reader = RawView(_spool(remote.inner, remote, oid, size))
    else:
        reader = RawView(_spool(remote, remote, oid, size))
    return cast(BinaryIO, reader)


def object_url(remote: Remote, oid: str) -> str | None:
    """The URL of object `oid` on `remote` that another engine (pandas, Spark, an fsspec
    filesystem with the remote's credentials) can read the whole object from, or None.

    Format 1: the URL of the loose object (`<remote url>/xxh128/ab/cdef…`); the remote is
    not asked whether it holds it. Format 2: the remote's index and list of recipes are
    read; an object stored loose there (folder manifests, big files stored whole) has the
    same kind of URL, but one stored in a pack or as a recipe of chunks has None: its
    bytes are a range of a pack file, or pieces of several packs, so no single URL names
    them (read it with `open_object`). ObjectNotFoundError when a format-2 remote holds
    it nowhere."""
    _check_args(oid, 0)
    if isinstance(remote, PackedRemote):
        if remote.index().lookup(oid) is not None or oid in remote.recipes():
            return None
        if not remote.inner.has([oid]):
            raise ObjectNotFoundError(remote, oid)
        remote = remote.inner
    return f"{remote.url.rstrip('/')}/{key_of(oid, remote.namespace)}"


def _check_args(oid: str, size: int) -> None:
    if not is_oid(oid):
        raise ValueError(f"not an object id: {oid!r}")
    if size < 0:
        raise ValueError(f"negative object size {size}")


def _digest(oid: str) -> str:
    return oid.removesuffix(".dir")  # a manifest's id is its hash + ".dir"


# ---- whole objects -----------------------------------------------------------------------


def _blob(remote: PackedRemote, oid: str, rec: Record, size: int) -> bytes:
    """The verified bytes of the blob `rec` (a small object in a pack)."""
    failures: Failures = {}
    for _, data in remote.read_blobs([rec], failures):
        if len(data) != size:
            raise ObjectCorruptError(remote, oid, f"it has {len(data)} bytes where {size} "
                                                  "are expected")
        return data
    raise _failure(remote, oid, failures[oid])


def _failure(remote: Remote, oid: str, exc: BaseException) -> BaseException:
    """What to raise for a blob that could not be read: damage is ObjectCorruptError (a
    blob that does not match its id; a pack the index lists but the remote lacks)."""
    if isinstance(exc, CorruptDataError):
        return ObjectCorruptError(remote, oid, exc.problem)
    if isinstance(exc, FileNotFoundError):
        return ObjectCorruptError(remote, oid, "a pack that its index lists is missing")
    return exc


def _spool(store: Remote, remote: Remote, oid: str, size: int) -> IO[bytes]:
    """The loose object `oid` of `store`, copied to a temporary file (in memory when
    small) in ranged reads and hashed as it arrives; never more than `size` + 1 bytes
    are read. Rewound, once its hash and size have been checked."""
    key = key_of(oid, store.namespace)
    hasher = xxhash.xxh3_128()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        got = 0
        while True:
            want = min(BLOCK, size + 1 - got)
            try:
                data = store.get_key(key, got, got + want)
            except FileNotFoundError:
                raise ObjectNotFoundError(remote, oid) from None
            hasher.update(data)
            spool.write(data)
            got += len(data)
            if len(data) < want or got > size:
                break
        if got != size:
            raise ObjectCorruptError(remote, oid, f"it has {'more than ' * (got > size)}"
                                                  f"{got} bytes where {size} are expected")
        if hasher.hexdigest() != _digest(oid):
            raise ObjectCorruptError(remote, oid, "its bytes do not match its hash")
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


class RawView(io.RawIOBase):
    """A raw, read-only, seekable view of a binary file object: here the verified copy of
    an object (a spooled file or BytesIO); also a cache object or a git blob for the
    `mlv://` filesystem."""

    def __init__(self, copy: IO[bytes]) -> None:
        super().__init__()
        self._copy = copy

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        self._checkClosed()
        data = self._copy.read(len(memoryview(buf)))
        memoryview(buf).cast("B")[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        return self._copy.read(-1 if size is None else size)

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        return self._copy.seek(offset, whence)

    def tell(self) -> int:
        self._checkClosed()
        return self._copy.tell()

    def close(self) -> None:
        if not self.closed:
            self._copy.close()
        super().close()


# ---- big files stored as chunks ---------------------------------------------------------


def _recipe(remote: PackedRemote, oid: str, size: int) -> Recipe:
    try:
        return remote.recipe(oid, size, keep=False)  # the file is not kept either
    except CorruptDataError as exc:
        raise ObjectCorruptError(remote, oid, f"its recipe: {exc.problem}") from None
    except FileNotFoundError:  # deleted since the listing
        raise ObjectNotFoundError(remote, oid) from None


class _ChunkedReader(io.RawIOBase):
    """A big file read from its chunks, fetched as reads need them."""

    def __init__(self, remote: PackedRemote, oid: str, recipe: Recipe) -> None:
        super().__init__()
        self._remote = remote
        self._oid = oid
        self._chunks = recipe.chunks
        self._size = recipe.size
        self._starts: list[int] = []
        offset = 0
        for _, length in recipe.chunks:
            self._starts.append(offset)
            offset += length
        self._pos = 0
        self._kept: OrderedDict[int, bytes] = OrderedDict()  # chunk index -> bytes
        self._kept_bytes = 0
        self._hasher = xxhash.xxh3_128()
        self._hashed = 0  # chunks fed to the whole file's hash, in order
        self._damaged: ObjectCorruptError | None = None  # the whole file's hash is wrong

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self._size
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence {whence}")
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        self._pos = offset
        return offset

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        out = bytearray(end - self._pos)
        self._fill(self._pos, memoryview(out))
        self._pos = end
        return bytes(out)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buf: Any) -> int:
        self._checkClosed()
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if n:
            self._fill(self._pos, view[:n])
            self._pos += n
        return n

    def _fill(self, start: int, out: memoryview) -> None:
        """Copy the file's bytes from `start` into `out`, fetching the chunks missing."""
        if self._damaged is not None:
            raise self._damaged
        end = start + len(out)
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_left(self._starts, end) - 1
        wanted = list(range(first, last + 1))
        for batch in self._batches(wanted):
            got = self._fetch([i for i in batch if i not in self._kept])
            for i in batch:
                data = got.get(i)
                if data is None:
                    data = self._kept[i]
                    self._kept.move_to_end(i)
                self._hash_in_order(i, data)
                lo = max(start, self._starts[i])
                hi = min(end, self._starts[i] + len(data))
                out[lo - start:hi - start] = data[lo - self._starts[i]:hi - self._starts[i]]
                if i in got:
                    self._keep(i, data)

    def _batches(self, wanted: list[int]) -> list[list[int]]:
        """`wanted` (chunk indexes) in runs of at most BATCH bytes (one chunk at least)."""
        batches: list[list[int]] = []
        held = BATCH
        for i in wanted:
            length = self._chunks[i][1]
            if held + length > BATCH:
                batches.append([])
                held = 0
            batches[-1].append(i)
            held += length
        return batches

    def _fetch(self, indexes: list[int]) -> dict[int, bytes]:
        """The verified bytes of the chunks `indexes`, read from their packs together."""
        if not indexes:
            return {}
        view = self._remote.index()
        records: dict[str, Record] = {}
        for i in indexes:
            cid = self._chunks[i][0]
            rec = view.lookup(cid)
            if rec is None:
                raise ObjectCorruptError(self._remote, self._oid,
                                         f"its chunk {cid} is not on the remote")
            records[cid] = rec
        failures: Failures = {}
        by_id = dict(self._remote.read_blobs(list(records.values()), failures))
        if failures:
            raise _failure(self._remote, self._oid, next(iter(failures.values())))
        return {i: by_id[self._chunks[i][0]] for i in indexes}

    def _keep(self, i: int, data: bytes) -> None:
        self._kept[i] = data
        self._kept_bytes += len(data)
        while self._kept_bytes > CHUNKS_KEPT and len(self._kept) > 1:
            _, old = self._kept.popitem(last=False)
            self._kept_bytes -= len(old)

    def _hash_in_order(self, i: int, data: bytes) -> None:
        """Feed chunk `i` to the whole file's hash when it is the next in order; after
        the last one, check that hash (before any byte of that chunk is returned)."""
        if i != self._hashed:
            return
        self._hasher.update(data)
        self._hashed += 1
        if self._hashed == len(self._chunks) and self._hasher.hexdigest() != self._oid:
            self._damaged = ObjectCorruptError(
                self._remote, self._oid, "its chunks do not make the file its recipe names")
            raise self._damaged

    def close(self) -> None:
        self._kept.clear()
        self._kept_bytes = 0
        super().close()
