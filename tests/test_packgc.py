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
from mlv.remote import Remote, packcheck
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


def _two_pushes(inner: Remote, tmp_path: Path, count: int
                ) -> tuple[ObjectStore, set[str], set[str], set[str]]:
    """A format-2 remote, and two sets of `count` small objects pushed one after the
    other (a pack each): the source store, the two sets, and the second push's pack."""
    src = _store(tmp_path, "src")
    make_format2(inner)
    first, second = _small(src, "first", count), _small(src, "second", count)
    _push(src, inner, first)
    before = _packs(inner)
    _push(src, inner, second)
    return src, first, second, _packs(inner) - before


def _pending(inner: Remote) -> list[str]:
    return [k for k in inner.list_keys(GC_PREFIX) if "/pending-" in k]


def test_an_unused_pack_is_deleted_only_after_the_grace(backend: Remote,  # noqa: F811
                                                        tmp_path: Path) -> None:
    src, kept, gone, dead = _two_pushes(backend, tmp_path, 50)
    first = _packs(backend) - dead
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

    def read_then_push(remote: PackedRemote, oids: set[str], strict: bool,
                       state: packgc._State) -> set[str]:
        found = real(remote, oids, strict, state)
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


def test_phase_2_never_leaves_a_segment_listing_a_pack_it_deleted(tmp_path: Path) -> None:
    """One push wrote two packs and one segment; gc scheduled all of it, and by phase 2
    an object of the second pack is used again (a clone that read the index before the
    schedule pushed a commit reusing it). The second pack and the segment stay; the
    first pack must stay too until a later run replaces the segment: deleting it left
    the segment listing a pack that is gone, so `fsck --remote` called the remote
    damaged for ever and every push re-checked every folder file."""
    from mlv.remote import packcheck
    from mlv.remote.memory import MemoryRemote
    from mlv.remote.packs import parse_pack

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    objs = [src.add_bytes(random.Random(i).randbytes(3_500_000)) for i in range(6)]
    _push(src, inner, set(objs))
    assert len(_packs(inner)) == 2 and len(inner.list_keys("index/")) == 1
    assert collect(_packed(inner), set(), DAY).dead_packs == 2
    _age(inner, DAY + 1)
    (second, *_) = [k for k in sorted(_packs(inner))
                    if objs[-1] in {e.oid for e in parse_pack(inner.get_key(k))}]
    live = {e.oid for e in parse_pack(inner.get_key(second))}
    for _ in range(3):
        collect(_packed(inner), live, DAY)
        checked = packcheck.check(_packed(inner))
        assert checked.ok, [(d.key, d.problems) for d in checked.damage]
        assert not _packed(inner).lost_blobs()
        _age(inner, DAY + 1)
    assert _packs(inner) == {second}  # the unused pack went, in the end
    _intact(src, inner, live, tmp_path)


def test_a_reader_while_phase_2_deletes_the_segments_it_listed(tmp_path: Path) -> None:
    """A clone (without local copies of the segments) lists `index/`, and phase 2 of a gc
    elsewhere deletes a replaced segment before the clone reads it. The clone reads
    the rest and finds every live object; before, it stopped with an unexpected
    FileNotFoundError (a crash, exit 3)."""
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    small = sorted(_small(src, "mixed", 200))
    _push(src, inner, set(small))
    _push(src, inner, _small(src, "dead", 30))
    live = set(small[:30])
    first = collect(_packed(inner), live, DAY)
    assert first.sparse_packs and first.written
    _age(inner, DAY + 1)
    replaced = set(inner.list_keys("index/"))
    reader = _packed(inner)
    real = inner.get_key

    def get_key(key: str, start: int | None = None, end: int | None = None) -> bytes:
        if key in replaced:  # the other clone's gc runs phase 2 right now
            inner.get_key = real  # type: ignore[method-assign]
            assert collect(_packed(inner), live, DAY).deleted_segments
        return real(key, start, end)

    inner.get_key = get_key  # type: ignore[method-assign]
    assert reader.has(sorted(live)) == live
    dst = _store(tmp_path, "dst")
    got = transfer.fetch(dst, reader, live, 2)
    assert not got.failed and not got.missing and not got.corrupted
    for oid in live:
        assert Path(dst.path_of(oid)).read_bytes() == Path(src.path_of(oid)).read_bytes()


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


