"""`mlv ci`: the one line of a CI job. It checks that every object HEAD references is on
the remote, reproduces the stale stages (pulling only what they need, restoring from the
run-cache what someone already ran), compares data, params and metrics with a base
revision, and checks the gates of mlv.yaml. The CLI turns the result into a report."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlv import gates as gates_mod
from mlv import scm
from mlv.api import datadiff, show
from mlv.api.datadiff import DataDiff
from mlv.api.show import Change, Shown
from mlv.errors import MlvError, ScmError, UsageError
from mlv.index import Index, Item
from mlv.pipeline.lockfile import Hashed
from mlv.pipeline.status import MISSING, Pipeline, lookup
from mlv.repo import Repo

Emit = Callable[[str], None]


@dataclass
class CiOptions:
    base: str | None = None
    remote: str | None = None
    repro: bool = True
    push_check: bool = True
    plots_dir: str | None = None  # where plot images of the report go (None: none drawn)


@dataclass
class NotPushed:
    path: str
    source: str  # the pointer file or mlv.lock that records it
    objects: int


@dataclass
class PushCheck:
    remote: str
    paths: int  # tracked paths checked
    missing: list[NotPushed] = field(default_factory=list)


@dataclass
class StageRun:
    name: str
    result: str  # "ran", "restored", "unchanged", "failed", "skipped", "stale"
    why: list[str]
    error: str = ""


@dataclass
class CiResult:
    head: str  # commit id
    base: str | None  # commit id of the base, None when there is none
    base_label: str  # how the base was chosen, for the report
    push: PushCheck | None = None
    stages: list[StageRun] = field(default_factory=list)
    data: DataDiff | None = None
    params: list[Change] = field(default_factory=list)
    metrics: list[Change] = field(default_factory=list)
    gates: list[gates_mod.Checked] = field(default_factory=list)
    plots: list[tuple[str, str]] = field(default_factory=list)  # (plot id, image path)
    fetched: int = 0  # objects downloaded for the run and the report
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """What failed, one line each (empty: everything passed)."""
        found = []
        if self.push and self.push.missing:
            count = sum(m.objects for m in self.push.missing)
            found.append(f"{count} object{'s' * (count != 1)} at HEAD "
                         f"{'are' if count != 1 else 'is'} not on remote "
                         f"'{self.push.remote}'")
        found += [f"stage {s.name} failed" for s in self.stages if s.result == "failed"]
        found += [f"gate failed: {g.gate.text} ({g.why})" for g in self.gates
                  if g.passed is False]
        return found


# ---- the base revision --------------------------------------------------------------------

def resolve_base(repo: Repo, base: str | None) -> tuple[str | None, str]:
    """The base commit and how it was chosen. `--base REV` must exist (exit 2);
    without it, the merge-base of HEAD with the remote's default branch (the pull
    request's target branch on GitHub), else HEAD itself."""
    if base is not None:
        try:
            return scm.resolve_commit(repo.root, base), base
        except ScmError as exc:
            raise UsageError(f"--base: {exc.message}", hint=exc.hint) from None
    branches = _default_branches(repo.root)
    for branch in branches:
        found = _git_out(repo.root, "merge-base", "HEAD", branch)
        if found:
            return found, f"merge-base with {branch}"
    head = _git_out(repo.root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if branches:  # a shallow clone has the branch but not the history that joins them
        return head, (f"HEAD: no merge-base with {branches[0]} (a shallow clone? fetch the "
                      "whole history, or pass --base)")
    return head, "HEAD (no remote default branch found; pass --base)"


def _default_branches(root: str) -> list[str]:
    found = []
    target = os.environ.get("GITHUB_BASE_REF")  # the branch a pull request merges into
    if target and not target.startswith("-") and "\n" not in target:
        found.append(f"origin/{target}")
    head = _git_out(root, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD")
    if head:
        found.append(head)
    found += ["origin/main", "origin/master"]
    return [b for b in dict.fromkeys(found)
            if _git_out(root, "rev-parse", "--verify", "--quiet", b + "^{commit}")]


def _git_out(root: str, *args: str) -> str | None:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() or None if out.returncode == 0 else None


# ---- gates --------------------------------------------------------------------------------

def parse_gates(idx: Index) -> list[gates_mod.Gate]:
    """mlv.yaml's gates, each checked against the metrics files it declares."""
    found = []
    for text, line in (idx.project.gates if idx.project else []):
        where = f"mlv.yaml:{line}" if line else "mlv.yaml"
        gate = gates_mod.parse(text, where)
        if gate.file not in idx.metrics_files:
            known = ", ".join(idx.metrics_files) or "none"
            raise gates_mod.GateError(
                f"{where}: gate {text!r} names {gate.file}, which is not a metrics file "
                f"of mlv.yaml (metrics files: {known})",
                hint="declare it under a stage's `metrics:` or the top-level `metrics:`, "
                     "or fix the gate")
        found.append(gate)
    return found


def check_gates(gates: list[gates_mod.Gate], new: Shown, old: Shown | None
                ) -> list[gates_mod.Checked]:
    done = []
    for gate in gates:
        value = _metric(new, gate.file, gate.key)
        base = _metric(old, gate.file, gate.key) if old else gates_mod.MISSING_VALUE
        checked = gates_mod.check(gate, value, base, old is not None)
        if value is gates_mod.MISSING_VALUE and gate.file in new.errors:
            checked.why = f"{gate.file}: {new.errors[gate.file]}"
        done.append(checked)
    return done


def _metric(shown: Shown | None, file: str, key: str) -> Any:
    if shown is None or file not in shown.files:
        return gates_mod.MISSING_VALUE
    value = lookup(shown.files[file], key)
    return gates_mod.MISSING_VALUE if value is MISSING else value


# ---- the run ------------------------------------------------------------------------------

def run(repo: Repo, options: CiOptions, emit: Emit) -> CiResult:
    """Everything `mlv ci` does; the caller reports the result and picks the exit code."""
    head = _git_out(repo.root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head is None:
        raise UsageError("HEAD is not a commit: there is nothing to check yet",
                         hint="commit first (`git commit`)")
    base, base_label = resolve_base(repo, options.base)
    idx = Index.load(repo)
    gates = parse_gates(idx)  # a malformed gate stops everything before any work (exit 2)
    result = CiResult(head, base, base_label)
    if options.push_check:
        result.push = push_check(repo, options.remote)
        emit(_push_line(result.push))
    if options.repro and idx.stages:
        result.stages, result.fetched = reproduce(repo, options.remote, emit)
    elif idx.stages:
        result.stages = [StageRun(name, "stale", why) for name, why in _stale(repo)]
    failed_stage = any(s.result == "failed" for s in result.stages)
    old_idx = Index.load(repo, base or "HEAD")
    result.fetched += _fetch_for_report(repo, old_idx if base else None, options.remote,
                                        result.notes)
    idx = Index.load(repo)  # mlv.lock changed when stages ran
    result.data = datadiff.diff(repo, base or "HEAD", None, recorded=True,
                                loaded=(old_idx, idx))
    result.data.old = _short(base) if base else "HEAD"
    new_params = show.params(repo, idx, "head")
    new_metrics = show.metrics(repo, idx, "head")
    old_params = show.params(repo, old_idx, "base") if base else Shown("base")
    old_metrics = show.metrics(repo, old_idx, "base") if base else None
    result.params = show.compare(old_params, new_params)
    result.metrics = show.compare(old_metrics or Shown("base"), new_metrics)
    result.notes += [f"metrics {f} at the base: {why}"
                     for f, why in sorted((old_metrics.errors if old_metrics else {}).items())]
    result.notes += [f"metrics {f}: {why}" for f, why in sorted(new_metrics.errors.items())]
    if failed_stage:
        result.notes.append("a stage failed: the metrics above are what its last run left "
                            "in the workspace, which may be stale or partial")
    result.gates = check_gates(gates, new_metrics, old_metrics)
    if options.plots_dir and ((idx.project and idx.project.plots) or any(
            o.kind == "plot" for s in idx.stages for o in s.outs)):
        result.plots = _plots(repo, base, options.plots_dir, result.notes)
    return result


def _short(oid: str) -> str:
    return oid[:7]


def _push_line(check: PushCheck) -> str:
    if not check.missing:
        return f"the data of all {check.paths} tracked paths at HEAD is on remote " \
               f"'{check.remote}'"
    count = sum(m.objects for m in check.missing)
    return f"{count} objects at HEAD are not on remote '{check.remote}'"


# ---- 1. did you push? ---------------------------------------------------------------------

def push_check(repo: Repo, remote: str | None) -> PushCheck:
    """Every object HEAD references (pointers and mlv.lock, every file of every folder)
    must be on the remote it is pushed to. As for `mlv push`, a folder's manifest on the
    remote vouches for its files (it goes up only after them): one existence check per
    tracked path, and a folder's files are asked about only when its manifest is not
    there, or this clone has seen it lacking files."""
    from mlv.api import remote as remote_api

    idx = Index.load(repo, "HEAD")
    groups: dict[str | None, list[Item]] = {}
    for item in idx.recorded():
        if item.push:
            groups.setdefault(None if remote else item.remote, []).append(item)
    names, check = [], PushCheck("", 0)
    for name in sorted(groups, key=lambda n: n or "") or [None]:
        try:
            target = remote_api.resolve(repo, name or remote)
        except MlvError as exc:
            exc.hint = (exc.hint + "; " if exc.hint else "") + \
                "or skip this check with --no-push-check"
            raise
        names.append(target.name)
        check.paths += len(groups.get(name, []))
        check.missing += _not_on(repo, target, groups.get(name, []))
    check.remote = ", ".join(names)
    check.missing.sort(key=lambda m: m.path)
    return check


def _not_on(repo: Repo, target: Any, items: list[Item]) -> list[NotPushed]:
    from mlv.api import gaps
    from mlv.transfer import entries_anywhere

    there = target.has(sorted({i.oid for i in items if i.oid}))
    distrust = gaps.recorded(repo, target)
    found = []
    for item in items:
        assert item.oid is not None
        if item.oid in there and (not item.is_dir or item.oid not in distrust):
            continue
        if not item.is_dir:
            found.append(NotPushed(item.path, item.source, 1))
            continue
        entries = entries_anywhere(repo.odb, target, item.oid)
        if entries is None:  # neither here nor there: its files cannot even be counted
            found.append(NotPushed(item.path, item.source, 1))
            continue
        files = sorted({e.oid for e in entries})
        lacking = len(set(files) - target.has(files)) + (item.oid not in there)
        if lacking:
            found.append(NotPushed(item.path, item.source, lacking))
    return found


# ---- 2. reproduce -------------------------------------------------------------------------

class _Recorded(Pipeline):
    """The pipeline, where a tracked path that is not in the workspace (a fresh clone)
    counts as what its pointer or mlv.lock records: the stages that are stale are
    those whose recorded inputs changed, and only their inputs need to be pulled."""

    def __init__(self, repo: Repo, idx: Index) -> None:
        super().__init__(repo.root, repo.odb, repo.state, repo.jobs, idx.stages, idx.lock)
        self.recorded = {i.path: Hashed(i.oid, i.size or 0, i.nfiles)
                         for i in idx.recorded() if i.oid}

    def hash_path(self, rel: str, fresh: bool = False) -> Hashed | None:
        found = super().hash_path(rel, fresh)
        if found is None and not fresh:  # a fresh hash is of what a stage wrote
            return self.recorded.get(rel)
        return found


def reproduce(repo: Repo, remote: str | None, emit: Emit) -> tuple[list[StageRun], int]:
    """Run the stale stages; returns what happened to each stage and how many objects
    were downloaded for them."""
    from mlv.api import transfer as transfer_api
    from mlv.api.repro import _ignore_outs
    from mlv.pipeline.repro import Runner, plan
    from mlv.pipeline.runcache import RUNS

    idx = Index.load(repo)
    pipe = _Recorded(repo, idx)
    order = list(pipe.dag.order)
    the_plan = plan(pipe, order, False, set(), deps_present=False)
    if not the_plan.order:
        repo.state.save()
        emit("the pipeline is up to date")
        return [], 0
    fetched = 0
    needed = _inputs(pipe, idx, the_plan.order)
    if needed:
        emit(f"pulling the inputs of the stale stages: {', '.join(needed)}")
        _, got, _ = transfer_api.pull(repo, needed, remote)
        fetched += got.moved
    source = _default_source(repo, remote)
    if source is not None:
        try:
            transfer_api.fetch_run_cache(repo, remote, objects=False)
        except MlvError as exc:
            emit(f"warning: the remote's run-cache was not read: {exc.message}")
    downloaded = [0]

    def fetch(oids: set[str]) -> None:
        if source is not None:
            from mlv import transfer

            missing = set(transfer.odb_missing(repo.odb, sorted(oids)))
            if missing:
                downloaded[0] += transfer.fetch(repo.odb, source, missing, repo.jobs).moved

    with repo.lock():
        pipe = _Recorded(repo, Index.load(repo))
        the_plan = plan(pipe, order, False, set(), deps_present=False)
        runner = Runner(pipe, repo.link_types, repo.link_skip, emit, 1, False, True,
                        os.path.join(repo.cache_dir, RUNS), fetch)
        try:
            done = runner.run(the_plan)
        finally:
            repo.state.save()
        _ignore_outs(repo, pipe)
    runs = []
    for name in the_plan.order:
        why = the_plan.reasons[name]
        if name in done.ran:
            runs.append(StageRun(name, "ran", why))
        elif name in done.restored:
            runs.append(StageRun(name, "restored", why))
        elif name in done.failed:
            runs.append(StageRun(name, "failed", why, done.failed[name]))
        elif name in done.skipped or name in done.stopped:
            runs.append(StageRun(name, "skipped", why))
        else:
            runs.append(StageRun(name, "unchanged", why))
    return runs, fetched + downloaded[0]


def _inputs(pipe: Pipeline, idx: Index, order: list[str]) -> list[str]:
    """The tracked deps of the stages to run that are not in the workspace and that no
    stage to run produces: what must be pulled."""
    produced = {o.path for name in order for o in pipe.dag.stages[name].outs}
    found = set()
    for name in order:
        for dep in pipe.dag.stages[name].deps:
            if dep not in produced and not os.path.lexists(pipe.abspath(dep)) and \
                    idx.item_at(dep) is not None:
                found.add(dep)
    return sorted(found)


def _default_source(repo: Repo, remote: str | None) -> Any:
    """The remote to read the run-cache and the base's metrics from, or None."""
    from mlv.api import remote as remote_api

    try:
        return remote_api.resolve(repo, remote)
    except MlvError:
        return None  # no remote: stages run without the shared run-cache


def _stale(repo: Repo) -> list[tuple[str, list[str]]]:
    from mlv.pipeline.repro import plan

    pipe = _Recorded(repo, Index.load(repo))
    try:
        the_plan = plan(pipe, list(pipe.dag.order), False, set(), deps_present=False)
    finally:
        repo.state.save()
    return [(n, the_plan.reasons[n]) for n in the_plan.order]


# ---- 3. what the report needs -------------------------------------------------------------

def _fetch_for_report(repo: Repo, old: Index | None, remote: str | None,
                      notes: list[str]) -> int:
    """Cached metrics and plot files: into the workspace at HEAD (where a stage that
    did not run left them out), into the cache at the base."""
    from mlv import transfer
    from mlv.api import transfer as transfer_api

    idx = Index.load(repo)
    wanted = _report_files(idx)
    absent = [p for p in wanted if p in idx.items and not os.path.lexists(
        os.path.join(repo.root, *p.split("/")))]
    moved = 0
    try:
        if absent:
            _, got, _ = transfer_api.pull(repo, absent, remote)
            moved += got.moved
        if old is not None:
            oids = {old.items[p].oid for p in _report_files(old) if p in old.items}
            missing = set(transfer.odb_missing(repo.odb, sorted(o for o in oids if o)))
            if missing:
                source = _default_source(repo, remote)
                if source is not None:
                    moved += transfer.fetch(repo.odb, source, missing, repo.jobs).moved
    except MlvError as exc:
        notes.append(f"some metrics or plots could not be downloaded: {exc.message}")
    return moved


def _report_files(idx: Index) -> list[str]:
    files = list(idx.metrics_files)
    for plot in idx.project.plots if idx.project else []:
        files += plot.files
    files += [o.path for s in idx.stages for o in s.outs if o.kind == "plot"]
    return sorted(set(files))


def _plots(repo: Repo, base: str | None, out_dir: str | None,
           notes: list[str]) -> list[tuple[str, str]]:
    if out_dir is None:
        return []
    from mlv.api import plots as plots_api

    try:  # the base by a short id: it names each series in the legend
        drawn = plots_api.render(repo, [base[:12], None] if base else [None], out_dir)
    except MlvError as exc:
        notes.append(f"plots: {exc.message}")
        return []
    notes += [f"plots: {n}" for n in drawn.notes]
    return [(p.id, os.path.join(out_dir, p.file)) for p in drawn.plots]
