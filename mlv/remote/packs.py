"""Remote storage format 2: the marker, pack files, index segments and recipes, as bytes.

Pure functions over bytes: nothing here reads or writes a remote. Everything a remote
brings is untrusted, so every parser checks sizes, counts, order and hashes before it
believes a number, and fails with one clear line (an `MlvError`), never with an
IndexError, struct.error or MemoryError.

Conventions
===========

Ids are mlv's object ids: xxh3-128 of the bytes, written as 32 lower-case hex digits
(`mlv.hashing.hash_bytes`). In binary records an id is its 16 raw bytes, in the order the
hex digits spell them (`bytes.fromhex(oid)`). Every integer is unsigned little-endian.
"xxh3-64(x)" is `xxhash.xxh3_64_intdigest(x)` (seed 0) stored as a u64.

A blob is a named run of bytes stored in a pack. It has a type (one byte):

- 0, object: a whole file's bytes (a file smaller than the chunker's `from_size`);
  its id is the file's oid.
- 1, chunk: a piece of a big file, cut by the chunker; its id is the hash of the piece.

Both types are named by the hash of their own bytes, so a reader verifies every blob the
same way: the xxh3-128 of the bytes it got must equal the id it asked for. A damaged pack
therefore never yields wrong bytes: it yields an error that names the pack and the blob.

Marker: ``mlv-remote.json``
===========================

A remote whose root holds no marker is a format-1 remote (loose objects only). A format-2
remote has this JSON object (UTF-8, keys sorted, at most 64 KiB)::

    {"chunker": {"avg": 262144, "from_size": 4194304, "max": 1048576,
                 "min": 65536, "name": "fastcdc-2020"},
     "format": 2, "hash": "xxh128",
     "pack": {"max": 67108864, "target": 16777216}}

`format` is read first: a number this mlv does not know is refused with a line that says
which format the remote uses and that a newer mlv is needed (never "everything is
missing"). In a format-2 marker every key above is required, no other key is allowed, and
the numbers must be integers in these ranges (anything else is refused):

- chunker: 4 KiB <= min <= avg <= max <= 16 MiB, avg >= 16 KiB, min <= 1 MiB,
  avg <= 4 MiB; max <= from_size <= pack.max (files from `from_size` up are chunked;
  smaller files are stored whole in packs, so one must fit in a pack).
- pack: 1 MiB <= target <= max <= 256 MiB.

Pack file: ``packs/PP/PACKID``
==============================

PACKID is the xxh3-128 of the whole pack file; PP its first two hex digits. Packs are
immutable. Layout::

    header   8 bytes        b"MLVPACK2"
    blobs    sum(lengths)   the blobs' bytes back to back, from offset 8, no padding,
                            no compression
    table    33 * count     one record per blob, in the blobs' order:
                              type u8 | id 16 bytes | offset u64 | length u64
                            offset counts from the start of the file
    trailer  20 bytes       count u32 | xxh3-64(table) u64 | b"MLVPEND2"

The table sits at the end so that a pack can be written in one pass, and so that a reader
can learn a pack's contents with two ranged reads of its tail (the 20-byte trailer, then
`33 * count + 20` bytes); the index can therefore be rebuilt from the packs alone.

A reader accepts a pack only when: the file is at most 256 MiB; both magics are right;
1 <= count and `8 + sum(lengths) + 33 * count + 20` equals the file size; the first blob
starts at 8 and each next blob starts where the previous one ended (contiguous, so no
overlap and nothing beyond the table); every type is known; no id appears twice; the
table's xxh3-64 matches the trailer. A blob's bytes are verified against its id whenever
they are read.

A writer fills a pack up to the target size (16 MiB by default); a blob that would push
it past the target starts the next pack, and a blob larger than the target gets a pack
of its own. Since chunks are at most the chunker's max and objects in packs are smaller
than `from_size`, no pack exceeds `pack.max`.

Index segment: ``index/SEGID``
==============================

SEGID is the xxh3-128 of the segment file. Segments are immutable, so a client caches
them forever. Layout::

    header   12 bytes       b"MLVIDX2\\0" | count u32
    records  49 * count     id 16 bytes | type u8 | pack id 16 bytes | offset u64 |
                            length u64
    trailer  8 bytes        xxh3-64 of everything before it

Records are sorted by (id, type) with no (id, type) twice. A reader refuses a segment
over 64 MiB (1,369,568 records; a writer with more records writes several segments), a
count that does not match the size, records out of order or repeated, an unknown type, a
blob that could not lie inside a pack (offset < 8, or beyond 256 MiB), or a trailer that
does not match.

A segment is the commit point of a push: a pack that no segment lists is invisible (it is
garbage a later gc may delete). Two segments may list the same blob in different packs
(two pushers stored it twice): harmless; a reader takes any copy, and the blob's hash
says whether the copy is good.

A record whose pack is absent counts as absent. A reader lists ``index/`` and then
``packs/`` (packs are written before the segment that lists them, so a pack a listed
segment names is missing only if it was deleted since) and leaves out the records of
packs the listing does not hold: a push stores those blobs again (a new pack, a new
segment), a pull names their files missing. So a damaged pack is repaired by deleting
it and pushing from a clone that has the files.

Blobs are found by id alone: ids are content hashes, so an object and a chunk with the
same id have the same bytes. The type is kept for accounting (fsck, gc, statistics).

Recipe: ``recipes/PP/OID``
==========================

A file from `from_size` up is stored as chunks and described by a recipe named by the
file's own oid (so pointers, manifests and the cache are the same as for a whole
object). Layout::

    header   20 bytes       b"MLVRCP2\\0" | file size u64 | count u32
    records  20 * count     chunk id 16 bytes | length u32, in file order
    trailer  8 bytes        xxh3-64 of everything before it

A reader refuses a recipe over 128 MiB, count 0, a count that does not match the size,
more chunks than the chunker makes for the file size (size // min + 1: no chunk but the
last is shorter than min), a chunk longer than the chunker's max (or of length 0), lengths
that do not add up to the file size, or a trailer that does not match. The file rebuilt
from the chunks must hash to the recipe's name before it enters the cache (the caller
checks that).
"""

