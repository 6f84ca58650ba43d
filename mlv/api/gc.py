"""`mlv gc`: delete cache objects that no pointer in the chosen scope references."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

from mlv import fsio, manifest, scm
from mlv.api import targets as targets_mod
from mlv.errors import MlvError
from mlv.odb import ObjectStore
from mlv.pointer import SUFFIX
from mlv.repo import Repo

_OID_IN_TEXT = re.compile(r"\b[0-9a-f]{32}(?:\.dir)?\b")
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
    roots: set[str] = set()
    for ptr in targets_mod.collect(repo, None):
        roots.update(out.oid for out in ptr.outs)
    revs: list[str] = []
    if all_branches or all_tags or all_commits:
        if not repo.has_scm:
            raise MlvError("--all-branches, --all-tags and --all-commits need a git repository",
                           hint="use `mlv gc --workspace` in a repository made with --no-scm")
        revs = scm.revisions(repo.root, all_branches, all_tags, all_commits)
        for blob in scm.pointer_blobs(repo.root, revs, SUFFIX):
            # Read leniently: an old, malformed pointer still protects what it names.
            roots.update(_OID_IN_TEXT.findall(blob.decode("utf-8", "replace")))
    return expand(repo.odb, roots), len(revs)


def expand(odb: ObjectStore, roots: set[str]) -> set[str]:
    """Add the files listed by every directory manifest among `roots`."""
    used = set(roots)
    for oid in roots:
        if oid.endswith(".dir"):
            try:
                used.update(e.oid for e in manifest.loads(odb.read_bytes(oid), oid))
            except FileNotFoundError:
                continue
    return used


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
