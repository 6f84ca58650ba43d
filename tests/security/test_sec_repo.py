"""What a clone commits under `.mlv/`, and the machine-level settings in its committed
`.mlv/config`, never make mlv write, truncate or delete outside the repository.

Each attack is committed in an attacker's repository, cloned with `git clone`, and run as
a victim would (`run_mlv`). The layers are also tested one by one (a link made by hand,
not tracked), so each defence holds without the others:
- the lock file and the stat cache are never opened through a symlink;
- `.mlv`, `.mlv/tmp` and the default `.mlv/cache` must be real folders;
- a committed `cache.dir` must stay inside the repository; the user's own may not;
- git may track only `.mlv/config` and `.mlv/.gitignore` under `.mlv/`;
- `core.jobs` is at most 1024.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from mlv.errors import PathError
from mlv.fsio import RepoLock
from mlv.state import StatCache
from tests.conftest import add_remote, git, make_tree, one_error, run_mlv

PRECIOUS = b"the victim's only copy\n"
COMMANDS = [("checkout",), ("pull",), ("gc", "--workspace"), ("status",)]




def ok(res) -> None:  # noqa: ANN001
    assert res.exit_code == 0, res.output


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below `root`: file bytes, link targets, folders; links not followed."""
    found: dict[str, bytes | str] = {}
    if not root.exists():
        return found
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


@pytest.fixture
def attacker(mlv, mlv_repo: Path, tmp_path: Path,  # noqa: ANN001
             request: pytest.FixtureRequest) -> Path:
    """A repository with tracked data pushed to a folder remote (so `pull` has work).
    (Built in-process for speed; the victim's commands run in subprocesses.)"""
    add_remote(mlv_repo, "local", request, tmp_path)
    make_tree(mlv_repo, {"data": {"a.txt": "alpha\n"}})
    ok(mlv("add", "data", cwd=mlv_repo))
    ok(mlv("push", cwd=mlv_repo))
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "data")
    return mlv_repo


@pytest.fixture
def other(tmp_path: Path) -> Path:
    """Another project of the victim's, next to the clone, whose cache holds the only copy
    of a file (its workspace copy is gone)."""
    repo = tmp_path / "other"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    ok(run_mlv(repo, "init"))
    make_tree(repo, {"only.bin": b"only copy"})
    ok(run_mlv(repo, "add", "only.bin"))
    (repo / "only.bin").unlink()
    return repo


def commit_all(repo: Path, *forced: str) -> None:
    """Commit everything, and the git-ignored `forced` paths as an attacker can."""
    git(repo, "add", "-A")
    if forced:
        git(repo, "add", "-f", "--", *forced)
    git(repo, "commit", "-qm", "innocent")


def clone(attacker: Path, tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(attacker), str(victim))
    return victim


# ---- A: the lock file ----------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c))
def test_a_committed_lock_symlink_truncates_nothing(attacker: Path, tmp_path: Path,
                                                    command: tuple[str, ...]) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_bytes(PRECIOUS)
    lock = attacker / ".mlv" / "tmp" / "lock"
    lock.unlink()
    os.symlink(precious, lock)
    commit_all(attacker, ".mlv/tmp/lock")
    victim = clone(attacker, tmp_path)

    one_error(run_mlv(victim, *command), ".mlv/tmp/lock")
    assert precious.read_bytes() == PRECIOUS


