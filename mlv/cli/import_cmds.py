"""Data from other repositories, tracked here: `mlv import`, `mlv update`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mlv.cli.ui import Progress, echo, find_repo, human_size, is_quiet, listing, plural

if TYPE_CHECKING:
    from mlv.api.imports import Updated
    from mlv.pointer import ImportSource


def shown_source(source: ImportSource) -> str:
    """`URL PATH at REV (1a2b3c4d)`, the URL without any password."""
    from mlv.cli.ui import printable
    from mlv.remote.base import masked_url

    return printable(f"{masked_url(source.url)} {source.path} at {source.rev or 'HEAD'} "
                     f"({source.commit[:8]})")


@click.command(name="import")
@click.argument("url")
@click.argument("path")
@click.option("-o", "--out", help="Where to put it here (default: PATH's name, in the "
                                  "current folder).")
@click.option("--rev", help="The branch, tag or commit to import (default: HEAD). "
                            "`mlv update` follows a branch to its newest commit.")
@click.option("-r", "--remote", "remote_name",
              help="The source's remote to download from (default: the one it names).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def import_(url: str, path: str, out: str | None, rev: str | None, remote_name: str | None,
            quiet: bool) -> None:
    """Copy a file or folder of another repository here and track it, with its origin.

    URL is any repository git can clone, or a local path; PATH is relative to its
    root, tracked there by mlv or by git. The bytes go into this repository's cache
    (so `mlv push` keeps a copy on this project's remote) and into OUT, and OUT.mlv
    records the source: the URL, PATH, the revision asked for and the commit it named.
    `mlv update OUT` moves it to a newer commit.

    \b
    Example:
      mlv import https://github.com/org/datasets images/cats --rev v2 -o data/cats
      git add data/cats.mlv data/.gitignore && git commit -m "import cats v2"
    """
    from mlv.api.imports import import_path

    progress = Progress("importing", quiet)
    done = import_path(find_repo(), url, path, out, rev, remote_name, progress.callback)
    progress.done()
    if is_quiet(quiet):
        return
    what = plural(done.nfiles, "file") + ", " if done.nfiles is not None else ""
    echo(f"imported {done.path} ({what}{human_size(done.size)}) from "
         f"{shown_source(done.source)}")
    echo(f"to keep it: git add {done.pointer} && git commit")


@click.command()
@click.argument("targets", nargs=-1, type=click.Path())
@click.option("--rev", help="Follow this branch, tag or commit instead of the recorded one "
                            "(and record it).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def update(targets: tuple[str, ...], rev: str | None, quiet: bool) -> None:
    """Move imports to the newest commit of their revision, and fetch what changed.

    TARGETS are imported paths or their .mlv files (default: every import here).
    Each is reported as up to date, or with what changed; its pointer is rewritten
    only when the commit, the revision or the data changed.

    \b
    Example:
      mlv update data/cats
      mlv update data/cats --rev v3
    """
    from mlv.api.imports import update as api_update

    progress = Progress("updating", quiet)
    done = api_update(find_repo(), list(targets), rev, progress=progress.callback)
    progress.done()
    if is_quiet(quiet):
        return
    if not done:
        echo("nothing is imported here; run `mlv import URL PATH` to start")
    for result in done:
        _report(result)


def _report(result: Updated) -> None:
    name = f"{result.path} ({result.pointer})"
    if result.up_to_date:
        echo(f"{name}: up to date with {shown_source(result.new)}")
        return
    if not result.changed:
        echo(f"{name}: the data is unchanged at {shown_source(result.new)}; pointer updated")
        return
    echo(f"{name}: updated to {shown_source(result.new)}")
    if result.added or result.modified or result.deleted:
        echo(f"    {plural(len(result.added), 'file')} added, {len(result.modified)} "
             f"modified, {len(result.deleted)} deleted")
        listing("added:    ", result.added, more="")
        listing("modified: ", result.modified, more="")
        listing("deleted:  ", result.deleted, more="")
    else:
        echo(f"    size {human_size(result.old_size)} -> {human_size(result.new_size)}")


COMMANDS = [import_, update]
