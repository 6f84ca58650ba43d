"""`mlv.lock`: what each stage last ran with and produced. Written by mlv only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlv import fsio, yamlio
from mlv.hashing import OID_RE
from mlv.pipeline.stage import PipelineError

LOCK_FILE = "mlv.lock"
SCHEMA = "1"


@dataclass(frozen=True)
class Hashed:
    oid: str
    size: int
    nfiles: int | None = None

    def as_dict(self, path: str) -> dict[str, Any]:
        item: dict[str, Any] = {"path": path, "xxh128": self.oid, "size": self.size}
        if self.nfiles is not None:
            item["nfiles"] = self.nfiles
        return item


@dataclass
class LockEntry:
    cmd: str
    deps: dict[str, Hashed] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    outs: dict[str, Hashed] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cmd": self.cmd}
        if self.deps:
            data["deps"] = [h.as_dict(p) for p, h in sorted(self.deps.items())]
        if self.params:
            data["params"] = {f: dict(sorted(kv.items())) for f, kv in sorted(self.params.items())}
        if self.outs:
            data["outs"] = [h.as_dict(p) for p, h in sorted(self.outs.items())]
        return data


def _hashed_list(value: Any, where: str) -> dict[str, Hashed]:
    result = {}
    if not isinstance(value, list):
        raise PipelineError(f"{LOCK_FILE}: {where} must be a list",
                            hint=f"delete {LOCK_FILE} and run `mlv repro` (or `mlv commit`)")
    for item in value:
        ok = (isinstance(item, dict) and isinstance(item.get("path"), str)
              and isinstance(item.get("xxh128"), str) and OID_RE.match(item["xxh128"])
              and isinstance(item.get("size"), int))
        if not ok:
            raise PipelineError(f"{LOCK_FILE}: {where} has a malformed entry: {item!r}",
                                hint=f"restore it with `git checkout -- {LOCK_FILE}`")
        result[item["path"]] = Hashed(item["xxh128"], item["size"], item.get("nfiles"))
    return result


def read(root: str) -> dict[str, LockEntry]:
    path = os.path.join(root, LOCK_FILE)
    try:
        text = fsio.read_text(path, fsio.LOCK_LIMIT, LOCK_FILE, PipelineError)
    except FileNotFoundError:
        return {}
    data, _ = yamlio.load(text, LOCK_FILE, PipelineError)
    if not data:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise PipelineError(f"{LOCK_FILE}: expected `stages:` with one entry per stage",
                            hint=f"restore it with `git checkout -- {LOCK_FILE}`")
    entries = {}
    for name, body in (data.get("stages") or {}).items():
        if not isinstance(body, dict) or not isinstance(body.get("cmd"), str):
            raise PipelineError(f"{LOCK_FILE}: stage {name} has no cmd",
                                hint=f"restore it with `git checkout -- {LOCK_FILE}`")
        params = body.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            raise PipelineError(f"{LOCK_FILE}: stage {name}: params must map files to values")
        entries[str(name)] = LockEntry(
            body["cmd"], _hashed_list(body.get("deps", []), f"{name}.deps"), params,
            _hashed_list(body.get("outs", []), f"{name}.outs"))
    return entries


def write(root: str, entries: dict[str, LockEntry], order: list[str]) -> None:
    """Write the entries of the stages in `order` (the pipeline's), atomically; entries of
    stages no longer in mlv.yaml are dropped."""
    names = [n for n in order if n in entries]
    data = {"schema": SCHEMA, "stages": {n: entries[n].as_dict() for n in names}}
    fsio.atomic_write(os.path.join(root, LOCK_FILE), yamlio.dump(data).encode())
