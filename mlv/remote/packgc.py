"""`gc --cloud` on a format-2 remote: repack sparse packs and delete in two phases.

Phase 1 (one run) decides what is dead: packs with no live blob, packs a push left
unlisted, recipes and loose objects no pointer in scope uses, and records of packs no
longer on the remote that no reader needs (`_stale`). Sparse packs (little of them
live) are repacked: their live blobs are copied (verified) into new packs, then a new
index segment lists the copies (and the records of every other pack that an old segment
listed, but for stale ones), and only then is anything scheduled. The schedule is a file,
`gc/pending-<UTC>-<random>.json`; nothing is deleted in phase 1.

From the moment a schedule exists, pushers treat what it names as absent (PackedRemote
reads it with `scheduled`): they upload such a blob again, into a new pack, instead of
deduplicating against a pack that will go. A pusher that read the index before the
schedule was written finishes within the grace period (a day by default).

Phase 2 (a later run, the schedule older than the grace period) checks each thing again
and deletes what is still dead, in the reverse of the commit order: recipes and loose
objects (manifests first), then index segments, then packs, then the schedule itself.
A pack stays if a segment that is not scheduled lists it (a push listed it since), if
it holds a live blob found in no surviving pack, or if a scheduled segment that stays
lists it (no segment is left listing a deleted pack: readers would take its blobs as
lost); a segment stays while it is the only one listing a record of a pack that stays
(a pusher may have written it again, under the same name), or the only one listing a
live blob in a pack that is gone (the record that makes a push store it again); a
recipe or loose object stays if it is used now, if a pusher noted that it stored it again
(`gc/keep-…`), or (loose) if it is newer than the schedule. A run killed at any point
leaves every live blob listed and readable; the next run finishes the job (deleting
what is gone already is no failure).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlv.errors import MlvError
from mlv.hashing import is_oid
from mlv.remote.base import Remote
from mlv.remote.packs import (
    PACK_ENTRY,
    PACK_HEADER,
    RCP_SIZE_MAX,
    TRAILER_SIZE,
    PackWriter,
    Recipe,
    Record,
    build_segments,
    parse_recipe,
    parse_segment,
)

if TYPE_CHECKING:
    from mlv.remote.packed import PackedRemote

GC_PREFIX = "gc/"
PENDING = "pending-"
KEEP = "keep-"
SPARSE_SHARE = 0.5  # repack a pack when less than this share of its bytes is live
SMALL_SHARE = 0.25  # packs under this share of the target size are merged (two or more)
SCHEDULE_MAX = 256 << 20  # bytes: a schedule is a list of names
CLOCK_SLACK = 3600.0  # seconds: keep notes are kept this much longer (clocks differ)


class GcStateError(MlvError):
    """A file under gc/ on the remote is damaged."""


@dataclass
class Schedule:
    """What one phase 1 scheduled for deletion, and when."""
    key: str
    scheduled: float
    packs: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    recipes: list[str] = field(default_factory=list)
    loose: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        doc = {"format": 1, "scheduled": self.scheduled, "packs": sorted(self.packs),
               "segments": sorted(self.segments), "recipes": sorted(self.recipes),
               "loose": sorted(self.loose)}
        return (json.dumps(doc, sort_keys=True) + "\n").encode()


@dataclass
class Doomed:
    """Everything some schedule names: a pusher must not deduplicate against it."""
    packs: set[str] = field(default_factory=set)
    segments: set[str] = field(default_factory=set)
    recipes: set[str] = field(default_factory=set)
    loose: set[str] = field(default_factory=set)


@dataclass
class PackGcResult:
    packs: int = 0  # packs listed on the remote
    bytes: int = 0  # their bytes
    dead_packs: int = 0  # scheduled now: no live blob (or listed by no segment)
    dead_bytes: int = 0
    sparse_packs: int = 0  # repacked now
    sparse_bytes: int = 0
    repacked_bytes: int = 0  # live bytes copied into new packs
    recipes: int = 0  # dead recipes scheduled now
    loose: int = 0  # dead loose objects scheduled now
    pending: list[str] = field(default_factory=list)  # schedules left waiting
    written: str | None = None  # the schedule written by this run
    deleted_packs: int = 0  # phase 2: deleted by this run
    deleted_bytes: int = 0
    deleted_segments: int = 0
    deleted: list[str] = field(default_factory=list)  # recipes and loose objects deleted
    spared: int = 0  # phase 2: scheduled but found in use again
    stale: int = 0  # records of packs not on the remote that phase 1 left out (`_stale`)

    @property
    def frees(self) -> int:
        """Bytes that deleting what this run scheduled will free."""
        return self.dead_bytes + self.sparse_bytes - self.repacked_bytes


def _time_name(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def schedules(remote: Remote) -> list[Schedule]:
    """Every pending schedule on the remote, oldest first."""
    found = []
    for key in sorted(remote.list_keys(GC_PREFIX)):
        if key.rsplit("/", 1)[-1].startswith(PENDING) and key.endswith(".json"):
            found.append(_parse_schedule(key, _get_capped(remote, key)))
    return sorted(found, key=lambda s: (s.scheduled, s.key))


def _parse_schedule(key: str, data: bytes) -> Schedule:
    def bad(problem: str) -> GcStateError:
        return GcStateError(f"the gc schedule {key} on the remote is damaged: {problem}",
                            hint="delete it (nothing it names is deleted then), and run "
                                 "`mlv gc --cloud` again")

    if len(data) > SCHEDULE_MAX:
        raise bad("too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != 1 or \
            not isinstance(doc.get("scheduled"), (int, float)):
        raise bad("no format 1 or no time")
    lists = {}
    for name in ("packs", "segments", "recipes", "loose"):
        value = doc.get(name, [])
        ok = is_oid if name != "loose" else _is_loose
        if not isinstance(value, list) or not all(isinstance(v, str) and ok(v) for v in value):
            raise bad(f"{name} is not a list of object ids")
        lists[name] = value
    return Schedule(key, float(doc["scheduled"]), **lists)


def _get_capped(remote: Remote, key: str) -> bytes:
    """A schedule's or a note's bytes, at most SCHEDULE_MAX + 1 of them."""
    from mlv.remote.packed import get_capped

    return get_capped(remote, key, SCHEDULE_MAX)


def _is_loose(oid: str) -> bool:
    return is_oid(oid[:-4] if oid.endswith(".dir") else oid)


def scheduled(remote: Remote) -> Doomed:
    """What pending schedules name (for pushers). A damaged schedule is skipped here:
    phase 2 refuses it, so nothing it names is ever deleted."""
    doomed = Doomed()
    for key in sorted(remote.list_keys(GC_PREFIX)):
        if not key.rsplit("/", 1)[-1].startswith(PENDING):
            continue
        try:
            s = _parse_schedule(key, _get_capped(remote, key))
        except (GcStateError, FileNotFoundError):
            continue
        doomed.packs.update(s.packs)
        doomed.segments.update(s.segments)
        doomed.recipes.update(s.recipes)
        doomed.loose.update(s.loose)
    return doomed


def note_kept(remote: Remote, oids: Iterable[str]) -> None:
    """Before a pusher stores again a recipe or loose object that a schedule names: say
    so, so phase 2 leaves it."""
    oids = sorted(oids)
    if oids:
        now = time.time()
        doc = {"format": 1, "noted": now, "oids": oids}
        remote.put_key(f"{GC_PREFIX}{KEEP}{_time_name(now)}-{secrets.token_hex(4)}.json",
                       (json.dumps(doc, sort_keys=True) + "\n").encode())


def _keep_notes(remote: Remote) -> list[tuple[str, float, set[str]]]:
    found = []
    for key in sorted(remote.list_keys(GC_PREFIX)):
        if not key.rsplit("/", 1)[-1].startswith(KEEP):
            continue
        try:
            data = _get_capped(remote, key)
            if len(data) > SCHEDULE_MAX:
                raise ValueError("too large")
            doc = json.loads(data.decode("utf-8"))
            found.append((key, float(doc["noted"]),
                          {o for o in doc["oids"] if isinstance(o, str)}))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, FileNotFoundError):
            found.append((key, float("inf"), set()))  # never cleaned by a guess
    return found


# ---- the state of the remote, read once per phase -------------------------------------


@dataclass
class _State:
    segments: dict[str, list[Record]]  # segment id -> its records
    pack_sizes: dict[str, int]  # pack id -> bytes, of every pack file present
    recipes: set[str]
    loose: dict[str, float | None]  # loose oid -> mtime
    recipe_sizes: dict[str, int] = field(default_factory=dict)  # recipe oid -> bytes

    def listed(self) -> set[str]:
        """Every blob id some segment lists."""
        return {r.oid for recs in self.segments.values() for r in recs}

    def listed_by(self) -> dict[str, set[str]]:
        """pack id -> the segments that list it."""
        found: dict[str, set[str]] = {}
        for seg, recs in self.segments.items():
            for r in recs:
                found.setdefault(r.pack, set()).add(seg)
        return found

    def blobs(self, skip_segments: set[str] | None = None) -> dict[str, dict[str, Record]]:
        """pack id -> blob id -> its record, from the segments not in `skip_segments`."""
        found: dict[str, dict[str, Record]] = {}
        for seg, recs in self.segments.items():
            if seg not in (skip_segments or set()):
                for r in recs:
                    found.setdefault(r.pack, {})[r.oid] = r
        return found


def _read_state(remote: PackedRemote) -> _State:
    from mlv.remote.packed import listed, pack_key, recipe_key, segment_key

    inner = remote.inner
    segments = {seg_id: parse_segment(remote.segment_bytes(seg_id), seg_id)
                for seg_id in sorted(listed(inner, "index/", segment_key))}
    packs = listed(inner, "packs/", pack_key)  # after the segments, as readers do
    sizes = listed(inner, "recipes/", recipe_key)
    return _State(segments, packs, set(sizes), inner.list_mtimes(), sizes)


def _chunks_of(remote: PackedRemote, oids: Iterable[str], strict: bool, state: _State
               ) -> set[str]:
    """The chunks the recipes `oids` list. A recipe that cannot be read: an error when
    `strict` (its chunks cannot be told apart from garbage), else skipped."""
    listed = state.listed()
    found: set[str] = set()
    for oid in sorted(oids):
        try:
            recipe = _recipe(remote, oid, state.recipe_sizes.get(oid), listed)
        except FileNotFoundError:
            continue
        except MlvError:
            if strict:
                raise MlvError(f"cannot read the recipe of {oid} on '{remote.name}', so mlv "
                               "cannot tell which chunks it needs; nothing was deleted",
                               hint="run `mlv fsck --remote` and repair it") from None
            continue
        found.update(c for c, _ in recipe.chunks)
    return found


def _recipe(remote: PackedRemote, oid: str, size: int | None, listed: set[str]) -> Recipe:
    """Recipe `oid`: the local copy an earlier push or pull kept (recipes never change:
    a file's chunks are fixed by its bytes and the marker's chunker) when it parses, has
    the size the remote lists and every chunk it names is listed by a segment; else the
    remote's, kept locally when it passes the same checks."""
    from mlv.remote.packed import get_capped, recipe_key

    recipe = remote.local_recipe(oid, size) if size is not None else None
    if recipe is not None and all(c in listed for c, _ in recipe.chunks):
        return recipe
    raw = get_capped(remote.inner, recipe_key(oid), RCP_SIZE_MAX)
    recipe = parse_recipe(raw, oid, remote.marker.chunker.max, remote.marker.chunker.min)
    if all(c in listed for c, _ in recipe.chunks):
        remote.keep_recipe(oid, raw)
    return recipe


