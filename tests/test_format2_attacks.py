"""Attacks on remote format 2 by a hostile remote or a hostile clone: what the remote
brings is bounded, never followed out of the remote, and never slows mlv down
without limit."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from mlv.remote.packs import MARKER_KEY, Marker, marker_bytes
from tests.conftest import add_remote, commit_all, make_tree, one_error

MiB = 2**20


def test_a_folder_remote_never_follows_a_symlinked_marker(
        mlv_repo: Path, tmp_path: Path, mlv: Any) -> None:
    """A clone may name a folder of its own tree as its remote; a marker there that is a
    symlink (to /dev/zero, which would fill the memory, to a FIFO, which would hang, or
    to any file outside the remote) is refused with one line, never read."""
    outside = tmp_path / "outside.json"
    outside.write_bytes(marker_bytes(Marker()))
    store = mlv_repo / "store"
    store.mkdir()
    (store / MARKER_KEY).symlink_to(outside)
    assert mlv("remote", "add", "-d", "store", "store", cwd=mlv_repo).exit_code == 0
    make_tree(mlv_repo, {"a.txt": "alpha\n"})
    assert mlv("add", "a.txt", cwd=mlv_repo).exit_code == 0
    one_error(mlv("status", "--cloud", cwd=mlv_repo), MARKER_KEY, "symlink")
    one_error(mlv("push", cwd=mlv_repo), MARKER_KEY, "symlink")
    assert not (store / "index").exists()


def _peak(run: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_marker_is_refused_without_reading_it_whole(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    """Every command that uses a remote reads its marker: one of a gigabyte (a hostile
    or damaged remote) costs no more memory than a marker may have."""
    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    with open(url / MARKER_KEY, "wb") as fobj:
        fobj.truncate(600 * MiB)  # sparse: no disk used, but 600 MiB to read
    make_tree(mlv_repo, {"a.txt": "alpha\n"})
    assert mlv("add", "a.txt", cwd=mlv_repo).exit_code == 0
    res, peak = _peak(lambda: mlv("status", "--cloud", cwd=mlv_repo))
    one_error(res, MARKER_KEY, "65536")
    assert peak < 100 * MiB, peak


def test_a_huge_recipe_is_refused_without_reading_it_whole(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    """A recipe is at most 128 MiB: a bigger one on the remote is not read into memory."""
    from mlv.hashing import hash_bytes
    from mlv.remote.packed import recipe_key
    from tests.conftest import clone

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    data = b"x" * 100
    make_tree(mlv_repo, {"a.bin": data})
    assert mlv("add", "a.bin", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "a")
    oid = hash_bytes(data)
    path = url / recipe_key(oid)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fobj:  # the remote says: a.bin is a recipe (and a huge one)
        fobj.truncate(600 * MiB)
    other = clone(mlv_repo, tmp_path, "other")
    res, peak = _peak(lambda: mlv("pull", cwd=other))
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "a.bin" in res.output, res.output
    assert peak < 300 * MiB, peak


def test_ids_sharing_a_prefix_do_not_make_lookups_slow() -> None:
    """A hostile segment may list a million ids that share their first bytes (ids in a
    segment are not checked against anything): a lookup still bisects, it does not
    compare them one by one."""
    from mlv.remote.packs import CHUNK, IndexView, Record, build_segment

    ids = [f"{0xabcdef01:08x}{0xabcdef:06x}{i:018x}" for i in range(20000)]
    seg_id, data = build_segment(Record(i, CHUNK, "0" * 32, 8, 1) for i in ids)
    view = IndexView()
    view.add_segment(seg_id, data)
    (run,) = view._merged(2)

    class Counted(bytes):
        reads = 0

        def __getitem__(self, item: Any) -> Any:
            Counted.reads += 1
            return bytes.__getitem__(self, item)

    run.body = Counted(run.body)
    assert view.lookup(f"{0xabcdef01:08x}{0xabcdef:06x}{'f' * 18}") is None
    assert view.lookup(ids[-1]) is not None and view.lookup(ids[0]) is not None
    assert Counted.reads < 200, Counted.reads


def test_a_recipe_of_more_chunks_than_the_chunker_makes_is_refused(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    """FastCDC cuts no chunk shorter than the marker's `min` but the last, so a file of
    `size` bytes has at most size // min + 1 chunks. A hostile recipe of 1-byte chunks
    (6.7 million fit in 128 MiB, for any file from 6.7 MB) would cost gigabytes of
    memory and a lookup each: it is refused before any is looked up."""
    import random

    from mlv.hashing import hash_bytes
    from mlv.remote.packed import pack_key, recipe_key, segment_key
    from mlv.remote.packs import CHUNK, build_pack, build_recipe, build_segment, records_of
    from tests.conftest import clone

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    (url / MARKER_KEY).write_bytes(marker_bytes(Marker()))
    data = random.Random(7).randbytes(300 * 1024)
    make_tree(mlv_repo, {"a.bin": data})
    assert mlv("add", "a.bin", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "a")
    pieces = [data[i:i + 1024] for i in range(0, len(data), 1024)]
    chunks = [(hash_bytes(p), len(p)) for p in pieces]
    pack = build_pack((CHUNK, cid, p) for (cid, _), p in zip(chunks, pieces))
    seg_id, seg = build_segment(records_of(pack.pack_id, pack.entries))
    for key, value in ((pack_key(pack.pack_id), pack.data), (segment_key(seg_id), seg),
                       (recipe_key(hash_bytes(data)), build_recipe(len(data), chunks))):
        (url / key).parent.mkdir(parents=True, exist_ok=True)
        (url / key).write_bytes(value)
    other = clone(mlv_repo, tmp_path, "other")
    res = mlv("pull", cwd=other)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "300 chunks" in res.output, res.output
    assert not (other / "a.bin").exists()


def test_a_full_disk_during_a_packed_pull_is_one_line(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blobs read from packs are written to the cache from the reading threads: a full
    disk there says so in one line (as with loose objects), not as a crash."""
    import errno

    from tests.conftest import clone

    add_remote(mlv_repo, "local", request, tmp_path)
    make_tree(mlv_repo, {"a.bin": "z" * 7777})
    assert mlv("add", "a.bin", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "a")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    other = clone(mlv_repo, tmp_path, "other")
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        if len(data) == 7777:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    one_error(mlv("pull", cwd=other), "no space left")
    monkeypatch.undo()
    cache = other / ".mlv" / "cache"
    assert not [p for p in cache.rglob("*") if p.is_file() and "remote-index" not in p.parts]


