"""Remote format 2 (mlv/remote/packed.py) over memory, folder and S3 remotes of keys:
small objects in packs, big files as recipes of chunks, verified on the way back; the
format of a new remote (tests/test_remote_default_format.py)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from mlv import transfer
from mlv.hashing import hash_bytes
from mlv.odb import ObjectStore
from mlv.remote import Remote, key_of
from mlv.remote.packed import PackedRemote, make_format2, open_format
from mlv.remote.packs import MARKER_KEY, CorruptDataError, RemoteFormatError
from tests.test_remote_conformance import backend  # noqa: F401 - the remotes of keys
from tests.test_remote_safety import big_template  # noqa: F401 - a repo of 2000 files

MiB = 2**20


def _store(tmp_path: Path, name: str) -> ObjectStore:
    folder = tmp_path / name
    folder.mkdir()
    return ObjectStore(str(folder))


def _big(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)  # no repeats: chunks as in real data


def _fill(odb: ObjectStore, small: int, big: list[bytes]) -> set[str]:
    oids = {odb.add_bytes(f"small object {i}\n".encode() * (i % 9 + 1)) for i in range(small)}
    return oids | {odb.add_bytes(data) for data in big}


def test_round_trip_through_push_and_fetch(backend: Remote, tmp_path: Path) -> None:  # noqa: F811
    src, dst = _store(tmp_path, "src"), _store(tmp_path, "dst")
    big = [_big(1, 5 * MiB), _big(2, 6 * MiB)]
    roots = _fill(src, 300, big)
    packed = make_format2(backend)
    pushed = transfer.push(src, packed, roots)
    assert not pushed.failed and not pushed.missing
    keys = backend.list_keys("")
    assert MARKER_KEY in keys
    assert any(k.startswith("packs/") for k in keys) and any(
        k.startswith("index/") for k in keys)
    assert len([k for k in keys if k.startswith("recipes/")]) == 2
    assert not any(k == key_of(o) for o in roots for k in keys)  # nothing stored loose
    assert len([k for k in keys if k.startswith("packs/")]) <= 3  # 300 objects, few packs

    again = open_format(backend)  # a clone: everything from the remote alone
    assert isinstance(again, PackedRemote)
    assert again.has(sorted(roots)) == roots
    fetched = transfer.fetch(dst, again, roots, 4)
    assert not fetched.failed and not fetched.missing and not fetched.corrupted
    for oid in roots:
        assert Path(dst.path_of(oid)).read_bytes() == Path(src.path_of(oid)).read_bytes()


def test_a_big_file_edited_sends_only_its_new_chunks(backend: Remote, tmp_path: Path  # noqa: F811
                                                     ) -> None:
    src = _store(tmp_path, "src")
    old = _big(3, 8 * MiB)
    new = old + _big(4, 160 * 1024)  # 2 % appended
    packed = make_format2(backend)
    assert not transfer.push(src, packed, {src.add_bytes(old)}).failed
    before = sum(n for k, n in backend.list_keys("packs/").items())
    assert not transfer.push(src, packed, {src.add_bytes(new)}).failed
    sent = sum(n for k, n in backend.list_keys("packs/").items()) - before
    assert sent < 0.1 * len(new), sent  # the shared chunks were not sent again
    dst = _store(tmp_path, "dst")
    oid = hash_bytes(new)
    assert not transfer.fetch(dst, open_format(backend), {oid}, 2).failed
    assert Path(dst.path_of(oid)).read_bytes() == new


def test_a_damaged_pack_never_yields_wrong_bytes(tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src, dst = _store(tmp_path, "src"), _store(tmp_path, "dst")
    roots = _fill(src, 20, [])
    assert not transfer.push(src, make_format2(inner), roots).failed
    (pack,) = [k for k in inner.list_keys("packs/")]
    data = bytearray(inner.get_key(pack))
    data[100] ^= 0xFF  # inside the first blobs
    inner.put_key(pack, bytes(data))
    fetched = transfer.fetch(dst, open_format(inner), roots, 2)
    assert fetched.failed  # the damaged blob is named ...
    assert all("damaged" in why or "does not match" in why for why in fetched.failed.values())
    for oid in roots - set(fetched.failed):  # ... and whatever arrived is intact
        assert Path(dst.path_of(oid)).read_bytes() == Path(src.path_of(oid)).read_bytes()
    with pytest.raises(CorruptDataError):
        open_format(inner).open(sorted(fetched.failed)[0])


def test_loose_objects_of_an_earlier_mlv_stay_readable(tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src, dst = _store(tmp_path, "src"), _store(tmp_path, "dst")
    old = _fill(src, 10, [])
    assert not transfer.push(src, inner, old).failed  # format 1: loose
    packed = make_format2(inner)
    new = {src.add_bytes(b"pushed after the marker\n")}
    assert not transfer.push(src, packed, new).failed
    assert packed.has(sorted(old | new)) == old | new
    fetched = transfer.fetch(dst, open_format(inner), old | new, 2)
    assert not fetched.failed and not fetched.missing


def test_a_marker_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    inner.put_key(MARKER_KEY, b'{"format": 3}')
    with pytest.raises(RemoteFormatError) as err:
        open_format(inner)
    assert "3" in err.value.message


def test_push_status_and_pull_through_the_cli(mlv_repo: Path, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote, clone, commit_all, make_tree, run_mlv

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))  # a format-2 remote
    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"row {i}\n" * (i + 1) for i in range(50)}})
    (mlv_repo / "data" / "big.bin").write_bytes(_big(5, 5 * MiB))
    for args in (("add", "data"), ("push",)):
        res = run_mlv(mlv_repo, *args)
        assert res.exit_code == 0, res.output
    commit_all(mlv_repo, "data")
    stored = {p.relative_to(url).parts[0] for p in url.rglob("*") if p.is_file()}
    assert {"packs", "index", "recipes"} <= stored
    files = [p for p in (url / "xxh128").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name.endswith(".dir")  # only the folder's manifest
    res = run_mlv(mlv_repo, "status", "--cloud")
    assert res.exit_code == 0 and "not pushed" not in res.output, res.output
    victim = clone(mlv_repo, tmp_path, "teammate")
    res = run_mlv(victim, "pull")
    assert res.exit_code == 0, res.output
    for path in (mlv_repo / "data").iterdir():
        assert (victim / "data" / path.name).read_bytes() == path.read_bytes()


def test_without_the_compiled_chunker_big_files_go_whole_and_push_says_why(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, mlv: Any) -> None:
    from mlv.remote import chunker
    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote

    monkeypatch.setattr(chunker, "available", lambda: "pyfastcdc is not installed")
    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    big = _big(6, 5 * MiB)
    (mlv_repo / "big.bin").write_bytes(big)
    assert mlv("add", "big.bin", cwd=mlv_repo).exit_code == 0
    res = mlv("push", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert res.stderr.count("note: big files are stored whole: pyfastcdc is not installed") == 1
    assert (url / key_of(hash_bytes(big))).read_bytes() == big  # loose, as format 1 did


@pytest.mark.slow
def test_kill_9_during_push_and_pull_never_loses_a_pushed_revision(
        big_template: tuple[Path, dict[str, str]], remote_kind: str,  # noqa: F811
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote, clone, commit_all, git, read_tree, run_mlv
    from tests.test_remote_safety import copy_repo, run_and_kill

    template, _ = big_template
    repo = tmp_path / "repo"
    copy_repo(template, repo)
    url = add_remote(repo, remote_kind, request, tmp_path)
    marker = marker_bytes(Marker())
    if remote_kind == "local":
        (Path(url) / MARKER_KEY).write_bytes(marker)
    else:
        from mlv.api import remote as remote_api
        from mlv.repo import Repo

        remote_api.resolve(Repo.find(str(repo))).put_key(MARKER_KEY, marker)
    commit_all(repo, "remote")
    first = read_tree(repo / "data")
    res = run_mlv(repo, "push")
    assert res.exit_code == 0, res.output
    v1 = git(repo, "rev-parse", "HEAD").strip()

    # revision 2: the big file grows, some files change; its pushes are killed
    big = repo / "data" / "big.bin"
    data = big.read_bytes()
    big.unlink()  # it may be linked from the cache
    big.write_bytes(data + random.Random(9).randbytes(len(data) // 50))
    for i in range(0, 2000, 97):
        f = repo / "data" / f"f{i:04d}.bin"
        body = f.read_bytes()
        f.unlink()
        f.write_bytes(body + b"changed")
    assert run_mlv(repo, "add", "-q", "data").exit_code == 0
    commit_all(repo, "v2")
    second = read_tree(repo / "data")
    # from just after start-up on: a push to a folder can be over in 0.3 s
    kills = [run_and_kill(repo, ["push", "-q"], lambda t, d=d: t > d)
             for d in (0.2, 0.3, 0.45, 0.6, 0.9)]
    assert any(kills), "no kill landed during a push"
    res = run_mlv(repo, "fsck", "-r", "store")  # what the kills left is no damage
    assert res.exit_code == 0, res.output

    # every previously pushed revision still pulls intact, before push is run again
    old = clone(repo, tmp_path, "old")
    git(old, "checkout", "-q", v1)
    res = run_mlv(old, "pull")
    assert res.exit_code == 0, res.output
    assert read_tree(old / "data") == first

    res = run_mlv(repo, "push")  # finishes what the killed ones started
    assert res.exit_code == 0, res.output
    work = clone(repo, tmp_path, "work")
    for d in (0.2, 0.5):
        run_and_kill(work, ["pull", "-q"], lambda t, d=d: t > d)
    res = run_mlv(work, "pull")
    assert res.exit_code == 0, res.output
    assert read_tree(work / "data") == second
    res = run_mlv(work, "fsck", "-r", "store")
    assert res.exit_code == 0, res.output


def test_push_and_pull_say_the_bytes_sent_beside_the_bytes_stored(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    import json

    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    big = mlv_repo / "big.csv"
    big.write_bytes(_big(7, 8 * MiB))
    assert mlv("add", "big.csv", cwd=mlv_repo).exit_code == 0
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    data = big.read_bytes()
    big.unlink()
    big.write_bytes(data + _big(8, 160 * 1024))  # 2 % appended
    assert mlv("add", "big.csv", cwd=mlv_repo).exit_code == 0
    res = mlv("push", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "pushed 1 file, 8.2 MiB (" in res.stdout and " sent) in " in res.stdout, res.stdout
    facts = json.loads(mlv("push", "--json", cwd=mlv_repo).stdout)["pushed"]
    assert facts["files"] == 0 and facts["wire_bytes"] == 0, facts  # nor read again
    big.unlink()
    big.write_bytes(data + _big(9, 160 * 1024))
    assert mlv("add", "big.csv", cwd=mlv_repo).exit_code == 0
    facts = json.loads(mlv("push", "--json", cwd=mlv_repo).stdout)["pushed"]
    assert facts["bytes"] > 8 * MiB and facts["wire_bytes"] < 0.1 * facts["bytes"], facts


def test_a_clone_with_the_old_version_downloads_only_the_new_chunks(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    import json

    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote, clone, commit_all, git

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    old = _big(10, 8 * MiB)
    (mlv_repo / "big.csv").write_bytes(old)
    for args in (("add", "big.csv"), ("push",)):
        assert mlv(*args, cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v1")
    mate = clone(mlv_repo, tmp_path, "mate")
    assert mlv("pull", cwd=mate).exit_code == 0
    (mlv_repo / "big.csv").unlink()
    new = old[:MiB] + b"one row changed\n" + old[MiB:] + _big(11, 160 * 1024)
    (mlv_repo / "big.csv").write_bytes(new)
    for args in (("add", "big.csv"), ("push",)):
        assert mlv(*args, cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "v2")
    git(mate, "pull", "-q", "origin", "main")
    res = mlv("pull", "--json", cwd=mate)
    assert res.exit_code == 0, res.output
    fetched = json.loads(res.stdout)["fetched"]
    # the chunks around the edit and the appended ones (chunks average ~320 KiB): without
    # reusing the cached v1, all 8 MiB would come down
    assert fetched["files"] == 1 and fetched["wire_bytes"] < 0.15 * len(new), fetched
    assert (mate / "big.csv").read_bytes() == new


def test_a_damaged_segment_hides_only_what_it_lists_until_push_sends_it_again(
        tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    first, second = _fill(src, 5, []), {src.add_bytes(b"second push\n")}
    assert not transfer.push(src, make_format2(inner), first).failed
    (seg,) = inner.list_keys("index/")
    assert not transfer.push(src, open_format(inner), second).failed
    inner.put_key(seg, b"garbage")  # the first push's segment is damaged
    reader = open_format(inner)
    got = transfer.fetch(_store(tmp_path, "a"), reader, first | second, 2)
    assert set(got.missing) == first and not got.failed  # named missing, never wrong
    assert any("skipped" in n for n in reader.said)  # type: ignore[attr-defined]
    assert not transfer.push(src, open_format(inner), first).failed  # sent again
    got = transfer.fetch(_store(tmp_path, "b"), open_format(inner), first | second, 2)
    assert not got.missing and not got.failed


def test_remote_add_format_2_makes_a_new_remote_packed_at_its_first_push(
        mlv_repo: Path, tmp_path: Path, mlv: Any) -> None:
    from tests.conftest import make_tree, one_error

    store, old = tmp_path / "store", tmp_path / "old"
    store.mkdir()
    old.mkdir()
    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"{i}\n" for i in range(30)}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    # a remote that holds format-1 objects already stays in format 1, and says so
    assert mlv("remote", "add", "old", str(old), "--format", "1", cwd=mlv_repo).exit_code == 0
    assert mlv("push", "-r", "old", cwd=mlv_repo).exit_code == 0
    assert mlv("remote", "modify", "old", "format", "2", cwd=mlv_repo).exit_code == 0
    (mlv_repo / "data" / "new.txt").write_text("new\n")
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    res = mlv("push", "-r", "old", cwd=mlv_repo)
    assert res.exit_code == 0 and "stays in format 1" in res.stderr, res.output
    assert not (old / MARKER_KEY).exists()
    # a new one becomes format 2
    res = mlv("remote", "add", "-d", "store", str(store), "--format", "2", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    assert (store / MARKER_KEY).exists() and list((store / "packs").rglob("*"))
    assert mlv("status", "--cloud", cwd=mlv_repo).exit_code == 0
    one_error(mlv("remote", "modify", "store", "format", "3", cwd=mlv_repo), "not 1 or 2")


def test_a_recipe_bigger_than_the_pointer_says_is_refused_before_writing(
        tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote
    from mlv.remote.packed import recipe_key
    from mlv.remote.packs import build_recipe, parse_recipe

    inner = MemoryRemote()
    src, dst = _store(tmp_path, "src"), _store(tmp_path, "dst")
    data = _big(12, 5 * MiB)
    oid = src.add_bytes(data)
    assert not transfer.push(src, make_format2(inner), {oid}).failed
    recipe = parse_recipe(inner.get_key(recipe_key(oid)), oid, MiB)
    cid, length = recipe.chunks[0]  # a hostile remote: one chunk, a thousand times
    inner.put_key(recipe_key(oid), build_recipe(1000 * length, [(cid, length)] * 1000))
    got = transfer.fetch(dst, open_format(inner), {oid}, 2, sizes={oid: len(data)})
    assert oid in got.failed and "expected" in got.failed[oid], got.failed
    assert not dst.exists(oid)
    assert not [p for p in Path(dst.root).rglob("*") if p.is_file()]  # no temp left


def test_pull_says_when_it_skipped_a_damaged_index_segment(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote, clone, commit_all, make_tree, run_mlv

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    make_tree(mlv_repo, {"a.txt": "alpha\n"})
    for args in (("add", "a.txt"), ("push",)):
        assert run_mlv(mlv_repo, *args).exit_code == 0
    commit_all(mlv_repo, "a")
    (segment,) = (url / "index").iterdir()
    segment.chmod(0o644)
    segment.write_bytes(b"damaged")
    res = run_mlv(clone(mlv_repo, tmp_path, "mate"), "pull")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "note: remote data index/" in res.stderr and "it was skipped" in res.stderr


def test_an_index_segment_over_the_size_cap_is_skipped_with_a_note(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    """A hostile remote cannot make mlv hold a huge segment in memory: one over
    SEG_SIZE_MAX (64 MiB) is refused with a note, and what the others list pulls."""
    from mlv.remote.packs import SEG_SIZE_MAX, Marker, marker_bytes
    from tests.conftest import add_remote, clone, commit_all, make_tree, read_tree

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"file {i}\n" * 50 for i in range(20)}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "data")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    huge = bytes(SEG_SIZE_MAX + 1)
    (url / "index" / hash_bytes(huge)).write_bytes(huge)
    other = clone(mlv_repo, tmp_path, "other")
    res = mlv("pull", cwd=other)
    assert res.exit_code == 0, res.output
    assert f"index segment {hash_bytes(huge)} is damaged: {SEG_SIZE_MAX + 1} bytes, more " \
        f"than {SEG_SIZE_MAX}; it was skipped" in res.stderr, res.stderr
    assert "KiB received" in res.stdout, res.stdout  # the listing said: it was never read
    assert read_tree(other / "data") == read_tree(mlv_repo / "data")


def _format2_folder(mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest,
                    mlv: Any) -> Path:
    from mlv.remote.packs import Marker, marker_bytes
    from tests.conftest import add_remote, make_tree

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"file {i}\n" * 50 for i in range(20)},
                         "big.bin": _big(5, 5 * MiB)})
    assert mlv("add", "data", "big.bin", cwd=mlv_repo).exit_code == 0
    return url


@pytest.mark.slow  # real fsyncs: seconds on a busy disk
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_a_folder_remote_flushes_each_key_before_and_after_its_rename(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    url = _format2_folder(mlv_repo, tmp_path, request, mlv)
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    keys = [p for p in url.rglob("*") if p.is_file() and p.parts[len(url.parts)] in
            ("packs", "index", "recipes")]
    assert len(keys) >= 3
    for key in keys:  # its temp file (same folder, a temp name) and then its folder
        temps = [s for s in synced if Path(s).parent == key.parent and
                 Path(s).name.startswith(".") and key.name in s]
        assert temps, (key, synced)
        assert str(key.parent) in synced[synced.index(temps[0]):], key


@pytest.mark.slow
def test_a_failed_flush_fails_the_push_and_leaves_no_key_or_temp(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    url = _format2_folder(mlv_repo, tmp_path, request, mlv)

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    res = mlv("push", cwd=mlv_repo)
    assert res.exit_code == 1, res.output
    assert "error:" in res.stderr and "Traceback" not in res.stderr
    assert [p.name for p in url.rglob("*") if p.is_file()] == [MARKER_KEY]
    monkeypatch.undo()
    assert mlv("push", cwd=mlv_repo).exit_code == 0
