"""The stage graph: who produces what, in which order stages run, and sanity checks."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from mlv.pipeline.stage import PIPELINE_FILE, PipelineError, Stage


class Dag:
    """Built in time close to linear in the number of stages, deps and outs (a clone's
    mlv.yaml may have thousands of stages, and read-only commands build this too)."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = {s.name: s for s in stages}
        self.order_in_file = [s.name for s in stages]
        self._position = {name: i for i, name in enumerate(self.order_in_file)}
        self._owner = self._check_outs()
        self._out_paths = sorted(self._owner)
        self.upstream: dict[str, set[str]] = {name: set() for name in self.stages}
        for stage in stages:
            for dep in stage.deps:
                self.upstream[stage.name] |= self._producers(dep) - {stage.name}
        self.downstream: dict[str, set[str]] = {name: set() for name in self.stages}
        for name, ups in self.upstream.items():
            for up in ups:
                self.downstream[up].add(name)
        self.order = self._toposort()

    def _check_outs(self) -> dict[str, str]:
        """Every output's path -> the stage that writes it."""
        owner: dict[str, str] = {}
        for stage in self.stages.values():
            for out in stage.outs:
                if out.path in owner:
                    raise PipelineError(
                        f"{PIPELINE_FILE}: stages {owner[out.path]} and {stage.name} both "
                        f"write {out.path}", hint="an output may be produced by one stage only")
                owner[out.path] = stage.name
        for inner, name in owner.items():
            outer = inner.rpartition("/")[0]
            while outer:
                if outer in owner:
                    first, second = sorted([owner[outer], name], key=self._position.__getitem__)
                    raise PipelineError(
                        f"{PIPELINE_FILE}: output {inner} lies inside output {outer} "
                        f"(stages {first} and {second})",
                        hint="make the outputs separate folders or files")
                outer = outer.rpartition("/")[0]
        return owner

    def _producers(self, path: str) -> set[str]:
        """The stages with an output that is `path`, holds it, or lies inside it."""
        found = set()
        outer = path
        while outer:  # the output is `path` or a folder holding it
            if outer in self._owner:
                found.add(self._owner[outer])
            outer = outer.rpartition("/")[0]
        prefix = path + "/"  # outputs inside the folder `path`
        i = bisect.bisect_left(self._out_paths, prefix)
        while i < len(self._out_paths) and self._out_paths[i].startswith(prefix):
            found.add(self._owner[self._out_paths[i]])
            i += 1
        return found

    def _toposort(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = visiting, 2 = done
        position = self._position.__getitem__

        def ups(name: str) -> Iterator[str]:
            return iter(sorted(self.upstream[name], key=position))

        for start in self.order_in_file:  # depth first, without recursion: a chain of
            if state.get(start) == 2:  # thousands of stages is fine
                continue
            state[start] = 1
            stack = [(start, ups(start))]
            while stack:
                name, todo = stack[-1]
                for up in todo:
                    if state.get(up) == 2:
                        continue
                    if state.get(up) == 1:
                        path = [n for n, _ in stack]
                        cycle = path[path.index(up):] + [up]
                        raise PipelineError(f"{PIPELINE_FILE}: the stages form a cycle: "
                                            f"{' -> '.join(cycle)}",
                                            hint="a stage cannot depend on its own outputs, "
                                                 "directly or through other stages")
                    state[up] = 1
                    stack.append((up, ups(up)))
                    break
                else:
                    stack.pop()
                    state[name] = 2
                    order.append(name)
        return order

    def producer_of(self, path: str) -> str | None:
        found = self._producers(path)
        return min(found, key=self._position.__getitem__) if found else None

    def closure(self, names: set[str], edges: dict[str, set[str]]) -> set[str]:
        seen = set(names)
        todo = list(names)
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
