"""`mlv get`: copy a file or folder of a repository at a revision into a folder of one's
own, untracked (no pointer, no cache entry, no .gitignore change in the current project).

The source is any repository `open_source` takes (the current one as "."). What is
copied is the tree at that revision as `mlv ls -R` shows it: the files git tracks and the
files mlv tracks (a tracked folder's files from its manifest), with their exec bits; the
`.mlv` pointer files themselves, the `.mlv/` folder, and the symlinks and submodules git
tracks are left out (as `dvc get` copies the data, not the .dvc files).

Data moves in bulk, as `mlv pull` moves it: the objects the source's cache lacks are
fetched in one transfer per remote (a clone's own cache in the user's cache folder; for
the current repository a temp store beside the destination, so its cache is never
written), then copied out inside the kernel on parallel threads. Objects that a cache
holds are trusted as checkout trusts them (each was verified when it entered); their
sizes are checked against the manifest.

Destination (as `dvc get` and `cp` decide): OUT defaults to the last name of PATH in the
current folder; an OUT that is an existing folder receives it inside. Where the result
would land, an existing file or non-empty folder is refused unless `force`; an empty
folder is replaced. Everything is written under a temp name beside the result and
renamed into place at the end: an error or Ctrl-C leaves nothing (and removes the folders
made above it)."""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlv import fsio, paths, scm, transfer, workspace
from mlv.api.revtree import GIT, Entry
from mlv.api.source import Source, open_source
from mlv.errors import NotPushed, ObjectCorrupted, PathError, ReadError
from mlv.odb import ObjectStore
from mlv.repo import Repo
from mlv.transfer import TransferResult
from mlv.workspace import Progress

if TYPE_CHECKING:
    from mlv.remote import Remote

_LINK, _SUBMODULE = "120000", "160000"


@dataclass
class GetResult:
    where: str  # the path written: relative to the current folder when inside it
    files: int = 0
    bytes: int = 0
    fetched: TransferResult = field(default_factory=TransferResult)  # from remotes
    skipped: list[str] = field(default_factory=list)  # symlinks and submodules git tracks


def get(url: str, path: str, out: str | None = None, rev: str | None = None,
        jobs: int | None = None, remote: str | None = None, force: bool = False,
        cwd: str | None = None, progress: Progress | None = None,
        fetch_progress: Progress | None = None) -> GetResult:
    """Copy `path` of repository `url` at `rev` to `out` (see the module's docstring).
    Raises ReadError subclasses (RepoNotFound, RevisionNotFound, PathNotFound, NoRemote,
    NotPushed, ObjectCorrupted), PathError for a destination in the way."""
    here = cwd or os.getcwd()
    source = open_source(url, rev, here)
    top = source.stat(path)
    final = destination(source, top, out, here, force)
    result = GetResult(where=_shown(final, here))
    todo = _plan(source, top, result)
    made = _make_parents(os.path.dirname(final))
    tmp = fsio.tmp_name(final)
    scratch = fsio.tmp_name(final)
    try:
        stores = _fetch(source, todo, remote, jobs, scratch, result, fetch_progress)
        if top.is_dir:
            fsio.makedirs(tmp)
        _write(source, tmp, todo, stores, source.repo.jobs, progress)
        if os.path.lexists(final):  # checked above: empty, or replaced with --force
            fsio.remove_tree(final)
        fsio.rename(tmp, final)
    except BaseException:
        if os.path.lexists(tmp):
            fsio.remove_tree(tmp)
        for folder in reversed(made):
            _rmdir_quiet(folder)
        raise
    finally:
        if os.path.lexists(scratch):
            fsio.remove_tree(scratch)
    result.files = len(todo)
    result.bytes = sum(e.size or 0 for _, e in todo)
    return result


# ---- where it goes ------------------------------------------------------------------------

def destination(source: Source, top: Entry, out: str | None, here: str, force: bool) -> str:
    """The absolute path to write (see the module's docstring); PathError when something
    is in the way there."""
    name = top.name or _repo_name(source)
    if out is None:
        final = os.path.join(here, name)
    else:
        given = os.path.join(here, os.path.expanduser(out))
        final = os.path.join(given, name) if os.path.isdir(given) else given
    final = os.path.abspath(final)
    if _special(final):  # --force replaces a file or folder, never /dev/null or a FIFO
        raise PathError(f"{_shown(final, here)} is a device, FIFO or socket: mlv get "
                        "writes regular files only", hint="choose another -o OUT")
    if os.path.lexists(final) and not force and not _empty_folder(final):
        kind = "folder" if os.path.isdir(final) else "file"
        raise PathError(f"{_shown(final, here)} already exists (a {kind}): remove it or "
                        "choose another -o OUT", hint="--force replaces it")
    return final


