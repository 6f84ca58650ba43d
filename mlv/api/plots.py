"""`mlv plots show` and `mlv plots diff`: the plots mlv.yaml declares (stage `plots:`
outputs and top-level `plots:`), drawn as one SVG per plot with every revision overlaid,
images copied, and an index.html that shows them all with no network access.

Revisions are read through the index (git objects, and the cache by the hash a revision
records), never by checking out. A plot that cannot be drawn at some revision (a
malformed file, a missing field, data not in the cache) gets a note and is drawn from
the revisions that have data."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from mlv import fsio, paths
from mlv.api.show import WORKSPACE, _cached_bytes, _NotCached
from mlv.errors import MlvError
from mlv.index import PLOT, Index
from mlv.pipeline.stage import PlotDef
from mlv.plots import svg, table
from mlv.plots.table import PlotError
from mlv.repo import Repo

DEFAULT_OUT = "mlv_plots"
INDEX = "index.html"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 100


@dataclass
class RenderedPlot:
    """One file written: a plot's SVG, or an image copied (one per revision)."""

    id: str
    file: str  # relative to the output folder
    revs: list[str]  # the revisions (labels) whose data it shows


@dataclass
class Rendered:
    plots: list[RenderedPlot] = field(default_factory=list)
    index: str = ""  # path of index.html
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why

    @property
    def ok(self) -> bool:
        """True when at least one plot was drawn."""
        return bool(self.plots)


@dataclass
class Spec(PlotDef):
    """How to draw one plot, from a stage's plot output or a top-level entry: a
    top-level plot's fields, and whether a CSV/TSV file has a header row."""

    header: bool = True


def label_of(rev: str | None) -> str:
    return WORKSPACE if rev is None else rev


def diff_revs(revs: list[str]) -> list[str | None]:
    """What `mlv plots diff` compares: HEAD and the workspace with no revision, one
    revision and the workspace, or the revisions given."""
    if not revs:
        return ["HEAD", None]
    if len(revs) == 1:
        return [revs[0], None]
    return list(dict.fromkeys(revs))


def specs(idx: Index) -> list[Spec]:
    """The plots one tree declares, by id: stage plot outputs, then top-level plots (a
    top-level entry for a stage's plot file fills in what the stage leaves unset)."""
    found: dict[str, Spec] = {}
    for stage in idx.stages:
        for out in stage.outs:
            if out.kind != PLOT:
                continue
            spec = Spec(out.path, [out.path])
            p = out.plot
            if p is not None:
                ys = [p.y] if isinstance(p.y, str) else list(p.y or ())
                spec = Spec(out.path, [out.path], {out.path: p.x} if p.x else {},
                            {out.path: ys} if ys else {}, p.title, p.template, p.x_label,
                            p.y_label, header=p.header is not False)
            found[out.path] = spec
    for plot in idx.project.plots if idx.project else []:
        spec = Spec(plot.id, list(plot.files), dict(plot.x),
                    {f: list(v) for f, v in plot.y.items()}, plot.title, plot.template,
                    plot.x_label, plot.y_label)
        old = found.get(plot.id)
        if old is not None:
            spec = Spec(spec.id, spec.files, spec.x or old.x, spec.y or old.y,
                        spec.title or old.title, spec.template or old.template,
                        spec.x_label or old.x_label, spec.y_label or old.y_label,
                        header=old.header)
        found[plot.id] = spec
    return list(found.values())


def render(repo: Repo, revs: list[str | None], out_dir: str,
           targets: list[str] | None = None) -> Rendered:
    """Draw the plots declared at `revs` (None: the workspace) into `out_dir`: one SVG
    per data plot with every revision overlaid, images copied once per revision, and
    index.html. `targets` are plot ids or plot files (relative to the current folder);
    an unknown one raises PlotError, and so does a repository that declares no plots."""
    trees = [(label_of(rev), Index.load(repo, rev)) for rev in revs]
    chosen = _union([specs(idx) for _, idx in trees])
    if not chosen:
        raise PlotError("no plots are declared in mlv.yaml",
                        hint="declare them under a stage's `plots:` (outputs), or in a "
                             "top-level `plots:` list; see docs/pipelines.md")
    if targets:
        chosen = _pick(chosen, targets, repo.root)
    refused = paths.target_problem(repo.root, out_dir, folder=True)
    if refused:
        raise PlotError(f"cannot write the plots to {out_dir}: {refused}",
                        hint="choose another folder with -o DIR")
    fsio.makedirs(out_dir)
    result = Rendered()
    names = _Names()
    for spec in chosen:
        _draw(repo, spec, trees, out_dir, names, result)
    result.index = os.path.join(out_dir, INDEX)
    fsio.atomic_write(result.index, _index_html([label for label, _ in trees], result))
    return result


