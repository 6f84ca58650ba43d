"""`mlv fsck`: check that stored objects still hash to their names."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click

from mlv.cli.ui import Progress, echo, find_repo, plural, print_json
from mlv.errors import MlvError, UsageError

if TYPE_CHECKING:
    from mlv.api.fsck import FsckResult

MAX_LISTED = 20  # objects listed under a damaged part; the rest are counted


def _percent(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        pct = float(value.rstrip("%"))
    except ValueError:
        pct = -1
    if not 0 < pct <= 100:
        raise UsageError(f"--sample takes a percentage between 0 and 100, like 10%, not {value}")
    return pct


@click.command()
@click.option("-r", "--remote", "remote_name", help="Check a remote instead of the cache "
              "(downloads and re-hashes its objects).")
@click.option("--sample", help="With --remote: check only this share of objects, e.g. 10%.")
@click.option("-j", "--jobs", type=click.IntRange(1, 1024), help="Downloads in flight at once.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fsck(remote_name: str | None, sample: str | None, jobs: int | None, quiet: bool,
         as_json: bool) -> None:
    """Re-hash every object and report those whose bytes do not match their name.

    Exit 1 if any object is damaged; each is listed with the pointers that use it.

    \b
    Example:
      mlv fsck --remote store --sample 5%
    """
    from mlv.api.fsck import fsck as api_fsck

    pct = _percent(sample)
    if pct is not None and remote_name is None:
        raise UsageError("--sample needs --remote")
    progress = Progress("checking", quiet or as_json)
    result = api_fsck(find_repo(), remote_name, pct, jobs, progress.callback)
    progress.done()
    if as_json:
        found = {"where": result.where, "checked": result.checked,
                 "damaged": dict(sorted(result.bad.items())),
                 "lists_damaged": result.vouching}
        if result.packed:  # a format-2 remote: its packs, index and recipes too
            found["damaged_parts"] = [{"kind": p.kind, "key": p.key, "problems": p.problems,
                                       "objects": p.objects, "repair": p.repair}
                                      for p in result.parts]
            found["leftovers"] = result.leftovers
        print_json(found)
    else:
        _show(result)
    if not result.ok:
        raise MlvError(_verdict(result), hint=_hint(result, remote_name))
    if not as_json:
        echo(f"{plural(result.checked, 'object')} in the {result.where}: all good")


def _show(result: FsckResult) -> None:
    for part in result.parts:
        echo(f"damaged {part.kind} {part.key}: {'; '.join(part.problems)}")
        for oid, users in sorted(part.objects.items())[:MAX_LISTED]:
            echo(f"  affects {oid}" + (f" (used by {', '.join(users[:5])})" if users else ""))
        if len(part.objects) > MAX_LISTED:
            echo(f"  and {plural(len(part.objects) - MAX_LISTED, 'more object')}")
        if part.repair:
            echo(f"  to repair: {part.repair}")
    shown = {oid for part in result.parts for oid in part.objects}
    for oid, users in sorted(result.bad.items()):
        if oid in shown:
            continue
        echo(f"damaged {oid}" + (f" (used by {', '.join(users[:5])})" if users else ""))
    for oid in result.vouching:
        echo(f"lists-damaged {oid} (a folder manifest that lists a damaged object)")
    for key, why in sorted(result.leftovers.items()):
        echo(f"leftover {key}: {why}")


def _hint(result: FsckResult, remote_name: str | None) -> str:
    if remote_name is None:
        return ("delete the damaged objects from the cache, then `mlv fetch` them or "
                "`mlv add` the data again")
    push = "run `mlv push` from a clone that has the affected files in its cache"
    repaired = {o for part in result.parts if part.repair for o in part.objects}
    if any(not part.repair for part in result.parts) or set(result.bad) - repaired:
        return ("delete the damaged objects and the manifests that list them "
                "(`lists-damaged`) on the remote, then `mlv push` from a machine with a "
                "good copy")
    from mlv.remote.packcheck import PUSH_AGAIN

    # a pack still on the remote must be deleted first; one that is gone needs a push
    doomed = [part.key for part in result.parts if part.repair != PUSH_AGAIN]
    if not doomed:
        return push
    named = doomed[0] if len(doomed) == 1 else f"the {len(doomed)} damaged packs above"
    return f"delete {named} from remote '{remote_name}', then {push}: it stores them " \
           "again in new packs"


def _verdict(result: FsckResult) -> str:
    kinds = Counter(part.kind for part in result.parts)
    named = [plural(n, f"damaged {kind}") for kind, n in sorted(kinds.items())]
    if result.bad or not named:
        named.append(plural(len(result.bad), "damaged object"))
    return f"{', '.join(named)} in the {result.where} (of {result.checked} checked)"


COMMANDS = [fsck]
