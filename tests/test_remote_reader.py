"""Reading one object straight from a remote (mlv/remote/reader.py): whole and ranged
reads, verified, over memory, folder and S3 remotes in formats 1 and 2."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlv import manifest, transfer
from mlv.api import remote as remote_api
from mlv.api.remote import INDEX_DIR
from mlv.hashing import hash_bytes
from mlv.odb import ObjectStore
from mlv.remote import Remote, key_of
from mlv.remote import reader as reader_mod
from mlv.remote.memory import MemoryRemote
from mlv.remote.packed import PackedRemote, make_format2, open_format, pack_key, recipe_key
from mlv.remote.packs import build_recipe
from mlv.remote.reader import ObjectCorruptError, ObjectNotFoundError, object_url, open_object
from mlv.repo import Repo
from tests.conftest import add_remote, git
from tests.test_remote_conformance import backend  # noqa: F401 - the remotes of keys

MiB = 2**20
BIG = 5 * MiB  # over the chunker's from_size (4 MiB): cut into ~20 chunks


class CountingRemote(MemoryRemote):
    """A memory remote that counts the bytes read from pack files, and the reads."""

    def __init__(self) -> None:
        super().__init__()
        self.pack_bytes = 0
        self.pack_reads = 0

    def get_key(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        data = super().get_key(key, start, end)
        if key.startswith("packs/"):
            self.pack_bytes += len(data)
            self.pack_reads += 1
        return data


@dataclass
class Stored:
    remote: Remote  # as a reader (a clone) opens it
    keys: Remote  # the remote of keys underneath
    objects: dict[str, bytes]  # oid -> bytes
    small: str
    empty: str
    big: str
    folder: str  # a .dir manifest


def _store(keys: Remote, fmt: int, tmp_path: Path) -> Stored:
    folder = tmp_path / "src-cache"
    folder.mkdir()
    odb = ObjectStore(str(folder))
    small_bytes, big_bytes = b"a,b\n1,2\n" * 50, random.Random(7).randbytes(BIG)
    small, empty, big = (odb.add_bytes(d) for d in (small_bytes, b"", big_bytes))
    listing = manifest.dumps([manifest.Entry("a.csv", small, len(small_bytes)),
                              manifest.Entry("empty", empty, 0)])
    folder_oid = odb.add_bytes(listing, ".dir")
    target = make_format2(keys) if fmt == 2 else keys
    pushed = transfer.push(odb, target, {folder_oid, big})
    assert not pushed.failed and not pushed.missing
    remote = open_format(keys)
    assert isinstance(remote, PackedRemote) == (fmt == 2)
    objects = {small: small_bytes, empty: b"", big: big_bytes, folder_oid: listing}
    return Stored(remote, keys, objects, small, empty, big, folder_oid)


@pytest.fixture(params=[1, 2], ids=["format1", "format2"])
def stored(request: pytest.FixtureRequest, backend: Remote, tmp_path: Path  # noqa: F811
           ) -> Stored:
    return _store(backend, request.param, tmp_path)


def _open(s: Stored, oid: str) -> io.RawIOBase:
    return open_object(s.remote, oid, len(s.objects[oid]))  # type: ignore[return-value]


def test_whole_reads_equal_the_bytes(stored: Stored) -> None:
    for oid, data in stored.objects.items():
        with _open(stored, oid) as f:
            assert f.readable() and f.seekable() and not f.writable()
            assert f.read() == data
            assert f.read() == b"" and f.read(10) == b""
        assert f.closed


def test_seek_and_read_at_many_offsets(stored: Stored) -> None:
    data = stored.objects[stored.big]
    size = len(data)
    offsets = [0, 1, 65535, 65536, size // 3, size // 2, size - 1000, size - 1, size,
               size + 5]
    offsets += random.Random(1).sample(range(size), 20)
    if isinstance(stored.remote, PackedRemote):  # across every chunk boundary
        at = 0
        for _, length in stored.remote.recipe(stored.big).chunks:
            at += length
            offsets += [at - 3, at]
    with _open(stored, stored.big) as f:
        for at in offsets:
            for n in (1, 10, 100_000):
                assert f.seek(at) == at
                assert f.read(n) == data[at:at + n], (at, n)
                assert f.tell() == min(max(at, size), at + n) if at < size else at
        assert f.seek(-10, io.SEEK_END) == size - 10 and f.read() == data[-10:]
        f.seek(100)
        assert f.seek(50, io.SEEK_CUR) == 150
        buf = bytearray(1000)
        assert f.readinto(buf) == 1000 and bytes(buf) == data[150:1150]
    with _open(stored, stored.small) as f:
        f.seek(10)
        assert f.read(5) == stored.objects[stored.small][10:15]


def test_empty_object(stored: Stored) -> None:
    with _open(stored, stored.empty) as f:
        assert f.read() == b"" and f.read(1) == b"" and f.seek(0, io.SEEK_END) == 0


def test_a_missing_object_raises_not_found(stored: Stored) -> None:
    oid = hash_bytes(b"never pushed")
    with pytest.raises(ObjectNotFoundError) as err:
        open_object(stored.remote, oid, 12)
    assert oid[:8] in err.value.message and stored.remote.name in err.value.message
    assert "mlv push" in (err.value.hint or "")
    with pytest.raises(ObjectNotFoundError):
        open_object(stored.remote, oid + ".dir", 12)


def test_a_wrong_size_is_refused(stored: Stored) -> None:
    for oid in (stored.small, stored.big, stored.folder):
        with pytest.raises(ObjectCorruptError):
            open_object(stored.remote, oid, len(stored.objects[oid]) + 1).read()


def test_object_url(stored: Stored) -> None:
    for oid in (stored.small, stored.big, stored.folder):
        url = object_url(stored.remote, oid)
        loose = not isinstance(stored.remote, PackedRemote) or oid == stored.folder
        if not loose:  # in a pack, or a recipe of chunks: no one URL holds it
            assert url is None
            continue
        assert url is not None and url.startswith(stored.keys.url.rstrip("/") + "/")
        key = url[len(stored.keys.url.rstrip("/")) + 1:]
        assert key == key_of(oid) and stored.keys.get_key(key) == stored.objects[oid]
        if stored.keys.url.startswith("/"):  # a folder: the URL is a path to read
            assert Path(url).read_bytes() == stored.objects[oid]
    if isinstance(stored.remote, PackedRemote):
        with pytest.raises(ObjectNotFoundError):
            object_url(stored.remote, hash_bytes(b"never pushed"))


def test_a_damaged_loose_object_raises_and_returns_nothing(backend: Remote,  # noqa: F811
                                                           tmp_path: Path) -> None:
    s = _store(backend, 1, tmp_path)
    data = bytearray(s.objects[s.big])
    data[len(data) // 2] ^= 1
    s.keys.put_key(key_of(s.big), bytes(data))
    with pytest.raises(ObjectCorruptError) as err:
        open_object(s.remote, s.big, len(data))
    assert s.big[:8] in err.value.message and s.remote.name in err.value.message
    assert "mlv fsck --remote" in (err.value.hint or "")
    s.keys.put_key(key_of(s.small), s.objects[s.small] + b"more")  # longer than it is
    with pytest.raises(ObjectCorruptError, match="more than"):
        open_object(s.remote, s.small, len(s.objects[s.small]))


def test_a_big_loose_object_is_spooled_in_blocks(stored: Stored,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "BLOCK", MiB)
    monkeypatch.setattr(reader_mod, "SPOOL_IN_MEMORY", MiB)
    oid = stored.big if not isinstance(stored.remote, PackedRemote) else stored.folder
    data = stored.objects[oid]
    with _open(stored, oid) as f:
        f.seek(len(data) // 2)
        assert f.read(MiB) == data[len(data) // 2:len(data) // 2 + MiB]
        f.seek(0)
        assert f.read() == data


def _chunked(tmp_path: Path) -> tuple[CountingRemote, PackedRemote, bytes, str]:
    keys = CountingRemote()
    s = _store(keys, 2, tmp_path)
    assert isinstance(s.remote, PackedRemote)
    return keys, s.remote, s.objects[s.big], s.big


def test_a_ranged_read_fetches_only_the_chunks_it_needs(tmp_path: Path) -> None:
    keys, remote, data, oid = _chunked(tmp_path)
    chunks = remote.recipe(oid).chunks
    assert len(chunks) > 8
    starts = [sum(n for _, n in chunks[:i]) for i in range(len(chunks))]
    i = len(chunks) // 2
    inside = starts[i] + 1000  # 100 bytes inside chunk i
    keys.pack_bytes = keys.pack_reads = 0
    with open_object(remote, oid, len(data)) as f:
        f.seek(inside)
        assert f.read(100) == data[inside:inside + 100]
        assert keys.pack_bytes == chunks[i][1] and keys.pack_reads == 1
        for _ in range(3):  # small sequential reads: the chunk is kept, not fetched again
            at = f.tell()
            assert f.read(64 * 1024) == data[at:at + 64 * 1024]
        assert keys.pack_reads <= 2
        keys.pack_bytes = 0
        across = starts[i + 3] - 50  # 100 bytes across a boundary: those two chunks
        f.seek(across)
        assert f.read(100) == data[across:across + 100]
        assert keys.pack_bytes == chunks[i + 2][1] + chunks[i + 3][1]


def test_a_damaged_chunk_raises_and_returns_no_wrong_bytes(tmp_path: Path) -> None:
    keys, remote, data, oid = _chunked(tmp_path)
    chunks = remote.recipe(oid).chunks
    i = len(chunks) // 2
    rec = remote.index().lookup(chunks[i][0])
    assert rec is not None
    pack = bytearray(keys.get_key(pack_key(rec.pack)))
    pack[rec.offset + 10] ^= 0xFF
    keys.put_key(pack_key(rec.pack), bytes(pack))
    start = sum(n for _, n in chunks[:i])
    with open_object(remote, oid, len(data)) as f:
        assert f.read(100) == data[:100]  # an intact chunk reads
        f.seek(start + 5)
        with pytest.raises(ObjectCorruptError) as err:
            f.read(100)
        assert oid[:8] in err.value.message and "mlv fsck --remote" in (err.value.hint or "")
        with pytest.raises(ObjectCorruptError):
            f.seek(0)
            f.read()  # a whole read stops at the damaged chunk: nothing is returned


def test_a_recipe_of_the_wrong_chunks_fails_the_whole_read(tmp_path: Path) -> None:
    keys, remote, data, oid = _chunked(tmp_path)
    chunks = remote.recipe(oid).chunks
    swapped = [chunks[1], chunks[0]] + chunks[2:]  # every chunk intact, in the wrong order
    keys.put_key(recipe_key(oid), build_recipe(len(data), swapped))
    with open_object(remote, oid, len(data)) as f:
        with pytest.raises(ObjectCorruptError, match="do not make the file"):
            f.read()
        with pytest.raises(ObjectCorruptError):
            f.seek(len(data) - 10)
            f.read()  # once found damaged, it stays damaged
    sized = build_recipe(len(data) - chunks[-1][1], chunks[:-1])
    keys.put_key(recipe_key(oid), sized)
    with pytest.raises(ObjectCorruptError, match="recipe"):
        open_object(remote, oid, len(data))


def test_reading_writes_nothing_to_the_cache_or_the_workspace(
        mlv_repo: Path, tmp_path: Path, remote_kind: str, request: pytest.FixtureRequest
) -> None:
    add_remote(mlv_repo, remote_kind, request, tmp_path)
    repo = Repo.find(str(mlv_repo))
    s = _store(remote_api.resolve(repo), 2, tmp_path)
    remote = remote_api.resolve(repo)  # as a command opens it: with the repo's cache
    assert isinstance(remote, PackedRemote)
    status = git(mlv_repo, "status", "--porcelain")
    for oid in (s.big, s.small, s.folder):
        with open_object(remote, oid, len(s.objects[oid])) as f:
            assert f.read() == s.objects[oid]
    assert list(repo.odb.iter_objects()) == []
    kept = [p.relative_to(repo.cache_dir) for p in Path(repo.cache_dir).rglob("*")
            if p.is_file()]
    assert all(p.parts[0] == INDEX_DIR and "recipes" not in p.parts for p in kept), kept
    assert git(mlv_repo, "status", "--porcelain") == status
