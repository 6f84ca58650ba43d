"""`mlv gc`: free cache space."""

from __future__ import annotations

import click

from mlv.cli.ui import find_repo, human_size, plural
from mlv.errors import UsageError


@click.command()
@click.option("-w", "--workspace", is_flag=True, help="Keep what the workspace's pointers use.")
@click.option("-a", "--all-branches", is_flag=True, help="Also keep what every branch tip uses.")
@click.option("-T", "--all-tags", is_flag=True, help="Also keep what every tag uses.")
@click.option("-A", "--all-commits", is_flag=True, help="Also keep what any commit uses.")
@click.option("--dry", is_flag=True, help="Only list what would be deleted.")
@click.option("-c", "--cloud", is_flag=True, help="Collect garbage on a remote instead.")
@click.option("-r", "--remote", "remote_name", help="Remote for --cloud (default: the default).")
def gc(workspace: bool, all_branches: bool, all_tags: bool, all_commits: bool,
       dry: bool, cloud: bool, remote_name: str | None) -> None:
    """Delete cache objects that no pointer in the chosen scope references.

    A scope is required. The workspace is always kept; wider scopes add the
    pointers committed at branch tips, tags or every commit (read from git, no
    checkout needed). With --cloud, the same rule applies to a remote.

    \b
    Example:
      mlv gc --all-branches --dry
    """
    from mlv.api.gc import gc as api_gc

    if not (workspace or all_branches or all_tags or all_commits):
        raise UsageError("choose what to keep: --workspace, --all-branches, --all-tags "
                         "or --all-commits",
                         hint="`mlv gc --workspace --dry` shows what only the workspace uses")
    if cloud or remote_name:
        from mlv.api.gc import gc_cloud

        name, result = gc_cloud(find_repo(), remote_name, all_branches, all_tags, all_commits,
                                dry)
        for oid, _ in result.removed if dry else []:
            click.echo(f"would delete {oid}")
        verb = "would delete" if dry else "deleted"
        click.echo(f"{verb} {plural(len(result.removed), 'object')} on remote '{name}'; "
                   f"{result.kept} kept")
        if result.temps:
            click.echo(f"deleted {plural(result.temps, 'temp file')} left by interrupted "
                       "pushes (older than a day)")
        return
    result = api_gc(find_repo(), all_branches, all_tags, all_commits, dry)
    if dry:
        for oid, size in result.removed:
            click.echo(f"would delete {oid} ({human_size(size)})")
        click.echo(f"would delete {plural(len(result.removed), 'object')}, "
                   f"freeing {human_size(result.freed)}; {result.kept} kept")
    else:
        click.echo(f"deleted {plural(len(result.removed), 'object')}, "
                   f"freed {human_size(result.freed)}; {result.kept} kept")


COMMANDS = [gc]