@pytest.mark.parametrize("kind", ["symlink", "dangling", "fifo", "folder"])
def test_the_lock_never_opens_a_link_or_special_file(tmp_path: Path, kind: str) -> None:
    """The lock's own defence, with nothing else in front of it."""
    precious = tmp_path / "precious.txt"
    precious.write_bytes(PRECIOUS)
    lock = tmp_path / "tmp" / "lock"
    lock.parent.mkdir()
    if kind == "symlink":
        os.symlink(precious, lock)
    elif kind == "dangling":
        os.symlink(tmp_path / "created-by-mlv", lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()

    with pytest.raises(PathError) as info:
        RepoLock(str(lock), timeout=0).acquire()

    what = "a symlink" if kind in ("symlink", "dangling") else "not a regular file"
    assert info.value.message == f"{lock} is {what}; a clone may not bring it; delete it"
    assert precious.read_bytes() == PRECIOUS
    assert not (tmp_path / "created-by-mlv").exists()


def test_a_lock_link_made_in_the_clone_is_refused_too(mlv_repo: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_bytes(PRECIOUS)
    (mlv_repo / ".mlv" / "tmp").mkdir(exist_ok=True)
    os.symlink(precious, mlv_repo / ".mlv" / "tmp" / "lock")

    one_error(run_mlv(mlv_repo, "checkout"), ".mlv/tmp/lock is a symlink", "delete it")
    assert precious.read_bytes() == PRECIOUS
    os.unlink(mlv_repo / ".mlv" / "tmp" / "lock")  # what the message says
    ok(run_mlv(mlv_repo, "checkout"))


# ---- the stat cache ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["state.db", "state.db-journal"])
def test_the_stat_cache_never_writes_through_a_link(tmp_path: Path, name: str) -> None:
    victim_db = tmp_path / "victim.db"
    with sqlite3.connect(victim_db) as conn:
        conn.execute("CREATE TABLE precious (x TEXT)")
        conn.execute("INSERT INTO precious VALUES ('keep')")
    conn.close()
    before = victim_db.read_bytes()
    folder = tmp_path / "tmp"
    folder.mkdir()
    os.symlink(victim_db, folder / name)
    data = tmp_path / "data.bin"
    data.write_bytes(b"x")

    cache = StatCache(str(folder / "state.db"))
    assert cache.get(data.stat()) is None
    cache.set(data.stat(), "0" * 32)
    cache.set_tree("data", "1" * 32, "fp")
    cache.save()

    assert victim_db.read_bytes() == before
    assert os.path.islink(folder / name)
    assert StatCache(str(folder / "state.db")).get(data.stat()) is None  # not used at all


def test_a_committed_state_db_link_is_refused(attacker: Path, tmp_path: Path) -> None:
    victim_db = tmp_path / "victim.db"
    victim_db.write_bytes(b"")
    state = attacker / ".mlv" / "tmp" / "state.db"
    state.unlink()
    os.symlink(victim_db, state)
    commit_all(attacker, ".mlv/tmp/state.db")
    victim = clone(attacker, tmp_path)

    one_error(run_mlv(victim, "pull"), "git tracks .mlv/tmp/state.db",
              "a clone may not bring")
    assert victim_db.read_bytes() == b""


# ---- B: .mlv/cache and .mlv/tmp as symlinks ----------------------------------------------

@pytest.mark.parametrize("committed", [True, False], ids=["committed", "made-in-clone"])
@pytest.mark.parametrize("name", ["cache", "tmp"])
def test_a_symlinked_cache_or_tmp_folder_is_refused(attacker: Path, tmp_path: Path,
                                                    name: str, committed: bool) -> None:
    outside = tmp_path / f"outside-{name}"
    outside.mkdir()
    if committed:
        shutil.rmtree(attacker / ".mlv" / name)
        os.symlink(outside, attacker / ".mlv" / name)
        commit_all(attacker, f".mlv/{name}")
    victim = clone(attacker, tmp_path)
    if not committed:
        os.symlink(outside, victim / ".mlv" / name)

    res = run_mlv(victim, "pull")

    if committed:  # whichever check sees it first
        assert f".mlv/{name}" in one_error(res, "a clone may not bring")
    else:
        one_error(res, f".mlv/{name} is a symlink; a clone may not bring it; delete it")
    assert tree(outside) == {}
    assert not (victim / "data").exists()


def test_init_refuses_a_symlinked_mlv_folder(git_repo: Path, other: Path) -> None:
    os.symlink(other / ".mlv", git_repo / ".mlv")
    before = tree(other / ".mlv")

    for args in (("init",), ("init", "--force")):
        one_error(run_mlv(git_repo, *args), ".mlv is a symlink")
    assert tree(other / ".mlv") == before


# ---- D: .mlv itself, and a committed config.local -------------------------------------

@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c))
def test_a_committed_mlv_symlink_is_refused(git_repo: Path, other: Path, tmp_path: Path,
                                            command: tuple[str, ...]) -> None:
    os.symlink("../other/.mlv", git_repo / ".mlv")
    make_tree(git_repo, {"readme": "hi\n"})
    commit_all(git_repo)
    victim = clone(git_repo, tmp_path)
    assert os.path.realpath(victim / ".mlv") == str(other / ".mlv")  # the link resolves
    before = tree(other / ".mlv")

    one_error(run_mlv(victim, *command), ".mlv is a symlink; a clone may not bring it")
    assert tree(other / ".mlv") == before