# ---- kill -9 of `mlv gc --cloud`, for real ----------------------------------------------

# Runs mlv in a subprocess that SIGKILLs itself right after its first change to the
# remote that no earlier run made (those listed in the file MLV_KILL_SEEN) and whose kind
# ("put packs", "delete index", ...; see `_kind`) is not in MLV_KILL_SPARE. A change is
# one key written (put_key) or one key or loose object deleted: batch deletes are done
# one at a time, so a kill lands between any two deletions too. Every change is logged.
KILLER = """
import os, signal, sys
from mlv.remote.fsspec_remote import FsspecRemote
from mlv.remote.local import LocalRemote

with open(os.environ["MLV_KILL_SEEN"]) as f:
    seen = set(f.read().splitlines())
spare = set(os.environ["MLV_KILL_SPARE"].split(","))

def step(what):
    with open(os.environ["MLV_KILL_SEEN"], "a") as log:
        log.write(what + "\\n")
    if what not in seen and " ".join(what.split()[:2]).split("/")[0] not in spare:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(cls):
    put, delete_keys, delete = cls.put_key, cls.delete_keys, cls.delete

    def put_one(self, key, data):
        put(self, key, data)
        step("put " + key)

    def delete_keys_one(self, keys):
        failed = {}
        for key in keys:
            failed.update(delete_keys(self, [key]))
            step("delete " + key)
        return failed

    def delete_one(self, oids):
        failed = {}
        for oid in oids:
            failed.update(delete(self, [oid]))
            step("delete loose " + oid)
        return failed

    cls.put_key, cls.delete_keys, cls.delete = put_one, delete_keys_one, delete_one

wrap(LocalRemote)
wrap(FsspecRemote)
sys.argv[0] = "mlv"
from mlv.cli import main
main()
"""


def _kind(change: str) -> str:
    """"put packs/ab/abcd…" -> "put packs"; "delete loose abcd…" -> "delete loose"."""
    return " ".join(change.split()[:2]).split("/")[0]


def _gc_killed_at_a_new_change(repo: Path, seen: Path, spare: set[str]) -> str | None:
    """Run `mlv gc --cloud -a -f --grace 0` in a subprocess, SIGKILLed right after its
    first change to the remote that is not in the file `seen` (which gets every change
    it makes) and not of a kind in `spare`. Returns that change; None if it finished
    (successfully) without making one."""
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILLER, "gc", "--cloud", "-a", "-f",
                           "--grace", "0"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "MLV_KILL_SEEN": str(seen),
                               "MLV_KILL_SPARE": ",".join(sorted(spare))}, timeout=120)
    if proc.returncode != -signal.SIGKILL:
        assert proc.returncode == 0, proc.stderr
        return None
    return seen.read_text().splitlines()[-1]


def _version(repo: Path, files: dict[str, bytes], message: str) -> tuple[str, dict]:
    import shutil

    from tests.conftest import commit_all, git, make_tree, read_tree, run_mlv

    shutil.rmtree(repo / "data", ignore_errors=True)
    make_tree(repo, {"data": files})
    res = run_mlv(repo, "add", "-q", "data")
    assert res.exit_code == 0, res.output
    commit_all(repo, message)
    res = run_mlv(repo, "push", "-q")
    assert res.exit_code == 0, res.output
    return git(repo, "rev-parse", "HEAD").strip(), read_tree(repo / "data")


