"""The repository: finds the root, loads config, owns the cache, stat cache and lock."""

from __future__ import annotations

import os
from functools import cached_property

from mlv import fsio, scm
from mlv.config import Config
from mlv.errors import NotARepoError, PathError
from mlv.fsio import RepoLock
from mlv.hashing import default_jobs
from mlv.odb import ObjectStore
from mlv.state import StatCache

MLV_DIR = ".mlv"
GITIGNORE = "/cache/\n/tmp/\n/config.local\n"


class Repo:
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.mlv_dir = os.path.join(self.root, MLV_DIR)
        self.tmp_dir = os.path.join(self.mlv_dir, "tmp")
        self.link_skip: set[str] = set()  # link types found unsupported for this cache

    @classmethod
    def find(cls, start: str | None = None) -> Repo:
        path = os.path.realpath(start or os.getcwd())
        while True:
            if os.path.isdir(os.path.join(path, MLV_DIR)):
                return cls(path)
            parent = os.path.dirname(path)
            if parent == path:
                raise NotARepoError("not inside an mlv repository",
                                    hint="run `mlv init` at the root of your git repository")
            path = parent

    @classmethod
    def init(cls, root: str, force: bool = False, no_scm: bool = False) -> tuple[Repo, bool]:
        """Create `.mlv/` in `root`. Returns (repo, created)."""
        root = os.path.realpath(root)
        if not no_scm:
            top = scm.toplevel(root)
            if top is None:
                raise NotARepoError(f"{root} is not inside a git work tree",
                                    hint="run `git init` first, or `mlv init --no-scm`")
            if top != root:
                raise PathError(f"mlv init must run at the root of the git work tree ({top})",
                                hint=f"cd {top} && mlv init")
        repo = cls(root)
        if os.path.isdir(repo.mlv_dir) and not force:
            return repo, False
        fsio.makedirs(repo.mlv_dir)
        config = os.path.join(repo.mlv_dir, "config")
        if not os.path.exists(config):
            fsio.atomic_write(config, b"{}\n")
        fsio.atomic_write(os.path.join(repo.mlv_dir, ".gitignore"), GITIGNORE.encode())
        return repo, True

    @cached_property
    def config(self) -> Config:
        return Config(self.mlv_dir)

    @cached_property
    def cache_dir(self) -> str:
        configured = self.config.get("cache.dir")
        if configured:
            return os.path.realpath(os.path.join(self.root, os.path.expanduser(configured)))
        return os.path.join(self.mlv_dir, "cache")

    @cached_property
    def odb(self) -> ObjectStore:
        return ObjectStore(self.cache_dir)

    @cached_property
    def state(self) -> StatCache:
        return StatCache(os.path.join(self.tmp_dir, "state.db"))

    @property
    def link_types(self) -> list[str]:
        return str(self.config.get("cache.type", "reflink,copy")).split(",")

    @property
    def jobs(self) -> int:
        return int(self.config.get("core.jobs", default_jobs()))

    @cached_property
    def has_scm(self) -> bool:
        return os.path.exists(os.path.join(self.root, ".git"))

    def lock(self) -> RepoLock:
        return RepoLock(os.path.join(self.tmp_dir, "lock"))

    def rel(self, path: str) -> str:
        """A path for messages: relative to the repository root, POSIX-style."""
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def resolve(self, path: str) -> str:
        """An absolute path for a user-given path, refused when outside the repository."""
        abspath = os.path.abspath(path)
        parent = os.path.realpath(os.path.dirname(abspath))
        full = os.path.join(parent, os.path.basename(abspath))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise PathError(f"{path} is outside the repository ({self.root})",
                            hint="move the data into the repository first")
        return full
