"""Moving objects between the cache and a remote: only what is missing, verified."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from mlv import fsio, manifest
from mlv.odb import ObjectStore
from mlv.remote import Remote
from mlv.workspace import Progress


@dataclass
class TransferResult:
    moved: int = 0
    bytes: int = 0
    already: int = 0  # objects that were already at the destination
    failed: dict[str, str] = field(default_factory=dict)  # oid -> reason
    missing: list[str] = field(default_factory=list)  # in neither the source nor the target
    corrupted: list[str] = field(default_factory=list)  # downloads whose hash did not match
    verified: list[str] = field(default_factory=list)  # manifests whose files were checked
    refused: dict[str, str] = field(default_factory=dict)  # run-cache key -> why not kept
    notes: list[str] = field(default_factory=list)  # what the user should hear once
    wire: int | None = None  # bytes that crossed the network, where it is not `bytes`
    seconds: float = 0.0


def _manifest(odb: ObjectStore, oid: str) -> list[manifest.Entry] | None:
    try:
        return manifest.loads(odb.read_bytes(oid, manifest.MAX_BYTES + 1), oid)
    except FileNotFoundError:
        return None


def _reason(exc: BaseException, remote: Remote) -> str:
    return remote.hide(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]


def push(odb: ObjectStore, remote: Remote, roots: set[str],
         progress: Progress | None = None, sizes: dict[str, int] | None = None,
         distrust: set[str] | None = None) -> TransferResult:
    """Upload what the remote lacks. A directory manifest goes up only after every
    file it lists is on the remote, so a manifest there means its files are there,
    unless they were lost since: the manifests in `distrust` vouch for nothing, and
    every file they list is asked about (and uploaded if missing)."""
    start = time.monotonic()
    result = TransferResult()
    dirs = sorted(o for o in roots if o.endswith(".dir"))
    # Ask about the manifests first: one that is on the remote vouches for its files,
    # so an up-to-date folder costs one request, not one listing of the whole remote.
    dirs_there = remote.has(dirs) if dirs else set()
    listing = {d: _manifest(odb, d) for d in dirs}
    for d in dirs_there & (distrust or set()):
        if listing[d] is None:  # checking needs the file list: read it from the remote
            listing[d] = entries_anywhere(odb, remote, d)
    sizes = dict(sizes or {})
    sizes.update((e.oid, e.size) for entries in listing.values() for e in entries or [])
    trusted = dirs_there - (distrust or set())
    vouched = {e.oid for d in trusted for e in listing[d] or []}
    files = {o for o in roots if not o.endswith(".dir")}
    for d in dirs:
        if d not in trusted:
            files.update(e.oid for e in listing[d] or [])
    files -= vouched
    wanted = files | (set(dirs) - dirs_there)
    local = odb.existing(sorted(wanted))
    present = remote.has(sorted(wanted)) | dirs_there
    result.missing = sorted(wanted - local - present)  # nowhere to push them from
    result.already = len(present) + len(vouched)
    todo = sorted(o for o in files if o in local and o not in present)
    failures = remote.upload([(odb.path_of(o), o) for o in todo], progress, sizes)
    result.failed.update({o: _reason(e, remote) for o, e in failures.items()})
    on_remote = present | vouched | (set(todo) - set(failures))
    for d in sorted(dirs_there - trusted):
        if listing[d] is None:
            result.failed[d] = "cannot check its files: the file list is in neither the " \
                               "cache nor the remote (or damaged there)"
    ready = []
    for d in dirs:
        if d not in local or d in present:
            continue
        lacking = [e.oid for e in listing[d] or [] if e.oid not in on_remote]
        if lacking:
            result.failed[d] = f"not uploaded: {len(lacking)} of its files are not on the remote"
        else:
            ready.append(d)
    failures = remote.upload([(odb.path_of(d), d) for d in ready], progress)
    result.failed.update({o: _reason(e, remote) for o, e in failures.items()})
    moved = [o for o in todo + ready if o not in result.failed]
    on_remote.update(o for o in ready if o not in result.failed)
    result.verified = [d for d in dirs if d in (distrust or set()) and d in on_remote
                       and listing[d] is not None
                       and all(e.oid in on_remote for e in listing[d] or [])]
    result.moved = len(moved)
    result.bytes = sum(sizes[o] if o in sizes else _size(odb.path_of(o)) for o in moved)
    result.seconds = time.monotonic() - start
    return result


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def fetch(odb: ObjectStore, remote: Remote, roots: set[str], jobs: int,
          progress: Progress | None = None, sizes: dict[str, int] | None = None,
          expand: bool = True) -> TransferResult:
    """Download what the cache lacks; every object is verified before it is kept.
    `sizes`: the roots' sizes where the pointers give them (they guide how each
    object is downloaded). `expand` False: a folder's manifest comes alone, not the
    files it lists."""
    start = time.monotonic()
    result = TransferResult()
    sizes = dict(sizes or {})
    dirs = sorted(o for o in roots if o.endswith(".dir"))
    need_dirs = odb_missing(odb, dirs)
    _download(odb, remote, need_dirs, jobs, progress, result, {})
    files = {o for o in roots if not o.endswith(".dir")}
    for d in dirs if expand else []:
        for e in _manifest(odb, d) or []:
            files.add(e.oid)
            sizes[e.oid] = e.size
    need = odb_missing(odb, sorted(files))
    result.already = len(files) - len(need) + len(dirs) - len(need_dirs)
    _download(odb, remote, need, jobs, progress, result, sizes)
    result.seconds = time.monotonic() - start
    return result


def odb_missing(odb: ObjectStore, oids: list[str]) -> list[str]:
    have = odb.existing(oids)
    return [o for o in oids if o not in have]


def _download(odb: ObjectStore, remote: Remote, oids: list[str], jobs: int,
              progress: Progress | None, result: TransferResult, sizes: dict[str, int]
              ) -> None:
    if not oids:
        return
    temps = {oid: odb.temp_for(oid) for oid in oids}
    kept: list[str] = []
    bad: list[str] = []

    def verify(oid: str, path: str, data: bytes | None) -> None:
        # Each object is checked and kept as soon as it arrives, so an interrupted
        # fetch keeps everything that was complete. `data`: the bytes the remote wrote
        # after checking them against the oid (a blob from a pack): not hashed twice,
        # and remembered, so that a checkout right after writes them without reading.
        if odb.adopt(path, oid, data is not None):
            kept.append(oid)
            if data is not None:
                odb.remember(oid, data)
        else:
            bad.append(oid)

    try:
        failures = remote.download(list(temps.items()), progress, after=verify, sizes=sizes)
        for oid, exc in failures.items():
            if isinstance(exc, FileNotFoundError):
                result.missing.append(oid)
            else:
                result.failed[oid] = _reason(exc, remote)
        result.moved += len(kept)
        result.bytes += sum(sizes[o] if o in sizes else _size(odb.path_of(o)) for o in kept)
        result.corrupted += bad
    finally:
        moved = set(kept)  # their temp files were renamed into the cache
        for oid, tmp in temps.items():
            if oid not in moved and os.path.lexists(tmp):
                fsio.remove_file(tmp)
    result.missing.sort()
    result.corrupted.sort()


def entries_anywhere(odb: ObjectStore, remote: Remote, oid: str) -> list[manifest.Entry] | None:
    """A directory manifest from the cache, else read (and verified) from the remote."""
    from mlv.hashing import hash_bytes

    found = _manifest(odb, oid)
    if found is not None:
        return found
    try:
        with remote.open(oid) as fobj:  # a remote's file may be any size: read a bounded part
            data = fobj.read(manifest.MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) <= manifest.MAX_BYTES and hash_bytes(data) + ".dir" != oid:
        return None
    return manifest.loads(data, oid)  # one that is too large is refused in one line
