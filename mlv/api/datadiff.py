"""`mlv diff`: tracked data added, modified, deleted or renamed between two trees (git
revisions, or a revision and the workspace), down to the files inside tracked folders.
Revisions are read through the index from git objects; folder file lists come from the
cache, else from the default remote."""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from mlv import manifest
from mlv.errors import MlvError
from mlv.index import Index, Item
from mlv.repo import Repo

WORKSPACE = "workspace"


@dataclass
class FileChange:
    path: str  # repo-relative: a tracked file, or a file inside a tracked folder
    status: str  # "added", "deleted", "modified" or "renamed"
    old_size: int | None = None
    new_size: int | None = None
    old_path: str | None = None  # renamed: where it was

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"path": self.path, "old_size": self.old_size,
                                   "new_size": self.new_size}
        if self.old_path:
            data["old_path"] = self.old_path
        return data


@dataclass
class DataDiff:
    old: str  # labels of the two trees
    new: str
    changes: list[FileChange] = field(default_factory=list)
    # folders whose file list is in neither the cache nor the default remote: compared
    # as a whole (with the workspace, such a folder shows as modified)
    unknown: list[str] = field(default_factory=list)
    added_bytes: int = 0  # the size of the objects only the new tree has (each counted once)

    def by_status(self, status: str) -> list[FileChange]:
        return [c for c in self.changes if c.status == status]


Files = dict[str, tuple[str, int]]  # path -> (object id, size)


def diff(repo: Repo, a_rev: str | None = None, b_rev: str | None = None,
         targets: list[str] | None = None, recorded: bool = False,
         loaded: tuple[Index, Index] | None = None) -> DataDiff:
    """Compare `a_rev` (default HEAD) with `b_rev` (default: the workspace as it is; with
    `recorded`, as its pointers and mlv.lock record it, whether the data is there or not).
    `loaded`: the two trees' indexes, when the caller has them already."""
    a_label = a_rev or "HEAD"
    result = DataDiff(a_label, b_rev or WORKSPACE)
    old_idx, new_idx = loaded or (Index.load(repo, a_label), Index.load(repo, b_rev))
    if b_rev is None and not recorded:
        old = _files(repo, old_idx, result.unknown)
        new = _workspace_files(repo, new_idx)
    else:  # what both trees record alike holds no change: its file list is not read
        same = _same_items(old_idx, new_idx)
        old = _files(repo, old_idx, result.unknown, same)
        new = _files(repo, new_idx, result.unknown, same)
    result.unknown = sorted(set(result.unknown))
    for folder in result.unknown:  # its file list is missing on one side: whole folders
        old = _as_whole(old, old_idx, folder)
        new = _as_whole(new, new_idx, folder)
    if targets:
        prefixes = [t.path for t in new_idx.resolve(targets)]
        old, new = _only(old, prefixes), _only(new, prefixes)
    _compare(old, new, result)
    # (a folder both trees record alike is not listed: an object that also sits in one
    # counts as added here)
    had = {oid for oid, _ in old.values()}
    result.added_bytes = sum(dict(v for v in new.values() if v[0] not in had).values())
    return result


def _as_whole(files: Files, idx: Index, folder: str) -> Files:
    kept = {p: v for p, v in files.items() if not p.startswith(folder + "/")}
    item = idx.items.get(folder)
    if item is not None and item.oid is not None and item.size is not None:
        kept[folder] = (item.oid, item.size)
    return kept


def _only(files: Files, prefixes: list[str]) -> Files:
    return {p: v for p, v in files.items()
            if any(p == x or p.startswith(x + "/") for x in prefixes)}


def _same_items(old: Index, new: Index) -> set[str]:
    """The tracked paths that both trees record with the same object."""
    return {path for path, item in old.items.items()
            if item.oid is not None and path in new.items and new.items[path].oid == item.oid}


def _files(repo: Repo, idx: Index, unknown: list[str],
           skip: AbstractSet[str] = frozenset()) -> Files:
    files: Files = {}
    for item in idx.recorded():
        assert item.oid is not None and item.size is not None
        if item.path in skip:
            continue
        if not item.is_dir:
            files[item.path] = (item.oid, item.size)
            continue
        entries = _entries(repo, item)
        if entries is None:
            unknown.append(item.path)
            files[item.path] = (item.oid, item.size)  # compared as one
            continue
        for e in entries:
            files[f"{item.path}/{e.path}"] = (e.oid, e.size)
    return files


def _entries(repo: Repo, item: Item) -> list[manifest.Entry] | None:
    assert item.oid is not None
    try:
        return manifest.loads(repo.odb.read_bytes(item.oid, manifest.MAX_BYTES + 1), item.oid)
    except FileNotFoundError:
        pass
    from mlv.api import remote as remote_api
    from mlv.transfer import entries_anywhere

    try:
        remote = remote_api.resolve(repo, None, None)
    except MlvError:  # no default remote: the folder is compared as a whole
        return None
    return entries_anywhere(repo.odb, remote, item.oid)


def _workspace_files(repo: Repo, idx: Index) -> Files:
    """The tracked paths as they are in the workspace now (hashed through the stat
    cache: unchanged files are not read)."""
    from mlv import workspace

    found: list[tuple[str, workspace.WFile]] = []
    for item in idx.recorded():
        path = os.path.join(repo.root, *item.path.split("/"))
        if os.path.isdir(path) and not os.path.islink(path):
            found += [(f"{item.path}/{f.rel}", f) for f in workspace.walk(path)]
        elif os.path.isfile(path):
            found.append((item.path, workspace.stat_file(path)))
    try:
        oids = workspace.hash_files([f for _, f in found], repo.state, repo.jobs)
    finally:
        repo.state.save()
    return {rel: (oid, f.st.st_size) for (rel, f), oid in zip(found, oids)}


def _compare(old: Files, new: Files, result: DataDiff) -> None:
    gone = {p: v for p, v in old.items() if p not in new}
    came = {p: v for p, v in new.items() if p not in old}
    by_oid: dict[str, list[str]] = {}
    for path, (oid, _) in sorted(gone.items()):
        by_oid.setdefault(oid, []).append(path)
    for path, (oid, size) in sorted(came.items()):
        if by_oid.get(oid):  # the same bytes under a new name
            was = by_oid[oid].pop(0)
            result.changes.append(FileChange(path, "renamed", size, size, was))
            del gone[was]
        else:
            result.changes.append(FileChange(path, "added", None, size))
    for path, (_, size) in sorted(gone.items()):
        result.changes.append(FileChange(path, "deleted", size, None))
    for path in sorted(old.keys() & new.keys()):
        (a, a_size), (b, b_size) = old[path], new[path]
        if a != b:
            result.changes.append(FileChange(path, "modified", a_size, b_size))
    result.changes.sort(key=lambda c: (c.path, c.status))
