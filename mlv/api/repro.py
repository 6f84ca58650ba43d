"""`mlv repro`, `mlv commit` and the pipeline half of `mlv status`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlv import paths
from mlv.errors import PathError
from mlv.index import POINTER, Index
from mlv.pipeline import lockfile
from mlv.pipeline.stage import PIPELINE_FILE, PipelineError
from mlv.pipeline.status import Pipeline
from mlv.repo import Repo
from mlv.snapshot import snapshot

if TYPE_CHECKING:
    from mlv.pipeline.repro import Emit, Plan, ReproResult


def has_pipeline(repo: Repo) -> bool:
    return os.path.exists(os.path.join(repo.root, PIPELINE_FILE))


def open_pipeline(repo: Repo, idx: Index | None = None) -> Pipeline:
    if idx is not None:
        return Pipeline(repo.root, repo.odb, repo.state, repo.jobs, idx.stages, idx.lock)
    return Pipeline(repo.root, repo.odb, repo.state, repo.jobs)


def need_pipeline(repo: Repo) -> None:
    """Refuse a pipeline command where there is no mlv.yaml."""
    if not has_pipeline(repo):
        raise PipelineError(f"there is no pipeline here: {PIPELINE_FILE} does not exist in "
                            f"{repo.root}",
                            hint="add a stage with `mlv stage add` (or `mlv migrate dvc` in a "
                                 "DVC project)")


@dataclass
class ReproOptions:
    targets: list[str]
    dry: bool = False
    force: bool = False
    single: bool = False
    downstream: bool = False
    jobs: int = 1
    keep_going: bool = False
    pull: bool = False
    run_cache: bool = True


def repro(repo: Repo, options: ReproOptions, emit: Emit) -> tuple[Plan, ReproResult | None]:
    """Run the stale stages among the selected ones (nothing with `dry`)."""
    from mlv.pipeline.repro import Runner, plan, select
    from mlv.pipeline.runcache import RUNS

    need_pipeline(repo)
    link_types = repo.link_types
    if options.pull:
        # Tracked data and recorded stage outputs come from the remote, so stages whose
        # inputs are unchanged need not run.
        from mlv.api.transfer import pull

        name, fetched, _ = pull(repo, None)
        emit(f"pulled {fetched.moved} objects from '{name}' for the pipeline")
    with repo.lock():
        idx = Index.load(repo)
        pipe = open_pipeline(repo, idx)
        selected = select(pipe, options.targets, options.single, options.downstream)
        forced = set(selected) if options.single or not options.targets else {
            n for n in selected if any(n == t or n.startswith(t + "@") for t in options.targets)}
        if not options.dry:
            store_changed_inputs(repo, idx, pipe, selected, emit)
        the_plan = plan(pipe, selected, options.force, forced)
        if options.dry or not the_plan.order:
            repo.state.save()
            return the_plan, None
        runner = Runner(pipe, link_types, repo.link_skip, emit, options.jobs,
                        options.keep_going, options.run_cache, os.path.join(repo.cache_dir, RUNS))
        try:
            result = runner.run(the_plan)
        finally:
            repo.state.save()
        _ignore_outs(repo, pipe)
        return the_plan, result


def store_changed_inputs(repo: Repo, idx: Index, pipe: Pipeline, selected: list[str],
                         emit: Emit) -> list[str]:
    """Tracked data (a pointer's out) that the selected stages read and that changed in
    the workspace is stored and its pointer rewritten, as `mlv add` would, before the
    stages run: the committed pointer then matches what the stages read, and `mlv push`
    sends it. Returns the paths stored."""
    deps = {d for name in selected for d in pipe.dag.stages[name].deps}
    for dep in sorted(deps):
        at = idx.item_at(dep)
        if at and at[0].kind == POINTER and not os.path.lexists(pipe.abspath(dep)):
            raise PipelineError(f"{dep} is tracked by mlv ({at[0].source}) but is not in the "
                                "workspace", hint="run `mlv pull` to get it (or `mlv repro "
                                "--pull`), or `mlv checkout` if the cache has it")
    touched = [i for i in idx.items.values() if i.kind == POINTER and any(
        d == i.path or d.startswith(i.path + "/") or i.path.startswith(d + "/") for d in deps)]
    changed = []
    for item in sorted(touched, key=lambda i: i.path):
        hashed = pipe.hash_path(item.path)
        if hashed is not None and hashed.oid != item.oid:
            changed.append(item)
    for item in changed:  # all checked before any is stored
        found = _link_leaving(repo.root, item.path)
        if found:
            raise PathError(f"{item.path} changed, but {found}; mlv repro does not store "
                            "it", hint=f"remove the link, or if you mean it, run `mlv add "
                                       f"{item.path}` yourself")
    if changed:
        from mlv.api.add import record  # only now: its imports cost a no-op repro time
    for item in changed:
        path = pipe.abspath(item.path)
        done = record(repo, path)
        pipe.forget(item.path)
        emit(f"{item.path} changed: stored the new version and updated "
             f"{repo.rel(done.pointer)} (commit it with git)")
    return [i.path for i in changed]


def _link_leaving(root: str, rel: str) -> str | None:
    """Why the tracked folder `rel` holds a symlink that leads out of the repository (or
    into .git or .mlv), else None: a clone can commit `data/x -> ~/.aws/credentials`
    inside a tracked folder, and storing the folder would store that file for a push."""
    top = os.path.join(root, *rel.split("/"))
    if os.path.islink(top) or not os.path.isdir(top):
        return None  # the path itself is checked where its pointer is read
    for folder, dirs, files in os.walk(top):
        for name in sorted(files + dirs):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found = paths.problem_on_disk(root, os.path.relpath(path, root).replace(
                    os.sep, "/"))
                if found:
                    return found
    return None


def _ignore_outs(repo: Repo, pipe: Pipeline) -> None:
    if not repo.has_scm:
        return
    from mlv import scm

    for stage in pipe.stages:
        for out in stage.cached_outs:
            path = pipe.abspath(out.path)
            scm.add_ignore(os.path.dirname(path), os.path.basename(path))


def stale_stages(repo: Repo, idx: Index | None = None) -> list[tuple[str, list[str]]]:
    """Every stage that is not up to date, with its reasons (for `mlv status`)."""
    pipe = open_pipeline(repo, idx)
    try:
        found = []
        for name in pipe.dag.order:
            why = pipe.reasons(pipe.dag.stages[name])
            if why:
                found.append((name, why))
        return found
    finally:
        repo.state.save()


def commit(repo: Repo, targets: list[str]) -> list[str]:
    """Record the workspace state of stages' deps and outs in mlv.lock without running."""
    from mlv.pipeline.repro import select

    with repo.lock():
        pipe = open_pipeline(repo)
        names = select(pipe, targets, single=True, downstream=False)
        for name in names:
            stage = pipe.dag.stages[name]
            for out in stage.outs:
                path = pipe.abspath(out.path)
                if os.path.lexists(path):
                    snapshot(repo.odb, repo.state, repo.jobs, path, store=True)
            pipe.lock[name] = pipe.entry_now(stage)
        lockfile.write(repo.root, pipe.lock, pipe.dag.order_in_file)
        repo.state.save()
        _ignore_outs(repo, pipe)
        return names