def _union(per_tree: list[list[Spec]]) -> list[Spec]:
    """Every plot any tree declares, in order; the last tree's definition wins."""
    found: dict[str, Spec] = {}
    for tree_specs in per_tree:
        for spec in tree_specs:
            found[spec.id] = spec
    return list(found.values())


def _pick(chosen: list[Spec], targets: list[str], root: str) -> list[Spec]:
    picked: list[Spec] = []
    for target in targets:
        rel = _repo_rel(target, root)
        hits = [s for s in chosen if s.id in (target, rel)]
        hits = hits or [replace(s, files=[rel]) for s in chosen if rel in s.files]
        if not hits:
            raise PlotError(f"{target} is not a plot: no plot of mlv.yaml has this id or "
                            "file",
                            hint="run `mlv plots show` with no target to draw every plot")
        picked += [h for h in hits if h not in picked]
    return picked


def _repo_rel(target: str, root: str) -> str:
    path = os.path.normpath(os.path.join(os.getcwd(), target))
    if path.startswith(root + os.sep):
        return os.path.relpath(path, root).replace(os.sep, "/")
    return target


# ---- one plot ---------------------------------------------------------------------------

def _draw(repo: Repo, spec: Spec, trees: list[tuple[str, Index]], out_dir: str,
          names: _Names, result: Rendered) -> None:
    data_files = [f for f in spec.files if not table.is_image(f)]
    if data_files:
        _draw_data(repo, replace(spec, files=data_files), trees, out_dir, names, result)
    for file in (f for f in spec.files if table.is_image(f)):
        for label, idx in trees:
            try:
                raw = _read(repo, idx, file)
            except PlotError as exc:
                result.notes.append(f"{spec.id}: {exc.message}")
                continue
            except _Absent as exc:
                result.notes.append(f"{spec.id}: {file} {exc} at {label}")
                continue
            stem, ext = os.path.splitext(file)
            name = names.take(stem + (f"_{label}" if len(trees) > 1 else ""), ext.lower())
            fsio.atomic_write(os.path.join(out_dir, name), raw)
            result.plots.append(RenderedPlot(spec.id, name, [label]))


def _draw_data(repo: Repo, spec: Spec, trees: list[tuple[str, Index]], out_dir: str,
               names: _Names, result: Rendered) -> None:
    template = spec.template or "linear"
    series: list[svg.Series] = []
    had: list[str] = []
    x_names: list[str] = []
    y_names: list[str] = []
    for label, idx in trees:
        for file in spec.files:
            try:
                found, x, ys = _series(repo, idx, spec, file, template)
            except PlotError as exc:
                result.notes.append(f"{spec.id}: {exc.message}" + (
                    f" (at {label})" if len(trees) > 1 else ""))
                continue
            except _Absent as exc:
                result.notes.append(f"{spec.id}: {file} {exc} at {label}")
                continue
            prefix = f"{label}: " if len(trees) > 1 else ""
            for s in found:
                s.label = prefix + s.label
            series += found
            had += [label] if label not in had else []
            x_names += [x] if x not in x_names else []
            y_names += [y for y in ys if y not in y_names]
    if not series:
        return
    if sum(len(s.points) for s in series) > table.MAX_POINTS:
        result.notes.append(f"{spec.id}: more than {table.MAX_POINTS:,} points, the most mlv "
                            "draws in one plot; not drawn")
        return
    chart = svg.Chart(spec.title or spec.id, template, spec.x_label or ", ".join(x_names),
                      spec.y_label or ", ".join(y_names[:3]), series)
    try:
        data = svg.render(chart)
    except PlotError as exc:
        result.notes.append(f"{spec.id}: {exc.message}")
        return
    name = names.take(spec.id, ".svg")
    fsio.atomic_write(os.path.join(out_dir, name), data)
    result.plots.append(RenderedPlot(spec.id, name, had))


STEP = "step"  # the x of a plot with one column: the row's number