# ---- the two phases -------------------------------------------------------------------


def collect(remote: PackedRemote, used: set[str], grace: float, dry: bool = False,
            now: float | None = None, manifest_files: object = None) -> PackGcResult:
    """Run phase 2 for every schedule older than `grace` seconds, then phase 1 for what
    is dead now. `used`: every object id in scope, with the files of its manifests.
    `manifest_files(oid)`: the files a manifest on the remote lists (None if unreadable),
    for phase 2's check of manifests pushed since the schedule."""
    now = time.time() if now is None else now
    result = PackGcResult()
    for sched in schedules(remote):
        if sched.scheduled <= now - grace:
            _phase2(remote, sched, used, dry, result, manifest_files)
        else:
            result.pending.append(sched.key)
    remote.forget_index()
    _phase1(remote, used, dry, now, result)
    if not dry:
        _clean_notes(remote, result)
    return result


def _phase1(remote: PackedRemote, used: set[str], dry: bool, now: float,
            result: PackGcResult) -> None:
    state = _read_state(remote)
    doomed = Doomed()
    for sched in schedules(remote):
        doomed.packs.update(sched.packs)
        doomed.segments.update(sched.segments)
        doomed.recipes.update(sched.recipes)
        doomed.loose.update(sched.loose)
    live = used | _chunks_of(remote, state.recipes & used, strict=True, state=state)
    blobs = state.blobs()
    result.packs = len(state.pack_sizes)
    result.bytes = sum(state.pack_sizes.values())
    dead, sparse, small = [], [], []
    target = remote.marker.pack_target
    for pack, size in sorted(state.pack_sizes.items()):
        if pack in doomed.packs:
            continue
        recs = blobs.get(pack, {})
        live_bytes = sum(r.length for r in recs.values() if r.oid in live)
        # measured against its blobs' bytes, not its size: a repack writes the header
        # and table again, and a pack of tiny files all in use was repacked (into the
        # same pack) and scheduled on every run, so pushers stored its files again
        blob_bytes = size - len(PACK_HEADER) - len(recs) * PACK_ENTRY.size - TRAILER_SIZE
        if live_bytes == 0:
            dead.append(pack)  # no live blob, or listed by no segment
        elif live_bytes < SPARSE_SHARE * blob_bytes:
            sparse.append(pack)
        elif size < SMALL_SHARE * target:
            small.append(pack)
    if len(small) >= 2:
        sparse += small
    result.dead_packs = len(dead)
    result.dead_bytes = sum(state.pack_sizes[p] for p in dead)
    repack = {p: [r for r in blobs[p].values() if r.oid in live] for p in sparse}
    recipes = sorted(state.recipes - used - doomed.recipes)
    loose = sorted(set(state.loose) - used - doomed.loose)
    result.recipes, result.loose = len(recipes), len(loose)
    if dry:
        result.sparse_packs = len(sparse)
        result.sparse_bytes = sum(state.pack_sizes[p] for p in sparse)
        result.repacked_bytes = sum(r.length for recs in repack.values() for r in recs)
        result.stale = len(_stale(state, blobs, set(dead) | set(sparse) | doomed.packs, live,
                                  [r for recs in repack.values() for r in recs],
                                  doomed.segments))
        return
    moved, kept_back = _repack(remote, repack)
    sparse = [p for p in sparse if p not in kept_back]
    result.sparse_packs = len(sparse)
    result.sparse_bytes = sum(state.pack_sizes[p] for p in sparse)
    result.repacked_bytes = sum(r.length for r in moved)
    going = set(dead) | set(sparse)
    stale = _stale(state, blobs, going | doomed.packs, live, moved, doomed.segments)
    result.stale = len(stale)
    # Every segment that lists a pack that goes (or a stale record) is replaced by one
    # new segment that lists the copies and every other record those segments held
    # (written first).
    segs = {s for s, recs in state.segments.items()
            if s not in doomed.segments and any(r.pack in going or r in stale for r in recs)}
    carried = [r for s in segs for r in state.segments[s]
               if r.pack not in going and r.pack not in doomed.packs and r not in stale]
    if moved or carried:
        from mlv.remote.packed import segment_key

        for seg_id, data in build_segments(moved + carried):
            remote.inner.put_key(segment_key(seg_id), data)
    if not (going or segs or recipes or loose):
        return
    sched = Schedule(f"{GC_PREFIX}{PENDING}{_time_name(now)}-{secrets.token_hex(4)}.json",
                     now, sorted(going), sorted(segs), recipes, loose)
    remote.inner.put_key(sched.key, sched.to_bytes())
    result.written = sched.key
    result.pending.append(sched.key)


