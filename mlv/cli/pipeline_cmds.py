"""Pipelines: `mlv stage`, `repro`, `commit`, `dag`, `params show`, `metrics show`."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import click

from mlv.cli.ui import echo, find_repo, md_cell, print_json, show
from mlv.errors import MlvError


@click.group()
def stage() -> None:
    """Define pipeline stages in mlv.yaml.

    \b
    Example:
      mlv stage add -n train -d src/train.py -d data -o model.pkl python src/train.py
    """


@stage.command("add", context_settings={"ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
@click.option("-n", "--name", required=True, help="Stage name.")
@click.option("-d", "--deps", multiple=True, help="A dependency (file or folder).")
@click.option("-o", "--outs", multiple=True, help="An output, cached and git-ignored.")
@click.option("-O", "--outs-no-cache", multiple=True, help="An output kept in git, not cached.")
@click.option("-p", "--params", multiple=True,
              help="Param keys: train.lr, or file.yaml:key (comma-separated allowed).")
@click.option("-m", "--metrics", multiple=True, help="A metrics file, cached.")
@click.option("-M", "--metrics-no-cache", multiple=True, help="A metrics file kept in git.")
@click.option("--plots", multiple=True, help="A plots file.")
@click.option("-w", "--wdir", help="Working folder of the command (relative to the repo).")
@click.option("--always-changed", is_flag=True, help="Run the stage on every repro.")
@click.option("-f", "--force", is_flag=True, help="Replace a stage of the same name.")
@click.argument("command", nargs=-1, required=True)
def stage_add(name: str, deps: tuple[str, ...], outs: tuple[str, ...],
              outs_no_cache: tuple[str, ...], params: tuple[str, ...],
              metrics: tuple[str, ...], metrics_no_cache: tuple[str, ...],
              plots: tuple[str, ...], wdir: str | None, always_changed: bool, force: bool,
              command: tuple[str, ...]) -> None:
    """Add a stage to mlv.yaml (comments and order in the file are kept).

    \b
    Example:
      mlv stage add -n prepare -d raw -o prepared python prepare.py
    """
    from mlv.api.stage import NewStage, add_stage

    keys = []
    for item in params:
        file, sep, rest = item.rpartition(":")
        keys += [f"{file}:{k}" if sep else k for k in rest.split(",") if k]
    import shlex

    cmd = command[0] if len(command) == 1 else shlex.join(command)
    new = NewStage(name, cmd, list(deps), list(outs), list(outs_no_cache), keys,
                   list(metrics), list(metrics_no_cache), list(plots), wdir, always_changed)
    add_stage(find_repo(), new, force=force)
    echo(f"added stage {name} to mlv.yaml; run `mlv repro {name}` to run it")


@stage.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: stage name -> its fields.")
def stage_list(as_json: bool) -> None:
    """List the stages with their commands.

    \b
    Example:
      mlv stage list
    """
    from mlv.api.stage import list_stages

    stages = list_stages(find_repo())
    if as_json:
        print_json({st.name: {
            "cmd": st.cmd, "wdir": st.wdir, "deps": st.deps, "params": st.params,
            "outs": [{"path": o.path, "kind": o.kind, "cache": o.cache, "persist": o.persist}
                     for o in st.outs],
            "always_changed": st.always_changed, "frozen": st.frozen, "desc": st.desc}
            for st in stages})
        return
    if not stages:
        echo("no stages; add one with `mlv stage add`")
    for st in stages:
        outs = ", ".join(o.path for o in st.outs)
        show(f"{st.name}\t{st.cmd}" + (f"\t-> {outs}" if outs else "")
             + ("\t(frozen)" if st.frozen else "") + (f"\t# {st.desc}" if st.desc else ""))


@click.group()
def artifacts() -> None:
    """List the artifacts mlv.yaml declares (its top-level `artifacts:`).

    \b
    Example:
      mlv artifacts list
    """


@artifacts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: name -> its fields.")
def artifacts_list(as_json: bool) -> None:
    """List each declared artifact: its path, type, description and the version mlv
    records for it.

    \b
    Example:
      mlv artifacts list --json
    """
    from mlv.api.stage import list_artifacts

    found = list_artifacts(find_repo())
    if as_json:
        print_json({a.name: {"path": a.path, "type": a.type, "desc": a.desc,
                             "labels": a.labels, "xxh128": a.oid, "size": a.size}
                    for a in found})
        return
    if not found:
        echo("no artifacts; declare them under `artifacts:` in mlv.yaml")
    for a in found:
        version = f"{a.oid[:12]} ({a.size} bytes)" if a.oid else "not recorded"
        show(f"{a.name}\t{a.path}\t{a.type or '-'}\t{version}"
             + (f"\t# {a.desc}" if a.desc else ""))


class _Printer:
    """Stage output arrives from several threads: print whole lines, one at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            click.echo(line)  # the stage's own output, as the command wrote it
            sys.stdout.flush()


