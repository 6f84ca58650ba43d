"""`mlv checkout`: make the workspace match the pointers, never losing unsaved bytes."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from mlv import fsio, paths, workspace
from mlv.api import targets as targets_mod
from mlv.checkout import ensure_folder, is_link_to, materialize
from mlv.diff import OutDiff, diff_out
from mlv.errors import CheckoutConflictError, PathError
from mlv.index import Index
from mlv.manifest import Entry
from mlv.repo import Repo
from mlv.workspace import Progress, WFile


@dataclass
class CheckoutResult:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    relinked: int = 0
    missing: list[str] = field(default_factory=list)  # paths whose objects are not cached
    bytes: int = 0  # written: the added and modified files' sizes


@dataclass
class _Plan:
    diff: OutDiff
    write: list[Entry] = field(default_factory=list)
    remove: list[WFile] = field(default_factory=list)
    clear_way: bool = False
    in_way: list[str] = field(default_factory=list)  # not the out's: cleared only with --force
    conflicts: list[str] = field(default_factory=list)


def _join(base: str, rel: str) -> str:
    return os.path.join(base, *rel.split("/")) if rel else base


def _plan(repo: Repo, diff: OutDiff, relink: bool, force: bool) -> _Plan:
    plan = _Plan(diff)
    entries = diff.entries or []
    if not diff.same_tree and diff.entries is not None:  # something will be written
        _check_place(repo, diff.path)
        plan.in_way = _in_way_above(repo, diff.path)
    # Anything about to be replaced or removed must have its bytes in the cache.
    at_risk: list[WFile] = [f for _, f in diff.modified] + diff.added
    if diff.in_way:
        if os.path.isdir(diff.path) and not os.path.islink(diff.path):
            at_risk += [] if force else workspace.walk(diff.path)
        elif _regular(diff.path):
            at_risk.append(workspace.stat_file(diff.path, ""))
        else:  # a FIFO, device or socket, or a link to a folder: never opened
            plan.conflicts.append(repo.rel(diff.path))
        plan.clear_way = True
    if diff.present:
        plan.write = [e for e, _ in diff.modified] + list(diff.deleted)
    else:
        plan.write = list(entries)
    plan.remove = list(diff.added)
    if relink:
        kind = repo.link_types[0]
        plan.write += [e for e, f in diff.same if not is_link_to(f.path, repo.odb, e.oid, kind)]
    if diff.present and diff.out.is_dir and diff.entries is not None:
        plan.in_way += _in_way_inside(repo, diff, plan)
    if at_risk and not force:
        oids = workspace.hash_files(at_risk, repo.state, repo.jobs)
        cached = repo.odb.existing(oids)
        plan.conflicts += [repo.rel(f.path) for f, oid in zip(at_risk, oids) if oid not in cached]
    plan.conflicts += [repo.rel(p) for p in plan.in_way]
    return plan


_ONLY_REAL_FOLDERS = ("mlv writes only into real folders inside the repository, never through a "
                      "symlink or into .git or .mlv, with or without --force; nothing was "
                      "changed")


def _check_place(repo: Repo, path: str) -> None:
    """Refuse an out reached through a symlink, or one that is a symlink to outside the
    repository: mlv never writes through one, with or without --force."""
    found = paths.problem_on_disk(repo.root, repo.rel(path), allow_link_into=repo.cache_dir)
    if found:
        raise PathError(f"cannot check out {repo.rel(path)}: {found}", hint=_ONLY_REAL_FOLDERS)


def _regular(path: str) -> bool:
    """A regular file or a link to one: its bytes can be hashed without hanging."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _is_folder(path: str) -> bool:
    return stat.S_ISDIR(os.lstat(path).st_mode)


def _in_way_above(repo: Repo, path: str) -> list[str]:
    """The first thing that stands where a folder above the out belongs (a user's file
    named like the folder): it is replaced only with --force."""
    here = repo.root
    for part in repo.rel(path).split("/")[:-1]:
        here = os.path.join(here, part)
        if not os.path.lexists(here):
            return []
        if not _is_folder(here):
            return [here]
    return []


def _in_way_inside(repo: Repo, diff: OutDiff, plan: _Plan) -> list[str]:
    """What stands where a file or folder of a tracked folder goes, and that checkout has
    not already listed: special files (never opened), links to them, folders where a file
    goes. The entries' paths passed the path rule when the manifest was read, and the out
    itself just now; what is left is that no folder inside it is a symlink (one lstat a
    folder, not one a file)."""
    walked = {f.path for f in plan.remove} | {f.path for _, f in diff.modified + diff.same}
    found: list[str] = []
    folders: set[str] = set()
    for e in plan.write:
        dst = _join(diff.path, e.path)
        folder = os.path.dirname(dst)
        while folder != diff.path and folder not in folders:
            folders.add(folder)
            folder = os.path.dirname(folder)
        if dst not in walked and os.path.lexists(dst):
            found.append(dst)
    for folder in sorted(folders):
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise PathError(f"cannot check out {repo.rel(folder)}: it is a symlink, and mlv "
                            "does not write through symlinks", hint=_ONLY_REAL_FOLDERS)
        if not stat.S_ISDIR(mode) and folder not in walked:
            found.append(folder)
    return found


