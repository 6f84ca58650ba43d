"""`mlv gc`: never delete an object that a pointer in the chosen scope still references.

The history built by `history` (every scope keeps a different set of objects):

    main:  c1 (data v1, model m1) -- c2 (data v2; annotated tag v2) -- c5 (data v5, model m2)
    exp:   c1 -- c3 (data v3)
    workspace (on main, not committed): data v4, model m2

`data/` is a folder (a `.dir` manifest plus its files: `a.txt` differs per version,
`shared.txt` is the same in all); `models/model.pkl` is a single file tracked by a pointer
inside a subfolder (`models/model.pkl.mlv`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.conftest import cache_objects, git, make_tree, read_tree

SHARED = b"shared by every version\n"


def data_v(n: int) -> dict[str, bytes]:
    return {"a.txt": f"version {n} of a\n".encode(), "shared.txt": SHARED}


def model_v(n: int) -> bytes:
    return f"model {n}\n".encode()


def file_oid(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def pointer_oid(text: str) -> str:
    return yaml.safe_load(text)["outs"][0]["xxh128"]


@dataclass
class History:
    repo: Path
    revs: dict[str, str]  # c1, c2, c3, c5 -> commit sha
    dirs: dict[int, str]  # data version -> .dir oid
    files: dict[int, str]  # data version -> a.txt oid
    shared: str
    models: dict[int, str]  # model version -> oid

    def data_objects(self, *versions: int) -> set[str]:
        return {self.dirs[v] for v in versions} | {self.files[v] for v in versions}

    def model_objects(self, *versions: int) -> set[str]:
        return {self.models[v] for v in versions}

    @property
    def everything(self) -> set[str]:
        return (self.data_objects(1, 2, 3, 4, 5) | {self.shared}
                | self.model_objects(1, 2))


def _set_data(repo: Path, version: int) -> None:
    shutil.rmtree(repo / "data", ignore_errors=True)
    make_tree(repo / "data", data_v(version))


def _add(mlv, repo: Path, *paths: str) -> None:  # type: ignore[no-untyped-def]
    res = mlv("add", *paths, cwd=repo)
    assert res.exit_code == 0, res.output


def _commit(repo: Path, msg: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", msg)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def history(mlv_repo: Path, mlv) -> History:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    dirs: dict[int, str] = {}
    revs: dict[str, str] = {}

    _set_data(repo, 1)
    make_tree(repo / "models", {"model.pkl": model_v(1)})
    _add(mlv, repo, "data", "models/model.pkl")
    dirs[1] = pointer_oid((repo / "data.mlv").read_text())
    revs["c1"] = _commit(repo, "data v1, model 1")
    assert git(repo, "ls-files").split() == [
        ".gitignore", ".mlv/.gitignore", ".mlv/config", "data.mlv",
        "models/.gitignore", "models/model.pkl.mlv",
    ]

    _set_data(repo, 2)
    _add(mlv, repo, "data")
    dirs[2] = pointer_oid((repo / "data.mlv").read_text())
    revs["c2"] = _commit(repo, "data v2")
    git(repo, "tag", "-a", "v2", "-m", "release 2")

    git(repo, "checkout", "-qb", "exp", revs["c1"])
    res = mlv("checkout", cwd=repo)
    assert res.exit_code == 0, res.output
    _set_data(repo, 3)
    _add(mlv, repo, "data")
    dirs[3] = pointer_oid((repo / "data.mlv").read_text())
    revs["c3"] = _commit(repo, "data v3 (experiment)")

    git(repo, "checkout", "-q", "main")
    res = mlv("checkout", cwd=repo)
    assert res.exit_code == 0, res.output
    _set_data(repo, 5)
    (repo / "models" / "model.pkl").write_bytes(model_v(2))
    _add(mlv, repo, "data", "models/model.pkl")
    dirs[5] = pointer_oid((repo / "data.mlv").read_text())
    revs["c5"] = _commit(repo, "data v5, model 2")

    _set_data(repo, 4)
    _add(mlv, repo, "data")
    dirs[4] = pointer_oid((repo / "data.mlv").read_text())
    assert git(repo, "status", "--porcelain") == " M data.mlv\n"

    h = History(repo, revs, dirs,
                files={v: file_oid(data_v(v)["a.txt"]) for v in range(1, 6)},
                shared=file_oid(SHARED),
                models={v: file_oid(model_v(v)) for v in (1, 2)})
    assert all(oid.endswith(".dir") for oid in dirs.values())
    assert len(set(dirs.values())) == 5
    assert set(cache_objects(repo)) == h.everything
    return h


def _workspace_keeps(h: History) -> set[str]:
    return h.data_objects(4) | {h.shared} | h.model_objects(2)


def _kept(h: History, scope: str) -> set[str]:
    """The objects each scope must keep (the workspace is always kept)."""
    kept = _workspace_keeps(h)
    if scope == "--all-tags":  # v2 -> c2: data v2 with model 1
        kept |= h.data_objects(2) | h.model_objects(1)
    elif scope == "--all-branches":  # main -> c5, exp -> c3 (with model 1)
        kept |= h.data_objects(5, 3) | h.model_objects(1)
    elif scope == "--all-commits":
        kept = set(h.everything)
    return kept


# Which commits (and data/model versions) must still check out after gc in each scope.
COMMITS = {"c1": (1, 1), "c2": (2, 1), "c3": (3, 1), "c5": (5, 2)}
RESTORABLE = {
    "--workspace": set(),
    "--all-tags": {"c2"},
    "--all-branches": {"c3", "c5"},
    "--all-commits": {"c1", "c2", "c3", "c5"},
}
SCOPES = list(RESTORABLE)


def _sizes(h: History, oids: set[str]) -> int:
    objs = cache_objects(h.repo)
    return sum(objs[o].stat().st_size for o in oids)


def test_every_scope_keeps_a_different_set(history: History) -> None:
    sets = [frozenset(_kept(history, s)) for s in SCOPES]
    assert len(set(sets)) == len(SCOPES)
    # c1's data v1 is referenced only by an old commit: no tip, no tag, not the workspace.
    only_c1 = history.data_objects(1)
    assert [s for s in SCOPES if only_c1 <= _kept(history, s)] == ["--all-commits"]


@pytest.mark.parametrize("scope", SCOPES)
def test_dry_run_lists_exactly_what_would_go_and_deletes_nothing(
        history: History, mlv, scope: str) -> None:  # type: ignore[no-untyped-def]
    repo = history.repo
    before = {oid: p.read_bytes() for oid, p in cache_objects(repo).items()}
    gone = history.everything - _kept(history, scope)
    freed = _sizes(history, gone)
    assert freed < 1024  # so the size is shown in plain bytes

    res = mlv("gc", scope, "--dry", cwd=repo)

    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    listed = [m.group(1) for m in (re.match(r"would delete (\S+) \((\d+ B)\)$", line)
                                   for line in lines) if m]
    assert sorted(listed) == sorted(gone)
    assert lines[-1] == (f"would delete {len(gone)} object{'' if len(gone) == 1 else 's'}, "
                         f"freeing {freed} B; {len(history.everything) - len(gone)} kept")
    assert len(lines) == len(gone) + 1
    assert {oid: p.read_bytes() for oid, p in cache_objects(repo).items()} == before


@pytest.mark.parametrize("scope", SCOPES)
def test_gc_keeps_exactly_the_scope_and_those_versions_still_check_out(
        history: History, mlv, tmp_path: Path, scope: str) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / f"copy{scope}"
    shutil.copytree(history.repo, repo, symlinks=True)
    kept = _kept(history, scope)
    gone = history.everything - kept

    res = mlv("gc", scope, cwd=repo)

    assert res.exit_code == 0, res.output
    freed = sum(cache_objects(history.repo)[o].stat().st_size for o in gone)
    assert res.stdout.splitlines()[-1] == (
        f"deleted {len(gone)} object{'' if len(gone) == 1 else 's'}, freed {freed} B; "
        f"{len(kept)} kept")
    assert set(cache_objects(repo)) == kept
    # The original repository was not touched.
    assert set(cache_objects(history.repo)) == history.everything

    # The uncommitted workspace version is always kept and intact.
    st = mlv("status", cwd=repo)
    assert st.exit_code == 0 and st.stdout == "everything is up to date\n", st.output
    assert read_tree(repo / "data") == data_v(4)
    assert (repo / "models" / "model.pkl").read_bytes() == model_v(2)

    for name, (dv, mv) in COMMITS.items():
        git(repo, "checkout", "-qf", history.revs[name])
        res = mlv("checkout", cwd=repo)
        if name in RESTORABLE[scope]:
            assert res.exit_code == 0, (name, res.output)
            assert read_tree(repo / "data") == data_v(dv), name
            assert (repo / "models" / "model.pkl").read_bytes() == model_v(mv), name
            assert mlv("status", cwd=repo).stdout == "everything is up to date\n", name
        else:
            assert res.exit_code == 1, (name, res.output)
            assert "mlv pull" in res.stderr, (name, res.output)
            assert read_tree(repo / "data") != data_v(dv), name


def test_union_of_scopes_keeps_the_union(history: History, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("gc", "--all-branches", "--all-tags", "--dry", cwd=history.repo)
    assert res.exit_code == 0, res.output
    keep = _kept(history, "--all-branches") | _kept(history, "--all-tags")
    listed = {line.split()[2] for line in res.stdout.splitlines()[:-1]}
    assert listed == history.everything - keep == history.data_objects(1)


def test_short_flags(history: History, mlv) -> None:  # type: ignore[no-untyped-def]
    for short, scope in (("-w", "--workspace"), ("-a", "--all-branches"),
                         ("-T", "--all-tags"), ("-A", "--all-commits")):
        assert mlv("gc", short, "--dry", cwd=history.repo).stdout == \
            mlv("gc", scope, "--dry", cwd=history.repo).stdout


def test_gc_without_a_scope_is_a_usage_error(history: History, mlv) -> None:  # type: ignore[no-untyped-def]
    before = set(cache_objects(history.repo))
    for args in ((), ("--dry",)):
        res = mlv("gc", *args, cwd=history.repo)
        assert res.exit_code == 2, res.output
        assert res.stdout == ""
        for flag in ("--workspace", "--all-branches", "--all-tags", "--all-commits"):
            assert flag in res.stderr
        assert "Traceback" not in res.output
    assert set(cache_objects(history.repo)) == before


def test_gc_is_idempotent(history: History, mlv) -> None:  # type: ignore[no-untyped-def]
    assert mlv("gc", "-w", cwd=history.repo).exit_code == 0
    res = mlv("gc", "-w", cwd=history.repo)
    assert res.exit_code == 0
    assert res.stdout.startswith("deleted 0 objects, freed 0 B;")
    assert set(cache_objects(history.repo)) == _workspace_keeps(history)


def test_manifest_and_its_files_are_kept_together(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    """A kept .dir keeps every file it lists, also files nested in subfolders and
    files no other version uses; objects of a replaced version go with their manifest."""
    repo = mlv_repo
    make_tree(repo / "data", {"top.bin": b"t1", "deep": {"er": {"x.bin": b"x1"}}})
    assert mlv("add", "data", cwd=repo).exit_code == 0
    old = set(cache_objects(repo))
    make_tree(repo / "data", {"top.bin": b"t2", "deep": {"er": {"x.bin": b"x2"}}})
    assert mlv("add", "data", cwd=repo).exit_code == 0
    new = set(cache_objects(repo)) - old
    assert len(new) == 3

    res = mlv("gc", "--workspace", cwd=repo)

    assert res.exit_code == 0, res.output
    assert set(cache_objects(repo)) == new
    shutil.rmtree(repo / "data")
    assert mlv("checkout", cwd=repo).exit_code == 0
    assert read_tree(repo / "data") == {"deep/er/x.bin": b"x2", "top.bin": b"t2"}


def test_pointer_in_a_subfolder_is_kept_in_workspace_scope(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"models": {"v1": {"model.pkl": b"weights"}}, "junk.bin": b"junk"})
    assert mlv("add", "models/v1/model.pkl", "junk.bin", cwd=repo).exit_code == 0
    assert mlv("remove", "junk.bin.mlv", cwd=repo).exit_code == 0

    res = mlv("gc", "-w", cwd=repo)

    assert res.exit_code == 0, res.output
    assert set(cache_objects(repo)) == {file_oid(b"weights")}
    (repo / "models" / "v1" / "model.pkl").unlink()
    assert mlv("checkout", cwd=repo).exit_code == 0
    assert (repo / "models" / "v1" / "model.pkl").read_bytes() == b"weights"


def test_gc_in_a_repo_without_commits_keeps_the_workspace(git_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = git_repo
    assert mlv("init", cwd=repo).exit_code == 0
    make_tree(repo, {"data": {"f": b"1"}, "old": b"old"})
    assert mlv("add", "data", "old", cwd=repo).exit_code == 0
    assert mlv("remove", "old", cwd=repo).exit_code == 0
    for scope in SCOPES:
        res = mlv("gc", scope, cwd=repo)
        assert res.exit_code == 0, (scope, res.output)
        assert set(cache_objects(repo)) == {
            pointer_oid((repo / "data.mlv").read_text()), file_oid(b"1")}, scope


def test_gc_removes_stale_temp_files_only(history: History, mlv) -> None:  # type: ignore[no-untyped-def]
    folder = history.repo / ".mlv" / "cache" / "xxh128" / "ab"
    folder.mkdir(exist_ok=True)
    stale = folder / ".cdef.mlvtmp-123-0a0b0c0d"
    fresh = folder / ".ef01.mlvtmp-124-0a0b0c0e"
    stale.write_bytes(b"half an object")
    fresh.write_bytes(b"being written right now")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))

    dry = mlv("gc", "--all-commits", "--dry", cwd=history.repo)
    assert "mlvtmp" not in dry.stdout
    assert stale.exists()

    res = mlv("gc", "--all-commits", cwd=history.repo)

    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("deleted 0 objects")
    assert not stale.exists()
    assert fresh.read_bytes() == b"being written right now"
    assert set(cache_objects(history.repo)) - {"ab" + fresh.name} == history.everything
