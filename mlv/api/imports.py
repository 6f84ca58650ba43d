"""`mlv import` and `mlv update`: a file or folder of another repository, tracked here by
a pointer that also records where it came from (`source:`, docs/formats.md).

The bytes enter this repository's cache (downloaded from the source's remote, verified),
so `mlv push` copies them to this project's own remote and a clone pulls them without
access to the source. Order, so that nothing is half-written: every object is in the
cache, then the pointer is written, then the workspace is checked out (a folder under a
temp name, renamed into place); a failed checkout takes the pointer back.

A pointer's `source:` comes from a clone, so it is untrusted: `mlv.pointer` refuses a url
or rev that could become an option or a command, and a path that breaks the path rule;
git is called with the URL after `--`, and never with a command-running transport."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mlv import fsio, manifest, paths, pointer, scm
from mlv.api.add import check_trackable
from mlv.api.revtree import GIT, Entry
from mlv.api.source import Source, open_source
from mlv.api.targets import check_not_in_tracked_folder, pointer_file_of
from mlv.errors import (
    MlvError,
    NotAFile,
    NotPushed,
    ObjectCorrupted,
    PathError,
    ReadError,
)
from mlv.index import Index
from mlv.pointer import SUFFIX, ImportSource, Out, Pointer
from mlv.repo import Repo
from mlv.workspace import Progress

if TYPE_CHECKING:
    from mlv.remote import Remote
    from mlv.transfer import TransferResult

_SYMLINK, _SUBMODULE = "120000", "160000"


@dataclass
class Imported:
    path: str  # repo-relative: the imported file or folder here
    pointer: str  # repo-relative `.mlv` file
    source: ImportSource
    label: str  # the source as messages name it (`URL at REV (1a2b3c4d)`)
    size: int
    nfiles: int | None


@dataclass
class Updated:
    path: str
    pointer: str
    old: ImportSource
    new: ImportSource
    changed: bool  # the data differs (not only the recorded commit or rev)
    old_size: int = 0
    new_size: int = 0
    added: list[str] = field(default_factory=list)  # files, for a folder
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new


@dataclass
class ImportCheck:
    """`mlv status --imports`: one import against its source's current commit."""

    path: str
    pointer: str
    source: ImportSource
    current: str | None  # the commit the recorded rev names now; None: see `problem`
    problem: str | None = None

    @property
    def outdated(self) -> bool:
        return self.current is not None and self.current != self.source.commit


# ---- import -----------------------------------------------------------------------------

def import_path(repo: Repo, url: str, path: str, out: str | None = None,
                rev: str | None = None, remote: str | None = None,
                progress: Progress | None = None) -> Imported:
    """Download `path` of the repository `url` at `rev` into the cache and the workspace
    (at `out`, relative to the current folder; default: the path's name here) and write
    its pointer. Raises ReadError (the source), PathError (the destination)."""
    repo.link_types  # noqa: B018 - a bad cache.type is reported before anything changes
    shown = (out or "").rstrip("/") or os.path.basename(path.rstrip("/")) or path
    dest = _check_destination(repo, shown)
    _refuse_secrets(url)
    source = open_source(_recorded_url(url), rev, cwd=repo.root)
    entry = _source_entry(source, path)
    new_out = _collect(repo, source, entry, os.path.basename(dest), remote, progress)
    origin = ImportSource(source.url or url, entry.path, rev, source.commit)
    ptr = Pointer(pointer.pointer_file_for(dest), (new_out,), origin)
    folder = os.path.dirname(dest)
    made = _first_missing(folder)
    ignored = False
    try:
        with repo.lock():
            _check_destination(repo, shown)  # again: nothing appeared there meanwhile
            fsio.makedirs(folder)
            pointer.write(ptr)
            ignored = repo.has_scm and scm.add_ignore(folder, os.path.basename(dest))
        _checkout(repo, dest)
    except BaseException:
        fsio.remove_file(ptr.file)
        if ignored:
            scm.remove_ignore(folder, os.path.basename(dest))
        if os.path.isdir(dest) and not os.path.islink(dest):  # nothing was there before
            fsio.remove_tree(dest)
        elif os.path.lexists(dest):
            fsio.remove_file(dest)
        if made is not None and os.path.isdir(made):
            fsio.remove_tree(made)  # the folders made for it, empty again
        raise
    return Imported(repo.rel(dest), repo.rel(ptr.file), origin, source.label, new_out.size,
                    new_out.nfiles)


