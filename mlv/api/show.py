"""`mlv params show` and `mlv metrics show`, for the workspace and any git revisions:
read through the index, so a revision is read from git objects (and the cache, for
metrics that are cached outputs) without checking it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlv import fsio, manifest
from mlv.index import METRIC, Index
from mlv.pipeline.stage import PipelineError, parse_params
from mlv.pipeline.status import MISSING, lookup
from mlv.repo import Repo

WORKSPACE = "workspace"


@dataclass
class Shown:
    """One tree's values: {file: data nested as in the file}, and the files that could
    not be read there, with why."""

    label: str  # "workspace", or the revision as the user named it
    files: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def trees(repo: Repo, revs: list[str] | None = None, all_branches: bool = False,
          all_tags: bool = False) -> list[tuple[str, str | None]]:
    """(label, revision) pairs: the workspace first, then each revision asked for
    (branch and tag names for -a and -T)."""
    from mlv import scm

    found: list[tuple[str, str | None]] = [(WORKSPACE, None)]
    names = [(rev, rev) for rev in revs or []]
    if all_branches or all_tags:  # by full ref name: a clone's tag may be named `-x`
        names += scm.ref_names(repo.root, all_branches, all_tags)
    seen: set[str] = set()
    for label, rev in names:
        if label not in seen:
            seen.add(label)
            found.append((label, rev))
    return found


def read_file(repo: Repo, idx: Index, rel: str) -> Any:
    """A params or metrics file's data in the index's tree. A file inside a cached output
    (or a cached metric) is read from the cache by the hash the tree records; others
    from git (or the workspace). Raises FileNotFoundError when it is not there, and
    `_NotCached` when the cache lacks it; a malformed file raises PipelineError."""
    at = idx.item_at(rel)
    tree = idx.tree
    if at is not None and not tree.on_disk:
        raw = _cached_bytes(repo, at[0].oid, at[1], rel)
    else:
        raw = tree.read(rel, fsio.PARAMS_LIMIT, rel, PipelineError)
    return parse_params(raw, rel)


def _cached_bytes(repo: Repo, oid: str | None, sub: str | None, rel: str) -> bytes:
    if oid is None or (sub and not oid.endswith(".dir")):  # a file holds no other file
        raise FileNotFoundError(rel)
    try:
        if sub:
            entries = manifest.loads(repo.odb.read_bytes(oid, manifest.MAX_BYTES + 1), oid)
            found = [e for e in entries if e.path == sub]
            if not found:
                raise FileNotFoundError(rel)
            oid = found[0].oid
        return repo.odb.read_bytes(oid, fsio.PARAMS_LIMIT)
    except FileNotFoundError:
        raise _NotCached("not in the cache (`mlv fetch --all-branches` or `--all-tags` gets "
                         "it)") from None


class _NotCached(Exception):
    """A revision's cached metrics file that the local cache does not have."""


def params(repo: Repo, idx: Index, label: str) -> Shown:
    """The params every stage declares, nested as in their files."""
    shown = Shown(label)
    declared: dict[str, list[str] | None] = {}
    for stage in idx.stages:
        for file, keys in stage.params.items():
            if not keys:  # a whole params file
                declared[file] = None
            elif file not in declared or declared[file] is not None:
                declared[file] = list(dict.fromkeys((declared.get(file) or []) + keys))
    for file, wanted in declared.items():
        try:
            data = read_file(repo, idx, file)
        except FileNotFoundError:
            if idx.tree.on_disk:  # as for `mlv repro`: the workspace must have it
                raise PipelineError(f"params file {file} does not exist",
                                    hint=f"create {file}, or fix the params of the stages"
                                    ) from None
            shown.errors[file] = "does not exist"
            continue
        except PipelineError as exc:
            if idx.tree.on_disk:
                raise
            shown.errors[file] = exc.message  # a broken old file hides only itself
            continue
        if wanted is None:
            shown.files[file] = data
            continue
        picked: dict[str, Any] = {}
        for key in wanted:
            value = lookup(data, key)
            if value is not MISSING:
                _set(picked, key.split("."), value)
            elif idx.tree.on_disk:
                raise PipelineError(f"params key {key} is not in {file}",
                                    hint=f"add {key} to {file}, or remove it from the "
                                         "stage's params")
            else:
                shown.errors[f"{file}:{key}"] = "not in the file"
        shown.files[file] = picked
    return shown