@click.command()
@click.argument("targets", nargs=-1)
@click.option("--dry", is_flag=True, help="Print what would run and why; run nothing.")
@click.option("-f", "--force", is_flag=True, help="Run the selected stages even if up to date.")
@click.option("-s", "--single-item", is_flag=True, help="Only the named stages, not upstream.")
@click.option("--downstream", is_flag=True, help="The named stages and everything after them.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Independent stages run in parallel.")
@click.option("-k", "--keep-going", is_flag=True, help="Run what does not depend on a failure.")
@click.option("--pull", is_flag=True, help="Fetch cached outputs from the default remote first.")
@click.option("--no-run-cache", is_flag=True, help="Always run; never restore from the "
              "run-cache.")
def repro(targets: tuple[str, ...], dry: bool, force: bool, single_item: bool, downstream: bool,
          jobs: int, keep_going: bool, pull: bool, no_run_cache: bool) -> None:
    """Run the stages whose inputs changed, and everything downstream of them.

    TARGETS are stage names (default: every stage).

    \b
    Example:
      mlv repro -j 4
    """
    from mlv.api.repro import ReproOptions
    from mlv.api.repro import repro as api_repro

    options = ReproOptions(list(targets), dry, force, single_item, downstream, jobs,
                           keep_going, pull, not no_run_cache)
    the_plan, result = api_repro(find_repo(), options, _Printer())
    if dry:
        if not the_plan.order:
            echo("everything is up to date; nothing would run")
        for name in the_plan.order:
            echo(f"would run {name}: {'; '.join(the_plan.reasons[name])}")
        return
    if result is None:
        echo("everything is up to date")
        return
    for name, why in result.failed.items():
        echo(f"error: stage {name} failed: {why}", err=True)
    if result.skipped:
        echo(f"not run because an upstream stage failed: {', '.join(result.skipped)}",
             err=True)
    if result.stopped:
        echo(f"not started after the failure (use -k to keep going): "
             f"{', '.join(result.stopped)}", err=True)
    done = len(result.ran) + len(result.restored)
    summary = f"{done} stage(s) done"
    if result.restored:
        summary += f" ({len(result.restored)} restored from the run-cache)"
    echo(summary)
    if result.failed:
        names = ", ".join(result.failed)
        raise MlvError(f"stage{'s' if len(result.failed) > 1 else ''} {names} failed",
                       hint="fix the command, then run `mlv repro` again (finished stages "
                            "are kept)")


@click.command()
@click.argument("targets", nargs=-1)
def commit(targets: tuple[str, ...]) -> None:
    """Record the current deps and outs of stages in mlv.lock without running them.

    \b
    Example:
      mlv commit train
    """
    from mlv.api.repro import commit as api_commit

    for name in api_commit(find_repo(), list(targets)):
        echo(f"committed stage {name}")


@click.command()
@click.option("--dot", "fmt", flag_value="dot", help="Graphviz DOT.")
@click.option("--mermaid", "fmt", flag_value="mermaid", help="Mermaid flowchart.")
@click.option("--json", "fmt", flag_value="json",
              help="JSON: {\"nodes\": [...], \"edges\": [{\"from\": A, \"to\": B}]}.")
@click.option("--outs", is_flag=True, help="Show outputs instead of stages.")
def dag(fmt: str | None, outs: bool) -> None:
    """Show the pipeline graph.

    \b
    Example:
      mlv dag --mermaid
    """
    from mlv.api.stage import dag_text

    show(dag_text(find_repo(), fmt or "text", outs))


def _number(value: Any, precision: int) -> str:
    """A value for a table: floats to `precision` significant digits."""
    if isinstance(value, float):
        return f"{value:.{precision}g}"
    if value is None:
        return "-"
    return str(value)


def _show(what: str, revs: tuple[str, ...], all_branches: bool, all_tags: bool,
          as_json: bool, md: bool, precision: int) -> None:
    from mlv.api.show import WORKSPACE, flatten
    from mlv.api.show import show as api_show

    shown = api_show(find_repo(), what, list(revs), all_branches, all_tags)
    several = len(shown) > 1
    if as_json:
        data: dict[str, Any] = {s.label: s.files for s in shown} if several else shown[0].files
        show(json.dumps(data, indent=2, default=str, ensure_ascii=False))
        return
    flat = [{f: {k: v for k, v in flatten(d).items()
                 if isinstance(v, (int, float, str, bool)) or v is None}
             for f, d in s.files.items()} for s in shown]
    rows: dict[tuple[str, str], list[str]] = {}
    for i, tree in enumerate(flat):
        for file, values in tree.items():
            for key, value in values.items():
                rows.setdefault((file, key), ["-"] * len(flat))[i] = _number(value, precision)
    notes = [f"{file} at {s.label}: {why}" for s in shown for file, why in s.errors.items()
             if s.label != WORKSPACE or why != "does not exist"]
    if not rows:
        show(f"no {what} found")
    else:
        header = ["file", "key"] + ([s.label for s in shown] if several else ["value"])
        table = [header] + [[f, k] + v for (f, k), v in rows.items()]
        if md:
            show("| " + " | ".join(map(md_cell, header)) + " |\n|" + "---|" * len(header))
            for row in table[1:]:
                show("| " + " | ".join(map(md_cell, row)) + " |")
        else:
            body = table if several else table[1:]
            width = [max(len(r[i]) for r in body) for i in range(len(header) - 1)]
            for row in body:
                show("  ".join(c.ljust(w) for c, w in zip(row, width)) + "  " + row[-1])
    for note in notes:
        echo(f"note: {note}", err=True)


