"""Stages as written in `mlv.yaml`: parsing, validation, `foreach`/`do`, `matrix`, `vars`
and `${…}`; and the rest of the file (DVC 3's dvc.yaml syntax): top-level `metrics`,
`plots`, `params` and `artifacts`.

Every path is stored relative to the repository root, POSIX-style, after `wdir`
is applied; a path that would leave the repository is refused.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlv import fsio, paths, yamlio
from mlv.errors import MlvError

if TYPE_CHECKING:
    from mlv.tree import Tree

PIPELINE_FILE = "mlv.yaml"
DEFAULT_PARAMS = "params.yaml"
TOP_KEYS = {"stages", "vars", "metrics", "plots", "params", "artifacts", "gates"}
STAGE_KEYS = {"cmd", "wdir", "deps", "params", "outs", "metrics", "plots", "always_changed",
              "frozen", "desc", "meta", "vars", "foreach", "do", "matrix"}
OUT_FLAGS = {"cache", "persist", "push"}  # options that take true or false
OUT_OPTIONS = OUT_FLAGS | {"remote", "desc", "type", "labels", "meta"}
PLOT_OPTIONS = {"x", "y", "title", "template", "x_label", "y_label", "header"}
TOP_PLOT_OPTIONS = PLOT_OPTIONS - {"header"}
ARTIFACT_KEYS = {"path", "type", "desc", "labels", "meta"}
# keys of DVC's that mlv knows and cannot honour: what the error says about them
DVC_ONLY = {"checkpoint": "DVC 2 checkpoints", "live": "DVC 2 live outputs",
            "datasets": "DVC datasets", "md5": "DVC hashes", "isexec": "DVC hashes"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_ARTIFACT_NAME = re.compile(r"[a-z0-9]([a-z0-9/-]*[a-z0-9])?\Z")  # DVC's rule
_VAR = re.compile(r"\$\{\s*([^}]+?)\s*\}")
_STAGE_VARS = "\0vars"  # key of a stage's own `vars:` in the local scope
# A clone's mlv.yaml is parsed by read-only commands too: `matrix:` multiplies (ten keys
# of ten values are 10**10 stages) and `${…}` repeats a value, so both are bounded.
MAX_STAGES = 10_000
MAX_INTERPOLATED = fsio.PIPELINE_LIMIT  # characters that ${…} may produce in all


class PipelineError(MlvError):
    """A problem in mlv.yaml (or a params file it reads)."""


@dataclass(frozen=True)
class PlotProps:
    """How a plot output is drawn (kept for a plots renderer; mlv records them)."""
    x: str | None = None
    y: str | tuple[str, ...] | None = None
    title: str | None = None
    template: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    header: bool | None = None


@dataclass(frozen=True)
class Output:
    path: str  # repo-relative, POSIX
    kind: str  # "out", "metric" or "plot"
    cache: bool = True
    persist: bool = False
    push: bool = True  # False: `mlv push` leaves it out (`push: false`)
    remote: str | None = None  # the remote it is pushed to and pulled from (`remote: NAME`)
    desc: str | None = None
    type: str | None = None
    labels: tuple[str, ...] = ()
    meta: Any = field(default=None, compare=False, hash=False)  # as written
    plot: PlotProps | None = None  # plots only: x, y, title, … when given


@dataclass
class Stage:
    name: str
    cmd: str
    wdir: str = "."  # repo-relative
    deps: list[str] = field(default_factory=list)  # repo-relative
    # params file -> keys. An empty list is the whole file (`- params.yaml:`): the stage
    # depends on every top-level key, and mlv.lock records them all.
    params: dict[str, list[str]] = field(default_factory=dict)
    outs: list[Output] = field(default_factory=list)
    always_changed: bool = False
    frozen: bool = False  # `frozen: true`: repro never runs it, status never calls it stale
    desc: str | None = None
    meta: Any = None  # as written
    line: int | None = None

    @property
    def cached_outs(self) -> list[Output]:
        return [o for o in self.outs if o.cache]

    def whole_params(self, file: str) -> bool:
        """True when the stage depends on every key of the params file `file`."""
        return file in self.params and not self.params[file]


@dataclass
class PlotDef:
    """A top-level `plots:` entry. `files` are repo-relative; `x` and `y` give, per file,
    the field on each axis (where written)."""
    id: str
    files: list[str]
    x: dict[str, str] = field(default_factory=dict)
    y: dict[str, list[str]] = field(default_factory=dict)
    title: str | None = None
    template: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    line: int | None = None


@dataclass
class Artifact:
    """A top-level `artifacts:` entry (a model registry entry: kept and listed)."""
    name: str
    path: str  # repo-relative
    type: str | None = None
    desc: str | None = None
    labels: list[str] = field(default_factory=list)
    meta: Any = None


@dataclass
class Project:
    """All of mlv.yaml: the stages, and the top-level metrics, plots, params files and
    artifacts (paths repo-relative)."""
    stages: list[Stage] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    plots: list[PlotDef] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    # `gates:` as written, with their lines: `mlv ci` parses and checks them, so a
    # malformed gate stops only `mlv ci` (exit 2), never status or repro.
    gates: list[tuple[str, int | None]] = field(default_factory=list)


class Loc:
    """Builds `mlv.yaml:LINE: stages.NAME.FIELD: …` messages."""

    def __init__(self, filename: str, lines: yamlio.Lines) -> None:
        self.filename = filename
        self.lines = lines

    def error(self, where: tuple[Any, ...], what: str, hint: str | None = None) -> PipelineError:
        line = yamlio.line_of(self.lines, where)
        loc = f"{self.filename}:{line}" if line else self.filename
        dotted = ".".join(str(p) for p in where)
        return PipelineError(f"{loc}: {dotted + ': ' if dotted else ''}{what}",
                             hint=hint or f"fix {self.filename}")


def load_text(root: str, text: str, filename: str = PIPELINE_FILE,
              tree: Tree | None = None) -> list[Stage]:
    """The stages of an mlv.yaml's text (see load_project_text)."""
    return load_project_text(root, text, filename, tree).stages


