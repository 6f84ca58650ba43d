"""Comparing a pointer's out with what the workspace holds."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from mlv import manifest, workspace
from mlv.hashing import hash_bytes
from mlv.manifest import Entry
from mlv.odb import ObjectStore
from mlv.pointer import Out
from mlv.state import StatCache
from mlv.workspace import WFile


@dataclass
class OutDiff:
    path: str  # absolute workspace path of the out
    out: Out
    entries: list[Entry] | None  # None when the directory manifest is not in the cache
    present: bool  # the workspace path exists with the right kind (file or folder)
    in_way: bool = False  # something of the wrong kind (a file where a folder belongs)
    added: list[WFile] = field(default_factory=list)
    modified: list[tuple[Entry, WFile]] = field(default_factory=list)
    deleted: list[Entry] = field(default_factory=list)
    same: list[tuple[Entry, WFile]] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)  # objects not in the cache
    same_tree: bool = False  # known unchanged from the stat cache; entries not loaded

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted) or not self.present


def _is_link(f: WFile) -> bool:
    """Hard links and symlinks into the cache carry the object's mode, not their own."""
    return f.st.st_nlink > 1 or os.path.islink(f.path)


def load_entries(odb: ObjectStore, out: Out) -> list[Entry] | None:
    if not out.is_dir:
        return [Entry("", out.oid, out.size, out.exec)]
    try:
        data = odb.read_bytes(out.oid, manifest.MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    return manifest.loads(data, out.oid)


def fingerprint(files: list[WFile], odb: ObjectStore) -> str:
    """Identifies a folder's stat state together with the object store's contents."""
    parts = [f"{f.rel}\0{f.st.st_ino}\0{f.st.st_size}\0{f.st.st_mtime_ns}\0{f.st.st_mode}"
             for f in files]
    parts.append(odb.generation())
    return hash_bytes("\n".join(parts).encode("utf-8", "surrogateescape"))


def holds_file(path: str) -> bool:
    """True when `path` is a regular file, a symlink to one, or a broken symlink (which a
    write replaces). A FIFO, socket or device is never opened: reading one can hang."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return os.path.islink(path)
    except OSError:
        return False


def diff_out(odb: ObjectStore, state: StatCache, jobs: int, path: str, out: Out,
             fast: bool = True) -> OutDiff:
    is_dir = os.path.isdir(path) and not os.path.islink(path)
    exists = os.path.lexists(path)
    present = exists and (is_dir if out.is_dir else holds_file(path))
    walked: list[WFile] | None = None
    fp = ""
    if present and out.is_dir:
        # Fast path: a folder whose every stat is as when it last matched needs no more work.
        walked = workspace.walk(path)
        fp = fingerprint(walked, odb)
        if fast and state.tree_matches(path, out.oid, fp):
            return OutDiff(path, out, None, True, same_tree=True)
    entries = load_entries(odb, out)
    diff = OutDiff(path, out, entries, present, in_way=exists and not present)
    if entries is None:
        diff.missing.add(out.oid)
        return diff
    diff.missing = {e.oid for e in entries} - odb.existing([e.oid for e in entries])
    if not present:
        diff.deleted = list(entries)
        return diff
    if walked is not None:
        files = {f.rel: f for f in walked}
    else:
        try:
            files = {"": workspace.stat_file(path, "")}
        except FileNotFoundError:  # a broken symlink
            files = {}
    candidates: list[tuple[Entry, WFile]] = []
    for e in entries:
        f = files.pop(e.path, None)
        if f is None:
            diff.deleted.append(e)
        elif f.st.st_size != e.size:
            diff.modified.append((e, f))
        else:
            candidates.append((e, f))
    diff.added = sorted(files.values(), key=lambda f: f.rel)
    oids = workspace.hash_files([f for _, f in candidates], state, jobs)
    for (e, f), oid in zip(candidates, oids):
        same = oid == e.oid and (f.exec == e.exec or _is_link(f))
        (diff.same if same else diff.modified).append((e, f))
    if walked is not None and not diff.changed and not diff.missing:
        state.set_tree(path, out.oid, fp)
    return diff
