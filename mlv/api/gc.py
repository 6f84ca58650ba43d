"""`mlv gc`: delete cache objects that no pointer in the chosen scope references."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlv import fsio
from mlv.api import scope
from mlv.config import DEFAULTS, parse_duration, shortens_grace
from mlv.errors import ConfigError, MlvError
from mlv.repo import Repo
from mlv.workspace import Progress

if TYPE_CHECKING:
    from mlv.remote import Remote
    from mlv.remote.packed import PackedRemote
    from mlv.remote.packgc import PackGcResult

STALE_TMP_SECONDS = 24 * 3600


@dataclass
class GcResult:
    removed: list[tuple[str, int]] = field(default_factory=list)  # (oid, size)
    kept: int = 0
    revisions: int = 0
    temps: int = 0  # temp files of interrupted uploads, deleted from a folder remote
    recent: list[str] = field(default_factory=list)  # unreferenced, newer than the grace
    unknown_age: list[str] = field(default_factory=list)  # unreferenced, age not listed
    grace: float = 0.0  # seconds: `gc --cloud` deleted nothing younger than this
    packs: PackGcResult | None = None  # a format-2 remote: what happened to its packs

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed)


def used_objects(repo: Repo, all_branches: bool = False, all_tags: bool = False,
                 all_commits: bool = False) -> tuple[set[str], int]:
    """Every object referenced from the workspace and the chosen revisions."""
    found, nrevs = scope.roots(repo, None, all_branches, all_tags, all_commits)
    return scope.expand(repo.odb, found), nrevs


def gc(repo: Repo, all_branches: bool = False, all_tags: bool = False,
       all_commits: bool = False, dry: bool = False, progress: Progress | None = None
       ) -> GcResult:
    with repo.lock():
        used, nrevs = used_objects(repo, all_branches, all_tags, all_commits)
        result = GcResult(revisions=nrevs)
        now = time.time()
        for oid, path in repo.odb.iter_objects():
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if progress:
                progress(1, st.st_size)
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


def grace_seconds(repo: Repo, grace: float | None) -> float:
    """The grace period for `gc --cloud`: the one given, else `gc.grace`, else a day."""
    if grace is not None:
        return grace
    value = repo.config.get("gc.grace", DEFAULTS["gc.grace"])
    mine = [repo.config.get("gc.grace", level=lvl) for lvl in ("global", "local")]
    if mine == [None, None] and shortens_grace(value):
        # set (only) by the committed config, which a clone brings
        raise ConfigError(f"gc.grace {value} in .mlv/config is not used: a clone may only "
                          f"lengthen the grace period (at least {DEFAULTS['gc.grace']})",
                          hint="to use it, set it for this clone: "
                               f"`mlv config --local gc.grace {value}`, or pass --grace")
    return parse_duration(value)


def gc_cloud(repo: Repo, remote: str | None, all_branches: bool = False,
             all_tags: bool = False, all_commits: bool = False, dry: bool = False,
             jobs: int | None = None, grace: float | None = None,
             confirm: Callable[[str, int], bool] | None = None,
             progress: Progress | None = None) -> tuple[str, GcResult]:
    """Delete objects on a remote that no pointer in scope references and that are older
    than the grace period (another clone may be pushing the newer ones right now).
    Manifests go before files, so an interrupted gc never leaves a manifest on the
    remote that vouches for files it no longer has. `confirm(url, count)` is asked
    before anything is deleted (the remote may come from a clone's config)."""
    from mlv.api import remote as remote_api
    from mlv.remote.packed import PackedRemote

    target = remote_api.resolve(repo, remote, jobs)
    seconds = grace_seconds(repo, grace)
    with repo.lock():
        roots, nrevs = scope.roots(repo, None, all_branches, all_tags, all_commits)
        used = _with_files(repo, target, roots, unreadable_is_error=True)
        if isinstance(target, PackedRemote):
            return target.name, _gc_packed(repo, target, used, nrevs, dry, seconds, confirm)
        stored = target.list_mtimes()
        result = GcResult(revisions=nrevs, kept=len(stored.keys() & used), grace=seconds)
        cutoff = time.time() - seconds
        unused = stored.keys() - used
        unknown = {o for o in unused if stored[o] is None}
        spared = unknown | {o for o in unused if (stored[o] or 0) > cutoff}
        # A manifest kept for its age keeps the files it lists: a push that found them
        # already on the remote did not make them newer.
        spared |= _with_files(repo, target, {o for o in spared if o.endswith(".dir")},
                              unreadable_is_error=False) & unused
        result.recent = sorted(spared - unknown)
        result.unknown_age = sorted(unknown)
        doomed = sorted(unused - spared)
        if not dry and doomed and confirm is not None and not confirm(target.shown_url,
                                                                      len(doomed)):
            raise MlvError("gc --cloud stopped: nothing was deleted")
        if not dry:
            if progress:
                progress(total_files=len(doomed))
            manifests = [o for o in doomed if o.endswith(".dir")]
            _delete(target, manifests, len(doomed), progress)
            _delete(target, [o for o in doomed if not o.endswith(".dir")], len(doomed),
                    progress)
            result.temps = target.remove_stale_temps(STALE_TMP_SECONDS)
        result.removed = [(oid, 0) for oid in doomed]
    return target.name, result


def _gc_packed(repo: Repo, target: PackedRemote, used: set[str], nrevs: int, dry: bool,
               seconds: float, confirm: Callable[[str, int], bool] | None) -> GcResult:
    """A format-2 remote: deletion in two phases (mlv/remote/packgc.py). Asked first: a
    run that finds something to schedule or to delete (a dry run tells what)."""
    from mlv.remote import packgc
    from mlv.transfer import entries_anywhere

    def files(oid: str) -> set[str] | None:
        entries = entries_anywhere(repo.odb, target, oid)
        return None if entries is None else {e.oid for e in entries}

    if not dry and confirm is not None:
        preview = packgc.collect(target, used, seconds, dry=True, manifest_files=files)
        count = preview.dead_packs + preview.sparse_packs + preview.deleted_packs + \
            preview.recipes + preview.loose + len(preview.deleted)
        if count and not confirm(target.shown_url, count):
            raise MlvError("gc --cloud stopped: nothing was deleted")
    found = packgc.collect(target, used, seconds, dry=dry, manifest_files=files)
    temps = 0 if dry else target.inner.remove_stale_temps(STALE_TMP_SECONDS)
    return GcResult(removed=[(oid, 0) for oid in found.deleted], revisions=nrevs,
                    kept=len(used), grace=seconds, packs=found, temps=temps)


def _with_files(repo: Repo, target: Remote, roots: set[str], unreadable_is_error: bool
                ) -> set[str]:
    """`roots` and every file their manifests list (read from the cache, else the remote)."""
    from mlv.transfer import entries_anywhere

    used = set(roots)
    unreadable = []
    for oid in sorted(roots):
        if oid.endswith(".dir"):
            entries = entries_anywhere(repo.odb, target, oid)
            if entries is None:
                unreadable.append(oid)
            used.update(e.oid for e in entries or [])
    if unreadable and unreadable_is_error:
        raise MlvError(f"cannot read the file list {unreadable[0]} (in neither the cache nor "
                       f"'{target.name}', or damaged), so mlv cannot tell which files it "
                       "still needs; nothing was deleted",
                       hint="run `mlv fsck --remote` and repair it, or gc a narrower scope")
    return used


DELETE_BATCH = 1000  # objects per progress step (and per S3 multi-delete request)


def _delete(target: Remote, oids: list[str], total: int,
            progress: Progress | None = None) -> None:
    failed: dict[str, BaseException] = {}
    for start in range(0, len(oids), DELETE_BATCH):
        batch = oids[start:start + DELETE_BATCH]
        failed.update(target.delete(batch))
        if progress:
            progress(len(batch))
    if failed:
        raise MlvError(f"{len(failed)} of {total} objects could not be deleted "
                       f"from '{target.name}' (e.g. {next(iter(failed))})",
                       hint="check the remote's permissions, then run gc again")
