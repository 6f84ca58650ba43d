"""`mlv gc`: free cache space."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from mlv.cli.ui import Progress, echo, find_repo, human_size, plural, print_json
from mlv.errors import UsageError

if TYPE_CHECKING:
    from mlv.api.gc import GcResult


@click.command()
@click.option("-w", "--workspace", is_flag=True, help="Keep what the workspace's pointers use.")
@click.option("-a", "--all-branches", is_flag=True, help="Also keep what every branch tip uses.")
@click.option("-T", "--all-tags", is_flag=True, help="Also keep what every tag uses.")
@click.option("-A", "--all-commits", is_flag=True, help="Also keep what any commit uses.")
@click.option("--dry", is_flag=True, help="Only list what would be deleted.")
@click.option("-c", "--cloud", is_flag=True, help="Collect garbage on a remote instead.")
@click.option("-r", "--remote", "remote_name", help="Remote for --cloud (default: the default).")
@click.option("-f", "--force", is_flag=True,
              help="With --cloud: delete without asking (mlv asks only on a terminal).")
@click.option("--grace", metavar="DURATION",
              help="With --cloud: keep objects newer than this, e.g. 0, 30m, 12h, 2d "
                   "(default: config gc.grace, else 1d).")
@click.option("--json", "as_json", is_flag=True, help="Print what was (or would be) deleted "
              "as JSON.")
def gc(workspace: bool, all_branches: bool, all_tags: bool, all_commits: bool,
       dry: bool, cloud: bool, remote_name: str | None, force: bool, grace: str | None,
       as_json: bool) -> None:
    """Delete cache objects that no pointer in the chosen scope references.

    A scope is required. The workspace is always kept; wider scopes add the
    pointers committed at branch tips, tags or every commit (read from git, no
    checkout needed). With --cloud, the same rule applies to a remote, except
    that objects newer than the grace period (a day) are kept: another clone may
    be pushing them right now.

    \b
    Example:
      mlv gc --all-branches --dry
    """
    from mlv.api.gc import gc as api_gc

    if not (workspace or all_branches or all_tags or all_commits):
        raise UsageError("choose what to keep: --workspace, --all-branches, --all-tags "
                         "or --all-commits",
                         hint="`mlv gc --workspace --dry` shows what only the workspace uses")
    if grace is not None and not (cloud or remote_name):
        raise UsageError("--grace applies to `gc --cloud` only",
                         hint="the local cache has no concurrent pushes to wait for")
    if cloud or remote_name:
        from mlv.api.gc import gc_cloud

        deleting = Progress("deleting", as_json)
        try:
            name, result = gc_cloud(find_repo(), remote_name, all_branches, all_tags,
                                    all_commits, dry, grace=_grace(grace),
                                    confirm=None if force or not sys.stdin.isatty() else _ask,
                                    progress=deleting.callback)
        finally:
            deleting.done()
        if as_json:
            print_json(gc_dict(result, dry, name))
            return
        if result.packs is not None:
            _packed_report(result, dry, name)
            return
        for oid, _ in sorted(result.removed) if dry else []:
            echo(f"would delete {oid}")
        verb = "would delete" if dry else "deleted"
        echo(f"{verb} {plural(len(result.removed), 'object')} on remote '{name}'; "
             f"{result.kept} kept")
        if result.recent:
            echo(f"kept {plural(len(result.recent), 'unreferenced object')} newer than "
                 f"{duration(result.grace)} (another clone may be pushing them; "
                 "`--grace 0` deletes them)")
        if result.unknown_age:
            echo(f"kept {plural(len(result.unknown_age), 'unreferenced object')} whose "
                 "age the remote does not list")
        if result.temps:
            echo(f"deleted {plural(result.temps, 'temp file')} left by interrupted "
                 "pushes (older than a day)")
        return
    progress = Progress("collecting", as_json)
    result = api_gc(find_repo(), all_branches, all_tags, all_commits, dry, progress.callback)
    progress.done()
    if as_json:
        print_json(gc_dict(result, dry, None))
        return
    if dry:
        for oid, size in sorted(result.removed):  # the same order on every disk
            echo(f"would delete {oid} ({human_size(size)})")
        echo(f"would delete {plural(len(result.removed), 'object')}, "
             f"freeing {human_size(result.freed)}; {result.kept} kept")
    else:
        echo(f"deleted {plural(len(result.removed), 'object')}, "
             f"freed {human_size(result.freed)}; {result.kept} kept")


def _packed_report(result: GcResult, dry: bool, name: str) -> None:
    """A format-2 remote: its packs, what this run scheduled and what it deleted."""
    p = result.packs
    assert p is not None
    would = "would " if dry else ""
    echo(f"remote '{name}': {plural(p.packs, 'pack')}, {human_size(p.bytes)}")
    if p.deleted_packs or p.deleted:
        echo(f"{would}delete {plural(p.deleted_packs, 'pack')} "
             f"({human_size(p.deleted_bytes)}), {plural(p.deleted_segments, 'index segment')}"
             f" and {plural(len(p.deleted), 'object')} scheduled at least "
             f"{duration(result.grace)} ago")
    if p.spared:
        echo(f"kept {plural(p.spared, 'scheduled file')} that is in use again")
    if p.stale:
        echo(f"{'would drop' if dry else 'dropping'} {plural(p.stale, 'index record')} of "
             "packs no longer on the remote (deleted by hand): their files are unused or "
             "stored in other packs")
    if p.dead_packs or p.sparse_packs or p.recipes or p.loose:
        parts = [f"{plural(p.dead_packs, 'unused pack')} ({human_size(p.dead_bytes)})"]
        if p.recipes + p.loose:
            parts.append(plural(p.recipes + p.loose, "unused object"))
        line = f"{'would schedule' if dry else 'scheduled'} for deletion: {' and '.join(parts)}"
        if p.sparse_packs:
            line += (f"; {would}{'repack' if dry else 'repacked'} "
                     f"{plural(p.sparse_packs, 'sparse pack')} ({human_size(p.sparse_bytes)}, "
                     f"{human_size(p.repacked_bytes)} of it in use)")
        echo(f"{line}; frees {human_size(p.frees)}")
    elif not p.stale:
        echo("nothing new to schedule")
    waiting = len(p.pending) - (0 if dry or p.written is None else 1)
    if p.written:
        echo(f"deletion is due in {duration(result.grace)}: run `mlv gc --cloud` again "
             "then (another clone may be pushing right now)")
    if waiting > 0:
        echo(f"{plural(waiting, 'earlier schedule')} not due yet (grace "
             f"{duration(result.grace)})")
    if result.temps:
        echo(f"deleted {plural(result.temps, 'temp file')} left by interrupted pushes "
             "(older than a day)")


def gc_dict(result: GcResult, dry: bool, remote: str | None) -> dict[str, object]:
    """What gc deleted (or, with --dry, would delete), for --json."""
    found: dict[str, object] = {
        "remote": remote, "dry": dry,
        "removed": [{"oid": oid, "size": size} for oid, size in result.removed],
        "freed": result.freed, "kept": result.kept}
    if remote is not None:
        found.update(recent=result.recent, unknown_age=result.unknown_age,
                     temps=result.temps, grace=result.grace)
    if result.packs is not None:
        from dataclasses import asdict

        found["packs"] = dict(asdict(result.packs), frees=result.packs.frees)
    return found


def _ask(url: str, count: int) -> bool:
    """On a terminal: the remote may come from a clone's committed config, so show
    where the objects go before they go."""
    return click.confirm(f"delete {plural(count, 'object')} from {url}?", default=False,
                         err=True)


def _grace(text: str | None) -> float | None:
    from mlv.config import parse_duration
    from mlv.errors import ConfigError

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise UsageError(f"--grace: {exc.message}",
                         hint="a unit is needed: s, m, h, d or w (e.g. --grace 12h)") from None


def duration(seconds: float) -> str:
    """`86400` -> `1 day`; the largest unit that divides the duration exactly."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return plural(int(seconds // size), unit)
    return plural(round(seconds), "second")


COMMANDS = [gc]
