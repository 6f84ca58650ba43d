"""Which stages are stale, and why: the pipeline compared with `mlv.lock`."""

from __future__ import annotations

import os
from typing import Any

from mlv.odb import ObjectStore
from mlv.pipeline import lockfile
from mlv.pipeline.dag import Dag
from mlv.pipeline.lockfile import Hashed, LockEntry
from mlv.pipeline.stage import PipelineError, Stage, load, read_params
from mlv.snapshot import snapshot
from mlv.state import StatCache

_MISSING = object()
MISSING = _MISSING  # what `lookup` returns for a key that is not there


class Pipeline:
    """The stages, their graph and lock, and hashing of their paths (via the stat cache)."""

    def __init__(self, root: str, odb: ObjectStore, state: StatCache, jobs: int,
                 stages: list[Stage] | None = None,
                 lock: dict[str, LockEntry] | None = None) -> None:
        """`stages` and `lock`, when given (from the index), are not read again."""
        self.root = root
        self.odb = odb
        self.state = state
        self.jobs = jobs
        self.stages = load(root) if stages is None else stages
        self.dag = Dag(self.stages)
        self.lock = lockfile.read(root) if lock is None else lock
        self._params: dict[str, Any] = {}
        self._hashes: dict[str, Hashed | None] = {}

    def abspath(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def hash_path(self, rel: str, fresh: bool = False) -> Hashed | None:
        """The content id of a workspace path, or None when it does not exist."""
        if fresh or rel not in self._hashes:
            path = self.abspath(rel)
            if not os.path.exists(path):
                self._hashes[rel] = None
            else:
                snap = snapshot(self.odb, self.state, self.jobs, path, store=False)
                self._hashes[rel] = Hashed(snap.oid, snap.size, snap.nfiles)
        return self._hashes[rel]

    def forget(self, rel: str) -> None:
        self._hashes.pop(rel, None)

    def params_of(self, stage: Stage) -> dict[str, dict[str, Any]]:
        """The current values of the params a stage declares."""
        values: dict[str, dict[str, Any]] = {}
        for file, keys in stage.params.items():
            if file not in self._params:
                try:
                    self._params[file] = read_params(self.abspath(file), file, self.odb.base)
                except PipelineError as exc:
                    raise PipelineError(f"stage {stage.name}: {exc.message}",
                                        hint=exc.hint) from None
            data = self._params[file]
            if not keys:  # the whole file: every top-level key
                if not isinstance(data, dict):
                    raise PipelineError(f"stage {stage.name}: params file {file} is not a "
                                        "mapping of keys", hint=f"fix {file}")
                values[file] = dict(data)
                continue
            for key in keys:
                value = lookup(data, key)
                if value is _MISSING:
                    raise PipelineError(f"stage {stage.name}: params key {key} is not in {file}",
                                        hint=f"add {key} to {file}, or remove it from the "
                                             "stage's params")
                values.setdefault(file, {})[key] = value
        return values

    def reasons(self, stage: Stage) -> list[str]:
        """Why `stage` is stale (an empty list: it is up to date)."""
        if stage.frozen:  # `frozen: true`: kept as recorded, never stale
            return []
        entry = self.lock.get(stage.name)
        if entry is None:
            return ["new stage"]
        found: list[str] = []
        if stage.always_changed:
            found.append("always changed")
        if entry.cmd != stage.cmd:
            found.append("cmd changed")
        for dep in stage.deps:
            now, then = self.hash_path(dep), entry.deps.get(dep)
            if now is None:
                found.append(f"dep {dep} deleted")
            elif then is None:
                found.append(f"new dep {dep}")
            elif now.oid != then.oid:
                found.append(f"dep {dep} modified")
        found += [f"dep {d} removed" for d in sorted(set(entry.deps) - set(stage.deps))]
        current = self.params_of(stage)
        for file, values in current.items():
            old = entry.params.get(file, {})
            for key, value in values.items():
                before = old.get(key, _MISSING)
                if before is _MISSING:
                    found.append(f"new param {key}")
                elif before != value:
                    found += _param_changes(key, before, value)
        for file, old in entry.params.items():
            found += [f"param {k} removed" for k in sorted(old) if k not in current.get(file, {})]
        for out in stage.outs:
            now, then = self.hash_path(out.path), entry.outs.get(out.path)
            if now is None:
                found.append(f"out {out.path} deleted")
            elif then is None:
                found.append(f"new out {out.path}")
            elif now.oid != then.oid:
                found.append(f"out {out.path} modified")
        declared = {o.path for o in stage.outs}
        found += [f"out {p} removed" for p in sorted(set(entry.outs) - declared)]
        return found

    def hash_deps(self, stage: Stage) -> dict[str, Hashed]:
        """Every dependency's current content id, read afresh."""
        deps = {}
        for dep in stage.deps:
            hashed = self.hash_path(dep, fresh=True)
            if hashed is None:
                raise PipelineError(f"stage {stage.name}: dep {dep} does not exist")
            deps[dep] = hashed
        return deps

    def entry_now(self, stage: Stage, deps: dict[str, Hashed] | None = None) -> LockEntry:
        """A lock entry from the workspace as it is now."""
        if deps is None:
            deps = self.hash_deps(stage)
        outs = {}
        for out in stage.outs:
            hashed = self.hash_path(out.path, fresh=True)
            if hashed is None:
                raise PipelineError(f"stage {stage.name} did not create its output {out.path}",
                                    hint="fix the stage's cmd, or its outs in mlv.yaml")
            outs[out.path] = hashed
        return LockEntry(stage.cmd, deps, self.params_of(stage), outs)


def lookup(data: Any, key: str) -> Any:
    value = data
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _param_changes(key: str, before: Any, now: Any) -> list[str]:
    """What changed in a param, down to the keys inside it (a whole params file's
    top-level sections are compared this way)."""
    if not (isinstance(before, dict) and isinstance(now, dict)):
        return [f"param {key}: {_show(before)} -> {_show(now)}"]
    found = []
    for sub, value in now.items():
        if sub not in before:
            found.append(f"new param {key}.{sub}")
        elif before[sub] != value:
            found += _param_changes(f"{key}.{sub}", before[sub], value)
    return found + [f"param {key}.{sub} removed" for sub in before if sub not in now]


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
