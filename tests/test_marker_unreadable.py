"""A format-2 remote whose marker (`mlv-remote.json`) is there but cannot be read is
refused with one clear line: only a marker that is not there means format 1. Before,
any error on that key read the remote as format 1, and a push then stored its files
loose in a format-2 remote."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlv.remote.packs import MARKER_KEY
from tests.conftest import add_remote, commit_all, make_tree, one_error


def _ok(res: Any) -> Any:
    assert res.exit_code == 0, res.output
    return res


def _pushed(mlv: Any, repo: Path) -> None:
    """`data/` pushed (the remote becomes format 2), then a new file added, not pushed."""
    make_tree(repo, {"data": {"a.txt": "alpha\n", "b.txt": "beta\n"}})
    _ok(mlv("add", "data", cwd=repo))
    commit_all(repo, "data")
    _ok(mlv("push", cwd=repo))
    (repo / "new.txt").write_text("not pushed yet\n")
    _ok(mlv("add", "new.txt", cwd=repo))


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(res: Any, remote: str) -> None:
    line = one_error(res, f"remote '{remote}'", f"cannot read its format marker {MARKER_KEY}")
    assert "hint:" in res.stderr, res.stderr
    assert "format 1" not in line


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_folder_remote_whose_marker_is_not_a_file_is_refused(
        mlv: Any, mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest,
        kind: str) -> None:
    folder = Path(add_remote(mlv_repo, "local", request, tmp_path))
    _pushed(mlv, mlv_repo)
    marker = folder / MARKER_KEY
    marker.unlink()
    if kind == "directory":
        marker.mkdir()
    else:
        os.mkfifo(marker)
    before = _folder_files(folder)
    res = mlv("push", cwd=mlv_repo)
    _refused(res, "store")
    assert f"it is a {'folder' if kind == 'directory' else 'FIFO'}" in res.stderr
    assert "make that file readable again" in res.stderr
    assert _folder_files(folder) == before  # nothing was stored, loose or packed
    assert not (folder / "xxh128").exists() or all(
        p.name.endswith(".dir") for p in (folder / "xxh128").rglob("*") if p.is_file())
    for command in (("pull",), ("fetch",), ("status", "--cloud"), ("fsck", "-r", "store"),
                    ("gc", "--cloud", "--workspace", "--dry")):
        _refused(mlv(*command, cwd=mlv_repo), "store")


def test_a_folder_remote_that_does_not_exist_still_says_so(
        mlv: Any, mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    folder = Path(add_remote(mlv_repo, "local", request, tmp_path))
    _pushed(mlv, mlv_repo)
    shutil.rmtree(folder)
    for command in ("push", "status --cloud"):
        line = one_error(mlv(*command.split(), cwd=mlv_repo), str(folder), "does not exist")
        assert MARKER_KEY not in line
    assert not folder.exists()


@pytest.mark.slow
def test_an_s3_marker_that_cannot_be_read_stops_push(
        mlv: Any, mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest,
        s3_endpoint: str, s3_bucket: str) -> None:
    """A lifecycle rule moved the marker to an archive storage class: S3 answers its GET
    with 403 InvalidObjectState. Before, push took the remote for format 1 and stored
    the new file as a loose object beside the packs."""
    import boto3

    add_remote(mlv_repo, "s3", request, tmp_path)
    _pushed(mlv, mlv_repo)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    key = f"project/{MARKER_KEY}"
    s3.copy_object(Bucket=s3_bucket, Key=key, CopySource={"Bucket": s3_bucket, "Key": key},
                   StorageClass="GLACIER")

    def keys() -> set[str]:
        listed = s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
        return {o["Key"] for o in listed}

    before = keys()
    res = mlv("push", cwd=mlv_repo)
    _refused(res, "store")
    assert "access denied" in res.stderr and s3_bucket in res.stderr
    assert keys() == before  # no loose object beside the packs
    for command in (("pull",), ("status", "--cloud")):
        _refused(mlv(*command, cwd=mlv_repo), "store")


def test_a_folder_remote_that_is_a_file_says_so(
        mlv: Any, mlv_repo: Path, tmp_path: Path) -> None:
    """The URL names a regular file: one line saying it is not a folder (before: a line
    about an unreadable marker, with a hint to make that file readable)."""
    target = tmp_path / "not-a-folder"
    target.write_text("x\n")
    _ok(mlv("remote", "add", "-d", "store", str(target), cwd=mlv_repo))
    (mlv_repo / "new.txt").write_text("not pushed yet\n")
    _ok(mlv("add", "new.txt", cwd=mlv_repo))
    for command in ("push", "status --cloud"):
        line = one_error(mlv(*command.split(), cwd=mlv_repo), str(target), "is not a folder")
        assert MARKER_KEY not in line
    assert target.read_text() == "x\n"