def _stale(state: _State, blobs: dict[str, dict[str, Record]], going: set[str],
           live: set[str], moved: list[Record], doomed: set[str]) -> set[Record]:
    """Records of packs that are not on the remote (deleted by hand after fsck found
    them damaged) that no reader needs: the blob is used by nothing in scope, or is
    stored in a pack that stays. Such records made the blob count as lost for ever (so
    every push checked every folder's files, and fsck failed). A record of a live blob
    stored nowhere else stays: it is what makes the next push store the blob again.
    Segments in `doomed` (scheduled already) are not looked at: they go anyway."""
    kept = {r.oid for r in moved}
    kept.update(oid for pack, recs in blobs.items()
                if pack in state.pack_sizes and pack not in going for oid in recs)
    return {r for s, recs in state.segments.items() if s not in doomed for r in recs
            if r.pack not in state.pack_sizes and (r.oid not in live or r.oid in kept)}


def _repack(remote: PackedRemote, repack: dict[str, list[Record]]
            ) -> tuple[list[Record], set[str]]:
    """Copy the live blobs of `repack` (pack -> its live records) into new packs. Returns
    the records of the copies, and the packs that must stay (a blob could not be read:
    it is left where it is, for fsck to name)."""
    from mlv.remote.packed import pack_key

    writer = PackWriter(remote.marker.pack_target)
    moved: list[Record] = []
    kept_back: set[str] = set()

    def put(pack: object) -> None:
        from mlv.remote.packs import Pack, records_of

        assert isinstance(pack, Pack)
        remote.inner.put_key(pack_key(pack.pack_id), pack.data)
        moved.extend(records_of(pack.pack_id, pack.entries))

    for pack_id, recs in sorted(repack.items()):
        failures: dict[str, BaseException] = {}
        blobs = list(remote.read_blobs(recs, failures))
        if failures or len(blobs) != len(recs):
            kept_back.add(pack_id)
            continue
        types = {r.oid: r.type for r in recs}
        for oid, data in blobs:
            for done in writer.add(types[oid], oid, data):
                put(done)
    last = writer.flush()
    if last is not None:
        put(last)
    return moved, kept_back