def load_project_text(root: str, text: str, filename: str = PIPELINE_FILE,
                      tree: Tree | None = None) -> Project:
    """All of an mlv.yaml's text. `tree` is where params and vars files are read from
    (by default the workspace at `root`); paths are checked against the disk only there."""
    from mlv.tree import WorkspaceTree

    tree = tree or WorkspaceTree(root)
    data, lines = yamlio.load(text, filename, PipelineError)
    loc = Loc(filename, lines)
    if data is None:
        return Project()
    if not isinstance(data, dict):
        raise loc.error((), "expected a mapping with `stages:`")
    _refuse_unsupported(data, loc)
    stages_data = data.get("stages") or {}
    if not isinstance(stages_data, dict):
        raise loc.error(("stages",), "expected a mapping of stage names to stages")
    params_cache: dict[str, Any] = {}
    # "root" is None when the tree is not the workspace: nothing is checked on disk
    context = {"root": root if tree.on_disk else None, "params": params_cache, "tree": tree,
               "vars": None, "vars_spec": _vars_spec(data.get("vars"), ("vars",), loc),
               "interpolated": 0, "stage_vars": {}}
    stages: list[Stage] = []
    for name, body in stages_data.items():
        where = ("stages", name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise loc.error(where, "stage names use letters, digits, '_', '-' and '.'")
        if not isinstance(body, dict):
            raise loc.error(where, "a stage must be a mapping with at least `cmd:`")
        if "foreach" in body or "do" in body:
            stages += _expand_foreach(name, body, where, loc, context)
        elif "matrix" in body:
            stages += _expand_matrix(name, body, where, loc, context)
        else:
            stages.append(_stage(name, body, where, loc, context, {}))
        if len(stages) > MAX_STAGES:
            raise loc.error(where, f"the pipeline has more than {MAX_STAGES} stages",
                            hint="split it, or make fewer stages with foreach or matrix")
    _check_unique(stages, loc)
    if context["vars_spec"]:
        _vars(context, loc)  # a missing vars file is an error even when no ${…} reads it
    project = Project(stages)
    _top_level(project, data, loc, context)
    return project


def load(root: str, tree: Tree | None = None) -> list[Stage]:
    """The stages of `<root>/mlv.yaml`, or of the one in `tree` (none when there is no
    such file)."""
    return load_project(root, tree).stages


def load_project(root: str, tree: Tree | None = None) -> Project:
    """All of `<root>/mlv.yaml`, or of the one in `tree` (empty when there is no such
    file)."""
    if tree is None:
        path = os.path.join(root, PIPELINE_FILE)
        try:
            text = fsio.read_text(path, fsio.PIPELINE_LIMIT, PIPELINE_FILE, PipelineError)
        except FileNotFoundError:
            return Project()
    else:
        try:
            raw = tree.read(PIPELINE_FILE, fsio.PIPELINE_LIMIT, PIPELINE_FILE, PipelineError)
        except FileNotFoundError:
            return Project()
        text = decode(raw, PIPELINE_FILE)
    return load_project_text(root, text, tree=tree)


def decode(raw: bytes, name: str) -> str:
    """A committed text file's bytes as text, as `fsio.read_text` reads it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{name}: not a text file (not UTF-8)", hint=f"fix {name}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# ---- keys mlv does not support: all of them in one error ------------------------------

def _refuse_unsupported(data: dict[Any, Any], loc: Loc) -> None:
    """Every key of mlv.yaml that mlv does not know (a key of DVC's that mlv cannot
    honour, or a typo), in one error naming each line."""
    found: list[tuple[tuple[Any, ...], set[str]]] = []

    def check(mapping: Any, allowed: set[str], where: tuple[Any, ...]) -> None:
        if isinstance(mapping, dict):
            # the line map holds keys as written (str): `1:` is the int 1 in the data
            found.extend((where + (str(key),), allowed) for key in mapping
                         if key not in allowed)

    check(data, TOP_KEYS, ())
    stages = data.get("stages")
    for name, body in (stages.items() if isinstance(stages, dict) else ()):
        _check_stage_keys(body, ("stages", name), check)
        if isinstance(body, dict) and isinstance(body.get("do"), dict):
            _check_stage_keys(body["do"], ("stages", name, "do"), check)
    plots = data.get("plots")
    for i, item in enumerate(plots if isinstance(plots, list) else ()):
        if isinstance(item, dict) and len(item) == 1:
            key, props = next(iter(item.items()))
            check(props, TOP_PLOT_OPTIONS, ("plots", i, key))
    artifacts = data.get("artifacts")
    for name, body in (artifacts.items() if isinstance(artifacts, dict) else ()):
        check(body, ARTIFACT_KEYS, ("artifacts", name))
    if found:
        raise _unsupported_error(found, loc)


def _check_stage_keys(body: Any, where: tuple[Any, ...], check: Any) -> None:
    if not isinstance(body, dict):
        return
    check(body, STAGE_KEYS, where)
    for kind, options in (("outs", OUT_OPTIONS), ("metrics", OUT_OPTIONS),
                          ("plots", OUT_OPTIONS | PLOT_OPTIONS)):
        items = body.get(kind)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            if isinstance(item, dict) and len(item) == 1:
                path, opts = next(iter(item.items()))
                check(opts, options, where + (kind, i, path))


def _unsupported_error(found: list[tuple[tuple[Any, ...], set[str]]],
                       loc: Loc) -> PipelineError:
    import difflib

    items = []
    for where, allowed in sorted(found, key=lambda f: yamlio.line_of(loc.lines, f[0]) or 0):
        key = str(where[-1])
        line = yamlio.line_of(loc.lines, where)
        text = f"{loc.filename}:{line}: {_dotted(where)}: " if line else f"{_dotted(where)}: "
        if key in DVC_ONLY:
            text += f"not supported ({DVC_ONLY[key]})"
        else:
            text += "unknown top-level key" if len(where) == 1 else "unknown key"
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.7)
            text += f" (did you mean {close[0]}?)" if close else ""
        items.append(text)
    return PipelineError(f"{loc.filename} uses keys mlv does not support: {'; '.join(items)}",
                         hint=f"remove or rename them in {loc.filename}; the keys mlv accepts "
                              "are listed in docs/pipelines.md (dvc.yaml syntax)")


def _dotted(where: tuple[Any, ...]) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# ---- foreach/do and matrix ----------------------------------------------------------------

def _expand_matrix(name: str, body: dict[str, Any], where: tuple[Any, ...], loc: Loc,
                   context: dict[str, Any]) -> list[Stage]:
    """DVC 3's `matrix:`: one stage per combination, named NAME@V1-V2 (a list or mapping
    value is named by its key and position, as DVC does: `model0`)."""
    matrix = body["matrix"]
    if not isinstance(matrix, dict) or not matrix:
        raise loc.error(where + ("matrix",), "must map names to lists of values")
    axes: list[list[tuple[str, Any]]] = []
    for key, values in matrix.items():
        at = where + ("matrix", key)
        if isinstance(values, str):
            values = _interpolate(values, at, loc, context, {})
        if not isinstance(key, str) or not isinstance(values, list) or not values:
            raise loc.error(at, "must be a non-empty list of values, or ${…} naming one")
        axes.append([(f"{key}{i}" if isinstance(v, (dict, list)) else _label(v), v)
                     for i, v in enumerate(values)])
    if math.prod(len(axis) for axis in axes) > MAX_STAGES:
        raise loc.error(where + ("matrix",), f"makes more than {MAX_STAGES} stages",
                        hint="use fewer values")
    template = {k: v for k, v in body.items() if k != "matrix"}
    stages = []
    for combo in itertools.product(*axes):
        label = "-".join(part for part, _ in combo)
        item = {key: value for key, (_, value) in zip(matrix, combo)}
        stages.append(_stage(f"{name}@{label}", template, where, loc, context, {"item": item}))
    return stages


def _label(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _expand_foreach(name: str, body: dict[str, Any], where: tuple[Any, ...], loc: Loc,
                    context: dict[str, Any]) -> list[Stage]:
    if "foreach" not in body or "do" not in body or set(body) - {"foreach", "do"}:
        raise loc.error(where, "a foreach stage has exactly two keys: `foreach:` and `do:`")
    items = body["foreach"]
    if isinstance(items, str):
        items = _interpolate(items, where + ("foreach",), loc, context, {})
    template = body["do"]
    if not isinstance(template, dict):
        raise loc.error(where + ("do",), "must be a stage mapping")
    if isinstance(items, list):
        pairs = [(str(item) if not isinstance(item, (dict, list)) else str(i), item, None)
                 for i, item in enumerate(items)]
    elif isinstance(items, dict):
        pairs = [(str(k), v, k) for k, v in items.items()]
    else:
        raise loc.error(where + ("foreach",), "must be a list, a mapping, or ${…} naming one")
    if len(pairs) > MAX_STAGES:
        raise loc.error(where + ("foreach",), f"makes more than {MAX_STAGES} stages",
                        hint="use fewer values")
    return [_stage(f"{name}@{label}", template, where + ("do",), loc, context,
                   {"item": item, "key": key})
            for label, item, key in pairs]


def _stage(name: str, body: dict[str, Any], where: tuple[Any, ...], loc: Loc,
           context: dict[str, Any], local: dict[str, Any]) -> Stage:
    for key in ("foreach", "do", "matrix"):
        if key in body:
            raise loc.error(where + (key,), "not allowed here: a stage is made by one of "
                                            "`foreach:`/`do:` or `matrix:`, once")
    if "vars" in body:
        local = {**local, _STAGE_VARS: _stage_vars(body, where, loc, context, local)}
    raw = body
    body = {k: v if k in ("vars", "meta") else _interpolate(v, where + (k,), loc, context, local)
            for k, v in body.items()}
    cmd = body.get("cmd")
    if isinstance(cmd, list) and all(isinstance(c, str) for c in cmd) and cmd:
        cmd = " && ".join(cmd)
    if not isinstance(cmd, str) or not cmd.strip():
        raise loc.error(where + ("cmd",), "every stage needs a `cmd:` string")
    root = context["root"]
    wdir_raw = body.get("wdir", ".")
    if not isinstance(wdir_raw, str):
        raise loc.error(where + ("wdir",), "must be a path")
    at_root = wdir_raw and _join(".", wdir_raw) == "."  # `.`, `./`, `a/..`
    wdir = "." if at_root else _repo_path(root, ".", wdir_raw, where + ("wdir",), loc)
    stage = Stage(name, cmd, wdir, line=yamlio.line_of(loc.lines, where))
    stage.deps = [_repo_path(root, wdir, d, where + ("deps", i), loc)
                  for i, d in enumerate(_str_list(body.get("deps"), where + ("deps",), loc))]
    stage.params = _params(root, body.get("params"), where + ("params",), loc, wdir)
    for kind, field_name, cached in (("out", "outs", True), ("metric", "metrics", True),
                                     ("plot", "plots", True)):
        stage.outs += _outs(root, wdir, body.get(field_name), kind, cached,
                            where + (field_name,), loc)
    for flag in ("always_changed", "frozen"):
        if not isinstance(body.get(flag, False), bool):
            raise loc.error(where + (flag,), "must be true or false")
    stage.always_changed = body.get("always_changed", False)
    stage.frozen = body.get("frozen", False)
    stage.desc = _opt_str(body.get("desc"), where + ("desc",), loc)
    stage.meta = raw.get("meta")
    return stage


def _opt_str(value: Any, where: tuple[Any, ...], loc: Loc) -> str | None:
    if value is not None and not isinstance(value, str):
        raise loc.error(where, "must be a string")
    return value


def _str_list(value: Any, where: tuple[Any, ...], loc: Loc) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise loc.error(where, "must be a list of paths")
    return value


def _outs(root: str | None, wdir: str, value: Any, kind: str, cached: bool, where: tuple[Any, ...],
          loc: Loc) -> list[Output]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise loc.error(where, "must be a list")
    result = []
    for i, item in enumerate(value):
        options: dict[str, Any] = {}
        if isinstance(item, dict) and len(item) == 1:
            item, options = next(iter(item.items()))
            options = options or {}
            if not isinstance(options, dict):
                raise loc.error(where + (i,), "must be a path, or {path: {option: value}}")
        if not isinstance(item, str):
            raise loc.error(where + (i,), "must be a path, or {path: {cache: false}}")
        at = where + (i, item)
        path = _repo_path(root, wdir, item, where + (i,), loc)
        if paths.own_file(path):
            raise loc.error(where + (i,), str(paths.own_file(path)))
        result.append(_output(path, kind, cached, options, at, loc))
    return result


def _output(path: str, kind: str, cached: bool, options: dict[str, Any],
            where: tuple[Any, ...], loc: Loc) -> Output:
    if not options:
        return Output(path, kind, cached)
    for flag in OUT_FLAGS:
        if flag in options and not isinstance(options[flag], bool):
            raise loc.error(where + (flag,), "must be true or false")
    remote = _opt_str(options.get("remote"), where + ("remote",), loc)
    if remote is not None and not _NAME.match(remote):
        raise loc.error(where + ("remote",), f"{remote!r} is not a remote name")
    plot = None
    if kind == "plot" and PLOT_OPTIONS & set(options):
        y = options.get("y")
        if isinstance(y, list) and all(isinstance(v, str) for v in y):
            y = tuple(y)
        elif y is not None and not isinstance(y, str):
            raise loc.error(where + ("y",), "must be a field name or a list of them")
        header = options.get("header")
        if header is not None and not isinstance(header, bool):
            raise loc.error(where + ("header",), "must be true or false")
        plot = PlotProps(y=y, header=header, **{
            k: _opt_str(options.get(k), where + (k,), loc)
            for k in ("x", "title", "template", "x_label", "y_label")})
    return Output(path, kind, options.get("cache", cached), options.get("persist", False),
                  options.get("push", True), remote,
                  _opt_str(options.get("desc"), where + ("desc",), loc),
                  _opt_str(options.get("type"), where + ("type",), loc),
                  tuple(_labels(options.get("labels"), where + ("labels",), loc)),
                  options.get("meta"), plot)


def _labels(value: Any, where: tuple[Any, ...], loc: Loc) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise loc.error(where, "must be a list of strings")
    return value


def _params(root: str | None, value: Any, where: tuple[Any, ...], loc: Loc,
            wdir: str) -> dict[str, list[str]]:
    default = DEFAULT_PARAMS if wdir == "." else f"{wdir}/{DEFAULT_PARAMS}"
    result: dict[str, list[str]] = {}
    whole: set[str] = set()
    if value is None:
        return result
    if not isinstance(value, list):
        raise loc.error(where, "must be a list of keys (or {file: [keys]})")
    for i, item in enumerate(value):
        if isinstance(item, str):
            file, sep, key = item.rpartition(":")
            if sep and file:
                result.setdefault(_repo_path(root, wdir, file, where + (i,), loc),
                                  []).append(key)
            else:
                result.setdefault(default, []).append(item)
        elif isinstance(item, dict):
            for file, keys in item.items():
                if not isinstance(file, str) or not (keys is None or (
                        isinstance(keys, list) and all(isinstance(k, str) for k in keys))):
                    raise loc.error(where + (i,), "must be {params-file: [key, …]}, or "
                                                  "{params-file: } for the whole file")
                path = _repo_path(root, wdir, file, where + (i,), loc)
                if not keys:  # `- file.yaml:` (or `[]`): every key of the file
                    whole.add(path)
                result.setdefault(path, []).extend(keys or [])
        else:
            raise loc.error(where + (i,), "must be a key like train.lr, or {file: [keys]}")
    for path in whole:
        result[path] = []
    if default in result and root:  # `wdir` passed the rule; its params.yaml may be a link
        found = _problem_on_disk(root, default)
        if found:
            raise loc.error(where, found)
    return result


def _join(wdir: str, path: str) -> str:
    return os.path.normpath(os.path.join(wdir, path)).replace(os.sep, "/")


def _repo_path(root: str | None, wdir: str, path: str, where: tuple[Any, ...], loc: Loc) -> str:
    """A path from mlv.yaml as repo-relative POSIX, held to the one path rule
    (mlv/paths.py) after `wdir` is joined and `..` resolved."""
    if not path:
        raise loc.error(where, "empty path")
    if paths.absolute(path):
        raise loc.error(where, f"absolute path {path!r}; use a path inside the repository")
    rel = _join(wdir, path)
    if rel == ".." or rel.startswith("../"):
        raise loc.error(where, f"{path!r} is outside the repository")
    if rel == ".":
        raise loc.error(where, f"{path!r} names the whole repository; name a file or folder")
    found = paths.problem(rel) or (_problem_on_disk(root, rel) if root else None)
    if found:
        raise loc.error(where, found)
    return rel


def _problem_on_disk(root: str, rel: str) -> str | None:
    """The on-disk part of the rule; the last component may link into the cache (the
    `symlink` cache type links stage outputs there)."""
    cache = None
    if os.path.islink(os.path.join(root, *rel.split("/"))):
        cache = _cache_dir(root)
    return paths.problem_on_disk(root, rel, allow_link_into=cache)


@functools.lru_cache(maxsize=4)
def _cache_dir(root: str) -> str:
    """The cache folder (cache.dir may move it), found once a process: opening the
    repository reads its config and asks git what it tracks under .mlv."""
    from mlv.repo import Repo

    return Repo(root).cache_dir


# ---- ${…} interpolation ----------------------------------------------------------------

def _lookup(expr: str, where: tuple[Any, ...], loc: Loc, context: dict[str, Any],
            local: dict[str, Any]) -> Any:
    head, _, rest = expr.partition(".")
    if head in ("item", "key") and local.get(head) is not None:
        value = local[head]
        parts = rest.split(".") if rest else []
    else:
        value = local[_STAGE_VARS] if _STAGE_VARS in local else _vars(context, loc)
        parts = expr.split(".")
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise loc.error(where, f"${{{expr}}} is not defined",
                            hint=f"define {expr} in {DEFAULT_PARAMS} or under `vars:`, or fix "
                                 "the name")
    return value


# ---- vars: what ${…} reads ----------------------------------------------------------------

def _vars_spec(value: Any, where: tuple[Any, ...], loc: Loc) -> list[tuple[Any, Any]]:
    """A `vars:` list as (item, where) pairs: params files (`file`, `file:k1,k2`) and
    inline mappings. `${…}` is not allowed in it (as in DVC)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise loc.error(where, "must be a list of params files and mappings")
    for i, item in enumerate(value):
        if not (isinstance(item, str) and item) and not isinstance(item, dict):
            raise loc.error(where + (i,), "must be a params file (file or file:key1,key2) "
                                          "or a mapping of values")
        if isinstance(item, str) and _VAR.search(item):
            raise loc.error(where + (i,), "${…} is not allowed in vars")
    return [(item, where + (i,)) for i, item in enumerate(value)]


