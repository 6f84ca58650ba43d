"""`mlv stage add/list`, `mlv dag`, `mlv params show`, `mlv metrics show`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from mlv import fsio, scm, yamlio
from mlv.pipeline.dag import Dag
from mlv.pipeline.stage import (
    PIPELINE_FILE,
    PipelineError,
    Stage,
    load_text,
)
from mlv.pipeline.status import Pipeline
from mlv.repo import Repo


@dataclass
class NewStage:
    name: str
    cmd: str
    deps: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    outs_no_cache: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    metrics_no_cache: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    wdir: str | None = None
    always_changed: bool = False


def _body(new: NewStage) -> dict[str, Any]:
    body: dict[str, Any] = {"cmd": new.cmd}
    if new.wdir and new.wdir != ".":
        body["wdir"] = new.wdir
    if new.deps:
        body["deps"] = list(new.deps)
    if new.params:
        body["params"] = list(new.params)
    outs: list[Any] = list(new.outs) + [{o: {"cache": False}} for o in new.outs_no_cache]
    if outs:
        body["outs"] = outs
    metrics: list[Any] = list(new.metrics) + [{m: {"cache": False}}
                                               for m in new.metrics_no_cache]
    if metrics:
        body["metrics"] = metrics
    if new.plots:
        body["plots"] = list(new.plots)
    if new.always_changed:
        body["always_changed"] = True
    return body


def _stage_block(name: str, body: dict[str, Any], indent: str = "  ") -> list[str]:
    text = yamlio.dump({name: body})
    return [indent + line if line else line for line in text.splitlines()]


def _stage_indent(lines: list[str], lines_map: yamlio.Lines, stages: dict[str, Any]) -> str:
    """The indentation the file already uses for stage names (two spaces if none)."""
    for name in stages:
        line = lines[lines_map[("stages", name)] - 1]
        return line[: len(line) - len(line.lstrip())] or "  "
    return "  "


def add_stage(repo: Repo, new: NewStage, force: bool = False) -> str:
    """Write a stage into mlv.yaml, keeping the rest of the file (comments too) as it is."""
    path = os.path.join(repo.root, PIPELINE_FILE)
    try:
        text = fsio.read_text(path, fsio.PIPELINE_LIMIT, PIPELINE_FILE, PipelineError)
    except FileNotFoundError:
        text = ""
    data, lines_map = yamlio.load(text, PIPELINE_FILE, PipelineError) if text.strip() else ({},
                                                                                         {})
    data = data or {}
    lines = text.splitlines()
    stages = data.get("stages") or {}
    block = _stage_block(new.name, _body(new), _stage_indent(lines, lines_map, stages))
    if new.name in stages:
        if not force:
            raise PipelineError(f"stage {new.name} already exists in {PIPELINE_FILE}",
                                hint="use --force to replace it, or choose another -n NAME")
        start = lines_map[("stages", new.name)] - 1
        end = _block_end(lines, start)
        lines[start:end] = block
    elif "stages" in data:
        start = lines_map[("stages",)] - 1
        end = _block_end(lines, start)
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        lines[end:end] = block
    else:
        lines += ["stages:"] + block
    result = "\n".join(lines) + "\n"
    stages_now = load_text(repo.root, result)  # validate before writing anything
    Dag(stages_now)
    fsio.atomic_write(path, result.encode())
    if repo.has_scm:
        added = next(s for s in stages_now if s.name == new.name)
        for out in added.cached_outs:
            full = os.path.join(repo.root, *out.path.split("/"))
            if os.path.isdir(os.path.dirname(full)):  # else `mlv repro` adds it after the run
                scm.add_ignore(os.path.dirname(full), os.path.basename(full))
    return new.name


def _block_end(lines: list[str], start: int) -> int:
    """The line after the block that begins at `start` (its more-indented lines).
    Trailing comments indented like the block's key belong to what follows."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line.lstrip().startswith("#") and (
                len(line) - len(line.lstrip())) <= indent:
            break
        end += 1
    while end > start + 1 and (not lines[end - 1].strip() or (
            lines[end - 1].lstrip().startswith("#")
            and len(lines[end - 1]) - len(lines[end - 1].lstrip()) <= indent)):
        end -= 1
    return end


def list_stages(repo: Repo) -> list[Stage]:
    return Pipeline(repo.root, repo.odb, repo.state, repo.jobs).stages


# ---- dag ----------------------------------------------------------------------------------

def dag_text(repo: Repo, fmt: str = "text", outs: bool = False) -> str:
    from mlv.api.repro import need_pipeline
    from mlv.index import Index

    need_pipeline(repo)
    dag = Dag(Index.load(repo).stages)
    edges: list[tuple[str, str]] = []
    nodes: list[str] = []
    if outs:
        for name in dag.order:
            stage = dag.stages[name]
            for out in stage.outs:
                nodes.append(out.path)
                for up in sorted(dag.upstream[name]):
                    for up_out in dag.stages[up].outs:
                        if any(d == up_out.path or d.startswith(up_out.path + "/") or
                               up_out.path.startswith(d + "/") for d in stage.deps):
                            edges.append((up_out.path, out.path))
    else:
        nodes = list(dag.order)
        edges = [(up, name) for name in dag.order for up in sorted(dag.upstream[name])]
    if fmt == "json":
        return json.dumps({"nodes": nodes, "edges": [{"from": a, "to": b} for a, b in edges]},
                          indent=2, ensure_ascii=False)
    if fmt == "dot":
        body = [f'  "{n}";' for n in nodes] + [f'  "{a}" -> "{b}";' for a, b in edges]
        return "digraph mlv {\n" + "\n".join(body) + "\n}"
    if fmt == "mermaid":
        ids = {n: f"n{i}" for i, n in enumerate(nodes)}
        body = [f'  {ids[n]}["{n}"]' for n in nodes] + [f"  {ids[a]} --> {ids[b]}"
                                                        for a, b in edges]
        return "flowchart TD\n" + "\n".join(body)
    ups: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        ups[b].append(a)
    return "\n".join(f"{n}" + (f"  <- {', '.join(ups[n])}" if ups[n] else "") for n in nodes)


# ---- artifacts ----------------------------------------------------------------------------

@dataclass
class ArtifactInfo:
    name: str
    path: str
    type: str | None
    desc: str | None
    labels: list[str]
    oid: str | None  # the version mlv records for the path (a pointer or mlv.lock)
    size: int | None


def list_artifacts(repo: Repo) -> list[ArtifactInfo]:
    """The top-level `artifacts:` of mlv.yaml, each with its recorded version."""
    from mlv.api.repro import need_pipeline
    from mlv.index import Index

    need_pipeline(repo)
    idx = Index.load(repo)
    found = []
    for art in (idx.project.artifacts.values() if idx.project else []):
        at = idx.item_at(art.path)
        item = at[0] if at and not at[1] else None
        found.append(ArtifactInfo(art.name, art.path, art.type, art.desc, list(art.labels),
                                  item.oid if item else None, item.size if item else None))
    return found