@pytest.mark.slow
def test_kill_9_of_gc_cloud_never_loses_a_kept_revision(
        mlv, git_repo: Path, remote_kind: str, request: pytest.FixtureRequest,  # noqa: ANN001
        tmp_path: Path) -> None:
    """Three revisions pushed to a format-2 remote (small packs and chunks, so there are
    several of each); the one in the middle is on no branch, so its own data is garbage.
    `gc --cloud --grace 0` is killed right after its 1st change to the remote, then
    (run again) after its 2nd, and so on until a run finishes: a kill lands after every
    kind of change of phase 1 (a repacked pack, the new index segment, the schedule) and
    of phase 2 (recipes, manifests, segments, packs, the schedule). After each kill
    `mlv fsck --remote` passes and both kept revisions pull intact into fresh clones; at
    the end the garbage is gone."""
    from mlv.remote.packs import ChunkerParams, KiB, Marker, marker_bytes
    from tests.conftest import add_remote, clone, git, read_tree, run_mlv

    repo = git_repo
    assert run_mlv(repo, "init").exit_code == 0
    url = add_remote(repo, remote_kind, request, tmp_path)
    marker = marker_bytes(Marker(ChunkerParams(16 * KiB, 64 * KiB, 256 * KiB, MiB),
                                 pack_target=MiB, pack_max=4 * MiB))
    if remote_kind == "local":
        (Path(url) / "mlv-remote.json").write_bytes(marker)
    else:
        from mlv.api import remote as remote_api
        from mlv.repo import Repo

        remote_api.resolve(Repo.find(str(repo))).put_key("mlv-remote.json", marker)
    rng = random.Random(11)
    small = {f"f{i:03d}.bin": rng.randbytes(rng.randint(2048, 6144)) for i in range(300)}
    big = rng.randbytes(3 * MiB)
    v1, first = _version(repo, {**small, "big.bin": big}, "v1")
    git(repo, "branch", "keep-v1")
    changed = {f"f{i:03d}.bin": rng.randbytes(4096) for i in range(0, 300, 5)}
    new = {f"n{i:03d}.bin": rng.randbytes(3000) for i in range(40)}
    _version(repo, {**small, **changed, **new, "big.bin": big + rng.randbytes(200 * KiB),
                    "big2.bin": rng.randbytes(2 * MiB)}, "v2")
    again = {name: rng.randbytes(4096) for name in changed}
    v3, third = _version(repo, {**small, **again, **new, "big.bin": big}, "v3")
    keys_before = _remote_keys(repo)

    def kept_revisions_pull_intact(when: str) -> None:
        res = mlv("fsck", "-r", "store", cwd=repo)
        assert res.exit_code == 0, f"{when}: {res.output}"
        for rev, want in ((v1, first), (v3, third)):
            other = clone(repo, tmp_path, f"c{random.getrandbits(32)}")
            git(other, "checkout", "-q", rev)
            res = mlv("pull", "-q", cwd=other)
            assert res.exit_code == 0, f"{when}: {res.output}"
            assert read_tree(other / "data") == want, when

    seen = tmp_path / "changes.log"
    seen.write_text("")
    died_after: list[str] = []
    every = remote_kind == "local"  # else once after each kind of change (S3 is slower)
    for _ in range(60):
        spare = set() if every else {_kind(c) for c in died_after}
        change = _gc_killed_at_a_new_change(repo, seen, spare)
        if change is None:
            break
        died_after.append(change)
        kept_revisions_pull_intact(f"killed after {change!r}")
    else:
        pytest.fail("gc never finished")
    kinds = {_kind(c) for c in died_after}
    assert kinds >= {"put packs", "put index", "put gc", "delete recipes", "delete loose",
                     "delete index", "delete packs", "delete gc"}, died_after
    for _ in range(3):  # to completion: until nothing is left scheduled
        res = run_mlv(repo, "gc", "--cloud", "-a", "-f", "--grace", "0")
        assert res.exit_code == 0, res.output
        after = _remote_keys(repo)
        if not any(k.startswith("gc/pending-") for k in after):
            break
    else:
        pytest.fail("gc keeps scheduling")
    kept_revisions_pull_intact("after gc finished")
    assert sum(n for k, n in after.items() if k.startswith("packs/")) < \
        sum(n for k, n in keys_before.items() if k.startswith("packs/"))
    assert not any(k.startswith("recipes/") for k in after if k not in keys_before) and \
        len([k for k in after if k.startswith("recipes/")]) == 1  # big2's went


def _remote_keys(repo: Path) -> dict[str, int]:
    from mlv.api import remote as remote_api
    from mlv.repo import Repo

    return remote_api.resolve(Repo.find(str(repo))).list_keys("")


