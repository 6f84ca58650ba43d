"""cache.type: how workspace files relate to cache objects (hardlink, symlink, copy, default)."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import xxhash

from tests.conftest import cache_objects, make_tree, read_tree, run_mlv

FILES = {"a.txt": b"alpha\n", "sub/b.bin": b"\x00\x01beta", "sub/deeper/c": b"gamma",
         "same-as-a.txt": b"alpha\n"}
MODEL = b"model weights"
KINDS = ["hardlink", "symlink", "copy", "default"]


def ok(res) -> None:  # type: ignore[no-untyped-def]
    assert res.exit_code == 0, res.output


def oid(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def workspace_files(repo: Path) -> dict[Path, bytes]:
    files = {repo / "data" / rel: data for rel, data in FILES.items()}
    files[repo / "model.pkl"] = MODEL
    return files


def check_kind(repo: Path, kind: str) -> None:
    """Every tracked workspace file is a `kind` link to its object, with the right bytes."""
    objs = cache_objects(repo)
    for path, data in workspace_files(repo).items():
        obj = objs[oid(data)]
        assert path.read_bytes() == data, path
        mode = stat.S_IMODE(path.stat().st_mode)
        if kind == "hardlink":
            assert not path.is_symlink(), path
            assert path.stat().st_ino == obj.stat().st_ino, path
            assert mode & 0o222 == 0, (path, oct(mode))
        elif kind == "symlink":
            assert path.is_symlink(), path
            assert path.resolve() == obj.resolve(), path
            assert mode & 0o222 == 0, (path, oct(mode))
        else:  # copy, and the default reflink,copy (ext4 has no reflinks)
            assert not path.is_symlink(), path
            assert path.stat().st_ino != obj.stat().st_ino, path
            assert mode & stat.S_IWUSR, (path, oct(mode))
        if kind in ("hardlink", "symlink") and os.geteuid() != 0:
            with pytest.raises(PermissionError):
                path.open("ab")


def check_objects_read_only(repo: Path) -> None:
    objs = cache_objects(repo)
    assert objs
    for name, path in objs.items():
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert stat.S_ISREG(path.lstat().st_mode), name
        assert mode & 0o222 == 0, (name, oct(mode))


def clean(mlv, repo: Path) -> None:  # type: ignore[no-untyped-def]
    res = mlv("status", cwd=repo)
    assert (res.exit_code, res.stdout) == (0, "everything is up to date\n"), res.output


@pytest.fixture
def setup(mlv_repo: Path, mlv):  # type: ignore[no-untyped-def]
    def make(kind: str) -> Path:
        if kind != "default":
            ok(mlv("config", "cache.type", kind, cwd=mlv_repo))
        data: dict = {}
        for rel, content in FILES.items():
            *folders, name = rel.split("/")
            node = data
            for folder in folders:
                node = node.setdefault(folder, {})
            node[name] = content
        make_tree(mlv_repo, {"data": data, "model.pkl": MODEL})
        return mlv_repo

    return make


@pytest.mark.parametrize("kind", KINDS)
def test_add_links_the_workspace_per_cache_type(setup, mlv, kind: str) -> None:  # type: ignore[no-untyped-def]
    repo = setup(kind)

    ok(mlv("add", "data", "model.pkl", cwd=repo))

    check_kind(repo, kind)
    check_objects_read_only(repo)
    clean(mlv, repo)
    # A second add changes nothing and keeps the links.
    res = mlv("add", "data", "model.pkl", cwd=repo)
    ok(res)
    assert all(line.startswith("unchanged ") for line in res.stdout.splitlines())
    check_kind(repo, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_checkout_recreates_the_same_link_type(setup, mlv, kind: str) -> None:  # type: ignore[no-untyped-def]
    repo = setup(kind)
    ok(mlv("add", "data", "model.pkl", cwd=repo))
    shutil.rmtree(repo / "data")
    (repo / "model.pkl").unlink()

    res = mlv("checkout", cwd=repo)

    ok(res)
    assert re.fullmatch(r"5 added, 0 modified, 0 deleted, \S+ \S+ written\n", res.stdout)
    check_kind(repo, kind)
    check_objects_read_only(repo)
    clean(mlv, repo)


@pytest.mark.parametrize("kind", KINDS)
def test_checkout_of_a_single_deleted_file_in_a_linked_folder(setup, mlv, kind: str) -> None:  # type: ignore[no-untyped-def]
    repo = setup(kind)
    ok(mlv("add", "data", "model.pkl", cwd=repo))
    (repo / "data" / "sub" / "b.bin").unlink()

    res = mlv("checkout", "-v", cwd=repo)

    ok(res)
    size = (repo / "data" / "sub" / "b.bin").stat().st_size
    assert res.stdout.splitlines() == ["A data/sub/b.bin",
                                       f"1 added, 0 modified, 0 deleted, {size} B written"]
    check_kind(repo, kind)
    clean(mlv, repo)


@pytest.mark.parametrize("src", KINDS)
@pytest.mark.parametrize("dst", KINDS)
def test_relink_converts_links(setup, mlv, src: str, dst: str) -> None:  # type: ignore[no-untyped-def]
    repo = setup(src)
    ok(mlv("add", "data", "model.pkl", cwd=repo))
    if dst == "default":
        ok(mlv("config", "--unset", "cache.type", cwd=repo))
    else:
        ok(mlv("config", "cache.type", dst, cwd=repo))

    res = mlv("checkout", "--relink", cwd=repo)

    ok(res)
    copies = {"copy", "default"}
    if src == dst or {src, dst} <= copies:
        assert res.stdout == "workspace already matches the pointers\n"
    else:
        assert res.stdout.splitlines()[-1] == "0 added, 0 modified, 0 deleted, 5 relinked"
    check_kind(repo, dst)
    check_objects_read_only(repo)
    clean(mlv, repo)
    # Plain checkout leaves the links alone.
    res = mlv("checkout", cwd=repo)
    ok(res)
    check_kind(repo, dst)


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_linked_files_keep_cache_objects_safe_from_remove_outs(setup, mlv, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Deleting linked workspace data never takes the cache objects with it."""
    repo = setup(kind)
    ok(mlv("add", "data", "model.pkl", cwd=repo))
    before = {name: p.read_bytes() for name, p in cache_objects(repo).items()}

    ok(mlv("remove", "--outs", "data.mlv", "model.pkl.mlv", cwd=repo))

    assert not (repo / "data").exists()
    assert {name: p.read_bytes() for name, p in cache_objects(repo).items()} == before
    check_objects_read_only(repo)


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_changing_a_linked_file_by_replacing_it(setup, mlv, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Editors and tools replace files; the cache object behind a link stays intact and
    the change is seen, recorded and undone as usual."""
    repo = setup(kind)
    ok(mlv("add", "data", "model.pkl", cwd=repo))
    target = repo / "data" / "a.txt"
    obj = cache_objects(repo)[oid(b"alpha\n")]
    target.unlink()
    target.write_bytes(b"edited\n")

    res = mlv("status", cwd=repo)
    assert res.stdout.splitlines()[:2] == ["data (data.mlv): modified", "    modified: a.txt"]
    assert obj.read_bytes() == b"alpha\n"

    ok(mlv("add", "data", cwd=repo))
    assert target.read_bytes() == b"edited\n"
    check_objects_read_only(repo)
    new_obj = cache_objects(repo)[oid(b"edited\n")]
    if kind == "hardlink":
        assert target.stat().st_ino == new_obj.stat().st_ino
    else:
        assert target.resolve() == new_obj.resolve()
    clean(mlv, repo)


def _other_device(path: Path) -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != path.stat().st_dev:
        return shm
    return None


def test_hardlink_falls_back_to_copy_across_devices(mlv_repo: Path, tmp_path: Path) -> None:
    # A subprocess: mlv remembers per process which link types failed.
    shm = _other_device(tmp_path)
    if shm is None:
        pytest.skip("needs a second filesystem (/dev/shm)")
    cache = shm / f"mlv-test-cache-{os.getpid()}-{tmp_path.name}"
    try:
        ok(run_mlv(mlv_repo, "config", "cache.dir", str(cache)))
        ok(run_mlv(mlv_repo, "config", "cache.type", "hardlink,copy"))
        make_tree(mlv_repo, {"data": {"a": b"a", "b": b"b"}})
        ok(run_mlv(mlv_repo, "add", "data"))
        shutil.rmtree(mlv_repo / "data")
        ok(run_mlv(mlv_repo, "checkout"))
        assert read_tree(mlv_repo / "data") == {"a": b"a", "b": b"b"}
        for name in ("a", "b"):
            assert (mlv_repo / "data" / name).stat().st_nlink == 1
        res = run_mlv(mlv_repo, "status")
        assert res.stdout == "everything is up to date\n", res.output
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_hardlink_only_across_devices_says_what_to_do(mlv_repo: Path, tmp_path: Path) -> None:
    shm = _other_device(tmp_path)
    if shm is None:
        pytest.skip("needs a second filesystem (/dev/shm)")
    cache = shm / f"mlv-test-cache-{os.getpid()}-{tmp_path.name}"
    try:
        ok(run_mlv(mlv_repo, "config", "cache.dir", str(cache)))
        ok(run_mlv(mlv_repo, "config", "cache.type", "hardlink"))
        make_tree(mlv_repo, {"data": {"a": b"a"}})

        res = run_mlv(mlv_repo, "add", "data")

        assert res.exit_code == 1
        assert "Traceback" not in res.output
        assert read_tree(mlv_repo / "data") == {"a": b"a"}
        assert "hint:" in res.stderr, res.stderr
    finally:
        shutil.rmtree(cache, ignore_errors=True)
