"""Which objects a command is about: the workspace's pointers, and optionally the
pointers committed at branch tips, tags or every commit (read from git)."""

from __future__ import annotations

import re

from mlv import fsio, scm, yamlio
from mlv.api import targets as targets_mod
from mlv.errors import MlvError
from mlv.index import Index
from mlv.odb import ObjectStore
from mlv.pipeline.lockfile import LOCK_FILE
from mlv.pointer import SUFFIX
from mlv.repo import Repo

_OID_IN_TEXT = re.compile(r"\b[0-9a-f]{32}(?:\.dir)?\b")
ANY = "*"  # `remote=ANY`: every output, whatever remote mlv.yaml names (not a remote name)


def roots(repo: Repo, targets: list[str] | None = None, all_branches: bool = False,
          all_tags: bool = False, all_commits: bool = False,
          sizes: dict[str, int] | None = None, pushed_only: bool = False,
          remote: str | None = None, idx: Index | None = None) -> tuple[set[str], int]:
    """Object ids named in scope (pointers and recorded stage outputs), and how many
    revisions were read. `sizes`, if given, receives the sizes the workspace's records
    give for files. `pushed_only` leaves out `push: false` outputs of the workspace.
    `remote` (with `pushed_only`): only the outputs mlv.yaml sends to that remote
    (`remote: NAME`); None: all but those, and everything at other revisions; ANY:
    all, and everything at other revisions (`-r NAME` given). `idx`: the workspace's
    index, when the caller has read it already."""
    found: set[str] = set()
    for item in targets_mod.select(repo, targets, idx, pushed_only=pushed_only):
        if pushed_only and remote != ANY and item.remote != remote:
            continue
        assert item.oid is not None
        found.add(item.oid)
        if sizes is not None and not item.is_dir and item.size is not None:
            sizes[item.oid] = item.size
    revs: list[str] = []
    if remote in (None, ANY) and (all_branches or all_tags or all_commits):
        if not repo.has_scm:
            raise MlvError("--all-branches, --all-tags and --all-commits need a git repository",
                           hint="leave them out in a repository made with --no-scm")
        revs = scm.revisions(repo.root, all_branches, all_tags, all_commits)
        for blob in scm.pointer_blobs(repo.root, revs, SUFFIX, fsio.POINTER_LIMIT):
            # Read leniently: an old, malformed pointer still protects what it names.
            found.update(_OID_IN_TEXT.findall(blob.decode("utf-8", "replace")))
        for blob in scm.pointer_blobs(repo.root, revs, LOCK_FILE, fsio.LOCK_LIMIT):
            found.update(_outs_in_lock_text(blob.decode("utf-8", "replace")))
    return found, len(revs)


def _outs_in_lock_text(text: str) -> set[str]:
    """Stage outputs named in an mlv.lock; if it cannot be parsed, every id in it (so a
    damaged lock never lets gc delete what it names)."""
    try:  # no aliases, bounded depth: a lock from any commit may be hostile
        data, _ = yamlio.load(text, LOCK_FILE)
        return {out["xxh128"] for body in data["stages"].values() for out in body.get("outs", [])}
    except (MlvError, KeyError, TypeError, AttributeError):
        return set(_OID_IN_TEXT.findall(text))


def expand(odb: ObjectStore, oids: set[str]) -> set[str]:
    """Add the files listed by every directory manifest among `oids` that is cached."""
    from mlv import manifest

    used = set(oids)
    for oid in oids:
        if oid.endswith(".dir"):
            try:
                data = odb.read_bytes(oid, manifest.MAX_BYTES + 1)
                used.update(e.oid for e in manifest.loads(data, oid))
            except FileNotFoundError:
                continue
    return used