def metrics(repo: Repo, idx: Index, label: str) -> Shown:
    """Every metrics file (stage metrics and top-level ones), nested as in the file."""
    shown = Shown(label)
    for file in idx.metrics_files:
        try:
            shown.files[file] = read_file(repo, idx, file)
        except FileNotFoundError:
            if idx.tree.on_disk or not _is_metric_out(idx, file):
                shown.errors[file] = "does not exist"
            else:
                shown.errors[file] = "not recorded"
        except _NotCached as exc:
            shown.errors[file] = str(exc)
        except PipelineError as exc:
            if idx.tree.on_disk:
                raise
            shown.errors[file] = exc.message  # a broken old file hides only itself
    return shown


def _is_metric_out(idx: Index, file: str) -> bool:
    item = idx.items.get(file)
    return item is not None and item.kind == METRIC


def show(repo: Repo, what: str, revs: list[str] | None = None, all_branches: bool = False,
         all_tags: bool = False) -> list[Shown]:
    """`what` is "params" or "metrics": one Shown per tree, the workspace first."""
    pick = params if what == "params" else metrics
    result = []
    for label, rev in trees(repo, revs, all_branches, all_tags):
        idx = Index.load(repo, rev)
        result.append(pick(repo, idx, label))
    return result


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested data as dotted keys (`train.lr`); list items by index."""
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(data, list):
        flat = {}
        for i, value in enumerate(data):
            flat.update(flatten(value, f"{prefix}{i}."))
        return flat
    return {prefix.rstrip("."): data}


def _set(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[parts[-1]] = value


# ---- diff ---------------------------------------------------------------------------------

@dataclass
class Change:
    """One key that differs between two trees (or, with `all`, one that does not)."""

    file: str
    key: str  # dotted
    old: Any  # MISSING when the key is only on the new side
    new: Any  # MISSING when the key is only on the old side

    @property
    def change(self) -> float | None:
        """new - old, when both are numbers (not booleans)."""
        if _number(self.old) and _number(self.new):
            try:
                change = self.new - self.old
                float(change)  # an integer beyond a float's range has no change shown
            except OverflowError:
                return None
            return change
        return None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"old": None if self.old is MISSING else self.old,
                                "new": None if self.new is MISSING else self.new}
        if self.change is not None:
            data["diff"] = self.change
        return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def diff(repo: Repo, what: str, a_rev: str | None = None, b_rev: str | None = None,
         every: bool = False) -> tuple[str, str, list[Change]]:
    """Keys of `what` ("params" or "metrics") that differ between revision `a_rev`
    (default HEAD) and `b_rev` (default: the workspace); with `every`, unchanged keys
    too. Returns the two trees' labels and the changes, by file and key."""
    pick = params if what == "params" else metrics
    a_label, b_label = a_rev or "HEAD", b_rev or WORKSPACE
    old = pick(repo, Index.load(repo, a_label), a_label)
    new = pick(repo, Index.load(repo, b_rev), b_label)
    return a_label, b_label, compare(old, new, every)


def compare(old: Shown, new: Shown, every: bool = False) -> list[Change]:
    """The keys that differ between two trees' values (all of them with `every`)."""
    changes = []
    for file in dict.fromkeys(list(old.files) + list(new.files)):
        before = _leaves(old.files.get(file))
        after = _leaves(new.files.get(file))
        for key in dict.fromkeys(list(before) + list(after)):
            was, now = before.get(key, MISSING), after.get(key, MISSING)
            if every or was != now or type(was) is not type(now):
                changes.append(Change(file, key, was, now))
    return changes


def _leaves(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    return {k: v for k, v in flatten(data).items()
            if isinstance(v, (int, float, str, bool)) or v is None}
