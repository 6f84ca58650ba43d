"""`mlv.lock`: what each stage last ran with and produced. Written by mlv only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlv import fsio, paths, yamlio
from mlv.hashing import OID_RE
from mlv.pipeline.stage import PipelineError
from mlv.pointer import is_count

if TYPE_CHECKING:
    from mlv.tree import Tree

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


def _malformed(what: str) -> PipelineError:
    return PipelineError(f"{LOCK_FILE}: {what}",
                         hint=f"restore it with `git checkout -- {LOCK_FILE}` (or delete it "
                              "and run `mlv repro`)")


def _hashed_list(value: Any, where: str) -> dict[str, Hashed]:
    """Deps or outs of one stage: each path held to the one path rule (mlv/paths.py)."""
    result = {}
    if not isinstance(value, list):
        raise _malformed(f"{where} must be a list")
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise _malformed(f"{at} must be a mapping with path, xxh128 and size")
        path, oid, size, nfiles = (item.get(k) for k in ("path", "xxh128", "size", "nfiles"))
        if not isinstance(path, str):
            raise _malformed(f"{at}.path must be a string")
        found = paths.problem(path)
        if found:
            raise _malformed(f"{at}.path: {found}")
        if path in result:
            raise _malformed(f"{at}.path: {path!r} is listed twice")
        if not isinstance(oid, str) or not OID_RE.match(oid):
            raise _malformed(f"{at}.xxh128 must be 32 lower-case hex digits (with .dir for "
                             "a folder)")
        if not is_count(size):
            raise _malformed(f"{at}.size must be a whole number of bytes")
        if nfiles is not None and not is_count(nfiles):
            raise _malformed(f"{at}.nfiles must be a whole number")
        result[path] = Hashed(oid, size, nfiles)
    return result


def _params(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """Recorded params: files (held to the path rule) to mappings of string keys."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _malformed(f"{where} must map params files to values")
    for file, values in value.items():
        found = paths.problem(file) if isinstance(file, str) else "must be a path"
        if found:
            raise _malformed(f"{where}: {file!r}: {found}")
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise _malformed(f"{where}.{file} must map keys to values")
    return value


def read(root: str, tree: Tree | None = None) -> dict[str, LockEntry]:
    """The entries of `<root>/mlv.lock`, or of the one in `tree` (none when absent)."""
    try:
        if tree is None:
            text = fsio.read_text(os.path.join(root, LOCK_FILE), fsio.LOCK_LIMIT, LOCK_FILE,
                                  PipelineError)
        else:
            from mlv.pipeline.stage import decode

            text = decode(tree.read(LOCK_FILE, fsio.LOCK_LIMIT, LOCK_FILE, PipelineError),
                          LOCK_FILE)
    except FileNotFoundError:
        return {}
    return parse(text)


def parse(text: str) -> dict[str, LockEntry]:
    data, _ = yamlio.load(text, LOCK_FILE, PipelineError)
    if not data:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise PipelineError(f"{LOCK_FILE}: expected `stages:` with one entry per stage",
                            hint=f"restore it with `git checkout -- {LOCK_FILE}`")
    entries = {}
    for name, body in (data.get("stages") or {}).items():
        if not isinstance(body, dict) or not isinstance(body.get("cmd"), str):
            raise _malformed(f"stage {name} has no cmd")
        entries[str(name)] = LockEntry(
            body["cmd"], _hashed_list(body.get("deps", []), f"{name}.deps"),
            _params(body.get("params"), f"{name}.params"),
            _hashed_list(body.get("outs", []), f"{name}.outs"))
    return entries


def write(root: str, entries: dict[str, LockEntry], order: list[str]) -> None:
    """Write the entries of the stages in `order` (the pipeline's), atomically; entries of
    stages no longer in mlv.yaml are dropped."""
    names = [n for n in order if n in entries]
    data = {"schema": SCHEMA, "stages": {n: entries[n].as_dict() for n in names}}
    fsio.atomic_write(os.path.join(root, LOCK_FILE), yamlio.dump(data).encode())
