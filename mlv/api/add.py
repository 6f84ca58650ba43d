"""`mlv add`: hash and store paths, write their pointers, git-ignore them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlv import fsio, manifest, paths, pointer, scm
from mlv.api.targets import check_not_in_tracked_folder
from mlv.checkout import is_link_to, materialize, wants_links
from mlv.diff import fingerprint
from mlv.errors import MlvError, PathError
from mlv.pointer import SUFFIX, Out, Pointer
from mlv.repo import Repo
from mlv.snapshot import Snapshot, snapshot
from mlv.workspace import Progress, WFile


@dataclass
class Added:
    path: str  # relative to the repo root
    pointer: str  # absolute
    gitignore: str | None  # absolute path of the .gitignore that lists it
    nfiles: int | None
    size: int
    changed: bool


def _check_target(repo: Repo, target: str) -> str:
    path = repo.resolve(target.rstrip("/") or target)
    rel = repo.rel(path)
    if path == repo.root:
        raise PathError("cannot add the repository root itself",
                        hint="add the data folders inside it, e.g. `mlv add data`")
    check_trackable(rel)
    if not os.path.lexists(path):
        raise PathError(f"{target} does not exist", hint="check the path and try again")
    if path.endswith(SUFFIX):
        raise PathError(f"{rel} is a pointer file, not data",
                        hint=f"to record a new version, run `mlv add {rel[: -len(SUFFIX)]}`")
    if os.path.islink(path) and not _links_into_cache(repo, path):
        raise PathError(f"{rel} is a symlink; mlv tracks files and folders, not links",
                        hint="add the folder or file the link points to")
    _check_pointer_name(path)
    check_not_in_tracked_folder(repo, path)
    return path


def _check_pointer_name(path: str) -> None:
    """Refuse a name whose pointer `<name>.mlv` would be longer than a name may be."""
    folder, name = os.path.split(pointer.pointer_file_for(path))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(name)) > limit:
        raise PathError(f"the name {os.path.basename(path)!r} is too long to track: its "
                        f"pointer file's name would be longer than {limit} bytes",
                        hint=f"rename it to at most {limit - len(SUFFIX)} bytes, or add the "
                             "folder that holds it")


def check_trackable(rel: str) -> None:
    """Refuse a repo-relative path that the one path rule (mlv/paths.py) does not allow:
    in .git/ or .mlv/ (in any case), or with a control character (a newline would add
    a line of its own to .gitignore)."""
    found = paths.problem(rel)
    if found is None:
        own = paths.own_file(rel)
        if own and not rel.endswith(pointer.SUFFIX):  # pointers get their own message
            raise PathError(f"cannot track it: {own}", hint="git tracks these files itself")
        return
    folder = next(filter(None, map(paths.reserved_name, rel.split("/"))), None)
    if folder and rel.isprintable():
        raise PathError(f"{rel} names {folder}/, git's or mlv's own folder, and cannot be "
                        "tracked", hint="add your data folders, e.g. `mlv add data`")
    raise PathError(f"cannot track it: {found}", hint="rename it, then add it")


def _links_into_cache(repo: Repo, path: str) -> bool:
    """A symlink that the `symlink` cache type made (it points at a cache object)."""
    real = os.path.realpath(path)
    return real.startswith(repo.cache_dir + os.sep) and os.path.isfile(real)


def _check_nested(repo: Repo, path: str) -> None:
    for folder, _dirs, files in os.walk(path):
        for name in files:
            if name.endswith(SUFFIX):
                inner = repo.rel(os.path.join(folder, name))
                if os.path.lexists(os.path.join(folder, name[: -len(SUFFIX)])):
                    raise PathError(f"{repo.rel(path)} contains {inner}, which mlv already "
                                    "tracks", hint=f"run `mlv remove {inner}` first")
                raise PathError(f"{repo.rel(path)} contains {inner}; a tracked folder cannot "
                                "hold .mlv files",
                                hint=f"run `mlv remove {inner}` first if it is a pointer, or "
                                     "rename it")


def add(repo: Repo, targets: list[str], progress: Progress | None = None) -> list[Added]:
    link_types = repo.link_types  # a bad cache.type is reported before anything changes
    paths = list(dict.fromkeys(_check_target(repo, t) for t in targets))
    for a in paths:
        for b in paths:
            if b.startswith(a + os.sep):
                raise PathError(f"{repo.rel(b)} is inside {repo.rel(a)}; both cannot be tracked",
                                hint=f"add only {repo.rel(a)}, or only {repo.rel(b)}")
    for path in paths:
        if os.path.isdir(path):
            _check_nested(repo, path)
    if repo.has_scm:
        rels = [repo.rel(p) for p in paths]
        in_git = scm.tracked(repo.root, rels)
        if in_git:
            first = in_git[0]
            owner = next(r for r in rels if first == r or first.startswith(r + "/"))
            raise PathError(f"{owner} is tracked by git ({first})",
                            hint=f"run `git rm -r --cached {owner}` first, then `mlv add {owner}`")
        for path in paths:  # refused now, before any pointer or .gitignore changes
            scm.check_ignore(os.path.dirname(path), os.path.basename(path))
    results = []
    with repo.lock():
        try:
            # Every target is read and stored before the first pointer is written, so
            # one that is refused (a broken link inside it, say) changes nothing.
            snaps = [snapshot(repo.odb, repo.state, repo.jobs, path, store=True,
                              progress=progress) for path in paths]
            for path, snap in zip(paths, snaps):
                results.append(_add_one(repo, path, snap, link_types))
        finally:
            repo.state.save()
    return results


def record(repo: Repo, path: str) -> Added:
    """Store a tracked path's current bytes and rewrite its pointer (the caller holds the
    repository lock): what `mlv repro` does for a changed input that a pointer tracks."""
    snap = snapshot(repo.odb, repo.state, repo.jobs, path, store=True)
    return _add_one(repo, path, snap, repo.link_types)


def _add_one(repo: Repo, path: str, snap: Snapshot, link_types: list[str]) -> Added:
    name = os.path.basename(path)
    files, entries = snap.files, snap.entries
    out = Out(name, snap.oid, snap.size, snap.nfiles, snap.exec)
    # Every object is stored; only now may a pointer reference them.
    file = pointer.pointer_file_for(path)
    new = Pointer(file, (out,), _same_import(repo, file, out))
    changed = True
    if os.path.exists(file):
        try:  # a FIFO or symlink there is not read; the write below replaces it
            changed = pointer.dumps([out], new.source) != fsio.read_text(
                file, fsio.POINTER_LIMIT, file)
        except (OSError, MlvError):
            changed = True
    if changed:
        pointer.write(new)
    gitignore = None
    if repo.has_scm:
        scm.add_ignore(os.path.dirname(path), name)
        gitignore = os.path.join(os.path.dirname(path), ".gitignore")
    if wants_links(link_types):
        _link_back(repo, files, entries, link_types)
    elif out.is_dir:
        repo.state.set_tree(path, out.oid, fingerprint(files, repo.odb))
    return Added(repo.rel(path), file, gitignore, out.nfiles, out.size, changed)


def _same_import(repo: Repo, file: str, out: Out) -> pointer.ImportSource | None:
    """The source of an import (`mlv import`) whose data is unchanged: kept. Changed
    data is the user's own from now on, and its pointer records no source."""
    try:
        old = pointer.load(file, repo.root, repo.rel(file), cache_root=repo.cache_dir)
    except (OSError, MlvError):
        return None
    return old.source if old.outs == (out,) else None


def _link_back(repo: Repo, files: list[WFile], entries: list[manifest.Entry],
               link_types: list[str]) -> None:
    """Replace workspace files with links into the cache (hardlink/symlink cache types)."""
    kind = link_types[0]
    for f, e in zip(files, entries):
        if not is_link_to(f.path, repo.odb, e.oid, kind):
            st = materialize(repo.odb, e.oid, f.path, link_types, e.exec, repo.link_skip)
            repo.state.set(st, e.oid)

