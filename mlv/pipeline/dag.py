"""The stage graph: who produces what, in which order stages run, and sanity checks."""

from __future__ import annotations

from mlv.pipeline.stage import PIPELINE_FILE, PipelineError, Stage


def _covers(out: str, path: str) -> bool:
    """True when `path` is `out` or lies inside it, or `out` lies inside `path`."""
    return path == out or path.startswith(out + "/") or out.startswith(path + "/")


class Dag:
    def __init__(self, stages: list[Stage]) -> None:
        self.stages = {s.name: s for s in stages}
        self.order_in_file = [s.name for s in stages]
        self._check_outs()
        self.upstream: dict[str, set[str]] = {name: set() for name in self.stages}
        for stage in stages:
            for dep in stage.deps:
                for other in stages:
                    if other.name != stage.name and any(_covers(o.path, dep)
                                                        for o in other.outs):
                        self.upstream[stage.name].add(other.name)
        self.downstream: dict[str, set[str]] = {name: set() for name in self.stages}
        for name, ups in self.upstream.items():
            for up in ups:
                self.downstream[up].add(name)
        self.order = self._toposort()

    def _check_outs(self) -> None:
        owners: list[tuple[str, str]] = []
        for stage in self.stages.values():
            for out in stage.outs:
                for other_path, other_stage in owners:
                    if out.path == other_path:
                        raise PipelineError(
                            f"{PIPELINE_FILE}: stages {other_stage} and {stage.name} both "
                            f"write {out.path}", hint="an output may be produced by one stage only")
                    if _covers(out.path, other_path) or _covers(other_path, out.path):
                        inner, outer = sorted([out.path, other_path], key=len, reverse=True)
                        raise PipelineError(
                            f"{PIPELINE_FILE}: output {inner} lies inside output {outer} "
                            f"(stages {other_stage} and {stage.name})",
                            hint="make the outputs separate folders or files")
                owners.append((out.path, stage.name))

    def _toposort(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = visiting, 2 = done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                raise PipelineError(f"{PIPELINE_FILE}: the stages form a cycle: "
                                    f"{' -> '.join(cycle)}",
                                    hint="a stage cannot depend on its own outputs, directly or "
                                         "through other stages")
            state[name] = 1
            for up in sorted(self.upstream[name], key=self.order_in_file.index):
                visit(up, path + [name])
            state[name] = 2
            order.append(name)

        for name in self.order_in_file:
            visit(name, [])
        return order

    def producer_of(self, path: str) -> str | None:
        for stage in self.stages.values():
            if any(_covers(o.path, path) for o in stage.outs):
                return stage.name
        return None

    def closure(self, names: set[str], edges: dict[str, set[str]]) -> set[str]:
        seen = set(names)
        todo = list(names)
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
