"""Rehashing DVC's data for mlv: the bytes DVC recorded (by md5) found in the workspace or
in DVC's cache, checked, hashed with xxh3-128 and stored in mlv's cache."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import NamedTuple

from mlv import dvcformat, fsio, manifest, workspace
from mlv.dvcformat import DvcFormatError, DvcOut
from mlv.hashing import hash_bytes, hash_file
from mlv.manifest import Entry
from mlv.odb import ObjectStore
from mlv.snapshot import snapshot
from mlv.state import StatCache
from mlv.workspace import Progress

_MD5_KEY = "\0md5"  # stat-cache key suffix: a workspace file's md5, so a rerun reads nothing
FROM_WORKSPACE = "the workspace"
FROM_DVC_CACHE = "DVC's cache"


class Hashed(NamedTuple):
    oid: str  # xxh3-128, with `.dir` for a folder
    size: int
    nfiles: int | None = None


class Rehasher:
    """Finds the bytes DVC recorded for a path (the workspace copy when its md5 matches,
    else DVC's cache), hashes them with xxh3-128 and, with an `odb`, stores them there
    (without one, a dry run, nothing is written)."""

    def __init__(self, root: str, odb: ObjectStore | None, state: StatCache, jobs: int,
                 dvc_cache: str, progress: Progress | None) -> None:
        self.root = root
        self.odb = odb
        self.state = state
        self.jobs = jobs
        self.dvc_cache = dvc_cache
        self.progress = progress
        self._objects: dict[str, tuple[str, int] | None] = {}
        self._done: dict[tuple[str, str, bool], tuple[Hashed, str] | None] = {}

    def find(self, rel: str, out: DvcOut, store: bool = True) -> tuple[Hashed, str] | None:
        """(hash, where it came from) of the bytes `out` records at `rel`, or None when
        they are in neither place (or DVC recorded no md5)."""
        if out.md5 is None:
            return None
        key = (rel, out.md5, store)
        if key not in self._done:
            found = self._workspace(rel, out, store)
            if found is None:
                hashed = self._dir_from_cache(out) if out.is_dir else self._file_from_cache(out)
                found = (hashed, FROM_DVC_CACHE) if hashed else None
            self._done[key] = found
        return self._done[key]

    # -- the workspace

    def _md5(self, path: str, st: os.stat_result, legacy: bool, want: str | None) -> str:
        """A workspace file's md5, read only when the stat cache does not know it."""
        fp = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        known = self.state.tree_oid(path + _MD5_KEY, fp)
        if known is None:
            known, _ = dvcformat.md5_file(path, legacy, want)
            self.state.set_tree(path + _MD5_KEY, known, fp)
        return known

    def _workspace(self, rel: str, out: DvcOut, store: bool) -> tuple[Hashed, str] | None:
        path = os.path.join(self.root, *rel.split("/"))
        if out.is_dir:
            if not os.path.isdir(path) or os.path.islink(path):
                return None
            files = workspace.walk(path)
            # a DVC 2 md5 of a text file with CRLF is only found with the file's listed md5
            wants = {e.relpath: e.md5 for e in (self._listing(out) if out.legacy else None) or []}
            listing = [dvcformat.ListingEntry(f.rel, self._md5(f.path, f.st, out.legacy,
                                                                wants.get(f.rel)))
                       for f in files]
            if dvcformat.listing_md5(listing) != out.md5:
                return None
        else:
            try:
                st = os.stat(path)
            except OSError:
                return None
            if not stat.S_ISREG(st.st_mode) or self._md5(path, st, out.legacy,
                                                         out.md5) != out.md5:
                return None
        odb = self.odb or ObjectStore(os.devnull)  # not written to without `store`
        snap = snapshot(odb, self.state, self.jobs, path, store=store and self.odb is not None,
                        progress=self.progress)
        return Hashed(snap.oid, snap.size, snap.nfiles), FROM_WORKSPACE

    # -- DVC's cache

    def _object(self, md5: str, legacy: bool) -> tuple[str, int] | None:
        """(xxh3-128, size) of DVC's cache object `md5`, stored in mlv's cache once its
        md5 is checked; None when it is absent or damaged."""
        if md5 not in self._objects:
            found = None
            path = dvcformat.object_path(self.dvc_cache, md5)
            if path is not None:
                got, _ = dvcformat.md5_file(path, legacy, md5)
                if got == md5:
                    found = self.odb.add_file(path) if self.odb else hash_file(path)
            if self.progress:
                self.progress(1)
            self._objects[md5] = found
        return self._objects[md5]

    def _file_from_cache(self, out: DvcOut) -> Hashed | None:
        assert out.md5 is not None
        found = self._object(out.md5, out.legacy)
        return Hashed(found[0], found[1]) if found else None

    def _listing(self, out: DvcOut) -> list[dvcformat.ListingEntry] | None:
        """The files of folder `out` as DVC's `.dir` object lists them (md5 checked)."""
        assert out.md5 is not None
        path = dvcformat.object_path(self.dvc_cache, out.md5)
        if path is None:
            return None
        data = fsio.read_regular(path, dvcformat.LISTING_MAX, f"DVC's cache object {out.md5}",
                                 DvcFormatError)
        if hashlib.md5(data, usedforsecurity=False).hexdigest() + ".dir" != out.md5:
            return None
        return dvcformat.parse_listing(data, out.md5)

    def _dir_from_cache(self, out: DvcOut) -> Hashed | None:
        listing = self._listing(out)
        if listing is None:
            return None
        entries = []
        for item in listing:
            found = self._object(item.md5, out.legacy)
            if found is None:
                return None
            entries.append(Entry(item.relpath, found[0], found[1]))
        data = manifest.dumps(entries)
        oid = self.odb.add_bytes(data, ".dir") if self.odb else hash_bytes(data) + ".dir"
        return Hashed(oid, sum(e.size for e in entries), len(entries))