from __future__ import annotations

import array
import bisect
import heapq
import json
import struct
import sys
import threading
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import xxhash

from mlv.errors import MlvError
from mlv.hashing import HASH_NAME, HEX_RE, hash_bytes

FORMAT = 2
MARKER_KEY = "mlv-remote.json"
MARKER_MAX = 64 * 1024
CHUNKER_NAME = "fastcdc-2020"

OBJECT = 0
CHUNK = 1
BLOB_TYPES = (OBJECT, CHUNK)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

PACK_HEADER = b"MLVPACK2"
PACK_END = b"MLVPEND2"
PACK_ENTRY = struct.Struct("<B16sQQ")  # type, id, offset, length
PACK_TRAILER = struct.Struct("<IQ8s")  # count, xxh3-64 of the table, end magic
TRAILER_SIZE = PACK_TRAILER.size  # 20
PACK_SIZE_MAX = 256 * MiB  # no valid pack is bigger, whatever its marker says

SEG_HEADER = struct.Struct("<8sI")
SEG_MAGIC = b"MLVIDX2\0"
SEG_RECORD = struct.Struct("<16sB16sQQ")  # id, type, pack, offset, length
SEG_SIZE_MAX = 64 * MiB  # 1.37 million records; also the memory one costs

RCP_HEADER = struct.Struct("<8sQI")
RCP_MAGIC = b"MLVRCP2\0"
RCP_RECORD = struct.Struct("<16sI")  # chunk id, length
RCP_SIZE_MAX = 128 * MiB

HASH_TRAILER = struct.Struct("<Q")


class RemoteFormatError(MlvError):
    """The remote's marker names a format this mlv cannot use, or is malformed."""


class CorruptDataError(MlvError):
    """Bytes from a remote (a pack, a segment, a recipe) are damaged or malformed.
    `name` is what was read (a pack id, a segment id, a recipe's oid, or a key)."""

    what = "data"

    def __init__(self, name: str, problem: str, hint: str | None = None) -> None:
        label = f"{self.what} {name}" if name else self.what
        super().__init__(f"remote {label} is damaged: {problem}",
                         hint or "run `mlv fsck --remote` to see what it affects")
        self.name = name
        self.problem = problem


class CorruptPackError(CorruptDataError):
    what = "pack"


class CorruptSegmentError(CorruptDataError):
    what = "index segment"


class CorruptRecipeError(CorruptDataError):
    what = "recipe"


