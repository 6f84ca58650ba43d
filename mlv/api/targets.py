"""What a command is about: the tracked items its targets name (through the index)."""

from __future__ import annotations

import os

from mlv import pointer
from mlv.errors import MlvError, PathError
from mlv.index import POINTER, Index, Item, narrow
from mlv.pointer import SUFFIX, Pointer
from mlv.repo import Repo


def check_not_in_tracked_folder(repo: Repo, path: str, hint: str | None = None) -> None:
    """Refuse a path inside a folder that a pointer already tracks."""
    parent = os.path.dirname(path)
    while parent != repo.root and len(parent) > len(repo.root):
        if os.path.isfile(parent + SUFFIX):
            outer, rel = repo.rel(parent), repo.rel(path)
            raise PathError(f"{rel} is inside {outer}, which mlv already tracks ({outer}{SUFFIX})",
                            hint=hint or f"run `mlv add {outer}` to record changes in the "
                                         "whole folder")
        parent = os.path.dirname(parent)


def load(repo: Repo, file: str) -> Pointer:
    return pointer.load(file, repo.root, repo.rel(file), cache_root=repo.cache_dir)


def pointer_file_of(repo: Repo, target: str) -> str:
    """The pointer file for a target: a tracked path or its `.mlv` file."""
    path = repo.resolve(target.rstrip("/") or target)
    if path.endswith(SUFFIX) and os.path.isfile(path):
        return path
    candidate = path + SUFFIX
    if os.path.isfile(candidate):
        return candidate
    item = _item_for(repo, target)
    if item is not None and item.kind != POINTER:
        raise PathError(f"{target} is an output of stage {item.stage}, recorded in mlv.lock, "
                        "not a pointer",
                        hint="change the stage in mlv.yaml (`mlv stage list` shows it)")
    if item is not None:
        raise PathError(f"{target} is inside {item.path}, which mlv tracks as one folder "
                        f"({item.source})", hint=f"name {item.path} instead")
    raise PathError(f"{target} is not tracked by mlv (no {repo.rel(candidate)})",
                    hint="run `mlv add` first, or name a `.mlv` file")


def _item_for(repo: Repo, target: str) -> Item | None:
    try:
        found = Index.load(repo).resolve([target])
    except MlvError:
        return None
    return found[0].item if len(found) == 1 else None


def select(repo: Repo, targets: list[str] | None, idx: Index | None = None,
           stage_outs: bool = True, pushed_only: bool = False) -> list[Item]:
    """The tracked items a command is about: the ones `targets` name (a path inside a
    tracked folder becomes an item of its own), or every recorded one (stage outputs
    too, unless `stage_outs` is False). `pushed_only` leaves out `push: false`
    outputs. A named stage output that mlv.lock does not record yet is an error."""
    idx = idx or Index.load(repo)
    if not targets:
        items = [i for i in idx.recorded() if stage_outs or i.kind == POINTER]
    else:
        items = []
        for target in idx.resolve(targets):
            if target.item.oid is None:
                raise PathError(
                    f"{target.path} is an output of stage {target.item.stage}, which mlv.lock "
                    "does not record yet", hint=f"run `mlv repro {target.item.stage}` first")
            narrowed = narrow(repo.odb, target)
            if narrowed is None:
                raise PathError(
                    f"{target.path} is not in {target.item.path} as recorded, or the "
                    f"folder's file list is not in the cache",
                    hint=f"run `mlv fetch {target.item.path}` to get the file list, or "
                         "check the path")
            items.append(narrowed)
        items = _outermost(items)
    return [i for i in items if i.push or not pushed_only]


def _outermost(items: list[Item]) -> list[Item]:
    """`data` and `data/sub` both named: `data` covers both."""
    kept: list[Item] = []
    for item in sorted(items, key=lambda i: i.path):
        if not any(item.path.startswith(k.path + "/") for k in kept):
            kept.append(item)
    return kept


def as_pointers(idx: Index, items: list[Item]) -> list[Pointer]:
    return [idx.pointer_for(i) for i in items]
