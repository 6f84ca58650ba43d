"""Small rendering helpers shared by the commands."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlv.repo import Repo


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


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """Print one message (a value is printed as text); everything mlv prints goes
    through here (but progress and a stage's own output)."""
    click.echo(printable(message if isinstance(message, str) else str(message)),
               err=err, nl=nl)


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Progress:
    """A counter on stderr, shown only on a terminal and not when quiet."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label = label
        self.enabled = not quiet and sys.stderr.isatty()
        self.count = 0
        self._last = 0.0

    def __call__(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._last > 0.1:
            self._last = now
            click.echo(f"\r{self.label}: {self.count} files", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self._last:
            click.echo("\r\033[K", err=True, nl=False)

    @property
    def callback(self) -> Callable[[int], None] | None:
        return self if self.enabled else None


def listing(title: str, items: list[str], limit: int = 10, indent: str = "    ",
            more: str = " (see `mlv status --json`)") -> None:
    for item in items[:limit]:
        echo(f"{indent}{title}{item}")
    if len(items) > limit:
        echo(f"{indent}… and {len(items) - limit} more{more}")
