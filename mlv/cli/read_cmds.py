"""Commands that read versioned data, of this or another repository: `mlv ls`, `mlv get`."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import click

from mlv.cli.ui import human_size, print_json, show

if TYPE_CHECKING:
    from mlv.api.revtree import Entry

_SCP_LIKE = re.compile(r"[\w.-]+@[\w.-]+:")  # git@host:path


def _is_repository(arg: str) -> bool:
    """Whether a lone argument of `mlv ls` names a repository rather than a path in the
    current one: `.`, a URL, `user@host:path`, or a folder that is a git repository's
    root (a work tree, or a bare repository)."""
    if arg == "." or "://" in arg or _SCP_LIKE.match(arg):
        return True
    if not os.path.isdir(arg):
        return False
    if os.path.exists(os.path.join(arg, ".git")):
        return True
    from mlv import scm

    return scm.is_bare(arg)


def _relative(entry: Entry, top: str) -> str:
    """An entry's path as `mlv ls` shows it: relative to the folder listed."""
    if entry.path == top:  # a file listed by its own path
        return entry.name
    return entry.path[len(top) + 1:] if top else entry.path


def _line(entry: Entry, name: str) -> str:
    mark = "mlv" if entry.mlv else ""
    size = human_size(entry.size) if entry.size is not None else ""
    name = name.replace("\n", "\\u000a")  # one line per entry: a name cannot forge one
    return f"{mark:<3} {size:>10}  {name}{'/' if entry.is_dir else ''}"


def _as_json(entry: Entry, name: str) -> dict[str, Any]:
    return {"path": name, "type": entry.type, "size": entry.size, "mlv": entry.mlv,
            "kind": entry.kind, "oid": entry.oid, "exec": entry.exec,
            "tracked_by": entry.tracked_by}


@click.command(name="ls")
@click.argument("url", required=False)
@click.argument("path", required=False)
@click.option("--rev", help="The branch, tag or commit to list (default: HEAD).")
@click.option("-R", "--recursive", is_flag=True, help="List the files in every folder below.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def ls(url: str | None, path: str | None, rev: str | None, recursive: bool,
       as_json: bool) -> None:
    """List a repository's files at a revision, marking those mlv tracks.

    URL is any repository git can clone, or a local path; without it (or with `.`)
    the current repository. PATH is relative to the repository's root. A lone argument
    is the URL when it is `.`, a URL or a git repository's folder, else the PATH.
    Only pointers, mlv.lock and file lists are read, never the data.

    \b
    Example:
      mlv ls data
      mlv ls https://github.com/org/project data --rev v1.2 -R
    """
    from mlv.api.revtree import normalize
    from mlv.api.source import open_source

    if path is None and url is not None and not _is_repository(url):
        url, path = None, url
    source = open_source(url, rev)
    entries = source.walk(path or "", recursive=recursive, dirs=not recursive)
    top = normalize(path or "") or ""
    named = [(e, _relative(e, top)) for e in entries]
    if as_json:
        print_json([_as_json(e, name) for e, name in named])
        return
    if named:  # one write: 20,000 lines cost more through echo one by one than listing
        show("\n".join(_line(entry, name) for entry, name in named))


@click.command(name="get")
@click.argument("url")
@click.argument("path")
@click.option("-o", "--out", help="Where to put it (default: PATH's last name, here); an "
              "existing folder receives it inside.")
@click.option("--rev", help="The branch, tag or commit to copy from (default: HEAD).")
@click.option("-j", "--jobs", type=click.IntRange(1, 1024), help="Transfers in flight at once.")
@click.option("-r", "--remote", "remote_name",
              help="The source's remote to download from (default: its default remote).")
@click.option("-f", "--force", is_flag=True, help="Replace an existing OUT.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, only errors.")
def get(url: str, path: str, out: str | None, rev: str | None, jobs: int | None,
        remote_name: str | None, force: bool, quiet: bool) -> None:
    """Copy a file or folder of a repository into the current folder, untracked.

    URL is any repository git can clone, a local path, or `.` for the current one.
    PATH is relative to its root: a file or folder git or mlv tracks, or a file
    inside a tracked folder. The data comes from the source's cache or its remote;
    nothing here is tracked (no pointer, no cache entry). The .mlv pointer files
    themselves are not copied.

    \b
    Example:
      mlv get https://github.com/org/project data --rev v1.2 -o data-v1.2
    """
    from mlv.api import get as api
    from mlv.cli.ui import Progress, echo, is_quiet, plural

    quiet = is_quiet(quiet)
    fetching = Progress("fetching", quiet)
    copying = Progress("copying", quiet)
    try:
        result = api.get(url, path, out, rev, jobs, remote_name, force,
                         progress=copying.callback, fetch_progress=fetching.callback)
    finally:
        fetching.done()
        copying.done()
    if result.skipped:
        shown = ", ".join(result.skipped[:5]) + (" …" if len(result.skipped) > 5 else "")
        echo(f"note: left out {len(result.skipped)} symlink(s) or submodule(s) that git "
             f"tracks: {shown}", err=True)
    echo(f"got {plural(result.files, 'file')}, {human_size(result.bytes)} into "
         f"{result.where}")


COMMANDS = [ls, get]
