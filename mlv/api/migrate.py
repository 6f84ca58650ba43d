"""`mlv migrate dvc`: convert a DVC repository in place.

dvc.yaml is copied to mlv.yaml as it is (mlv reads DVC's syntax); every `.dvc` file
becomes `.mlv` pointers and dvc.lock becomes mlv.lock, each tracked path rehashed with
xxh3-128 from the workspace copy when its md5 is the one DVC recorded, else from DVC's
cache (each object's md5 checked before its bytes enter mlv's cache); `.dvc/config`
remotes become mlv remotes, without secrets. Nothing of DVC's is changed or deleted.
Everything is read and checked before the first write, so a refused file changes nothing.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from dataclasses import dataclass, field

from mlv import dvcformat, fsio, paths, pointer, scm, yamlio
from mlv.api.remote import refused_protocol, valid_name
from mlv.dvcformat import DVC_DIR, DvcFile, DvcFormatError, DvcLockStage, DvcOut
from mlv.dvcrehash import FROM_DVC_CACHE, Rehasher
from mlv.errors import MlvError, NotARepoError, PathError
from mlv.hashing import default_jobs
from mlv.pipeline import lockfile
from mlv.pipeline.lockfile import Hashed, LockEntry
from mlv.pipeline.stage import PIPELINE_FILE, Stage, load_text
from mlv.pointer import Out
from mlv.remote import is_secret, masked_url
from mlv.repo import MLV_DIR, Repo
from mlv.state import StatCache
from mlv.workspace import Progress

DVC_YAML = "dvc.yaml"
DVC_LOCK = "dvc.lock"
# DVC remote options mlv has under another name, and the ones it has under the same.
REMOTE_OPTIONS = {"url": "url", "endpointurl": "endpoint_url", "profile": "profile",
                  "region": "region"}
URL_SUFFIX = "-mlv"


@dataclass
class Step:
    """One change (or, with `dry`, one that would be made)."""

    action: str  # "write", "unchanged", "kept", "add" (a remote), "skip secret", "skip option"
    what: str  # a repo-relative path, or `remote NAME`
    detail: str = ""


@dataclass
class MigrateResult:
    root: str
    dry: bool
    initialized: bool = False
    steps: list[Step] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in neither the workspace nor DVC's cache
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # .gitignore files that changed
    from_cache: list[str] = field(default_factory=list)  # paths rehashed from DVC's cache

    @property
    def ok(self) -> bool:
        return not self.missing


def find_dvc_root(start: str) -> str:
    path = os.path.realpath(start)
    while True:
        if os.path.isdir(os.path.join(path, DVC_DIR)) and not os.path.islink(
                os.path.join(path, DVC_DIR)):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise NotARepoError("not inside a DVC repository (no .dvc/ folder here or above)",
                                hint="run `mlv migrate dvc` in the DVC project's folder")
        path = parent


# ---- reading DVC's files (all of it before anything is written) -----------------------

@dataclass
class _Tracked:
    dvc_file: str  # repo-relative
    rel: str  # repo-relative path of the out
    out: DvcOut
    source: DvcFile


def _dvc_files(root: str) -> list[str]:
    """Every `.dvc` file (repo-relative), not looking into .git, .dvc, .mlv or a folder a
    `.dvc` file beside it tracks."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        names = sorted(f for f in files if f.endswith(".dvc") and len(f) > 4)
        found += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/")
                  for f in names]
        tracked = {f[:-4] for f in names}
        dirs[:] = sorted(d for d in dirs if d not in (".git", DVC_DIR, MLV_DIR)
                         and d not in tracked)
    return found


def _out_rel(root: str, dvc_file: str, path: str) -> str:
    """An out's repo-relative path, held to the one path rule (mlv/paths.py)."""
    found = paths.problem(path)
    folder = posixpath.dirname(dvc_file)
    rel = posixpath.join(folder, path) if folder else path
    found = found or paths.own_file(rel) or paths.problem_on_disk(root, rel)
    if found:
        raise PathError(f"{dvc_file}: outs: {found}",
                        hint=f"fix or remove {dvc_file}; nothing was converted")
    return rel


def _read_tracked(root: str, notes: list[str]) -> list[_Tracked]:
    tracked = []
    for dvc_file in _dvc_files(root):
        full = os.path.join(root, *dvc_file.split("/"))
        parsed = dvcformat.parse_dvc_file(
            dvcformat.read_yaml(full, dvc_file, fsio.POINTER_LIMIT), dvc_file)
        if parsed.stage_cmd is not None:
            notes.append(f"{dvc_file} is a DVC 1 stage file (it has a cmd); it is not "
                         "converted: move its stage into dvc.yaml, then run again")
            continue
        for out in parsed.outs:
            tracked.append(_Tracked(dvc_file, _out_rel(root, dvc_file, out.path), out, parsed))
    return tracked


