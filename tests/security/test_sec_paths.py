"""The one path rule (mlv.paths) that every untrusted path is held to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlv import paths


@pytest.mark.parametrize("rel", [
    "/etc/passwd", "\\\\server\\share", "C:/x", "c:", "../x", "a/../../x", "a\\..\\x",
    ".git/config", "sub/.git/HEAD", ".GIT/hooks/x", ".git./config", ".git /x", "git~1/config",
    ".mlv/config.local", "a/.Mlv/x", "a//b", "./a", "a/./b", "", "evil\nREADME.md",
    "a\x00b", "tab\there",
])
def test_unsafe_paths_are_refused(rel: str) -> None:
    assert paths.problem(rel) is not None


@pytest.mark.parametrize("rel", ["data", "a:b", "d/e.git", "x.mlv", "deep/.github/x", "é/ü"])
def test_ordinary_paths_pass(rel: str) -> None:
    assert paths.problem(rel) is None


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    os.symlink(".git", root / "link")
    os.symlink(str(tmp_path), root / "out")
    (root / "real").mkdir()
    assert "symlink link" in (paths.problem_on_disk(str(root), "link/hooks/x") or "")
    assert paths.problem_on_disk(str(root), "out/x") is not None
    assert paths.problem_on_disk(str(root), "real/new/x") is None
    os.symlink("/etc/passwd", root / "real" / "f")
    assert paths.problem_on_disk(str(root), "real/f") is not None


@pytest.mark.parametrize("rel", [
    ".g\u200cit/hooks/post-checkout", ".git\u200b/config", "\u200c.git/x", "a/.m\ufefflv/x",
    ".git::$INDEX_ALLOCATION/hooks", ".GIT:stream", "a/" * 300 + "b", "x" * 256,
    "d/" + "é" * 200, "/".join(["abcdefghij"] * 420),
])
def test_names_that_some_filesystem_reads_as_git_or_too_long_are_refused(rel: str) -> None:
    assert paths.problem(rel) is not None
    assert paths.first_problem(["ok", rel]) is not None


def test_long_but_legal_paths_pass() -> None:
    rel = "/".join(["n" * 200] * 10)
    assert paths.problem(rel) is None
    assert paths.first_problem(["a", rel]) is None
