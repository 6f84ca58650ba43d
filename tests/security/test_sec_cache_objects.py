"""Cache objects a clone or a hostile cache brings: never followed, never written
through (issue 8, found by an attacker's review after the first fixes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import add_remote, git, run_mlv, xxh
from tests.conftest import one_error as _one_error


def _plant(repo: Path, oid: str, target: str) -> Path:
    """Put a symlink where the cache object `oid` goes, as a committed or shared cache
    could."""
    obj = repo / ".mlv" / "cache" / "xxh128" / oid[:2] / oid[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, obj)
    return obj


def _pointer(path: str, oid: str, size: int, exec_bit: bool = False) -> str:
    text = f"outs:\n- path: {path}\n  xxh128: {oid}\n  size: {size}\n"
    return text + ("  exec: true\n" if exec_bit else "")




@pytest.mark.parametrize("link_type", ["copy", "symlink", "hardlink"])
def test_nested_outs_cannot_plant_a_git_hook(mlv_repo: Path, tmp_path: Path,
                                             link_type: str) -> None:
    # a.mlv tracks `lnk`, whose "object" is a symlink to .git; b.mlv tracks a hook
    # below it. Planning both before writing either once let b write into .git/hooks.
    hook = b"#!/bin/sh\necho pwned > /tmp/mlv-pwned-hook\n"
    link_oid = "1" * 32
    (mlv_repo / "a.mlv").write_text(_pointer("lnk", link_oid, 0))
    (mlv_repo / "b.mlv").write_text(_pointer("lnk/hooks/post-checkout", xxh(hook), len(hook),
                                             exec_bit=True))
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "attack")
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(mlv_repo), str(victim))
    assert run_mlv(victim, "config", "--local", "cache.type", link_type).exit_code == 0
    _plant(victim, link_oid, "../../../../.git")
    obj = victim / ".mlv" / "cache" / "xxh128" / xxh(hook)[:2] / xxh(hook)[2:]
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(hook)
    line = _one_error(run_mlv(victim, "checkout"))
    assert "lnk/hooks/post-checkout" in line and "inside lnk" in line
    assert not (victim / ".git" / "hooks" / "post-checkout").exists()
    assert not os.path.lexists(victim / "lnk")


def test_a_cache_object_that_is_a_symlink_is_never_read(mlv_repo: Path, tmp_path: Path,
                                                         request: pytest.FixtureRequest,
                                                         remote_kind: str) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"SECRET KEY\n")
    oid = "0123456789abcdef0123456789abcdef"
    (mlv_repo / "model.bin.mlv").write_text(_pointer("model.bin", oid, 11))
    # format 1: every key on the remote is looked at (format 2's push: xfail in
    # test_remote_default_format.py)
    url = add_remote(mlv_repo, remote_kind, request, tmp_path, fmt=1)
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "attack")
    _plant(mlv_repo, oid, str(secret))
    for link_type in ("copy", "hardlink", "symlink", "reflink,copy"):
        assert run_mlv(mlv_repo, "config", "--local", "cache.type", link_type).exit_code == 0
        line = _one_error(run_mlv(mlv_repo, "checkout"))
        assert "not a regular file" in line, line
        assert not os.path.lexists(mlv_repo / "model.bin")
    res = run_mlv(mlv_repo, "push")
    assert res.exit_code == 1 and "SECRET" not in res.output, res.output
    if remote_kind == "local":
        pushed = [p.read_bytes() for p in Path(url).rglob("*") if p.is_file()]
        assert b"SECRET KEY\n" not in pushed
    else:
        import boto3

        bucket = url.split("/")[2]
        s3 = boto3.client("s3", endpoint_url=request.getfixturevalue("s3_endpoint"))
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_manifest_object_linking_to_dev_zero_is_one_line(mlv_repo: Path) -> None:
    oid = "2" * 32 + ".dir"
    (mlv_repo / "data.mlv").write_text(_pointer("data", oid, 0) + "  nfiles: 0\n")
    _plant(mlv_repo, oid, "/dev/zero")
    for command in ("status", "checkout", "fsck"):
        res = run_mlv(mlv_repo, command, timeout=60)
        assert res.exit_code == 1, (command, res.output)
        assert "Traceback" not in res.stderr and "unexpected" not in res.stderr, res.stderr
