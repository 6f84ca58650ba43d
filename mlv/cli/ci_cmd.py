"""`mlv ci`, and its Markdown report. The report is deterministic: sorted, numbers to a
fixed precision, no times, so it can be diffed and tested."""

from __future__ import annotations

import os
from typing import Any

import click

from mlv.cli import ui
from mlv.errors import StorageError, UsageError

PRECISION = 5  # significant digits of the report's numbers
DATA_ROWS = 50  # data changes listed in the report; the rest are counted


@click.command()
@click.option("--base", metavar="REV",
              help="Compare with this revision [default: the merge-base with the remote's "
                   "default branch].")
@click.option("-r", "--remote", metavar="NAME", help="The remote to check and pull from "
              "[default: each output's own, else the default remote].")
@click.option("--report", "report_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write the Markdown report to FILE (plots beside it).")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON, not Markdown.")
@click.option("--no-repro", is_flag=True, help="Do not reproduce stale stages; list them.")
@click.option("--no-push-check", is_flag=True,
              help="Do not check that HEAD's data is on the remote.")
def ci(base: str | None, remote: str | None, report_file: str | None, as_json: bool,
       no_repro: bool, no_push_check: bool) -> int:
    """Check, reproduce, report and gate: the one line of a CI job.

    Checks that every object HEAD references is on the remote, pulls what the stale
    stages need and reproduces them (restoring from the run-cache what was run before),
    then reports data, params and metrics changes against the base, and checks the
    `gates:` of mlv.yaml. The report goes to stdout, to --report FILE, and to
    $GITHUB_STEP_SUMMARY when it is set.

    Exit codes: 0 everything passed; 1 data not pushed, a stage failed or a gate
    failed; 2 a usage error, a malformed gate or an unknown --base.

    \b
    Example:
      mlv ci --report report.md
    """
    from mlv.api.ci import CiOptions
    from mlv.api.ci import run as run_ci

    plots_dir = None
    if report_file:
        folder = os.path.dirname(os.path.abspath(report_file))
        if not os.path.isdir(folder):
            raise UsageError(f"--report: folder {folder} does not exist",
                             hint="create it first, or write the report elsewhere")
        _check_target(report_file)
        stem = os.path.splitext(os.path.basename(report_file))[0]
        plots_dir = os.path.join(os.path.dirname(os.path.abspath(report_file)),
                                 f"{stem}_plots")
    options = CiOptions(base, remote, not no_repro, not no_push_check, plots_dir)
    result = run_ci(ui.find_repo(), options, _progress)
    text = report(result, os.path.dirname(os.path.abspath(report_file))
                  if report_file else None)
    if report_file:
        _write(report_file, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        _append(summary, text)
    if as_json:
        ui.print_json(facts(result))
    else:
        ui.show(text, nl=False)
    for line in result.failures:
        ui.echo(f"failed: {line}", err=True)
    return 1 if result.failures else 0


def _check_target(report_file: str) -> None:
    from mlv import paths

    refused = paths.target_problem(ui.find_repo().root, report_file)
    if refused:
        raise UsageError(f"--report: {refused}", hint="write the report elsewhere")


def _progress(line: str) -> None:
    """What `mlv ci` is doing, on stderr (stdout is the report); nothing with -q."""
    if not ui.is_quiet():
        ui.show(line, err=True)


def _write(path: str, text: str) -> None:
    from mlv import fsio

    try:
        fsio.atomic_write(path, text.encode())
    except OSError as exc:
        raise fsio.storage_error(exc, path) from None


def _append(path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as fobj:  # GitHub's protocol: append
            fobj.write(text)
    except OSError as exc:
        raise StorageError(f"cannot write $GITHUB_STEP_SUMMARY ({path}): {exc.strerror}"
                           ) from None


# ---- the report ---------------------------------------------------------------------------

def report(result: Any, report_dir: str | None = None) -> str:
    """The Markdown report of a CiResult."""
    lines = [f"# mlv ci: {'failed' if result.failures else 'passed'}", ""]
    lines.append(f"Head `{result.head[:7]}` compared with base "
                 f"`{(result.base or 'none')[:7]}` ({_md(result.base_label)}).")
    lines += ["", "| check | result |", "|---|---|"]
    lines += _summary(result)
    lines += _not_pushed(result)
    lines += _gates(result)
    lines += _table("Metrics", result.metrics)
    lines += _table("Params", result.params)
    lines += _stages(result)
    lines += _data(result)
    lines += _plots(result, report_dir)
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {_md(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _summary(result: Any) -> list[str]:
    rows = []
    push = result.push
    if push is not None:
        if push.missing:
            count = sum(m.objects for m in push.missing)
            rows.append(f"| data pushed to {_md(push.remote)} | ❌ {ui.plural(count, 'object')} "
                        f"missing, of {ui.plural(len(push.missing), 'tracked path')} |")
        else:
            rows.append(f"| data pushed to {_md(push.remote)} | ✅ all "
                        f"{ui.plural(push.paths, 'tracked path')} |")
    counts: dict[str, int] = {}
    for stage in result.stages:
        counts[stage.result] = counts.get(stage.result, 0) + 1
    if counts:
        mark = "❌" if counts.get("failed") else "⚠️" if counts.get("stale") else "✅"
        text = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
        rows.append(f"| pipeline | {mark} stages: {text} |")
    else:
        rows.append("| pipeline | ✅ up to date |")
    if result.gates:
        failed = sum(g.passed is False for g in result.gates)
        skipped = sum(g.passed is None for g in result.gates)
        passed = len(result.gates) - failed - skipped
        text = f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
        rows.append(f"| gates | {'❌' if failed else '✅'} {text} |")
    if result.data is not None:
        rows.append(f"| data added to the remote | {ui.human_size(result.data.added_bytes)} |")
    return rows


def _not_pushed(result: Any) -> list[str]:
    if result.push is None or not result.push.missing:
        return []
    lines = ["", "## Not pushed", "", f"Run `mlv push` where these were added; remote "
             f"{_md(result.push.remote)} lacks them:", "", "| path | recorded in | objects |",
             "|---|---|---|"]
    lines += [f"| {_md(m.path)} | {_md(m.source)} | {m.objects} |" for m in result.push.missing]
    return lines


_RESULT = {True: "✅ passed", False: "❌ failed", None: "➖ skipped"}


def _gates(result: Any) -> list[str]:
    if not result.gates:
        return []
    lines = ["", "## Gates", "", "| gate | value | base | result |", "|---|---|---|---|"]
    for g in result.gates:
        outcome = _RESULT[g.passed] + (f": {_md(g.why)}" if g.why else "")
        lines.append(f"| {_code(g.gate.text)} | {_num(g.value)} | {_num(g.base)} | {outcome} |")
    return lines


def _table(title: str, changes: list[Any]) -> list[str]:
    from mlv.api.show import MISSING

    lines = ["", f"## {title}", ""]
    if not changes:
        return lines + [f"No {title.lower()} changed."]
    lines += ["| file | key | base | head | change |", "|---|---|---|---|---|"]
    for c in sorted(changes, key=lambda c: (c.file, c.key)):
        old = "-" if c.old is MISSING else _num(c.old)
        new = "-" if c.new is MISSING else _num(c.new)
        change = _num(c.change) if c.change is not None else (
            "added" if c.old is MISSING else "deleted" if c.new is MISSING else "changed")
        if c.change is not None and c.change > 0:
            change = "+" + change
        lines.append(f"| {_md(c.file)} | {_md(c.key)} | {old} | {new} | {change} |")
    return lines


def _stages(result: Any) -> list[str]:
    lines = ["", "## Stages", ""]
    if not result.stages:
        return lines + ["Every stage is up to date: nothing ran."]
    lines += ["| stage | result | why |", "|---|---|---|"]
    for s in result.stages:
        error = " ".join(line.strip() for line in s.error.splitlines())
        why = "; ".join(s.why) + (f" (failed: {error})" if error else "")
        lines.append(f"| {_md(s.name)} | {s.result} | {_md(why)} |")
    return lines


def _data(result: Any) -> list[str]:
    data = result.data
    lines = ["", "## Data", ""]
    if data is None or not data.changes:
        return lines + ["No tracked data changed."]
    counts = [f"{len(data.by_status(s))} {s}" for s in ("added", "modified", "deleted",
                                                         "renamed") if data.by_status(s)]
    lines += [f"{', '.join(counts)}; the change adds {ui.human_size(data.added_bytes)} to "
              "the remote.", "", "| path | change | size |", "|---|---|---|"]
    for c in data.changes[:DATA_ROWS]:
        path = _md(c.path) if not c.old_path else f"{_md(c.old_path)} → {_md(c.path)}"
        lines.append(f"| {path} | {c.status} | {_size(c.old_size, c.new_size)} |")
    if len(data.changes) > DATA_ROWS:
        lines.append(f"| … and {len(data.changes) - DATA_ROWS} more | | |")
    if data.unknown:
        lines += ["", "Compared as a whole (their file lists are not in the cache or on "
                  "the remote): " + ", ".join(_md(u) for u in data.unknown)]
    return lines


def _plots(result: Any, report_dir: str | None) -> list[str]:
    if not result.plots:
        return []
    lines = ["", "## Plots", ""]
    for plot_id, path in result.plots:
        rel = os.path.relpath(path, report_dir) if report_dir else path
        lines.append(f"![{_md(plot_id)}]({rel.replace(os.sep, '/').replace(' ', '%20')})")
    return lines


def _size(old: int | None, new: int | None) -> str:
    if old is None and new is not None:
        return ui.human_size(new)
    if new is None and old is not None:
        return ui.human_size(old)
    if old is None or new is None or old == new:
        return ui.human_size(new or 0)
    sign = "+" if new > old else "-"
    return f"{ui.human_size(old)} → {ui.human_size(new)} ({sign}{ui.human_size(abs(new - old))})"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{PRECISION}g}"
    return _md(str(value))


def _code(text: str) -> str:
    """Text from a repository as a code span in a table cell."""
    return "`" + ui.printable(str(text)).replace("`", "'").replace("|", "\\|") + "`"


def _md(text: str) -> str:
    """Text from a repository, safe in a Markdown table cell: no markup, no HTML, no
    control characters, no line breaks."""
    text = ui.md_cell(text)
    for ch in "*_":  # the report shows every name as written, emphasis too
        text = text.replace(ch, "\\" + ch)
    return text


# ---- --json -------------------------------------------------------------------------------

def facts(result: Any) -> dict[str, Any]:
    from mlv.api.show import MISSING

    def change(c: Any) -> dict[str, Any]:
        return {"file": c.file, "key": c.key, "base": None if c.old is MISSING else c.old,
                "head": None if c.new is MISSING else c.new, "change": c.change}

    data = result.data
    return {
        "passed": not result.failures,
        "failures": result.failures,
        "head": result.head,
        "base": {"commit": result.base, "how": result.base_label},
        "push": None if result.push is None else {
            "remote": result.push.remote, "paths": result.push.paths,
            "missing": [{"path": m.path, "source": m.source, "objects": m.objects}
                        for m in result.push.missing]},
        "stages": [{"name": s.name, "result": s.result, "why": s.why, "error": s.error}
                   for s in result.stages],
        "gates": [g.as_dict() for g in result.gates],
        "metrics": [change(c) for c in sorted(result.metrics, key=lambda c: (c.file, c.key))],
        "params": [change(c) for c in sorted(result.params, key=lambda c: (c.file, c.key))],
        "data": None if data is None else {
            "added_bytes": data.added_bytes, "unknown": data.unknown,
            "changes": [dict(c.as_dict(), status=c.status) for c in data.changes]},
        "plots": [{"id": i, "file": p} for i, p in result.plots],
        "fetched": result.fetched,
        "notes": result.notes,
    }


COMMANDS = [ci]
