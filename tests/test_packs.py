"""Remote format 2 as bytes: marker, packs, index segments, recipes (mlv/packs.py).

Everything a remote brings is hostile input: each malformed case must fail with the one
error class that names what is damaged, never with IndexError, struct.error or MemoryError.
"""

from __future__ import annotations

import json
import random
import struct

import pytest
import xxhash

from mlv.errors import MlvError
from mlv.hashing import hash_bytes
from mlv.remote import packs
from mlv.remote.packs import (
    CHUNK,
    OBJECT,
    TRAILER_SIZE,
    CorruptPackError,
    CorruptRecipeError,
    CorruptSegmentError,
    Entry,
    IndexView,
    Marker,
    PackWriter,
    Record,
    RemoteFormatError,
)

MiB = 2**20


def blob(data: bytes, btype: int = OBJECT) -> tuple[int, str, bytes]:
    return btype, hash_bytes(data), data


def small_pack() -> packs.Pack:
    return packs.build_pack([blob(b"alpha"), blob(b"beta-beta", CHUNK), blob(b"")])


def craft_pack(body: bytes, rows: list[tuple[int, bytes, int, int]], count: int | None = None,
               head: bytes = b"MLVPACK2", end: bytes = b"MLVPEND2") -> bytes:
    """A pack with a chosen table whose checksum is right (to reach the later checks)."""
    table = b"".join(struct.pack("<B16sQQ", *row) for row in rows)
    count = len(rows) if count is None else count
    return (head + body + table
            + struct.pack("<IQ8s", count, xxhash.xxh3_64_intdigest(table), end))


def raw(data: bytes) -> bytes:
    return bytes.fromhex(hash_bytes(data))


# ---------------------------------------------------------------------------------------
# Marker


def test_marker_round_trips_as_canonical_json() -> None:
    data = packs.marker_bytes(Marker())
    doc = json.loads(data)
    assert doc == {"format": 2, "hash": "xxh128",
                   "chunker": {"name": "fastcdc-2020", "min": 65536, "avg": 262144,
                               "max": 1048576, "from_size": 4194304},
                   "pack": {"target": 16777216, "max": 67108864}}
    assert data == (json.dumps(doc, sort_keys=True) + "\n").encode()
    assert packs.parse_marker(data) == Marker()


def test_marker_of_a_newer_format_says_to_upgrade_mlv() -> None:
    with pytest.raises(RemoteFormatError) as exc:
        packs.parse_marker(b'{"format": 3, "whatever": "a future layout"}')
    assert "storage format 3" in exc.value.message
    assert "upgrade mlv" in (exc.value.hint or "")


def good_marker() -> dict:
    return json.loads(packs.marker_bytes(Marker()))


