"""Check a format-2 remote (`mlv fsck --remote`): its marker, index segments, packs and
recipes, read straight from the remote of keys underneath (never from the local copies
of segments, and without trusting one part to check another).

What is checked:

- the marker parses (a format this mlv does not know is refused, as everywhere);
- every index segment's bytes hash to its name and parse;
- every pack a segment lists exists, and its table (read from its tail with two ranged
  reads) agrees with what the segments say: the same blobs at the same offsets and
  lengths. A full check (the default) also reads each pack whole: its bytes must hash to
  its name and every blob to its id. `sample` (a percentage) reads only that share of the
  packs whole; the tables of all packs are always read, and a pack whose table is wrong
  is always read whole, so that exactly the blobs it cannot yield are named;
- every recipe parses, each of its chunks is listed by a segment, and (full check) the
  chunks put together hash to the recipe's name.

A pack that no segment lists is invisible (a push was interrupted before its segment was
written): it is reported as a harmless leftover, not as damage. A pack that a segment
lists but the remote does not hold (deleted, e.g. to repair it) is damage while some blob
it held is in no other pack, and a harmless leftover once a push has stored them again
(readers count a record whose pack is absent as absent). Loose objects of the
remote are checked by the caller, as on a format-1 remote.

The result names each damaged part and the files it affects: the objects stored whole
(blob ids) and the big files (recipe ids) whose chunks it holds.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import xxhash

from mlv.hashing import HEX_RE, hash_bytes
from mlv.remote.base import Remote
from mlv.remote.packed import PackedRemote, get_capped, pack_key, recipe_key, segment_key
from mlv.remote.packs import (
    FORMAT,
    MARKER_KEY,
    MARKER_MAX,
    OBJECT,
    PACK_SIZE_MAX,
    RCP_SIZE_MAX,
    SEG_SIZE_MAX,
    TRAILER_SIZE,
    CorruptDataError,
    Entry,
    IndexView,
    Recipe,
    Record,
    RemoteFormatError,
    parse_marker,
    parse_pack,
    parse_pack_table,
    parse_recipe,
    parse_segment,
    records_of,
    tail_size,
)
from mlv.workspace import Progress, parallel_map

MAX_PROBLEMS = 5  # problems listed per damaged part; the rest are counted
PACKS_AT_ONCE = 8  # packs checked in parallel (each may be read whole: up to 64 MiB)
RUN_MAX = 64 << 20  # bytes read at once when putting a big file's chunks together

MARKER = "marker"
SEGMENT = "index segment"
PACK = "pack"
RECIPE = "recipe"


@dataclass
class Damage:
    """One damaged part of the remote: what it is, its key, what is wrong with it, and
    what it makes unreadable or unfindable."""

    kind: str  # MARKER, SEGMENT, PACK or RECIPE
    key: str
    problems: list[str] = field(default_factory=list)
    blobs: dict[str, int] = field(default_factory=dict)  # blob id -> type it cannot yield
    objects: list[str] = field(default_factory=list)  # files affected (filled at the end)
    repair: str | None = None  # what to do about it, when mlv knows

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("and more")


@dataclass
class CheckResult:
    damage: list[Damage] = field(default_factory=list)
    leftovers: dict[str, str] = field(default_factory=dict)  # key -> why it is harmless
    packs: int = 0
    segments: int = 0
    recipes: int = 0
    objects: int = 0  # whole files stored in packs
    read_whole: int = 0  # packs read and re-hashed whole
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, packs: int = 0, read_whole: int = 0) -> None:
        """Add to the counters (packs are checked on several threads)."""
        with self._lock:
            self.packs += packs
            self.read_whole += read_whole

    @property
    def ok(self) -> bool:
        return not self.damage

    def affected(self) -> dict[str, list[str]]:
        """Each damaged file (object id or big file's id) -> keys of the parts that
        damage it."""
        found: dict[str, list[str]] = {}
        for d in self.damage:
            for oid in d.objects:
                found.setdefault(oid, []).append(d.key)
        return found


def check(remote: PackedRemote, sample: float | None = None,
          progress: Progress | None = None) -> CheckResult:
    """Check the packed part of `remote` (see the module's docstring). `sample`: the
    percentage of packs read whole and of recipes put together (None: all)."""
    inner = remote.inner
    result = CheckResult()
    marker = _check_marker(inner)
    if marker is not None:
        result.damage.append(marker)
    records, bad_segments = _check_segments(inner, result)
    packs = _pack_keys(inner, result)  # listed after the segments, as readers do
    listed = _by_pack(records)
    view = IndexView()  # what readers find: a record whose pack is gone counts as absent
    view.add(r for r in records if r.pack in packs)
    for pack_id in sorted(set(listed) - set(packs)):
        damage = _gone(pack_id, listed.pop(pack_id), view, result)
        if damage is not None:
            result.damage.append(damage)
    whole = _chosen(sorted(listed), sample)  # every pack left in `listed` is in `packs`
    if progress:
        progress(total_files=len(listed),
                 total_bytes=sum(packs[p] for p in listed if p in whole))
    ids = sorted(listed)
    found = parallel_map(lambda p: _check_pack(inner, p, packs[p], listed[p], p in whole,
                                               result), ids, min(remote.jobs, PACKS_AT_ONCE))
    result.damage += [damage for damage in found if damage is not None]
    if progress:
        progress(len(ids), sum(packs[p] for p in ids if p in whole))
    _leftovers(inner, packs, listed, view, bad_segments, result)
    recipes = _check_recipes(remote, view, sample, result)
    result.objects = len({r.oid for r in records if r.type == OBJECT})
    _name_objects(result, recipes)
    return result


# ---- the marker --------------------------------------------------------------------------


def _check_marker(inner: Remote) -> Damage | None:
    """Damage when the marker is missing or malformed; a format this mlv does not know
    raises RemoteFormatError (not damage: a newer mlv reads it)."""
    try:
        data = get_capped(inner, MARKER_KEY, MARKER_MAX)
    except FileNotFoundError:
        return Damage(MARKER, MARKER_KEY, ["missing: the remote now reads as format 1 "
                                           "and its packs are invisible"])
    try:
        parse_marker(data)
    except RemoteFormatError as exc:
        if _newer_format(data):
            raise
        return Damage(MARKER, MARKER_KEY, [exc.message])
    return None


def _newer_format(data: bytes) -> bool:
    try:
        fmt = json.loads(data.decode("utf-8")).get("format")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return False
    return type(fmt) is int and fmt > FORMAT


# ---- index segments ----------------------------------------------------------------------


def _check_segments(inner: Remote, result: CheckResult
                    ) -> tuple[list[Record], list[Damage]]:
    """The records of every segment that parses, and the damage of those that do not
    (whose blobs are learnt later from the packs nothing else lists)."""
    records: list[Record] = []
    good: set[str] = set()
    doubtful: list[tuple[Damage, list[Record]]] = []  # parse, but misnamed
    unreadable: list[Damage] = []
    for key in sorted(inner.list_keys("index/")):
        seg_id = key.rsplit("/", 1)[-1]
        if key != segment_key(seg_id) or not HEX_RE.match(seg_id):
            result.leftovers[key] = "not named like a segment: readers ignore it"
            continue
        result.segments += 1
        damage = Damage(SEGMENT, key)
        try:
            data = get_capped(inner, key, SEG_SIZE_MAX)
        except FileNotFoundError:
            continue  # deleted since it was listed (gc): not damage
        if hash_bytes(data) != seg_id:
            damage.add("its bytes do not match its name")
        try:
            found = parse_segment(data, seg_id)
        except CorruptDataError as exc:
            damage.add(exc.problem)
            unreadable.append(damage)
            result.damage.append(damage)
            continue
        records += found
        if damage.problems:
            doubtful.append((damage, found))
            result.damage.append(damage)
        else:
            good.update(r.oid for r in found)
    for damage, found in doubtful:  # what is listed nowhere else cannot be found
        damage.blobs.update({r.oid: r.type for r in found if r.oid not in good})
    return records, unreadable


def _by_pack(records: Iterable[Record]) -> dict[str, list[Record]]:
    listed: dict[str, set[Record]] = {}
    for r in records:
        listed.setdefault(r.pack, set()).add(r)
    return {p: sorted(rs, key=lambda r: (r.offset, r.oid)) for p, rs in listed.items()}


# ---- packs -------------------------------------------------------------------------------


def _pack_keys(inner: Remote, result: CheckResult) -> dict[str, int]:
    """pack id -> size, of every key under packs/ named like a pack."""
    packs = {}
    for key, size in inner.list_keys("packs/").items():
        pack_id = key.rsplit("/", 1)[-1]
        if HEX_RE.match(pack_id) and key == pack_key(pack_id):
            packs[pack_id] = size
        else:
            result.leftovers[key] = "not named like a pack: readers ignore it"
    return packs


def _chosen(names: list[str], sample: float | None) -> set[str]:
    if sample is None or not names:
        return set(names)
    return set(random.sample(names, max(1, math.ceil(len(names) * sample / 100))))


PUSH_AGAIN = "run `mlv push` from a clone that has the files it affects in its cache"


def _gone(pack_id: str, records: list[Record], view: IndexView, result: CheckResult
          ) -> Damage | None:
    """A pack that segments list but the remote does not hold: readers count its blobs
    as absent. Damage when some of them are in no other pack; else (a push stored them
    again after the damaged pack was deleted) a harmless leftover."""
    key = pack_key(pack_id)
    result.count(packs=1)
    lost = {r.oid: r.type for r in records if r.oid not in view}
    if not lost:
        result.leftovers[key] = ("listed by an index segment but not on the remote; every "
                                 "blob it held is in another pack: harmless")
        return None
    return Damage(PACK, key, ["missing"], lost, repair=PUSH_AGAIN)


def _check_pack(inner: Remote, pack_id: str, size: int, records: list[Record],
                whole: bool, result: CheckResult) -> Damage | None:
    key = pack_key(pack_id)
    result.count(packs=1)
    damage = Damage(PACK, key, repair=f"delete {key} from the remote, then {PUSH_AGAIN}")
    if not whole and _table_agrees(inner, key, size, records):
        return None
    try:
        data = get_capped(inner, key, PACK_SIZE_MAX)
    except FileNotFoundError:
        damage.add("missing")
        damage.blobs.update({r.oid: r.type for r in records})
        damage.repair = PUSH_AGAIN
        return damage
    result.count(read_whole=1)
    _check_pack_bytes(pack_id, data, records, damage)
    return damage if damage.problems else None


def _table_agrees(inner: Remote, key: str, size: int, records: list[Record]) -> bool:
    """True when the pack's table, read from its tail, parses and says what the
    segments say; any doubt (or error reading it) means: read the whole pack."""
    try:
        entries = _read_table(inner, key, size)
    except (CorruptDataError, FileNotFoundError):
        return False
    return not _disagreements(entries, records)


def _read_table(inner: Remote, key: str, size: int) -> list[Entry]:
    """The table of the pack at `key` of `size` bytes, from two ranged reads of its tail."""
    trailer = inner.get_key(key, max(0, size - TRAILER_SIZE), size)
    need = tail_size(trailer, size, key)
    return parse_pack_table(inner.get_key(key, size - need, size), size, key)


def _check_pack_bytes(pack_id: str, data: bytes, records: list[Record],
                      damage: Damage) -> None:
    key = pack_key(pack_id)
    if hash_bytes(data) != pack_id:
        damage.add("its bytes do not match its name")
    try:
        entries = parse_pack(data, key)
    except CorruptDataError as exc:
        damage.add(exc.problem)
    else:
        for problem in _disagreements(entries, records):
            damage.add(problem)
    view = memoryview(data)
    for r in records:
        blob = view[r.offset:r.offset + r.length]
        if len(blob) != r.length:
            damage.blobs[r.oid] = r.type
            damage.add(f"blob {r.oid} lies beyond its end")
        elif xxhash.xxh3_128_hexdigest(blob) != r.oid:
            damage.blobs[r.oid] = r.type
            damage.add(f"blob {r.oid} does not match its hash")


def _disagreements(entries: list[Entry], records: list[Record]) -> list[str]:
    table = {e.oid: e for e in entries}
    found = []
    for r in records:
        e = table.get(r.oid)
        if e is None:
            found.append(f"the index lists blob {r.oid} in it, its table does not")
        elif (e.type, e.offset, e.length) != (r.type, r.offset, r.length):
            found.append(f"blob {r.oid}: the index says {r.length} bytes at {r.offset}, "
                         f"its table {e.length} bytes at {e.offset}")
    return found


def _leftovers(inner: Remote, packs: dict[str, int], listed: dict[str, list[Record]],
               view: IndexView, bad_segments: list[Damage], result: CheckResult) -> None:
    """Packs no segment lists. Harmless leftovers of an interrupted push, unless a
    segment could not be read: then they may be what it listed, so they are checked
    against their own tables, and their blobs that no other segment lists are what the
    damaged segment made unfindable."""
    for pack_id in sorted(set(packs) - set(listed)):
        key = pack_key(pack_id)
        if not bad_segments:
            result.leftovers[key] = ("listed by no index segment (left by an interrupted "
                                     "push): invisible and harmless")
            continue
        result.leftovers[key] = ("listed by no readable index segment: perhaps by the "
                                 "damaged one")
        try:
            entries = _read_table(inner, key, packs[pack_id])
        except (CorruptDataError, FileNotFoundError):
            entries = []
        for e in entries:
            if e.oid not in view:
                for damage in bad_segments:
                    damage.blobs[e.oid] = e.type
        found = _check_pack(inner, pack_id, packs[pack_id], records_of(pack_id, entries),
                            True, result)
        if found is not None:
            result.damage.append(found)


# ---- recipes -----------------------------------------------------------------------------


def _check_recipes(remote: PackedRemote, view: IndexView, sample: float | None,
                   result: CheckResult) -> list[Recipe]:
    """Parse every recipe and check that its chunks are listed; put a sample of them
    together. Returns the recipes that parse (to name the big files a chunk is in)."""
    inner = remote.inner
    found: list[Recipe] = []
    keys = {}
    for key in sorted(inner.list_keys("recipes/")):
        oid = key.rsplit("/", 1)[-1]
        if HEX_RE.match(oid) and key == recipe_key(oid):
            keys[oid] = key
        else:
            result.leftovers[key] = "not named like a recipe: readers ignore it"
    rebuild = _chosen(sorted(keys), sample)
    lost = {b for d in result.damage for b in d.blobs}
    for oid, key in keys.items():
        result.recipes += 1
        damage = Damage(RECIPE, key)
        try:
            recipe = parse_recipe(get_capped(inner, key, RCP_SIZE_MAX), oid,
                                  remote.marker.chunker.max, remote.marker.chunker.min)
        except FileNotFoundError:
            continue  # deleted since it was listed
        except CorruptDataError as exc:
            damage.add(exc.problem)
            damage.blobs[oid] = OBJECT
            result.damage.append(damage)
            continue
        found.append(recipe)
        unlisted = [c for c, _ in recipe.chunks if c not in view and c not in lost]
        for cid in unlisted[:MAX_PROBLEMS]:
            damage.add(f"chunk {cid} is in no index segment")
        if unlisted:
            damage.blobs[oid] = OBJECT
        elif oid in rebuild and not any(c in lost for c, _ in recipe.chunks):
            problem = _rebuilt_problem(inner, recipe, view)
            if problem:
                damage.add(problem)
                damage.blobs[oid] = OBJECT
        if damage.problems:
            result.damage.append(damage)
    return found


def _rebuilt_problem(inner: Remote, recipe: Recipe, view: IndexView) -> str | None:
    """Put the big file together from its chunks (all listed) and say what is wrong
    with it, if anything. Runs of chunks that lie one after another in a pack are read
    at once."""
    hasher = xxhash.xxh3_128()
    records = [r for r in (view.lookup(c) for c, _ in recipe.chunks) if r is not None]
    for run in _runs(records):
        start, end = run[0].offset, run[-1].offset + run[-1].length
        try:
            data = inner.get_key(pack_key(run[0].pack), start, end)
        except FileNotFoundError:
            return f"the pack of chunk {run[0].oid} is missing"
        if len(data) != end - start:
            return f"chunk {run[-1].oid} lies beyond the end of its pack"
        view_of = memoryview(data)
        for r in run:
            at = r.offset - start
            if xxhash.xxh3_128_hexdigest(view_of[at:at + r.length]) != r.oid:
                return f"chunk {r.oid} does not match its hash"
        hasher.update(data)
    if hasher.hexdigest() != recipe.oid:
        return "its chunks put together do not hash to its name"
    return None


def _runs(records: list[Record]) -> Iterator[list[Record]]:
    """`records` in order, cut into runs that lie back to back in one pack."""
    run: list[Record] = []
    for r in records:
        if run and (r.pack != run[-1].pack or r.offset != run[-1].offset + run[-1].length
                    or r.offset + r.length - run[0].offset > RUN_MAX):
            yield run
            run = []
        run.append(r)
    if run:
        yield run


# ---- naming what is affected -------------------------------------------------------------


def _name_objects(result: CheckResult, recipes: list[Recipe]) -> None:
    """Fill each damage's `objects`: the blobs it holds that are whole files, and the big
    files whose recipes use a chunk it holds."""
    used_by: dict[str, list[str]] = {}
    for recipe in recipes:
        for cid, _ in recipe.chunks:
            users = used_by.setdefault(cid, [])
            if not users or users[-1] != recipe.oid:
                users.append(recipe.oid)
    for damage in result.damage:
        files: set[str] = set()
        for blob, btype in damage.blobs.items():
            if btype == OBJECT:
                files.add(blob)
            files.update(used_by.get(blob, []))  # a chunk no recipe uses names nothing
        damage.objects = sorted(files)