def test_gc_reads_recipes_from_the_local_copies_when_they_check_out(tmp_path: Path) -> None:
    from mlv.remote.memory import MemoryRemote
    from mlv.remote.packs import build_recipe

    class Counting(MemoryRemote):
        def __init__(self) -> None:
            super().__init__()
            self.recipes_read: list[str] = []

        def get_key(self, key: str, start: int | None = None, end: int | None = None
                    ) -> bytes:
            if key.startswith("recipes/"):
                self.recipes_read.append(key)
            return super().get_key(key, start, end)

    inner = Counting()
    index_dir = tmp_path / "remote-index"
    src = _store(tmp_path, "src")
    make_format2(inner)
    live_big, dead_big = src.add_bytes(_big(1, 5 * MiB)), src.add_bytes(_big(2, 5 * MiB))
    small = _small(src, "small", 30)
    packed = open_format(inner, str(index_dir))
    assert not transfer.push(src, packed, small | {live_big, dead_big}).failed
    assert (index_dir / "recipes" / live_big).is_file()  # the push kept its recipes

    def gc() -> None:
        again = open_format(inner, str(index_dir))
        assert isinstance(again, PackedRemote)
        collect(again, small | {live_big}, 0)

    gc()  # phase 1
    gc()  # phase 2 (grace 0)
    assert inner.recipes_read == []
    _intact(src, inner, small | {live_big}, tmp_path)
    assert list(inner.list_keys("recipes/")) == [f"recipes/{live_big[:2]}/{live_big}"]

    # a local copy that does not check out (here: a chunk no segment lists) is not
    # believed: the remote's copy is read, and gc still keeps every live chunk
    recipe = inner.get_key(f"recipes/{live_big[:2]}/{live_big}")
    inner.recipes_read.clear()
    (index_dir / "recipes" / live_big).unlink()
    (index_dir / "recipes" / live_big).write_bytes(
        build_recipe(5 * MiB, [("0" * 32, MiB)] * 5))
    gc()
    gc()
    assert inner.recipes_read == [f"recipes/{live_big[:2]}/{live_big}"]  # then kept
    assert (index_dir / "recipes" / live_big).read_bytes() == recipe
    _intact(src, inner, small | {live_big}, tmp_path)


# ---- records of a pack deleted by hand (the repair fsck advises) ----------------------

def test_gc_drops_the_records_of_a_deleted_pack_whose_files_nothing_uses(
        backend: Remote, tmp_path: Path) -> None:  # noqa: F811
    """A pack deleted after fsck found it damaged, holding only files that no revision
    in scope uses: before, its records stayed for ever, so fsck failed on every run and
    every push checked every folder's files."""
    src, kept, unused, (damaged,) = _two_pushes(backend, tmp_path, 30)
    assert not backend.delete_keys([damaged])
    assert _packed(backend).lost_blobs() == unused
    assert not packcheck.check(_packed(backend)).ok

    assert collect(_packed(backend), kept, DAY, dry=True).stale == len(unused)
    res = collect(_packed(backend), kept, DAY)
    assert res.stale == len(unused) and res.written
    assert _packed(backend).lost_blobs() == unused  # only phase 2 deletes the segment
    _age(backend, DAY + 1)
    res = collect(_packed(backend), kept, DAY)
    assert res.deleted_segments == 1 and not res.deleted_packs
    reader = _packed(backend)
    assert reader.lost_blobs() == set()
    assert packcheck.check(reader).ok
    _intact(src, backend, kept, tmp_path)


