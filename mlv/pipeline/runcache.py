"""The run-cache: outputs of past runs, keyed by exactly what a stage ran with.

`<cache>/runs/ab/cdef…` holds JSON listing the outputs of one run whose stage name,
cmd, dependency hashes and param values hash to `abcdef…`. A hit restores the
outputs from the cache instead of running the stage again.

Entries may come from a remote (`mlv pull --run-cache`), so each one is validated when
read: one that is malformed or names an unsafe path or a bad object id is a miss (the
stage runs), and a pulled one is not kept.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlv import fsio, paths
from mlv.errors import MlvError
from mlv.hashing import OID_RE, hash_bytes
from mlv.pipeline.lockfile import Hashed

RUNS = "runs"
MAX_BYTES = 16 * 1024 * 1024  # far above any real entry (a few hundred bytes per out)
OUT_KEYS = frozenset(("path", "xxh128", "size", "nfiles"))


def key(name: str, cmd: str, deps: dict[str, Hashed], params: dict[str, Any]) -> str:
    material = {"stage": name, "cmd": cmd, "deps": {p: h.oid for p, h in sorted(deps.items())},
                "params": params}
    return hash_bytes(json.dumps(material, sort_keys=True, default=str).encode())


def path_of(runs_dir: str, run_key: str) -> str:
    return os.path.join(runs_dir, run_key[:2], run_key[2:])


def save(runs_dir: str, run_key: str, outs: dict[str, Hashed]) -> None:
    data = {"outs": [h.as_dict(p) for p, h in sorted(outs.items())]}
    path = path_of(runs_dir, run_key)
    fsio.makedirs(os.path.dirname(path))
    fsio.atomic_write(path, json.dumps(data, sort_keys=True).encode())


def lookup(runs_dir: str, run_key: str) -> dict[str, Hashed] | None:
    return read(path_of(runs_dir, run_key))


def read(path: str) -> dict[str, Hashed] | None:
    """The outputs recorded in one run-cache file: None if it is missing, damaged, or
    names an unsafe path or something other than an object id (the stage then runs)."""
    try:
        return load(path)
    except (OSError, ValueError):
        return None


def load(path: str) -> dict[str, Hashed]:
    """`read`, but a file that cannot be used raises: OSError if it cannot be read,
    ValueError saying what is wrong with it otherwise."""
    try:  # a regular file only: never through a symlink, never blocking on a FIFO
        data = fsio.read_regular(path, MAX_BYTES, "the entry")
    except MlvError as exc:
        raise ValueError(exc.message) from None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not valid JSON") from None
    if type(doc) is not dict or set(doc) != {"outs"} or type(doc["outs"]) is not list:
        raise ValueError('not an object holding one "outs" list')
    outs: dict[str, Hashed] = {}
    for n, item in enumerate(doc["outs"], 1):
        why = _out_problem(item)
        if why is None and item["path"] in outs:
            why = f"path {item['path']!r} appears twice"
        if why is not None:
            raise ValueError(f"out {n}: {why}")
        outs[item["path"]] = Hashed(item["xxh128"], item["size"], item.get("nfiles"))
    return outs


def _out_problem(item: Any) -> str | None:
    """What is wrong with one recorded out: it needs a safe path (mlv.paths), an object
    id, and sizes that are ints."""
    if type(item) is not dict or not {"path", "xxh128", "size"} <= set(item) <= OUT_KEYS:
        return 'not an object with "path", "xxh128" and "size" (and maybe "nfiles")'
    path, oid, size, nfiles = item["path"], item["xxh128"], item["size"], item.get("nfiles", 0)
    if type(path) is not str:
        return "path is not a string"
    found = paths.problem(path)
    if found is not None:
        return found
    if type(oid) is not str or OID_RE.match(oid) is None:
        return f"xxh128 of {path!r} is not an object id"
    if type(size) is not int or size < 0 or type(nfiles) is not int or nfiles < 0:
        return f"size or nfiles of {path!r} is not a whole number of at least 0"
    return None


def entries(runs_dir: str) -> list[str]:
    """Every run-cache key stored locally."""
    found = []
    if os.path.isdir(runs_dir):
        for prefix in os.listdir(runs_dir):
            folder = os.path.join(runs_dir, prefix)
            if len(prefix) == 2 and os.path.isdir(folder):
                found += [prefix + n for n in os.listdir(folder) if not fsio.is_tmp_name(n)]
    return found
