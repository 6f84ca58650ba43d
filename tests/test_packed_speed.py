"""Format-2 transfers run several requests at once (mlv/remote/packed.py): packs go up
through a bounded pool and the index segment only after every pack is acknowledged;
ranges come back in parallel, every blob verified. Over memory, folder and S3."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlv import fsio, transfer
from mlv.hashing import hash_bytes
from mlv.odb import ObjectStore
from mlv.remote import Remote
from mlv.remote import packed as packed_mod
from mlv.remote.packed import PackedRemote, make_format2, open_format
from mlv.remote.packs import Marker, parse_pack, parse_segment
from tests.test_remote_conformance import backend  # noqa: F401 - the remotes of keys

MiB = 2**20
SMALL_PACKS = Marker(pack_target=1 * MiB)  # many packs from a few MiB


def _store(tmp_path: Path, name: str) -> ObjectStore:
    folder = tmp_path / name
    folder.mkdir()
    return ObjectStore(str(folder))


def _fill(odb: ObjectStore, small: int, big: int = 0, seed: int = 0) -> set[str]:
    """`small` objects of 6-10 KiB and `big` files of 5 MiB (cut into chunks)."""
    rng = random.Random(seed)
    oids = {odb.add_bytes(rng.randbytes(rng.randint(6 * 1024, 10 * 1024)))
            for _ in range(small)}
    return oids | {odb.add_bytes(rng.randbytes(5 * MiB)) for _ in range(big)}


class Calls:
    """Wraps a remote's `put_key` or `get_key`: logs (event, key) in order, counts the
    requests and bytes in flight, and can fail chosen requests."""

    def __init__(self, fn: Callable[..., bytes | None], fail: Callable[[str, int], bool]
                 = lambda key, n: False, delay: float = 0.0) -> None:
        self.fn, self.fail, self.delay = fn, fail, delay
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] = []
        self.failed: dict[str, bytes] = {}  # key -> the data of a put that failed
        self.count = self.running = self.most = self.held = self.most_held = 0

    def __call__(self, key: str, *args: object) -> bytes | None:
        data = args[0] if args and isinstance(args[0], bytes) else b""
        with self.lock:
            self.count += 1
            n = self.count
            self.log.append(("start", key))
            self.running += 1
            self.held += len(data)
            self.most = max(self.most, self.running)
            self.most_held = max(self.most_held, self.held)
        try:
            time.sleep(self.delay)
            if self.fail(key, n):
                self.failed[key] = data
                raise OSError(f"injected failure of {key}")
            return self.fn(key, *args)
        finally:
            with self.lock:
                self.running -= 1
                self.held -= len(data)
                self.log.append(("end", key))


def _segment_packs(remote: Remote) -> set[str]:
    return {r.pack for key in remote.list_keys("index/")
            for r in parse_segment(remote.get_key(key))}


def test_a_failed_pack_fails_its_objects_only_and_stays_unlisted(
        backend: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    src = _store(tmp_path, "src")
    roots = _fill(src, 500)  # ~4 MiB: 4-5 packs of 1 MiB
    backend.jobs = max(backend.jobs, 4)  # a memory remote has 1
    remote = make_format2(backend, SMALL_PACKS)
    packs_seen: list[str] = []

    def third_pack(key: str, n: int) -> bool:
        if key.startswith("packs/"):
            packs_seen.append(key)
            return len(packs_seen) == 3
        return False

    calls = Calls(backend.put_key, third_pack, delay=0.02)
    monkeypatch.setattr(backend, "put_key", calls)
    done = [0, 0]

    def progress(files: int = 0, nbytes: int = 0, **totals: int) -> None:
        done[0] += files
        done[1] += nbytes

    pushed = transfer.push(src, remote, roots, progress)
    (bad_key, bad_data), = calls.failed.items()
    lost = {e.oid for e in parse_pack(bad_data)}
    assert set(pushed.failed) == lost  # exactly that pack's objects, each named
    assert _segment_packs(backend) == {k.rsplit("/", 1)[-1] for k in packs_seen} - \
        {bad_key.rsplit("/", 1)[-1]}
    assert done[0] == len(roots) - len(lost)  # progress counts what was stored
    assert calls.most > 1  # packs went up together
    # the segment went up only after every pack had been answered
    seg_start = calls.log.index(next(e for e in calls.log if e[1].startswith("index/")))
    assert all(e[1].startswith("packs/") for e in calls.log[:seg_start])
    assert calls.log[:seg_start].count(("end", bad_key)) == 1
    assert sum(e[0] == "end" for e in calls.log[:seg_start]) == len(packs_seen)

    again = open_format(backend)  # a clone sees the others, and push sends the lost ones
    assert again.has(sorted(roots)) == roots - lost
    monkeypatch.setattr(backend, "put_key", calls.fn)
    assert not transfer.push(src, again, roots).failed
    assert open_format(backend).has(sorted(roots)) == roots


def test_uploads_hold_a_bounded_number_of_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.remote.memory import MemoryRemote

    src = _store(tmp_path, "src")
    roots = _fill(src, 900, big=1)  # ~7 MiB small + 5 MiB of chunks: ~12 packs
    inner = MemoryRemote()
    inner.jobs = 16
    monkeypatch.setattr(packed_mod, "BYTES_IN_FLIGHT", 3 * MiB)
    remote = make_format2(inner, SMALL_PACKS)
    calls = Calls(inner.put_key, delay=0.05)
    monkeypatch.setattr(inner, "put_key", calls)
    assert not transfer.push(src, remote, roots).failed
    pack_puts = [k for e, k in calls.log if e == "start" and k.startswith("packs/")]
    assert len(pack_puts) >= 10
    assert 1 < calls.most <= packed_mod.PACKS_IN_FLIGHT
    assert calls.most_held <= 3 * MiB + MiB // 8  # the budget (packs end a bit over 1 MiB)
    # recipes after the segment, which comes after every pack
    order = [k.split("/")[0] for e, k in calls.log if e == "start"]
    assert order.index("index") > max(i for i, k in enumerate(order) if k == "packs")
    assert order.index("recipes") > order.index("index")


@pytest.mark.slow
def test_many_packs_round_trip_intact(backend: Remote, tmp_path: Path,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = _store(tmp_path, "src"), _store(tmp_path, "dst")
    roots = _fill(src, 700, big=2, seed=1)  # ~6 MiB small, 10 MiB big: ~16 packs
    backend.jobs = max(backend.jobs, 4)  # a memory remote has 1
    pushed = transfer.push(src, make_format2(backend, SMALL_PACKS), roots)
    assert not pushed.failed and not pushed.missing
    assert len(backend.list_keys("packs/")) >= 12

    clone = open_format(backend)
    assert isinstance(clone, PackedRemote)
    calls = Calls(backend.get_bulk, delay=0.01)  # how packs are read
    monkeypatch.setattr(backend, "get_bulk", calls)
    fetched = transfer.fetch(dst, clone, roots, 4)
    assert not fetched.failed and not fetched.missing and not fetched.corrupted
    assert fetched.moved == len(roots)
    for oid in roots:
        assert Path(dst.path_of(oid)).read_bytes() == Path(src.path_of(oid)).read_bytes()
    assert calls.most > 1  # ranges came back together


def _damage_one_blob(remote: Remote, pack_key: str, oid: str) -> None:
    data = bytearray(remote.get_key(pack_key))
    entry = next(e for e in parse_pack(bytes(data)) if e.oid == oid)
    data[entry.offset + entry.length // 2] ^= 0xFF
    remote.put_key(pack_key, bytes(data))


def test_a_damaged_blob_fails_only_its_object(backend: Remote, tmp_path: Path  # noqa: F811
                                              ) -> None:
    src, dst = _store(tmp_path, "src"), _store(tmp_path, "dst")
    roots = _fill(src, 400, big=1, seed=2)
    remote = make_format2(backend, SMALL_PACKS)
    assert not transfer.push(src, remote, roots).failed
    view = remote.index()
    small = sorted(o for o in roots if Path(src.path_of(o)).stat().st_size < MiB)
    big = next(o for o in roots if o not in small)
    victim = small[len(small) // 2]
    _damage_one_blob(backend, packed_mod.pack_key(view.lookup(victim).pack), victim)
    # and one chunk of the big file, in another pack than the victim's
    recipe_chunks = [r for r in view if r.type == 1]
    chunk = next(r for r in recipe_chunks if r.pack != view.lookup(victim).pack)
    _damage_one_blob(backend, packed_mod.pack_key(chunk.pack), chunk.oid)

    fetched = transfer.fetch(dst, open_format(backend), roots, 4)
    assert set(fetched.failed) == {victim, big}
    assert "does not match" in fetched.failed[victim]
    assert not dst.existing([victim, big])  # nothing wrong entered the cache
    for oid in roots - {victim, big}:
        assert Path(dst.path_of(oid)).read_bytes() == Path(src.path_of(oid)).read_bytes()
    assert hash_bytes(Path(dst.path_of(small[0])).read_bytes()) == small[0]


@pytest.mark.parametrize("cache_type", ["copy", "hardlink"])
def test_a_pull_writes_fetched_small_files_without_reading_them_back(
        mlv_repo: Path, mlv, tmp_path: Path, request: pytest.FixtureRequest,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch, cache_type: str) -> None:
    """The blobs a pull has just verified and stored are written to the workspace from
    memory when files are copied: no cache object is opened again. With links, the
    workspace still gets links to the cache objects."""
    from tests.conftest import add_remote, clone, commit_all, make_tree

    rng = random.Random(3)
    files = {f"f{i}.bin": rng.randbytes(rng.randint(100, 5000)) for i in range(40)}
    make_tree(mlv_repo, {"data": dict(files), "tool.sh": "#!/bin/sh\n"})
    (mlv_repo / "data" / "f0.bin").chmod(0o755)
    add_remote(mlv_repo, "local", request, tmp_path)
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    commit_all(mlv_repo, "data")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    other = clone(mlv_repo, tmp_path)
    assert mlv("config", "cache.type", cache_type, cwd=other).exit_code == 0
    opened: list[str] = []
    real = fsio.open_regular

    def counting(path: str, refuse):  # type: ignore[no-untyped-def]
        opened.append(path)
        return real(path, refuse)

    monkeypatch.setattr(fsio, "open_regular", counting)
    assert mlv("pull", cwd=other).exit_code == 0
    for name, data in files.items():
        assert (other / "data" / name).read_bytes() == data
    cache = str(other / ".mlv" / "cache" / "xxh128")
    from_cache = [p for p in opened if p.startswith(cache) and not p.endswith(".dir")]
    if cache_type == "copy":
        assert from_cache == []
        assert (other / "data" / "f1.bin").stat().st_nlink == 1
        assert (other / "data" / "f0.bin").stat().st_mode & 0o111  # exec kept
        assert (other / "data" / "f1.bin").stat().st_mode & 0o222  # writable copy
    else:
        assert (other / "data" / "f1.bin").stat().st_nlink == 2
    assert mlv("status", cwd=other).exit_code == 0
