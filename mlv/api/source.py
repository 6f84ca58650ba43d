"""A repository at a revision, opened for reading: what `mlv ls`, `mlv get`, `mlv import`,
`mlv.api.open` and the `mlv://` filesystem stand on.

`open_source(repo, rev)` takes the current repository (`repo` None or "."), a local git
work tree (a path), or anything git can clone (a URL, `file://…`, a bare repository's
path). A clone is kept per URL in the user's cache folder (`$XDG_CACHE_HOME/mlv/repos`,
else `~/.cache/mlv/repos`) and reused:

- a full 40-hex commit id that the clone already holds is used as it is (no network);
- any other revision (a branch, a tag, HEAD, a short id) fetches once per call, so a
  branch names the origin's newest commit (a clone made by this call is not fetched).

`rev` None means HEAD (the last commit, not the workspace's uncommitted changes). The
revision is read from git objects: nothing is checked out, and nothing is written to the
workspace or the index of the repository read. A clone's objects (directory manifests)
go to its own cache folder beside it, never the user's project cache."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import stat
import tempfile
from typing import TYPE_CHECKING

from mlv import fsio, manifest, scm
from mlv.api.revtree import Entry, RevTree, normalize
from mlv.config import Config, parse_layer
from mlv.errors import (
    ConfigError,
    NoRemote,
    NotARepoError,
    NotPushed,
    ObjectCorrupted,
    PathNotFound,
    ReadError,
    RepoNotFound,
    RevisionNotFound,
    ScmError,
)
from mlv.index import Index, Item
from mlv.repo import Repo
from mlv.tree import GitTree

if TYPE_CHECKING:
    from mlv.remote import Remote

_FULL_ID = re.compile(r"[0-9a-f]{40}\Z")
CLONE_WAIT = 600.0  # seconds to wait for another process cloning or fetching the same URL


def cache_home() -> str:
    """The user's cache folder for mlv: $XDG_CACHE_HOME/mlv, else ~/.cache/mlv."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mlv")


def clone_folder(url: str) -> str:
    """Where the clone of `url` is kept: `repos/<first 16 hex of sha256(url)>`, holding
    `git/` (a mirror clone) and `cache/` (its objects: directory manifests)."""
    digest = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(cache_home(), "repos", digest)