def test_gc_keeps_the_records_that_make_a_push_store_a_lost_file_again(
        backend: Remote, tmp_path: Path) -> None:  # noqa: F811
    """A file still in use whose pack was deleted stays lost (not merely absent) until a
    push stores it again: a push trusts a folder's manifest on the remote otherwise."""
    src = _store(tmp_path, "src")
    make_format2(backend)
    live = _small(src, "live", 30)
    _push(src, backend, live)
    (pack,) = _packs(backend)
    assert not backend.delete_keys([pack])
    for _ in range(2):  # grace 0: phase 1, then phase 2
        assert collect(_packed(backend), live, 0).stale == 0
    assert _packed(backend).lost_blobs() == live

    # the repair, with a new file (the same blobs alone would make the same pack again)
    live |= _small(src, "new", 1)
    _push(src, backend, live)
    assert pack not in _packs(backend)
    _intact(src, backend, live, tmp_path)
    assert collect(_packed(backend), live, 0).stale == 30  # stored in the new pack now
    assert collect(_packed(backend), live, 0).deleted_segments == 1
    reader = _packed(backend)
    assert reader.lost_blobs() == set() and reader.gone == set()
    assert packcheck.check(reader).ok
    _intact(src, backend, live, tmp_path)


def test_gc_cloud_clears_what_fsck_reports_of_a_pack_deleted_by_hand(
        mlv_repo: Path, mlv, packed_store: Path) -> None:  # noqa: ANN001
    from tests.conftest import git, make_tree, read_tree

    for version in (1, 2):
        make_tree(mlv_repo, {"data": {f"f{i}.txt": f"version {version} file {i}\n" * 30
                                      for i in range(20)}})
        assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
        git(mlv_repo, "add", "-A")
        git(mlv_repo, "commit", "-qm", f"v{version}")
        assert mlv("push", cwd=mlv_repo).exit_code == 0
        if version == 1:
            (old,) = [p for p in (packed_store / "packs").rglob("*") if p.is_file()]
    old.unlink()  # version 1's pack, deleted by hand (say fsck found it damaged)
    res = mlv("fsck", "-r", "store", cwd=mlv_repo)
    assert res.exit_code == 1 and f"damaged pack packs/{old.parent.name}/{old.name}: " \
        "missing" in res.stdout, res.output

    res = mlv("gc", "--cloud", "-w", "--grace", "0", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "dropping 20 index records of packs no longer on the remote" in res.stdout
    assert "nothing new to schedule" not in res.stdout
    res = mlv("gc", "--cloud", "-w", "--grace", "0", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    res = mlv("fsck", "-r", "store", cwd=mlv_repo)
    assert res.exit_code == 0 and "all good" in res.stdout, res.output
    want = read_tree(mlv_repo / "data")
    import shutil

    shutil.rmtree(mlv_repo / ".mlv" / "cache")
    shutil.rmtree(mlv_repo / "data")
    assert mlv("pull", cwd=mlv_repo).exit_code == 0
    assert read_tree(mlv_repo / "data") == want


def test_a_repair_push_while_phase_1_drops_stale_records_keeps_what_it_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone repairs a deleted pack while gc's phase 1 runs: the same files make the
    same pack and the same segment again, under the name of the segment that phase 1
    replaces (leaving out the records of files its scope does not use) and schedules.
    The pusher read the index before the schedule, so it noted nothing. Phase 2 then
    deleted the segment: the pushed files, used by the time phase 2 ran, were in a pack
    on the remote but listed by no segment, for ever (a push trusts their manifest)."""
    from mlv.remote import packgc
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    live, other = _small(src, "live", 10), _small(src, "other", 10)  # other: a branch
    _push(src, inner, live | other)
    (pack,) = _packs(inner)
    assert not inner.delete_keys([pack])
    real = packgc._stale

    def push_then_stale(*args: object) -> object:
        _push(src, inner, live | other)  # the repair, from another clone, right now
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(packgc, "_stale", push_then_stale)
    res = collect(_packed(inner), live, DAY)
    assert res.stale == len(other) and res.written
    monkeypatch.setattr(packgc, "_stale", real)
    assert _packs(inner) == {pack}  # stored again, under the same name
    _age(inner, DAY + 1)
    collect(_packed(inner), live | other, DAY)  # the branch is merged by now
    assert _packed(inner).has(sorted(other)) == other
    assert packcheck.check(_packed(inner)).ok
    _intact(src, inner, live | other, tmp_path)


def test_records_dropped_already_are_not_counted_again_during_the_grace(
        tmp_path: Path) -> None:
    """The records left out are those of segments this run replaces: a run during the
    grace said again that it drops the records of the segment scheduled before (and
    the CLI then hid 'nothing new to schedule')."""
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src, kept, unused, second = _two_pushes(inner, tmp_path, 10)
    assert not inner.delete_keys(list(second))
    assert collect(_packed(inner), kept, DAY).stale == len(unused)
    for dry in (True, False):
        res = collect(_packed(inner), kept, DAY, dry=dry)
        assert res.stale == 0 and not res.written
    _age(inner, DAY + 1)
    assert collect(_packed(inner), kept, DAY).deleted_segments == 1
    assert _packed(inner).lost_blobs() == set()
    _intact(src, inner, kept, tmp_path)


def test_a_big_file_in_scope_by_phase_2_keeps_its_chunks(tmp_path: Path) -> None:
    """Phase 2 keeps a scheduled recipe that is used now (a wider scope than phase 1's,
    say a branch merged since); it deleted the pack of its chunks, which it took as
    unused: the remote then listed the big file, with its chunks gone, so no push
    stored it again."""
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    live = _small(src, "live", 10)
    _push(src, inner, live)
    big = src.add_bytes(_big(12, 5 * MiB))
    _push(src, inner, {big})
    res = collect(_packed(inner), live, DAY)
    assert res.recipes == 1 and res.dead_packs == 1
    _age(inner, DAY + 1)
    res = collect(_packed(inner), live | {big}, DAY)  # the branch is merged by now
    assert res.spared == 2 and not res.deleted_packs
    _intact(src, inner, live | {big}, tmp_path)


@pytest.mark.parametrize("kind", ["small", "big"])
def test_records_of_a_deleted_pack_stay_when_in_scope_by_phase_2(
        tmp_path: Path, kind: str) -> None:
    """Phase 1 left out the records of a deleted pack whose files its scope did not use;
    by phase 2 they are used (a branch merged since, or -a after -w). Phase 2 deleted
    the old segment all the same: the files were then absent, not lost, so a push
    trusted their manifest (or, for a big file, its recipe) and never stored them."""
    from mlv.remote.memory import MemoryRemote

    inner = MemoryRemote()
    src = _store(tmp_path, "src")
    make_format2(inner)
    live = _small(src, "live", 10)
    _push(src, inner, live)
    first = _packs(inner)
    other = _small(src, "other", 10) if kind == "small" else {src.add_bytes(_big(12, 5 * MiB))}
    _push(src, inner, other)
    assert not inner.delete_keys(sorted(_packs(inner) - first))
    assert collect(_packed(inner), live, DAY).stale
    _age(inner, DAY + 1)
    collect(_packed(inner), live | other, DAY)  # the branch is merged by now
    reader = _packed(inner)
    assert reader.lost_blobs() and reader.has(sorted(other)) == set()
    _push(src, inner, other)  # the repair
    for _ in range(3):
        collect(_packed(inner), live | other, 0)
    reader = _packed(inner)
    assert reader.lost_blobs() == set() and packcheck.check(reader).ok
    _intact(src, inner, live | other, tmp_path)


def test_a_pack_of_tiny_files_all_in_use_is_left_alone(backend: Remote,  # noqa: F811
                                                       tmp_path: Path) -> None:
    """Its header and table outweigh its blobs: taken as sparse, it was repacked (into
    the same pack) and scheduled on every run, so pushers took its files as doomed
    and stored them again, and gc said it freed bytes it never freed."""
    src = _store(tmp_path, "src")
    make_format2(backend)
    tiny = {src.add_bytes(f"{i}\n".encode()) for i in range(3)}
    _push(src, backend, tiny)
    before = set(backend.list_keys(""))
    for dry in (True, False):
        res = collect(_packed(backend), tiny, 0, dry=dry)
        assert res.sparse_packs == 0 and res.frees == 0 and not res.written
    assert set(backend.list_keys("")) == before
    assert _packed(backend).has(sorted(tiny)) == tiny
    # one of them unused: then it is sparse, and repacked
    res = collect(_packed(backend), set(sorted(tiny)[:1]), 0)
    assert res.sparse_packs == 1 and res.written
