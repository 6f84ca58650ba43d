"""A format-2 remote: small objects and the chunks of big files travel in packs, listed by
immutable index segments; big files are stored as recipes (their chunk lists). It wraps
a remote of keys (folder, S3, memory) and offers the same object interface as a loose
remote, so push, fetch and status work on it unchanged. The layout is in mlv/packs.py.

Commit order on upload: packs, then the index segment that lists them, then recipes,
then folder manifests (loose, as in format 1). A pack no segment lists is invisible.
Objects stored loose (by an earlier mlv, or big files without the compiled chunker) stay
readable, and `has` finds them too."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from mlv import fsio
from mlv.errors import MlvError
from mlv.hashing import HEX_RE, hash_bytes, is_oid
from mlv.remote.base import After, Failures, Remote, RemoteError, RootMissingError, announce
from mlv.remote.packs import (
    CHUNK,
    OBJECT,
    RCP_SIZE_MAX,
    SEG_SIZE_MAX,
    CorruptDataError,
    CorruptSegmentError,
    IndexView,
    Marker,
    MiB,
    Pack,
    PackWriter,
    Recipe,
    Record,
    build_recipe,
    build_segments,
    parse_recipe,
    parse_segment,
    records_of,
)
from mlv.workspace import Progress

RANGE_GAP = 1 << 20  # ranged reads closer than this are merged into one
# Packs being uploaded, and ranges being downloaded, are held in memory: at most this many
# bytes of them at once (plus the one waiting for room), in at most PACKS_IN_FLIGHT
# requests for uploads (16 MiB packs: 8) and `jobs` requests for downloads.
BYTES_IN_FLIGHT = 128 * MiB
PACKS_IN_FLIGHT = 8

T = TypeVar("T")
R = TypeVar("R")


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


def segment_key(seg_id: str) -> str:
    return f"index/{seg_id}"


def recipe_key(oid: str) -> str:
    return f"recipes/{oid[:2]}/{oid}"


def listed(inner: Remote, prefix: str, key_of: Callable[[str], str]) -> dict[str, int]:
    """name -> size of the keys under `prefix` that are what `key_of` names: a 32-hex
    name (a pack, segment or recipe id) at exactly the key `key_of(name)`. Anything else
    there is not ours and is passed over, by readers and gc alike (a name like
    `<id>.dir` once crashed readers and counted as a pack or recipe)."""
    found = {}
    for key, size in inner.list_keys(prefix).items():
        name = key.rsplit("/", 1)[-1]
        if HEX_RE.match(name) and key == key_of(name):
            found[name] = size
    return found


def get_capped(remote: Remote, key: str, cap: int) -> bytes:
    """The bytes of `key`, but never more than `cap` + 1 of them: a marker, segment,
    recipe or gc schedule of a gigabyte (a hostile or damaged remote; a listing may say
    less than a GET brings) is refused by its parser without being read whole."""
    return remote.get_key(key, 0, cap + 1)


class PackedRemote(Remote):
    def __init__(self, inner: Remote, marker: Marker, index_dir: str | None = None,
                 local: Callable[[str], str | None] | None = None) -> None:
        """`local(oid)`: the cache's path of an object when the cache has it."""
        super().__init__(inner.name, inner.url, inner.jobs)
        self.inner = inner
        self.marker = marker
        self.index_dir = index_dir  # where segments are kept locally (immutable: forever)
        self.local = local
        self._view: IndexView | None = None
        self._recipes: set[str] | None = None
        self.doomed: Any = None  # what `gc --cloud` scheduled (packgc.Doomed)
        self.gone: set[str] = set()  # packs segments list that are not on the remote
        self.lost: set[str] = set()  # blobs listed only in those packs (absent)
        self.said: set[str] = set()  # notes already given (once per run)
        self.wire = 0  # bytes that actually crossed to or from the remote
        self._wire_lock = threading.Lock()  # transfers count `wire` from many threads
        self._progress: Progress | None = None  # of the transfer running: told `wire`

    # ---- what the remote holds ----------------------------------------------------------

    def index(self, fresh: bool = False) -> IndexView:
        if self._view is None or fresh:
            from mlv.remote import packgc

            self.doomed = packgc.scheduled(self.inner)
            view = IndexView()
            # segments a gc scheduled last: the first copy of a blob found is the one kept
            segments = listed(self.inner, "index/", segment_key)
            # the packs, listed after the segments: a push writes its packs before the
            # segment that lists them, so every pack a listed segment names is there
            # unless it was deleted (by hand, after fsck found it damaged)
            present = {bytes.fromhex(p) for p in listed(self.inner, "packs/", pack_key)}
            dropped: list[Record] = []
            for seg_id in sorted(segments, key=lambda s: (s in self.doomed.segments, s)):
                try:
                    dropped += view.add_segment(
                        seg_id, self._segment(segment_key(seg_id), seg_id, segments[seg_id]),
                        present)
                except CorruptDataError as exc:  # its blobs count as absent: push
                    self.said.add(f"{exc.message}; it was skipped (what only it lists "
                                  "is sent again by push); run `mlv fsck --remote`")
                except FileNotFoundError:
                    # deleted since the listing: a gc elsewhere replaced it (another
                    # segment lists what stays) or deleted its packs too
                    continue
            self.gone = {r.pack for r in dropped}
            self.lost = {r.oid for r in dropped if r.oid not in view}
            self._view = view
        return self._view

    def lost_blobs(self) -> set[str]:
        """The blobs (objects and chunks) that segments list only in packs no longer on
        the remote: absent, so push stores them again and pull names them missing."""
        self.index()
        return self.lost

    def _segment(self, key: str, seg_id: str, listed: int | None = None) -> bytes:
        """Segment `seg_id`'s bytes, checked against its name: the local copy when it
        has one, else read from the remote (not when the listing says it is bigger than
        a segment may be: a hostile remote could fill the memory) and kept."""
        local = os.path.join(self.index_dir, seg_id) if self.index_dir else None
        if local and os.path.isfile(local):
            data = fsio.read_regular(local, SEG_SIZE_MAX, local, RemoteError)
            if hash_bytes(data) == seg_id:
                return data
        if listed is not None and listed > SEG_SIZE_MAX:
            raise CorruptSegmentError(seg_id, f"{listed} bytes, more than {SEG_SIZE_MAX}")
        data = get_capped(self.inner, key, SEG_SIZE_MAX)
        self._moved(len(data))
        if hash_bytes(data) != seg_id:
            raise CorruptDataError(key, "its bytes do not match its name",
                                   hint="run `mlv fsck --remote`")
        self._keep_segment(seg_id, data)
        return data

    def _keep_segment(self, seg_id: str, data: bytes) -> None:
        """Keep a copy of a segment (checked against its name) in the cache folder:
        segments never change, so it is read from the remote only once."""
        local = os.path.join(self.index_dir, seg_id) if self.index_dir else None
        if local and not os.path.isfile(local):
            fsio.makedirs(os.path.dirname(local))
            fsio.atomic_write(local, data)

    def recipes(self) -> set[str]:
        if self._recipes is None:
            self._recipes = set(listed(self.inner, "recipes/", recipe_key))
        return self._recipes

    def list_oids(self) -> set[str]:
        view = self.index()
        recipes = {o for o in self.recipes() if self._whole(o)}
        return {r.oid for r in view if r.type == OBJECT} | recipes | self.inner.list_oids()

    def list_mtimes(self) -> dict[str, float | None]:
        raise RemoteError(f"remote '{self.name}' uses format 2: objects are deleted by "
                          "`mlv gc --cloud`'s two phases, not one by one")

    def stored(self, oid: str) -> bool:
        """Whether a push may count on `oid` being in a pack: listed, and not only in
        packs that `gc --cloud` scheduled for deletion (then it is stored again)."""
        rec = self.index().lookup(oid)
        return rec is not None and rec.pack not in self.doomed.packs

    def has(self, oids: list[str]) -> set[str]:
        recipes = self.recipes()
        self.index()
        doomed = self.doomed
        found = {o for o in oids if self.stored(o) or
                 (o in recipes and o not in doomed.recipes and self._whole(o))}
        rest = [o for o in oids if o not in found]
        return found | (self.inner.has(rest) - doomed.loose if rest else set())

    def _whole(self, oid: str) -> bool:
        """Whether the big file `oid` (its recipe is on the remote) has every chunk in a
        pack on the remote. Only asked when some blob's pack is gone (a damaged pack
        was deleted): then its recipe is read (the copy kept locally when there is one)
        and a file with a lost chunk counts as absent, so push sends it again."""
        if not self.lost:
            return True
        try:
            recipe = self.local_recipe(oid) or self.recipe(oid)
        except (OSError, MlvError):
            return False  # push stores it (and its recipe) again
        view = self.index()
        return all(c in view for c, _ in recipe.chunks)

    def _exist_each(self, oids: list[str]) -> set[str]:
        return self.has(oids)

    # ---- upload -------------------------------------------------------------------------

    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        self._progress = progress
        try:
            return self._upload(items, progress, sizes)
        finally:
            self._progress = None

    def _upload(self, items: list[tuple[str, str]], progress: Progress | None,
                sizes: dict[str, int] | None) -> Failures:
        """Small objects and the new chunks of big files go up in packs, several at once
        (each pack as soon as it is full, while the next files are read and cut), then,
        once every pack has been acknowledged, one index segment listing those stored,
        then the recipes, then folder manifests and what is stored loose."""
        view = self.index()
        failures: Failures = {}
        stored: list[Record] = []
        recipes: dict[str, tuple[int, list[tuple[str, int]]]] = {}
        loose: list[tuple[str, str]] = []

        def put(pack: Pack) -> BaseException | None:
            try:
                self._note_again({pack.pack_id} & self.doomed.packs)
                self.inner.put_key(pack_key(pack.pack_id), pack.data)
            except Exception as exc:  # noqa: BLE001 - reported per object
                return exc
            return None

        packs = self._packs(items, recipes, loose, failures, progress, sizes)
        for pack, exc in _bounded(packs, put, lambda p: len(p.data),
                                  min(self.jobs, PACKS_IN_FLIGHT), BYTES_IN_FLIGHT):
            if exc is not None:
                failures.update({e.oid: exc for e in pack.entries if e.type == OBJECT})
                continue
            self._moved(len(pack.data))
            stored.extend(records_of(pack.pack_id, pack.entries))
            if progress:  # a file is done when its pack is; a chunk only adds bytes
                progress(sum(e.type == OBJECT for e in pack.entries),
                         sum(e.length for e in pack.entries))
        for seg_id, data in build_segments(stored) if stored else []:
            try:
                self._note_again({seg_id} & self.doomed.segments)
                self.inner.put_key(segment_key(seg_id), data)
            except Exception as exc:  # noqa: BLE001 - nothing is visible without it
                return {o: exc for _, o in items}
            self._moved(len(data))
            self._keep_segment(seg_id, data)
            if seg_id in view.segments:  # the same records again: their pack was deleted
                view.add(parse_segment(data, seg_id))  # and is now stored again
            else:
                view.add_segment(seg_id, data)
        resent = sum(r.oid in self.lost for r in stored)
        if resent:
            gone = ", ".join(pack_key(p) for p in sorted(self.gone)[:3])
            self.said.add(f"stored again {resent} files or chunks whose pack was missing "
                          f"from the remote ({gone}{', …' if len(self.gone) > 3 else ''})")
        self.lost -= {r.oid for r in stored}
        self.gone -= {r.pack for r in stored}
        # A small object whose bytes were queued as a chunk (or the other way round) was
        # not packed twice: it is stored only if that pack was (checked in the index only
        # for what this push did not store itself: a set is faster than the index)
        accounted = {r.oid for r in stored} | set(recipes) | {o for _, o in loose}
        for _, oid in items:
            if oid not in failures and oid not in accounted and not oid.endswith(".dir") \
                    and oid not in view:
                failures[oid] = RemoteError("the pack that holds its bytes could not be "
                                            "stored")
        again = (set(recipes) & self.doomed.recipes) | ({o for _, o in loose} &
                                                         self.doomed.loose)
        try:
            self._note_again(again)
        except Exception as exc:  # noqa: BLE001 - storing them now could lose them
            failures.update({o: exc for o in again})
            recipes = {o: r for o, r in recipes.items() if o not in again}
            loose = [(p, o) for p, o in loose if o not in again]
        failed = self._put_recipes(recipes, view)
        failures.update(failed)
        if progress and len(recipes) > len(failed):  # their bytes were counted as chunks
            progress(len(recipes) - len(failed))
        if loose:  # manifests last: one on the remote vouches for its files
            done = self.inner.upload(loose, progress, sizes)
            failures.update(done)
            self._moved(sum(os.path.getsize(p) for p, o in loose if o not in done))
        return failures

    def _packs(self, items: list[tuple[str, str]],
               recipes: dict[str, tuple[int, list[tuple[str, int]]]],
               loose: list[tuple[str, str]], failures: Failures,
               progress: Progress | None, sizes: dict[str, int] | None
               ) -> Iterator[Pack]:
        """The packs of what `items` adds to the remote, each as soon as it is full;
        fills `recipes` (big files cut into chunks), `loose` (folder manifests, and big
        files stored whole) and `failures` (a cache object that is not a regular file:
        never followed) on the way. What needs no upload counts as done at once."""
        from mlv.remote import chunker

        writer = PackWriter(self.marker.pack_target)
        queued: set[str] = set()
        big = self.marker.chunker.from_size
        why_not = chunker.available()
        found_sizes: dict[str, int] = {}
        for path, oid in items:
            if oid.endswith(".dir"):
                loose.append((path, oid))
                continue
            try:
                found_sizes[oid] = fsio.check_object(path).st_size
            except (OSError, MlvError) as exc:
                failures[oid] = exc
        whole = {o for o, n in found_sizes.items() if why_not and n >= big}
        loose += [(p, o) for p, o in items if o in whole]
        mine = [(p, o) for p, o in items if o in found_sizes and o not in whole]
        announce(progress, mine, sizes, upload=True)
        for path, oid in mine:
            size = found_sizes[oid]
            if oid in queued or self.stored(oid):
                if progress:
                    progress(1, size)
                continue
            queued.add(oid)
            if size < big:
                yield from writer.add(OBJECT, oid, fsio.read_object(path, size))
            else:
                found: list[tuple[str, int]] = []
                yield from self._chunk(path, queued, writer, found, progress)
                recipes[oid] = (size, found)
        if whole:
            self.said.add(f"big files are stored whole: {why_not}")
        last = writer.flush()
        if last is not None:
            yield last

    def _put_recipes(self, recipes: dict[str, tuple[int, list[tuple[str, int]]]],
                     view: IndexView) -> Failures:
        """Store the recipes whose chunks the index lists (several at once)."""
        failures: Failures = {}

        def put(oid: str) -> None:
            size, chunks = recipes[oid]
            if any(c not in view for c, _ in chunks):
                failures[oid] = RemoteError("some of its chunks could not be stored")
                return
            try:
                recipe = build_recipe(size, chunks)
                self.inner.put_key(recipe_key(oid), recipe)
                self._keep_recipe(oid, recipe)
                self._moved(len(recipe))
                self.recipes().add(oid)
            except Exception as exc:  # noqa: BLE001
                failures[oid] = exc

        if recipes:
            with ThreadPoolExecutor(max_workers=max(1, min(self.jobs,
                                                           len(recipes)))) as pool:
                list(pool.map(put, recipes))
        return failures

    def _moved(self, nbytes: int) -> None:
        """Count bytes that crossed to or from the remote (from any thread), and tell
        the progress of the transfer running."""
        with self._wire_lock:
            self.wire += nbytes
        if self._progress and nbytes:
            self._progress(wire=nbytes)

    def _note_again(self, names: set[str]) -> None:
        """Before storing again (under the same name) what `gc --cloud` scheduled for
        deletion: tell it to leave that (see mlv/remote/packgc.py)."""
        if names:
            from mlv.remote import packgc

            packgc.note_kept(self.inner, names)

    def _chunk(self, path: str, queued: set[str], writer: PackWriter,
               found: list[tuple[str, int]], progress: Progress | None
               ) -> Iterator[Pack]:
        """Cut the big file at `path` into chunks, adding each to `found` (the recipe)
        and each new one to `writer` (the bytes of the others count as done at once);
        yields the packs that this completes."""
        from mlv.remote import chunker

        params = self.marker.chunker
        with fsio.open_object(path) as fobj:
            for offset, length, cid in chunker.chunks(path, params.min, params.avg,
                                                      params.max):
                found.append((cid, length))
                if cid in queued or self.stored(cid):
                    if progress:
                        progress(0, length)
                    continue  # stored already: that is the point
                queued.add(cid)
                fobj.seek(offset)
                yield from writer.add(CHUNK, cid, fobj.read(length))

    # ---- download -----------------------------------------------------------------------

    def download(self, items: list[tuple[str, str]], progress: Progress | None,
                 after: After | None = None, sizes: dict[str, int] | None = None
                 ) -> Failures:
        self._progress = progress
        try:
            return self._download(items, progress, after, sizes)
        finally:
            self._progress = None

    def _download(self, items: list[tuple[str, str]], progress: Progress | None,
                  after: After | None, sizes: dict[str, int] | None) -> Failures:
        """Objects in packs are read in ranges, several at once; each blob is verified,
        written to its temp file and handed to `after`, with its bytes, in the thread that
        read it (it need not be hashed again).
        Big files are rebuilt from their chunks one after another (the chunks of each
        one several at once)."""
        view, recipes = self.index(), self.recipes()
        failures: Failures = {}
        found = {o: view.lookup(o) for o, _ in items}  # one lookup each: 20,000 cost 0.1 s
        records = [r for r in found.values() if r is not None]
        temps = {o: p for o, p in items if found[o] is not None}
        built = [(o, p) for o, p in items if found[o] is None and o in recipes]
        rest = [(o, p) for o, p in items if found[o] is None and o not in recipes]
        made: set[str] = set()

        def keep(oid: str, data: bytes) -> None:
            temp = temps[oid]
            folder = os.path.dirname(temp)
            if folder not in made:
                fsio.makedirs(folder)
                made.add(folder)
            try:
                fsio.write_new(temp, data)
            except OSError as exc:  # a full disk: one line, and the transfer stops
                raise fsio.storage_error(exc, temp) from exc
            if after:
                after(oid, temp, data)
            if progress:
                progress(1, len(data))

        self._read_blobs(records, keep, failures)
        for oid, temp in built:
            try:
                self._rebuild(oid, temp, view, (sizes or {}).get(oid))
            except Exception as exc:  # noqa: BLE001
                failures[oid] = exc
                continue
            size = os.path.getsize(temp)
            if after:
                after(oid, temp, None)  # it checks the whole file's hash, and keeps it
            if progress:
                progress(1, size)
        if rest:
            done = self.inner.download(rest, progress, after, sizes)
            failures.update(done)
            self._moved(sum((sizes or {}).get(o, 0) for o, _ in rest if o not in done))
        return failures

    def _blobs(self, records: list[Record], failures: Failures
               ) -> Iterator[tuple[str, bytes]]:
        """(id, verified bytes) of each record, all read first (as `_read_blobs` does):
        for callers that hold them anyway (one object's `open`, gc's repacking of a
        pack); a blob that could not be read or verified is in `failures` instead."""
        got: list[tuple[str, bytes]] = []
        self._read_blobs(records, lambda oid, data: got.append((oid, data)), failures)
        return iter(got)

    def _read_blobs(self, records: list[Record], use: Callable[[str, Any], None],
                    failures: Failures, views: bool = False) -> None:
        """Call `use(id, verified bytes)` for each record, reading its pack whole or in
        merged ranges, several ranges at once. The ranges are read in threads; their
        blobs are checked and used on the calling thread, one after another: writing
        thousands of small files from several threads at once took twice as long
        (measured: 20,000 blobs from a folder remote, 3.3 s on 8 threads against 1.8 s
        on one), the threads fighting over the GIL and the folders' locks. A blob whose
        bytes do not match its id is a failure, never used; so is each blob of a range
        that could not be read. What `use` raises stops it all. `views`: hand `use`
        memoryviews into the range read, not copies, for a `use` that is done with
        them when it returns (a gigabyte of copies is a gigabyte of fresh memory, and
        on a VM fresh pages are slow)."""
        by_pack: dict[str, list[Record]] = {}
        for r in records:
            by_pack.setdefault(r.pack, []).append(r)
        ranges = []
        for pack_id, recs in sorted(by_pack.items()):
            recs.sort(key=lambda r: r.offset)
            ranges += [(pack_id, start, end, group) for start, end, group in _ranges(recs)]

        def read(task: tuple[str, int, int, list[Record]]) -> bytes | Exception:
            pack_id, start, end, _group = task
            try:
                data = self.inner.get_bulk(pack_key(pack_id), start, end)
            except Exception as exc:  # noqa: BLE001 - each blob of the range failed
                return exc
            self._moved(len(data))
            return data

        for (pack_id, start, _end, group), data in _bounded(
                ranges, read, lambda t: t[2] - t[1], self.jobs, BYTES_IN_FLIGHT):
            if isinstance(data, Exception):
                for r in group:
                    failures.setdefault(r.oid, data)
                continue
            whole = memoryview(data)
            for r in group:
                blob = whole[r.offset - start:r.offset - start + r.length]
                if len(blob) != r.length or hash_bytes(blob) != r.oid:
                    failures[r.oid] = CorruptDataError(
                        pack_key(pack_id), f"blob {r.oid} does not match its id",
                        hint="run `mlv fsck --remote`")
                    continue
                use(r.oid, blob if views else blob.tobytes())

    def _rebuild(self, oid: str, temp: str, view: IndexView, expected: int | None) -> None:
        """Write the big file `oid` to `temp` from its chunks: those the cache holds in
        an earlier version (known from its recipe) are read locally, the rest from the
        remote's packs, several ranges at once; each written where the recipe puts it,
        as it arrives (a big file is never held in memory). The caller verifies the
        whole file's hash. A recipe whose size is not the `expected` one (the pointer's)
        is refused before anything is written: one chunk repeated could otherwise fill
        the disk."""
        recipe = self.recipe(oid, expected)
        places: dict[str, list[int]] = {}
        offset = 0
        for cid, length in recipe.chunks:
            places.setdefault(cid, []).append(offset)
            offset += length
        fsio.makedirs(os.path.dirname(temp))
        with open(temp, "wb") as fobj:
            fobj.truncate(recipe.size)
            fd = fobj.fileno()

            def put(cid: str, data: bytes | memoryview) -> None:
                for at in places[cid]:  # only read here: safe from many threads
                    _pwrite_all(fd, data, at)

            for cid, data in self._local_chunks(set(places)):
                put(cid, data)
                del places[cid]
            records = []
            for cid in sorted(places):
                rec = view.lookup(cid)
                if rec is None:
                    raise FileNotFoundError(f"chunk {cid} of {oid} is not on the remote")
                records.append(rec)
            failures: Failures = {}
            self._read_blobs(records, put, failures, views=True)
            if failures:
                raise next(iter(failures.values()))

    def recipe(self, oid: str, expected: int | None = None, keep: bool = True) -> Recipe:
        """The recipe of the big file `oid`, read from the remote (at most RCP_SIZE_MAX
        bytes of it) and checked; one whose size is not the `expected` one (the
        pointer's) is refused (CorruptDataError). FileNotFoundError when there is none.
        With `keep`, a copy is kept locally (see `_keep_recipe`): for a file that enters
        the cache."""
        raw = get_capped(self.inner, recipe_key(oid), RCP_SIZE_MAX)
        self._moved(len(raw))
        recipe = parse_recipe(raw, oid, self.marker.chunker.max, self.marker.chunker.min)
        if expected is not None and recipe.size != expected:
            raise CorruptDataError(recipe_key(oid), f"it makes a file of {recipe.size} "
                                   f"bytes, where {expected} are expected",
                                   hint="run `mlv fsck --remote`")
        if keep:
            self._keep_recipe(oid, raw)
        return recipe

    def _keep_recipe(self, oid: str, raw: bytes) -> None:
        """Recipes are kept in the cache folder (they never change), so that a later
        version of the file can reuse the chunks of this one."""
        if self.index_dir is None:
            return
        path = os.path.join(self.index_dir, "recipes", oid)
        if not os.path.exists(path):
            fsio.makedirs(os.path.dirname(path))
            fsio.atomic_write(path, raw)

    def _local_chunks(self, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
        """(id, verified bytes) of the `wanted` chunks found in the cache's copies of
        files whose recipes are kept locally."""
        if self.index_dir is None or self.local is None or not wanted:
            return
        folder = os.path.join(self.index_dir, "recipes")
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for name in names:
            path = self.local(name) if is_oid(name) else None
            recipe = self.local_recipe(name) if path is not None else None
            if path is None or recipe is None:
                continue  # a damaged local copy of a recipe is only a missed shortcut
            offset = 0
            try:
                fobj = fsio.open_object(path)
            except (OSError, MlvError):
                continue  # not a regular file: never followed, only a missed shortcut
            with fobj:
                for cid, length in recipe.chunks:
                    if cid in wanted:
                        fobj.seek(offset)
                        data = fobj.read(length)
                        if hash_bytes(data) == cid:
                            wanted.discard(cid)
                            yield cid, data
                    offset += length
            if not wanted:
                return

    # ---- the rest -----------------------------------------------------------------------

    def delete(self, oids: list[str]) -> Failures:
        raise RemoteError(f"remote '{self.name}' uses format 2: objects are deleted by "
                          "`mlv gc --cloud`'s two phases, not one by one")

    def open(self, oid: str) -> Any:
        view = self.index()
        rec = view.lookup(oid)
        if rec is not None:
            failures: Failures = {}
            for _, data in self._blobs([rec], failures):
                return io.BytesIO(data)
            raise next(iter(failures.values()))
        return self.inner.open(oid)

    def with_namespace(self, namespace: str) -> Remote:
        return self.inner.with_namespace(namespace)  # the run-cache stays loose

    # keys: those of the remote underneath
    def put_key(self, key: str, data: bytes) -> None:
        self.inner.put_key(key, data)

    def put_key_file(self, key: str, path: str, progress: Progress | None = None) -> None:
        self.inner.put_key_file(key, path, progress)

    def get_key(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return self.inner.get_key(key, start, end)

    def list_keys(self, prefix: str) -> dict[str, int]:
        return self.inner.list_keys(prefix)

    def delete_keys(self, keys: list[str]) -> Failures:
        return self.inner.delete_keys(keys)

    def keys_exist(self, keys: list[str]) -> set[str]:
        return self.inner.keys_exist(keys)

    # for `gc --cloud` (mlv/remote/packgc.py)
    def segment_bytes(self, seg_id: str) -> bytes:
        """The bytes of index segment `seg_id`, checked against its name (the local copy
        when it has one, else read from the remote and kept)."""
        return self._segment(segment_key(seg_id), seg_id)

    def read_blobs(self, records: list[Record], failures: Failures
                   ) -> Iterator[tuple[str, bytes]]:
        """(id, verified bytes) of each record; a blob that cannot be read or does not
        match its id goes into `failures` instead."""
        return self._blobs(records, failures)

    def forget_index(self) -> None:
        """Read the index and the list of recipes from the remote again when next used."""
        self._view = None
        self._recipes = None

    def local_recipe(self, oid: str, size: int | None = None) -> Recipe | None:
        """The local copy of recipe `oid` (kept by an earlier push or pull), parsed and
        checked, and of `size` bytes when that is given; None when there is none or it
        is damaged (a missed shortcut: the caller reads the remote's)."""
        if self.index_dir is None:
            return None
        path = os.path.join(self.index_dir, "recipes", oid)
        try:
            raw = fsio.read_regular(path, RCP_SIZE_MAX, path, RemoteError)
            if size is not None and len(raw) != size:
                return None
            return parse_recipe(raw, oid, self.marker.chunker.max, self.marker.chunker.min)
        except (OSError, MlvError):
            return None

    def keep_recipe(self, oid: str, raw: bytes) -> None:
        """Keep a copy of recipe `oid` locally, in place of any copy kept before (the
        caller has checked it)."""
        if self.index_dir is not None:
            path = os.path.join(self.index_dir, "recipes", oid)
            fsio.makedirs(os.path.dirname(path))
            fsio.atomic_write(path, raw)


def _ranges(recs: list[Record]) -> Iterator[tuple[int, int, list[Record]]]:
    """Merged byte ranges [start, end) covering `recs` (sorted by offset): neighbours
    closer than RANGE_GAP are read together."""
    group = [recs[0]]
    start, end = recs[0].offset, recs[0].offset + recs[0].length
    for r in recs[1:]:
        if r.offset - end <= RANGE_GAP:
            group.append(r)
            end = max(end, r.offset + r.length)
            continue
        yield start, end, group
        group, start, end = [r], r.offset, r.offset + r.length
    yield start, end, group


def _bounded(tasks: Iterable[T], run: Callable[[T], R], cost: Callable[[T], int],
             jobs: int, budget: int) -> Iterator[tuple[T, R]]:
    """(task, run(task)) of each task, in the order they finish, running in up to `jobs`
    threads. A task is taken from `tasks` only when the costs (bytes) of those running
    stay within `budget` with it (one always runs), so a lazy `tasks` (packs being built)
    waits for room, and memory stays bounded. What `run` raises is raised here, after
    the tasks already running have finished (those not yet started are dropped)."""
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    running: dict[Future[R], tuple[T, int]] = {}
    held = 0

    def finished(block: bool) -> Iterator[tuple[T, R]]:
        nonlocal held
        if block:
            done = wait(running, return_when=FIRST_COMPLETED).done
        else:
            done = {f for f in running if f.done()}
        for fut in sorted(done, key=id):
            task, size = running.pop(fut)
            held -= size
            yield task, fut.result()

    try:
        for task in tasks:
            size = cost(task)
            while running and (held + size > budget or len(running) >= max(1, jobs)):
                yield from finished(block=True)
            running[pool.submit(run, task)] = (task, size)
            held += size
            yield from finished(block=False)
        while running:
            yield from finished(block=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pwrite_all(fd: int, data: bytes | memoryview, at: int) -> None:
    """Write all of `data` at offset `at` of the open file `fd` (safe from threads)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, at)
        view, at = view[done:], at + done


def open_format(inner: Remote, index_dir: str | None = None,
                local: Callable[[str], str | None] | None = None) -> Remote:
    """The remote as its marker says: a PackedRemote for format 2, `inner` itself for a
    remote without a marker (format 1). Only a marker that is not there means format 1:
    one that cannot be read (no access, a network error, not a file) is refused
    (MarkerUnreadableError), since a push to a format-2 remote taken for format 1 would
    store its files in the wrong layout; one of a format mlv does not know is refused
    with an error that says to upgrade mlv."""
    from mlv.remote.packs import MARKER_KEY, MARKER_MAX, parse_marker

    try:
        data = get_capped(inner, MARKER_KEY, MARKER_MAX)
    except FileNotFoundError:
        return inner  # no marker: format 1
    except RootMissingError:
        # no folder or bucket at all, so no marker either: the command's own first
        # request reports it, as it always has (a push never creates the root)
        return inner
    except (OSError, MlvError) as exc:
        raise MarkerUnreadableError(inner, MARKER_KEY, exc) from exc
    return PackedRemote(inner, parse_marker(data), index_dir, local)


class MarkerUnreadableError(RemoteError):
    """The remote's format marker is there but cannot be read."""

    def __init__(self, remote: Remote, key: str, exc: BaseException) -> None:
        where = f"remote '{remote.name}' ({remote.shown_url})"
        if isinstance(exc, CorruptDataError):
            why = exc.problem  # e.g. "it is a directory, not a regular file"
        elif isinstance(exc, MlvError):
            why = exc.message
        else:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        for prefix in (f"{where}: ", f"remote '{remote.name}': "):
            why = why.removeprefix(prefix)
        hint = exc.hint if isinstance(exc, RemoteError) and exc.hint else (
            f"mlv must read {key} (at the remote's root) to know how the remote stores "
            "files, so it stops rather than guess; make that file readable again (check "
            "access rights, the network, or a storage class that archived it), then run "
            "the command again")
        super().__init__(remote.hide(f"{where}: cannot read its format marker {key}: {why}"),
                         hint=remote.hide(hint))


def make_format2(inner: Remote, marker: Marker | None = None,
                 index_dir: str | None = None,
                 local: Callable[[str], str | None] | None = None) -> PackedRemote:
    """Write the format-2 marker at the remote's root; objects already there (loose)
    stay readable."""
    from mlv.remote.packs import MARKER_KEY, marker_bytes

    marker = marker or Marker()
    inner.put_key(MARKER_KEY, marker_bytes(marker))
    return PackedRemote(inner, marker, index_dir, local)
