"""Issue 9's review: the index, revisions read from git objects (`--rev`, `-a`, `-T`),
DVC syntax in mlv.yaml (`vars:`, `matrix:`) and `mlv migrate dvc`, attacked the way a
stranger's repository would: built from scratch, cloned, then run as the victim would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import clone, commit_all, git, make_tree, run_mlv
from tests.conftest import one_error as assert_one_error

# ---- revisions read from git objects ------------------------------------------------------

def test_a_huge_pointer_blob_at_a_revision_is_never_read(
        mlv_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 MiB `.mlv` blob (zeros compress to nothing in git; 4 GiB would too) was read
    whole into memory, twice, before its size was checked."""
    from mlv import scm
    from mlv.index import Index
    from mlv.repo import Repo

    make_tree(mlv_repo, {"params.yaml": "p: 1\n",
                         "mlv.yaml": "stages:\n  s:\n    cmd: echo\n    params: [p]\n",
                         "big.mlv": b"\0" * (2 << 20)})
    commit_all(mlv_repo)
    victim = clone(mlv_repo, tmp_path)
    asked: list[int] = []
    real = scm.read_blobs

    def spy(root: str, blob_ids: list[str]) -> dict[str, bytes]:
        found = real(root, blob_ids)
        asked.extend(len(data) for data in found.values())
        return found

    monkeypatch.setattr(scm, "read_blobs", spy)
    with pytest.raises(Exception, match="larger than"):
        Index.load(Repo(str(victim)), "HEAD")
    assert all(size <= 1 << 20 for size in asked), asked
    assert_one_error(run_mlv(victim, "params", "show", "--rev", "HEAD"), "big.mlv", "larger")


def test_gc_all_commits_survives_a_hostile_lock_at_an_old_commit(
        mlv_repo: Path, tmp_path: Path) -> None:
    """An mlv.lock nested 100,000 deep at an old commit crashed `gc -A` (RecursionError,
    exit 3); one with aliases made it loop over shared lists."""
    make_tree(mlv_repo, {"mlv.lock": "[" * 100_000 + "]" * 100_000 + "\n"})
    commit_all(mlv_repo, "deep lock")
    git(mlv_repo, "rm", "-q", "mlv.lock")
    commit_all(mlv_repo, "gone")
    victim = clone(mlv_repo, tmp_path)
    res = run_mlv(victim, "gc", "--all-commits", "--dry", timeout=60)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output


def test_gc_all_commits_refuses_an_oversized_pointer_without_reading_it(
        mlv_repo: Path, tmp_path: Path) -> None:
    make_tree(mlv_repo, {"big.mlv": b"\0" * (2 << 20)})
    commit_all(mlv_repo, "huge pointer")
    git(mlv_repo, "rm", "-q", "big.mlv")
    commit_all(mlv_repo, "gone")
    victim = clone(mlv_repo, tmp_path)
    assert_one_error(run_mlv(victim, "gc", "--all-commits", "--dry", timeout=60),
                     "big.mlv", "larger than")



def test_tags_a_clone_brings_cannot_break_show_all_tags(mlv_repo: Path, tmp_path: Path) -> None:
    """A tag named `-x` is a valid ref, and a tag may name a blob: either made
    `mlv params show -T` fail as a whole ('-x' is not a git revision)."""
    make_tree(mlv_repo, {"params.yaml": "p: 1\n",
                         "mlv.yaml": "stages:\n  s:\n    cmd: echo\n    params: [p]\n"})
    commit_all(mlv_repo)
    git(mlv_repo, "update-ref", "refs/tags/-x", "HEAD")
    git(mlv_repo, "update-ref", "refs/tags/blob", git(mlv_repo, "rev-parse",
                                                      "HEAD:params.yaml").strip())
    git(mlv_repo, "tag", "v1")
    victim = clone(mlv_repo, tmp_path)
    for what in ("params", "metrics"):
        res = run_mlv(victim, what, "show", "-T", "--json")
        assert res.exit_code == 0, res.output
        assert '"-x"' in res.stdout and '"v1"' in res.stdout and '"blob"' not in res.stdout

# ---- the index: one map of tracked paths ----------------------------------------------------

