"""`mlv gc`: delete cache objects that no pointer in the chosen scope references."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from mlv import fsio
from mlv.api import scope
from mlv.repo import Repo

STALE_TMP_SECONDS = 24 * 3600


@dataclass
class GcResult:
    removed: list[tuple[str, int]] = field(default_factory=list)  # (oid, size)
    kept: int = 0
    revisions: int = 0

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
        for oid in roots:
            if oid.endswith(".dir"):
                entries = entries_anywhere(repo.odb, target, oid)
                used.update(e.oid for e in entries or [])
        stored = target.list_oids()
        result = GcResult(revisions=nrevs, kept=len(stored & used))
        doomed = sorted(stored - used)
        result.removed = [(oid, 0) for oid in doomed]
        if not dry:
            target.delete(doomed)
    return target.name, result
