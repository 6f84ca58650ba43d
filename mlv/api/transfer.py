"""`mlv push`, `mlv fetch`, `mlv pull`: share cached data through a remote."""

from __future__ import annotations

from dataclasses import dataclass

from mlv import transfer
from mlv.api import checkout as checkout_api
from mlv.api import remote as remote_api
from mlv.api import scope
from mlv.api.checkout import CheckoutResult
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
         progress: Progress | None = None) -> tuple[str, TransferResult]:
    """Upload the objects in scope that the remote lacks. Returns (remote name, result)."""
    target = remote_api.resolve(repo, remote, jobs)
    with repo.lock():
        roots, _ = scope.roots(repo, where.targets, where.all_branches, where.all_tags,
                               where.all_commits)
        return target.name, transfer.push(repo.odb, target, roots, progress)


def fetch(repo: Repo, where: Scope, remote: str | None = None, jobs: int | None = None,
          progress: Progress | None = None) -> tuple[str, TransferResult]:
    """Download the objects in scope that the cache lacks, verifying each one."""
    source = remote_api.resolve(repo, remote, jobs)
    with repo.lock():
        roots, _ = scope.roots(repo, where.targets, where.all_branches, where.all_tags,
                               where.all_commits)
        return source.name, transfer.fetch(repo.odb, source, roots, repo.jobs, progress)


def pull(repo: Repo, targets: list[str] | None, remote: str | None = None,
         jobs: int | None = None, force: bool = False, progress: Progress | None = None
         ) -> tuple[str, TransferResult, CheckoutResult]:
    """fetch, then checkout."""
    name, fetched = fetch(repo, Scope(targets), remote, jobs, progress)
    done = checkout_api.checkout(repo, targets, force=force)
    return name, fetched, done