# ---- writing -----------------------------------------------------------------------------

def _put(result: MigrateResult, root: str, rel: str, text: str, force: bool,
         detail: str = "") -> bool:
    """Write `text` to `rel` unless it holds it already, or holds something else (kept,
    unless `force`). True when the file now holds (or with `dry` would hold) `text`."""
    path = os.path.join(root, *rel.split("/"))
    try:
        old: str | None = fsio.read_text(path, fsio.LOCK_LIMIT, rel)
    except FileNotFoundError:
        old = None
    except (OSError, MlvError):  # a link or special file there: replaced by the rename
        old = ""
    if old == text:
        result.steps.append(Step("unchanged", rel, detail))
        return True
    if old is not None and not force:
        result.steps.append(Step("kept", rel, "it exists and differs; --force replaces it"))
        return False
    result.steps.append(Step("write", rel, detail))
    if not result.dry:
        fsio.atomic_write(path, text.encode())
    return True


def _ignore(repo: Repo | None, result: MigrateResult, rel: str) -> None:
    if repo is None or not repo.has_scm or result.dry:
        return
    path = os.path.join(repo.root, *rel.split("/"))
    if scm.add_ignore(os.path.dirname(path), os.path.basename(path)):
        result.ignored.append(repo.rel(os.path.join(os.path.dirname(path), ".gitignore")))


def _convert_pointers(tracked: list[_Tracked], hasher: Rehasher, repo: Repo | None,
                      result: MigrateResult, force: bool) -> None:
    for item in tracked:
        found = hasher.find(item.rel, item.out)
        if found is None:
            result.missing.append(f"{item.rel} ({item.dvc_file})")
            continue
        hashed, where = found
        if where == FROM_DVC_CACHE:
            result.from_cache.append(item.rel)
        name = posixpath.basename(item.rel)
        out = Out(name, hashed.oid, hashed.size, hashed.nfiles)
        rel = item.rel + pointer.SUFFIX
        if _put(result, result.root, rel, pointer.dumps([out]), force,
                f"from {item.dvc_file}, bytes from {where}"):
            _ignore(repo, result, item.rel)
        source = item.source
        if source.imported_from or source.import_url:
            origin = source.imported_from or source.import_url
            kind = "dvc import" if source.imported_from else "dvc import-url"
            frozen = " (frozen)" if source.frozen else ""
            result.notes.append(
                f"{item.dvc_file} was a `{kind}` from {masked_url(str(origin))}{frozen}; mlv has "
                f"no imports yet, so {rel} tracks the data itself: to update it, replace "
                f"{item.rel} and run `mlv add {item.rel}`")


def _lock_entry(stage: Stage, entry: DvcLockStage, hasher: Rehasher,
                notes: list[str]) -> LockEntry:
    """An mlv.lock entry from a dvc.lock one: the cmd mlv computes for the stage, and each
    dep and out whose recorded md5 is found (the others are left out: the stage is stale)."""
    wdir = stage.wdir

    def in_lock(items: list[DvcOut]) -> dict[str, DvcOut]:
        joined = {}
        for item in items:
            rel = posixpath.normpath(posixpath.join(wdir, item.path)) if wdir != "." else \
                posixpath.normpath(item.path)
            joined[rel] = item
        return joined

    cmd = stage.cmd
    if " ".join(entry.cmd.split()) != " ".join(stage.cmd.split()):
        cmd = entry.cmd
        notes.append(f"stage {stage.name}: its cmd differs from the one in dvc.lock; it "
                     "will run on the next `mlv repro`")
    result = LockEntry(cmd)
    deps, outs = in_lock(entry.deps), in_lock(entry.outs)
    for rel in stage.deps:
        found = hasher.find(rel, deps[rel], store=False) if rel in deps else None
        if found is None:
            notes.append(f"stage {stage.name}: dep {rel} is not as dvc.lock records it; the "
                         "stage will run on the next `mlv repro`")
        else:
            result.deps[rel] = Hashed(*found[0])
    for output in stage.outs:
        found = hasher.find(output.path, outs[output.path], store=output.cache) \
            if output.path in outs else None
        if found is None:
            notes.append(f"stage {stage.name}: out {output.path} is in neither the workspace "
                         "nor DVC's cache as dvc.lock records it; the stage will run on the "
                         "next `mlv repro` (or run `dvc pull` first, then migrate again)")
        else:
            result.outs[output.path] = Hashed(*found[0])
    for file, keys in stage.params.items():
        in_dvc = posixpath.relpath(file, wdir) if wdir != "." else file
        recorded = entry.params.get(in_dvc, {})
        values = {k: recorded[k] for k in keys if k in recorded} if keys else dict(recorded)
        if keys and len(values) < len(keys):
            notes.append(f"stage {stage.name}: dvc.lock has no value for some params of "
                         f"{file}; the stage will run on the next `mlv repro`")
        if values:
            result.params[file] = values
    return result


