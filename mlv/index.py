"""What is tracked in a tree (the workspace, or a git revision read from git objects):
pointer outs and cached stage outputs as one map path -> item, the stages with their
lock entries, and the params and metrics files. Every command that takes targets
resolves them here.

Read-only: nothing here writes the workspace, the cache or git."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from mlv import fsio, manifest, pointer
from mlv.errors import PathError
from mlv.manifest import Entry
from mlv.pointer import SUFFIX, Out, Pointer
from mlv.tree import GitTree, Tree, WorkspaceTree

if TYPE_CHECKING:
    from mlv.odb import ObjectStore
    from mlv.pipeline.lockfile import LockEntry
    from mlv.pipeline.stage import Project, Stage
    from mlv.repo import Repo

POINTER, OUT, METRIC, PLOT = "pointer", "out", "metric", "plot"


class Item(NamedTuple):
    """One tracked path: a pointer's out, or a cached output of a stage. (Named tuples,
    not dataclasses, here: every command imports this module, and a dataclass costs a
    millisecond of start-up each.)"""

    path: str  # repo-relative, POSIX
    oid: str | None  # None: a stage output that mlv.lock does not record yet
    size: int | None
    kind: str  # POINTER, OUT, METRIC or PLOT
    nfiles: int | None = None
    exec: bool = False
    pointer: str | None = None  # the `.mlv` file (repo-relative) of a POINTER item
    stage: str | None = None  # the stage that writes it
    push: bool = True  # `push: false` outputs stay in the cache
    remote: str | None = None  # `remote: NAME`: pushed to and fetched from that remote

    @property
    def is_dir(self) -> bool:
        return bool(self.oid and self.oid.endswith(".dir"))

    @property
    def source(self) -> str:
        """Where it is recorded: its pointer file, or mlv.lock."""
        return self.pointer or "mlv.lock"

    def as_out(self) -> Out:
        assert self.oid is not None and self.size is not None
        return Out(os.path.basename(self.path), self.oid, self.size, self.nfiles, self.exec)


class Target(NamedTuple):
    """What a command-line target resolved to: an item, or a path inside a tracked folder
    (`sub`, relative to the item)."""

    item: Item
    sub: str | None = None

    @property
    def path(self) -> str:
        return self.item.path + "/" + self.sub if self.sub else self.item.path


class Index:
    """What one tree tracks (see the module's docstring)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.items: dict[str, Item] = {}
        self.pointers: dict[str, Pointer] = {}  # repo-relative file -> pointer
        self.stages: list[Stage] = []
        self.lock: dict[str, LockEntry] = {}
        self.has_pipeline = False
        self.metrics_files: list[str] = []  # every metrics file, in order
        self.plots_files: list[str] = []
        self.params_files: list[str] = []
        self.claims: list[tuple[str, str]] = []  # (path, where it is recorded)
        self.project: Project | None = None  # all of mlv.yaml (top-level metrics, plots…)

    # ---- building -------------------------------------------------------------------

    @classmethod
    def load(cls, repo: Repo, rev: str | None = None) -> Index:
        """The index of the workspace (`rev` None) or of a git revision."""
        if rev is None:
            tree: Tree = WorkspaceTree(repo.root, os.path.join(repo.cache_dir, "xxh128"))
        else:
            tree = GitTree(repo.root, rev)
        return cls.of_tree(tree, repo.cache_dir)

    @classmethod
    def of_tree(cls, tree: Tree, cache_dir: str | None = None) -> Index:
        index = cls(tree)
        index._read_pointers(cache_dir)
        index._read_pipeline()
        return index

    def _read_pointers(self, cache_dir: str | None) -> None:
        root = self.tree.root
        for rel in self.tree.pointer_files():
            file = os.path.join(root, *rel.split("/"))
            if self.tree.on_disk:
                ptr = pointer.load(file, root, rel, cache_root=cache_dir)
            else:
                raw = self.tree.read(rel, fsio.POINTER_LIMIT, rel, PathError)
                text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
                ptr = pointer.parse(text, file, root, rel, on_disk=False)
            self.pointers[rel] = ptr
            folder = rel.rpartition("/")[0]
            for out in ptr.outs:
                path = f"{folder}/{out.path}" if folder else out.path
                path = os.path.normpath(path).replace(os.sep, "/")
                self._put(Item(path, out.oid, out.size, POINTER, out.nfiles, out.exec,
                               pointer=rel))

    def _read_pipeline(self) -> None:
        from mlv.pipeline import lockfile
        from mlv.pipeline.stage import PIPELINE_FILE, load_project

        self.has_pipeline = self.tree.exists(PIPELINE_FILE)
        if not self.has_pipeline:
            return
        self.project = load_project(self.tree.root, self.tree)
        self.stages = self.project.stages
        self.lock = lockfile.read(self.tree.root, self.tree)
        for stage in self.stages:
            entry = self.lock.get(stage.name)
            for out in stage.outs:
                if out.kind == METRIC:
                    self.metrics_files.append(out.path)
                elif out.kind == PLOT:
                    self.plots_files.append(out.path)
                if not out.cache:
                    continue
                hashed = entry.outs.get(out.path) if entry else None
                self._put(Item(out.path, hashed.oid if hashed else None,
                               hashed.size if hashed else None, out.kind,
                               hashed.nfiles if hashed else None, stage=stage.name,
                               push=out.push, remote=out.remote))
            for file in stage.params:
                if file not in self.params_files:
                    self.params_files.append(file)
        # top-level metrics and plots: files that stages (or people) write, often inside
        # a cached output folder; they are not outputs of their own
        for file in self.project.metrics:
            if file not in self.metrics_files:
                self.metrics_files.append(file)
        for plot in self.project.plots:
            self.plots_files += [f for f in plot.files if f not in self.plots_files]

    def _put(self, item: Item) -> None:
        # Two records of one path: the later (the stage's) is kept here, and
        # `check_claims` refuses the pair before anything is written.
        self.claims.append((item.path, item.source))
        self.items[item.path] = item

    def check_claims(self) -> None:
        """Refuse two records of one path, or a tracked path inside another (`lnk` and
        `lnk/hooks/x`: writing the first could put a symlink where the second's folders
        go)."""
        claims = sorted(self.claims)
        for (outer, src), (inner, src2) in zip(claims, claims[1:]):
            if inner == outer:
                raise PathError(f"{inner} is tracked twice, by {src} and by {src2}",
                                hint="remove one of the two (`mlv remove`, or the stage's "
                                     "output in mlv.yaml), then run the command again")
        # not only neighbours: `d`, `d-y`, `d/x` sort in this order
        where = dict(claims)
        for inner, src2 in claims:
            outer = inner.rpartition("/")[0]
            while outer:
                if outer in where:
                    raise PathError(f"{inner} (from {src2}) is inside {outer} (from "
                                    f"{where[outer]}); a tracked path cannot hold another",
                                    hint="remove one of the two pointers or stage outputs "
                                         "(`mlv remove`), then run the command again")
                outer = outer.rpartition("/")[0]

    # ---- reading --------------------------------------------------------------------

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def outs_of(self, name: str) -> list[Item]:
        return [i for i in self.items.values() if i.stage == name]

    def recorded(self) -> list[Item]:
        """Every item with a recorded hash, in path order."""
        return [self.items[p] for p in sorted(self.items) if self.items[p].oid is not None]

    def item_at(self, rel: str) -> tuple[Item, str | None] | None:
        """The item at `rel`, or the tracked folder `rel` lies inside (with the rest)."""
        if rel in self.items:
            return self.items[rel], None
        parent, _, rest = rel.rpartition("/")
        tail = [rest]
        while parent:
            if parent in self.items:
                return self.items[parent], "/".join(reversed(tail))
            parent, _, rest = parent.rpartition("/")
            tail.append(rest)
        return None

    def resolve(self, targets: Iterable[str], cwd: str | None = None) -> list[Target]:
        """Targets as a user gives them: a tracked path, a path inside a tracked folder,
        a pointer file, a stage output, a stage name (a `foreach` group name too), or a
        folder holding tracked paths. Paths are relative to `cwd` (default: the current
        folder). Every one is resolved before anything runs; an unknown one raises."""
        found: dict[tuple[str, str | None], Target] = {}
        for target in targets:
            for t in self._resolve_one(target, cwd):
                found.setdefault((t.item.path, t.sub), t)
        return list(found.values())

    def _resolve_one(self, target: str, cwd: str | None) -> list[Target]:
        rel = self._rel(target, cwd)
        if rel is not None:
            if rel in self.pointers:
                return [Target(self.items.get(self._out_rel(rel, o.path))
                               or self._pointer_item(rel, o))
                        for o in self.pointers[rel].outs]
            at = self.item_at(rel)
            if at is not None:
                return [Target(*at)]
            # a folder holding tracked paths: the ones recorded (a stage that never ran
            # has nothing to fetch or check out yet)
            under = [Target(i) for p, i in sorted(self.items.items())
                     if (rel == "." or p.startswith(rel + "/")) and i.oid is not None]
            if under:
                return under
        stages = [n for n in self.stage_names()
                  if n == target or n.startswith(target + "@")]
        if stages:
            return [Target(i) for n in stages for i in self.outs_of(n)]
        raise PathError(
            f"{target} is not tracked by mlv: no pointer ({target.rstrip('/')}{SUFFIX}), no "
            "stage output and no stage of that name",
            hint="run `mlv add` to track a file or folder; `mlv status` and `mlv stage "
                 "list` show what is tracked")

    def _pointer_item(self, rel: str, out: Out) -> Item:
        return Item(self._out_rel(rel, out.path), out.oid, out.size, POINTER, out.nfiles,
                    out.exec, pointer=rel)

    @staticmethod
    def _out_rel(pointer_rel: str, out_path: str) -> str:
        folder = pointer_rel.rpartition("/")[0]
        joined = f"{folder}/{out_path}" if folder else out_path
        return os.path.normpath(joined).replace(os.sep, "/")

    def _rel(self, target: str, cwd: str | None) -> str | None:
        """A target as a repo-relative POSIX path, or None when it lies outside."""
        root = self.tree.root
        path = os.path.normpath(os.path.join(cwd or os.getcwd(), target))
        real_parent = os.path.realpath(os.path.dirname(path))
        path = os.path.join(real_parent, os.path.basename(path))
        if path != root and not path.startswith(root + os.sep):
            return None
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        return rel

    # ---- as pointers: what checkout, status and the transfers walk ---------------------

    def pointer_for(self, item: Item) -> Pointer:
        """The item as a one-out pointer beside its path (the out's workspace path is
        `pointer_for(item).out_path(out)`)."""
        path = os.path.join(self.tree.root, *item.path.split("/"))
        file = os.path.join(self.tree.root, *item.pointer.split("/")) if item.pointer \
            else path
        out = item.as_out()
        rel_out = os.path.relpath(path, os.path.dirname(file)).replace(os.sep, "/")
        return Pointer(file, (replace(out, path=rel_out),))


def narrow(odb: ObjectStore, target: Target,
           entries: list[Entry] | None = None) -> Item | None:
    """A target inside a tracked folder as an item of its own: a file's entry, or a
    sub-folder whose manifest is built from the folder's and stored in the cache (an
    object like any other). None when the folder's manifest is not available, or the
    path is not in it."""
    item, sub = target.item, target.sub
    if not sub:
        return item
    if not item.is_dir:  # a file holds no other file
        return None
    if entries is None:
        try:
            assert item.oid is not None
            entries = manifest.loads(odb.read_bytes(item.oid, manifest.MAX_BYTES + 1),
                                     item.oid)
        except FileNotFoundError:
            return None
    path = f"{item.path}/{sub}"
    for e in entries:
        if e.path == sub:
            return item._replace(path=path, oid=e.oid, size=e.size, nfiles=None, exec=e.exec,
                           pointer=None)
    inside = [Entry(e.path[len(sub) + 1:], e.oid, e.size, e.exec) for e in entries
              if e.path.startswith(sub + "/")]
    if not inside:
        return None
    data = manifest.dumps(inside)
    oid = odb.add_bytes(data, ".dir")
    return item._replace(path=path, oid=oid, size=sum(e.size for e in inside),
                   nfiles=len(inside), exec=False, pointer=None)