def _phase2(remote: PackedRemote, sched: Schedule, used: set[str], dry: bool,
            result: PackGcResult, manifest_files: object) -> None:
    from mlv.remote.packed import pack_key, recipe_key, segment_key

    state = _read_state(remote)
    # what pushers stored again under the same name (every note is honoured: a
    # pusher's clock may be behind ours)
    noted = _noted(remote)
    # a scheduled recipe stays if noted or used now (the scope may be wider than phase
    # 1's): its chunks are live then
    recipes_now = state.recipes - (set(sched.recipes) - noted - used)
    live = used | (_chunks_of(remote, recipes_now, strict=False, state=state)
                   if sched.packs or sched.segments else set())
    for oid, mtime in state.loose.items():  # manifests pushed since the schedule
        if oid.endswith(".dir") and (mtime is None or mtime > sched.scheduled) \
                and callable(manifest_files):
            live.update(manifest_files(oid) or ())
    plan = _plan(state, sched, live, noted)
    if not dry:  # reading the state took a while: a note may have come since
        late = _noted(remote) - noted
        if late:
            plan = _plan(state, sched, live, noted | late)
    recipes, loose, segs, packs = plan
    result.spared += len(set(sched.packs) & set(state.pack_sizes)) - len(packs) + \
        len(sched.recipes) - len(recipes) + len(sched.loose) - len(loose)
    result.deleted_packs += len(packs)
    result.deleted_bytes += sum(state.pack_sizes[p] for p in packs)
    result.deleted_segments += len(segs)
    result.deleted += recipes + loose
    if dry:
        return
    manifests = [o for o in loose if o.endswith(".dir")]
    _delete(remote, [recipe_key(o) for o in recipes])
    _delete(remote, [], oids=manifests)
    _delete(remote, [], oids=[o for o in loose if not o.endswith(".dir")])
    _delete(remote, [segment_key(s) for s in segs])
    _delete(remote, [pack_key(p) for p in packs])
    _delete(remote, [sched.key])


