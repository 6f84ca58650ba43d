"""Issue 9's second review: the first review's fixes, targets, per-output remotes,
`migrate dvc`'s remotes and stored tracked inputs, attacked the way a stranger's
repository would: built from scratch, cloned, then run as the victim would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import clone, commit_all, git, make_tree, run_mlv
from tests.conftest import one_error as assert_one_error

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
    commit_all(git_repo)
    res = run_mlv(git_repo, "migrate", "dvc")
    assert res.exit_code == 0, res.output
    assert "skipped remote x" in res.stdout and "mlv remote add --local x" in res.stdout
    config = (git_repo / ".mlv" / "config").read_text()
    assert "remote" not in config, config


def test_migrate_skips_a_dvc_remote_whose_name_mlv_refuses(git_repo: Path) -> None:
    """`['remote "a b"']` in .dvc/config stopped migrate with a usage error (exit 2) after
    it had written the pointers, .gitignore and .mlv/."""
    make_tree(git_repo, {".dvc": {"config": "['remote \"a b\"']\n    url = s3://b/x\n"},
                         "f": "hi\n",
                         "f.dvc": "outs:\n- md5: 764efa883dda1e11db47671c4a3bbd9e\n  size: 3\n"
                                  "  hash: md5\n  path: f\n"})
    commit_all(git_repo)
    res = run_mlv(git_repo, "migrate", "dvc")
    assert res.exit_code == 0, res.output
    assert "skipped remote a b" in res.stdout
    assert (git_repo / "f.mlv").exists()


# ---- mlv repro: storing a changed tracked input ----------------------------------------------

@pytest.mark.parametrize("link", ["outside", ".git/config"])
def test_repro_never_stores_a_file_a_clones_symlink_leads_to(
        mlv_repo: Path, tmp_path: Path, link: str) -> None:
    """A clone commits `data/x -> ~/secret` inside the tracked folder `data`: `mlv repro`
    (whose stage is only `true`) stored the secret in the cache and rewrote data.mlv
    before any command ran, ready for `mlv push` to upload it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-KEY\n")
    make_tree(mlv_repo, {"data": {"a": "hi\n"},
                         "mlv.yaml": 'stages:\n  s:\n    cmd: "true"\n    deps: [data]\n'})
    assert run_mlv(mlv_repo, "add", "data").exit_code == 0
    (mlv_repo / "data" / "x").symlink_to(secret if link == "outside" else "../.git/config")
    commit_all(mlv_repo)
    git(mlv_repo, "add", "-f", "data/x")
    commit_all(mlv_repo, "the link")
    victim = clone(mlv_repo, tmp_path)
    pointer_text = (victim / "data.mlv").read_text()
    assert_one_error(run_mlv(victim, "repro"), "data/x", "symlink")
    assert (victim / "data.mlv").read_text() == pointer_text
    assert not (victim / "mlv.lock").exists()
    stored = [p.read_bytes() for p in (victim / ".mlv" / "cache").rglob("*") if p.is_file()]
    assert not any(b"SECRET" in s or b"[core]" in s for s in stored)


# ---- revisions read from git objects: memory ---------------------------------------------------

def test_many_big_pointers_at_a_revision_are_not_all_held_in_memory(
        mlv_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pointer blob is at most 1 MiB, but a tag's tree with 400 of them (4 MiB of git
    objects) made `metrics show -T` and `gc -A` read all 400 MiB at once (850 MB of
    memory; 10,000 of them, 20 GB)."""
    from mlv import scm
    from mlv.api import scope
    from mlv.index import Index
    from mlv.repo import Repo

    git(mlv_repo, "checkout", "-q", "-b", "evil")
    for i in range(8):
        make_tree(mlv_repo, {f"f{i}.mlv": f"outs:\n- path: f{i}\n  xxh128: {i:x}{'a' * 31}\n"
                                          f"  size: 1\n# {str(i) * 1_000_000}\n"})
    commit_all(mlv_repo)
    git(mlv_repo, "tag", "v1")
    git(mlv_repo, "checkout", "-q", "main")
    victim = clone(mlv_repo, tmp_path)
    monkeypatch.setattr(scm, "BLOB_BATCH", 3 << 20, raising=False)
    held: list[int] = []
    real = scm.read_blobs

    def spy(root: str, blob_ids: list[str]) -> dict[str, bytes]:
        found = real(root, blob_ids)
        held.append(sum(len(data) for data in found.values()))
        return found

    monkeypatch.setattr(scm, "read_blobs", spy)
    repo = Repo(str(victim))
    assert len(Index.load(repo, "v1").items) == 8
    found, _ = scope.roots(repo, all_tags=True)
    assert len(found) == 8
    assert held and max(held) <= 3 << 20, held


# ---- mlv.yaml: bounds ------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["cmd", "deps"])
def test_a_list_named_whole_by_every_stage_counts_toward_the_text_bound(
        mlv_repo: Path, tmp_path: Path, field: str) -> None:
    """`cmd: ${big}` (a list, joined) or `deps: ${big}` in a foreach of 10,000 stages: a
    whole-value ${…} was not counted, so a 220 KB mlv.yaml made 3,000 copies of a 200 KB
    list (600 MB; 10,000 stages of a 16 MiB list, 160 GB)."""
    big = ", ".join(f"d{i:05}{'x' * 94}" for i in range(2000))
    items = ", ".join(str(i) for i in range(10_000))
    body = "cmd: ${big}" if field == "cmd" else "cmd: echo\n      deps: ${big}"
    (mlv_repo / "mlv.yaml").write_text(f"vars:\n- big: [{big}]\nstages:\n  s:\n"
                                       f"    foreach: [{items}]\n    do:\n      {body}\n")
    commit_all(mlv_repo)
    victim = clone(mlv_repo, tmp_path)
    assert_one_error(run_mlv(victim, "status", timeout=60), "characters")


# ---- per-output remotes ------------------------------------------------------------------------

def test_an_outputs_remote_is_one_error_when_unknown_and_r_sends_everything(
        mlv_repo: Path, tmp_path: Path) -> None:
    """mlv.yaml's `remote: NAME` never makes push fall back to another remote; and with
    `-r mine` (docs: "unless -r names one") the output was silently left out: "pushed 1
    file" while `o` was pushed nowhere."""
    mine = tmp_path / "mine"
    make_tree(mlv_repo, {"mlv.yaml": "stages:\n  s:\n    cmd: echo hi > o; echo yo > p\n"
                                     "    outs:\n    - o:\n        remote: nope\n    - p\n"})
    assert run_mlv(mlv_repo, "remote", "add", "-d", "--local", "--create", "mine",
                   str(mine)).exit_code == 0
    assert run_mlv(mlv_repo, "repro").exit_code == 0
    assert_one_error(run_mlv(mlv_repo, "push"), "unknown remote 'nope'")
    assert not mine.exists() or not any(p.is_file() for p in mine.rglob("*"))
    assert_one_error(run_mlv(mlv_repo, "status", "--cloud"), "unknown remote 'nope'")
    res = run_mlv(mlv_repo, "push", "-r", "mine")
    assert res.exit_code == 0 and "pushed 2 files" in res.stdout, res.output
    res = run_mlv(mlv_repo, "status", "--cloud", "-r", "mine")
    assert res.exit_code == 0 and "in sync" in res.stdout, res.output
