"""add -> delete -> checkout gives back the exact bytes; status and checkout tell the truth."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.conftest import cache_objects, git, make_tree, read_tree


def ok(res) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output


def pointer_out(file: Path) -> dict:
    return yaml.safe_load(file.read_text(encoding="utf-8"))["outs"][0]


def oid(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def ignored_and_untracked(repo: Path) -> tuple[set[str], set[str]]:
    out = subprocess.run(["git", "status", "--porcelain", "--ignored=matching", "-z", "-uall"],
                         cwd=repo, check=True, capture_output=True).stdout.decode()
    ignored, untracked = set(), set()
    for item in filter(None, out.split("\0")):
        code, path = item[:2], item[3:]
        (ignored if code == "!!" else untracked).add(path)
    return ignored, untracked


# ---- odd names -------------------------------------------------------------------------

ODD_TREE = {
    "données": {"été 2024": {"naïve ü.bin": b"\x00\xffbytes\n", "ça va.txt": "oui"}},
    "🚀 launch": {"📦 box.bin": b"box", "🚀": b"rocket"},
    "with space": {" leading space": b"1", "trailing space ": b"2", "two  spaces": b"3"},
    "-x": {"-y": b"dash", "--long": b"long"},
    "#hash": {"#h": b"h"},
    "[brackets]": {"[a-z]": b"glob", "*": b"star", "?": b"q", "!bang": b"bang"},
    "back\\slash": {"x\\y": b"bs"},
}
ODD_FILES = {"-single": b"dash file", "#single": b"hash file", "[x]": b"glob file",
             "é 😀.bin": b"unicode file", "trail ": b"trailing space"}
# Neighbours whose names a sloppy .gitignore line would also match.
NEIGHBOURS = {"x": b"n", "b": b"n", "donnees": b"n", "-single2": b"n", "single": b"n",
              "with": b"n", "hash": b"n", "trail": b"n"}


def test_odd_names_round_trip_byte_identically(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {**ODD_TREE, **ODD_FILES, **NEIGHBOURS})
    tracked = list(ODD_TREE) + list(ODD_FILES)
    before = read_tree(repo)

    res = mlv("add", "--", *tracked, cwd=repo)

    ok(res)
    for name in tracked:
        assert (repo / (name + ".mlv")).is_file(), name
        assert pointer_out(repo / (name + ".mlv"))["path"] == name
    for name in tracked:
        remove(repo / name)
    res = mlv("checkout", cwd=repo)
    ok(res)
    after = {k: v for k, v in read_tree(repo).items() if not k.startswith(".")}
    assert after == {k: v for k, v in before.items() if not k.startswith(".")} | {
        name + ".mlv": (repo / (name + ".mlv")).read_bytes() for name in tracked}
    assert mlv("status", cwd=repo).stdout == "everything is up to date\n"


def test_gitignore_ignores_exactly_the_tracked_paths(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {**ODD_TREE, **ODD_FILES, **NEIGHBOURS})
    tracked = list(ODD_TREE) + list(ODD_FILES)
    ok(mlv("add", "--", *tracked, cwd=repo))

    ignored, untracked = ignored_and_untracked(repo)

    assert ignored == {".mlv/cache/", ".mlv/tmp/"} | {
        name + "/" if name in ODD_TREE else name for name in tracked}
    assert untracked == {".gitignore"} | {name + ".mlv" for name in tracked} | set(NEIGHBOURS)


def test_gitignore_in_a_subfolder_for_a_nested_unicode_path(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"données": {"été 2024": {"naïve ü.bin": b"n", "naïve": b"keep"}}})

    ok(mlv("add", "données/été 2024/naïve ü.bin", cwd=repo))

    folder = repo / "données" / "été 2024"
    assert (folder / ".gitignore").read_text(encoding="utf-8") == "/naïve\\ ü.bin\n"
    assert not (repo / ".gitignore").exists()
    ignored, untracked = ignored_and_untracked(repo)
    assert ignored - {".mlv/cache/", ".mlv/tmp/"} == {"données/été 2024/naïve ü.bin"}
    assert untracked == {"données/été 2024/naïve", "données/été 2024/naïve ü.bin.mlv",
                         "données/été 2024/.gitignore"}
    (folder / "naïve ü.bin").unlink()
    ok(mlv("checkout", "données/été 2024/naïve ü.bin.mlv", cwd=repo))
    assert (folder / "naïve ü.bin").read_bytes() == b"n"


def test_suggested_git_add_command_works_for_a_leading_dash(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"-x": b"dash", "#h": b"hash"})
    res = mlv("add", "--", "-x", "#h", cwd=repo)
    ok(res)
    prefix = "to track the change with git, run: "
    [line] = [line for line in res.stdout.splitlines() if line.startswith(prefix)]

    run = subprocess.run(["bash", "-c", line[len(prefix):]], cwd=repo, capture_output=True,
                         text=True)

    assert run.returncode == 0, run.stderr.splitlines()[:1]
    staged = git(repo, "diff", "--cached", "--name-only").split("\n")
    assert {"-x.mlv", "#h.mlv", ".gitignore"} <= set(staged)


# ---- file modes and shapes -----------------------------------------------------------

def is_exec(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def test_exec_bits_survive_add_remove_checkout(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"bin": {"run.sh": b"#!/bin/sh\necho hi\n", "lib": {"tool": b"#!/x\n"},
                             "README": b"#!/bin/sh\necho hi\n"},
                     "deploy.sh": b"#!/bin/sh\nexit 0\n", "notes.txt": b"plain"})
    for p in ("bin/run.sh", "bin/lib/tool", "deploy.sh"):
        (repo / p).chmod(0o755)
    ok(mlv("add", "bin", "deploy.sh", "notes.txt", cwd=repo))
    assert pointer_out(repo / "deploy.sh.mlv").get("exec") is True
    assert "exec" not in pointer_out(repo / "notes.txt.mlv")

    for p in ("bin", "deploy.sh", "notes.txt"):
        remove(repo / p)
    ok(mlv("checkout", cwd=repo))

    assert is_exec(repo / "bin" / "run.sh")
    assert is_exec(repo / "bin" / "lib" / "tool")
    assert is_exec(repo / "deploy.sh")
    # Same bytes as run.sh, but not executable: the mode is per path, not per object.
    assert not is_exec(repo / "bin" / "README")
    assert not is_exec(repo / "notes.txt")
    assert (repo / "bin" / "README").read_bytes() == (repo / "bin" / "run.sh").read_bytes()
    assert mlv("status", cwd=repo).stdout == "everything is up to date\n"


def test_empty_files_and_deep_nesting(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    spec = {"empty": b"", "sub": {"e1": b"", "e2": b""},
            "l1": {"l2": {"l3": {"l4": {"l5": {"deep.bin": b"deep", "empty": b""}}}}}}
    make_tree(repo / "data", spec)
    make_tree(repo, {"zero.bin": b""})
    before = read_tree(repo / "data")

    ok(mlv("add", "data", "zero.bin", cwd=repo))

    out = pointer_out(repo / "data.mlv")
    assert (out["size"], out["nfiles"]) == (4, 5)
    assert pointer_out(repo / "zero.bin.mlv")["size"] == 0
    # All empty files are one object.
    assert oid(b"") in cache_objects(repo)
    shutil.rmtree(repo / "data")
    (repo / "zero.bin").unlink()
    ok(mlv("checkout", cwd=repo))
    assert read_tree(repo / "data") == before
    assert (repo / "zero.bin").read_bytes() == b""
    assert (repo / "data/l1/l2/l3/l4/l5/empty").is_file()
    assert mlv("status", cwd=repo).stdout == "everything is up to date\n"


def test_re_add_after_a_change_stores_only_new_objects(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo / "data", {f"f{i:02}.txt": f"file {i}\n" for i in range(50)})
    ok(mlv("add", "data", cwd=repo))
    first = pointer_out(repo / "data.mlv")
    objs = set(cache_objects(repo))
    assert len(objs) == 51

    res = mlv("add", "data", cwd=repo)
    ok(res)
    assert res.stdout.startswith("unchanged data (50 files, ")
    assert set(cache_objects(repo)) == objs

    (repo / "data" / "f07.txt").write_bytes(b"changed!\n")
    res = mlv("add", "data", cwd=repo)

    ok(res)
    assert res.stdout.startswith("added data (50 files, ")
    second = pointer_out(repo / "data.mlv")
    new = set(cache_objects(repo)) - objs
    assert new == {oid(b"changed!\n"), second["xxh128"]}
    assert second["xxh128"] != first["xxh128"]
    assert second["size"] == first["size"] - len(b"file 7\n") + len(b"changed!\n")
    assert second["nfiles"] == 50
    assert mlv("status", cwd=repo).stdout == "everything is up to date\n"


def test_re_add_of_a_single_file_updates_the_pointer(mlv_repo: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    repo = mlv_repo
    make_tree(repo, {"model.pkl": b"weights v1"})
    ok(mlv("add", "model.pkl", cwd=repo))
    (repo / "model.pkl").write_bytes(b"weights, version 2")
    before = set(cache_objects(repo))

    ok(mlv("add", "model.pkl", cwd=repo))

    assert pointer_out(repo / "model.pkl.mlv") == {
        "path": "model.pkl", "xxh128": oid(b"weights, version 2"), "size": 18}
    assert set(cache_objects(repo)) - before == {oid(b"weights, version 2")}


# ---- status --------------------------------------------------------------------------

@pytest.fixture
def tracked(mlv_repo: Path, mlv) -> Path:  # type: ignore[no-untyped-def]
    make_tree(mlv_repo, {"data": {"a.txt": b"a1", "b.txt": b"b1", "sub": {"c.txt": b"c1"}},
                         "model.pkl": b"model v1"})
    ok(mlv("add", "data", "model.pkl", cwd=mlv_repo))
    return mlv_repo


def test_status_clean(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    for args in ((), ("data",), ("data.mlv",), ("data/",), ("model.pkl", "data")):
        res = mlv("status", *args, cwd=tracked)
        ok(res)
        assert res.stdout == "everything is up to date\n", args
    res = mlv("status", "--json", cwd=tracked)
    ok(res)
    assert json.loads(res.stdout) == {}
    res = mlv("status", "-q", cwd=tracked)
    assert (res.exit_code, res.output) == (0, "")


def test_status_lists_added_modified_deleted(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (tracked / "data" / "a.txt").write_bytes(b"a2")  # same size: found by hash
    (tracked / "data" / "sub" / "c.txt").unlink()
    (tracked / "data" / "new.txt").write_bytes(b"new")
    (tracked / "model.pkl").write_bytes(b"model v2")

    res = mlv("status", cwd=tracked)

    ok(res)
    assert res.stdout.splitlines()[:5] == [
        "data (data.mlv): modified",
        "    added:    new.txt",
        "    modified: a.txt",
        "    deleted:  sub/c.txt",
        "model.pkl (model.pkl.mlv): modified",
    ]
    assert len(res.stdout.splitlines()) == 6
    assert "mlv add" in res.stdout.splitlines()[-1]
    assert "mlv checkout" in res.stdout.splitlines()[-1]
    for target in ("data", "data.mlv"):
        res = mlv("status", target, cwd=tracked)
        assert res.stdout.splitlines()[0] == "data (data.mlv): modified"
        assert "model.pkl" not in res.stdout

    res = mlv("status", "--json", cwd=tracked)
    ok(res)
    assert json.loads(res.stdout) == {
        "data": {"pointer": "data.mlv", "changes": ["modified"],
                 "files": {"added": ["new.txt"], "modified": ["a.txt"],
                           "deleted": ["sub/c.txt"]}},
        "model.pkl": {"pointer": "model.pkl.mlv", "changes": ["modified"]},
    }


@pytest.mark.parametrize("change", ["modified", "deleted", "not in cache"])
def test_status_quiet_exits_1_when_something_differs(tracked: Path, mlv, change: str) -> None:  # type: ignore[no-untyped-def]
    if change == "modified":
        (tracked / "data" / "a.txt").write_bytes(b"changed")
    elif change == "deleted":
        shutil.rmtree(tracked / "data")
    else:
        cache_objects(tracked)[oid(b"b1")].unlink()
    assert mlv("status", cwd=tracked).stdout.startswith(f"data (data.mlv): {change}")

    res = mlv("status", "-q", cwd=tracked)

    assert (res.exit_code, res.stdout, res.stderr) == (1, "", "")
    res = mlv("status", "--quiet", "model.pkl", cwd=tracked)
    assert (res.exit_code, res.output) == (0, "")


def test_status_deleted(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    shutil.rmtree(tracked / "data")
    (tracked / "model.pkl").unlink()

    res = mlv("status", cwd=tracked)

    ok(res)
    assert res.stdout.splitlines()[:2] == ["data (data.mlv): deleted",
                                           "model.pkl (model.pkl.mlv): deleted"]
    assert json.loads(mlv("status", "--json", cwd=tracked).stdout) == {
        "data": {"pointer": "data.mlv", "changes": ["deleted"]},
        "model.pkl": {"pointer": "model.pkl.mlv", "changes": ["deleted"]},
    }


def test_status_not_in_cache(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    ok(mlv("status", cwd=tracked))  # let the stat cache remember the clean tree first
    objs = cache_objects(tracked)
    objs[oid(b"b1")].unlink()
    objs[oid(b"model v1")].unlink()

    res = mlv("status", cwd=tracked)

    ok(res)
    lines = res.stdout.splitlines()
    assert lines == [
        "data (data.mlv): not in cache",
        "    1 object not in the cache",
        "model.pkl (model.pkl.mlv): not in cache",
        "    1 object not in the cache",
        "run `mlv pull` to get the recorded data from the remote",
    ]
    assert json.loads(mlv("status", "--json", cwd=tracked).stdout)["data"] == {
        "pointer": "data.mlv", "changes": ["not in cache"], "missing_objects": 1}


def test_status_missing_manifest(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    dir_oid = pointer_out(tracked / "data.mlv")["xxh128"]
    cache_objects(tracked)[dir_oid].unlink()
    res = mlv("status", "data", cwd=tracked)
    ok(res)
    assert res.stdout.splitlines()[0] == "data (data.mlv): not in cache"


def test_status_unknown_target(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("status", "nope", cwd=tracked)
    assert res.exit_code == 1
    assert "nope is not tracked by mlv" in res.stderr
    assert "Traceback" not in res.output


# ---- checkout ------------------------------------------------------------------------

def test_checkout_refuses_to_overwrite_unsaved_changes(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (tracked / "data" / "a.txt").write_bytes(b"precious edit")
    (tracked / "data" / "added.txt").write_bytes(b"precious new file")
    (tracked / "model.pkl").write_bytes(b"precious model")
    (tracked / "data" / "sub" / "c.txt").unlink()  # restorable, but nothing may change
    before = read_tree(tracked / "data")

    res = mlv("checkout", cwd=tracked)

    assert res.exit_code == 1
    assert res.stdout == ""
    for path in ("data/a.txt", "data/added.txt", "model.pkl"):
        assert path in res.stderr
    assert "data/b.txt" not in res.stderr
    assert "--force" in res.stderr
    assert read_tree(tracked / "data") == before
    assert (tracked / "model.pkl").read_bytes() == b"precious model"


def test_checkout_of_one_target_ignores_conflicts_elsewhere(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (tracked / "model.pkl").write_bytes(b"precious model")
    (tracked / "data" / "a.txt").unlink()
    ok(mlv("checkout", "data.mlv", cwd=tracked))
    assert (tracked / "data" / "a.txt").read_bytes() == b"a1"
    assert (tracked / "model.pkl").read_bytes() == b"precious model"


def test_checkout_replaces_changes_whose_bytes_are_cached(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    # Content of other tracked versions: nothing is lost by replacing or deleting it.
    (tracked / "data" / "a.txt").write_bytes(b"b1")
    (tracked / "data" / "extra.txt").write_bytes(b"model v1")
    (tracked / "model.pkl").write_bytes(b"c1")

    res = mlv("checkout", "-v", cwd=tracked)

    ok(res)
    assert res.stdout.splitlines() == ["M data/a.txt", "M model.pkl", "D data/extra.txt",
                                       "0 added, 2 modified, 1 deleted, 10 B written"]
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}
    assert (tracked / "model.pkl").read_bytes() == b"model v1"


def test_checkout_force_discards_changes(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (tracked / "data" / "a.txt").write_bytes(b"edit")
    (tracked / "data" / "sub" / "deeper").mkdir()
    (tracked / "data" / "sub" / "deeper" / "new.txt").write_bytes(b"new")
    (tracked / "model.pkl").write_bytes(b"edit")

    res = mlv("checkout", "--force", cwd=tracked)

    ok(res)
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}
    assert not (tracked / "data" / "sub" / "deeper").exists()
    assert (tracked / "model.pkl").read_bytes() == b"model v1"
    assert mlv("status", cwd=tracked).stdout == "everything is up to date\n"


def test_checkout_when_already_in_sync(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    res = mlv("checkout", cwd=tracked)
    ok(res)
    assert res.stdout == "workspace already matches the pointers\n"


def test_checkout_relink(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    ok(mlv("config", "cache.type", "hardlink", cwd=tracked))

    res = mlv("checkout", "--relink", cwd=tracked)

    ok(res)
    assert res.stdout.splitlines()[-1] == "0 added, 0 modified, 0 deleted, 4 relinked"
    objs = cache_objects(tracked)
    assert os.path.samefile(tracked / "data" / "a.txt", objs[oid(b"a1")])
    assert os.path.samefile(tracked / "model.pkl", objs[oid(b"model v1")])
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}
    res = mlv("checkout", "--relink", cwd=tracked)
    ok(res)
    assert res.stdout == "workspace already matches the pointers\n"


def test_checkout_reports_missing_objects_and_restores_the_rest(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    cache_objects(tracked)[oid(b"b1")].unlink()
    shutil.rmtree(tracked / "data")
    (tracked / "model.pkl").unlink()

    res = mlv("checkout", cwd=tracked)

    assert res.exit_code == 1
    assert "data/b.txt" in res.stderr
    assert "mlv pull" in res.stderr
    assert "Traceback" not in res.output
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "sub/c.txt": b"c1"}
    assert (tracked / "model.pkl").read_bytes() == b"model v1"


def test_checkout_with_a_missing_manifest(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    cache_objects(tracked)[pointer_out(tracked / "data.mlv")["xxh128"]].unlink()
    shutil.rmtree(tracked / "data")
    (tracked / "model.pkl").unlink()

    res = mlv("checkout", cwd=tracked)

    assert res.exit_code == 1
    assert "data" in res.stderr and "mlv pull" in res.stderr
    assert not (tracked / "data").exists()
    assert (tracked / "model.pkl").read_bytes() == b"model v1"


def test_checkout_file_where_a_folder_belongs(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    shutil.rmtree(tracked / "data")
    (tracked / "data").write_bytes(b"a file in the way")
    res = mlv("status", cwd=tracked)
    assert res.stdout.splitlines()[0] == "data (data.mlv): deleted"

    res = mlv("checkout", cwd=tracked)
    assert res.exit_code == 1
    assert "data" in res.stderr and "--force" in res.stderr
    assert (tracked / "data").read_bytes() == b"a file in the way"

    ok(mlv("checkout", "--force", cwd=tracked))
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}


def test_checkout_cached_file_where_a_folder_belongs(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    shutil.rmtree(tracked / "data")
    (tracked / "data").write_bytes(b"model v1")  # its bytes are cached: safe to replace
    ok(mlv("checkout", cwd=tracked))
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}


def test_checkout_folder_where_a_file_belongs(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (tracked / "model.pkl").unlink()
    make_tree(tracked / "model.pkl", {"inner": {"x.bin": b"uncached"}})

    res = mlv("checkout", cwd=tracked)
    assert res.exit_code == 1
    assert "model.pkl/inner/x.bin" in res.stderr and "--force" in res.stderr
    assert read_tree(tracked / "model.pkl") == {"inner/x.bin": b"uncached"}

    ok(mlv("checkout", "-f", cwd=tracked))
    assert (tracked / "model.pkl").read_bytes() == b"model v1"
    assert mlv("status", cwd=tracked).stdout == "everything is up to date\n"


def test_checkout_file_where_a_subfolder_belongs(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    shutil.rmtree(tracked / "data" / "sub")
    (tracked / "data" / "sub").write_bytes(b"c1")  # cached bytes, wrong shape
    ok(mlv("checkout", cwd=tracked))
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}


def test_checkout_after_git_checkout_of_other_version(tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    git(tracked, "add", "-A")
    git(tracked, "commit", "-qm", "v1")
    make_tree(tracked / "data", {"a.txt": b"a2 longer", "new": {"n": b"n"}})
    (tracked / "data" / "b.txt").unlink()
    (tracked / "model.pkl").write_bytes(b"model v2")
    ok(mlv("add", "data", "model.pkl", cwd=tracked))
    git(tracked, "commit", "-qam", "v2")

    git(tracked, "checkout", "-q", "HEAD~1")
    res = mlv("checkout", cwd=tracked)
    ok(res)
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}
    assert (tracked / "model.pkl").read_bytes() == b"model v1"
    assert not (tracked / "data" / "new").exists()

    git(tracked, "checkout", "-q", "main")
    ok(mlv("checkout", cwd=tracked))
    assert read_tree(tracked / "data") == {"a.txt": b"a2 longer", "new/n": b"n",
                                           "sub/c.txt": b"c1"}
    assert (tracked / "model.pkl").read_bytes() == b"model v2"


def test_checkout_folder_where_a_file_inside_a_tracked_folder_belongs(
        tracked: Path, mlv) -> None:  # type: ignore[no-untyped-def]
    (tracked / "data" / "a.txt").unlink()
    make_tree(tracked / "data" / "a.txt", {"inner": b"uncached"})

    res = mlv("checkout", cwd=tracked)
    assert res.exit_code == 1
    assert "data/a.txt/inner" in res.stderr
    assert (tracked / "data" / "a.txt" / "inner").read_bytes() == b"uncached"

    ok(mlv("checkout", "--force", cwd=tracked))
    assert read_tree(tracked / "data") == {"a.txt": b"a1", "b.txt": b"b1", "sub/c.txt": b"c1"}
    assert mlv("status", cwd=tracked).stdout == "everything is up to date\n"


@pytest.mark.parametrize("path", ["data/a.txt", "model.pkl"])
def test_an_exec_bit_change_is_seen_by_status_and_undone_by_checkout(
        tracked: Path, mlv, path: str) -> None:  # type: ignore[no-untyped-def]
    """`mlv add` records the exec bit (a new pointer), so status must report the change
    and checkout must put the recorded mode back."""
    target = tracked / path
    ok(mlv("status", cwd=tracked))
    target.chmod(0o755)

    res = mlv("status", cwd=tracked)

    assert res.stdout != "everything is up to date\n", res.stdout
    assert res.stdout.splitlines()[0].endswith(": modified")
    ok(mlv("checkout", "--force", cwd=tracked))
    assert not is_exec(target)
    assert mlv("status", cwd=tracked).stdout == "everything is up to date\n"
