"""`mlv fsck --remote` on a format-2 remote (mlv/remote/packcheck.py): the marker, index
segments, packs and recipes are checked; each damaged part is named with the files it
affects and the pointers that use them; a pack no segment lists is a harmless leftover.

Until `mlv.api.remote.resolve` opens format-2 remotes itself, the CLI tests wrap it with
`open_format` (what that wiring does)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mlv import transfer
from mlv.api import fsck as fsck_api
from mlv.api import remote as remote_api
from mlv.hashing import hash_bytes
from mlv.odb import ObjectStore
from mlv.remote import Remote, packcheck
from mlv.remote.memory import MemoryRemote
from mlv.remote.packed import PackedRemote, make_format2, open_format, recipe_key
from mlv.remote.packs import (
    MARKER_KEY,
    RemoteFormatError,
    build_pack,
    build_recipe,
    parse_pack,
    parse_recipe,
)
from mlv.repo import Repo
from tests.conftest import make_tree, one_error
from tests.test_remote_conformance import backend  # noqa: F401 - the remotes of keys

MiB = 2**20


def _store(tmp_path: Path, name: str = "src") -> ObjectStore:
    folder = tmp_path / name
    folder.mkdir()
    return ObjectStore(str(folder))


def _big(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(size)


def _pushed(inner: Remote, tmp_path: Path, big: bool = False
            ) -> tuple[PackedRemote, set[str], str | None]:
    """A format-2 remote holding 40 small objects (and a 5 MiB file stored as chunks)."""
    odb = _store(tmp_path)
    roots = {odb.add_bytes(f"small object {i}\n".encode() * (i % 9 + 1)) for i in range(40)}
    big_oid = odb.add_bytes(_big(1, 5 * MiB)) if big else None
    packed = make_format2(inner)
    pushed = transfer.push(odb, packed, roots | ({big_oid} if big_oid else set()))
    assert not pushed.failed and not pushed.missing
    assert not inner.list_oids()  # nothing loose: all in packs
    return open_format(inner), roots, big_oid  # type: ignore[return-value]


def _keys(inner: Remote, prefix: str) -> list[str]:
    return sorted(inner.list_keys(prefix))


def _flip(inner: Remote, key: str, at: int) -> None:
    data = bytearray(inner.get_key(key))
    data[at] ^= 0xFF
    inner.put_key(key, bytes(data))


def _only(result: packcheck.CheckResult) -> packcheck.Damage:
    assert len(result.damage) == 1, result.damage
    return result.damage[0]


# ---- through the check itself, on every backend ----------------------------------------


def test_a_clean_remote_passes(backend: Remote, tmp_path: Path) -> None:  # noqa: F811
    packed, roots, big = _pushed(backend, tmp_path, big=True)
    result = packcheck.check(packed)
    assert result.ok and not result.leftovers, result
    assert result.objects == len(roots) and result.recipes == 1
    assert result.packs == len(_keys(backend, "packs/")) == result.read_whole
    assert result.segments == 1


def test_a_flipped_byte_in_a_pack_names_the_pack_and_the_object(
        backend: Remote, tmp_path: Path) -> None:  # noqa: F811
    packed, roots, _ = _pushed(backend, tmp_path)
    (key,) = _keys(backend, "packs/")
    victim = parse_pack(backend.get_key(key))[3]
    _flip(backend, key, victim.offset + 1)
    damage = _only(packcheck.check(packed))
    assert (damage.kind, damage.key) == ("pack", key)
    assert damage.objects == [victim.oid]
    assert f"blob {victim.oid} does not match its hash" in damage.problems
    assert "its bytes do not match its name" in damage.problems


def test_a_damaged_chunk_names_the_big_file(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, big = _pushed(inner, tmp_path, big=True)
    recipe = parse_recipe(inner.get_key(recipe_key(str(big))), str(big), 1 << 20)
    chunk = recipe.chunks[2][0]
    for key in _keys(inner, "packs/"):
        entries = {e.oid: e for e in parse_pack(inner.get_key(key))}
        if chunk in entries:
            _flip(inner, key, entries[chunk].offset)
            break
    damage = _only(packcheck.check(packed))
    assert damage.kind == "pack" and damage.objects == [big]


def test_a_truncated_pack_is_named_with_what_it_lost(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, roots, _ = _pushed(inner, tmp_path)
    (key,) = _keys(inner, "packs/")
    data = inner.get_key(key)
    entries = parse_pack(data)
    cut = entries[-5].offset + 2  # the last five blobs lose bytes, and the table goes
    inner.put_key(key, data[:cut])
    damage = _only(packcheck.check(packed, sample=1))  # a sample reads the tables too
    assert damage.key == key
    assert damage.objects == sorted(e.oid for e in entries[-5:])
    assert any("no pack trailer" in p for p in damage.problems), damage.problems


def test_a_deleted_pack_names_every_object_it_held(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, roots, _ = _pushed(inner, tmp_path)
    (key,) = _keys(inner, "packs/")
    inner.delete_keys([key])
    damage = _only(packcheck.check(packed))
    assert (damage.key, damage.problems) == (key, ["missing"])
    assert damage.objects == sorted(roots)


def test_a_segment_with_a_flipped_byte_is_named_with_what_it_listed(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, roots, _ = _pushed(inner, tmp_path)
    (seg,) = _keys(inner, "index/")
    _flip(inner, seg, 30)
    result = packcheck.check(packed)
    damage = _only(result)
    assert (damage.kind, damage.key) == ("index segment", seg)
    assert "its bytes do not match its name" in damage.problems
    assert damage.objects == sorted(roots)  # learnt from the packs it listed
    (pack,) = _keys(inner, "packs/")
    assert "perhaps by the damaged one" in result.leftovers[pack]


def test_a_damaged_pack_is_found_when_its_segment_is_damaged_too(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, roots, _ = _pushed(inner, tmp_path)
    (seg,) = _keys(inner, "index/")
    (pack,) = _keys(inner, "packs/")
    victim = parse_pack(inner.get_key(pack))[7]
    _flip(inner, seg, 30)
    _flip(inner, pack, victim.offset)
    segment, damaged = packcheck.check(packed).damage
    assert (segment.key, damaged.key) == (seg, pack)
    assert damaged.objects == [victim.oid]


def test_a_segment_whose_name_does_not_match_is_named(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, roots, _ = _pushed(inner, tmp_path)
    (seg,) = _keys(inner, "index/")
    wrong = "index/" + hash_bytes(b"another name")
    inner.put_key(wrong, inner.get_key(seg))
    inner.delete_keys([seg])
    damage = _only(packcheck.check(packed))
    assert (damage.key, damage.problems) == (wrong, ["its bytes do not match its name"])
    assert damage.objects == sorted(roots)


def test_a_damaged_recipe_names_its_big_file(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, big = _pushed(inner, tmp_path, big=True)
    key = recipe_key(str(big))
    _flip(inner, key, 25)
    damage = _only(packcheck.check(packed))
    assert (damage.kind, damage.key, damage.objects) == ("recipe", key, [big])
    assert damage.problems == ["it does not match its checksum"]


def test_a_recipe_naming_an_unlisted_chunk_is_named(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, big = _pushed(inner, tmp_path, big=True)
    key = recipe_key(str(big))
    recipe = parse_recipe(inner.get_key(key), str(big), 1 << 20)
    stranger = hash_bytes(b"a chunk nobody stored")
    chunks = [(stranger, recipe.chunks[0][1])] + recipe.chunks[1:]
    inner.put_key(key, build_recipe(recipe.size, chunks))
    damage = _only(packcheck.check(packed))
    assert damage.problems == [f"chunk {stranger} is in no index segment"]
    assert damage.objects == [big]


def test_a_recipe_whose_chunks_do_not_make_its_file_is_named(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, big = _pushed(inner, tmp_path, big=True)
    key = recipe_key(str(big))
    recipe = parse_recipe(inner.get_key(key), str(big), 1 << 20)
    swapped = [recipe.chunks[1], recipe.chunks[0]] + recipe.chunks[2:]
    inner.put_key(key, build_recipe(recipe.size, swapped))  # well formed, wrong order
    damage = _only(packcheck.check(packed))
    assert damage.problems == ["its chunks put together do not hash to its name"]


def test_an_unlisted_pack_is_a_harmless_leftover(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, _ = _pushed(inner, tmp_path)
    data = b"pushed, but the push died before its index segment\n"
    pack = build_pack([(0, hash_bytes(data), data)])
    key = f"packs/{pack.pack_id[:2]}/{pack.pack_id}"
    inner.put_key(key, pack.data)
    result = packcheck.check(packed)
    assert result.ok
    assert "interrupted push" in result.leftovers[key]


def test_a_missing_or_malformed_marker_is_damage(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, _ = _pushed(inner, tmp_path)
    inner.put_key(MARKER_KEY, b'{"format": 2}')
    damage = _only(packcheck.check(packed))
    assert damage.kind == "marker" and "lacks" in damage.problems[0]
    inner.delete_keys([MARKER_KEY])
    damage = _only(packcheck.check(packed))
    assert damage.problems[0].startswith("missing")


def test_a_marker_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    inner = MemoryRemote()
    packed, _, _ = _pushed(inner, tmp_path)
    inner.put_key(MARKER_KEY, b'{"format": 3}')
    with pytest.raises(RemoteFormatError) as err:
        packcheck.check(packed)
    assert "format 3" in err.value.message


# ---- through a repository: pointers and the CLI ----------------------------------------


@pytest.fixture
def packed_repo(mlv, mlv_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> tuple[Path, Remote]:
    """A repository whose default remote, a local folder, is in format 2 and holds
    `data/` (a.txt, b.txt, sub/c.txt) and `model.bin` (8 MiB: a recipe of chunks)."""
    opened = remote_api.resolve  # a remote with a format-2 marker is read as one
    folder = tmp_path / "store"
    folder.mkdir()
    assert mlv("remote", "add", "-d", "store", str(folder), cwd=mlv_repo).exit_code == 0
    inner = opened(Repo.find(str(mlv_repo)))
    make_format2(inner)
    make_tree(mlv_repo, {"data": {"a.txt": "alpha\n", "b.txt": "beta\n",
                                  "sub": {"c.txt": "gamma\n"}}})
    (mlv_repo / "model.bin").write_bytes(_big(7, 8 * MiB))
    for args in (("add", "data", "model.bin"), ("push",)):
        res = mlv(*args, cwd=mlv_repo)
        assert res.exit_code == 0, res.output
    assert _keys(inner, "packs/") and not inner.list_oids() - {
        o for o in inner.list_oids() if o.endswith(".dir")}
    return mlv_repo, inner


def _blob_of(inner: Remote, oid: str) -> tuple[str, int]:
    for key in _keys(inner, "packs/"):
        for e in parse_pack(inner.get_key(key)):
            if e.oid == oid:
                return key, e.offset
    raise AssertionError(f"{oid} is in no pack")


def test_fsck_names_the_paths_a_damaged_pack_affects(mlv, packed_repo) -> None:
    repo, inner = packed_repo
    res = mlv("fsck", "-r", "store", cwd=repo)
    assert res.exit_code == 0, res.output
    assert "all good" in res.stdout and "leftover" not in res.stdout
    beta = hash_bytes(b"beta\n")
    key, offset = _blob_of(inner, beta)
    _flip(inner, key, offset)
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "1 damaged pack, 1 damaged object", "remote 'store'")
    assert f"damaged pack {key}: its bytes do not match its name" in res.stdout
    assert f"  affects {beta} (used by data.mlv (data/b.txt))" in res.stdout
    # what to do: delete the pack, push again (the manifest of data/ need not go: a push
    # checks every file of every folder once a pack its files were in is gone)
    assert f"  to repair: delete {key} from the remote, then run `mlv push`" in res.stdout
    assert f"hint: delete {key} from remote 'store', then run `mlv push` from a clone that " \
        "has the affected files in its cache" in res.stderr
    assert "lists-damaged" not in res.stdout
    data = json.loads(mlv("fsck", "-r", "store", "--json", cwd=repo).stdout)
    (part,) = data["damaged_parts"]
    assert (part["kind"], part["key"]) == ("pack", key)
    assert part["objects"] == {beta: ["data.mlv (data/b.txt)"]}
    assert data["damaged"] == part["objects"] and data["leftovers"] == {}


def test_fsck_names_the_big_file_of_a_damaged_chunk(mlv, packed_repo) -> None:
    repo, inner = packed_repo
    model = hash_bytes((repo / "model.bin").read_bytes())
    recipe = parse_recipe(inner.get_key(recipe_key(model)), model, 1 << 20)
    key, offset = _blob_of(inner, recipe.chunks[5][0])
    _flip(inner, key, offset + 100)
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "damaged pack")
    assert f"affects {model} (used by model.bin.mlv)" in res.stdout


def test_fsck_names_a_deleted_pack_and_a_damaged_segment(mlv, packed_repo) -> None:
    repo, inner = packed_repo
    (seg,) = _keys(inner, "index/")
    _flip(inner, seg, 20)
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "1 damaged index segment", "damaged object")
    assert f"damaged index segment {seg}: its bytes do not match its name" in res.stdout
    for path in ("data/a.txt", "data/b.txt", "data/sub/c.txt"):
        assert f"(used by data.mlv ({path}))" in res.stdout
    assert "(used by model.bin.mlv)" in res.stdout
    assert "leftover packs/" in res.stdout
    assert "damaged recipe" not in res.stdout  # its chunks are what the segment listed


def test_fsck_reports_a_leftover_pack_and_passes(mlv, packed_repo) -> None:
    repo, inner = packed_repo
    data = b"a blob of a push that died\n"
    pack = build_pack([(0, hash_bytes(data), data)])
    key = f"packs/{pack.pack_id[:2]}/{pack.pack_id}"
    inner.put_key(key, pack.data)
    res = mlv("fsck", "-r", "store", cwd=repo)
    assert res.exit_code == 0, res.output
    assert f"leftover {key}: listed by no index segment" in res.stdout
    assert "all good" in res.stdout


def test_fsck_refuses_a_marker_of_an_unknown_format(mlv, packed_repo) -> None:
    repo, inner = packed_repo
    inner.put_key(MARKER_KEY, b'{"format": 9, "future": true}')
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "storage format 9")
    assert "hint: upgrade mlv" in res.stderr


def test_fsck_of_a_packed_remote_still_checks_loose_objects(mlv, packed_repo) -> None:
    repo, inner = packed_repo
    manifest = next(o for o in inner.list_oids() if o.endswith(".dir"))
    key = f"xxh128/{manifest[:2]}/{manifest[2:]}"
    _flip(inner, key, 3)
    res = mlv("fsck", "-r", "store", cwd=repo)
    one_error(res, "1 damaged object")
    assert f"damaged {manifest} (used by data.mlv)" in res.stdout


def test_fsck_remote_api_with_a_packed_remote(packed_repo) -> None:
    repo, inner = packed_repo
    source = open_format(inner)
    (key,) = [k for k in _keys(inner, "packs/")
              if hash_bytes(b"alpha\n") in {e.oid for e in parse_pack(inner.get_key(k))}]
    inner.delete_keys([key])
    result = fsck_api.fsck_remote(Repo.find(str(repo)), source)
    assert not result.ok
    (part,) = result.parts
    assert part.key == key and part.problems == ["missing"]
    assert part.objects[hash_bytes(b"alpha\n")] == ["data.mlv (data/a.txt)"]
