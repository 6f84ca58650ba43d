"""The run-cache: outputs of past runs, keyed by exactly what a stage ran with.

`<cache>/runs/ab/cdef…` holds JSON listing the outputs of one run whose stage name,
cmd, dependency hashes and param values hash to `abcdef…`. A hit restores the
outputs from the cache instead of running the stage again.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlv import fsio
from mlv.hashing import hash_bytes
from mlv.pipeline.lockfile import Hashed

RUNS = "runs"


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
    """The outputs recorded in one run-cache file (None if missing or damaged)."""
    try:
        with open(path, encoding="utf-8") as fobj:
            data = json.load(fobj)
        return {o["path"]: Hashed(o["xxh128"], o["size"], o.get("nfiles")) for o in data["outs"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no entry, or a damaged one: run the stage


def entries(runs_dir: str) -> list[str]:
    """Every run-cache key stored locally."""
    found = []
    if os.path.isdir(runs_dir):
        for prefix in os.listdir(runs_dir):
            folder = os.path.join(runs_dir, prefix)
            if len(prefix) == 2 and os.path.isdir(folder):
                found += [prefix + n for n in os.listdir(folder) if not fsio.is_tmp_name(n)]
    return found