def _xxh64(data: bytes | bytearray | memoryview) -> int:
    return xxhash.xxh3_64_intdigest(data)


def _check_oid(oid: str) -> bytes:
    """The 16 raw bytes of an id we are about to write (our own bug if it is not one)."""
    if not isinstance(oid, str) or not HEX_RE.match(oid):
        raise ValueError(f"not an object id: {oid!r}")
    return bytes.fromhex(oid)


# ---------------------------------------------------------------------------------------
# Marker


@dataclass(frozen=True)
class ChunkerParams:
    min: int = 64 * KiB
    avg: int = 256 * KiB
    max: int = 1 * MiB
    from_size: int = 4 * MiB
    name: str = CHUNKER_NAME


@dataclass(frozen=True)
class Marker:
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_target: int = 16 * MiB
    pack_max: int = 64 * MiB
    format: int = FORMAT
    hash: str = HASH_NAME


def marker_bytes(m: Marker) -> bytes:
    """The marker as canonical JSON (sorted keys, a trailing newline). Refuses a marker
    that `parse_marker` would refuse, so mlv never writes one it cannot read."""
    c = m.chunker
    doc = {"format": m.format, "hash": m.hash,
           "chunker": {"name": c.name, "min": c.min, "avg": c.avg, "max": c.max,
                       "from_size": c.from_size},
           "pack": {"target": m.pack_target, "max": m.pack_max}}
    data = (json.dumps(doc, sort_keys=True) + "\n").encode()
    parse_marker(data)
    return data


def _marker_error(problem: str) -> RemoteFormatError:
    return RemoteFormatError(f"the remote's {MARKER_KEY} is not valid: {problem}",
                             hint=f"check {MARKER_KEY} at the remote's root (written by mlv); "
                                  "if another tool changed it, restore it")


