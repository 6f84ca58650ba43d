"""`mlv repro`, `mlv commit` and the pipeline half of `mlv status`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlv.pipeline import lockfile
from mlv.pipeline.stage import PIPELINE_FILE
from mlv.pipeline.status import Pipeline
from mlv.repo import Repo
from mlv.snapshot import snapshot

if TYPE_CHECKING:
    from mlv.pipeline.repro import Emit, Plan, ReproResult


def has_pipeline(repo: Repo) -> bool:
    return os.path.exists(os.path.join(repo.root, PIPELINE_FILE))


def open_pipeline(repo: Repo) -> Pipeline:
    return Pipeline(repo.root, repo.odb, repo.state, repo.jobs)


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

    link_types = repo.link_types
    if options.pull:
        # Tracked data and recorded stage outputs come from the remote, so stages whose
        # inputs are unchanged need not run.
        from mlv.api.transfer import pull

        name, fetched, _ = pull(repo, None)
        emit(f"pulled {fetched.moved} objects from '{name}' for the pipeline")
    with repo.lock():
        pipe = open_pipeline(repo)
        selected = select(pipe, options.targets, options.single, options.downstream)
        forced = set(selected) if options.single or not options.targets else {
            n for n in selected if any(n == t or n.startswith(t + "@") for t in options.targets)}
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


def _ignore_outs(repo: Repo, pipe: Pipeline) -> None:
    if not repo.has_scm:
        return
    from mlv import scm

    for stage in pipe.stages:
        for out in stage.cached_outs:
            path = pipe.abspath(out.path)
            scm.add_ignore(os.path.dirname(path), os.path.basename(path))


def stale_stages(repo: Repo) -> list[tuple[str, list[str]]]:
    """Every stage that is not up to date, with its reasons (for `mlv status`)."""
    pipe = open_pipeline(repo)
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
