"""`mlv status`: how the workspace differs from the pointers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlv.api import targets as targets_mod
from mlv.diff import diff_out
from mlv.index import Index, Item
from mlv.repo import Repo

if TYPE_CHECKING:
    from mlv.remote import Remote


@dataclass
class OutStatus:
    pointer: str
    path: str
    changes: list[str]  # "modified", "deleted", "not in cache"
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missing_objects: int = 0

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"pointer": self.pointer, "changes": self.changes}
        if self.added or self.modified or self.deleted:
            data["files"] = {"added": self.added, "modified": self.modified,
                             "deleted": self.deleted}
        if self.missing_objects:
            data["missing_objects"] = self.missing_objects
        return data


@dataclass
class StatusReport:
    tracked: int  # outs examined
    changed: list[OutStatus]  # the ones that differ; empty when all is in sync
    index: Index | None = None  # what was read (the pipeline half reads it too)


def status(repo: Repo, targets: list[str] | None = None,
           idx: Index | None = None) -> StatusReport:
    """Compare every pointer's out (or the named paths, stage outputs too) with the
    workspace."""
    result = []
    tracked = 0
    idx = idx or Index.load(repo)
    try:
        for item in targets_mod.select(repo, targets, idx, stage_outs=bool(targets)):
            tracked += 1
            ptr = idx.pointer_for(item)
            out = ptr.outs[0]
            path = ptr.out_path(out)
            diff = diff_out(repo.odb, repo.state, repo.jobs, path, out)
            changes = []
            if not diff.present:
                changes.append("deleted")
            elif diff.changed:
                changes.append("modified")
            if diff.missing:
                changes.append("not in cache")
            if not changes:
                continue
            st = OutStatus(item.source, item.path, changes, missing_objects=len(diff.missing))
            if diff.present and out.is_dir:
                st.added = [f.rel for f in diff.added]
                st.modified = [e.path for e, _ in diff.modified]
                st.deleted = [e.path for e in diff.deleted]
            result.append(st)
    finally:
        repo.state.save()
    return StatusReport(tracked, result, idx)


@dataclass
class CloudStatus:
    pointer: str
    path: str
    not_pushed: int  # objects only in the cache
    not_fetched: int  # objects only on the remote
    missing: int  # objects in neither

    def as_dict(self) -> dict[str, object]:
        return {"pointer": self.pointer, "not_pushed": self.not_pushed,
                "not_fetched": self.not_fetched, "missing": self.missing}


@dataclass
class CloudReport:
    remote: str
    tracked: int
    changed: list[CloudStatus]
    # manifests on the remote that list files it does not have: the next `mlv push`
    # checks their files and uploads what is missing
    incomplete: list[str] = field(default_factory=list)


def cloud_status(repo: Repo, targets: list[str] | None = None, remote: str | None = None,
                 jobs: int | None = None) -> CloudReport:
    """Compare the cache with a remote for every tracked object: pointers and recorded
    stage outputs (but `push: false` ones). Without `remote`, outputs that mlv.yaml
    sends to a remote of their own (`remote: NAME`) are compared with that one."""
    from mlv.api import remote as remote_api

    items = targets_mod.select(repo, targets, pushed_only=True)
    groups: dict[str | None, list[Item]] = {}
    for item in items:
        groups.setdefault(None if remote else item.remote, []).append(item)
    if not groups:
        groups[None] = []
    names, report = [], CloudReport("", 0, [])
    for name in sorted(groups, key=lambda n: n or ""):
        target = remote_api.resolve(repo, name or remote, jobs)
        part = _cloud_one(repo, target, groups[name])
        names.append(target.name)
        report.tracked += part.tracked
        report.changed += part.changed
        report.incomplete += part.incomplete
    report.remote = ", ".join(names)
    return report


def _cloud_one(repo: Repo, target: Remote, items: list[Item]) -> CloudReport:
    from mlv.api import gaps
    from mlv.transfer import entries_anywhere

    outs: list[tuple[str, str, set[str]]] = []
    for item in items:
        assert item.oid is not None
        oids = {item.oid}
        if item.is_dir:
            oids.update(e.oid for e in entries_anywhere(repo.odb, target, item.oid) or [])
        outs.append((item.source, item.path, oids))
    every = sorted(set().union(*(o for _, _, o in outs))) if outs else []
    local = repo.odb.existing(every)
    remote_has = target.has(every)
    # a folder's manifest on the remote vouches for its files; here some are gone
    incomplete = sorted({o for _, _, oids in outs for o in oids
                         if o.endswith(".dir") and o in remote_has and not oids <= remote_has})
    gaps.record(repo, target, incomplete)
    gaps.clear(repo, target, {o for _, _, oids in outs for o in oids if o.endswith(".dir")
                              and o in remote_has and oids <= remote_has})
    changed = []
    for pointer_name, path, oids in outs:
        st = CloudStatus(pointer_name, path, len(oids & local - remote_has),
                         len(oids & remote_has - local), len(oids - local - remote_has))
        if st.not_pushed or st.not_fetched or st.missing:
            changed.append(st)
    return CloudReport(target.name, len(outs), changed, incomplete)


_MISSING_REASON = re.compile(r"(?:out|dep) (.+) deleted\Z")


def advice(repo: Repo, idx: Index, report: StatusReport,
           stale: list[tuple[str, list[str]]]) -> list[str]:
    """What to run next, from what `status` found: only commands that work here (in a
    fresh clone the data is missing, so `mlv pull`, not `mlv repro`)."""
    fetch = any("not in cache" in s.changes for s in report.changed)
    restore = any(s.changes == ["deleted"] for s in report.changed)
    edited = any("modified" in s.changes for s in report.changed)
    rerun = False
    for _, reasons in stale:
        for reason in reasons:
            missing = _MISSING_REASON.match(reason)
            at = idx.item_at(missing.group(1)) if missing else None
            if at is None or at[0].oid is None:
                rerun = True
            elif repo.odb.exists(at[0].oid):
                restore = True
            else:
                fetch = True
    lines = []
    if fetch:
        lines.append("run `mlv pull` to get the recorded data from the remote")
    elif restore:
        lines.append("run `mlv checkout` to restore the recorded data from the cache")
    if edited:
        lines.append("run `mlv add PATH` to record changes, or `mlv checkout --force PATH` to "
                     "discard them")
    if rerun:
        lines.append("run `mlv repro` to bring the stale stages up to date"
                     + (" (after that)" if fetch or restore else ""))
    return lines