def _series(repo: Repo, idx: Index, spec: Spec, file: str,
            template: str) -> tuple[list[svg.Series], str, list[str]]:
    """One file's series at one tree, with the x and y field names used."""
    data = table.parse(_read(repo, idx, file), file, spec.header)
    x, ys = _fields(data, spec, file)
    xy = not template.startswith(("confusion", "bar_horizontal"))
    found = []
    for y in ys:
        points: list[tuple[table.Value, table.Value]] = []
        for i, row in enumerate(data.rows):
            xv = float(i) if x == STEP else row.get(x)
            yv = row.get(y)
            if xv is None or yv is None or (xy and not isinstance(yv, float)):
                continue
            points.append((xv, yv))
        if not points:
            raise PlotError(f"{file}: field {y!r} has no " + ("numbers" if xy else "values"),
                            hint=f"check {file}, or the plot's `y:` in mlv.yaml")
        found.append(svg.Series(f"{file}: {y}", points))
    return found, x, ys


def _fields(data: table.Table, spec: Spec, file: str) -> tuple[str, list[str]]:
    """The x field and y fields: as declared, else the first column is x and the others
    are y (one column alone is y, over the row number)."""
    cols = data.columns
    if not cols or not data.rows:
        raise PlotError(f"{file} holds no data", hint=f"check {file}")
    x, ys = spec.x.get(file), list(spec.y.get(file, []))
    if x is None:
        rest = [c for c in cols if c not in ys]
        x = rest[0] if rest and (ys or len(cols) > 1) else STEP
    ys = ys or [c for c in cols if c != x]
    for name in ([x] if x != STEP else []) + ys:
        if name not in cols:
            shown = ", ".join(cols[:10]) + (", …" if len(cols) > 10 else "")
            raise PlotError(f"{file} has no field {name!r} (its fields: {shown})",
                            hint=f"fix the plot's x/y in mlv.yaml, or {file}")
    return x, ys


class _Absent(Exception):
    """A plot file a tree does not have (the text says why: `does not exist`, …)."""


def _read(repo: Repo, idx: Index, rel: str) -> bytes:
    """A plot file's bytes in one tree: a cached output from the cache by the hash the
    tree records, anything else from git or the workspace."""
    at = idx.item_at(rel)
    try:
        if at is not None and not idx.tree.on_disk:
            return _cached_bytes(repo, at[0].oid, at[1], rel)
        return idx.tree.read(rel, table.MAX_BYTES, rel, PlotError)
    except MlvError as exc:  # too large, unreadable: a note, as for a malformed file
        raise PlotError(exc.message, exc.hint) from None
    except FileNotFoundError:
        raise _Absent("does not exist") from None
    except _NotCached:
        raise _Absent("is not in the cache (`mlv fetch --all-branches` or `--all-tags` "
                      "gets it)") from None


# ---- files ------------------------------------------------------------------------------

class _Names:
    """File names for the output folder: from plot ids and files, with nothing but
    letters, digits, `.`, `_` and `-`, never hidden, and each used once."""

    def __init__(self) -> None:
        self.used = {INDEX}
        self.last: dict[str, int] = {}  # the last number tried per name: no rescan

    def take(self, base: str, ext: str) -> str:
        stem = _UNSAFE.sub("_", base).strip("._-")[:_MAX_NAME] or "plot"
        key = (stem + ext).lower()
        n = self.last.get(key, 1)
        name = stem + ext if n == 1 else f"{stem}-{n}{ext}"
        while name.lower() in self.used:
            n += 1
            name = f"{stem}-{n}{ext}"
        self.last[key] = n
        self.used.add(name.lower())
        return name


def _index_html(labels: list[str], result: Rendered) -> bytes:
    esc = svg.esc
    heading = " vs ".join(labels)
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>mlv plots: {esc(heading)}</title>",
             "<style>body{font-family:sans-serif;margin:24px}"
             "figure{display:inline-block;margin:12px;vertical-align:top}"
             "img{max-width:100%;border:1px solid #ddd}"
             "figcaption{font-size:13px;color:#333}</style>",
             "</head>", "<body>", f"<h1>mlv plots: {esc(heading)}</h1>"]
    for plot in result.plots:
        caption = f"{plot.id} ({', '.join(plot.revs)})"
        lines.append(f'<figure><img src="{esc(plot.file)}" alt="{esc(plot.id)}">'
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    if result.notes:
        lines.append("<h2>Notes</h2>")
        lines.append("<ul>")
        lines += [f"<li>{esc(note)}</li>" for note in result.notes]
        lines.append("</ul>")
    lines += ["</body>", "</html>"]
    return ("\n".join(lines) + "\n").encode("utf-8")