def test_a_committed_config_local_is_not_trusted(attacker: Path, tmp_path: Path) -> None:
    spy = tmp_path / "spy"
    spy.mkdir()
    (attacker / ".mlv" / "config.local").write_text(
        f"remote:\n  store:\n    url: {spy}\ncache:\n  dir: {tmp_path / 'elsewhere'}\n")
    commit_all(attacker, ".mlv/config.local")
    victim = clone(attacker, tmp_path)
    make_tree(victim, {"mine.txt": "mine\n"})

    for args in (("add", "mine.txt"), ("push",), ("status",)):
        one_error(run_mlv(victim, *args), "git tracks .mlv/config.local",
                  "a clone may not bring")
    res = run_mlv(victim, "status")
    assert "hint: `git rm -r --cached .mlv/config.local`" in res.stderr
    assert tree(spy) == {}
    assert not (tmp_path / "elsewhere").exists()

    git(victim, "rm", "-q", "--cached", ".mlv/config.local")  # what the hint says
    (victim / ".mlv" / "config.local").unlink()
    ok(run_mlv(victim, "pull"))
    assert (victim / "data" / "a.txt").read_text() == "alpha\n"


# ---- C: cache.dir in the committed .mlv/config -------------------------------------------

def set_committed_cache(repo: Path, value: str) -> None:
    config = repo / ".mlv" / "config"
    data = yaml.safe_load(config.read_text()) or {}
    data.setdefault("cache", {})["dir"] = value
    config.write_text(yaml.safe_dump(data))


def test_a_committed_cache_dir_cannot_delete_another_projects_cache(
        attacker: Path, other: Path, tmp_path: Path) -> None:
    set_committed_cache(attacker, "../other/.mlv/cache")
    commit_all(attacker)
    victim = clone(attacker, tmp_path)
    before = tree(other / ".mlv" / "cache")
    assert before

    for args in (("gc", "--workspace"), ("pull",), ("status",)):
        res = run_mlv(victim, *args)
        one_error(res, "cache.dir '../other/.mlv/cache' in .mlv/config is not used",
                  "a clone may not choose where mlv writes and deletes outside itself")
        assert ("hint: if you trust it, accept it for this clone (it then takes precedence): "
                "`mlv config --local cache.dir ../other/.mlv/cache`") in res.stderr
    assert tree(other / ".mlv" / "cache") == before
    assert not (victim / "data").exists()


@pytest.mark.parametrize("value", ["OUTSIDE", "~/cache", "link/cache", ".git/cache",
                                   ".mlv/tmp", ".mlv/config.local"])
