"""`mlv fsck`: re-hash objects in the cache (and on a remote) and report damage."""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from mlv import manifest
from mlv.api import remote as remote_api
from mlv.api import targets as targets_mod
from mlv.hashing import hash_file
from mlv.remote import Remote
from mlv.remote.packed import PackedRemote
from mlv.repo import Repo
from mlv.workspace import Progress, bytes_of, parallel_map

CHUNK = 512  # remote objects downloaded per round


@dataclass
class Part:
    """A damaged part of a format-2 remote: its kind ("pack", "index segment", "recipe",
    "marker"), key, problems, and the files it damages with the pointers that use them."""
    kind: str
    key: str
    problems: list[str]
    objects: dict[str, list[str]]
    repair: str | None = None  # what to do about it, when mlv knows


@dataclass
class FsckResult:
    where: str  # "cache" or "remote 'NAME'"
    checked: int = 0
    bad: dict[str, list[str]] = field(default_factory=dict)  # oid -> pointers using it
    # Remote manifests that list a damaged object: push trusts a manifest on the remote to
    # mean its files are there, so these must go too before a push can repair the data.
    vouching: list[str] = field(default_factory=list)
    # Format 2: damaged packs, index segments, recipes or marker, and the files each
    # affects; packs no segment lists (harmless leftovers) and why they are harmless.
    packed: bool = False  # a format-2 remote (parts and leftovers apply)
    parts: list[Part] = field(default_factory=list)
    leftovers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.parts


def _users(repo: Repo) -> dict[str, list[str]]:
    """Which workspace records (pointers, mlv.lock) reference each object, directly or
    via a manifest."""
    users: dict[str, list[str]] = {}
    for item in targets_mod.select(repo, None):
        assert item.oid is not None
        name = item.source if item.pointer else f"{item.source} ({item.path})"
        users.setdefault(item.oid, []).append(name)
        if item.is_dir:
            try:
                entries = manifest.loads(repo.odb.read_bytes(item.oid, manifest.MAX_BYTES + 1),
                                         item.oid)
            except FileNotFoundError:
                continue
            for e in entries:
                users.setdefault(e.oid, []).append(f"{item.source} ({item.path}/{e.path})")
    return users


def _good(path: str, oid: str, on_bytes: Callable[[int], None] | None = None) -> bool:
    try:
        return hash_file(path, on_bytes)[0] == oid.removesuffix(".dir")
    except OSError:
        return False


def _sizes(objects: list[tuple[str, str]]) -> int:
    total = 0
    for _, path in objects:
        try:
            total += os.lstat(path).st_size
        except OSError:
            pass
    return total


def fsck(repo: Repo, remote: str | None = None, sample: float | None = None,
         jobs: int | None = None, progress: Progress | None = None) -> FsckResult:
    users = _users(repo)
    if remote is None:
        objects = [(oid, path) for oid, path in repo.odb.iter_objects() if oid]
        result = FsckResult("cache", len(objects))
        if progress:
            progress(total_files=len(objects), total_bytes=_sizes(objects))
        on_bytes = bytes_of(progress)
        ok = parallel_map(lambda item: _good(item[1], item[0], on_bytes), objects, repo.jobs,
                          progress)
        bad = [oid for (oid, _), good in zip(objects, ok) if not good]
    else:
        return fsck_remote(repo, remote_api.resolve(repo, remote, jobs), sample, progress,
                           users)
    result.bad = {oid: users.get(oid, []) for oid in bad}
    return result


def fsck_remote(repo: Repo, source: Remote, sample: float | None = None,
                progress: Progress | None = None,
                users: dict[str, list[str]] | None = None) -> FsckResult:
    """Check the remote `source`: re-hash its loose objects (a share of them with
    `sample`) and, on a format-2 remote, check its marker, index, packs and recipes."""
    users = _users(repo) if users is None else users
    result = FsckResult(f"remote '{source.name}'")
    bad: list[str] = []
    loose = source
    if isinstance(source, PackedRemote):
        from mlv.remote import packcheck

        loose = source.inner
        result.packed = True
        checked = packcheck.check(source, sample, progress)
        result.parts = [Part(d.kind, d.key, d.problems,
                             {oid: users.get(oid, []) for oid in d.objects}, d.repair)
                        for d in checked.damage]
        result.leftovers = checked.leftovers
        result.checked += checked.objects + checked.recipes
        bad += [oid for oid in checked.affected() if oid not in bad]
    checked_loose, bad_loose = _check_loose(repo, loose, sample, progress)
    result.checked += checked_loose
    bad += [oid for oid in bad_loose if oid not in bad]
    # a manifest vouches for nothing once a pack of its files is deleted (push then
    # checks every file), so only loose damage needs its manifests deleted too
    damaged = set(bad) - {o for p in result.parts if p.repair for o in p.objects}
    if damaged:
        from mlv.transfer import entries_anywhere

        for oid in sorted(loose.list_oids()):
            if oid.endswith(".dir") and oid not in damaged:
                entries = entries_anywhere(repo.odb, loose, oid) or []
                if any(e.oid in damaged for e in entries):
                    result.vouching.append(oid)
    result.bad = {oid: users.get(oid, []) for oid in bad}
    return result


def _check_loose(repo: Repo, source: Remote, sample: float | None,
                 progress: Progress | None) -> tuple[int, list[str]]:
    """Download and re-hash the loose objects of `source` (a share with `sample`):
    (how many were checked, the damaged ones)."""
    oids = sorted(source.list_oids())
    if sample is not None and oids:
        oids = sorted(random.sample(oids, max(1, math.ceil(len(oids) * sample / 100))))
    os.makedirs(repo.tmp_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="fsck-", dir=repo.tmp_dir)
    bad = []
    try:
        for start in range(0, len(oids), CHUNK):  # bounded scratch space
            temps = [(oid, os.path.join(scratch, oid)) for oid in oids[start:start + CHUNK]]
            failures = source.download(temps, progress)
            fetched = [(oid, path) for oid, path in temps if oid not in failures]
            ok = parallel_map(lambda item: _good(item[1], item[0]), fetched, repo.jobs)
            bad += [oid for oid, _ in temps if oid in failures]
            bad += [oid for (oid, _), good in zip(fetched, ok) if not good]
            for _, path in temps:
                if os.path.exists(path):
                    os.unlink(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return len(oids), bad
