"""`gc --cloud` on a format-2 remote (mlv/remote/packgc.py): unused packs are scheduled,
sparse packs repacked, and deleted only a grace period later; concurrent pushes and
interrupted runs never lose a live object."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mlv import transfer
from mlv.odb import ObjectStore
from mlv.remote import Remote
from mlv.remote.packed import PackedRemote, make_format2, open_format
from mlv.remote.packgc import GC_PREFIX, collect
from tests.test_remote_conformance import backend  # noqa: F401 - the remotes of keys

MiB = 2**20
DAY = 86400.0


def _store(tmp_path: Path, name: str) -> ObjectStore:
    folder = tmp_path / name
    folder.mkdir()
    return ObjectStore(str(folder))


def _small(odb: ObjectStore, tag: str, count: int) -> set[str]:
    return {odb.add_bytes(f"{tag} object {i}\n".encode() * (i % 9 + 20)) for i in range(count)}


def _big(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(1024)) * (size // 1024)


def _packed(inner: Remote) -> PackedRemote:
    """A fresh run (or another clone): everything read from the remote again."""
    found = open_format(inner)
    assert isinstance(found, PackedRemote)
    return found


def _push(src: ObjectStore, inner: Remote, oids: set[str]) -> None:
    res = transfer.push(src, _packed(inner), oids)
    assert not res.failed and not res.missing


def _age(inner: Remote, seconds: float) -> None:
    """Make every pending schedule `seconds` older (instead of waiting)."""
    for key in inner.list_keys(GC_PREFIX):
        if "/pending-" in key:
            doc = json.loads(inner.get_key(key))
            doc["scheduled"] -= seconds
            inner.put_key(key, json.dumps(doc).encode())


def _intact(src: ObjectStore, inner: Remote, oids: set[str], tmp_path: Path) -> None:
    """Every one of `oids` fetches from the remote, byte for byte."""
    dst = _store(tmp_path, f"dst{random.getrandbits(32)}")
    got = transfer.fetch(dst, _packed(inner), oids, 2)
    assert not got.failed and not got.missing and not got.corrupted
    for oid in oids:
        assert Path(dst.path_of(oid)).read_bytes() == Path(src.path_of(oid)).read_bytes()


def _packs(inner: Remote) -> set[str]:
    return set(inner.list_keys("packs/"))


def _pending(inner: Remote) -> list[str]:
    return [k for k in inner.list_keys(GC_PREFIX) if "/pending-" in k]


def test_an_unused_pack_is_deleted_only_after_the_grace(backend: Remote,  # noqa: F811
                                                        tmp_path: Path) -> None:
    src = _store(tmp_path, "src")
    make_format2(backend)
    kept, gone = _small(src, "kept", 50), _small(src, "gone", 50)
    _push(src, backend, kept)
    first = _packs(backend)
    _push(src, backend, gone)
    dead = _packs(backend) - first
    before = set(backend.list_keys(""))

    res = collect(_packed(backend), kept, DAY)
    assert res.dead_packs == 1 and res.written and not res.deleted_packs
    assert set(backend.list_keys("")) - before == {res.written}  # nothing deleted
    res = collect(_packed(backend), kept, DAY)  # not due yet, nothing new
    assert not res.deleted_packs and not res.written and len(res.pending) == 1

    _age(backend, DAY + 1)
    res = collect(_packed(backend), kept, DAY)
    assert res.deleted_packs == 1 and res.deleted_segments == 1
    assert _packs(backend) == first and not _pending(backend)
    assert not dead & _packs(backend)
    _intact(src, backend, kept, tmp_path)
    assert _packed(backend).has(sorted(gone)) == set()


def test_a_sparse_pack_is_repacked_and_every_live_object_stays_intact(
        backend: Remote, tmp_path: Path) -> None:  # noqa: F811
    src = _store(tmp_path, "src")
    make_format2(backend)
    small = sorted(_small(src, "mixed", 200))
    live_big, dead_big = src.add_bytes(_big(1, 5 * MiB)), src.add_bytes(_big(2, 5 * MiB))
    _push(src, backend, set(small) | {live_big, dead_big})
    live = set(small[:40]) | {live_big}
    old = _packs(backend)

    res = collect(_packed(backend), live, 0)
    assert res.sparse_packs >= 1 and res.repacked_bytes > 0 and res.recipes == 1
    assert old <= _packs(backend)  # the old packs stay until phase 2
    _intact(src, backend, live, tmp_path)  # through either copy

    res = collect(_packed(backend), live, 0)  # grace 0: due at once
    assert res.deleted_packs >= 1 and res.deleted == [dead_big]
    assert not old & _packs(backend) or res.spared
    _intact(src, backend, live, tmp_path)
    assert _packed(backend).has(sorted(set(small) - live) + [dead_big]) == set()


def test_a_push_during_the_grace_stores_a_scheduled_object_again(backend: Remote,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    src = _store(tmp_path, "src")
    make_format2(backend)
    kept, old = _small(src, "kept", 20), _small(src, "old", 20)
    _push(src, backend, kept)
    _push(src, backend, old)
    assert collect(_packed(backend), kept, DAY).dead_packs == 1  # phase 1: `old` unused
    # another clone pushes a commit that uses `old` again (this gc cannot see it)
    other = _packed(backend)
    assert other.has(sorted(old)) == set()  # not counted on: it is scheduled
    extra = src.add_bytes(b"new in this push\n")
    _push(src, backend, old | {extra})  # stored again, in a new pack
    _age(backend, DAY + 1)
    res = collect(_packed(backend), kept, DAY)  # phase 2
    assert res.deleted_packs == 1 and not res.spared
    _intact(src, backend, kept | old | {extra}, tmp_path)


def test_a_push_that_writes_a_scheduled_pack_again_keeps_it(tmp_path: Path) -> None:
    """Packs are named by their bytes: the same objects pushed again make the same pack
    and segment; the pusher notes it, and phase 2 leaves them."""
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    old = _small(src, "old", 20)
    _push(src, inner, old)
    pack = _packs(inner)
    assert collect(_packed(inner), set(), DAY).dead_packs == 1
    _push(src, inner, old)  # another clone's commit uses them again
    assert _packs(inner) == pack
    _age(inner, DAY + 1)
    res = collect(_packed(inner), set(), DAY)
    assert res.spared and not res.deleted_packs and _packs(inner) == pack
    _intact(src, inner, old, tmp_path)


def test_a_big_file_pushed_again_during_the_grace_keeps_its_recipe(tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    big = src.add_bytes(_big(6, 5 * MiB))
    _push(src, inner, {big})
    res = collect(_packed(inner), set(), DAY)
    assert res.recipes == 1 and res.dead_packs == 1
    assert _packed(inner).has([big]) == set()  # scheduled: not counted on
    _push(src, inner, {big})  # another clone uses it again
    _age(inner, DAY + 1)
    res = collect(_packed(inner), set(), DAY)
    assert res.deleted == [] and res.spared
    _intact(src, inner, {big}, tmp_path)


def test_a_push_while_phase_2_reads_the_remote_keeps_what_it_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlv.remote import packgc
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    big = src.add_bytes(_big(7, 5 * MiB))
    _push(src, inner, {big})
    assert collect(_packed(inner), set(), DAY).recipes == 1
    _age(inner, DAY + 1)
    real = packgc._chunks_of

    def read_then_push(remote: PackedRemote, oids: set[str], strict: bool) -> set[str]:
        found = real(remote, oids, strict)
        if not strict and not getattr(read_then_push, "done", False):
            read_then_push.done = True  # type: ignore[attr-defined]
            _push(src, inner, {big})  # another clone, while phase 2 reads the recipes
        return found

    monkeypatch.setattr(packgc, "_chunks_of", read_then_push)
    res = collect(_packed(inner), set(), DAY)
    assert res.deleted == [] and not res.deleted_packs
    _intact(src, inner, {big}, tmp_path)


def test_chunks_a_push_counted_on_before_the_schedule_survive(tmp_path: Path) -> None:
    """A pusher that read the index before gc scheduled a pack and stored a recipe
    naming its chunks keeps them: phase 2 reads the recipes pushed since."""
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    old = _big(3, 6 * MiB)
    _push(src, inner, {src.add_bytes(old)})
    late = _packed(inner)
    late.index()  # this pusher read the index before the schedule
    assert collect(_packed(inner), set(), DAY).dead_packs == 1
    new = src.add_bytes(old + _big(4, 200 * 1024))
    assert not transfer.push(src, late, {new}).failed  # deduplicates its chunks
    _age(inner, DAY + 1)
    res = collect(_packed(inner), set(), DAY)
    assert res.spared >= 1
    _intact(src, inner, {new}, tmp_path)


def test_dry_changes_nothing_and_says_what_repacking_frees(backend: Remote,  # noqa: F811
                                                         tmp_path: Path) -> None:
    src = _store(tmp_path, "src")
    make_format2(backend)
    small = sorted(_small(src, "mixed", 100))
    _push(src, backend, set(small))
    _push(src, backend, _small(src, "dead", 30))
    before = backend.list_keys("")
    res = collect(_packed(backend), set(small[:10]), 0, dry=True)
    assert backend.list_keys("") == before
    assert res.packs == 2 and res.bytes == sum(before[k] for k in _packs(backend))
    assert res.dead_packs == 1 and res.sparse_packs == 1
    assert 0 < res.repacked_bytes < res.sparse_bytes
    assert res.frees == res.dead_bytes + res.sparse_bytes - res.repacked_bytes
    assert not res.written


@pytest.mark.parametrize("fail_at", ["segment", "schedule", "delete"])
def test_an_interrupted_gc_keeps_every_live_object(tmp_path: Path, fail_at: str) -> None:
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    small = sorted(_small(src, "mixed", 200))
    big = src.add_bytes(_big(5, 5 * MiB))
    _push(src, inner, set(small))  # one sparse pack: 30 of 200 objects live
    _push(src, inner, {big})
    _push(src, inner, _small(src, "dead", 30))  # one unused pack
    live = set(small[:30]) | {big}
    put, delete = inner.put_key, inner.delete_keys

    def failing_put(key: str, data: bytes) -> None:
        if key.startswith("index/" if fail_at == "segment" else "gc/pending-"):
            raise OSError("killed")
        put(key, data)

    def failing_delete(keys: list[str]) -> dict[str, BaseException]:
        delete(keys[:1])
        raise OSError("killed")

    if fail_at == "delete":
        assert collect(_packed(inner), live, 0).sparse_packs == 1
        inner.delete_keys = failing_delete  # type: ignore[method-assign]
    else:
        inner.put_key = failing_put  # type: ignore[method-assign]
    with pytest.raises(OSError):
        collect(_packed(inner), live, 0)
    _intact(src, inner, live, tmp_path)
    inner.put_key, inner.delete_keys = put, delete  # type: ignore[method-assign]
    for _ in range(4):  # the next runs finish the job (and merge the small packs left)
        collect(_packed(inner), live, 0)
        if not _pending(inner):
            break
    _intact(src, inner, live, tmp_path)
    assert not _pending(inner)
    assert _packed(inner).has(sorted(set(small) - live)) == set()


# ---- through `mlv gc --cloud` ----------------------------------------------------------


@pytest.fixture
def packed_store(mlv_repo: Path, mlv, tmp_path: Path) -> Path:  # noqa: ANN001
    """`mlv_repo` with a default folder remote in format 2 (its marker written)."""
    from mlv.api import remote as remote_api
    from mlv.repo import Repo

    folder = tmp_path / "store"
    folder.mkdir()
    assert mlv("remote", "add", "-d", "store", str(folder), cwd=mlv_repo).exit_code == 0
    make_format2(remote_api.resolve(Repo.find(str(mlv_repo))))
    assert isinstance(remote_api.resolve(Repo.find(str(mlv_repo))), PackedRemote)
    return folder


def _keys(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file()}


def test_gc_cloud_on_a_format2_remote(mlv_repo: Path, mlv, packed_store: Path) -> None:  # noqa: ANN001
    from tests.conftest import git, make_tree, read_tree

    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"version 1 file {i}\n" * 30 for i in range(40)}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "v1")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"version 2 file {i}\n" * 30 for i in range(40)}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "v2")
    assert mlv("push", cwd=mlv_repo).exit_code == 0
    want = read_tree(mlv_repo / "data")
    before = _keys(packed_store)

    res = mlv("gc", "--cloud", "-w", "--dry", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "remote 'store': 2 packs" in res.stdout
    assert "would schedule for deletion: 1 unused pack" in res.stdout
    assert "frees" in res.stdout
    assert _keys(packed_store) == before

    res = mlv("gc", "--cloud", "-w", "--grace", "0", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "scheduled for deletion: 1 unused pack" in res.stdout
    assert "deletion is due in" in res.stdout
    assert set(before) <= set(_keys(packed_store))  # nothing deleted yet

    res = mlv("gc", "--cloud", "-w", "--grace", "0", "--json", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    found = json.loads(res.stdout)["packs"]
    assert found["deleted_packs"] == 1 and found["deleted_segments"] == 1
    assert len([k for k in _keys(packed_store) if k.startswith("packs/")]) == 1
    assert not [k for k in _keys(packed_store) if k.startswith("gc/")]

    import shutil

    shutil.rmtree(mlv_repo / ".mlv" / "cache")
    shutil.rmtree(mlv_repo / "data")
    res = mlv("pull", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert read_tree(mlv_repo / "data") == want


def test_gc_cloud_dry_in_a_subprocess(mlv_repo: Path, packed_store: Path) -> None:
    from tests.conftest import git, make_tree, run_mlv

    make_tree(mlv_repo, {"data": {f"f{i}.txt": f"file {i}\n" * 20 for i in range(10)}})
    assert run_mlv(mlv_repo, "add", "data").exit_code == 0
    git(mlv_repo, "add", "-A")
    git(mlv_repo, "commit", "-qm", "v1")
    assert run_mlv(mlv_repo, "push").exit_code == 0
    import shutil

    shutil.rmtree(mlv_repo / "data")
    make_tree(mlv_repo, {"data": {"only.txt": "one file now\n"}})
    assert run_mlv(mlv_repo, "add", "data").exit_code == 0
    before = _keys(packed_store)
    res = run_mlv(mlv_repo, "gc", "--cloud", "-w", "--dry")
    assert res.exit_code == 0, res.output
    assert "remote 'store': 1 pack" in res.stdout
    assert "would schedule for deletion: 1 unused pack" in res.stdout
    assert _keys(packed_store) == before


def test_a_damaged_schedule_is_refused_in_one_line(mlv_repo: Path, mlv,  # noqa: ANN001
                                                   packed_store: Path) -> None:
    from tests.conftest import one_error

    (packed_store / "gc").mkdir()
    (packed_store / "gc" / "pending-20260101T000000Z-00000000.json").write_text("{not json")
    res = mlv("gc", "--cloud", "-w", "--grace", "0", cwd=mlv_repo)
    one_error(res, "gc schedule", "damaged")
    assert "delete it" in res.stderr
