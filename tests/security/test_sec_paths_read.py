"""Every path read from a committed file is held to the one rule (mlv/paths.py) where it
is read: pointers, mlv.yaml (deps, outs, metrics, plots, wdir, params files), mlv.lock,
and the destinations of `mlv move` and `mlv add`.

The attacks are built from scratch and, where it applies, run as a victim would:
`git clone` the malicious repository, then `mlv pull` in a subprocess.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import add_remote, git, make_tree, read_tree, run_mlv, xxh

HEADER = "# mlv pointer: `mlv checkout` restores this path from the cache\n"


def assert_one_error(res, *needles: str) -> str:  # type: ignore[no-untyped-def]
    """Exit 1, exactly one `error:` line holding every needle, no traceback."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    for needle in needles:
        assert needle in errors[0], res.stderr
    return errors[0]


def pointer_text(path: str, oid: str, size: str = "6", extra: str = "") -> str:
    return f"{HEADER}outs:\n- path: {path}\n  xxh128: {oid}\n  size: {size}\n{extra}"


def tree_of(*roots: Path) -> dict[str, bytes]:
    return {f"{root}/{rel}": data for root in roots for rel, data in read_tree(root).items()
            if "/.mlv/tmp/" not in f"/{rel}"}


# ---- pointers ---------------------------------------------------------------------------

OID = xxh(b"alpha\n")

POINTER_CASES = {
    # A mapping with keys of two types used to crash in `sorted(unknown)`.
    "mixed-top-keys": (f"{HEADER}1: x\nouts:\n- path: bad\n  xxh128: {OID}\n  size: 6\n",
                       ["bad.mlv:2: 1: unknown field"]),
    "mixed-out-keys": (pointer_text("bad", OID, extra="  7: x\n"),
                       ["bad.mlv:6: outs[0].7: unknown field"]),
    "negative-size": (pointer_text("bad", OID, size="-6"), ["outs[0].size", "whole number"]),
    "path-number": (pointer_text("12", OID), ["outs[0].path", "string"]),
    "path-list": (pointer_text("[a]", OID), ["outs[0].path", "string"]),
    "hash-number": (pointer_text("bad", "12"), ["outs[0].xxh128", "hex"]),
    "exec-no": (pointer_text("bad", OID, extra='  exec: "no"\n'), ["outs[0].exec", "true or"]),
    "duplicate": (pointer_text("bad", OID) + f"- path: bad\n  xxh128: {OID}\n  size: 6\n",
                  ["bad.mlv:6: outs[1].path", "twice"]),
    "overlap": (pointer_text("bad", OID) + f"- path: bad/x\n  xxh128: {OID}\n  size: 6\n",
                ["bad.mlv:6: outs[1].path", "overlap"]),
    "newline": (pointer_text('"evil\\nREADME.md"', OID), ["outs[0].path", "newline"]),
    "upper-git": (pointer_text(".GIT/hooks/x", OID), ["outs[0].path", ".git"]),
    "git-trailing-dot": (pointer_text(".git./hooks/x", OID), ["outs[0].path", ".git"]),
    "nested-git": (pointer_text("sub/.git/config", OID), ["outs[0].path", ".git"]),
    "short-name": (pointer_text("git~1/config", OID), ["outs[0].path", ".git"]),
    "drive": (pointer_text("C:/x", OID), ["outs[0].path", "absolute"]),
}


@pytest.mark.parametrize("text,needles", POINTER_CASES.values(), ids=POINTER_CASES.keys())
def test_malformed_pointer_gives_one_line(mlv, mlv_repo: Path, text: str,
                                          needles: list[str]) -> None:
    (mlv_repo / "bad.mlv").write_text(text, encoding="utf-8")
    before = tree_of(mlv_repo)
    for args in (["status"], ["checkout"], ["checkout", "--force"]):
        assert_one_error(mlv(*args, cwd=mlv_repo), *needles)
    assert tree_of(mlv_repo) == before
    assert not (mlv_repo / ".git" / "hooks" / "x").exists()


def test_pointer_in_a_folder_named_like_git_is_refused(mlv, mlv_repo: Path) -> None:
    # The pointer's own folder is part of the path: `.Git/x.mlv` would write into .Git/x.
    make_tree(mlv_repo, {".Git": {"x.mlv": pointer_text("x", OID)}})
    assert_one_error(mlv("checkout", ".Git/x.mlv", cwd=mlv_repo), "outs[0].path", ".git")


def test_name_with_colon_is_added_pushed_and_pulled(mlv_repo: Path, request: pytest.FixtureRequest,
                                                    tmp_path: Path) -> None:
    # `a:b` was added, then refused as an absolute path by every later command.
    add_remote(mlv_repo, "local", request, tmp_path)
    make_tree(mlv_repo, {"a:b": "colon", "c:d": {"e.txt": "inside"}})
    for args in (("add", "a:b", "c:d"), ("status",), ("push",)):
        res = run_mlv(mlv_repo, *args)
        assert res.exit_code == 0, res.output
    git(mlv_repo, "add", ".")
    git(mlv_repo, "commit", "-qm", "colon names")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(clone))
    res = run_mlv(clone, "pull")
    assert res.exit_code == 0, res.output
    assert (clone / "a:b").read_text() == "colon"
    assert (clone / "c:d" / "e.txt").read_text() == "inside"
    res = run_mlv(clone, "status")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
