"""`mlv push`, `mlv fetch`, `mlv pull`: share cached data through a remote."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from mlv import fsio, transfer
from mlv.api import checkout as checkout_api
from mlv.api import gaps, scope
from mlv.api import remote as remote_api
from mlv.api.checkout import CheckoutResult
from mlv.index import Index, Item
from mlv.pipeline import runcache
from mlv.remote import Remote
from mlv.repo import Repo
from mlv.transfer import TransferResult
from mlv.workspace import Progress


@dataclass
class Scope:
    targets: list[str] | None = None
    all_branches: bool = False
    all_tags: bool = False
    all_commits: bool = False


def push(repo: Repo, where: Scope, remote: str | None = None, jobs: int | None = None,
         progress: Progress | None = None, verify: bool = False
         ) -> tuple[str, TransferResult]:
    """Upload the objects in scope that the remote lacks. Returns (remote name, result).
    Without `remote`, outputs that mlv.yaml sends to a remote of their own (`remote:
    NAME`) go there, and the rest to the default remote.

    A folder's manifest on the remote vouches for its files, except with `verify`
    (every file of every manifest is asked about) and for manifests this clone has
    seen lacking files (`mlv status --cloud`, a fetch that missed files): those are
    checked, and what is missing is uploaded."""
    def one(target: Remote, own: str | None, idx: Index) -> TransferResult:
        roots, sizes = _in_scope(repo, where, own, idx)
        note = None
        if roots:
            target, note = remote_api.for_push(repo, target)
        dirs = {o for o in roots if o.endswith(".dir")}
        distrust = dirs & gaps.recorded(repo, target)
        if verify or (dirs and _lost_packs(target)):
            distrust = dirs
        result = transfer.push(repo.odb, target, roots, progress, sizes, distrust)
        gaps.clear(repo, target, result.verified)
        _packed_facts(target, result)
        result.notes += [note] if note else []
        return result

    return _each_remote(repo, where, remote, jobs, one)


def fetch(repo: Repo, where: Scope, remote: str | None = None, jobs: int | None = None,
          progress: Progress | None = None) -> tuple[str, TransferResult]:
    """Download the objects in scope that the cache lacks, verifying each one (outputs
    with a remote of their own come from it, as for push)."""
    def one(source: Remote, own: str | None, idx: Index) -> TransferResult:
        _fetch_file_lists(repo, source, where.targets, idx)
        roots, sizes = _in_scope(repo, where, own, idx)
        result = transfer.fetch(repo.odb, source, roots, repo.jobs, progress, sizes)
        _note_gaps(repo, source, roots, result.missing)
        _packed_facts(source, result)
        return result

    return _each_remote(repo, where, remote, jobs, one)


def _each_remote(repo: Repo, where: Scope, remote: str | None, jobs: int | None,
                 one: Callable[[Remote, str | None, Index], TransferResult]
                 ) -> tuple[str, TransferResult]:
    """Run `one` for the remote given, or for the default remote and then for each
    remote that mlv.yaml names for outputs in scope; the results are added up. The
    workspace's index is read once, under the lock, and handed to each run."""
    with repo.lock():
        idx = Index.load(repo)
        items = [] if remote else _items_in_scope(idx, where.targets)
        own = sorted({i.remote for i in items if i.remote})
        everything = where.all_branches or where.all_tags or where.all_commits
        groups: list[tuple[Remote, str | None]] = []
        if remote:  # every output goes there, also those mlv.yaml sends elsewhere
            groups.append((remote_api.resolve(repo, remote, jobs), scope.ANY))
        elif not own or everything or not all(i.remote for i in items):
            groups.append((remote_api.resolve(repo, remote, jobs), None))
        groups += [(remote_api.resolve(repo, name, jobs), name) for name in own]
        names, total = [], TransferResult()
        for target, name in groups:
            _add(total, one(target, name, idx))
            names.append(target.name)
        return ", ".join(names), total


def _items_in_scope(idx: Index, targets: list[str] | None) -> list[Item]:
    """The items in scope, not narrowed to paths inside folders (their file lists may
    still be on the remote), without `push: false` ones."""
    if targets:
        items = [t.item for t in idx.resolve(targets)]
    else:
        items = idx.recorded()
    return [i for i in items if i.push]


def _lost_packs(remote: Remote) -> bool:
    """Whether the index of a format-2 remote lists blobs only in packs that are gone
    (a damaged pack was deleted to repair it): then no manifest there vouches for its
    files, and push checks them all, as with --verify."""
    from mlv.remote.packed import PackedRemote

    return isinstance(remote, PackedRemote) and bool(remote.lost_blobs())


def _packed_facts(remote: Remote, result: TransferResult) -> None:
    """A format-2 remote's notes, and the bytes that actually moved (packs, chunks)."""
    from mlv.remote.packed import PackedRemote

    if isinstance(remote, PackedRemote):
        result.notes += sorted(remote.said)
        result.wire = remote.wire


def _add(total: TransferResult, part: TransferResult) -> None:
    total.moved += part.moved
    total.bytes += part.bytes
    total.already += part.already
    total.failed.update(part.failed)
    total.missing += part.missing
    total.corrupted += part.corrupted
    total.verified += part.verified
    total.refused.update(part.refused)
    total.notes += [n for n in part.notes if n not in total.notes]
    if part.wire is not None:
        total.wire = (total.wire or 0) + part.wire
    total.seconds += part.seconds


