"""`mlv status`: how the workspace differs from the pointers."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlv.api import targets as targets_mod
from mlv.diff import diff_out
from mlv.repo import Repo


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


def status(repo: Repo, targets: list[str] | None = None) -> StatusReport:
    """Compare every out (or the named ones) with the workspace."""
    result = []
    tracked = 0
    try:
        for ptr in targets_mod.collect(repo, targets):
            for out in ptr.outs:
                tracked += 1
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
                st = OutStatus(repo.rel(ptr.file), repo.rel(path), changes,
                               missing_objects=len(diff.missing))
                if diff.present and out.is_dir:
                    st.added = [f.rel for f in diff.added]
                    st.modified = [e.path for e, _ in diff.modified]
                    st.deleted = [e.path for e in diff.deleted]
                result.append(st)
    finally:
        repo.state.save()
    return StatusReport(tracked, result)


