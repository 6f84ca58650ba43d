"""One repository's files at a revision, as one tree: the files git tracks, the files and
folders mlv tracks (pointer outs and cached stage outputs), the files inside tracked
folders (from their manifests), and the folders that hold any of them.

Built from `git ls-tree`, the index and directory manifests only: the data itself is
never read. A tracked folder's manifest is read the first time the walk goes into it."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import NamedTuple

from mlv import manifest
from mlv.index import Item

FILE, DIRECTORY = "file", "directory"
# Entry.kind: who tracks it
GIT = "git"  # a file git tracks
MLV = "mlv"  # a file or folder mlv tracks (a pointer's out or a stage output)
MEMBER = "mlv-dir-member"  # a file (or folder) inside a folder mlv tracks
DIR = "dir"  # a folder that holds any of the above, tracked by neither itself

_EXECUTABLE = "100755"


class Entry(NamedTuple):
    """One file or folder of the tree at a revision."""

    path: str  # repo-relative, POSIX
    type: str  # FILE or DIRECTORY
    size: int | None  # bytes (a tracked folder: its total); None for other folders
    kind: str  # GIT, MLV, MEMBER or DIR
    oid: str | None  # xxh128 id (mlv), git blob id (git); None for other folders
    exec: bool = False
    tracked_by: str | None = None  # the pointer file, or "mlv.lock", of an mlv entry

    @property
    def is_dir(self) -> bool:
        return self.type == DIRECTORY

    @property
    def mlv(self) -> bool:
        """True when mlv tracks it (itself, or as part of a tracked folder)."""
        return self.kind in (MLV, MEMBER)

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]


Manifests = Callable[[Item], list[manifest.Entry]]


class RevTree:
    """The tree of one revision (see the module's docstring). `files` is
    `scm.ls_tree`'s listing, `items` the index's items with a recorded hash, and
    `manifests(item)` a tracked folder's entries (from the cache or a remote)."""

    def __init__(self, files: dict[str, tuple[str, str, int]], items: dict[str, Item],
                 manifests: Manifests) -> None:
        self._manifests = manifests
        self._entries: dict[str, Entry] = {}
        self._children: dict[str, dict[str, None]] = {"": {}}  # folder -> paths, in order
        self._items = items
        self._pending = {p for p, i in items.items() if i.is_dir}  # folders not read yet
        for path, item in items.items():
            self._add(Entry(path, DIRECTORY if item.is_dir else FILE, item.size, MLV,
                            item.oid, item.exec, item.source))
        for path, (mode, blob, size) in files.items():
            if path in items or self._inside_item(path):
                continue  # what mlv tracks wins over a stray file git tracks there
            self._add(Entry(path, FILE, size, GIT, blob, mode == _EXECUTABLE))

    def _inside_item(self, path: str) -> bool:
        parent = path.rpartition("/")[0]
        while parent:
            if parent in self._items:
                return True
            parent = parent.rpartition("/")[0]
        return False

    def _add(self, entry: Entry, folder: Entry | None = None) -> None:
        """Add `entry` and any folder above it not seen yet (made from `folder`: a
        folder inside a tracked one is a member too)."""
        path = entry.path
        self._entries[path] = entry
        while True:
            parent = path.rpartition("/")[0]
            self._children.setdefault(parent, {})[path] = None
            if not parent or parent in self._entries:
                return
            self._entries[parent] = folder._replace(path=parent) if folder else \
                Entry(parent, DIRECTORY, None, DIR, None)
            path = parent

    def _expand(self, path: str) -> None:
        """Read the manifest of the tracked folder `path` into the tree (once)."""
        if path not in self._pending:
            return
        item = self._items[path]
        folder = Entry("", DIRECTORY, None, MEMBER, None, False, item.source)
        self._children.setdefault(path, {})
        for e in self._manifests(item):
            self._add(Entry(f"{path}/{e.path}", FILE, e.size, MEMBER, e.oid, e.exec,
                            item.source), folder)
        self._pending.discard(path)

    def _expand_above(self, path: str) -> None:
        """Read the manifest of the tracked folder `path` lies inside, if any."""
        parent = path.rpartition("/")[0]
        while parent:
            if parent in self._pending:
                self._expand(parent)
                return
            parent = parent.rpartition("/")[0]

    def find(self, path: str) -> Entry | None:
        """The entry at `path` (repo-relative, POSIX; "" is the root folder), or None."""
        if path == "":
            return Entry("", DIRECTORY, None, DIR, None)
        if path not in self._entries:
            self._expand_above(path)
        return self._entries.get(path)

    def walk(self, path: str, recursive: bool = False, dirs: bool = True) -> list[Entry]:
        """The entries in the folder `path` (with `recursive`, at any depth), sorted by
        path; the entry itself when `path` is a file. `dirs` False leaves folders out.
        Raises KeyError when there is no such path."""
        top = self.find(path)
        if top is None:
            raise KeyError(path)
        if not top.is_dir:
            return [top]
        found: list[Entry] = []
        todo = [path]
        while todo:
            folder = todo.pop()
            self._expand(folder)
            for child in self._children.get(folder, ()):
                entry = self._entries[child]
                if entry.is_dir:
                    if recursive:
                        todo.append(child)
                    if not dirs:
                        continue
                found.append(entry)
        found.sort(key=lambda e: e.path)
        return found


def normalize(path: str) -> str | None:
    """A user's path as a repo-relative POSIX path ("" for the root), or None when it
    climbs out of the repository."""
    if path in ("", ".", "/"):
        return ""
    rel = posixpath.normpath(path.lstrip("/"))
    if rel == ".":
        return ""
    if rel == ".." or rel.startswith("../"):
        return None
    return rel