class Source:
    """One repository at one commit, read-only (see the module's docstring)."""

    def __init__(self, repo: Repo, commit: str, rev: str | None, url: str | None,
                 cloned: bool) -> None:
        self.repo = repo
        self.commit = commit  # 40 hex
        self.rev = rev  # as the caller named it; None: HEAD
        self.url = url  # as the caller named the repository; None: the current one
        self.cloned = cloned  # read from a clone in the user's cache folder
        tree = GitTree(repo.root, commit, resolved=True)
        tree.name = rev or "HEAD"
        self.index = Index.of_tree(tree, repo.cache_dir)
        self.files = tree.files
        self._config: Config | None = None
        self._manifests: dict[str, list[manifest.Entry]] = {}
        self._tree: RevTree | None = None

    @property
    def label(self) -> str:
        """How messages name the repository and revision: `URL at REV (1a2b3c4d)`."""
        where = _masked(self.url) if self.url is not None else "this repository"
        return f"{where} at {self.rev or 'HEAD'} ({self.commit[:8]})"

    # ---- the tree -------------------------------------------------------------------

    @property
    def tree(self) -> RevTree:
        if self._tree is None:
            self.index.check_claims()
            items = {p: i for p, i in self.index.items.items() if i.oid is not None}
            self._tree = RevTree(self.files, items, self.manifest)
        return self._tree

    def stat(self, path: str) -> Entry:
        """The entry at `path` (repo-relative; "" is the root). PathNotFound if none."""
        rel = normalize(path)
        found = self.tree.find(rel) if rel is not None else None
        if found is None:
            raise self._not_found(path)
        return found

    def walk(self, path: str = "", recursive: bool = False, dirs: bool = True
             ) -> list[Entry]:
        """The entries of the folder `path` (at any depth with `recursive`; folders
        left out with `dirs` False), sorted by path; `[stat(path)]` for a file."""
        rel = normalize(path)
        try:
            if rel is None:
                raise KeyError(path)
            return self.tree.walk(rel, recursive, dirs)
        except KeyError:
            raise self._not_found(path) from None

    def _not_found(self, path: str) -> PathNotFound:
        return PathNotFound(f"{path} is not in {self.label}: neither git nor mlv tracks it "
                            "there", hint="`mlv ls` lists what is there (add --rev REV "
                                          "for another revision)")

    # ---- remotes and manifests ------------------------------------------------------

    @property
    def config(self) -> Config:
        """The config at this commit: the committed `.mlv/config` of that commit (not
        trusted: a clone's), with the user's own config (and, for a local repository,
        its `.mlv/config.local`) over it."""
        if self._config is None:
            local = not self.cloned and os.path.isdir(self.repo.mlv_dir)
            config = Config(self.repo.mlv_dir if local else None)
            shown = f".mlv/config at {self.rev or 'HEAD'}"
            try:
                raw = self.index.tree.read(".mlv/config", fsio.CONFIG_LIMIT, shown,
                                           ConfigError)
                layer = parse_layer(raw.decode("utf-8", "replace"), shown)
            except FileNotFoundError:
                layer = {}
            config.layers["repo"] = layer
            config.paths["repo"] = shown
            self._config = config
        return self._config

    def remote(self, name: str | None = None, jobs: int | None = None) -> Remote:
        """The remote `name`, else the default one, as the config at this commit says
        (see `config`); the checks on what a committed config may choose apply. `jobs`:
        concurrent transfers (`-j`), else the remote's own setting."""
        from mlv.api import remote as remote_api

        repo = copy.copy(self.repo)  # the same cache, with the config at this commit
        repo.__dict__["config"] = self.config
        if self.cloned:
            self._refuse_relative(name)
        try:
            return remote_api.resolve(repo, name, jobs)
        except NoRemote:
            raise
        except ConfigError as exc:
            if "no default remote" not in exc.message and "unknown remote" not in exc.message:
                raise
            raise NoRemote(f"{self.label}: {exc.message}",
                           hint="the data is not in the cache; the repository must name a "
                                "remote in .mlv/config (`mlv remote add -d NAME URL`, "
                                "committed) or pass the remote's name") from None

    def _refuse_relative(self, name: str | None) -> None:
        """A relative folder URL means a folder beside the repository's own work tree:
        nothing beside a clone in the cache."""
        name = name or self.config.get("core.remote")
        url = str(self.config.remotes().get(str(name), {}).get("url", ""))
        local = url.removeprefix("file://").removeprefix("local://")
        if url and "://" not in local and not os.path.isabs(os.path.expanduser(local)):
            raise NoRemote(f"{self.label}: remote '{name}' has the relative url {url!r}, "
                           "which names a folder beside that repository's own work tree",
                           hint="read from a local clone of it (pass its path), or give "
                                "the remote an absolute url there")

    def manifest(self, item: Item) -> list[manifest.Entry]:
        """The entries of the tracked folder `item`: from the cache when it has the
        manifest, else downloaded from the item's remote and verified. A clone keeps it
        in its own cache; the current repository's cache is not written."""
        oid = item.oid
        assert oid is not None and oid.endswith(".dir")
        if oid in self._manifests:
            return self._manifests[oid]
        try:
            data = self.repo.odb.read_bytes(oid, manifest.MAX_BYTES + 1)
        except FileNotFoundError:
            data = self._download(item)
        entries = manifest.loads(data, oid)
        self._manifests[oid] = entries
        return entries

    def _download(self, item: Item) -> bytes:
        from mlv import transfer
        from mlv.odb import ObjectStore

        oid = item.oid
        assert oid is not None
        remote = self.remote(item.remote)
        with tempfile.TemporaryDirectory(prefix="mlv-read-") as tmp:
            odb = self.repo.odb if self.cloned else ObjectStore(tmp)
            result = transfer.fetch(odb, remote, {oid}, self.repo.jobs, expand=False)
            what = f"the file list of {item.path} ({oid})"
            if result.corrupted:
                raise ObjectCorrupted(f"{what} on remote '{remote.name}' is damaged: its "
                                      "bytes do not match its id", hint="`mlv fsck --remote "
                                      f"{remote.name}` in the source repository finds more")
            if result.missing:
                raise NotPushed(f"{what} is in neither the cache nor remote "
                                f"'{remote.name}' ({remote.shown_url})", [oid],
                                hint="run `mlv push` in the repository that tracks it")
            if result.failed:
                raise ReadError(f"cannot download {what} from remote '{remote.name}': "
                                f"{result.failed[oid]}")
            return odb.read_bytes(oid, manifest.MAX_BYTES + 1)


# ---- opening ---------------------------------------------------------------------------