def _vars(context: dict[str, Any], loc: Loc) -> dict[str, Any]:
    """The values `${…}` reads, built once: params.yaml at the root when it exists, then
    each item of the top-level `vars:` in order. As in DVC, a value may be defined once
    (a mapping may be extended, not a value replaced)."""
    if context["vars"] is None:
        merged: dict[str, Any] = {}
        origins: dict[str, str] = {}
        loaded: set[str] = set()
        if context["tree"].exists(DEFAULT_PARAMS):
            data = params_file(context, DEFAULT_PARAMS, loc)
            if isinstance(data, dict):
                _merge(merged, data, origins, DEFAULT_PARAMS, "", (), loc)
                loaded.add(DEFAULT_PARAMS)
        _merge_vars(merged, origins, loaded, context["vars_spec"], ".", "vars", context, loc)
        context["vars"] = merged
    return context["vars"]


def _stage_vars(body: dict[str, Any], where: tuple[Any, ...], loc: Loc,
                context: dict[str, Any], local: dict[str, Any]) -> dict[str, Any]:
    """The values `${…}` reads in a stage with its own `vars:` (files relative to its
    `wdir`): the pipeline's, plus the stage's."""
    if id(body) in context["stage_vars"]:  # one foreach/matrix template: the same vars
        return context["stage_vars"][id(body)]
    base = local[_STAGE_VARS] if _STAGE_VARS in local else _vars(context, loc)
    merged = copy.deepcopy(base)
    spec = _vars_spec(body["vars"], where + ("vars",), loc)
    wdir = body.get("wdir", ".")
    wdir = wdir if isinstance(wdir, str) and not _VAR.search(wdir) else "."
    _merge_vars(merged, {}, set(), spec, wdir, _dotted(where + ("vars",)), context, loc)
    context["stage_vars"][id(body)] = merged
    return merged


