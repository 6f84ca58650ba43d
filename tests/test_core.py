"""The data layer: hashing, canonical formats, the object store and the stat cache."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import xxhash

from mlv import hashing, manifest, pointer, workspace
from mlv.odb import ObjectStore
from tests.conftest import make_tree


def test_hash_is_xxh3_128_hex_for_small_and_streamed_files(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    big = tmp_path / "big"
    data = os.urandom(hashing.SMALL + 12345)
    big.write_bytes(data)
    assert hashing.hash_file(str(small)) == (xxhash.xxh3_128_hexdigest(b"hello"), 5)
    assert hashing.hash_file(str(big)) == (xxhash.xxh3_128_hexdigest(data), len(data))


def test_manifest_bytes_are_canonical() -> None:
    entries = [
        manifest.Entry("sub/b.bin", "b" * 32, 2),
        manifest.Entry("a.sh", "a" * 32, 1, exec=True),
        manifest.Entry("é.txt", "c" * 32, 0),
    ]
    expected = (
        '[{"path":"a.sh","xxh128":"' + "a" * 32 + '","size":1,"exec":true},'
        '{"path":"sub/b.bin","xxh128":"' + "b" * 32 + '","size":2},'
        '{"path":"é.txt","xxh128":"' + "c" * 32 + '","size":0}]'
    ).encode()
    assert manifest.dumps(entries) == expected
    assert manifest.dumps(list(reversed(entries))) == expected
    assert manifest.loads(expected, "x.dir") == sorted(entries, key=lambda e: e.path)


def test_pointer_text_is_deterministic() -> None:
    out = pointer.Out("data", "3f" * 16 + ".dir", 80211234, 20000)
    assert pointer.dumps([out]) == (
        "# mlv pointer: `mlv checkout` restores this path from the cache\n"
        "outs:\n"
        "- path: data\n"
        f"  xxh128: {'3f' * 16}.dir\n"
        "  size: 80211234\n"
        "  nfiles: 20000\n"
    )


@pytest.mark.parametrize("size", [0, 100, hashing.SMALL + 1])
def test_object_store_names_objects_by_hash_and_makes_them_read_only(
    tmp_path: Path, size: int
) -> None:
    src = tmp_path / "f"
    data = os.urandom(size)
    src.write_bytes(data)
    odb = ObjectStore(str(tmp_path / "cache"))
    oid, got = odb.add_file(str(src))
    assert (oid, got) == (xxhash.xxh3_128_hexdigest(data), size)
    obj = Path(odb.path_of(oid))
    assert obj == tmp_path / "cache" / "xxh128" / oid[:2] / oid[2:]
    assert obj.read_bytes() == data
    assert stat.S_IMODE(obj.stat().st_mode) & 0o222 == 0
    assert odb.add_file(str(src)) == (oid, size)  # idempotent
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if ".mlvtmp-" in p.name]
    assert leftovers == []


def test_manifest_object_is_stored_under_its_hash(mlv, mlv_repo: Path) -> None:
    make_tree(mlv_repo, {"data": {"a": "1", "b": {"c": "2"}}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    text = (mlv_repo / "data.mlv").read_text()
    oid = text.split("xxh128: ")[1].split()[0]
    obj = mlv_repo / ".mlv" / "cache" / "xxh128" / oid[:2] / oid[2:]
    raw = obj.read_bytes()
    assert oid == xxhash.xxh3_128_hexdigest(raw) + ".dir"
    assert [e["path"] for e in json.loads(raw)] == ["a", "b/c"]


def test_noop_status_reads_no_file_contents(mlv, mlv_repo: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(mlv_repo, {"data": {f"f{i}": f"content {i}" for i in range(50)},
                         "model.bin": "weights"})
    assert mlv("add", "data", "model.bin", cwd=mlv_repo).exit_code == 0
    assert mlv("status", cwd=mlv_repo).exit_code == 0  # warms the stat cache

    def no_reading(path: str) -> tuple[str, int]:
        raise AssertionError(f"status read {path}")

    monkeypatch.setattr(workspace, "hash_file", no_reading)
    res = mlv("status", cwd=mlv_repo)
    assert res.exit_code == 0, res.output
    assert "everything is up to date" in res.stdout


def test_status_rereads_only_files_whose_stat_changed(mlv, mlv_repo: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(mlv_repo, {"data": {f"f{i}": f"content {i}" for i in range(20)}})
    assert mlv("add", "data", cwd=mlv_repo).exit_code == 0
    os.utime(mlv_repo / "data" / "f3", ns=(1, 1))  # new mtime, same bytes
    read: list[str] = []
    real = workspace.hash_file

    def counting(path: str, *args: Any) -> tuple[str, int]:
        read.append(os.path.basename(path))
        return real(path, *args)

    monkeypatch.setattr(workspace, "hash_file", counting)
    res = mlv("status", cwd=mlv_repo)
    assert "everything is up to date" in res.stdout
    assert read == ["f3"]


@pytest.mark.parametrize("out", [
    pointer.Out("data", "ab" * 16 + ".dir", 10, 3),
    pointer.Out("model.pkl", "cd" * 16, 0),
    pointer.Out("run.sh", "ef" * 16, 5, None, True),
    pointer.Out("été 2024", "01" * 16, 7),
    pointer.Out("true", "23" * 16, 1),
    pointer.Out("-x", "45" * 16, 1),
])
def test_pointer_reads_the_same_with_and_without_the_fast_parser(
        tmp_path: Path, out: pointer.Out, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / f"{out.path}.mlv"
    file.write_text(pointer.dumps([out]), encoding="utf-8")
    fast = pointer.load(str(file), str(tmp_path))
    monkeypatch.setattr(pointer, "_fast_parse", lambda text: None)
    slow = pointer.load(str(file), str(tmp_path))
    assert fast == slow
    assert fast.outs == (out,)


# ---- parallel_map: where the work runs ----------------------------------------------------

def _record_threads(delay: float = 0.0):
    import threading
    import time

    seen: dict[int, int] = {}

    def fn(item: int) -> int:
        seen[item] = threading.get_ident()
        if delay:
            time.sleep(delay)  # waiting, as on slow storage
        return item * 2

    return fn, seen


def test_parallel_map_runs_small_fast_items_on_the_calling_thread() -> None:
    import threading

    from mlv.workspace import parallel_map

    fn, seen = _record_threads()
    items = list(range(500))
    done: list[int] = []
    assert parallel_map(fn, items, 8, progress=done.append, size=lambda i: 100) == [
        i * 2 for i in items]
    assert set(seen.values()) == {threading.get_ident()}
    assert sum(done) == len(items)


def test_parallel_map_sends_big_items_to_the_pool_and_keeps_the_order() -> None:
    import threading

    from mlv.workspace import THREAD_MIN_SIZE, parallel_map

    fn, seen = _record_threads()
    items = list(range(40))
    big = {i for i in items if i % 4 == 0}
    result = parallel_map(fn, items, 4, size=lambda i: THREAD_MIN_SIZE if i in big else 10)
    assert result == [i * 2 for i in items]
    here = threading.get_ident()
    assert all(seen[i] != here for i in big)
    assert all(seen[i] == here for i in items if i not in big)


def test_parallel_map_moves_waiting_work_to_the_pool() -> None:
    import threading

    from mlv.workspace import parallel_map

    fn, seen = _record_threads(delay=0.001)
    items = list(range(400))
    assert parallel_map(fn, items, 8, size=lambda i: 10) == [i * 2 for i in items]
    here = threading.get_ident()
    on_pool = [i for i in items if seen[i] != here]
    # the first items show that the calls wait; the rest run on the pool
    assert seen[0] == here and len(on_pool) > len(items) // 2


def test_parallel_map_raises_the_first_error() -> None:
    from mlv.workspace import THREAD_MIN_SIZE, parallel_map

    def fn(item: int) -> int:
        if item == 30:
            raise ValueError("item 30")
        return item

    for size in (None, lambda i: 10, lambda i: THREAD_MIN_SIZE):
        with pytest.raises(ValueError, match="item 30"):
            parallel_map(fn, list(range(100)), 4, size=size)