def _refuse_secrets(url: str) -> None:
    """The URL is committed in the pointer: one with a password or a signed query would
    publish it."""
    from mlv.remote.base import masked_url

    if masked_url(url) != url:
        raise MlvError(f"{masked_url(url)}: the URL carries a password or a secret, and "
                         "an import commits its URL in the pointer",
                         hint="give the URL without it, and let git's credential helper "
                              "(`git config credential.helper`) or ssh keys supply it")


def _first_missing(folder: str) -> str | None:
    """The outermost folder on the way to `folder` that does not exist yet."""
    missing = None
    while not os.path.lexists(folder):
        missing, folder = folder, os.path.dirname(folder)
    return missing


def _recorded_url(url: str) -> str:
    """A local path is recorded absolute (it names the same folder from anywhere); a URL
    as it is given."""
    if "://" not in url and os.path.isdir(os.path.expanduser(url)):
        return os.path.abspath(os.path.expanduser(url))
    return url


def _check_destination(repo: Repo, out: str) -> str:
    dest = repo.resolve(out)
    rel = repo.rel(dest)
    if dest == repo.root:
        raise PathError("cannot import into the repository root itself",
                        hint="name a path inside it with -o OUT")
    check_trackable(rel)
    if dest.endswith(SUFFIX):
        raise PathError(f"{rel} would be a pointer file, not data", hint="choose another -o OUT")
    if os.path.lexists(dest + SUFFIX):
        raise PathError(f"{rel} is already tracked ({rel}{SUFFIX})",
                        hint=f"run `mlv update {rel}` to move an import to a newer commit, "
                             "or choose another -o OUT")
    if os.path.lexists(dest):
        raise PathError(f"{rel} already exists", hint="choose another -o OUT, or remove it")
    found = paths.problem_on_disk(repo.root, rel)
    if found:
        raise PathError(f"cannot import to {rel}: {found}", hint="choose another -o OUT")
    check_not_in_tracked_folder(repo, dest, hint="choose a destination outside tracked "
                                                 "folders")
    if Index.load(repo).item_at(rel) is not None:
        raise PathError(f"{rel} is already tracked (an output in mlv.lock)",
                        hint="choose another -o OUT")
    if repo.has_scm:
        if scm.tracked(repo.root, [rel]):
            raise PathError(f"{rel} is tracked by git", hint="choose another -o OUT")
        folder = os.path.dirname(dest)  # made by the import if missing: ask its parent
        scm.check_ignore(os.path.dirname(_first_missing(folder) or os.path.join(folder, "x")),
                         os.path.basename(dest))
    return dest


def _source_entry(source: Source, path: str) -> Entry:
    entry = source.stat(path)
    if not entry.path:
        raise PathError(f"cannot import the whole of {source.label}",
                        hint="import a file or folder inside it (`mlv ls URL` lists them)")
    found = paths.problem(entry.path)
    if found:
        raise PathError(f"cannot import {entry.path!r}: {found}")
    return entry


def _checkout(repo: Repo, dest: str) -> None:
    from mlv.api.checkout import checkout

    result = checkout(repo, [dest])
    if result.missing:  # cannot happen: every object was just put in the cache
        raise ObjectCorrupted(f"the cache lacks objects of {repo.rel(dest)}",
                              hint="run `mlv fsck`, then the command again")


# ---- gathering the bytes into this cache -----------------------------------------------