def open_source(repo: str | None = None, rev: str | None = None,
                cwd: str | None = None) -> Source:
    """The repository `repo` at revision `rev` (see the module's docstring). Raises
    RepoNotFound, RevisionNotFound (both ReadError)."""
    here = cwd or os.getcwd()
    if repo is None or repo == ".":
        try:
            found = Repo.find(here)
        except NotARepoError as exc:
            raise RepoNotFound(exc.message, exc.hint) from None
        return Source(found, _resolve(found.root, rev, None), rev, None, False)
    path = os.path.join(here, os.path.expanduser(repo))
    if "://" not in repo and os.path.isdir(path):
        top = scm.toplevel(path)
        if top is not None:
            local = Repo(top)
            return Source(local, _resolve(local.root, rev, repo), rev, repo, False)
        if not scm.is_bare(path):
            raise RepoNotFound(f"{repo} is not a git repository",
                               hint="give the path of a git repository, or a URL git can "
                                    "clone")
        return _open_clone(os.path.realpath(path), repo, rev)
    if "://" not in repo and ":" not in repo:  # not a URL, nor scp-like `host:path`
        raise RepoNotFound(f"{repo}: no such folder, and not a URL",
                           hint="give a local path, or a URL git can clone")
    return _open_clone(repo, repo, rev)


def _masked(text: str) -> str:
    """`text` (a URL as the user gave it, or git's message quoting it) without the
    password a URL may carry."""
    from mlv.remote.base import masked_url

    return masked_url(text)


def _resolve(root: str, rev: str | None, shown: str | None) -> str:
    try:
        return scm.resolve_commit(root, rev or "HEAD")
    except ScmError:
        where = _masked(shown) if shown is not None else "this repository"
        if rev is None:
            raise RevisionNotFound(f"{where} has no commit yet",
                                   hint="commit something first") from None
        raise RevisionNotFound(f"unknown revision {rev!r} in {where}",
                               hint="name a branch, tag or commit of it (`git ls-remote` "
                                    "lists a remote repository's branches and tags)"
                               ) from None


class _Clone(Repo):
    """A mirror clone in the user's cache folder, with its own object cache."""

    def __init__(self, git_dir: str, cache_dir: str) -> None:
        super().__init__(git_dir)
        self._cache_dir = cache_dir

    @property
    def cache_dir(self) -> str:
        return self._cache_dir

    @property
    def has_scm(self) -> bool:
        return False  # no work tree: there is no .mlv/ whose git status matters


def _open_clone(url: str, shown: str, rev: str | None) -> Source:
    """`url` at `rev`, from its clone in the cache: cloned when there is none, fetched
    unless `rev` is a full commit id it already holds (the module's docstring)."""
    if url.startswith("-"):
        raise RepoNotFound(f"{_masked(shown)!r} is not a repository URL",
                           hint="give a local path, or a URL git can clone")
    folder = clone_folder(url)
    git_dir = os.path.join(folder, "git")
    with fsio.RepoLock(folder + ".lock", timeout=CLONE_WAIT):
        _refuse_links(folder, shown)
        fresh = not os.path.isdir(git_dir)
        if fresh:
            _clone(url, shown, folder)
        if not fresh and not (rev and _FULL_ID.match(rev) and scm.has_commit(git_dir, rev)):
            why = scm.fetch_mirror(git_dir)
            if why is not None:
                raise RepoNotFound(f"cannot fetch from {_masked(shown)}: {_masked(why)}",
                                   hint="check the URL and your access to it; a full "
                                        "commit id the cache already holds needs no fetch")
        commit = _resolve(git_dir, rev, shown)
    repo = _Clone(git_dir, os.path.join(folder, "cache"))
    return Source(repo, commit, rev, shown, True)


def _refuse_links(folder: str, shown: str) -> None:
    """A clone folder (or its `git/` or `cache/`) that is a symlink, or not the user's
    own, is never used: whoever planted it would choose the repository read for the URL
    and the git config that `git fetch` runs with."""
    for path in (folder, os.path.join(folder, "git"), os.path.join(folder, "cache")):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or \
                st.st_uid != os.getuid():
            raise RepoNotFound(f"the clone of {_masked(shown)} in the cache, {path}, is a "
                               "symlink, not a folder, or not yours: mlv does not use it",
                               hint="remove it; the next command clones again")


def _clone(url: str, shown: str, folder: str) -> None:
    """Clone into a temp folder beside `folder`, then rename it into place: a clone
    that fails or is interrupted leaves no half-made `folder`."""
    fsio.makedirs(os.path.dirname(folder))
    fsio.remove_stale_temps(folder)  # a clone a killed process left half-made
    tmp = fsio.tmp_name(folder)
    try:
        os.mkdir(tmp)
        why = scm.clone_mirror(url, os.path.join(tmp, "git"))
        if why is not None:
            raise RepoNotFound(f"cannot clone {_masked(shown)}: {_masked(why)}",
                               hint="check the URL (a local path, or a URL git can clone) "
                                    "and your access to it")
        fsio.atomic_write(os.path.join(tmp, "url"), url.encode("utf-8", "surrogateescape")
                          + b"\n")
        if os.path.isdir(folder):  # a clone left by an older run without `git/`
            fsio.remove_tree(folder)
        fsio.rename(tmp, folder)
    finally:
        if os.path.lexists(tmp):
            fsio.remove_tree(tmp)
