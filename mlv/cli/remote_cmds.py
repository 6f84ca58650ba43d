"""Remotes: `mlv remote …`, `mlv push`, `mlv fetch`, `mlv pull`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mlv.cli.ui import Progress, echo, find_repo, human_size, is_quiet, plural, print_json, show
from mlv.errors import MlvError

if TYPE_CHECKING:
    from mlv.transfer import TransferResult


@click.group()
def remote() -> None:
    """Configure remotes: where `mlv push` and `mlv pull` keep shared data.

    \b
    Example:
      mlv remote add -d store s3://my-bucket/project
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-d", "--default", "default", is_flag=True, help="Make it the default remote.")
@click.option("--local", is_flag=True, help="Write to .mlv/config.local (this machine only).")
@click.option("--create", is_flag=True,
              help="Create the folder of a local remote if it does not exist (on a "
                   "terminal, mlv offers to).")
@click.option("--format", "fmt", type=click.Choice(["1", "2"]),
              help="Storage format of a new remote: 2 keeps small files in packs and big "
                   "files as chunks (the first push sets it up, if the remote is empty); 1 "
                   "one object per file [default: 2].")
def remote_add(name: str, url: str, default: bool, local: bool, create: bool,
               fmt: str | None) -> None:
    """Add a remote: a folder, file:// URL, s3://bucket/path or any fsspec URL.

    A local folder that does not exist is created with --create; on a terminal mlv
    asks; otherwise the remote is added with a warning (push refuses a missing folder).

    \b
    Example:
      mlv remote add -d store /mnt/shared/mlv-store
    """
    import os
    import sys

    from mlv.api import remote as api

    repo = find_repo()
    folder = api.local_folder(repo, url)
    if (folder is not None and not create and not os.path.isdir(folder)
            and sys.stdin.isatty() and sys.stderr.isatty()
            and name not in repo.config.remotes()):
        create = click.confirm(f"folder {folder} does not exist; create it?", default=False,
                               err=True)
    added = api.add(repo, name, url, default=default, local=local, create=create)
    if fmt is not None:
        api.modify(repo, name, "format", fmt, local=local)
    if added.created:
        echo(f"created folder {added.folder}")
    echo(f"added remote '{name}' -> {api.masked('url', url)}"
         + (" (default)" if default else ""))
    if added.missing:
        import shlex

        echo(f"warning: folder {added.folder} does not exist; `mlv push` needs it: create "
             f"it (`mkdir -p {shlex.quote(added.folder or '')}`) or add the remote with "
             "--create", err=True)


@remote.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name -> options.")
def remote_list(as_json: bool) -> None:
    """List remotes with their options (secrets hidden).

    \b
    Example:
      mlv remote list
    """
    from mlv.api import remote as api

    infos = api.listing(find_repo())
    if as_json:
        print_json({info.name: {"default": info.default, **dict(sorted(info.options.items()))}
                    for info in infos})
        return
    if not infos:
        echo("no remotes; add one with `mlv remote add NAME URL`")
    for info in infos:
        mark = " (default)" if info.default else ""
        show(f"{info.name}{mark}\t{info.options.get('url', '')}")
        for key, value in sorted(info.options.items()):
            if key != "url":
                show(f"    {key}: {value}")


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Forget a remote (its data is not touched).

    \b
    Example:
      mlv remote remove old-store
    """
    from mlv.api import remote as api

    api.remove(find_repo(), name)
    echo(f"removed remote '{name}'")


@remote.command("modify")
@click.argument("name")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--local", is_flag=True, help="Write to .mlv/config.local (for secrets).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
def remote_modify(name: str, key: str, value: str | None, local: bool, unset: bool) -> None:
    """Set an option: url, endpoint_url, profile, region, jobs, or (with --local)
    access_key_id, secret_access_key, session_token.

    \b
    Example:
      mlv remote modify store endpoint_url http://127.0.0.1:9000
    """
    from mlv.api import remote as api

    api.modify(find_repo(), name, key, value, local=local, unset=unset)
    shown = api.masked(key, value)
    echo(f"remote '{name}': " + (f"unset {key}" if unset else f"{key} = {shown}"))


@remote.command("default")
@click.argument("name", required=False)
@click.option("--local", is_flag=True, help="Write to .mlv/config.local.")
def remote_default(name: str | None, local: bool) -> None:
    """Show or set the default remote.

    \b
    Example:
      mlv remote default store
    """
    from mlv.api import remote as api

    repo = find_repo()
    if name is None:
        current = api.default_name(repo)
        if current is None:
            raise MlvError("no default remote is set", hint="run `mlv remote default NAME`")
        show(current)
        return
    api.set_default(repo, name, local=local)


def _scope_options(func: Any) -> Any:
    for option in reversed([
        click.option("-a", "--all-branches", is_flag=True, help="Also every branch tip's data."),
        click.option("-T", "--all-tags", is_flag=True, help="Also every tag's data."),
        click.option("-A", "--all-commits", is_flag=True, help="Also every commit's data."),
    ]):
        func = option(func)
    return func


def _common(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print the summary as JSON (no progress).")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="No progress, only errors.")(func)
    func = click.option("-j", "--jobs", type=click.IntRange(1, 1024),
                        help="Transfers in flight at once.")(func)
    func = click.option("-r", "--remote", "remote_name", help="Remote name (default: the "
                        "default remote).")(func)
    return click.argument("targets", nargs=-1, type=click.Path())(func)


def transfer_dict(result: TransferResult) -> dict[str, Any]:
    """A transfer's summary for --json."""
    return {"files": result.moved, "bytes": result.bytes, "already": result.already,
            "failed": dict(sorted(result.failed.items())), "missing": result.missing,
            "corrupted": result.corrupted, "verified": result.verified,
            "refused": dict(sorted(result.refused.items())),
            "seconds": round(result.seconds, 3)} | (
                {} if result.wire is None else {"wire_bytes": result.wire})


