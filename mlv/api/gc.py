"""`mlv gc`: delete cache objects that no pointer in the chosen scope references."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from mlv import fsio
from mlv.api import scope
from mlv.errors import MlvError
from mlv.repo import Repo

STALE_TMP_SECONDS = 24 * 3600


@dataclass
class GcResult:
    removed: list[tuple[str, int]] = field(default_factory=list)  # (oid, size)
    kept: int = 0
    revisions: int = 0
    temps: int = 0  # temp files of interrupted uploads, deleted from a folder remote

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed)


def used_objects(repo: Repo, all_branches: bool = False, all_tags: bool = False,
                 all_commits: bool = False) -> tuple[set[str], int]:
    """Every object referenced from the workspace and the chosen revisions."""
    found, nrevs = scope.roots(repo, None, all_branches, all_tags, all_commits)
    return scope.expand(repo.odb, found), nrevs


def gc(repo: Repo, all_branches: bool = False, all_tags: bool = False,
       all_commits: bool = False, dry: bool = False) -> GcResult:
    with repo.lock():
        used, nrevs = used_objects(repo, all_branches, all_tags, all_commits)
        result = GcResult(revisions=nrevs)
        now = time.time()
        for oid, path in repo.odb.iter_objects():
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not oid:  # a temp file left by an interrupted write
                if not dry and now - st.st_mtime > STALE_TMP_SECONDS:
                    fsio.remove_file(path)
                continue
            if oid in used:
                result.kept += 1
                continue
            result.removed.append((oid, st.st_size))
            if not dry:
                fsio.remove_file(path)
    return result


def gc_cloud(repo: Repo, remote: str | None, all_branches: bool = False,
             all_tags: bool = False, all_commits: bool = False, dry: bool = False,
             jobs: int | None = None) -> tuple[str, GcResult]:
    """Delete objects on a remote that no pointer in scope references."""
    from mlv.api import remote as remote_api
    from mlv.transfer import entries_anywhere

    target = remote_api.resolve(repo, remote, jobs)
    with repo.lock():
        roots, nrevs = scope.roots(repo, None, all_branches, all_tags, all_commits)
        used = set(roots)
        unreadable = []
        for oid in sorted(roots):
            if oid.endswith(".dir"):
                entries = entries_anywhere(repo.odb, target, oid)
                if entries is None:
                    unreadable.append(oid)
                used.update(e.oid for e in entries or [])
        if unreadable:
            raise MlvError(f"cannot read the file list {unreadable[0]} (in neither the cache nor "
                           f"'{target.name}', or damaged), so mlv cannot tell which files it "
                           "still needs; nothing was deleted",
                           hint="run `mlv fsck --remote` and repair it, or gc a narrower scope")
        stored = target.list_oids()
        result = GcResult(revisions=nrevs, kept=len(stored & used))
        doomed = sorted(stored - used)
        if not dry:
            failed = target.delete(doomed)
            if failed:
                raise MlvError(f"{len(failed)} of {len(doomed)} objects could not be deleted "
                               f"from '{target.name}' (e.g. {next(iter(failed))})",
                               hint="check the remote's permissions, then run gc again")
            result.temps = target.remove_stale_temps(STALE_TMP_SECONDS)
        result.removed = [(oid, 0) for oid in doomed]
    return target.name, result