def test_a_committed_cache_dir_must_stay_inside(attacker: Path, tmp_path: Path,
                                                value: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    value = str(outside) if value == "OUTSIDE" else value
    if value.startswith("link/"):
        os.symlink(outside, attacker / "link")
    set_committed_cache(attacker, value)
    commit_all(attacker)
    victim = clone(attacker, tmp_path)
    home = Path(os.environ["HOME"])

    one_error(run_mlv(victim, "pull"), f"cache.dir {value!r} in .mlv/config is not used")
    assert tree(outside) == {}
    assert not (home / "cache").exists()
    assert not (victim / ".git" / "cache").exists()
    assert not (victim / "data").exists()


def test_an_accepted_cache_dir_is_used(attacker: Path, tmp_path: Path) -> None:
    """The user's own --local setting wins over the committed one, which is then unused."""
    shared = tmp_path / "shared"
    set_committed_cache(attacker, str(shared))
    commit_all(attacker)
    victim = clone(attacker, tmp_path)
    one_error(run_mlv(victim, "pull"), "is not used")

    ok(run_mlv(victim, "config", "--local", "cache.dir", str(shared)))
    ok(run_mlv(victim, "pull"))
    assert (victim / "data" / "a.txt").read_text() == "alpha\n"
    assert tree(shared)


def test_a_committed_cache_dir_inside_the_repository_is_used(attacker: Path,
                                                             tmp_path: Path) -> None:
    set_committed_cache(attacker, "team-cache/")
    (attacker / ".gitignore").write_text("/team-cache/\n")
    commit_all(attacker)
    victim = clone(attacker, tmp_path)

    ok(run_mlv(victim, "pull"))
    assert (victim / "data" / "a.txt").read_text() == "alpha\n"
    assert (victim / "team-cache" / "xxh128").is_dir()


def test_objects_committed_in_an_inside_cache_dir_are_refused(attacker: Path,
                                                              tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    set_committed_cache(attacker, "team-cache")
    (attacker / "team-cache").mkdir()
    os.symlink(outside, attacker / "team-cache" / "xxh128")
    commit_all(attacker)
    victim = clone(attacker, tmp_path)

    one_error(run_mlv(victim, "pull"), "git tracks team-cache/xxh128",
              "a clone may not bring")
    assert tree(outside) == {}


def test_mlv_config_puts_an_outside_cache_dir_in_config_local(mlv_repo: Path,
                                                              tmp_path: Path) -> None:
    """The user's own outside cache would be refused in .mlv/config; it goes to
    .mlv/config.local instead, with a note, and works."""
    shared = tmp_path / "shared"
    res = run_mlv(mlv_repo, "config", "cache.dir", str(shared))
    ok(res)
    assert res.stdout == ("cache.dir is set in .mlv/config.local (this clone only): the "
                          "committed .mlv/config may only name a folder inside the "
                          "repository\n")
    assert "cache" not in (yaml.safe_load((mlv_repo / ".mlv" / "config").read_text()) or {})
    make_tree(mlv_repo, {"x.txt": "x\n"})
    ok(run_mlv(mlv_repo, "add", "x.txt"))
    assert tree(shared)

    res = run_mlv(mlv_repo, "config", "cache.dir", "inside-cache")
    assert res.exit_code == 0 and res.stdout == "", res.output
    assert yaml.safe_load((mlv_repo / ".mlv" / "config").read_text()) == {
        "cache": {"dir": "inside-cache"}}


# ---- E: core.jobs ----------------------------------------------------------------------

def test_committed_core_jobs_is_capped(attacker: Path, tmp_path: Path) -> None:
    config = attacker / ".mlv" / "config"
    data = yaml.safe_load(config.read_text())
    data["core"]["jobs"] = 1000000
    config.write_text(yaml.safe_dump(data))
    commit_all(attacker)
    victim = clone(attacker, tmp_path)

    res = run_mlv(victim, "pull")
    one_error(res, "core.jobs: expected a whole number from 1 to 1024, got 1000000")
    assert "hint: fix it with `mlv config core.jobs VALUE`" in res.stderr
    assert not (victim / "data").exists()
    one_error(run_mlv(victim, "config", "core.jobs", "1025"), "from 1 to 1024")
    ok(run_mlv(victim, "config", "core.jobs", "1024"))