def _noted(remote: Remote) -> set[str]:
    return set().union(*(names for _, _, names in _keep_notes(remote)))


def _plan(state: _State, sched: Schedule, live: set[str], noted: set[str]
          ) -> tuple[list[str], list[str], list[str], list[str]]:
    """What of `sched` phase 2 deletes: (recipes, loose objects, segments, packs)."""
    mine_segs = (set(sched.segments) & set(state.segments)) - noted
    others = state.blobs(skip_segments=mine_segs)  # what surviving segments list
    listed_elsewhere = set(others)
    # a pack stays if a push listed it since, stored it again, or needs a blob of it
    packs = [p for p in sched.packs if p in state.pack_sizes and
             p not in listed_elsewhere and p not in noted]
    going = set(packs)
    surviving = {oid for p, recs in others.items() if p not in going for oid in recs}
    mine_blobs = state.blobs()
    for pack in list(packs):
        if any(o in live and o not in surviving for o in mine_blobs.get(pack, {})):
            packs.remove(pack)
            going.discard(pack)
    recipes = [o for o in sched.recipes if o in state.recipes and o not in live
               and o not in noted]
    loose = [o for o in sched.loose if o in state.loose and o not in live and o not in noted
             and (state.loose[o] or float("inf")) <= sched.scheduled]
    # a segment goes only when every pack it lists goes, or another segment lists
    # each record it holds of that pack (phase 1 may have left out a record of a pack
    # deleted by hand that a push stored again since, same name), or the pack is absent
    # and the blob is not live or listed elsewhere (its record of an absent pack is what
    # makes the next push store a live blob again: it may be live since phase 1);
    # a pack that a segment which stays lists stays too (else that segment would list
    # a pack that is gone: readers take its blobs as lost, and fsck calls it missing).
    # Keeping a pack may keep more segments, so until nothing changes; the next phase
    # 1 schedules them again, with a new segment for the records that stay.
    while True:
        segs = [s for s in sorted(mine_segs)
                if all(r.pack in going or r.oid in others.get(r.pack, ()) or
                       (r.pack not in state.pack_sizes and
                        (r.oid not in live or r.oid in surviving))
                       for r in state.segments[s])]
        held = {r.pack for s in mine_segs - set(segs) for r in state.segments[s]} & going
        if not held:
            return recipes, loose, segs, packs
        packs = [p for p in packs if p not in held]
        going -= held


def _delete(remote: PackedRemote, keys: list[str], oids: list[str] | None = None) -> None:
    failed = dict(remote.inner.delete(oids)) if oids else {}
    if keys:
        failed.update(remote.inner.delete_keys(keys))
    if failed:
        raise MlvError(f"{len(failed)} files could not be deleted from '{remote.name}' "
                       f"(e.g. {next(iter(failed))}); what remains is safe to keep",
                       hint="check the remote's permissions, then run `mlv gc --cloud` "
                            "again")


def _clean_notes(remote: PackedRemote, result: PackGcResult) -> None:
    """Keep notes older than every pending schedule answer no schedule any more."""
    left = [s.scheduled for s in schedules(remote)]
    oldest = (min(left) if left else time.time()) - CLOCK_SLACK
    old = [k for k, t, _ in _keep_notes(remote) if t < oldest]
    if old:
        remote.inner.delete_keys(old)
