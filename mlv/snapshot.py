"""The current content of a workspace path as an object id, optionally storing it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlv import manifest, workspace
from mlv.hashing import hash_bytes
from mlv.manifest import Entry
from mlv.odb import ObjectStore
from mlv.state import StatCache
from mlv.workspace import Progress, WFile

_HASH_ONLY = "\0hash"  # stat-cache key suffix for folders hashed without storing


@dataclass
class Snapshot:
    oid: str  # file hash, or manifest hash + ".dir"
    size: int
    nfiles: int | None  # folders only
    exec: bool = False
    files: list[WFile] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


def _fingerprint(files: list[WFile]) -> str:
    return hash_bytes("\n".join(
        f"{f.rel}\0{f.st.st_ino}\0{f.st.st_size}\0{f.st.st_mtime_ns}\0{f.st.st_mode}"
        for f in files).encode("utf-8", "surrogateescape"))


def snapshot(odb: ObjectStore, state: StatCache, jobs: int, path: str, store: bool,
             progress: Progress | None = None) -> Snapshot:
    """Hash (and with `store`, save into `odb`) a file or folder. Reads only files whose
    stat the stat cache does not know; a folder unchanged since it was last hashed costs
    one walk."""
    if os.path.isdir(path):
        files = workspace.walk(path)
        total = sum(f.st.st_size for f in files)
        fp = ""
        if not store:
            fp = _fingerprint(files)
            known = state.tree_oid(path + _HASH_ONLY, fp)
            if known is not None:
                return Snapshot(known, total, len(files), files=files)
        if store:
            pairs = workspace.store_files(files, odb, state, jobs, progress)
        else:
            pairs = [(oid, f.st.st_size) for f, oid in
                     zip(files, workspace.hash_files(files, state, jobs, progress))]
        entries = [Entry(f.rel, oid, size, f.exec) for f, (oid, size) in zip(files, pairs)]
        data = manifest.dumps(entries)
        oid = odb.add_bytes(data, ".dir") if store else hash_bytes(data) + ".dir"
        if not store:
            state.set_tree(path + _HASH_ONLY, oid, fp)
        return Snapshot(oid, sum(e.size for e in entries), len(entries), files=files,
                        entries=entries)
    f = workspace.stat_file(path)
    if store:
        [(oid, size)] = workspace.store_files([f], odb, state, 1, progress)
    else:
        [oid] = workspace.hash_files([f], state, 1, progress)
        size = f.st.st_size
    return Snapshot(oid, size, None, f.exec, [f], [Entry("", oid, size, f.exec)])
