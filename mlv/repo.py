"""The repository: finds the root, loads config, owns the cache, stat cache and lock."""

from __future__ import annotations

import os
import shlex
import stat
from functools import cached_property

from mlv import fsio, paths, scm
from mlv.config import Config
from mlv.errors import ConfigError, NotARepoError, PathError
from mlv.fsio import RepoLock
from mlv.hashing import default_jobs
from mlv.odb import ObjectStore
from mlv.state import StatCache

MLV_DIR = ".mlv"
GITIGNORE = "/cache/\n/tmp/\n/config.local\n"
# What a clone may bring in .mlv/; the rest (config.local, tmp/, cache/) is this clone's own.
COMMITTED = (".mlv/config", ".mlv/.gitignore")
# Names in .mlv/ that a committed cache.dir may not take.
_OWN_NAMES = ("tmp", "config", "config.local", ".gitignore")


def _refuse_link(path: str, rel: str) -> None:
    """Refuse `path` (shown as `rel`) when it exists and is not a real folder: a clone
    can commit `.mlv`, `.mlv/tmp` or `.mlv/cache` as a symlink to anywhere."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        return
    what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
    raise PathError(f"{rel} is {what}; a clone may not bring it; delete it",
                    hint=f"`rm {rel}` removes only that entry, never what a link points to")


def committed_cache_problem(root: str, value: str) -> str | None:
    """Why `value`, a cache.dir from the committed .mlv/config, cannot be used, or None.
    It must be a relative path inside the repository (not in .git), through real folders
    only: a clone may not choose where mlv writes and deletes outside itself."""
    if value.startswith("~"):
        return "~ is not expanded in .mlv/config"
    rel = value.rstrip("/")
    base = root
    if rel == MLV_DIR or rel.startswith(MLV_DIR + "/"):  # the default lives in .mlv/
        base, rel = os.path.join(root, MLV_DIR), rel[len(MLV_DIR) + 1:]
        if not rel or rel.split("/")[0] in _OWN_NAMES:
            return "it names a file or folder mlv keeps for itself"
    found = paths.problem_on_disk(base, rel)
    if found is None and os.path.islink(os.path.join(base, rel)):
        found = f"{value} is a symlink"
    return found


class Repo:
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.mlv_dir = os.path.join(self.root, MLV_DIR)
        self.tmp_dir = os.path.join(self.mlv_dir, "tmp")
        self.link_skip: set[str] = set()  # link types found unsupported for this cache
        _refuse_link(self.mlv_dir, MLV_DIR)
        _refuse_link(self.tmp_dir, f"{MLV_DIR}/tmp")

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
        if self.has_scm:  # a config.local that git tracks came with a clone: not trusted
            self._refuse_tracked(MLV_DIR, allowed=COMMITTED)
        return Config(self.mlv_dir)

    @cached_property
    def cache_dir(self) -> str:
        configured = self.config.get("cache.dir")
        if not configured:
            default = os.path.join(self.mlv_dir, "cache")
            _refuse_link(default, f"{MLV_DIR}/cache")
            return default
        if self.config.level_of("cache.dir") == "repo":
            return self._committed_cache(configured)
        # the user's own setting (local or global): trusted, `~` expanded
        return os.path.realpath(os.path.join(self.root, os.path.expanduser(configured)))

    def _committed_cache(self, value: str) -> str:
        found = committed_cache_problem(self.root, value)
        if found:
            raise ConfigError(
                f"cache.dir {value!r} in .mlv/config is not used: {found}; a clone may "
                "not choose where mlv writes and deletes outside itself",
                hint="if you trust it, accept it for this clone (it then takes precedence): "
                     f"`mlv config --local cache.dir {shlex.quote(value)}`")
        path = os.path.join(self.root, value.rstrip("/"))
        if self.has_scm and not path.startswith(self.mlv_dir + os.sep):
            self._refuse_tracked(self.rel(path))  # objects a clone brought
        return path

    def _refuse_tracked(self, rel: str, allowed: tuple[str, ...] = ()) -> None:
        """Refuse when git tracks anything at or below `rel` but `allowed`."""
        found = [p for p in scm.tracked_quick(self.root, rel) if p not in allowed]
        if not found:
            return
        top = "/".join(found[0].split("/")[:2]) if rel == MLV_DIR else rel
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise PathError(f"git tracks {found[0]}{more}; a clone may not bring mlv's local "
                        "files (local config, lock, stat cache, objects)",
                        hint=f"`git rm -r --cached {shlex.quote(top)}` stops tracking it "
                             "(the files stay), then commit")

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
        """A path for messages: relative to the repository root, POSIX-style. (Called
        for every file a checkout writes: a plain path under the root, the usual case,
        is cut without os.path.relpath, which costs ~20 µs a call.)"""
        prefix = self.root + "/"
        if os.sep == "/" and path.startswith(prefix) and "//" not in path and \
                "/." not in path and not path.endswith("/"):
            return path[len(prefix):]
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
