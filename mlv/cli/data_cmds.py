"""Tracking data: `mlv add`, `status`, `checkout`, `remove`, `move`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlv.api.checkout import CheckoutResult
    from mlv.api.imports import ImportCheck
    from mlv.repo import Repo

from mlv.cli.ui import (
    Progress,
    echo,
    find_repo,
    human_size,
    is_quiet,
    is_verbose,
    listing,
    md_cell,
    plural,
    print_json,
    show,
)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def add(paths: tuple[str, ...], quiet: bool) -> None:
    """Track files or folders: store their bytes in the cache and write PATH.mlv.

    The workspace copy stays in place; PATH is added to the .gitignore beside it.
    Run it again after changing the data to record the new version.

    \b
    Example:
      mlv add data/images models/model.pkl
    """
    from mlv.api.add import add as api_add

    quiet = is_quiet(quiet)
    repo = find_repo()
    progress = Progress("hashing", quiet)
    results = api_add(repo, list(paths), progress.callback)
    progress.done()
    if quiet:
        return
    for r in results:
        what = plural(r.nfiles, "file") + ", " if r.nfiles is not None else ""
        verb = "added" if r.changed else "unchanged"
        echo(f"{verb} {r.path} ({what}{human_size(r.size)}) -> {_here(r.pointer)}")
    changed = [r for r in results if r.changed]
    if changed and repo.has_scm:
        files = [r.pointer for r in changed] + [r.gitignore for r in changed if r.gitignore]
        shown = [_here(f) for f in dict.fromkeys(files)]
        sep = "-- " if any(p.startswith("-") for p in shown) else ""
        echo(f"to track the change with git, run: git add {sep}"
             + " ".join(_quote(p) for p in shown))


def _here(path: str) -> str:
    """A path relative to the current folder, for commands the user can paste."""
    import os

    return os.path.relpath(path)


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)


@click.command()
@click.argument("targets", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing; exit 1 if anything differs (for scripts and CI).")
@click.option("-c", "--cloud", is_flag=True, help="Compare the cache with a remote instead.")
@click.option("-r", "--remote", "remote_name", help="Remote for --cloud (default: the default).")
@click.option("--imports", is_flag=True,
              help="Also show imports whose source has moved on (asks each source).")
def status(targets: tuple[str, ...], as_json: bool, quiet: bool, cloud: bool,
           remote_name: str | None, imports: bool) -> None:
    """Show tracked paths whose workspace copy differs from their pointer.

    TARGETS are tracked paths or their .mlv files (default: all). With --cloud,
    show which tracked data is not pushed, not fetched, or missing everywhere.
    With --imports, also fetch each import's source and show those whose recorded
    commit is no longer the newest of their revision (without it, no network).

    \b
    Example:
      mlv status data
    """
    from mlv.api.status import advice
    from mlv.api.status import status as api_status

    quiet = is_quiet(quiet)
    if cloud or remote_name:
        _cloud_status(list(targets), as_json, quiet, remote_name)
        return

    repo = find_repo()
    report = api_status(repo, list(targets))
    result = report.changed
    stale: list[tuple[str, list[str]]] = []
    pipeline = False
    if not targets:
        from mlv.api.repro import stale_stages

        pipeline = bool(report.index and report.index.has_pipeline)
        if pipeline:
            stale = stale_stages(repo, report.index)
    behind = _import_checks(repo, list(targets)) if imports else []
    if quiet:
        raise click.exceptions.Exit(1 if result or stale or behind else 0)
    if as_json:
        shown: dict[str, object] = {s.path: s.as_dict() for s in result}
        if pipeline:
            shown["stages"] = {name: why for name, why in stale}
        if imports:
            shown["imports"] = {c.path: {"pointer": c.pointer, "recorded": c.source.commit,
                                         "current": c.current, "problem": c.problem}
                                for c in behind}
        echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    for name, why in stale:
        echo(f"stage {name}: {'; '.join(why)}")
    for check in behind:
        _report_import(repo, check)
    if not report.tracked and not pipeline:
        echo("nothing is tracked yet; run `mlv add PATH` to start")
        return
    if not result and not stale and not behind:
        echo("everything is up to date")
        return
    for s in result:
        echo(f"{s.path} ({s.pointer}): {', '.join(s.changes)}")
        listing("added:    ", s.added)
        listing("modified: ", s.modified)
        listing("deleted:  ", s.deleted)
        if s.missing_objects:
            echo(f"    {plural(s.missing_objects, 'object')} not in the cache")
    assert report.index is not None
    for line in advice(repo, report.index, report, stale):
        echo(line)


def _import_checks(repo: Repo, targets: list[str]) -> list[ImportCheck]:
    """The imports (among `targets`, if any) that are behind their source, or whose
    source cannot be read."""
    from mlv.api.imports import check_imports

    return [c for c in check_imports(repo, targets or None) if c.outdated or c.problem]


def _report_import(repo: Repo, check: ImportCheck) -> None:
    from mlv.cli.import_cmds import shown_source

    name = f"{check.path} ({check.pointer})"
    if check.problem:
        echo(f"{name}: cannot check the import: {check.problem}")
    else:
        assert check.current is not None
        echo(f"{name}: import is behind: {check.source.rev or 'HEAD'} is now at "
             f"{check.current[:8]}, not {shown_source(check.source)}; run "
             f"`mlv update {_quote(_here(repo.root + '/' + check.path))}`")


@click.command()
@click.argument("targets", nargs=-1, type=click.Path())
@click.option("-f", "--force", is_flag=True,
              help="Overwrite or delete workspace files even if their changes are not cached.")
@click.option("--relink", is_flag=True, help="Re-create every link per cache.type.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")
def checkout(targets: tuple[str, ...], force: bool, relink: bool, quiet: bool,
             as_json: bool) -> None:
    """Make the workspace match the pointers (run it after `git checkout`).

    Files whose current content is not in the cache are never overwritten or
    deleted without --force.

    \b
    Example:
      git checkout v1.0 && mlv checkout
    """
    from mlv.api.checkout import checkout as api_checkout

    progress = Progress("checking out", quiet)
    result = api_checkout(find_repo(), list(targets), force=force, relink=relink,
                          progress=progress.callback)
    progress.done()
    if as_json:
        print_json(checkout_dict(result))
    report_checkout(result, quiet or as_json)


def checkout_dict(result: CheckoutResult) -> dict[str, object]:
    """What a checkout changed, for --json."""
    return {"added": result.added, "modified": result.modified, "deleted": result.deleted,
            "relinked": result.relinked, "bytes": result.bytes, "missing": result.missing}


def _cloud_status(targets: list[str], as_json: bool, quiet: bool,
                  remote_name: str | None) -> None:
    from mlv.api.status import cloud_status

    report = cloud_status(find_repo(), targets, remote_name)
    if quiet:
        raise click.exceptions.Exit(1 if report.changed else 0)
    if as_json:
        echo(json.dumps({s.path: s.as_dict() for s in report.changed}, indent=2,
                        ensure_ascii=False))
        return
    if not report.changed:
        echo(f"cache and remote '{report.remote}' are in sync "
             f"({plural(report.tracked, 'tracked path')})")
        return
    for s in report.changed:
        parts = []
        if s.not_pushed:
            parts.append(f"{plural(s.not_pushed, 'object')} not pushed")
        if s.not_fetched:
            parts.append(f"{plural(s.not_fetched, 'object')} not fetched")
        if s.missing:
            parts.append(f"{plural(s.missing, 'object')} missing from both")
        echo(f"{s.path} ({s.pointer}): {', '.join(parts)}")
    if report.incomplete:
        n = len(report.incomplete)
        echo(f"{plural(n, 'folder manifest')} on '{report.remote}' "
             f"{'lists' if n == 1 else 'list'} files the remote does not have; the next "
             "`mlv push` checks those files and uploads what is missing")
    echo(f"run `mlv push` to upload, `mlv pull` to download (remote '{report.remote}')")


def report_checkout(result: CheckoutResult, quiet: bool) -> None:
    """Print what checkout changed; raise when data was missing from the cache."""
    from mlv.errors import ObjectMissingError

    if not is_quiet(quiet):
        if is_verbose():  # a line per file; by default only the counts (20,000 files …)
            for label, paths in (("A", result.added), ("M", result.modified),
                                 ("D", result.deleted)):
                for path in paths:
                    echo(f"{label} {path}")
        counts = [f"{len(result.added)} added", f"{len(result.modified)} modified",
                  f"{len(result.deleted)} deleted"]
        if result.relinked:
            counts.append(f"{result.relinked} relinked")
        if result.added or result.modified:
            counts.append(f"{human_size(result.bytes)} written")
        if any((result.added, result.modified, result.deleted, result.relinked)):
            echo(", ".join(counts))
        elif not result.missing:
            echo("workspace already matches the pointers")
    if result.missing:
        shown = ", ".join(result.missing[:10]) + (" …" if len(result.missing) > 10 else "")
        raise ObjectMissingError(
            f"{plural(len(result.missing), 'path')} could not be restored because the "
            f"cache does not have their data: {shown}",
            result.missing,
            hint="run `mlv pull` to fetch them from a remote",
        )


@click.command()
@click.argument("targets", nargs=-1, required=True, type=click.Path())
@click.option("--outs", is_flag=True, help="Also delete the tracked data from the workspace.")
def remove(targets: tuple[str, ...], outs: bool) -> None:
    """Stop tracking: delete TARGET.mlv and its .gitignore entry.

    The data stays in the workspace (and the cache) unless --outs is given.

    \b
    Example:
      mlv remove data.mlv
    """
    from mlv.api.track import remove as api_remove

    for r in api_remove(find_repo(), list(targets), outs=outs):
        extra = f" and {', '.join(r.outs_removed)}" if r.outs_removed else ""
        echo(f"removed {r.pointer}{extra}")


@click.command()
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
def move(src: str, dst: str) -> None:
    """Move a tracked path, keeping its pointer and .gitignore entries right.

    \b
    Example:
      mlv move data/raw data/raw-2024
    """
    from mlv.api.track import move as api_move

    moved = api_move(find_repo(), src, dst)
    echo(f"moved {moved.src} -> {moved.dst} ({moved.pointer})")


@click.command("diff")
@click.argument("a_rev", required=False)
@click.argument("b_rev", required=False)
@click.option("-t", "--targets", multiple=True, type=click.Path(),
              help="Only these tracked paths (a path, a folder, a stage output or name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--md", is_flag=True, help="Print a Markdown table.")
def diff(a_rev: str | None, b_rev: str | None, targets: tuple[str, ...], as_json: bool,
         md: bool) -> None:
    """Show tracked data added, modified, deleted or renamed between A_REV (default
    HEAD) and B_REV (default: the workspace), down to files inside tracked folders.

    Revisions are read from git without checking anything out.

    \b
    Example:
      mlv diff main
    """
    from mlv.api.datadiff import diff as api_diff

    result = api_diff(find_repo(), a_rev, b_rev, list(targets))
    if as_json:
        print_json({status: [c.as_dict() for c in result.by_status(status)]
                    for status in ("added", "modified", "deleted", "renamed")}
                   | ({"unknown": result.unknown} if result.unknown else {}))
        return
    if md:
        show("| status | path | old size | new size | change |\n|---|---|---|---|---|")
    for c in result.changes:
        what = f"{c.old_path} -> {c.path}" if c.old_path else c.path
        old = human_size(c.old_size) if c.old_size is not None else "-"
        new = human_size(c.new_size) if c.new_size is not None else "-"
        change = _size_change(c.old_size or 0, c.new_size or 0)
        if md:
            show(f"| {c.status} | {md_cell(what)} | {old} | {new} | {change} |")
        else:
            show(f"{c.status + ':':<10}{what}  ({old} -> {new}, {change})")
    for path in result.unknown:
        echo(f"note: the file list of {path} is in neither the cache nor the default remote; "
             "it is compared as a whole", err=True)
    if not result.changes and not md:
        show(f"no tracked data changed between {result.old} and {result.new}")
    elif not md:
        counts = ", ".join(f"{len(result.by_status(s))} {s}"
                           for s in ("added", "modified", "deleted", "renamed"))
        total = sum((c.new_size or 0) - (c.old_size or 0) for c in result.changes)
        show(f"{counts}; size {_size_change(0, total) if total else '±0 B'}")


def _size_change(old: int, new: int) -> str:
    delta = new - old
    return ("+" if delta >= 0 else "-") + human_size(abs(delta))


COMMANDS = [add, status, checkout, remove, move, diff]
