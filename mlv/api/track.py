"""`mlv remove` and `mlv move`: stop tracking a path, or move it with its pointer."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlv import fsio, paths, pointer, scm, workspace
from mlv.api import targets as targets_mod
from mlv.api.add import check_trackable
from mlv.diff import diff_out
from mlv.errors import PathError
from mlv.pointer import SUFFIX, Out, Pointer
from mlv.repo import Repo


@dataclass
class Removed:
    pointer: str
    outs_removed: list[str]


def remove(repo: Repo, targets: list[str], outs: bool = False) -> list[Removed]:
    with repo.lock():
        ptrs = [targets_mod.load(repo, targets_mod.pointer_file_of(repo, t)) for t in targets]
        if outs:
            for ptr in ptrs:
                for out in ptr.outs:
                    _check_saved(repo, ptr.out_path(out), out)
        results = []
        for ptr in ptrs:
            removed = []
            for out in ptr.outs:
                path = ptr.out_path(out)
                if outs and os.path.lexists(path):
                    fsio.remove_tree(path)
                    removed.append(repo.rel(path))
                if repo.has_scm:
                    scm.remove_ignore(os.path.dirname(path), os.path.basename(path))
            fsio.remove_file(ptr.file)
            results.append(Removed(repo.rel(ptr.file), removed))
        return results


def _check_saved(repo: Repo, path: str, out: Out) -> None:
    diff = diff_out(repo.odb, repo.state, repo.jobs, path, out, fast=False)
    if not diff.present:
        return
    if diff.entries is None:
        raise PathError(f"the cache does not hold the file list of {repo.rel(path)}, so mlv "
                        "cannot tell whether deleting it would lose data",
                        hint="run `mlv pull` first, or delete it by hand")
    unsaved = [f for _, f in diff.modified] + diff.added
    if unsaved:
        oids = workspace.hash_files(unsaved, repo.state, repo.jobs)
        if repo.odb.existing(oids) != set(oids):
            raise PathError(f"{repo.rel(path)} has changes that are not in the cache",
                            hint=f"run `mlv add {repo.rel(path)}` first, or delete it by hand")
    if any(e.oid in diff.missing for e, _ in diff.same):
        raise PathError(f"the cache does not hold a copy of {repo.rel(path)}; "
                        "deleting it would lose the data",
                        hint="keep the data, or run `mlv add` to store it again")


def _check_destination(repo: Repo, path: str) -> None:
    """The one path rule (mlv/paths.py) for where `mlv move` writes: not into .git/ or
    .mlv/ (in any case), no control character, no symlinked folder on the way."""
    rel = repo.rel(path)
    if rel == "." or rel.startswith("../"):
        raise PathError("cannot move there: the destination is outside the repository",
                        hint="choose a destination inside the repository")
    check_trackable(rel)
    found = paths.problem_on_disk(repo.root, rel)
    if found:
        raise PathError(f"cannot move there: {found}",
                        hint="choose a destination that is not below a symlink")


@dataclass
class Moved:
    src: str
    dst: str
    pointer: str


def move(repo: Repo, src: str, dst: str) -> Moved:
    with repo.lock():
        old_file = targets_mod.pointer_file_of(repo, src)
        ptr = targets_mod.load(repo, old_file)
        if len(ptr.outs) != 1:
            raise PathError(f"{repo.rel(old_file)} tracks several paths; move them one by one")
        out = ptr.outs[0]
        old_path = ptr.out_path(out)
        dst_name = dst.rstrip("/") or dst
        if dst_name.endswith(SUFFIX) and not dst.endswith("/"):
            dst_name = dst_name[: -len(SUFFIX)]  # `mlv move data.mlv other.mlv`
        new_path = repo.resolve(dst_name)
        into = dst.endswith("/") or (os.path.isdir(new_path)
                                     and not os.path.exists(new_path + SUFFIX))
        if into:
            new_path = os.path.join(new_path, os.path.basename(old_path))
        _check_destination(repo, new_path)
        if os.path.lexists(new_path) or os.path.lexists(new_path + SUFFIX):
            raise PathError(f"{repo.rel(new_path)} already exists",
                            hint="choose another destination, or remove it first")
        if new_path.startswith(old_path + os.sep):
            raise PathError(f"cannot move {repo.rel(old_path)} into itself")
        targets_mod.check_not_in_tracked_folder(
            repo, new_path, hint="choose a destination outside tracked folders")
        fsio.makedirs(os.path.dirname(new_path))
        new_file = pointer.pointer_file_for(new_path)
        new_out = Out(os.path.basename(new_path), out.oid, out.size, out.nfiles, out.exec)
        # Order: new pointer, then the data, then forget the old pointer.
        pointer.write(Pointer(new_file, (new_out,), ptr.source))
        if os.path.lexists(old_path):
            fsio.rename(old_path, new_path)
        fsio.remove_file(old_file)
        if repo.has_scm:
            scm.remove_ignore(os.path.dirname(old_path), os.path.basename(old_path))
            scm.add_ignore(os.path.dirname(new_path), os.path.basename(new_path))
        return Moved(repo.rel(old_path), repo.rel(new_path), repo.rel(new_file))
