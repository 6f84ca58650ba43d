"""Finding pointer files: every one in the workspace, or the ones a user named."""

from __future__ import annotations

import os

from mlv import pointer
from mlv.errors import PathError
from mlv.pointer import SUFFIX, Pointer
from mlv.repo import MLV_DIR, Repo


def all_pointer_files(repo: Repo) -> list[str]:
    """Every `.mlv` pointer in the workspace. Tracked directories are not descended into."""
    found: list[str] = []
    for folder, dirs, files in os.walk(repo.root):
        if folder == repo.root:
            dirs[:] = [d for d in dirs if d not in (".git", MLV_DIR)]
        names = [f for f in files if f.endswith(SUFFIX) and len(f) > len(SUFFIX)]
        found += [os.path.join(folder, f) for f in names]
        outs = {f[: -len(SUFFIX)] for f in names}
        dirs[:] = sorted(d for d in dirs if d not in outs and d != ".git")
    return sorted(found)


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
    raise PathError(f"{target} is not tracked by mlv (no {repo.rel(candidate)})",
                    hint="run `mlv add` first, or name a `.mlv` file")


def stage_outputs(repo: Repo) -> list[Pointer]:
    """Cached stage outputs recorded in mlv.lock, as pointers (so checkout and pull can
    restore them like tracked data)."""
    from mlv.pipeline import lockfile
    from mlv.pipeline.stage import PIPELINE_FILE, load
    from mlv.pointer import Out

    if not os.path.exists(os.path.join(repo.root, PIPELINE_FILE)):
        return []
    lock = lockfile.read(repo.root)
    found = []
    for stage in load(repo.root):
        entry = lock.get(stage.name)
        for out in stage.cached_outs:
            hashed = entry.outs.get(out.path) if entry else None
            if hashed is not None:
                out_path = os.path.join(repo.root, *out.path.split("/"))
                # The "pointer file" is the output itself: mlv.lock is where it is recorded.
                found.append(Pointer(out_path, (Out(os.path.basename(out_path), hashed.oid,
                                                    hashed.size, hashed.nfiles),)))
    return found


def collect(repo: Repo, targets: list[str] | None) -> list[Pointer]:
    if targets:
        files = sorted(dict.fromkeys(pointer_file_of(repo, t) for t in targets))
    else:
        files = all_pointer_files(repo)
    return [load(repo, f) for f in files]
