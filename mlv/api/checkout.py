"""`mlv checkout`: make the workspace match the pointers, never losing unsaved bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mlv import fsio, workspace
from mlv.api import targets as targets_mod
from mlv.checkout import is_link_to, materialize
from mlv.diff import OutDiff, diff_out
from mlv.errors import CheckoutConflictError
from mlv.manifest import Entry
from mlv.repo import Repo
from mlv.workspace import Progress, WFile


@dataclass
class CheckoutResult:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    relinked: int = 0
    missing: list[str] = field(default_factory=list)  # paths whose objects are not cached


@dataclass
class _Plan:
    diff: OutDiff
    write: list[Entry] = field(default_factory=list)
    remove: list[WFile] = field(default_factory=list)
    clear_way: bool = False
    conflicts: list[str] = field(default_factory=list)


def _join(base: str, rel: str) -> str:
    return os.path.join(base, *rel.split("/")) if rel else base


def _plan(repo: Repo, diff: OutDiff, relink: bool) -> _Plan:
    plan = _Plan(diff)
    entries = diff.entries or []
    # Anything about to be replaced or removed must have its bytes in the cache.
    at_risk: list[WFile] = [f for _, f in diff.modified] + diff.added
    if diff.in_way:
        if os.path.isdir(diff.path) and not os.path.islink(diff.path):
            at_risk += workspace.walk(diff.path)
        else:
            at_risk.append(workspace.stat_file(diff.path, ""))
        plan.clear_way = True
    if at_risk:
        oids = workspace.hash_files(at_risk, repo.state, repo.jobs)
        cached = repo.odb.existing(oids)
        plan.conflicts = [repo.rel(f.path) for f, oid in zip(at_risk, oids) if oid not in cached]
    if diff.present:
        plan.write = [e for e, _ in diff.modified] + list(diff.deleted)
    else:
        plan.write = list(entries)
    plan.remove = list(diff.added)
    if relink:
        kind = repo.link_types[0]
        plan.write += [e for e, f in diff.same if not is_link_to(f.path, repo.odb, e.oid, kind)]
    return plan


def checkout(repo: Repo, targets: list[str] | None = None, force: bool = False,
             relink: bool = False, progress: Progress | None = None) -> CheckoutResult:
    result = CheckoutResult()
    repo.link_types  # noqa: B018 - a bad cache.type is reported before anything changes
    with repo.lock():
        try:
            plans = []
            pointers = targets_mod.collect(repo, targets)
            if not targets:
                pointers += targets_mod.stage_outputs(repo)
            for ptr in pointers:
                for out in ptr.outs:
                    diff = diff_out(repo.odb, repo.state, repo.jobs, ptr.out_path(out), out,
                                    fast=not relink)
                    plans.append(_plan(repo, diff, relink))
            conflicts = [c for p in plans for c in p.conflicts]
            if conflicts and not force:
                shown = ", ".join(conflicts[:10]) + (" …" if len(conflicts) > 10 else "")
                raise CheckoutConflictError(
                    f"checkout would overwrite or delete {len(conflicts)} file(s) whose changes "
                    f"are not in the cache: {shown}",
                    conflicts,
                    hint="run `mlv add` to keep them, or run the command again with --force "
                         "to discard them",
                )
            for plan in plans:
                _apply(repo, plan, result, progress)
        finally:
            repo.state.save()
    return result


def _apply(repo: Repo, plan: _Plan, result: CheckoutResult, progress: Progress | None) -> None:
    diff = plan.diff
    fsio.remove_stale_temps(diff.path)  # a half-built folder from a killed checkout
    if diff.same_tree:
        return
    if diff.entries is None:
        result.missing.append(repo.rel(diff.path))
        return
    if plan.clear_way:
        fsio.remove_tree(diff.path)
    for f in plan.remove:
        fsio.remove_file(f.path)
        result.deleted.append(repo.rel(f.path))
    if plan.remove:
        _prune_empty(diff.path)
    todo = [e for e in plan.write if e.oid not in diff.missing]
    result.missing += [repo.rel(_join(diff.path, e.path)) for e in plan.write
                       if e.oid in diff.missing]
    fresh = diff.out.is_dir and not os.path.lexists(diff.path)
    target = fsio.tmp_name(diff.path) if fresh else diff.path
    if fresh:
        fsio.makedirs(target)
    try:
        _write_all(repo, target, todo, fresh, progress)
        if fresh:
            fsio.rename(target, diff.path)
    except BaseException:
        if fresh:
            fsio.remove_tree(target)
        raise
    modified = {e.path for e, _ in diff.modified}
    restored = {e.path for e in diff.deleted}
    for e in todo:
        path = repo.rel(_join(diff.path, e.path))
        if e.path in modified:
            result.modified.append(path)
        elif diff.present and e.path not in restored:
            result.relinked += 1
        else:
            result.added.append(path)


def _write_all(repo: Repo, base: str, entries: list[Entry], fresh: bool,
               progress: Progress | None) -> None:
    folders = {os.path.dirname(_join(base, e.path)) for e in entries if "/" in e.path}
    for folder in sorted(folders):
        if not os.path.isdir(folder):
            if os.path.lexists(folder):
                fsio.remove_file(folder)
            fsio.makedirs(folder)
    link_types = repo.link_types

    def work(e: Entry) -> None:
        dst = _join(base, e.path)
        mode = 0o755 if e.exec else 0o644
        if fresh:
            st = fsio.place_first_working(repo.odb.path_of(e.oid), dst, link_types, mode,
                                          fresh=True, skip=repo.link_skip)
        else:
            st = materialize(repo.odb, e.oid, dst, link_types, e.exec, repo.link_skip)
        repo.state.set(st, e.oid)

    workspace.parallel_map(work, entries, repo.jobs, progress, size=lambda e: e.size)


def _prune_empty(top: str) -> None:
    for folder, _dirs, _files in os.walk(top, topdown=False):
        if folder != top:
            try:
                os.rmdir(folder)
            except OSError:
                pass
