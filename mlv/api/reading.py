"""Open one file of a repository at a revision, as a verified read-only binary file.

What `mlv.api.open`, `mlv get` and the `mlv://` filesystem read through:

- a file git tracks: its blob, read from git objects (git checks them);
- a file mlv tracks (itself, or inside a tracked folder): the cache object when the
  source's cache holds it, checked against its hash before the first byte is returned;
  else streamed from the remote (`mlv.remote.reader.open_object`: loose objects and
  packed ones checked whole, chunked files chunk by chunk), never written to a cache
  or a workspace.

Errors are `ReadError`s (mlv.errors): PathNotFound, NotAFile, NotPushed, NoRemote,
ObjectCorrupted."""

from __future__ import annotations

import io
import os
import tempfile
from typing import TYPE_CHECKING, BinaryIO, cast

from mlv import fsio, scm
from mlv.api.revtree import GIT, Entry
from mlv.errors import NotAFile, NotPushed, ObjectCorrupted, ReadError

if TYPE_CHECKING:
    from mlv.api.source import Source
    from mlv.index import Item
    from mlv.remote import Remote

_SYMLINK = "120000"
HASH_BLOCK = 8 << 20


def open_path(source: Source, path: str, remote: str | None = None) -> BinaryIO:
    """The file at `path` (repo-relative) of `source`, opened to read (see the module's
    docstring); `remote` names the remote to stream from when the cache lacks it
    (default: the one the tracking pointer or stage names, else the default remote)."""
    return open_entry(source, source.stat(path), remote)


def open_entry(source: Source, entry: Entry, remote: str | None = None) -> BinaryIO:
    if entry.is_dir:
        raise NotAFile(f"{entry.path or '.'} is a folder in {source.label}",
                       hint="open a file inside it (`mlv ls` lists them), or copy the "
                            "whole folder with `mlv get`")
    assert entry.oid is not None and entry.size is not None
    if entry.kind == GIT:
        return _git_file(source, entry)
    cached = _cached(source, entry)
    if cached is not None:
        return cached
    return _streamed(source, entry, remote)


def remote_of(source: Source, entry: Entry, remote: str | None = None) -> Remote:
    """The remote that holds `entry`'s data: `remote` if named, else the one its item
    names (`remote:` in mlv.yaml), else the source's default."""
    return source.remote(remote or _item_remote(source, entry))


def _item_remote(source: Source, entry: Entry) -> str | None:
    found = source.index.item_at(entry.path)
    item: Item | None = found[0] if found else None
    return item.remote if item is not None else None


def _git_file(source: Source, entry: Entry) -> BinaryIO:
    mode = source.files.get(entry.path, ("", "", 0))[0]
    if mode == _SYMLINK:
        raise NotAFile(f"{entry.path} is a symlink in {source.label}; mlv does not "
                       "follow links it reads from a repository",
                       hint="read the file it points to instead")
    if mode == "160000":
        raise NotAFile(f"{entry.path} is a git submodule in {source.label}",
                       hint="read the submodule's repository instead")
    if (entry.size or 0) > scm.BLOB_STREAMED:
        return _spooled_blob(source, entry)
    blobs = scm.read_blobs(source.repo.root, [entry.oid or ""])
    if entry.oid not in blobs:
        raise ReadError(f"git cannot read {entry.path} of {source.label}",
                        hint="the clone may be damaged: `git fsck` there")
    return io.BytesIO(blobs[entry.oid])


def _spooled_blob(source: Source, entry: Entry) -> BinaryIO:
    """A big git blob, copied by git to a temporary file (never held in memory)."""
    assert entry.oid is not None
    fobj = tempfile.TemporaryFile()
    try:
        scm.copy_blob(source.repo.root, entry.oid, fobj.fileno())
        fobj.seek(0)
    except BaseException:
        fobj.close()
        raise
    return cast(BinaryIO, fobj)


def _cached(source: Source, entry: Entry) -> BinaryIO | None:
    """The cache object, checked against its hash (read once before use), or None."""
    from mlv.hashing import hasher_hex

    assert entry.oid is not None
    path = source.repo.odb.path_of(entry.oid)
    try:
        fobj = fsio.open_object(path)
    except FileNotFoundError:
        return None
    try:
        digest, size = hasher_hex(fobj, HASH_BLOCK)
        if digest != entry.oid or size != entry.size:
            raise ObjectCorrupted(
                f"the cache object of {entry.path} ({entry.oid}) is damaged: its bytes do "
                "not match its hash", hint="delete it (`mlv fsck` finds every damaged "
                                           "object), then read again: it comes from the remote")
        fobj.seek(0, os.SEEK_SET)
        return fobj
    except BaseException:
        fobj.close()
        raise


def _streamed(source: Source, entry: Entry, remote: str | None) -> BinaryIO:
    from mlv.remote.reader import ObjectNotFoundError, open_object

    assert entry.oid is not None and entry.size is not None
    store = remote_of(source, entry, remote)
    try:
        return open_object(store, entry.oid, entry.size)
    except ObjectNotFoundError:
        raise NotPushed(f"{entry.path} of {source.label} is in neither the cache nor "
                        f"remote '{store.name}'", [entry.oid],
                        hint="run `mlv push` in the repository that tracks it") from None
