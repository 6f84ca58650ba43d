"""Repairing a format-2 remote after `mlv fsck --remote` finds a damaged pack: delete the
pack, push again from a clone that has the files. A record whose pack is not on the
remote counts as absent (docs/formats.md), so push stores those blobs again (in a new
pack and a new segment), and pull and `status --cloud` call the files missing instead of
failing on a pack that is gone. Before, the segments still listing the deleted pack made
push skip those files for ever."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from mlv import transfer
from mlv.api import remote as remote_api
from mlv.odb import ObjectStore
from mlv.remote import Remote, packcheck
from mlv.remote.packed import PackedRemote, make_format2, open_format
from mlv.remote.packs import parse_pack
from mlv.repo import Repo
from tests.conftest import (
    add_remote,
    clone,
    commit_all,
    make_tree,
    one_error,
    read_tree,
    xxh,
)
from tests.test_remote_conformance import backend  # noqa: F401 - the remotes of keys

MiB = 2**20


def _ok(res: Any) -> Any:
    assert res.exit_code == 0, res.output
    return res


def _inner(repo: Path) -> Remote:
    remote = remote_api.resolve(Repo.find(str(repo)))
    assert isinstance(remote, PackedRemote)
    return remote.inner


def _pack_of(inner: Remote, oid: str) -> tuple[str, int]:
    """The key of the pack holding blob `oid`, and the blob's offset in it."""
    for key in sorted(inner.list_keys("packs/")):
        for e in parse_pack(inner.get_key(key)):
            if e.oid == oid:
                return key, e.offset
    raise AssertionError(f"{oid} is in no pack")


def _flip(inner: Remote, key: str, at: int) -> None:
    data = bytearray(inner.get_key(key))
    data[at] ^= 0xFF
    inner.put_key(key, bytes(data))


def _delete_by_hand(kind: str, url: str, key: str, request: pytest.FixtureRequest) -> None:
    """What a user does: `rm` in the folder, `aws s3 rm` on S3."""
    if kind == "local":
        os.remove(os.path.join(url, *key.split("/")))
        return
    import boto3

    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    boto3.client("s3", endpoint_url=request.getfixturevalue("s3_endpoint")).delete_object(
        Bucket=bucket, Key=f"{prefix}/{key}")


@pytest.mark.parametrize("remote_kind", ["local", pytest.param("s3", marks=pytest.mark.slow)])
def test_delete_the_damaged_pack_and_push_again_repairs_the_remote(
        mlv: Any, mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest,
        remote_kind: str) -> None:
    repo = mlv_repo
    url = add_remote(repo, remote_kind, request, tmp_path)
    # v1: a folder of small files and a big file (stored as chunks), in one pack
    make_tree(repo, {"data": {"a.txt": "alpha\n", "b.txt": "beta\n",
                              "sub": {"c.txt": "gamma\n"}}})
    (repo / "model.bin").write_bytes(random.Random(3).randbytes(6 * MiB))
    _ok(mlv("add", "data", "model.bin", cwd=repo))
    commit_all(repo, "v1")
    _ok(mlv("push", cwd=repo))
    inner = _inner(repo)
    first = sorted(inner.list_keys("packs/"))
    # v2: another file, in a pack of its own that stays good
    (repo / "extra.txt").write_text("extra\n")
    _ok(mlv("add", "extra.txt", cwd=repo))
    commit_all(repo, "v2")
    _ok(mlv("push", cwd=repo))
    (second,) = set(inner.list_keys("packs/")) - set(first)
    second_bytes = inner.get_key(second)

    # a byte of b.txt flips in its pack: fsck names the pack, the paths, and the repair
    key, offset = _pack_of(inner, xxh(b"beta\n"))
    assert key != second
    _flip(inner, key, offset)
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "damaged pack", "remote 'store'")
    assert f"damaged pack {key}: " in res.stdout
    assert "(used by data.mlv (data/b.txt))" in res.stdout
    assert f"  to repair: delete {key} from the remote, then run `mlv push` from a clone " \
        "that has the files it affects in its cache" in res.stdout
    assert f"hint: delete {key} from remote 'store', then run `mlv push`" in res.stderr

    # the repair: delete the pack by hand; the segment listing it stays
    _delete_by_hand(remote_kind, url, key, request)
    assert key not in inner.list_keys("packs/")
    res = _ok(mlv("status", "--cloud", cwd=repo))
    assert "data (data.mlv)" in res.stdout and "not pushed" in res.stdout, res.stdout
    assert "model.bin" in res.stdout and "extra.txt" not in res.stdout, res.stdout
    # fsck now finds the pack missing, and says that a push alone repairs it
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "damaged pack")
    assert f"damaged pack {key}: missing" in res.stdout, res.stdout
    assert "hint: run `mlv push` from a clone that has the affected files in its cache" \
        in res.stderr, res.stderr

    # a teammate's pull, before the repair: the files are missing (named), the rest comes
    mate = clone(repo, tmp_path, "mate")
    res = mlv("pull", cwd=mate)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "missing" in res.output and "data/b.txt" in res.output, res.output
    assert (mate / "extra.txt").read_text() == "extra\n"

    res = _ok(mlv("push", cwd=repo))
    assert "stored again" in res.output and key in res.output, res.output
    assert inner.get_key(second) == second_bytes  # the good pack is left alone
    res = _ok(mlv("fsck", "-r", "store", cwd=repo))
    assert "all good" in res.stdout, res.stdout
    assert _ok(mlv("push", cwd=repo)).output.startswith("everything is up to date")

    for name, puller in (("fresh", clone(repo, tmp_path, "fresh")), ("mate", mate)):
        _ok(mlv("pull", cwd=puller))
        assert read_tree(puller / "data") == read_tree(repo / "data"), name
        assert (puller / "model.bin").read_bytes() == (repo / "model.bin").read_bytes()
        assert (puller / "extra.txt").read_text() == "extra\n"