def _object(doc: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _marker_error(f"{where} is not a JSON object")
    missing = sorted(keys - doc.keys())
    extra = sorted(doc.keys() - keys)
    if missing:
        raise _marker_error(f"{where} lacks {', '.join(missing)}")
    if extra:
        raise _marker_error(f"{where} has unknown keys {', '.join(extra)}")
    return doc


def _int_in(doc: dict[str, Any], key: str, where: str, lo: int, hi: int) -> int:
    value = doc[key]
    if type(value) is not int:
        raise _marker_error(f"{where}.{key} is not an integer")
    if not lo <= value <= hi:
        raise _marker_error(f"{where}.{key} = {value} is outside {lo}..{hi}")
    return value


def parse_marker(data: bytes) -> Marker:
    """Read and validate a marker. An unknown format raises RemoteFormatError that names
    the format and says to upgrade mlv; anything malformed raises it naming the field."""
    if len(data) > MARKER_MAX:
        raise _marker_error(f"it is {len(data)} bytes, more than {MARKER_MAX}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _marker_error(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _marker_error("not a JSON object")
    fmt = doc.get("format")
    if type(fmt) is not int:
        raise _marker_error("`format` is missing or not an integer")
    if fmt < FORMAT:
        raise _marker_error(f"format {fmt} has no marker (a format-1 remote has none)")
    if fmt > FORMAT:
        raise RemoteFormatError(
            f"the remote uses storage format {fmt}; this mlv reads formats 1 and {FORMAT}",
            hint="upgrade mlv (pip install -U mlv) to use this remote")
    doc = _object(doc, "the marker", {"format", "hash", "chunker", "pack"})
    if doc["hash"] != HASH_NAME:
        raise _marker_error(f"hash {doc['hash']!r} is not {HASH_NAME!r}")
    ch = _object(doc["chunker"], "chunker", {"name", "min", "avg", "max", "from_size"})
    if ch["name"] != CHUNKER_NAME:
        raise _marker_error(f"chunker {ch['name']!r} is not {CHUNKER_NAME!r}")
    pk = _object(doc["pack"], "pack", {"target", "max"})
    pack_max = _int_in(pk, "max", "pack", 1 * MiB, PACK_SIZE_MAX)
    target = _int_in(pk, "target", "pack", 1 * MiB, pack_max)
    cmax = _int_in(ch, "max", "chunker", 64 * KiB, 16 * MiB)
    cavg = _int_in(ch, "avg", "chunker", 16 * KiB, min(4 * MiB, cmax))
    cmin = _int_in(ch, "min", "chunker", 4 * KiB, min(1 * MiB, cavg))
    from_size = _int_in(ch, "from_size", "chunker", cmax, pack_max)
    return Marker(ChunkerParams(cmin, cavg, cmax, from_size), target, pack_max)


# ---------------------------------------------------------------------------------------
# Packs


class Entry(NamedTuple):
    """One blob in a pack: where its bytes are (offset from the start of the file)."""
    type: int
    oid: str
    offset: int
    length: int


class Pack(NamedTuple):
    pack_id: str
    data: bytes
    entries: list[Entry]


def build_pack(blobs: Iterable[tuple[int, str, bytes]]) -> Pack:
    """A pack holding `blobs` (type, id, bytes) in the order given. The ids must be the
    hashes of the bytes (not checked here: the caller hashed them) and distinct."""
    parts = [PACK_HEADER]
    table = bytearray()
    entries: list[Entry] = []
    seen: set[str] = set()
    offset = len(PACK_HEADER)
    for btype, oid, data in blobs:
        if btype not in BLOB_TYPES:
            raise ValueError(f"unknown blob type {btype}")
        if oid in seen:
            raise ValueError(f"blob {oid} twice in one pack")
        seen.add(oid)
        table += PACK_ENTRY.pack(btype, _check_oid(oid), offset, len(data))
        entries.append(Entry(btype, oid, offset, len(data)))
        parts.append(data)
        offset += len(data)
    if not entries:
        raise ValueError("a pack needs at least one blob")
    parts.append(bytes(table))
    parts.append(PACK_TRAILER.pack(len(entries), _xxh64(table), PACK_END))
    data = b"".join(parts)
    if len(data) > PACK_SIZE_MAX:
        raise ValueError(f"a pack of {len(data)} bytes is over {PACK_SIZE_MAX}")
    return Pack(hash_bytes(data), data, entries)


class PackWriter:
    """Collects blobs and hands back finished packs of about `target` bytes.

    `add` returns the packs a blob completed (usually none); `flush` the last, partly
    filled one. A blob whose id is already in the pack being filled is skipped.
    """

    def __init__(self, target: int = 16 * MiB) -> None:
        self.target = target
        self._blobs: list[tuple[int, str, bytes]] = []
        self._ids: set[str] = set()
        self._size = 0

    @property
    def pending(self) -> int:
        """Bytes of blobs waiting for the current pack."""
        return self._size

    def add(self, btype: int, oid: str, data: bytes) -> list[Pack]:
        if oid in self._ids:
            return []
        done = []
        if self._blobs and self._size + len(data) > self.target:
            done.append(self._finish())
        self._blobs.append((btype, oid, data))
        self._ids.add(oid)
        self._size += len(data)
        if self._size >= self.target:
            done.append(self._finish())
        return done

    def flush(self) -> Pack | None:
        return self._finish() if self._blobs else None

    def _finish(self) -> Pack:
        pack = build_pack(self._blobs)
        self._blobs, self._ids, self._size = [], set(), 0
        return pack


def tail_size(trailer: bytes, pack_size: int, name: str = "") -> int:
    """How many bytes from the end of a pack of `pack_size` bytes hold its table and
    trailer, given its last TRAILER_SIZE bytes (`trailer`, or any longer tail)."""
    return _read_trailer(trailer, pack_size, name)[0] * PACK_ENTRY.size + TRAILER_SIZE


def _read_trailer(tail: bytes, pack_size: int, name: str) -> tuple[int, int]:
    if pack_size > PACK_SIZE_MAX:
        raise CorruptPackError(name, f"{pack_size} bytes, more than a pack may hold "
                                     f"({PACK_SIZE_MAX})")
    if pack_size < len(PACK_HEADER) + TRAILER_SIZE or len(tail) < TRAILER_SIZE:
        raise CorruptPackError(name, "truncated (too short for a pack)")
    count, table_hash, end = PACK_TRAILER.unpack_from(tail, len(tail) - TRAILER_SIZE)
    if end != PACK_END:
        raise CorruptPackError(name, "no pack trailer at its end (truncated or not a pack)")
    if count < 1:
        raise CorruptPackError(name, "its table lists no blobs")
    if count * PACK_ENTRY.size > pack_size - len(PACK_HEADER) - TRAILER_SIZE:
        raise CorruptPackError(name, f"its table of {count} blobs does not fit in "
                                     f"{pack_size} bytes")
    return count, table_hash


def parse_pack_table(tail: bytes, pack_size: int, name: str = "") -> list[Entry]:
    """The blobs of a pack of `pack_size` bytes, from its last bytes `tail` (at least
    `tail_size(...)` of them; the whole pack will do). Checks everything that can be
    checked without the blobs' bytes (see the module's docstring)."""
    count, table_hash = _read_trailer(tail, pack_size, name)
    tsize = count * PACK_ENTRY.size
    if len(tail) < tsize + TRAILER_SIZE or len(tail) > pack_size:
        raise CorruptPackError(name, f"{len(tail)} tail bytes given for a table of "
                                     f"{count} blobs in {pack_size} bytes")
    start = len(tail) - TRAILER_SIZE - tsize
    table = memoryview(tail)[start:start + tsize]
    if _xxh64(table) != table_hash:
        raise CorruptPackError(name, "its table does not match its checksum")
    entries: list[Entry] = []
    seen: set[bytes] = set()
    expect = len(PACK_HEADER)
    for btype, raw, offset, length in PACK_ENTRY.iter_unpack(table):
        oid = raw.hex()
        if btype not in BLOB_TYPES:
            raise CorruptPackError(name, f"blob {oid} has unknown type {btype}")
        if raw in seen:
            raise CorruptPackError(name, f"blob {oid} is listed twice")
        if offset != expect:
            raise CorruptPackError(name, f"blob {oid} at offset {offset}, expected {expect} "
                                         "(blobs must be contiguous)")
        seen.add(raw)
        expect = offset + length
        if expect > pack_size:
            raise CorruptPackError(name, f"blob {oid} extends beyond the end of the pack")
        entries.append(Entry(btype, oid, offset, length))
    if expect != pack_size - tsize - TRAILER_SIZE:
        raise CorruptPackError(name, f"its blobs end at {expect} but its table starts at "
                                     f"{pack_size - tsize - TRAILER_SIZE}")
    return entries


def parse_pack(data: bytes, name: str = "") -> list[Entry]:
    """The table of a whole pack file, checking its header too (blobs are verified when
    read, by `read_blob`, or all at once by `verify_pack`)."""
    if data[:len(PACK_HEADER)] != PACK_HEADER:
        raise CorruptPackError(name, "it does not start with the pack header")
    return parse_pack_table(data, len(data), name)


def read_blob(data: bytes | memoryview, entry: Entry, name: str = "", base: int = 0) -> bytes:
    """The verified bytes of `entry` from `data`: the whole pack, or the slice of it that
    starts at file offset `base` (a ranged read). Raises CorruptPackError naming the pack
    and the blob when the bytes are missing or do not hash to the blob's id."""
    start = entry.offset - base
    if start < 0 or start + entry.length > len(data):
        raise CorruptPackError(name, f"blob {entry.oid} lies outside the bytes read "
                                     f"({base}..{base + len(data)})")
    blob = bytes(data[start:start + entry.length])
    if hash_bytes(blob) != entry.oid:
        raise CorruptPackError(name, f"blob {entry.oid} does not match its hash")
    return blob


def verify_pack(data: bytes, name: str = "") -> list[Entry]:
    """Check a whole pack: its table and every blob's hash. Returns the table."""
    entries = parse_pack(data, name)
    view = memoryview(data)
    for entry in entries:
        read_blob(view, entry, name)
    return entries


# ---------------------------------------------------------------------------------------
# Index segments


class Record(NamedTuple):
    """An index record: blob `oid` of `type` lies in pack `pack` at `offset`, `length`."""
    oid: str
    type: int
    pack: str
    offset: int
    length: int


def records_of(pack_id: str, entries: Iterable[Entry]) -> list[Record]:
    """The index records for a pack's table."""
    return [Record(e.oid, e.type, pack_id, e.offset, e.length) for e in entries]


def build_segment(records: Iterable[Record]) -> tuple[str, bytes]:
    """A segment listing `records`, sorted by (id, type); a repeated (id, type) keeps the
    first record given. Returns (segment id, bytes)."""
    rows: dict[tuple[bytes, int], bytes] = {}
    for r in records:
        if r.type not in BLOB_TYPES:
            raise ValueError(f"unknown blob type {r.type}")
        key = (_check_oid(r.oid), r.type)
        if key not in rows:
            rows[key] = SEG_RECORD.pack(key[0], r.type, _check_oid(r.pack), r.offset,
                                        r.length)
    body = SEG_HEADER.pack(SEG_MAGIC, len(rows)) + b"".join(rows[k] for k in sorted(rows))
    data = body + HASH_TRAILER.pack(_xxh64(body))
    return hash_bytes(data), data


def parse_segment(data: bytes, name: str = "") -> list[Record]:
    """The records of a segment, checked (see the module's docstring)."""
    return [Record(raw.hex(), btype, pack.hex(), offset, length)
            for raw, btype, pack, offset, length in _segment_rows(data, name)]


SegmentRow = tuple[bytes, int, bytes, int, int]  # a record with raw ids


def _segment_rows(data: bytes, name: str) -> Iterator[SegmentRow]:
    """The raw records of a segment, all checked before the first is returned (so a bad
    segment is never half merged), without holding them all in memory."""
    body = _check_segment(data, name)
    return SEG_RECORD.iter_unpack(body)


def _check_segment(data: bytes, name: str) -> memoryview:
    """Check a segment; return its records' bytes."""
    if len(data) > SEG_SIZE_MAX:
        raise CorruptSegmentError(name, f"{len(data)} bytes, more than {SEG_SIZE_MAX}")
    if len(data) < SEG_HEADER.size + HASH_TRAILER.size:
        raise CorruptSegmentError(name, "truncated (too short for a segment)")
    magic, count = SEG_HEADER.unpack_from(data)
    if magic != SEG_MAGIC:
        raise CorruptSegmentError(name, "it does not start with the index header")
    body_end = len(data) - HASH_TRAILER.size
    if SEG_HEADER.size + count * SEG_RECORD.size != body_end:
        raise CorruptSegmentError(name, f"{count} records do not fit its {len(data)} bytes")
    view = memoryview(data)
    (stored,) = HASH_TRAILER.unpack_from(data, body_end)
    if _xxh64(view[:body_end]) != stored:
        raise CorruptSegmentError(name, "it does not match its checksum")
    body = view[SEG_HEADER.size:body_end]
    prev: tuple[bytes, int] = (b"", -1)
    for raw, btype, _pack, offset, length in SEG_RECORD.iter_unpack(body):
        if btype not in BLOB_TYPES:
            raise CorruptSegmentError(name, f"blob {raw.hex()} has unknown type {btype}")
        if (raw, btype) <= prev:
            raise CorruptSegmentError(name, f"records out of order or repeated at {raw.hex()}")
        prev = (raw, btype)
        if offset < len(PACK_HEADER) or offset + length > PACK_SIZE_MAX - TRAILER_SIZE:
            raise CorruptSegmentError(name, f"blob {raw.hex()} at {offset}+{length} cannot "
                                            "lie in a pack")
    return body


SEG_RECORDS_MAX = (SEG_SIZE_MAX - SEG_HEADER.size - HASH_TRAILER.size) // SEG_RECORD.size


def build_segments(records: Iterable[Record]) -> list[tuple[str, bytes]]:
    """Segments listing `records`: one, or several when they are more than a segment may
    hold (SEG_RECORDS_MAX each). Returns [(segment id, bytes)]."""
    rows = sorted({(r.oid, r.type): r for r in reversed(list(records))}.items())
    return [build_segment(r for _, r in rows[i:i + SEG_RECORDS_MAX])
            for i in range(0, len(rows), SEG_RECORDS_MAX)] or [build_segment([])]


_REC = SEG_RECORD.size  # 49 bytes: id 16 | type 1 | pack 16 | offset 8 | length 8
_ID = 16
_PACK_OF = struct.Struct("<17x16s16x")  # the pack id of a record


class _Run:
    """Records sorted by (id, type), as a segment holds them (49 bytes each), and the
    first 4 bytes of each id as a sorted array (4 bytes more per record) that the C
    bisection searches."""

    __slots__ = ("body", "prefixes")

    def __init__(self, body: bytes | bytearray) -> None:
        self.body = body
        spread = bytearray(len(body) // _REC * 4)
        for i in range(4):
            spread[i::4] = body[i::_REC]
        self.prefixes = array.array("I", bytes(spread))
        if sys.byteorder == "little":
            self.prefixes.byteswap()

    def find(self, key: bytes) -> int:
        """The byte offset of the first record of id `key`, or -1. The prefixes narrow
        the search; the records sharing `key`'s prefix are bisected too (a hostile
        segment may list a million ids with one prefix: never compared one by one)."""
        prefix = int.from_bytes(key[:4], "big")
        prefixes, body = self.prefixes, self.body
        i = bisect.bisect_left(prefixes, prefix)
        hi = min(len(prefixes), i + 8)
        if hi < len(prefixes) and prefixes[hi] == prefix:  # many: rare, or hostile
            hi = bisect.bisect_right(prefixes, prefix, hi)
            i += bisect.bisect_left(range(i, hi), key,
                                    key=lambda j: bytes(body[j * _REC:j * _REC + _ID]))
            hi = min(hi, i + 1)  # the first record of `key`, if any
        while i < hi and prefixes[i] == prefix:
            if body[i * _REC:i * _REC + _ID] == key:
                return i * _REC
            i += 1
        return -1

    def rows(self) -> Iterator[bytes | bytearray]:
        body = self.body
        return (body[at:at + _REC] for at in range(0, len(body), _REC))


class IndexView:
    """What the remote holds: many segments merged, looked up by blob id.

    Compact: each segment's records are kept as the sorted 49-byte rows the segment
    holds, plus 4 bytes per record to search them (53 bytes a record in all, where a
    dict of the same records costs ~130). Segments
    are merged into one run when more than two would be searched (the first read after
    loading them), so lookups stay fast. When several segments list one id, the first
    one added wins (any copy is good: it is verified when read).
    """

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._lock = threading.Lock()
        self.segments: set[str] = set()

    def add_segment(self, seg_id: str, data: bytes,
                    present: Container[bytes] | None = None) -> list[Record]:
        """Merge the segment `data` named `seg_id` (checked; CorruptSegmentError if bad).
        With `present` (the raw ids of the packs the remote holds), the records of packs
        not in it are left out, as a reader must (a record whose pack is absent counts
        as absent); those are returned."""
        if seg_id in self.segments:
            return []
        body: bytes | bytearray | memoryview = _check_segment(data, seg_id)
        dropped: list[Record] = []
        if present is not None:  # one pass in C; the rows only when a pack is absent
            gone = {p for (p,) in set(_PACK_OF.iter_unpack(body)) if p not in present}
            if gone:
                kept = bytearray()
                for at in range(0, len(body), _REC):
                    if bytes(body[at + _ID + 1:at + _REC - 16]) in gone:
                        dropped.append(self._record(body, at))
                    else:
                        kept += body[at:at + _REC]
                body = kept
        self._add(bytes(body))
        self.segments.add(seg_id)
        return dropped

    def add(self, records: Iterable[Record]) -> None:
        """Merge records that are not (yet) in a segment, e.g. those of a pack just read."""
        rows = {(bytes.fromhex(r.oid), r.type): r for r in reversed(list(records))}
        self._add(b"".join(SEG_RECORD.pack(raw, btype, bytes.fromhex(r.pack), r.offset,
                                           r.length)
                           for (raw, btype), r in sorted(rows.items())))

    def _add(self, body: bytes) -> None:
        if body:
            with self._lock:
                self._runs = self._runs + [_Run(body)]

    def _merged(self, most: int) -> list[_Run]:
        """The runs, merged into one first when there are more than `most`: rows taken
        in id order, the first run's row winning, one row per id."""
        runs = self._runs
        if len(runs) <= most:
            return runs
        with self._lock:
            runs = self._runs
            if len(runs) > most:
                out = bytearray()
                last: bytes | bytearray = b""
                for row in heapq.merge(*(r.rows() for r in runs), key=_row_id):
                    if row[:_ID] != last:
                        out += row
                        last = row[:_ID]
                runs = self._runs = [_Run(out)]
        return runs

    @staticmethod
    def _record(body: bytes | bytearray | memoryview, at: int) -> Record:
        raw, btype, pack, offset, length = SEG_RECORD.unpack_from(body, at)
        return Record(raw.hex(), btype, pack.hex(), offset, length)

    @staticmethod
    def _key(oid: object) -> bytes | None:
        if not isinstance(oid, str) or not HEX_RE.match(oid):
            return None
        return bytes.fromhex(oid)

    def lookup(self, oid: str) -> Record | None:
        key = self._key(oid)
        if key is not None:
            for run in self._merged(2):
                at = run.find(key)
                if at >= 0:
                    return self._record(run.body, at)
        return None

    def __contains__(self, oid: object) -> bool:
        key = self._key(oid)
        return key is not None and any(run.find(key) >= 0 for run in self._merged(2))

    def __len__(self) -> int:
        return sum(1 for _ in self._rows())

    def _rows(self) -> Iterator[tuple[bytes | bytearray, int]]:
        """(body, offset) of the first row of each id."""
        for run in self._merged(1):
            body = run.body
            last: bytes | bytearray = b""
            for at in range(0, len(body), _REC):
                if body[at:at + _ID] != last:
                    last = body[at:at + _ID]
                    yield body, at

    def __iter__(self) -> Iterator[Record]:
        for body, at in self._rows():
            yield self._record(body, at)

    def packs(self) -> list[str]:
        """Every pack that some record points into."""
        return list(dict.fromkeys(r.pack for r in self))

    def by_pack(self) -> dict[str, list[Record]]:
        """The records grouped by pack, each group sorted by offset."""
        groups: dict[str, list[Record]] = {}
        for rec in self:
            groups.setdefault(rec.pack, []).append(rec)
        for group in groups.values():
            group.sort(key=lambda r: r.offset)
        return groups


def _row_id(row: bytes | bytearray) -> bytes | bytearray:
    return row[:_ID]


# ---------------------------------------------------------------------------------------
# Recipes


@dataclass(frozen=True)
class Recipe:
    oid: str
    size: int
    chunks: list[tuple[str, int]]  # (chunk id, length) in file order


def build_recipe(size: int, chunks: list[tuple[str, int]]) -> bytes:
    """The recipe of a file of `size` bytes cut into `chunks` (id, length)."""
    if not chunks or sum(n for _, n in chunks) != size:
        raise ValueError("a recipe's chunks must be at least one and add up to the size")
    body = RCP_HEADER.pack(RCP_MAGIC, size, len(chunks)) + b"".join(
        RCP_RECORD.pack(_check_oid(cid), n) for cid, n in chunks)
    return body + HASH_TRAILER.pack(_xxh64(body))


def parse_recipe(data: bytes, oid: str, chunker_max: int, chunker_min: int = 1) -> Recipe:
    """The recipe named `oid`, checked (see the module's docstring). `chunker_min`: the
    marker's; no chunk but the last is shorter, so more than size // min + 1 chunks
    (1-byte chunks, which would cost memory and a lookup each) are refused too."""
    if len(data) > RCP_SIZE_MAX:
        raise CorruptRecipeError(oid, f"{len(data)} bytes, more than {RCP_SIZE_MAX}")
    if len(data) < RCP_HEADER.size + HASH_TRAILER.size:
        raise CorruptRecipeError(oid, "truncated (too short for a recipe)")
    magic, size, count = RCP_HEADER.unpack_from(data)
    if magic != RCP_MAGIC:
        raise CorruptRecipeError(oid, "it does not start with the recipe header")
    body_end = len(data) - HASH_TRAILER.size
    if RCP_HEADER.size + count * RCP_RECORD.size != body_end:
        raise CorruptRecipeError(oid, f"{count} chunks do not fit its {len(data)} bytes")
    if count < 1:
        raise CorruptRecipeError(oid, "it lists no chunks")
    if count > size // max(1, chunker_min) + 1:
        raise CorruptRecipeError(oid, f"{count} chunks for {size} bytes: more than chunks "
                                      f"of at least {chunker_min} bytes make")
    view = memoryview(data)
    (stored,) = HASH_TRAILER.unpack_from(data, body_end)
    if _xxh64(view[:body_end]) != stored:
        raise CorruptRecipeError(oid, "it does not match its checksum")
    chunks = []
    total = 0
    for raw, length in RCP_RECORD.iter_unpack(view[RCP_HEADER.size:body_end]):
        if not 1 <= length <= chunker_max:
            raise CorruptRecipeError(oid, f"chunk {raw.hex()} has length {length}, outside "
                                          f"1..{chunker_max}")
        total += length
        chunks.append((raw.hex(), length))
    if total != size:
        raise CorruptRecipeError(oid, f"its chunks add up to {total} bytes, not {size}")
    return Recipe(oid, size, chunks)