REFUSED_SHOWN = 5  # run-cache entries named one by one; the rest are counted


def _warn_refused(name: str, refused: dict[str, str]) -> None:
    for key, why in sorted(refused.items())[:REFUSED_SHOWN]:
        echo(f"warning: run-cache entry {key} from '{name}' ignored: {why}", err=True)
    if len(refused) > REFUSED_SHOWN:
        echo(f"warning: and {len(refused) - REFUSED_SHOWN} more run-cache entries "
             f"from '{name}' ignored", err=True)


def _report(verb: str, name: str, result: TransferResult, quiet: bool) -> None:
    _warn_refused(name, result.refused)
    for note in result.notes:  # e.g. a format-2 remote's skipped index segment
        echo(f"note: {note}", err=True)
    if not quiet:
        if result.moved:
            wire = "" if result.wire is None else \
                f" ({human_size(result.wire)} {'sent' if verb == 'pushed' else 'received'})"
            echo(f"{verb} {plural(result.moved, 'file')}, {human_size(result.bytes)}{wire} "
                 f"in {result.seconds:.1f} s ({name})")
        elif not (result.failed or result.missing or result.corrupted or result.refused):
            echo(f"everything is up to date ({name}: {plural(result.already, 'object')})")
    problems = []
    for oid, reason in sorted(result.failed.items())[:10]:
        echo(f"  failed {oid}: {reason}", err=True)
    if result.failed:
        problems.append(f"{plural(len(result.failed), 'object')} failed")
    if result.corrupted:
        shown = ", ".join(result.corrupted[:5]) + (" …" if len(result.corrupted) > 5 else "")
        problems.append(f"{plural(len(result.corrupted), 'object')} on '{name}' "
                        f"failed verification (bytes do not match the name) and "
                        f"{'was' if len(result.corrupted) == 1 else 'were'} not kept: {shown}")
    if result.missing:
        shown = ", ".join(result.missing[:5]) + (" …" if len(result.missing) > 5 else "")
        where = "the cache" if verb == "pushed" else f"'{name}'"
        problems.append(f"{plural(len(result.missing), 'object')} missing from {where}: {shown}")
    if problems:
        hint = ("run the command again to retry; push missing objects from a machine "
                "that has them" if result.missing or result.failed else
                "delete the damaged objects on the remote (`mlv fsck --remote` lists them), "
                "then `mlv push` from a machine with a good copy")
        raise MlvError("; ".join(problems), hint=hint)