def test_a_file_equal_to_a_chunk_is_not_pushed_when_the_chunks_pack_fails(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file whose bytes are a chunk of a big file pushed at the same time is
    stored by that chunk (blobs are found by id alone). When the chunk's pack fails, the
    small file is not on the remote either: push says so, and the manifest of its folder
    (which would vouch for it to every later push) does not go up."""
    import random

    from mlv.hashing import hash_bytes
    from mlv.remote import chunker
    from mlv.remote.local import LocalRemote

    if chunker.available():
        pytest.skip("needs the compiled chunker")
    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    for seed in range(50):  # the big file must come first (pushes go in oid order)
        big = random.Random(seed).randbytes(5 * MiB)
        (mlv_repo / "big.bin").write_bytes(big)
        _, length, _ = next(chunker.chunks(str(mlv_repo / "big.bin"), 64 * 1024,
                                           256 * 1024, MiB))
        if hash_bytes(big) < hash_bytes(big[:length]):
            break
    make_tree(mlv_repo, {"data": {"s.bin": big[:length]}})
    assert mlv("add", "big.bin", "data", cwd=mlv_repo).exit_code == 0
    real_put = LocalRemote.put_key

    def failing(self: LocalRemote, key: str, data: bytes) -> None:
        if key.startswith("packs/"):
            raise OSError(5, "Input/output error")
        real_put(self, key, data)

    monkeypatch.setattr(LocalRemote, "put_key", failing)
    res = mlv("push", cwd=mlv_repo)
    monkeypatch.undo()
    assert res.exit_code == 1, res.output
    assert not [p for p in url.rglob("*.dir")], res.output  # no manifest vouches for s.bin
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    assert len(list(url.rglob("*.dir"))) == 1


@pytest.mark.slow
def test_a_cached_old_version_that_is_a_link_to_a_fifo_is_not_read_for_chunks(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A pull of a new version reuses chunks of the old one in the cache; an old cache
    object that is a symlink (here to a FIFO, which would block the pull forever) is
    passed over, never opened through the link."""
    import random
    import subprocess

    from tests.conftest import MLV, clone, git, run_mlv

    add_remote(mlv_repo, "local", request, tmp_path)
    big = mlv_repo / "big.bin"
    old = random.Random(1).randbytes(6 * MiB)
    big.write_bytes(old)
    assert run_mlv(mlv_repo, "add", "big.bin").exit_code == 0
    commit_all(mlv_repo, "v1")
    assert run_mlv(mlv_repo, "push").exit_code == 0
    v1 = git(mlv_repo, "rev-parse", "HEAD").strip()
    new = old + random.Random(2).randbytes(MiB)
    big.unlink()
    big.write_bytes(new)
    assert run_mlv(mlv_repo, "add", "big.bin").exit_code == 0
    commit_all(mlv_repo, "v2")
    assert run_mlv(mlv_repo, "push").exit_code == 0

    work = clone(mlv_repo, tmp_path, "work")
    git(work, "checkout", "-q", v1)
    assert run_mlv(work, "pull").exit_code == 0  # the old version, and its recipe, kept
    objects = [p for p in (work / ".mlv" / "cache").rglob("*") if p.is_file()
               and p.stat().st_size == len(old)]
    assert len(objects) == 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    objects[0].chmod(0o644)
    objects[0].unlink()
    objects[0].symlink_to(fifo)
    (work / "big.bin").unlink()
    git(work, "checkout", "-q", "-")
    res = subprocess.run(MLV + ["pull"], cwd=work, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    assert (work / "big.bin").read_bytes() == new


def test_a_marker_that_is_a_fifo_is_refused_in_one_line_without_blocking(
        mlv_repo: Path, mlv: Any) -> None:
    store = mlv_repo / "store"
    store.mkdir()
    os.mkfifo(store / MARKER_KEY)  # opening it to read would block without O_NONBLOCK
    assert mlv("remote", "add", "-d", "store", "store", cwd=mlv_repo).exit_code == 0
    one_error(mlv("status", "--cloud", cwd=mlv_repo), MARKER_KEY, "it is a FIFO",
              "not a regular file")


def test_keys_not_named_like_a_pack_segment_or_recipe_are_passed_over(
        mlv_repo: Path, tmp_path: Path, request: pytest.FixtureRequest, mlv: Any) -> None:
    """A remote may hold keys under packs/, index/ and recipes/ that mlv did not write.
    One named like an object id plus `.dir` made every reader stop with exit 3 (packs/),
    and one under recipes/ named like a folder's manifest counted that manifest as
    pushed, so push never sent it. Readers and gc now agree on what a pack, a segment
    and a recipe are (32 hex digits, at their own key), and leave the rest alone."""
    from mlv.hashing import hash_bytes
    from tests.conftest import clone, read_tree

    url = Path(add_remote(mlv_repo, "local", request, tmp_path))
    make_tree(mlv_repo, {"data": {"a.txt": "alpha\n", "b.txt": "beta\n"}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "data")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    (manifest,) = [p for p in url.rglob("*.dir") if p.is_file()]
    manifest.unlink()  # lost on the remote: the next push must send it again
    odd = "0123456789abcdef0123456789abcdef.dir"
    planted = [url / "packs" / "01" / odd, url / "index" / odd,
               url / "recipes" / manifest.name[:2] / manifest.name,
               url / "packs" / "zz" / hash_bytes(b"misplaced")]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not mlv's\n")

    res = mlv("status", "--cloud", cwd=mlv_repo)
    assert res.exit_code == 0 and "not pushed" in res.stdout, res.output
    res = mlv("push", cwd=mlv_repo)
    assert res.exit_code == 0 and "pushed 1 file" in res.output, res.output
    assert manifest.is_file()
    res = mlv("gc", "--cloud", "-w", "--dry", cwd=mlv_repo)
    assert res.exit_code == 0 and "remote 'store': 1 pack," in res.stdout, res.output
    for _ in range(2):  # grace 0: phase 1, then phase 2
        assert mlv("gc", "--cloud", "-w", "--grace", "0", cwd=mlv_repo).exit_code == 0
    assert all(path.read_bytes() == b"not mlv's\n" for path in planted)
    fresh = clone(mlv_repo, tmp_path, "fresh")
    res = mlv("pull", cwd=fresh)
    assert res.exit_code == 0, res.output
    assert read_tree(fresh / "data") == read_tree(mlv_repo / "data")
