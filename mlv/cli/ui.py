"""Small rendering helpers shared by the commands."""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlv.repo import Repo
    from mlv.workspace import Progress as ProgressCallback


def find_repo() -> Repo:
    """The repository around the current folder (imported only when a command runs)."""
    from mlv.repo import Repo

    return Repo.find()


# Control characters but tab and newline, DEL and the C1 range: a name or a value from a
# clone (a pointer named `t\x1b]0;…`, a stage's cmd) must not drive the terminal.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with each control character shown as a `\\u` escape of four hex digits
    (ESC as `\\u001b`), which JSON reads back as the same character, so `--json`
    output stays valid."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def md_cell(text: str) -> str:
    """Text from a repository, safe in a Markdown table cell: no link, no image (which a
    rendered pull-request comment would fetch), no HTML, no code span, no control
    character, no line break. Emphasis (`*`, `_`) is left as written: `new_key` stays."""
    text = printable(str(text)).replace("\n", " ").replace("\t", " ")
    for ch in "\\`[]<|":
        text = text.replace(ch, "\\" + ch)
    return text


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """Print one message (a value is printed as text); everything mlv prints goes
    through here (but progress and a stage's own output). With -q, only stderr."""
    if err or not is_quiet():
        show(message, err=err, nl=nl)


def show(message: object = "", err: bool = False, nl: bool = True) -> None:
    """Print what the command exists to show (a value, a listing, JSON), even with -q."""
    click.echo(printable(message if isinstance(message, str) else str(message)),
               err=err, nl=nl)


def print_json(data: object) -> None:
    """`data` as indented JSON on stdout (also with -q)."""
    import json

    show(json.dumps(data, indent=2, ensure_ascii=False))


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Progress:
    """Progress of a long operation on stderr: files and bytes done of the total, rate
    and ETA. On a terminal one line is redrawn in place (at most 10 times a second,
    and while a single big file moves); otherwise a plain line every PLAIN_EVERY
    seconds of a long run; nothing when quiet. Pass `progress.callback` to the api
    (it matches `mlv.workspace.Progress`) and call `done()` at the end."""

    PLAIN_EVERY = 10.0
    REDRAW_EVERY = 0.1

    def __init__(self, label: str, quiet: bool = False) -> None:
        import threading

        self.label = label
        self.quiet = is_quiet(quiet)
        self.tty = not self.quiet and sys.stderr.isatty()
        self.files = self.total_files = 0
        self.nbytes = self.total_bytes = 0
        self.wire = 0
        self.start = time.monotonic()
        self._last = 0.0 if self.tty else self.start
        self._drawn = False
        self._lock = threading.Lock()

    def __call__(self, files: int = 0, nbytes: int = 0, *, total_files: int = 0,
                 total_bytes: int = 0, wire: int = 0) -> None:
        with self._lock:
            self.files += files
            self.nbytes += nbytes
            self.wire += wire
            self.total_files += total_files
            self.total_bytes += total_bytes
            now = time.monotonic()
            if now - self._last < (self.REDRAW_EVERY if self.tty else self.PLAIN_EVERY):
                return
            self._last = now
            self._show(now)

    def _show(self, now: float) -> None:
        if self.tty:
            click.echo(f"\r{self.line(now)}\033[K", err=True, nl=False)
            self._drawn = True
        else:
            click.echo(self.line(now), err=True)

    def line(self, now: float) -> str:
        """`pushing: 3/10 files, 1.2 GiB/3.0 GiB, 85.0 MiB/s, ETA 0:21`; with a remote
        that stores packs and chunks also `(20.1 MiB on the wire)` after the bytes."""
        files = f"{self.files}/{self.total_files}" if self.total_files else f"{self.files}"
        parts = [f"{files} files"]
        rate = self.nbytes / max(now - self.start, 1e-3)
        if self.nbytes or self.total_bytes:
            done = human_size(self.nbytes)
            parts.append(f"{done}/{human_size(self.total_bytes)}"
                         if self.total_bytes >= self.nbytes else done)
            if self.wire:
                parts[-1] += f" ({human_size(self.wire)} on the wire)"
            parts.append(f"{human_size(rate)}/s")
            if self.total_bytes > self.nbytes and self.nbytes:
                left = round((self.total_bytes - self.nbytes) / rate)  # 2:59:59.99… is 3:00:00
                parts.append(f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
                             if left >= 3600 else f"ETA {left // 60}:{left % 60:02d}")
        return f"{self.label}: {', '.join(parts)}"

    def done(self) -> None:
        """Draw the last state, then clear the line (on a terminal)."""
        if self.tty and (self.files or self.nbytes):
            self._show(time.monotonic())
        if self._drawn:
            click.echo("\r\033[K", err=True, nl=False)

    @property
    def callback(self) -> ProgressCallback | None:
        return None if self.quiet else self


# -q/--quiet and -v/--verbose: given before the command (`mlv -q push`) or after it
# (`mlv push -q`); one mlv run is one command, so one setting per process.
_verbosity = {"level": 0}


def set_verbosity(level: int) -> None:
    """-1 quiet, 0 normal, 1 verbose; a later flag wins over an earlier one."""
    _verbosity["level"] = level


def is_quiet(flag: bool = False) -> bool:
    return flag or _verbosity["level"] < 0


def is_verbose(flag: bool = False) -> bool:
    return flag or _verbosity["level"] > 0


def _on_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        set_verbosity(-1)


def _keep_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    _on_quiet(ctx, param, value)
    return value


def _on_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        set_verbosity(1)


def verbosity_options(command: click.Command) -> None:
    """Give `command` (and its subcommands) -q/--quiet and -v/--verbose where it does
    not declare them itself; a command's own -q (`status -q`) keeps its meaning."""
    names = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for param in command.params:
        if "-q" in getattr(param, "opts", []) and param.callback is None:
            param.callback = _keep_quiet  # the command's own -q quiets its output too
    if "-q" not in names:
        command.params.append(click.Option(
            ["-q", "--quiet"], is_flag=True, expose_value=False, callback=_on_quiet,
            help="Print nothing but errors (and what the command exists to show)."))
    if "-v" not in names:
        command.params.append(click.Option(
            ["-v", "--verbose"], is_flag=True, expose_value=False, callback=_on_verbose,
            help="Print more: a line per file changed."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            verbosity_options(sub)


def listing(title: str, items: list[str], limit: int = 10, indent: str = "    ",
            more: str = " (see `mlv status --json`)") -> None:
    for item in items[:limit]:
        echo(f"{indent}{title}{item}")
    if len(items) > limit:
        echo(f"{indent}… and {len(items) - limit} more{more}")