@click.command()
@_common
@_scope_options
@click.option("--run-cache", is_flag=True, help="Also upload the run-cache (past stage runs).")
@click.option("--verify", is_flag=True,
              help="Do not trust folder manifests already on the remote: ask about every "
                   "file they list and upload what is missing.")
def push(targets: tuple[str, ...], remote_name: str | None, jobs: int | None, quiet: bool,
         as_json: bool, all_branches: bool, all_tags: bool, all_commits: bool,
         run_cache: bool, verify: bool) -> None:
    """Upload tracked data that the remote does not have yet.

    TARGETS are tracked paths or .mlv files (default: every pointer in the workspace).
    A folder whose manifest is on the remote counts as pushed (one request); --verify
    checks its files too, and so does a plain push for folders that `mlv status
    --cloud` or a pull found incomplete on the remote.

    \b
    Example:
      mlv push -r store data
    """
    from mlv.api import transfer as api

    quiet = is_quiet(quiet) or as_json
    progress = Progress("pushing", quiet)
    where = api.Scope(list(targets), all_branches, all_tags, all_commits)
    name, result = api.push(find_repo(), where, remote_name, jobs, progress.callback, verify)
    progress.done()
    runs = api.push_run_cache(find_repo(), remote_name, jobs)[1] if run_cache else None
    if as_json:
        print_json({"remote": name, "pushed": transfer_dict(result)}
                   | ({"run_cache": transfer_dict(runs)} if runs else {}))
    if result.verified and not quiet:
        echo(f"checked every file of {plural(len(result.verified), 'folder')} "
             f"on '{name}'")
    _report("pushed", name, result, quiet)
    if runs:
        _report("pushed run-cache:", name, runs, quiet)


@click.command()
@_common
@_scope_options
def fetch(targets: tuple[str, ...], remote_name: str | None, jobs: int | None, quiet: bool,
          as_json: bool, all_branches: bool, all_tags: bool, all_commits: bool) -> None:
    """Download tracked data into the cache (the workspace is not changed).

    \b
    Example:
      mlv fetch --all-branches
    """
    from mlv.api import transfer as api

    quiet = is_quiet(quiet) or as_json
    progress = Progress("fetching", quiet)
    where = api.Scope(list(targets), all_branches, all_tags, all_commits)
    name, result = api.fetch(find_repo(), where, remote_name, jobs, progress.callback)
    progress.done()
    if as_json:
        print_json({"remote": name, "fetched": transfer_dict(result)})
    _report("fetched", name, result, quiet)


@click.command()
@_common
@click.option("-f", "--force", is_flag=True,
              help="Overwrite workspace changes that are not in the cache.")
@click.option("--run-cache", is_flag=True, help="Also download the run-cache (past stage "
              "runs), so `mlv repro` can skip work done elsewhere.")
def pull(targets: tuple[str, ...], remote_name: str | None, jobs: int | None, quiet: bool,
         as_json: bool, force: bool, run_cache: bool) -> None:
    """Fetch tracked data and check it out into the workspace.

    \b
    Example:
      git clone URL && cd repo && mlv pull
    """
    from mlv.api import transfer as api
    from mlv.cli.data_cmds import checkout_dict, report_checkout

    quiet = is_quiet(quiet) or as_json
    runs = None
    if run_cache:
        run_name, runs = api.fetch_run_cache(find_repo(), remote_name, jobs)
        _report("fetched run-cache:", run_name, runs, quiet)
    progress = Progress("pulling", quiet)
    writing = Progress("checking out", quiet)
    problem = None
    try:
        name, fetched, done = api.pull(find_repo(), list(targets), remote_name, jobs, force,
                                       progress.callback, writing.callback)
    finally:
        progress.done()
        writing.done()
    if as_json:
        print_json({"remote": name, "fetched": transfer_dict(fetched),
                    "checkout": checkout_dict(done)}
                   | ({"run_cache": transfer_dict(runs)} if runs else {}))
    try:
        _report("fetched", name, fetched, quiet)
    except MlvError as exc:
        problem = exc
    try:
        report_checkout(done, quiet)
    except MlvError as checkout_problem:
        if problem:  # both: the fetch problem explains the checkout one
            raise MlvError(f"{problem.message}; so {checkout_problem.message}",
                           hint=problem.hint) from None
        raise
    if problem:
        raise problem


COMMANDS = [remote, push, fetch, pull]