def test_a_tracked_path_inside_another_is_refused_whatever_sorts_between(
        mlv_repo: Path, tmp_path: Path) -> None:
    """`d`, `d-y` and `d/x` sort in this order ('-' < '/'): comparing neighbours only
    missed `d/x` inside `d`, and checkout wrote `d` and `d-y` before it failed."""
    make_tree(mlv_repo, {"d": "two\n", "d-y": "three\n"})
    assert run_mlv(mlv_repo, "add", "d", "d-y").exit_code == 0
    text = (mlv_repo / "d.mlv").read_text().replace("path: d\n", "path: d/x\n")
    (mlv_repo / "e.mlv").write_text(text)
    commit_all(mlv_repo)
    victim = clone(mlv_repo, tmp_path)
    for obj in (mlv_repo / ".mlv" / "cache").rglob("*"):
        target = victim / obj.relative_to(mlv_repo)
        if obj.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(obj.read_bytes())
    assert_one_error(run_mlv(victim, "checkout"), "d/x", "inside d")
    assert not (victim / "d").exists() and not (victim / "d-y").exists()


# ---- mlv.yaml: DVC's syntax, read by read-only commands too -------------------------------

def _pipelineclone(mlv_repo: Path, tmp_path: Path, text: str) -> Path:
    (mlv_repo / "mlv.yaml").write_text(text)
    commit_all(mlv_repo)
    return clone(mlv_repo, tmp_path)


