"""docs/getting-started.md works as written: every command in its shell blocks runs, in
order, in one scratch folder (with `mlv` on PATH from the environment the tests run in).

In a ```console block each `$ ` line is a command and the lines after it are its output:
the command must succeed (or fail, when its output shows an `error:` line) and print that
output, once paths under the scratch folder read /tmp/… and times and dates are set
aside. In a ```sh block every line is a command that must succeed.

After a change that alters the outputs, `MLV_UPDATE_DOC=1 pytest tests/test_getting_started.py`
writes the outputs it saw into the page (review the diff).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"
# Installing is what the test environment did already: these lines of the Install
# section are the only ones not run.
NOT_RUN = {"git clone <mlv repository URL> mlv", "cd mlv",
           "pip install .          # or `pip install -e .` for a development install"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\s*$")
LS_LONG = re.compile(r"^([-dlrwxst]{10}) +(\d+) +\S+ +\S+ +(\d+) +\w{3} +\d+ +[\d:]+ (.*)$")


@dataclass
class Step:
    command: str
    line: int  # in the page, for the failure message
    expected: list[str] | None  # None: a ```sh line (no output shown)
    start: int = 0  # output lines in the page: [start, end)
    end: int = 0
    seen: list[str] = field(default_factory=list)  # as printed (scratch folder as /tmp)


def steps(lines: list[str]) -> list[Step]:
    found: list[Step] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence or fence["lang"] not in ("console", "sh"):
            i += 1
            continue
        indent = len(fence["indent"])
        i += 1
        while not FENCE.match(lines[i]):
            text = lines[i][indent:]
            if fence["lang"] == "sh":
                if text.strip() and text.strip() not in NOT_RUN:
                    found.append(Step(text.strip(), i + 1, None))
            elif text.startswith("$ "):
                found.append(Step(text[2:], i + 1, [], i + 1, i + 1))
            else:
                found[-1].expected.append(text)  # type: ignore[union-attr]
                found[-1].end = i + 1
            i += 1
        i += 1
    return found


def normal(text: str) -> str:
    text = re.sub(r" in \d+\.\d s ", " in 0.0 s ", text)
    match = LS_LONG.match(text)
    if match:
        text = f"{match[1]} {match[2]} USER GROUP {match[3]} DATE {match[4]}"
    return text


def run_all(found: list[Step], scratch: Path) -> list[str]:
    """Run the steps in one folder that `cd` changes; returns the problems."""
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "EDITOR": "true", "TMPDIR": str(scratch)}
    cwd = scratch
    where = scratch / ".cwd"
    problems = []
    for step in found:
        command = step.command.replace("/tmp/", f"{scratch}/")
        proc = subprocess.run(
            ["bash", "-c", 'eval "$1" 2>&1; code=$?; pwd > "$2"; exit $code', "-",
             command, str(where)], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=120)
        cwd = Path(where.read_text().strip())
        step.seen = [line.replace(str(scratch), "/tmp") for line in proc.stdout.splitlines()]
        failing = step.expected is not None and any(
            line.startswith("error:") for line in step.expected)
        if (proc.returncode != 0) != failing:
            problems.append(f"line {step.line}: `{step.command}` exited {proc.returncode}:"
                            f"\n{proc.stdout}")
        elif step.expected is not None and list(map(normal, step.seen)) != list(
                map(normal, step.expected)):
            problems.append(f"line {step.line}: `{step.command}` printed\n"
                            + "\n".join(step.seen) + "\nbut the page shows\n"
                            + "\n".join(step.expected))
    return problems


def write_outputs(lines: list[str], found: list[Step]) -> None:
    """Put the outputs seen into the page (MLV_UPDATE_DOC=1)."""
    for step in reversed([s for s in found if s.expected is not None]):
        indent = len(lines[step.start - 1]) - len(lines[step.start - 1].lstrip())
        lines[step.start:step.end] = [" " * indent + line for line in step.seen]
    DOC.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_getting_started_works_as_written(tmp_path: Path) -> None:
    lines = DOC.read_text().splitlines()
    found = steps(lines)
    assert len(found) > 40  # the page's blocks were found
    problems = run_all(found, tmp_path)
    if os.environ.get("MLV_UPDATE_DOC"):
        write_outputs(lines, found)
    assert not problems, "\n\n".join(problems)