@dataclass
class _Pipeline:
    text: str  # what mlv.yaml will hold
    stages: list[Stage]
    lock: dict[str, DvcLockStage]


def _read_pipeline(root: str, force: bool) -> _Pipeline | None:
    """dvc.yaml's text and stages as mlv reads them (an mlv.yaml that is there already is
    kept unless `force`), and dvc.lock's entries; None without dvc.yaml."""
    try:
        text = fsio.read_text(os.path.join(root, DVC_YAML), fsio.PIPELINE_LIMIT, DVC_YAML,
                              DvcFormatError)
    except FileNotFoundError:
        return None
    name = DVC_YAML
    if not force:
        try:
            text = fsio.read_text(os.path.join(root, PIPELINE_FILE), fsio.PIPELINE_LIMIT,
                                  PIPELINE_FILE)
            name = PIPELINE_FILE
        except FileNotFoundError:
            pass
    stages = load_text(root, text, name)
    try:
        lock = dvcformat.parse_lock(dvcformat.read_yaml(os.path.join(root, DVC_LOCK), DVC_LOCK))
    except FileNotFoundError:
        lock = {}
    return _Pipeline(text, stages, lock)


def _convert_pipeline(root: str, pipe: _Pipeline, hasher: Rehasher, repo: Repo | None,
                      result: MigrateResult, force: bool) -> None:
    dvc_text = fsio.read_text(os.path.join(root, DVC_YAML), fsio.PIPELINE_LIMIT, DVC_YAML,
                              DvcFormatError)
    _put(result, root, PIPELINE_FILE, dvc_text, force, "copied from dvc.yaml")
    entries: dict[str, LockEntry] = {}
    for stage in pipe.stages:
        entry = pipe.lock.get(stage.name)
        if entry is None:
            result.notes.append(f"stage {stage.name} is not in dvc.lock (DVC never ran it); "
                                "it will run on the next `mlv repro`")
            continue
        entries[stage.name] = _lock_entry(stage, entry, hasher, result.notes)
        for output in stage.cached_outs:
            if output.path in entries[stage.name].outs:
                _ignore(repo, result, output.path)
    if entries:
        data = {"schema": lockfile.SCHEMA,
                "stages": {s.name: entries[s.name].as_dict() for s in pipe.stages
                           if s.name in entries}}
        _put(result, root, lockfile.LOCK_FILE, yamlio.dump(data), force,
             f"{len(entries)} of {len(pipe.stages)} stages from dvc.lock")


def _mlv_url(root: str, url: str) -> str:
    """A new location beside the DVC remote's: DVC's objects are md5-named, so mlv keeps
    its own (and DVC's `gc` never sees them)."""
    if "://" not in url and not os.path.isabs(os.path.expanduser(url)):
        # DVC reads a relative folder remote from .dvc/; mlv from the repository's root
        url = os.path.relpath(os.path.normpath(os.path.join(root, DVC_DIR, url)), root)
    url = url.rstrip("/")
    scheme, sep, rest = url.partition("://")
    if sep and "/" not in rest:  # a bucket's root: a folder in it
        return f"{url}/mlv"
    return url + URL_SUFFIX


