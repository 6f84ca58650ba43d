"""`mlv plots show` and `mlv plots diff`: plots drawn as SVG files and an index.html."""

from __future__ import annotations

import os
from typing import Any

import click

from mlv.cli.ui import echo, find_repo, print_json, show

DEFAULT_OUT = "mlv_plots"  # as DVC's `dvc_plots`: a folder in the current one


@click.group()
def plots() -> None:
    """Draw the plots mlv.yaml declares as SVG files, with an index.html to view them.

    \b
    Example:
      mlv plots diff main
    """


def _out_option(func: Any) -> Any:
    return click.option("-o", "--out", "out_dir", default=DEFAULT_OUT, show_default=True,
                        type=click.Path(file_okay=False),
                        help="Folder to write the SVG files and index.html into.")(func)


def _json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON: {index, plots: [{id, file, revs}], notes}.")(func)


@plots.command("show")
@click.argument("targets", nargs=-1)
@_out_option
@_json_option
def plots_show(targets: tuple[str, ...], out_dir: str, as_json: bool) -> None:
    """Draw the workspace's plots (all of them, or the TARGETS: plot ids or files).

    \b
    Example:
      mlv plots show && open mlv_plots/index.html
    """
    _render([None], out_dir, list(targets), as_json)


@plots.command("diff")
@click.argument("revs", nargs=-1)
@click.option("--targets", multiple=True, help="A plot id or file to draw (repeatable).")
@_out_option
@_json_option
def plots_diff(revs: tuple[str, ...], targets: tuple[str, ...], out_dir: str,
               as_json: bool) -> None:
    """Draw plots with revisions overlaid: HEAD and the workspace with no REVS, one
    revision and the workspace, or the REVS given. Read from git without checking out.

    \b
    Example:
      mlv plots diff main --targets plots/loss.csv
    """
    from mlv.api.plots import diff_revs

    _render(diff_revs(list(revs)), out_dir, list(targets), as_json)


def _render(revs: list[str | None], out_dir: str, targets: list[str], as_json: bool) -> None:
    from mlv.api.plots import render
    from mlv.plots.table import PlotError

    result = render(find_repo(), revs, out_dir, targets or None)
    if as_json:
        print_json({"index": result.index,
                    "plots": [{"id": p.id, "file": p.file, "revs": p.revs}
                              for p in result.plots],
                    "notes": result.notes})
    else:
        for note in result.notes:
            echo(f"note: {note}", err=True)
    if not result.ok:
        raise PlotError("no plot could be drawn" + (": see the notes above"
                                                    if result.notes and not as_json else ""),
                        hint="fix the plot files named above, or run `mlv repro` to make them")
    if not as_json:
        show(_here(result.index))


def _here(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


COMMANDS = [plots]