def _repo_name(source: Source) -> str:
    """The name for the whole repository: the last part of its URL, or its folder's
    name (never `.` or `..`, which would name the current folder or the one above)."""
    if source.cloned and source.url is not None:
        name = posixpath.basename(source.url.rstrip("/").rstrip(os.sep)).removesuffix(".git")
    else:
        name = os.path.basename(source.repo.root)
    return name if name and not paths.problem(name) else "repo"


def _special(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _empty_folder(path: str) -> bool:
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    with os.scandir(path) as found:
        return next(found, None) is None


def _shown(path: str, here: str) -> str:
    rel = os.path.relpath(path, here)
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def _make_parents(folder: str) -> list[str]:
    """Make `folder` and what is missing above it; returns the folders made, outermost
    first (removed again if the get fails)."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    missing.reverse()
    if missing:
        fsio.makedirs(missing[-1])
    return missing


def _rmdir_quiet(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


# ---- what is copied -----------------------------------------------------------------------

def _plan(source: Source, top: Entry, result: GetResult) -> list[tuple[str, Entry]]:
    """(path inside the destination, entry) for every file to copy; "" for a lone file.
    A path from the repository that could leave the destination is refused (manifest
    entries were checked when read; git's paths are checked here)."""
    why = paths.problem(top.path) if top.path else None
    if why:  # its last name is the name written (a crafted tree can hold `.git`)
        raise PathError(f"{top.path} of {source.label} cannot be copied: {why}",
                        hint="nothing was written; the repository holds a path mlv "
                             "never writes")
    if not top.is_dir:
        _refuse_special(source, top)
        return [("", top)]
    pointers = {i.pointer for i in source.index.items.values() if i.pointer}
    todo = []
    for e in source.walk(top.path, recursive=True, dirs=False):
        rel = e.path[len(top.path) + 1:] if top.path else e.path
        if e.kind == GIT:
            if e.path in pointers or _in_mlv_folder(e.path):
                continue
            if source.files.get(e.path, ("",))[0] in (_LINK, _SUBMODULE):
                result.skipped.append(e.path)
                continue
        why = paths.problem(rel)
        if why:
            raise PathError(f"{e.path} of {source.label} cannot be copied: {why}",
                            hint="nothing was written; the repository holds a path mlv "
                                 "never writes")
        todo.append((rel, e))
    return todo


def _in_mlv_folder(path: str) -> bool:
    """A file in a `.mlv` folder (mlv's own config and ignore files): not data."""
    return any(paths.reserved_name(part) == ".mlv" for part in path.split("/")[:-1])


def _refuse_special(source: Source, entry: Entry) -> None:
    if entry.kind == GIT and source.files.get(entry.path, ("",))[0] in (_LINK, _SUBMODULE):
        from mlv.errors import NotAFile

        raise NotAFile(f"{entry.path} is a symlink or a submodule in {source.label}; mlv "
                       "get copies files and folders", hint="get what it points to instead")


# ---- fetching -----------------------------------------------------------------------------

def _fetch(source: Source, todo: list[tuple[str, Entry]], remote: str | None,
           jobs: int | None, scratch: str, result: GetResult, progress: Progress | None
           ) -> dict[str, ObjectStore]:
    """Fetch what the source's cache lacks, one transfer per remote; returns where each
    mlv object is now: the source's cache, or (for the current repository) the temp
    store `scratch`."""
    cache = source.repo.odb
    groups: dict[str | None, dict[str, int]] = {}
    for _, e in todo:
        if e.mlv:
            assert e.oid is not None
            groups.setdefault(remote or _item_remote(source, e), {})[e.oid] = e.size or 0
    stores: dict[str, ObjectStore] = {}
    fetching = source if source.cloned else None
    store = cache if source.cloned else ObjectStore(scratch)
    for name, sizes in groups.items():
        have = cache.existing(sorted(sizes))
        stores.update((oid, cache) for oid in have)
        need = {oid: size for oid, size in sizes.items() if oid not in have}
        if not need:
            continue
        if fetching is None:
            fetching = _scratch_source(source, scratch)
        target = fetching.remote(name, jobs)
        got = transfer.fetch(store, target, set(need), source.repo.jobs, progress, need)
        _check(source, todo, target, got)
        _add(result.fetched, got)
        stores.update((oid, store) for oid in need)
    return stores


def _item_remote(source: Source, entry: Entry) -> str | None:
    found = source.index.item_at(entry.path)
    return found[0].remote if found else None


class _ScratchCache(Repo):
    """The current repository with a temp folder for a cache: a remote opened through it
    keeps its index segments there, never in the project's cache."""

    def __init__(self, root: str, cache_dir: str) -> None:
        super().__init__(root)
        self._cache_dir = cache_dir

    @property
    def cache_dir(self) -> str:
        return self._cache_dir


def _scratch_source(source: Source, scratch: str) -> Source:
    return Source(_ScratchCache(source.repo.root, scratch), source.commit, source.rev,
                  source.url, cloned=False)


def _check(source: Source, todo: list[tuple[str, Entry]], remote: Remote,
           got: TransferResult) -> None:
    """Raise the first problem of a fetch, naming a file it concerns."""
    bad = got.corrupted or got.missing or sorted(got.failed)
    if not bad:
        return
    path = next((e.path for _, e in todo if e.oid == bad[0]), bad[0])
    where = f"remote '{remote.name}'"
    if got.corrupted:
        raise ObjectCorrupted(
            f"{path} of {source.label} is damaged on {where}: its bytes do not match its "
            f"hash ({len(got.corrupted)} object(s) in all)",
            hint=f"`mlv fsck --remote {remote.name}` in the source repository lists them; "
                 "push a good copy from a machine that has one")
    if got.missing:
        raise NotPushed(f"{path} of {source.label} is in neither the cache nor {where} "
                        f"({len(got.missing)} object(s) missing in all)", got.missing,
                        hint="run `mlv push` in the repository that tracks it")
    raise ReadError(f"cannot download {path} of {source.label} from {where}: "
                    f"{got.failed[bad[0]]}", hint="run the command again to retry")


def _add(total: TransferResult, part: TransferResult) -> None:
    total.moved += part.moved
    total.bytes += part.bytes
    total.already += part.already
    total.seconds += part.seconds


# ---- writing ------------------------------------------------------------------------------

def _join(base: str, rel: str) -> str:
    return os.path.join(base, *rel.split("/")) if rel else base


def _write(source: Source, base: str, todo: list[tuple[str, Entry]],
           stores: dict[str, ObjectStore], jobs: int, progress: Progress | None) -> None:
    """Write every file of `todo` under `base` (a fresh temp folder, or the temp file of
    a lone file): mlv objects by a kernel copy on parallel threads (or from memory when
    the fetch just kept their bytes), git files from their blobs."""
    for folder in sorted({os.path.dirname(_join(base, rel)) for rel, _ in todo if "/" in rel}):
        fsio.makedirs(folder)  # inside the temp folder this get made: no link on the way
    if progress:
        progress(total_files=len(todo), total_bytes=sum(e.size or 0 for _, e in todo))

    def work(item: tuple[str, Entry]) -> None:
        rel, e = item
        assert e.oid is not None
        store = stores[e.oid]
        dst = _join(base, rel)
        mode = 0o755 if e.exec else 0o644
        data = store.recalled(e.oid)
        if data is not None:
            st = fsio.place_bytes(data, dst, mode, fresh=True)
        else:
            try:
                st = fsio.copy_new(store.path_of(e.oid), dst, mode, from_store=True)
            except OSError as exc:
                raise fsio.storage_error(exc, dst) from exc
        if st.st_size != e.size:
            raise ObjectCorrupted(f"the cache object of {e.path} ({e.oid}) is damaged: it "
                                  f"holds {st.st_size} bytes, not {e.size}",
                                  hint="delete it (`mlv fsck` finds every damaged object), "
                                       "then get again: it comes from the remote")
        if progress:
            progress(0, e.size or 0)

    data_files = [(rel, e) for rel, e in todo if e.mlv]
    workspace.parallel_map(work, data_files, jobs, progress, size=lambda it: it[1].size or 0)
    _write_git(source, base, [(rel, e) for rel, e in todo if not e.mlv], progress)


def _write_git(source: Source, base: str, todo: list[tuple[str, Entry]],
               progress: Progress | None) -> None:
    by_blob: dict[str, list[tuple[str, Entry]]] = {}
    for rel, e in todo:
        assert e.oid is not None
        if (e.size or 0) > scm.BLOB_STREAMED:
            _write_big_blob(source, _join(base, rel), e, progress)
            continue
        by_blob.setdefault(e.oid, []).append((rel, e))
    sizes = {blob: found[0][1].size or 0 for blob, found in by_blob.items()}
    for blobs in scm.read_blobs_in_batches(source.repo.root, sizes):
        for blob, data in blobs.items():
            for rel, e in by_blob.pop(blob, []):
                fsio.place_bytes(data, _join(base, rel), 0o755 if e.exec else 0o644,
                                 fresh=True)
                if progress:
                    progress(1, len(data))
    if by_blob:
        path = next(iter(by_blob.values()))[0][1].path
        raise ReadError(f"git cannot read {path} of {source.label}",
                        hint="the clone may be damaged: `git fsck` there")


def _write_big_blob(source: Source, dst: str, entry: Entry, progress: Progress | None
                    ) -> None:
    """A big git blob, streamed by git into the new file `dst` (never held in memory)."""
    assert entry.oid is not None
    try:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if entry.exec else 0o644)
    except OSError as exc:
        raise fsio.storage_error(exc, dst) from exc
    try:
        scm.copy_blob(source.repo.root, entry.oid, fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size != entry.size:
        raise ReadError(f"git cannot read {entry.path} of {source.label}",
                        hint="the clone may be damaged: `git fsck` there")
    if progress:
        progress(1, size)