def _collect(repo: Repo, source: Source, entry: Entry, name: str, remote: str | None,
             progress: Progress | None) -> Out:
    """Put the bytes of `entry` (a file, or every file of a folder, but the source's
    pointer files) into this repository's cache and return its out, named `name`. A
    folder's manifest is stored last, so it only ever names objects that are there."""
    members = source.walk(entry.path, recursive=True, dirs=False) if entry.is_dir \
        else [entry]
    if entry.is_dir:  # the pointers of data inside: the data itself comes instead
        members = [e for e in members if not (e.kind == GIT and e.path in source.index.pointers)]
    prefix = entry.path + "/" if entry.is_dir else ""
    oids = _store_git_files(repo, source, [e for e in members if e.kind == GIT])
    _bring(repo, source, [e for e in members if e.kind != GIT], remote, progress)
    rels = [e.path[len(prefix):] for e in members]
    bad = paths.first_problem(rels)
    if bad is not None:
        raise PathError(f"cannot import {entry.path}: {rels[bad[0]]!r}: {bad[1]}")
    entries = [manifest.Entry(rel, oids.get(e.path) or e.oid or "", e.size or 0, e.exec)
               for rel, e in zip(rels, members)]
    if not entry.is_dir:
        one = entries[0]
        return Out(name, one.oid, one.size, None, one.exec)
    data = manifest.dumps(entries)
    dir_oid = repo.odb.add_bytes(data, ".dir")
    return Out(name, dir_oid, sum(e.size for e in entries), len(entries))


def _store_git_files(repo: Repo, source: Source, files: list[Entry]) -> dict[str, str]:
    """Files git tracks in the source, into the cache: path -> object id."""
    for e in files:
        mode = source.files.get(e.path, ("", "", 0))[0]
        if mode in (_SYMLINK, _SUBMODULE):
            what = "a symlink" if mode == _SYMLINK else "a git submodule"
            raise NotAFile(f"{e.path} is {what} in {source.label}; mlv does not import links "
                           "or submodules", hint="import the files it points to instead")
    by_blob: dict[str, list[str]] = {}
    for e in files:
        by_blob.setdefault(e.oid or "", []).append(e.path)
    oids: dict[str, str] = {}
    for found in _blobs(source, {e.oid or "": e.size or 0 for e in files}):
        for blob, data in found.items():
            oid = repo.odb.add_bytes(data)
            for path in by_blob.get(blob, []):
                oids[path] = oid
    lacking = [p for ps in by_blob.values() for p in ps if p not in oids]
    if lacking:
        raise ReadError(f"git cannot read {lacking[0]} of {source.label}",
                        hint="the clone may be damaged: `git fsck` there")
    return oids


def _blobs(source: Source, blobs: dict[str, int]) -> Iterator[dict[str, bytes]]:
    return scm.read_blobs_in_batches(source.repo.root, blobs) if blobs else iter(())


def _bring(repo: Repo, source: Source, files: list[Entry], remote: str | None,
           progress: Progress | None) -> None:
    """Objects of mlv-tracked files, into the cache: copied from a local source's cache
    when it has them, else fetched from the source's remote (each verified)."""
    from mlv import transfer
    from mlv.api.reading import remote_of

    wanted = {e.oid: e for e in files if e.oid and not repo.odb.exists(e.oid)}
    if not source.cloned and source.repo.cache_dir != repo.cache_dir:
        for oid in list(wanted):
            if source.repo.odb.exists(oid):
                got, _ = repo.odb.add_file(source.repo.odb.path_of(oid))
                if got == oid:
                    del wanted[oid]
    groups: dict[str, tuple[Remote, list[Entry]]] = {}
    for e in wanted.values():
        store = remote_of(source, e, remote)
        groups.setdefault(store.name, (store, []))[1].append(e)
    for store, entries in groups.values():
        sizes = {e.oid or "": e.size or 0 for e in entries}
        result = transfer.fetch(repo.odb, store, set(sizes), repo.jobs, progress, sizes)
        _check_fetch(source, store.name, entries, result)


def _check_fetch(source: Source, name: str, entries: list[Entry],
                 result: TransferResult) -> None:
    first = {e.oid: e.path for e in entries}
    corrupted, missing, failed = result.corrupted, result.missing, result.failed
    if corrupted:
        raise ObjectCorrupted(f"{first[corrupted[0]]} of {source.label} is damaged on remote "
                              f"'{name}': its bytes do not match its hash",
                              hint=f"`mlv fsck --remote {name}` in the source repository "
                                   "finds more")
    if missing:
        raise NotPushed(f"{first[missing[0]]} of {source.label} is not on remote '{name}' "
                        f"({len(missing)} object(s) missing); nothing was imported", missing,
                        hint="run `mlv push` in the repository that tracks it")
    if failed:
        oid = next(iter(failed))
        raise ReadError(f"cannot download {first[oid]} of {source.label} from remote "
                        f"'{name}': {failed[oid]}")


