"""The `mlv` command line: parse, call the API, render, map errors to exit codes."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import traceback

import click

from mlv import __version__
from mlv.cli import (
    ci_cmd,
    data_cmds,
    fsck_cmd,
    gc_cmd,
    import_cmds,
    migrate_cmd,
    pipeline_cmds,
    plots_cmd,
    read_cmds,
    remote_cmds,
    repo_cmds,
    ui,
)
from mlv.errors import MlvError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="mlv",
                      message="%(prog)s %(version)s")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing but errors (and what a command exists to show).")
@click.option("-v", "--verbose", is_flag=True, help="Print more: a line per file changed.")
def cli(quiet: bool, verbose: bool) -> None:
    """Version datasets and model files next to your code, the git way.

    Git keeps the code and small `.mlv` pointer files; mlv keeps the bytes in a
    content-addressed cache and restores them on demand.

    \b
    Example:
      mlv init && mlv add data && git add data.mlv .gitignore
    """
    ui.set_verbosity(-1 if quiet else 1 if verbose else 0)


for module in (repo_cmds, data_cmds, pipeline_cmds, remote_cmds, gc_cmd, fsck_cmd,
               migrate_cmd, plots_cmd, ci_cmd, read_cmds, import_cmds):
    for command in module.COMMANDS:
        ui.verbosity_options(command)
        cli.add_command(command)


def _crash_log() -> str:
    fd, path = tempfile.mkstemp(prefix="mlv-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fobj:
        traceback.print_exc(file=fobj)
    return path


BUG_EXIT = 3  # an unexpected exception: a bug in mlv


def _interrupted(exc: BaseException | None) -> int:
    """Print `aborted` and return the exit code for Ctrl-C (130), or for SIGTERM or
    SIGHUP (128 + the signal's number), which `mlv repro` handles like Ctrl-C."""
    signum = getattr(exc, "signum", signal.SIGINT)
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    ui.echo(f"aborted{name}", err=True)
    return 128 + signum


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: known errors print one line; unexpected ones write a crash log.

    Exit codes (docs/commands.md): 0 success, 1 an error the user can fix, 2 a usage
    error, 3 an unexpected error (a bug), 130 Ctrl-C, 143 SIGTERM and 129 SIGHUP."""
    try:
        code = cli.main(args=argv, prog_name="mlv", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MlvError as exc:
        ui.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            ui.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt into Abort
        sys.exit(_interrupted(exc.__cause__))
    except KeyboardInterrupt as exc:
        sys.exit(_interrupted(exc))
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("MLV_DEBUG"):
            raise
        log = _crash_log()
        lines = str(exc).strip().splitlines()  # one line: the traceback is in the log
        detail = f": {lines[0]}" if lines else ""
        ui.echo(f"error: unexpected {type(exc).__name__}{detail}", err=True)
        ui.echo(f"hint: this is a bug in mlv; the traceback is in {log}. Please report "
                "it; rerun with `MLV_DEBUG=1 mlv …` to see the traceback here", err=True)
        sys.exit(BUG_EXIT)
    sys.exit(0)