def bad(path: str, value: object) -> bytes:
    doc = good_marker()
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize("data, words", [
    (b"", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[2]", "not a JSON object"),
    (b'{"format": "2"}', "format"),
    (b'{"format": true}', "format"),
    (b'{"format": 1}', "format 1 has no marker"),
    (b'{"format": -2}', "format -2 has no marker"),
    (b" " * (64 * 1024 + 1), "more than"),
    (bad("hash", "sha256"), "hash"),
    (bad("hash", KeyError), "lacks hash"),
    (bad("extra", 1), "unknown keys extra"),
    (bad("chunker", [1]), "chunker is not a JSON object"),
    (bad("chunker.name", "rabin"), "chunker"),
    (bad("chunker.min", 300 * 1024), "chunker.min"),          # min > avg
    (bad("chunker.avg", 2 * MiB), "chunker.avg"),             # avg > max
    (bad("chunker.min", 100), "chunker.min"),                 # absurdly small
    (bad("chunker.max", 64 * MiB), "chunker.max"),            # absurdly big
    (bad("chunker.from_size", 512 * 1024), "chunker.from_size"),  # below max
    (bad("chunker.from_size", 128 * MiB), "chunker.from_size"),   # cannot fit a pack
    (bad("chunker.avg", 262144.0), "chunker.avg is not an integer"),
    (bad("chunker.max", True), "chunker.max is not an integer"),
    (bad("pack.target", 128 * MiB), "pack.target"),           # target > max
    (bad("pack.max", 512 * MiB), "pack.max"),                 # over 256 MiB
    (bad("pack.max", KeyError), "pack lacks max"),
])
def test_marker_refuses_what_it_cannot_trust(data: bytes, words: str) -> None:
    with pytest.raises(RemoteFormatError) as exc:
        packs.parse_marker(data)
    assert words in exc.value.message
    assert "mlv-remote.json" in exc.value.message


def test_marker_bytes_refuses_to_write_a_marker_it_could_not_read() -> None:
    with pytest.raises(RemoteFormatError):
        packs.marker_bytes(Marker(pack_target=128 * MiB))


# ---------------------------------------------------------------------------------------
# Packs


def test_pack_round_trip_and_layout() -> None:
    pack = small_pack()
    assert pack.pack_id == hash_bytes(pack.data)
    assert pack.data.startswith(b"MLVPACK2") and pack.data.endswith(b"MLVPEND2")
    assert len(pack.data) == 8 + len(b"alphabeta-beta") + 33 * 3 + 20
    assert pack.entries == [Entry(OBJECT, hash_bytes(b"alpha"), 8, 5),
                            Entry(CHUNK, hash_bytes(b"beta-beta"), 13, 9),
                            Entry(OBJECT, hash_bytes(b""), 22, 0)]
    assert packs.parse_pack(pack.data, "p") == pack.entries
    assert [packs.read_blob(pack.data, e) for e in pack.entries] == [b"alpha", b"beta-beta", b""]
    assert packs.verify_pack(pack.data) == pack.entries


def test_pack_table_from_a_ranged_read_of_the_tail() -> None:
    pack = small_pack()
    size = len(pack.data)
    trailer = pack.data[-TRAILER_SIZE:]
    need = packs.tail_size(trailer, size)
    assert need == 33 * 3 + 20
    assert packs.parse_pack_table(pack.data[-need:], size) == pack.entries
    too_short = pack.data[-need + 1:]
    with pytest.raises(CorruptPackError, match="tail bytes"):
        packs.parse_pack_table(too_short, size)
    # A ranged read of the middle blob alone, at its file offset.
    entry = pack.entries[1]
    part = pack.data[entry.offset - 3:entry.offset + entry.length + 2]
    assert packs.read_blob(part, entry, base=entry.offset - 3) == b"beta-beta"
    with pytest.raises(CorruptPackError, match="outside the bytes read"):
        packs.read_blob(part[:-4], entry, base=entry.offset - 3)


def test_random_blobs_round_trip() -> None:
    rnd = random.Random(11)
    for _ in range(40):
        datas = {rnd.randbytes(rnd.randrange(0, 3000)) for _ in range(rnd.randrange(1, 30))}
        blobs = [blob(d, rnd.choice((OBJECT, CHUNK))) for d in datas]
        pack = packs.build_pack(blobs)
        entries = packs.parse_pack(pack.data)
        assert [(e.type, e.oid) for e in entries] == [(t, i) for t, i, _ in blobs]
        assert [packs.read_blob(pack.data, e) for e in entries] == [d for _, _, d in blobs]


def test_a_flipped_byte_anywhere_in_a_pack_is_detected() -> None:
    pack = small_pack()
    for pos in range(len(pack.data)):
        damaged = bytearray(pack.data)
        damaged[pos] ^= 0x40
        with pytest.raises(CorruptPackError):
            packs.verify_pack(bytes(damaged), "P")


def test_a_damaged_blob_names_the_pack_and_the_blob() -> None:
    pack = small_pack()
    damaged = bytearray(pack.data)
    damaged[14] ^= 1  # inside "beta-beta"
    entries = packs.parse_pack(bytes(damaged), pack.pack_id)  # the table is intact
    assert packs.read_blob(bytes(damaged), entries[0]) == b"alpha"
    with pytest.raises(CorruptPackError) as exc:
        packs.read_blob(bytes(damaged), entries[1], pack.pack_id)
    assert pack.pack_id in exc.value.message and entries[1].oid in exc.value.message
    assert "does not match its hash" in exc.value.message
    assert isinstance(exc.value, MlvError) and "mlv fsck --remote" in (exc.value.hint or "")


A, B = b"aaaa", b"bbbbbb"


@pytest.mark.parametrize("data, words", [
    (b"", "pack header"),
    (b"MLVPACK2" + b"x" * 19, "truncated"),
    (craft_pack(A, [(0, raw(A), 8, 4)], head=b"NOTAPACK"), "pack header"),
    (craft_pack(A, [(0, raw(A), 8, 4)], end=b"MLVPENDX"), "no pack trailer"),
    (craft_pack(A, [(0, raw(A), 8, 4)])[:-1], "no pack trailer"),        # truncated
    (craft_pack(A, [(0, raw(A), 8, 4)])[1:], "pack header"),             # head cut
    (craft_pack(A, [(0, raw(A), 8, 4)], count=0), "no blobs"),
    (craft_pack(A, [(0, raw(A), 8, 4)], count=2**32 - 1), "does not fit"),
    (craft_pack(A, [(0, raw(A), 8, 4)], count=2), "does not fit"),
    (craft_pack(A + B, [(0, raw(A), 8, 4), (0, raw(B), 12, 6)], count=1), "checksum"),
    (craft_pack(A, [(0, raw(A), 8, 4)]).replace(b"MLVPACK2aaaa", b"MLVPACK2aaaa" + b"\0"),
     "table starts at"),  # a byte that no blob holds
    (craft_pack(A, [(2, raw(A), 8, 4)]), "unknown type 2"),
    (craft_pack(A + A, [(0, raw(A), 8, 4), (0, raw(A), 12, 4)]), "listed twice"),
    (craft_pack(A + B, [(0, raw(A), 8, 4), (0, raw(B), 13, 6)]), "contiguous"),  # gap
    (craft_pack(A + B, [(0, raw(A), 8, 4), (0, raw(B), 10, 6)]), "contiguous"),  # overlap
    (craft_pack(A + B, [(0, raw(B), 12, 6), (0, raw(A), 8, 4)]), "contiguous"),  # order
    (craft_pack(A, [(0, raw(A), 8, 400)]), "beyond the end"),
    (craft_pack(A, [(0, raw(A), 8, 2**64 - 1)]), "beyond the end"),
    (craft_pack(A + B, [(0, raw(A), 8, 4)]), "table starts at"),  # bytes nobody lists
])
def test_malformed_packs_are_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(CorruptPackError) as exc:
        packs.parse_pack(data, "PACKNAME")
    assert words in exc.value.message
    assert exc.value.message.startswith("remote pack PACKNAME is damaged: ")


def test_a_pack_bigger_than_any_valid_pack_is_refused() -> None:
    with pytest.raises(CorruptPackError, match="more than a pack may hold"):
        packs.tail_size(b"\0" * TRAILER_SIZE, 2**40)


def test_truncations_and_garbage_never_escape_as_other_errors() -> None:
    good = small_pack().data
    rnd = random.Random(5)
    cases = [good[:n] for n in range(len(good))] + [good[n:] for n in range(1, len(good))]
    cases += [rnd.randbytes(rnd.randrange(0, 300)) for _ in range(300)]
    for data in cases:
        with pytest.raises(CorruptPackError):
            packs.verify_pack(data)


def test_build_pack_refuses_what_no_reader_would_accept() -> None:
    with pytest.raises(ValueError, match="twice"):
        packs.build_pack([blob(A), blob(A)])
    with pytest.raises(ValueError, match="type"):
        packs.build_pack([(7, hash_bytes(A), A)])
    with pytest.raises(ValueError, match="at least one"):
        packs.build_pack([])
    with pytest.raises(ValueError, match="not an object id"):
        packs.build_pack([(OBJECT, "ABC", A)])


def test_pack_writer_fills_packs_up_to_the_target() -> None:
    writer = PackWriter(target=1000)
    done = []
    for i in range(25):
        done += writer.add(*blob(bytes([i]) * 100))
    last = writer.flush()
    assert last is not None and writer.flush() is None
    done.append(last)
    assert [len(p.entries) for p in done] == [10, 10, 5]
    assert all(len(p.data) - 8 - 33 * len(p.entries) - 20 <= 1000 for p in done)
    # A blob over the target gets a pack of its own; the one being filled is finished first.
    writer.add(*blob(b"x" * 10))
    big = writer.add(*blob(b"y" * 5000))
    assert [[e.length for e in p.entries] for p in big] == [[10], [5000]]
    assert writer.pending == 0


def test_pack_writer_skips_a_blob_already_in_the_pack_being_filled() -> None:
    writer = PackWriter(target=1000)
    writer.add(*blob(A))
    writer.add(*blob(A))
    pack = writer.flush()
    assert pack is not None and len(pack.entries) == 1


# ---------------------------------------------------------------------------------------
# Index segments


def some_records(n: int, pack: str, seed: int = 1) -> list[Record]:
    rnd = random.Random(seed)
    return [Record(rnd.randbytes(16).hex(), rnd.choice((OBJECT, CHUNK)), pack,
                   8 + rnd.randrange(2**20), rnd.randrange(2**20)) for _ in range(n)]


PACK1, PACK2 = "1" * 32, "2" * 32


def test_segment_round_trip_sorted_and_deduplicated() -> None:
    recs = some_records(50, PACK1)
    seg_id, data = packs.build_segment(recs + recs[:5])
    assert seg_id == hash_bytes(data)
    assert len(data) == 12 + 49 * 50 + 8
    assert data.startswith(b"MLVIDX2\0")
    assert packs.parse_segment(data) == sorted(recs, key=lambda r: (r.oid, r.type))
    # The same blob as an object and as a chunk: two records.
    same = [Record(recs[0].oid, OBJECT, PACK1, 8, 1), Record(recs[0].oid, CHUNK, PACK2, 8, 1)]
    assert len(packs.parse_segment(packs.build_segment(same)[1])) == 2


def craft_segment(rows: list[tuple[bytes, int, bytes, int, int]], count: int | None = None,
                  magic: bytes = b"MLVIDX2\0") -> bytes:
    body = struct.pack("<8sI", magic, len(rows) if count is None else count)
    body += b"".join(struct.pack("<16sB16sQQ", *row) for row in rows)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


ID1, ID2, P = b"\x01" * 16, b"\x02" * 16, b"\x09" * 16


@pytest.mark.parametrize("data, words", [
    (b"", "truncated"),
    (b"MLVIDX2\0\0\0\0\0", "truncated"),
    (craft_segment([], magic=b"MLVIDX1\0"), "index header"),
    (craft_segment([(ID1, 0, P, 8, 1)], count=2), "do not fit"),
    (craft_segment([(ID1, 0, P, 8, 1)], count=2**32 - 1), "do not fit"),
    (craft_segment([(ID1, 0, P, 8, 1)])[:-1], "do not fit"),
    (craft_segment([(ID1, 0, P, 8, 1)])[:-8] + b"\0" * 8, "checksum"),
    (craft_segment([(ID2, 0, P, 8, 1), (ID1, 0, P, 8, 1)]), "out of order"),
    (craft_segment([(ID1, 1, P, 8, 1), (ID1, 0, P, 8, 1)]), "out of order"),
    (craft_segment([(ID1, 0, P, 8, 1), (ID1, 0, P, 9, 1)]), "repeated"),
    (craft_segment([(ID1, 5, P, 8, 1)]), "unknown type 5"),
    (craft_segment([(ID1, 0, P, 0, 1)]), "cannot lie in a pack"),
    (craft_segment([(ID1, 0, P, 8, 2**63)]), "cannot lie in a pack"),
])
def test_malformed_segments_are_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(CorruptSegmentError) as exc:
        packs.parse_segment(data, "SEG")
    assert words in exc.value.message
    assert exc.value.message.startswith("remote index segment SEG is damaged: ")


def test_a_segment_over_the_size_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _, data = packs.build_segment(some_records(10, PACK1))
    monkeypatch.setattr(packs, "SEG_SIZE_MAX", len(data) - 1)
    with pytest.raises(CorruptSegmentError, match="more than"):
        packs.parse_segment(data)


def test_a_flipped_byte_anywhere_in_a_segment_is_detected() -> None:
    _, data = packs.build_segment(some_records(3, PACK1))
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        with pytest.raises(CorruptSegmentError):
            packs.parse_segment(bytes(damaged))


def test_index_view_merges_segments() -> None:
    first, second = some_records(100, PACK1, seed=1), some_records(100, PACK2, seed=2)
    shared = Record(first[0].oid, first[0].type, PACK2, 100, 7)  # stored twice
    view = IndexView()
    view.add_segment(*packs.build_segment(first))
    id2, seg2 = packs.build_segment(second + [shared])
    view.add_segment(id2, seg2)
    view.add_segment(id2, seg2)  # the same segment again: nothing changes
    assert len(view) == 200 and view.segments == {id2, packs.build_segment(first)[0]}
    for rec in first + second:
        assert view.lookup(rec.oid) == rec
        assert rec.oid in view
    assert view.lookup(first[0].oid).pack == PACK1  # type: ignore[union-attr]  # first wins
    assert view.lookup("f" * 32) is None and "f" * 32 not in view
    assert view.lookup("not an id") is None and 42 not in view
    assert set(view.packs()) == {PACK1, PACK2}
    groups = view.by_pack()
    assert sorted(r.oid for r in groups[PACK2]) == sorted(r.oid for r in second)
    assert [r.offset for r in groups[PACK1]] == sorted(r.offset for r in first)
    assert sorted(view, key=lambda r: r.oid) == sorted(first + second, key=lambda r: r.oid)


def test_index_view_of_many_segments_keeps_the_first_copy_of_each_blob() -> None:
    segments = [some_records(50, PACK1 if i % 2 else PACK2, seed=i) for i in range(9)]
    again = [Record(r.oid, r.type, PACK2, 8, r.length) for r in segments[0][:10]]
    view = IndexView()
    for recs in segments + [again]:  # ten runs: merged into one on the first read
        view.add_segment(*packs.build_segment(recs))
    for recs in segments:
        for rec in recs:
            assert view.lookup(rec.oid) == rec
    assert len(view) == 450 and len(list(view)) == 450
    view.add_segment(*packs.build_segment(some_records(5, PACK2, seed=99)))
    assert len(view) == 455 and view.lookup(segments[0][0].oid) == segments[0][0]


def test_index_view_costs_little_memory_per_record() -> None:
    """The worst a hostile remote can force is bounded by the segments' own size:
    about 53 bytes a record (a dict of them cost ~130)."""
    import gc
    import tracemalloc

    records = some_records(50_000, PACK1, seed=5)
    built = [packs.build_segment(records[i:i + 5000]) for i in range(0, 50_000, 5000)]
    gc.collect()
    tracemalloc.start()
    try:
        copies = [(seg_id, bytes(bytearray(data))) for seg_id, data in built]
        view = IndexView()
        while copies:
            view.add_segment(*copies.pop())
        assert records[0].oid in view  # merged
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held / 50_000 < 70, held / 50_000


def test_records_beyond_what_a_segment_may_hold_go_into_several(
        monkeypatch: pytest.MonkeyPatch) -> None:
    records = some_records(10, PACK1, seed=3)
    monkeypatch.setattr(packs, "SEG_RECORDS_MAX", 4)
    built = packs.build_segments(records + records[:2])  # repeats are listed once
    assert [len(packs.parse_segment(data)) for _, data in built] == [4, 4, 2]
    view = IndexView()
    for seg_id, data in built:
        view.add_segment(seg_id, data)
    assert sorted(view) == sorted(records)


def test_a_segment_over_64_mib_is_refused() -> None:
    with pytest.raises(CorruptSegmentError, match="more than 67108864"):
        packs.parse_segment(bytes(packs.SEG_SIZE_MAX + 1), "big")


def test_index_view_takes_records_of_a_pack_just_read() -> None:
    pack = small_pack()
    view = IndexView()
    view.add(packs.records_of(pack.pack_id, packs.parse_pack(pack.data)))
    rec = view.lookup(hash_bytes(b"beta-beta"))
    assert rec == Record(hash_bytes(b"beta-beta"), CHUNK, pack.pack_id, 13, 9)


def test_a_bad_segment_is_never_half_merged() -> None:
    good = [Record(ID1.hex(), 0, P.hex(), 8, 1)]
    data = craft_segment([(ID1, 0, P, 8, 1), (ID2, 9, P, 9, 1)])
    view = IndexView()
    with pytest.raises(CorruptSegmentError):
        view.add_segment("bad", data)
    assert len(view) == 0 and not view.segments
    view.add(good)
    assert view.lookup(ID1.hex()) == good[0]


# ---------------------------------------------------------------------------------------
# Recipes


C1, C2 = b"c" * 300, b"d" * 200
OID = hash_bytes(C1 + C2)


def test_recipe_round_trip() -> None:
    data = packs.build_recipe(500, [(hash_bytes(C1), 300), (hash_bytes(C2), 200)])
    assert len(data) == 20 + 2 * 20 + 8 and data.startswith(b"MLVRCP2\0")
    recipe = packs.parse_recipe(data, OID, chunker_max=300)
    assert recipe == packs.Recipe(OID, 500, [(hash_bytes(C1), 300), (hash_bytes(C2), 200)])


def craft_recipe(size: int, rows: list[tuple[bytes, int]], count: int | None = None,
                 magic: bytes = b"MLVRCP2\0") -> bytes:
    body = struct.pack("<8sQI", magic, size, len(rows) if count is None else count)
    body += b"".join(struct.pack("<16sI", *row) for row in rows)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


@pytest.mark.parametrize("data, words", [
    (b"", "truncated"),
    (craft_recipe(300, [(raw(C1), 300)], magic=b"MLVRCP1\0"), "recipe header"),
    (craft_recipe(0, []), "no chunks"),
    (craft_recipe(300, [(raw(C1), 300)], count=2), "do not fit"),
    (craft_recipe(300, [(raw(C1), 300)], count=2**32 - 1), "do not fit"),
    (craft_recipe(300, [(raw(C1), 300)])[:-3], "do not fit"),
    (craft_recipe(300, [(raw(C1), 300)])[:-1] + b"?", "checksum"),
    (craft_recipe(1000, [(raw(C1), 1000)]), "outside 1..300"),
    (craft_recipe(300, [(raw(C1), 300), (raw(C2), 0)]), "length 0"),
    (craft_recipe(501, [(raw(C1), 300), (raw(C2), 200)]), "add up to 500 bytes, not 501"),
    (craft_recipe(2**64 - 1, [(raw(C1), 300)]), "add up to"),
])
def test_malformed_recipes_are_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(CorruptRecipeError) as exc:
        packs.parse_recipe(data, OID, chunker_max=300)
    assert words in exc.value.message
    assert exc.value.message.startswith(f"remote recipe {OID} is damaged: ")


def test_a_recipe_over_the_size_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = packs.build_recipe(300, [(hash_bytes(C1), 300)])
    monkeypatch.setattr(packs, "RCP_SIZE_MAX", len(data) - 1)
    with pytest.raises(CorruptRecipeError, match="more than"):
        packs.parse_recipe(data, OID, chunker_max=300)


def test_build_recipe_refuses_chunks_that_do_not_make_the_file() -> None:
    with pytest.raises(ValueError):
        packs.build_recipe(0, [])
    with pytest.raises(ValueError):
        packs.build_recipe(10, [(hash_bytes(C1), 300)])


def test_garbage_segments_and_recipes_fail_only_with_their_errors() -> None:
    rnd = random.Random(9)
    _, seg = packs.build_segment(some_records(4, PACK1))
    rcp = packs.build_recipe(500, [(hash_bytes(C1), 300), (hash_bytes(C2), 200)])
    for good, parse, error in ((seg, packs.parse_segment, CorruptSegmentError),
                               (rcp, lambda d: packs.parse_recipe(d, OID, 300),
                                CorruptRecipeError)):
        cases = [good[:n] for n in range(len(good))]
        cases += [rnd.randbytes(rnd.randrange(0, 400)) for _ in range(200)]
        for data in cases:
            with pytest.raises(error):
                parse(data)