# ---- update -----------------------------------------------------------------------------

def imports_of(repo: Repo, targets: list[str] | None = None, strict: bool = True
               ) -> list[Pointer]:
    """The import pointers `targets` name (import pointers or their outs; none: every
    import in the workspace). `strict` False: targets that are not imports are left
    out, not refused."""
    if not targets:
        idx = Index.load(repo)
        return [p for _, p in sorted(idx.pointers.items()) if p.source is not None]
    found: dict[str, Pointer] = {}
    for target in targets:
        file = pointer_file_of(repo, target)
        ptr = pointer.load(file, repo.root, repo.rel(file), cache_root=repo.cache_dir)
        if ptr.source is None and not strict:
            continue
        if ptr.source is None:
            raise PathError(f"{repo.rel(file)} is not an import (it records no source)",
                            hint="`mlv update` moves paths that `mlv import` made; run "
                                 "`mlv add PATH` to record a new version of your own data")
        found[file] = ptr
    return list(found.values())


def update(repo: Repo, targets: list[str] | None = None, rev: str | None = None,
           remote: str | None = None, progress: Progress | None = None) -> list[Updated]:
    """Move each import to the newest commit of its recorded revision (or of `rev`,
    then recorded instead) and, when the data changed, fetch and check it out."""
    return [_update_one(repo, ptr, rev, remote, progress) for ptr in imports_of(repo, targets)]


def _update_one(repo: Repo, ptr: Pointer, rev: str | None, remote: str | None,
                progress: Progress | None) -> Updated:
    old = ptr.source
    assert old is not None
    out = ptr.outs[0]
    dest = ptr.out_path(out)
    want = rev if rev is not None else old.rev
    source = open_source(old.url, want, cwd=repo.root)
    new = replace(old, rev=want, commit=source.commit)
    found = Updated(repo.rel(dest), repo.rel(ptr.file), old, new, False, out.size, out.size)
    if new == old:
        return found
    new_out = _collect(repo, source, _source_entry(source, old.path), out.path, remote,
                       progress)
    found.new_size = new_out.size
    found.changed = new_out.oid != out.oid
    if found.changed and new_out.is_dir:
        _folder_changes(repo, out, new_out, found)
    before = fsio.read_text(ptr.file, fsio.POINTER_LIMIT, found.pointer)
    with repo.lock():
        pointer.write(Pointer(ptr.file, (new_out,), new))
    if found.changed:
        try:
            _checkout(repo, dest)
        except BaseException:
            fsio.atomic_write(ptr.file, before.encode())
            raise
    return found


def _folder_changes(repo: Repo, old: Out, new: Out, found: Updated) -> None:
    def listing(out: Out) -> dict[str, str]:
        try:
            data = repo.odb.read_bytes(out.oid, manifest.MAX_BYTES + 1)
            return {e.path: e.oid for e in manifest.loads(data, out.oid)}
        except (FileNotFoundError, MlvError):
            return {}

    before, after = listing(old) if old.is_dir else {}, listing(new)
    found.added = sorted(set(after) - set(before))
    found.deleted = sorted(set(before) - set(after))
    found.modified = sorted(p for p in set(before) & set(after) if before[p] != after[p])


# ---- status --imports -------------------------------------------------------------------

def check_imports(repo: Repo, targets: list[str] | None = None) -> list[ImportCheck]:
    """Each import against the commit its recorded revision names in the source now
    (network: fetches the source's clone). A source that cannot be read is reported,
    not raised, so one gone repository does not hide the others."""
    checks = []
    for ptr in imports_of(repo, targets, strict=False):
        assert ptr.source is not None
        rel = repo.rel(ptr.out_path(ptr.outs[0]))
        try:
            current: str | None = open_source(ptr.source.url, ptr.source.rev,
                                              cwd=repo.root).commit
            problem = None
        except ReadError as exc:
            current, problem = None, exc.message
        checks.append(ImportCheck(rel, repo.rel(ptr.file), ptr.source, current, problem))
    return checks
