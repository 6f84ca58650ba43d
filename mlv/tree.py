"""A read-only view of a repository's files: the workspace, or a git revision read from
git objects without checking it out. The index (mlv/index.py) reads pointers, mlv.yaml,
mlv.lock, params and metrics through it, so every command sees other revisions the way
it sees the workspace."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

from mlv import fsio
from mlv.errors import MlvError, StorageError
from mlv.pointer import SUFFIX

_SYMLINK = "120000"


class Tree(ABC):
    """The files of the workspace (`rev` None) or of one commit."""

    rev: str | None = None  # the commit id; None for the workspace
    root: str  # the repository's root folder (real path)

    @property
    def on_disk(self) -> bool:
        """True for the workspace: paths may be checked against the file system."""
        return self.rev is None

    @abstractmethod
    def read(self, rel: str, limit: int, what: str,
             error: type[MlvError] = StorageError) -> bytes:
        """The bytes of the regular file `rel` (POSIX, repo-relative). A missing file
        raises FileNotFoundError; a symlink, a special file or one over `limit` bytes
        raises `error` naming `what`."""

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """True when `rel` is a file or folder of the tree."""

    @abstractmethod
    def pointer_files(self) -> list[str]:
        """Every `.mlv` pointer file (repo-relative, sorted); tracked folders are not
        looked into."""

    def label(self) -> str:
        """How messages name this tree: `workspace` or a short commit id."""
        return "workspace" if self.rev is None else self.rev[:8]


class WorkspaceTree(Tree):
    def __init__(self, root: str, follow_into: str | None = None) -> None:
        self.root = root
        self.follow_into = follow_into  # outputs placed by the `symlink` cache type

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def read(self, rel: str, limit: int, what: str,
             error: type[MlvError] = StorageError) -> bytes:
        return fsio.read_regular(self._abs(rel), limit, what, error,
                                 follow_into=self.follow_into)

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self._abs(rel))

    def pointer_files(self) -> list[str]:
        found: list[str] = []
        for folder, dirs, files in os.walk(self.root):
            if folder == self.root:
                dirs[:] = [d for d in dirs if d not in (".git", ".mlv")]
            names = [f for f in files if f.endswith(SUFFIX) and len(f) > len(SUFFIX)]
            base = os.path.relpath(folder, self.root).replace(os.sep, "/")
            found += [n if base == "." else f"{base}/{n}" for n in names]
            outs = {f[: -len(SUFFIX)] for f in names}
            dirs[:] = sorted(d for d in dirs if d not in outs and d != ".git")
        return sorted(found)


class GitTree(Tree):
    """One commit's files, read from git objects (the workspace is not touched)."""

    def __init__(self, root: str, rev: str, resolved: bool = False) -> None:
        """`resolved`: `rev` is a commit id the caller has just resolved (not again)."""
        from mlv import scm

        self.root = root
        self.name = rev  # as the user wrote it
        self.rev = rev if resolved else scm.resolve_commit(root, rev)
        self._files = scm.ls_tree(root, self.rev)
        self._blobs: dict[str, bytes] = {}
        self._held = 0  # bytes in _blobs

    def label(self) -> str:
        return self.name

    @property
    def files(self) -> dict[str, tuple[str, str, int]]:
        """Every file of the commit: path -> (mode, blob id, size), as `scm.ls_tree`."""
        return self._files

    def read(self, rel: str, limit: int, what: str,
             error: type[MlvError] = StorageError) -> bytes:
        entry = self._files.get(rel)
        if entry is None:
            raise FileNotFoundError(rel)
        mode, blob, size = entry
        if mode == _SYMLINK:
            raise error(f"{what} is a symlink at {self.name}, not a regular file",
                        hint=f"replace {what} with a regular file")
        if size > limit:
            raise error(f"{what} at {self.name} is larger than {limit} bytes")
        if blob not in self._blobs:
            self.prefetch([rel], limit)
        data = self._blobs.get(blob)
        if data is None:  # beyond what is kept in memory: read alone, not kept
            from mlv import scm

            data = scm.read_blobs(self.root, [blob]).get(blob)
        if data is None:
            raise error(f"{what} at {self.name} cannot be read from git",
                        hint="check the clone with `git fsck`")
        return data

    def prefetch(self, rels: list[str], limit: int = fsio.POINTER_LIMIT) -> None:
        """Read many files with one git process (pointers, at every revision), keeping
        at most scm.BLOB_BATCH bytes. A blob over `limit` bytes is left out: `read`
        refuses it without reading it."""
        from mlv import scm

        wanted = []
        for r in rels:
            if r in self._files:
                _, blob, size = self._files[r]
                if blob not in self._blobs and size <= limit and \
                        self._held + size <= scm.BLOB_BATCH:
                    wanted.append(blob)
                    self._held += size
        self._blobs.update(scm.read_blobs(self.root, wanted))

    def exists(self, rel: str) -> bool:
        return rel in self._files or any(p.startswith(rel + "/") for p in self._files)

    def pointer_files(self) -> list[str]:
        found = sorted(p for p in self._files
                       if p.endswith(SUFFIX) and len(p.rsplit("/", 1)[-1]) > len(SUFFIX)
                       and self._files[p][0] != _SYMLINK)
        outs = {p[: -len(SUFFIX)] for p in found}
        # a pointer inside a tracked folder is data, as in the workspace walk
        kept = [p for p in found if not _inside_any(p, outs)]
        self.prefetch(kept)
        return kept


def _inside_any(path: str, folders: set[str]) -> bool:
    parent = path.rpartition("/")[0]
    while parent:
        if parent in folders:
            return True
        parent = parent.rpartition("/")[0]
    return False