def test_records_of_a_deleted_pack_count_as_absent(backend: Remote,  # noqa: F811
                                                   tmp_path: Path) -> None:
    """The same rule on every backend (memory, folder, S3), through the object layer."""
    cache = tmp_path / "cache"
    cache.mkdir()
    odb = ObjectStore(str(cache))
    small = {odb.add_bytes(f"small {i}\n".encode()) for i in range(10)}
    big = odb.add_bytes(random.Random(5).randbytes(5 * MiB))
    roots = small | {big}
    packed = make_format2(backend)
    first = transfer.push(odb, packed, roots)
    assert not first.failed, first.failed
    assert open_format(backend).has(sorted(roots)) == roots
    (key,) = backend.list_keys("packs/")
    assert not backend.delete_keys([key])

    reader = open_format(backend)
    assert isinstance(reader, PackedRemote)
    assert reader.has(sorted(roots)) == set()  # nothing counts as stored any more
    assert reader.list_oids() == set()
    got = tmp_path / "got"
    failures = reader.download([(o, str(got / o)) for o in sorted(roots)], None)
    assert set(failures) == roots
    assert all(isinstance(e, FileNotFoundError) for e in failures.values())

    # pushed again with a new file: the blobs go into a pack of another name, and a new
    # segment; the old one still lists the deleted pack, which readers pass over
    extra = odb.add_bytes(b"a new file\n")
    pushed = transfer.push(odb, open_format(backend), roots | {extra})
    assert not pushed.failed and pushed.moved == len(roots) + 1
    assert key not in backend.list_keys("packs/")
    assert len(backend.list_keys("index/")) == 2
    again = open_format(backend)
    assert again.has(sorted(roots | {extra})) == roots | {extra}
    fetched = ObjectStore(str(tmp_path / "fetched"))
    os.makedirs(fetched.root, exist_ok=True)
    result = transfer.fetch(fetched, again, roots | {extra}, 2)
    assert not result.failed and not result.missing and not result.corrupted
    assert fetched.existing(sorted(roots | {extra})) == roots | {extra}
    assert isinstance(again, PackedRemote)
    checked = packcheck.check(again)
    assert checked.ok, checked.damage
    assert "every blob it held is in another pack" in checked.leftovers[key]


def test_fsck_names_several_damaged_packs_in_one_hint(mlv: Any, mlv_repo: Path,
                                                      tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    repo = mlv_repo
    add_remote(repo, "local", request, tmp_path)
    for name, text in (("a.txt", "alpha\n"), ("b.txt", "beta\n")):  # a pack each
        (repo / name).write_text(text)
        _ok(mlv("add", name, cwd=repo))
        commit_all(repo, name)
        _ok(mlv("push", cwd=repo))
    inner = _inner(repo)
    keys = set()
    for text in ("alpha\n", "beta\n"):
        key, offset = _pack_of(inner, xxh(text.encode()))
        _flip(inner, key, offset)
        keys.add(key)
    assert len(keys) == 2
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "2 damaged packs")
    for key in keys:
        assert f"  to repair: delete {key} from the remote" in res.stdout, res.stdout
    assert "hint: delete the 2 damaged packs above from remote 'store', then run " \
        "`mlv push` from a clone that has the affected files in its cache" in res.stderr