def _merge_vars(merged: dict[str, Any], origins: dict[str, str], loaded: set[str],
                spec: list[tuple[Any, Any]], wdir: str, label: str, context: dict[str, Any],
                loc: Loc) -> None:
    for i, (item, where) in enumerate(spec):
        if isinstance(item, dict):
            _merge(merged, item, origins, f"{label}[{i}]", "", where, loc)
            continue
        file, _, keys_text = item.partition(":")
        rel = _repo_path(context["root"], wdir, file, where, loc)
        keys = [k for k in keys_text.split(",") if k]
        if rel in loaded:
            continue  # params.yaml, read already (as DVC does)
        if not context["tree"].exists(rel):
            raise loc.error(where, f"vars file {rel} does not exist",
                            hint=f"create {rel}, or remove it from vars")
        data = params_file(context, rel, loc)
        if not isinstance(data, dict):
            raise loc.error(where, f"vars file {rel} is not a mapping of values")
        missing = [k for k in keys if k not in data]
        if missing:
            raise loc.error(where, f"{missing[0]} is not in {rel}",
                            hint=f"add {missing[0]} to {rel}, or fix the key")
        if not keys:
            loaded.add(rel)
        _merge(merged, {k: data[k] for k in keys} if keys else data, origins, item, "",
               where, loc)