def _note_gaps(repo: Repo, remote: Remote, roots: set[str], missing: list[str]) -> None:
    """Files missing from the remote that a manifest there lists: the remote and this
    clone disagree, so the next push checks that manifest's files (no extra request:
    fetch found this out anyway)."""
    lost = set(missing)
    if not lost:
        return
    gaps.record(repo, remote, [
        d for d in sorted(roots) if d.endswith(".dir") and d not in lost
        and any(e.oid in lost for e in transfer.entries_anywhere(repo.odb, remote, d) or [])])


def _in_scope(repo: Repo, where: Scope, remote: str | None, idx: Index
              ) -> tuple[set[str], dict[str, int]]:
    """The object ids in scope (but `push: false` outputs) for the default remote, or
    for the outputs sent to `remote` by name; and the sizes the workspace's records
    give for them."""
    sizes: dict[str, int] = {}
    roots, _ = scope.roots(repo, where.targets, where.all_branches, where.all_tags,
                           where.all_commits, sizes, pushed_only=True, remote=remote,
                           idx=idx)
    return roots, sizes


def _fetch_file_lists(repo: Repo, source: Remote, targets: list[str] | None,
                      idx: Index) -> None:
    """Targets inside tracked folders need the folder's file list to be resolved:
    download those manifests (only them) first."""
    if not targets:
        return
    wanted = sorted({t.item.oid for t in idx.resolve(targets)
                     if t.sub and t.item.oid and not repo.odb.exists(t.item.oid)})
    if wanted:
        transfer.fetch(repo.odb, source, set(wanted), repo.jobs, expand=False)


def pull(repo: Repo, targets: list[str] | None, remote: str | None = None,
         jobs: int | None = None, force: bool = False, progress: Progress | None = None,
         checkout_progress: Progress | None = None
         ) -> tuple[str, TransferResult, CheckoutResult]:
    """fetch, then checkout (each with its own progress callback)."""
    name, fetched = fetch(repo, Scope(targets), remote, jobs, progress)
    done = checkout_api.checkout(repo, targets, force=force, progress=checkout_progress)
    return name, fetched, done


# ---- the run-cache ------------------------------------------------------------------------

def _runs_dir(repo: Repo) -> str:
    return os.path.join(repo.cache_dir, runcache.RUNS)


def _run_objects(runs_dir: str, keys: list[str]) -> set[str]:
    objects: set[str] = set()
    for key in keys:
        outs = runcache.lookup(runs_dir, key) or {}
        objects.update(h.oid for h in outs.values())
    return objects


def push_run_cache(repo: Repo, remote: str | None = None, jobs: int | None = None
                   ) -> tuple[str, TransferResult]:
    """Upload run-cache entries (after the outputs they name) that the remote lacks."""
    target = remote_api.resolve(repo, remote, jobs)
    runs_dir = _runs_dir(repo)
    with repo.lock():
        # Entries whose outputs are gone from the cache (after `mlv gc`) stay local.
        keys = [k for k in runcache.entries(runs_dir)
                if len(repo.odb.existing(sorted(_run_objects(runs_dir, [k])))) ==
                len(_run_objects(runs_dir, [k]))]
        if keys:  # an empty remote gets its format first, as for `mlv push`
            target = remote_api.for_push(repo, target)[0]
        result = transfer.push(repo.odb, target, _run_objects(runs_dir, keys))
        if result.failed or result.missing:
            return target.name, result  # entries only go up once their outputs are there
        runs = target.with_namespace(runcache.RUNS)
        todo = sorted(set(keys) - runs.has(keys))
        failures = runs.upload([(runcache.path_of(runs_dir, k), k) for k in todo], None)
        result.failed.update({k: runs.hide(str(e)) for k, e in failures.items()})
        result.moved += len(todo) - len(failures)
        return target.name, result


def fetch_run_cache(repo: Repo, remote: str | None = None, jobs: int | None = None,
                    objects: bool = True) -> tuple[str, TransferResult]:
    """Download the remote's run-cache entries and (with `objects`) the outputs they
    name."""
    source = remote_api.resolve(repo, remote, jobs)
    runs_dir = _runs_dir(repo)
    with repo.lock():
        runs = source.with_namespace(runcache.RUNS)
        todo = sorted(runs.list_oids() - set(runcache.entries(runs_dir)))
        temps = {}
        for key in todo:
            final = runcache.path_of(runs_dir, key)
            fsio.makedirs(os.path.dirname(final))
            temps[key] = fsio.tmp_name(final)
        failures = runs.download(list(temps.items()), None)
        kept = 0
        refused: dict[str, str] = {}
        for key, tmp in temps.items():
            # A malformed or unsafe entry is not kept (a miss later), and is reported.
            why = None if key in failures else _entry_problem(tmp)
            if key not in failures and why is None:
                fsio.commit(tmp, runcache.path_of(runs_dir, key))
                kept += 1
            else:
                if why is not None:
                    refused[key] = why
                if os.path.lexists(tmp):
                    fsio.remove_file(tmp)
        result = transfer.fetch(repo.odb, source, _run_objects(runs_dir, todo), repo.jobs) \
            if objects else TransferResult()
        result.moved += kept
        result.refused = refused
        return source.name, result


def _entry_problem(path: str) -> str | None:
    """Why a downloaded run-cache entry cannot be kept, or None."""
    try:
        runcache.load(path)
    except (OSError, ValueError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else f"cannot read it: {exc.strerror}"
        return why if len(why) <= 200 else why[:199] + "…"  # a path in it may be long
    return None
