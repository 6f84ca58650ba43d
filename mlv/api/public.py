"""The Python API for reading versioned data: `mlv.api.open`, `read`, `get_url`,
`params_show` and `metrics_show` (exported lazily by `mlv.api`).

Every function takes `repo` (None: the repository around the current folder; a local
path; or any URL git can clone) and `rev` (a branch, tag or commit; None: HEAD), and
reads from git objects and the cache or the remote, never writing the workspace or the
git index of the repository read. Errors are `mlv.errors.ReadError`s (also exported
by `mlv.api`).

Within one process, a repository opened at a commit is kept (a few of them, most recently
used first), so reading many files of one revision opens it once; a branch or tag name is
still resolved again on every call, so it names its newest commit."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import IO, Any, Literal, overload

from mlv.api import reading, source
from mlv.api.revtree import GIT
from mlv.errors import NotAFile, NotPushed, NoURL

__all__ = ["open", "read", "get_url", "params_show", "metrics_show"]

KEPT_SOURCES = 8  # repositories at a commit kept open within the process
_kept: OrderedDict[tuple[str, str | None, str | None], source.Source] = OrderedDict()
_kept_lock = threading.Lock()


@overload
def open(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, mode: Literal["r"] = "r", encoding: str | None = None
         ) -> AbstractContextManager[IO[str]]: ...
@overload
def open(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, *, mode: Literal["rb"], encoding: str | None = None
         ) -> AbstractContextManager[IO[bytes]]: ...
@overload
def open(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, mode: str = "r", encoding: str | None = None
         ) -> AbstractContextManager[IO[Any]]: ...


def open(path: str, repo: str | None = None, rev: str | None = None,  # noqa: A001
         remote: str | None = None, mode: str = "r", encoding: str | None = None
         ) -> AbstractContextManager[IO[Any]]:
    """Open the file `path` (relative to the repository's root) as it was at `rev`.

    A context manager yielding a read-only file object: text (`mode="r"`, decoded with
    `encoding`, default UTF-8) or binary (`mode="rb"`, seekable); another mode raises
    ValueError. The bytes come from the local cache when it has them, else are streamed
    from `remote` (default: the remote the repository names for that file) without
    writing anything; they are checked against the recorded hash, and damaged data
    raises `ObjectCorrupted`, never returns wrong bytes. The file is opened when the
    `with` block is entered.

        with mlv.api.open("data/train.csv", rev="v1") as f:
            header = f.readline()
    """
    return _opened(path, repo, rev, remote, _check_mode(mode), encoding)


@contextlib.contextmanager
def _opened(path: str, repo: str | None, rev: str | None, remote: str | None,
            binary: bool, encoding: str | None) -> Iterator[IO[Any]]:
    fobj = _open_binary(path, repo, rev, remote)
    try:
        if binary:
            yield fobj
        else:
            with io.TextIOWrapper(_buffered(fobj), encoding=encoding or "utf-8") as text:
                yield text
    finally:
        fobj.close()


@overload
def read(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, mode: Literal["r"] = "r", encoding: str | None = None
         ) -> str: ...
@overload
def read(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, *, mode: Literal["rb"], encoding: str | None = None
         ) -> bytes: ...
@overload
def read(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, mode: str = "r", encoding: str | None = None
         ) -> str | bytes: ...


def read(path: str, repo: str | None = None, rev: str | None = None,
         remote: str | None = None, mode: str = "r", encoding: str | None = None
         ) -> str | bytes:
    """The whole content of `path` at `rev`: `str` (mode "r", decoded with `encoding`,
    default UTF-8) or `bytes` (mode "rb"). See `open`."""
    binary = _check_mode(mode)
    with _open_binary(path, repo, rev, remote) as fobj:
        data = fobj.read()
    return data if binary else data.decode(encoding or "utf-8")


def get_url(path: str, repo: str | None = None, rev: str | None = None,
            remote: str | None = None) -> str:
    """The URL of the file `path`'s object on the remote, so that another engine (with
    that remote's credentials) can read it directly. The remote is not asked whether it
    holds the object in format 1; in format 2, `NotPushed` when it holds it nowhere.

    Raises `NoURL` when no single URL holds the bytes: a file git tracks, or (format 2)
    an object kept in a pack or cut into chunks; read those with `open` or the `mlv://`
    filesystem. `NotAFile` for a folder."""
    from mlv.remote.reader import ObjectNotFoundError, object_url

    src = opened_source(repo, rev)
    entry = src.stat(path)
    if entry.is_dir:
        raise NotAFile(f"{entry.path or '.'} is a folder in {src.label}: get_url gives the "
                       "URL of one file", hint="ask for a file inside it (`mlv ls` lists "
                                                "them)")
    if entry.kind == GIT:
        raise NoURL(f"{entry.path} is tracked by git in {src.label}, not by mlv: no remote "
                    "holds it", hint="read it with mlv.api.open or mlv.api.read, or from "
                                     "the git repository itself")
    assert entry.oid is not None
    store = reading.remote_of(src, entry, remote)
    try:
        url = object_url(store, entry.oid)
    except ObjectNotFoundError:
        raise NotPushed(f"{entry.path} of {src.label} is not on remote '{store.name}'",
                        [entry.oid], hint="run `mlv push` in the repository that tracks "
                                          "it") from None
    if url is None:
        raise NoURL(f"no single URL holds {entry.path} of {src.label}: remote "
                    f"'{store.name}' keeps it in a pack or cut into chunks (storage "
                    "format 2)", hint="read it with mlv.api.open, or through the mlv:// "
                                      "filesystem (fsspec)")
    return url


def params_show(repo: str | None = None, rev: str | None = None) -> dict[str, Any]:
    """The params that the stages of the repository at `rev` declare: {file: values
    nested as in the file} (`mlv params show`). A file that cannot be read there is left
    out."""
    from mlv.api import show

    src = opened_source(repo, rev)
    return show.params(src.repo, src.index, src.rev or "HEAD").files


def metrics_show(repo: str | None = None, rev: str | None = None) -> dict[str, Any]:
    """The metrics files of the repository at `rev`: {file: values nested as in the
    file} (`mlv metrics show`). A file that cannot be read there (a cached metrics file
    the local cache lacks) is left out."""
    from mlv.api import show

    src = opened_source(repo, rev)
    return show.metrics(src.repo, src.index, src.rev or "HEAD").files


# ---- helpers -------------------------------------------------------------------------


def _check_mode(mode: str) -> bool:
    """True for binary; ValueError unless `mode` is "r" or "rb" (read-only)."""
    if mode not in ("r", "rb"):
        raise ValueError(f"mode {mode!r} is not supported: versioned data is read-only "
                         "(use 'r' or 'rb')")
    return mode == "rb"


def _open_binary(path: str, repo: str | None, rev: str | None, remote: str | None
                 ) -> IO[bytes]:
    return reading.open_path(opened_source(repo, rev), path, remote)


def _buffered(fobj: IO[bytes]) -> IO[bytes]:
    """`fobj` as a buffered binary file (what io.TextIOWrapper reads from)."""
    if isinstance(fobj, io.RawIOBase):
        return io.BufferedReader(fobj)
    return fobj


def opened_source(repo: str | None, rev: str | None) -> source.Source:
    """The repository at `rev`: the one opened by an earlier call for the same `repo`,
    `rev` and current folder when `rev` still names the same commit (checked with one
    `git rev-parse`; a clone is not fetched for that only when `rev` is a full commit
    id), else opened now."""
    from mlv import scm
    from mlv.errors import ScmError

    key = (os.getcwd(), repo, rev)
    with _kept_lock:
        kept = _kept.get(key)
    if kept is not None:
        if kept.cloned:
            same = rev == kept.commit
        else:
            try:
                same = scm.resolve_commit(kept.repo.root, rev or "HEAD") == kept.commit
            except ScmError:
                same = False
        if same:
            with _kept_lock:
                if key in _kept:
                    _kept.move_to_end(key)
            return kept
    fresh = source.open_source(repo, rev)
    with _kept_lock:
        _kept[key] = fresh
        while len(_kept) > KEPT_SOURCES:
            _kept.popitem(last=False)
    return fresh