def _convert_remotes(root: str, repo: Repo | None, result: MigrateResult) -> None:
    config = dvcformat.read_config(root, "config")
    existing = repo.config.remotes() if repo else {}
    default = config.get("core", {}).get("remote")
    # a default remote you chose stays the default: `mlv push` sends your data there
    chosen = repo.config.get("core.remote") if repo is not None else None
    for name, options in dvcformat.remotes(config).items():
        what = f"remote {name}"
        url = options.get("url")
        if name in existing:
            result.steps.append(Step("kept", what, "mlv has a remote of this name already"))
            continue
        if not valid_name(name):
            result.steps.append(Step("skip", what, "mlv's remote names use letters, digits, "
                                                   "'-', '_' and '.'; add it under another "
                                                   "name: `mlv remote add NAME URL`"))
            continue
        if not url or masked_url(url) != url:
            result.steps.append(Step("skip secret", what,
                                     "its url holds a password; add it for this clone "
                                     f"only: `mlv remote add --local {name} URL`"))
            continue
        new_url = _mlv_url(root, url)
        protocol = refused_protocol(url)
        if protocol is not None:  # .mlv/config is committed: mlv would refuse it there
            result.steps.append(Step("skip", what,
                                     f"mlv refuses the {protocol}:// protocol in the "
                                     f"committed .mlv/config; if you trust it, add it for "
                                     f"this clone only: `mlv remote add --local {name} "
                                     f"{shlex.quote(new_url) if '://' in url else 'URL'}`"))
            continue
        copied = {REMOTE_OPTIONS[k]: v for k, v in options.items()
                  if k in REMOTE_OPTIONS and k != "url"}
        is_default = name == default and not chosen
        if name == default and chosen:
            result.notes.append(f"remote {name} is DVC's default; mlv's stays {chosen} "
                                f"(`mlv remote default {name}` changes it)")
        shown = "".join(f", {k} {v}" for k, v in sorted(copied.items()))
        result.steps.append(Step("add", what, f"{new_url}{', default' if is_default else ''}"
                                              f"{shown}"))
        result.notes.append(f"remote {name} is at {new_url}, beside DVC's {url}: DVC's objects "
                            "are named by md5, mlv's by xxh3-128, so mlv keeps its own (push "
                            f"them with `mlv push`); change it with `mlv remote modify {name} "
                            "url URL`")
        for key in options:
            if key in REMOTE_OPTIONS:
                continue
            if is_secret(key):
                result.steps.append(Step("skip secret", what,
                                         f"{key}: set it with `mlv remote modify --local "
                                         f"{name} {key} VALUE`, or in the environment"))
            else:
                result.steps.append(Step("skip option", what,
                                         f"{key} = {options[key]}: mlv has no such option"))
        if repo is not None and not result.dry:
            from mlv.api import remote as remote_api

            remote_api.add(repo, name, new_url, default=is_default)
            for key, value in copied.items():
                repo.config.set_remote(name, key, value, "repo")
    local = dvcformat.read_config(root, "config.local")
    for name, options in dvcformat.remotes(local).items():
        for key in options:
            result.steps.append(Step("skip secret", f"remote {name}",
                                     f"{key} from .dvc/config.local, which is never copied: "
                                     f"set it with `mlv remote modify --local {name} "
                                     f"{REMOTE_OPTIONS.get(key, key)} VALUE`"))


def migrate(start: str, dry: bool = False, force: bool = False,
            progress: Progress | None = None) -> MigrateResult:
    """Convert the DVC repository around `start` (see the module's docstring)."""
    root = find_dvc_root(start)
    result = MigrateResult(root, dry)
    # Read and check everything first: a refused file stops here, before any write.
    tracked = _read_tracked(root, result.notes)
    pipe = _read_pipeline(root, force)
    dvc_config = dvcformat.read_config(root, "config")
    dvc_local = dvcformat.read_config(root, "config.local")
    for section, options in dvc_local.items():
        dvc_config.setdefault(section, {}).update(options)
    # .dvc/config.local is yours, unless the clone brought it (git tracks it)
    trusted = "dir" in dvc_local.get("cache", {}) and not scm.tracked_quick(
        root, f"{DVC_DIR}/config.local")
    dvc_cache = dvcformat.cache_dir(root, dvc_config, trusted)
    repo: Repo | None = None
    if os.path.isdir(os.path.join(root, MLV_DIR)):
        repo = Repo(root)
    elif not dry:
        repo, result.initialized = Repo.init(root)
    if repo is None:  # a dry run before `mlv init`: a stat cache that is never saved
        hasher = Rehasher(root, None, StatCache(os.path.join(root, MLV_DIR, "tmp", "state.db")),
                          default_jobs(), dvc_cache, progress)
        _convert(root, tracked, pipe, hasher, None, result, force)
        return result
    hasher = Rehasher(root, None if dry else repo.odb, repo.state, repo.jobs, dvc_cache,
                      progress)
    if dry:
        _convert(root, tracked, pipe, hasher, repo, result, force)
        return result
    with repo.lock():
        try:
            _convert(root, tracked, pipe, hasher, repo, result, force)
        finally:
            repo.state.save()
    return result


def _convert(root: str, tracked: list[_Tracked], pipe: _Pipeline | None, hasher: Rehasher,
             repo: Repo | None, result: MigrateResult, force: bool) -> None:
    _convert_pointers(tracked, hasher, repo, result, force)
    if pipe is not None:
        _convert_pipeline(root, pipe, hasher, repo, result, force)
    _convert_remotes(root, repo, result)