def checkout(repo: Repo, targets: list[str] | None = None, force: bool = False,
             relink: bool = False, progress: Progress | None = None) -> CheckoutResult:
    result = CheckoutResult()
    repo.link_types  # noqa: B018 - a bad cache.type is reported before anything changes
    with repo.lock():
        try:
            plans = []
            idx = Index.load(repo)
            idx.check_claims()
            pointers = targets_mod.as_pointers(idx, targets_mod.select(repo, targets, idx))
            for ptr in pointers:
                for out in ptr.outs:
                    diff = diff_out(repo.odb, repo.state, repo.jobs, ptr.out_path(out), out,
                                    fast=not relink)
                    plans.append(_plan(repo, diff, relink, force))
            conflicts = [c for p in plans for c in p.conflicts]
            if conflicts and not force:
                shown = ", ".join(conflicts[:10]) + (" …" if len(conflicts) > 10 else "")
                raise CheckoutConflictError(
                    f"checkout would overwrite or delete {len(conflicts)} file(s) whose changes "
                    f"are not in the cache: {shown}",
                    conflicts,
                    hint="run `mlv add` to keep them, or run the command again with --force "
                         "to discard them",
                )
            for plan in plans:
                _apply(repo, plan, result, progress)
        finally:
            repo.state.save()
    return result


def _apply(repo: Repo, plan: _Plan, result: CheckoutResult, progress: Progress | None) -> None:
    diff = plan.diff
    # Again, right before anything changes: an out written before this one must not
    # have turned a folder on its way into a symlink.
    _check_place(repo, diff.path)
    fsio.remove_stale_temps(diff.path)  # a half-built folder from a killed checkout
    if diff.same_tree:
        return
    if diff.entries is None:
        result.missing.append(repo.rel(diff.path))
        return
    for path in plan.in_way:  # only with --force; links are removed, never followed
        fsio.remove_tree(path)
    if plan.clear_way:
        fsio.remove_tree(diff.path)
    for f in plan.remove:
        fsio.remove_file(f.path)
        result.deleted.append(repo.rel(f.path))
    if plan.remove:
        _prune_empty(diff.path)
    todo = [e for e in plan.write if e.oid not in diff.missing]
    result.missing += [repo.rel(_join(diff.path, e.path)) for e in plan.write
                       if e.oid in diff.missing]
    fresh = diff.out.is_dir and not os.path.lexists(diff.path)
    target = fsio.tmp_name(diff.path) if fresh else diff.path
    if fresh:
        fsio.makedirs(target)
    try:
        _write_all(repo, target, todo, fresh, progress)
        if fresh:
            fsio.rename(target, diff.path)
    except BaseException:
        if fresh:
            fsio.remove_tree(target)
        raise
    modified = {e.path for e, _ in diff.modified}
    restored = {e.path for e in diff.deleted}
    for e in todo:
        path = repo.rel(_join(diff.path, e.path))
        if e.path in modified:
            result.modified.append(path)
            result.bytes += e.size
        elif diff.present and e.path not in restored:
            result.relinked += 1
        else:
            result.added.append(path)
            result.bytes += e.size


def _write_all(repo: Repo, base: str, entries: list[Entry], fresh: bool,
               progress: Progress | None) -> None:
    folders = {os.path.dirname(_join(base, e.path)) for e in entries if "/" in e.path}
    for folder in sorted(folders):
        ensure_folder(folder)
    link_types = repo.link_types

    def copies() -> bool:
        """True when files are copied (no link type before `copy` works here)."""
        return [k for k in link_types if k not in repo.link_skip][:1] == ["copy"]

    def work(e: Entry) -> None:
        dst = _join(base, e.path)
        mode = 0o755 if e.exec else 0o644
        data = repo.odb.recalled(e.oid) if copies() else None
        if data is not None:  # just fetched: written from memory, the object left unread
            st = fsio.place_bytes(data, dst, mode, fresh)
        elif fresh:
            st = fsio.place_first_working(repo.odb.path_of(e.oid), dst, link_types, mode,
                                          fresh=True, skip=repo.link_skip)
        else:
            st = materialize(repo.odb, e.oid, dst, link_types, e.exec, repo.link_skip)
        repo.state.set(st, e.oid)
        if progress:
            progress(0, e.size)

    if progress:
        progress(total_files=len(entries), total_bytes=sum(e.size for e in entries))
    workspace.parallel_map(work, entries, repo.jobs, progress, size=lambda e: e.size)


def _prune_empty(top: str) -> None:
    for folder, _dirs, _files in os.walk(top, topdown=False):
        if folder != top:
            try:
                os.rmdir(folder)
            except OSError:
                pass
