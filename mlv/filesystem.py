"""`mlv://`: a read-only fsspec filesystem over one repository at one revision.

    fs = MlvFileSystem(repo="https://github.com/org/project", rev="v1")
    fs.ls("data"); fs.find("data"); fs.cat("data/train.csv")
    pandas.read_csv("mlv://data/train.csv", storage_options={"repo": URL, "rev": "v1"})

Registered with fsspec under the protocol `mlv` (the `fsspec.specs` entry point), with
the storage options `repo` (None: the repository around the current folder; a local
path; any URL git can clone), `rev` (a branch, tag or commit; None: HEAD) and `remote`
(the remote to stream from when the cache lacks a file). Paths are relative to the
repository's root: `mlv://data/train.csv` is `data/train.csv`.

The tree is the one `mlv ls` shows (files git tracks, files and folders mlv tracks, the
files inside tracked folders), at the commit `rev` named when the filesystem was made:
every call of one instance reads that commit, and a pickled instance (sent to Dask or
Spark workers) carries the commit id, so every worker reads the same one. Files are
read as `mlv.api.open` reads them (cache, else the remote, verified); a ranged read of a
big file stored in chunks fetches only the chunks it overlaps. Writing raises
`mlv.errors.ReadOnly` (a PermissionError).

Only this module imports fsspec at import time: mlv does not load it on start-up."""

from __future__ import annotations

import io
from typing import IO, Any

from fsspec import AbstractFileSystem

from mlv.api.reading import open_entry
from mlv.api.revtree import Entry
from mlv.api.source import Source
from mlv.errors import ReadOnly

BUFFER = 1 << 20  # a file opened with `open()` reads ahead at most this many bytes


class MlvFileSystem(AbstractFileSystem):
    """The files of repository `repo` at revision `rev`, read-only (see the module)."""

    protocol = "mlv"
    root_marker = ""
    cachable = False  # `repo=None` depends on the current folder; opening again is cheap

    def __init__(self, repo: str | None = None, rev: str | None = None,
                 remote: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mlv.api.public import opened_source

        self.repo = repo
        self.rev = rev
        self.remote = remote
        self.source: Source = opened_source(repo, rev)

    # ---- paths ------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        if text.startswith("mlv://"):
            text = text[len("mlv://"):]
        return text.strip("/")

    def unstrip_protocol(self, name: str) -> str:
        return f"mlv://{name}"

    # ---- listing ----------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The entries of the folder `path` (the file itself, for a file)."""
        entries = self.source.walk(self._strip_protocol(path))
        if detail:
            return [_info(e) for e in entries]
        return [e.path for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return _info(self.source.stat(self._strip_protocol(path)))

    def ukey(self, path: str) -> str:
        """The entry's id (xxh128 for mlv's files, the git blob id for git's): the same
        bytes, the same key, at any revision."""
        oid = self.info(path)["oid"]
        return str(oid) if oid else super().ukey(path)

    # ---- reading ----------------------------------------------------------------------

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: dict[str, Any] | None = None,
              **kwargs: Any) -> IO[bytes]:
        if mode != "rb":
            self._refuse(f"open {path} with mode {mode!r}")
        entry = self.source.stat(self._strip_protocol(path))
        raw = open_entry(self.source, entry, self.remote)
        assert entry.size is not None
        return _File(raw, entry.path, entry.size, block_size or BUFFER)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        """The bytes of `path` from `start` to `end` (negative: from the end). Only
        that range is read: for a big file stored in chunks, only its chunks."""
        entry = self.source.stat(self._strip_protocol(path))
        size = entry.size or 0
        lo = 0 if start is None else (max(0, size + start) if start < 0 else start)
        hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        with open_entry(self.source, entry, self.remote) as raw:
            if hi <= lo:
                return b""
            raw.seek(lo)
            return _read_exactly(raw, hi - lo)

    # ---- read-only --------------------------------------------------------------------

    def _refuse(self, what: str) -> Any:
        raise ReadOnly(f"cannot {what}: mlv:// reads {self.source.label}, read-only",
                       hint="write to a local path, then `mlv add` it in that repository")

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> None:
        self._refuse(f"write {path}")

    def put_file(self, lpath: str, rpath: str, **kwargs: Any) -> None:
        self._refuse(f"write {rpath}")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self._refuse(f"copy to {path2}")

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        self._refuse(f"move {path1}")

    def rm_file(self, path: str) -> None:
        self._refuse(f"remove {path}")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        self._refuse(f"remove {path}")

    def rmdir(self, path: str) -> None:
        self._refuse(f"remove {path}")

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._refuse(f"make the folder {path}")

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._refuse(f"make the folder {path}")

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self._refuse(f"write {path}")

    # ---- pickling (Dask, Spark) -------------------------------------------------------

    def __reduce__(self) -> Any:
        """Re-made from the commit id, not the branch, so every worker reads the same
        commit; a repository named by the current folder is named by its path."""
        src = self.source
        repo = self.repo if src.url is not None else src.repo.root
        options = dict(self.storage_options, repo=repo, rev=src.commit)
        return _make, (type(self), options)


def _make(cls: type[MlvFileSystem], options: dict[str, Any]) -> MlvFileSystem:
    return cls(**options)


def _info(entry: Entry) -> dict[str, Any]:
    return {"name": entry.path, "size": entry.size or 0, "type": entry.type,
            "kind": entry.kind, "oid": entry.oid, "exec": entry.exec,
            "tracked_by": entry.tracked_by}


def _read_exactly(raw: IO[bytes], n: int) -> bytes:
    parts = []
    while n > 0:
        data = raw.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class _File(io.BufferedReader):
    """A file opened through the filesystem: buffered, seekable, with the `path` and
    `size` attributes that fsspec callers look for."""

    def __init__(self, raw: IO[bytes], path: str, size: int, buffer: int) -> None:
        super().__init__(raw if isinstance(raw, io.RawIOBase) else _raw_view(raw), buffer)
        self.path = path
        self.size = size


def _raw_view(fobj: IO[bytes]) -> io.RawIOBase:
    from mlv.remote.reader import RawView

    return RawView(fobj)