def _merge(into: dict[str, Any], new: dict[Any, Any], origins: dict[str, str], source: str,
           prefix: str, where: tuple[Any, ...], loc: Loc) -> None:
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if key not in into:
            into[key] = copy.deepcopy(value)
            origins[dotted] = source
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, origins, source, dotted + ".", where, loc)
        else:
            first = next((origins[p] for p in _prefixes(dotted) if p in origins), "params")
            raise loc.error(where, f"vars: {dotted} is defined twice: in {first} and in {source}",
                            hint="define each value once (DVC does not let vars override "
                                 "each other either)")


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _interpolate(value: Any, where: tuple[Any, ...], loc: Loc, context: dict[str, Any],
                 local: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:  # a list or mapping too: each stage that names it gets all of it
            found = _lookup(whole.group(1), where, loc, context, local)
            _count(len(str(found)), where, loc, context)
            return found

        def text(match: re.Match[str]) -> str:
            found = _lookup(match.group(1), where, loc, context, local)
            if isinstance(found, (dict, list)):
                raise loc.error(where, f"${{{match.group(1)}}} is a {type(found).__name__}, "
                                       "not a value that fits in a string")
            shown = str(found)
            _count(len(shown), where, loc, context)
            return shown

        return _VAR.sub(text, value)
    if isinstance(value, list):
        return [_interpolate(v, where + (i,), loc, context, local) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {_interpolate(k, where, loc, context, local): _interpolate(v, where + (k,), loc,
                                                                        context, local)
                for k, v in value.items()}
    return value


def _count(size: int, where: tuple[Any, ...], loc: Loc, context: dict[str, Any]) -> None:
    """Add what one ${…} made to the pipeline's total, bounded by MAX_INTERPOLATED."""
    context["interpolated"] += size
    if context["interpolated"] > MAX_INTERPOLATED:
        raise loc.error(where, f"${{…}} makes more than {MAX_INTERPOLATED} characters "
                               "of text in all", hint="use shorter values")


def params_file(context: dict[str, Any], name: str, loc: Loc | None = None) -> Any:
    """Parsed contents of a params file (YAML, JSON or TOML), cached per load."""
    cache = context["params"]
    if name not in cache:
        try:
            raw = context["tree"].read(name, fsio.PARAMS_LIMIT, name, PipelineError)
        except FileNotFoundError:
            raise _no_params(name) from None
        cache[name] = parse_params(raw, name)
    return cache[name]


def _no_params(name: str) -> PipelineError:
    return PipelineError(f"params file {name} does not exist",
                         hint=f"create {name}, or fix the params of the stage")


def read_params(path: str, name: str, objects: str | None = None) -> Any:
    """A params (or metrics) file's data. A symlink is refused unless it points into
    `objects`, the cache's object folder (an output placed by the `symlink` cache type)."""
    try:
        raw = fsio.read_regular(path, fsio.PARAMS_LIMIT, name, PipelineError, follow_into=objects)
    except FileNotFoundError:
        raise _no_params(name) from None
    return parse_params(raw, name)


def parse_params(raw: bytes, name: str) -> Any:
    """A params (or metrics) file's data from its bytes: TOML, JSON or YAML by name."""
    if name.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise PipelineError(f"{name}: TOML params files need Python 3.11 or newer") from None
        try:
            data = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PipelineError(f"{name}: invalid TOML: {exc}") from None
        except RecursionError:
            raise yamlio.too_deep(name, PipelineError) from None
        yamlio.check_depth(data, name, PipelineError)  # as YAML: mlv recurses over params
        return data
    if name.endswith(".json"):
        return read_json(raw, name)
    data, _ = yamlio.load(raw.decode("utf-8", "replace"), name, PipelineError)
    return data if data is not None else {}


def read_json(raw: bytes, name: str, what: str = "") -> Any:
    """A params or metrics JSON file's data; nested at most as deep as YAML may be."""
    import json

    try:
        data = json.loads(raw)
    except RecursionError:
        raise yamlio.too_deep(what + name, PipelineError) from None
    except ValueError as exc:
        raise PipelineError(f"{what}{name}: invalid JSON: {exc}") from None
    yamlio.check_depth(data, what + name, PipelineError)
    return data


# ---- top-level metrics, plots, params and artifacts ----------------------------------------

def _top_level(project: Project, data: dict[str, Any], loc: Loc,
               context: dict[str, Any]) -> None:
    root = context["root"]
    for key in ("metrics", "params"):
        value = _interpolate(data.get(key), (key,), loc, context, {})
        found = [_repo_path(root, ".", p, (key, i), loc)
                 for i, p in enumerate(_str_list(value, (key,), loc))]
        setattr(project, key, found)
    plots = _interpolate(data.get("plots"), ("plots",), loc, context, {})
    if plots is not None and not isinstance(plots, list):
        raise loc.error(("plots",), "must be a list of plot files and {id: {x:, y:}} plots")
    project.plots = [_plot(root, item, ("plots", i), loc) for i, item in enumerate(plots or [])]
    artifacts = _interpolate(data.get("artifacts"), ("artifacts",), loc, context, {})
    if artifacts is not None and not isinstance(artifacts, dict):
        raise loc.error(("artifacts",), "must map artifact names to {path: …}")
    for name, body in (artifacts or {}).items():
        project.artifacts[name] = _artifact(root, name, body, ("artifacts", name), loc)
    gates = data.get("gates")
    if gates is not None and (not isinstance(gates, list) or not all(
            isinstance(g, str) for g in gates)):
        raise loc.error(("gates",), "must be a list of gates such as "
                        "'metrics.json:accuracy >= 0.9'")
    project.gates = [(g, yamlio.line_of(loc.lines, ("gates", i)))
                     for i, g in enumerate(gates or [])]


def _plot(root: str | None, item: Any, where: tuple[Any, ...], loc: Loc) -> PlotDef:
    line = yamlio.line_of(loc.lines, where)
    if isinstance(item, str):
        return PlotDef(item, [_repo_path(root, ".", item, where, loc)], line=line)
    if not isinstance(item, dict) or len(item) != 1:
        raise loc.error(where, "must be a file, or {file or id: {x:, y:, …}}")
    name, props = next(iter(item.items()))
    where = where + (name,)
    props = props or {}
    if not isinstance(name, str) or not isinstance(props, dict):
        raise loc.error(where, "must be a file, or {file or id: {x:, y:, …}}")
    y_raw = props.get("y")
    y: dict[str, list[str]] = {}
    if isinstance(y_raw, dict):  # {file: field(s)}: `name` is the plot's id
        for file, fields in y_raw.items():
            path = _repo_path(root, ".", str(file), where + ("y", file), loc)
            y[path] = _fields(fields, where + ("y", file), loc)
        files = list(y)
    else:
        files = [_repo_path(root, ".", name, where, loc)]
        if y_raw is not None:
            y[files[0]] = _fields(y_raw, where + ("y",), loc)
    x_raw = props.get("x")
    x: dict[str, str] = {}
    if isinstance(x_raw, dict):
        for file, fld in x_raw.items():
            x[_repo_path(root, ".", str(file), where + ("x", file), loc)] = _fields(
                fld, where + ("x", file), loc, one=True)[0]
    elif x_raw is not None:
        x = dict.fromkeys(files, _fields(x_raw, where + ("x",), loc, one=True)[0])
    text = {k: _opt_str(props.get(k), where + (k,), loc)
            for k in ("title", "template", "x_label", "y_label")}
    return PlotDef(name, files, x, y, line=line, **text)


def _fields(value: Any, where: tuple[Any, ...], loc: Loc, one: bool = False) -> list[str]:
    if isinstance(value, str):
        return [value]
    if one or not isinstance(value, list) or not value or not all(
            isinstance(v, str) for v in value):
        raise loc.error(where, "must be a field name" + ("" if one else " or a list of them"))
    return value


def _artifact(root: str | None, name: Any, body: Any, where: tuple[Any, ...],
              loc: Loc) -> Artifact:
    if not isinstance(name, str) or not _ARTIFACT_NAME.match(name):
        raise loc.error(where, "artifact names use lower-case letters, digits, '-' and '/'")
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise loc.error(where, "an artifact needs `path:`")
    return Artifact(name, _repo_path(root, ".", body["path"], where + ("path",), loc),
                    _opt_str(body.get("type"), where + ("type",), loc),
                    _opt_str(body.get("desc"), where + ("desc",), loc),
                    _labels(body.get("labels"), where + ("labels",), loc), body.get("meta"))


def _check_unique(stages: list[Stage], loc: Loc) -> None:
    seen: dict[str, str] = {}
    for stage in stages:
        if stage.name in seen:
            raise loc.error(("stages", stage.name), "two stages have this name")
        seen[stage.name] = stage.name