def test_a_matrix_of_ten_to_the_eighth_stages_is_refused_at_once(
        mlv_repo: Path, tmp_path: Path) -> None:
    axes = "".join(f"      {k}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for k in "abcdefgh")
    victim = _pipelineclone(mlv_repo, tmp_path,
                             f"stages:\n  s:\n    matrix:\n{axes}    cmd: echo ${{item.a}}\n")
    for args in (("status",), ("params", "show"), ("params", "show", "--rev", "HEAD")):
        assert_one_error(run_mlv(victim, *args, timeout=20), "matrix", "more than")


def test_foreach_stages_are_bounded_in_number(mlv_repo: Path, tmp_path: Path) -> None:
    items = ", ".join(str(i) for i in range(10_001))
    victim = _pipelineclone(mlv_repo, tmp_path,
                             f"stages:\n  s:\n    foreach: [{items}]\n    do:\n"
                             "      cmd: echo ${item}\n")
    assert_one_error(run_mlv(victim, "status", timeout=20), "foreach", "more than")


def test_repeated_interpolation_cannot_fill_memory(mlv_repo: Path, tmp_path: Path) -> None:
    """A 1 MiB value named 20 times in one cmd was 20 MiB of text; 10,000 times in a
    16 MiB mlv.yaml, 10 GiB."""
    victim = _pipelineclone(mlv_repo, tmp_path,
                             f"vars:\n- a: {'x' * (1 << 20)}\nstages:\n  s:\n"
                             f"    cmd: echo {'${a}' * 20}\n")
    assert_one_error(run_mlv(victim, "status", timeout=20), "characters")


def test_thousands_of_chained_stages_are_one_graph_not_a_crash(
        mlv_repo: Path, tmp_path: Path) -> None:
    """Each stage depends on the next one's output: the graph was sorted recursively
    (RecursionError at 1,000, exit 3), and built in quadratic time (minutes at 9,000)."""
    n = 5000
    text = "stages:\n" + "".join(
        f"  s{i}:\n    cmd: echo\n    outs: [o{i}]\n" + (f"    deps: [o{i + 1}]\n" if i < n - 1
                                                         else "")
        for i in range(n))
    victim = _pipelineclone(mlv_repo, tmp_path, text)
    res = run_mlv(victim, "status", timeout=30)
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert "s0" in res.stdout


# ---- mlv migrate dvc -----------------------------------------------------------------------

def _dvc_clone_with_secret_in_a_cache(tmp_path: Path, config: str) -> tuple[Path, Path]:
    """A DVC repository whose `.dvc` file records the md5 of a file that lives in a DVC
    cache outside it (a shared cache, another project's): returns (clone, that cache)."""
    import hashlib

    secret = b"TOP SECRET\n"
    md5 = hashlib.md5(secret).hexdigest()
    outside = tmp_path / "shared-dvc-cache"
    obj = outside / "files" / "md5" / md5[:2] / md5[2:]
    obj.parent.mkdir(parents=True)
    obj.write_bytes(secret)
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    make_tree(origin, {".dvc": {"config": config.replace("OUTSIDE", str(outside))},
                       "loot.txt.dvc": f"outs:\n- md5: {md5}\n  size: 11\n  hash: md5\n"
                                       "  path: loot.txt\n"})
    commit_all(origin)
    return clone(origin, tmp_path), outside


@pytest.mark.parametrize("how", ["cache.dir", "cache-link", "folder-link", "tracked-local"])
def test_migrate_never_takes_bytes_from_a_dvc_cache_outside_theclone(
        tmp_path: Path, how: str) -> None:
    config = "[cache]\n    dir = OUTSIDE\n" if how == "cache.dir" else "[core]\n"
    victim, outside = _dvc_clone_with_secret_in_a_cache(tmp_path, config)
    if how == "cache-link":
        (victim / ".dvc" / "cache").symlink_to(outside)
    elif how == "folder-link":
        (victim / ".dvc" / "cache" / "files").mkdir(parents=True)
        (victim / ".dvc" / "cache" / "files" / "md5").symlink_to(outside / "files" / "md5")
    elif how == "tracked-local":  # the clone brings a config.local of its own
        (victim / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {outside}\n")
        git(victim, "add", "-f", ".dvc/config.local")
    res = run_mlv(victim, "migrate", "dvc")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "TOP SECRET" not in res.output
    assert not (victim / "loot.txt.mlv").exists() or run_mlv(victim, "checkout").exit_code == 1
    assert not (victim / "loot.txt").exists()
    cached = [p.read_bytes() for p in (victim / ".mlv" / "cache").rglob("*") if p.is_file()]
    assert b"TOP SECRET\n" not in cached


def test_migrate_uses_a_dvc_cache_you_set_in_config_local(tmp_path: Path) -> None:
    victim, outside = _dvc_clone_with_secret_in_a_cache(tmp_path, "[core]\n")
    (victim / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {outside}\n")
    res = run_mlv(victim, "migrate", "dvc")
    assert res.exit_code == 0, res.output
    assert (victim / "loot.txt.mlv").exists()


def test_migrate_keeps_the_default_remote_you_chose(mlv_repo: Path, tmp_path: Path) -> None:
    """The clone's `.dvc/config` made its own remote mlv's default, so the next `mlv push`
    sent this clone's data to a place the user had not chosen."""
    mine = tmp_path / "mine"
    mine.mkdir()
    assert run_mlv(mlv_repo, "remote", "add", "-d", "mine", str(mine)).exit_code == 0
    make_tree(mlv_repo, {".dvc": {"config": "[core]\n    remote = evil\n"
                                            "['remote \"evil\"']\n    url = s3://evil/x\n"}})
    commit_all(mlv_repo)
    victim = clone(mlv_repo, tmp_path)
    res = run_mlv(victim, "migrate", "dvc")
    assert res.exit_code == 0, res.output
    listed = run_mlv(victim, "remote", "list").stdout
    assert "mine (default)" in listed and "evil (default)" not in listed, listed


def test_a_metrics_file_inside_a_file_output_is_missing_not_a_damaged_cache(
        mlv_repo: Path, tmp_path: Path) -> None:
    """A revision's mlv.lock records output `m` as a file, and mlv.yaml names the metrics
    file `m/x.json`: the file object was parsed as a folder manifest, and the whole
    `metrics show` failed with "directory manifest … is damaged"."""
    make_tree(mlv_repo, {"m": '{"acc": 1}\n'})
    assert run_mlv(mlv_repo, "add", "m").exit_code == 0
    oid = (mlv_repo / "m.mlv").read_text().split("xxh128: ")[1].split()[0]
    (mlv_repo / "m.mlv").unlink()
    (mlv_repo / "m").unlink()
    make_tree(mlv_repo, {
        "mlv.yaml": "stages:\n  s:\n    cmd: echo\n    outs: [m]\nmetrics: [m/x.json]\n",
        "mlv.lock": f"schema: '2.0'\nstages:\n  s:\n    cmd: echo\n    outs:\n"
                    f"    - path: m\n      xxh128: {oid}\n      size: 11\n"})
    commit_all(mlv_repo)
    res = run_mlv(mlv_repo, "metrics", "show", "--rev", "HEAD")
    assert res.exit_code == 0, res.output
    assert "damaged" not in res.output
