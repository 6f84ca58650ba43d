"""Issue 9's second review: the first review's fixes, targets, per-output remotes,
`migrate dvc`'s remotes and stored tracked inputs, attacked the way a stranger's
repository would: built from scratch, cloned, then run as the victim would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git, make_tree, run_mlv
from tests.conftest import one_error as assert_one_error


def _clone(origin: Path, tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(origin), str(victim))
    return victim


def _commit_all(repo: Path, message: str = "attack") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


# ---- mlv migrate dvc: remotes ----------------------------------------------------------------

@pytest.mark.parametrize("url", ["simplecache::s3://bucket/x", "filecache::/tmp/x",
                                 "reference://refs.json", "zip://archive.zip",
                                 "webdav://host/x"])
def test_migrate_skips_a_remote_mlv_would_refuse_in_the_committed_config(
        git_repo: Path, url: str) -> None:
    """`migrate dvc` wrote such a remote into .mlv/config (and made it the default), so
    every later `mlv push`/`pull` failed on a remote mlv itself had written."""
    make_tree(git_repo, {".dvc": {"config": f"[core]\n    remote = x\n"
                                            f"['remote \"x\"']\n    url = {url}\n"}})
    _commit_all(git_repo)
    res = run_mlv(git_repo, "migrate", "dvc")
    assert res.exit_code == 0, res.output
    assert "skipped remote x" in res.stdout and "mlv remote add --local x" in res.stdout
    config = (git_repo / ".mlv" / "config").read_text()
    assert "remote" not in config, config