def _show_options(func: Any) -> Any:
    for option in reversed([
        click.option("--json", "as_json", is_flag=True,
                     help="Print JSON, nested as in the files (by revision with --rev/-a/-T)."),
        click.option("--md", is_flag=True, help="Print a Markdown table."),
        click.option("--rev", "revs", multiple=True, metavar="REV",
                     help="Also show this git revision (repeatable)."),
        click.option("-a", "--all-branches", is_flag=True, help="Also show every branch."),
        click.option("-T", "--all-tags", is_flag=True, help="Also show every tag."),
        click.option("--precision", type=click.IntRange(1, 17), default=5, show_default=True,
                     help="Significant digits of numbers in tables."),
    ]):
        func = option(func)
    return func


@click.group()
def params() -> None:
    """Show the params stages use.

    \b
    Example:
      mlv params show
    """


@params.command("show")
@_show_options
def params_show(as_json: bool, md: bool, revs: tuple[str, ...], all_branches: bool,
                all_tags: bool, precision: int) -> None:
    """Show every param a stage declares, with its value in the workspace (and at the
    revisions asked for, read from git without checking them out).

    \b
    Example:
      mlv params show --rev main --rev v1.0
    """
    _show("params", revs, all_branches, all_tags, as_json, md, precision)


def _diff(what: str, a_rev: str | None, b_rev: str | None, as_json: bool, md: bool,
          every: bool, precision: int) -> None:
    from mlv.api.show import MISSING
    from mlv.api.show import diff as api_diff

    a_label, b_label, changes = api_diff(find_repo(), what, a_rev, b_rev, every)
    if as_json:
        data: dict[str, dict[str, Any]] = {}
        for c in changes:
            data.setdefault(c.file, {})[c.key] = c.as_dict()
        show(json.dumps(data, indent=2, default=str, ensure_ascii=False))
        return
    if not changes:
        show(f"no {what} changed between {a_label} and {b_label}")
        return

    def cell(value: Any) -> str:
        return "-" if value is MISSING else _number(value, precision)

    header = ["file", "key", a_label, b_label, "change"]
    rows = [[c.file, c.key, cell(c.old), cell(c.new),
             _number(c.change, precision) if c.change is not None else
             ("added" if c.old is MISSING else "deleted" if c.new is MISSING else "")]
            for c in changes]
    if md:
        show("| " + " | ".join(map(md_cell, header)) + " |\n|" + "---|" * len(header))
        for row in rows:
            show("| " + " | ".join(map(md_cell, row)) + " |")
        return
    table = [header] + rows
    width = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for row in table:
        show("  ".join(c.ljust(w) for c, w in zip(row, width)) + "  " + row[-1])


def _diff_options(func: Any) -> Any:
    for option in reversed([
        click.argument("a_rev", required=False),
        click.argument("b_rev", required=False),
        click.option("--json", "as_json", is_flag=True,
                     help="Print JSON: {FILE: {KEY: {old, new, diff}}}."),
        click.option("--md", is_flag=True, help="Print a Markdown table."),
        click.option("--all", "every", is_flag=True, help="Show unchanged keys too."),
        click.option("--precision", type=click.IntRange(1, 17), default=5, show_default=True,
                     help="Significant digits of numbers in tables."),
    ]):
        func = option(func)
    return func


@params.command("diff")
@_diff_options
def params_diff(a_rev: str | None, b_rev: str | None, as_json: bool, md: bool, every: bool,
                precision: int) -> None:
    """Show the params that differ between two revisions: A_REV (default HEAD) and
    B_REV (default: the workspace), read from git without checking anything out.

    \b
    Example:
      mlv params diff main
    """
    _diff("params", a_rev, b_rev, as_json, md, every, precision)


@click.group()
def metrics() -> None:
    """Show metrics written by stages.

    \b
    Example:
      mlv metrics show --md
    """


@metrics.command("show")
@_show_options
def metrics_show(as_json: bool, md: bool, revs: tuple[str, ...], all_branches: bool,
                 all_tags: bool, precision: int) -> None:
    """Show every metric from the metrics files (stages' and top-level), as dotted keys,
    in the workspace (and at the revisions asked for).

    \b
    Example:
      mlv metrics show -T
    """
    _show("metrics", revs, all_branches, all_tags, as_json, md, precision)


@metrics.command("diff")
@_diff_options
def metrics_diff(a_rev: str | None, b_rev: str | None, as_json: bool, md: bool, every: bool,
                 precision: int) -> None:
    """Show the metrics that differ between two revisions: A_REV (default HEAD) and
    B_REV (default: the workspace), with the change of each number.

    \b
    Example:
      mlv metrics diff main --md
    """
    _diff("metrics", a_rev, b_rev, as_json, md, every, precision)


COMMANDS = [stage, artifacts, repro, commit, dag, params, metrics]
