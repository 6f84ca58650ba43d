"""`mlv migrate dvc`: convert a DVC repository in place."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

import click

from mlv.cli.ui import Progress, echo, plural
from mlv.errors import MlvError

if TYPE_CHECKING:
    from mlv.api.migrate import MigrateResult


@click.group()
def migrate() -> None:
    """Convert a project from another tool to mlv (today: DVC).

    \b
    Example:
      mlv migrate dvc --dry
    """


_DONE = {"write": "wrote", "add": "added", "skip": "skipped", "skip secret": "skipped secret",
         "skip option": "skipped option"}


@migrate.command("dvc")
@click.option("--dry", is_flag=True, help="Print what would change; write nothing.")
@click.option("-f", "--force", is_flag=True,
              help="Replace mlv.yaml, mlv.lock and pointers that exist and differ.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def dvc(dry: bool, force: bool, quiet: bool) -> None:
    """Convert the DVC repository here to mlv, in place.

    dvc.yaml is copied to mlv.yaml, each .dvc file becomes .mlv pointers and dvc.lock
    becomes mlv.lock (every path rehashed from the workspace, or from DVC's cache when
    the workspace copy is not the one DVC recorded), and .dvc/config remotes become mlv
    remotes in a new location, without secrets. DVC's files are left as they are.

    \b
    Example:
      mlv migrate dvc --dry && mlv migrate dvc && mlv status
    """
    from mlv.api.migrate import migrate as api_migrate

    progress = Progress("rehashing", quiet)
    try:
        result = api_migrate(os.getcwd(), dry=dry, force=force, progress=progress.callback)
    finally:
        progress.done()
    if not quiet:
        _render(result)
    if result.missing:
        more = f" (and {len(result.missing) - 1} more)" if len(result.missing) > 1 else ""
        raise MlvError(
            f"{plural(len(result.missing), 'tracked path')} not converted: {result.missing[0]}"
            f"{more} is in neither the workspace nor DVC's cache",
            hint="run `dvc pull` (or `dvc fetch`), then `mlv migrate dvc` again")


def _render(result: MigrateResult) -> None:
    prefix = "would " if result.dry else ""
    if result.initialized:
        echo(f"initialized mlv in {os.path.join(result.root, '.mlv')}")
    elif result.dry and not os.path.isdir(os.path.join(result.root, ".mlv")):
        echo("would run `mlv init`")
    for step in result.steps:
        verb = step.action if result.dry else _DONE.get(step.action, step.action)
        if step.action in ("unchanged", "kept"):
            prefix_here = ""
        else:
            prefix_here = prefix
        detail = f" ({step.detail})" if step.detail else ""
        echo(f"{prefix_here}{verb} {step.what}{detail}")
    for path in sorted(set(result.ignored)):
        echo(f"updated {path}")
    for note in result.notes:
        echo(f"note: {note}")
    for missing in result.missing:
        echo(f"missing {missing}: not in the workspace nor in DVC's cache; run `dvc pull`")
    if result.dry:
        echo("nothing was written (--dry)")
        return
    written = [s.what for s in result.steps if s.action == "write"] + sorted(set(result.ignored))
    if result.initialized or any(s.action == "add" for s in result.steps):
        written += [".mlv/config", ".mlv/.gitignore"] if result.initialized else [".mlv/config"]
    if result.from_cache:
        echo(f"next: `mlv checkout` restores {plural(len(result.from_cache), 'path')} whose "
             f"bytes came from DVC's cache ({result.from_cache[0]}"
             f"{', …' if len(result.from_cache) > 1 else ''})")
    echo("next: check it with `mlv status` and `mlv repro --dry`")
    if written:
        echo("      then commit: git add " + " ".join(shlex.quote(w) for w in written))
    echo("      DVC's files (dvc.yaml, dvc.lock, *.dvc, .dvc/) are unchanged; remove them "
         "once you are happy: git rm -r -q --ignore-unmatch dvc.yaml dvc.lock '*.dvc' .dvc "
         ".dvcignore")


COMMANDS = [migrate]
