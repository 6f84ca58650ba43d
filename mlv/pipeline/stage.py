"""Stages as written in `mlv.yaml`: parsing, validation, `foreach`/`do` and `${…}`.

Every path is stored relative to the repository root, POSIX-style, after `wdir`
is applied; a path that would leave the repository is refused.
"""

from __future__ import annotations

import functools
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
STAGE_KEYS = {"cmd", "wdir", "deps", "params", "outs", "metrics", "plots", "always_changed",
              "desc", "foreach", "do"}
OUT_FLAGS = {"cache", "persist"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_VAR = re.compile(r"\$\{\s*([^}]+?)\s*\}")


class PipelineError(MlvError):
    """A problem in mlv.yaml (or a params file it reads)."""


@dataclass(frozen=True)
class Output:
    path: str  # repo-relative, POSIX
    kind: str  # "out", "metric" or "plot"
    cache: bool = True
    persist: bool = False


@dataclass
class Stage:
    name: str
    cmd: str
    wdir: str = "."  # repo-relative
    deps: list[str] = field(default_factory=list)  # repo-relative
    params: dict[str, list[str]] = field(default_factory=dict)  # params file -> keys
    outs: list[Output] = field(default_factory=list)
    always_changed: bool = False
    line: int | None = None

    @property
    def cached_outs(self) -> list[Output]:
        return [o for o in self.outs if o.cache]


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
    """The stages of an mlv.yaml's text. `tree` is where params files are read from (by
    default the workspace at `root`); paths are checked against the disk only there."""
    from mlv.tree import WorkspaceTree

    tree = tree or WorkspaceTree(root)
    data, lines = yamlio.load(text, filename, PipelineError)
    loc = Loc(filename, lines)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise loc.error((), "expected a mapping with `stages:`")
    unknown = [key for key in data if key not in ("stages", "vars")]
    if unknown:
        raise loc.error((str(unknown[0]),), "unknown top-level key (expected `stages:`)")
    stages_data = data.get("stages") or {}
    if not isinstance(stages_data, dict):
        raise loc.error(("stages",), "expected a mapping of stage names to stages")
    params_cache: dict[str, Any] = {}
    # "root" is None when the tree is not the workspace: nothing is checked on disk
    context = {"root": root if tree.on_disk else None, "params": params_cache, "tree": tree}
    stages: list[Stage] = []
    for name, body in stages_data.items():
        where = ("stages", name)
        if not isinstance(name, str) or not _NAME.match(name):
            raise loc.error(where, "stage names use letters, digits, '_', '-' and '.'")
        if not isinstance(body, dict):
            raise loc.error(where, "a stage must be a mapping with at least `cmd:`")
        if "foreach" in body or "do" in body:
            stages += _expand_foreach(name, body, where, loc, context)
        else:
            stages.append(_stage(name, body, where, loc, context, {}))
    _check_unique(stages, loc)
    return stages


def load(root: str, tree: Tree | None = None) -> list[Stage]:
    """The stages of `<root>/mlv.yaml`, or of the one in `tree` (none when there is no
    such file)."""
    if tree is None:
        path = os.path.join(root, PIPELINE_FILE)
        try:
            text = fsio.read_text(path, fsio.PIPELINE_LIMIT, PIPELINE_FILE, PipelineError)
        except FileNotFoundError:
            return []
    else:
        try:
            raw = tree.read(PIPELINE_FILE, fsio.PIPELINE_LIMIT, PIPELINE_FILE, PipelineError)
        except FileNotFoundError:
            return []
        text = decode(raw, PIPELINE_FILE)
    return load_text(root, text, tree=tree)


def decode(raw: bytes, name: str) -> str:
    """A committed text file's bytes as text, as `fsio.read_text` reads it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{name}: not a text file (not UTF-8)", hint=f"fix {name}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


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
    return [_stage(f"{name}@{label}", template, where + ("do",), loc, context,
                   {"item": item, "key": key})
            for label, item, key in pairs]


def _stage(name: str, body: dict[str, Any], where: tuple[Any, ...], loc: Loc,
           context: dict[str, Any], local: dict[str, Any]) -> Stage:
    for key in body:
        if key not in STAGE_KEYS - {"foreach", "do"}:
            raise loc.error(where + (key,), "unknown key",
                            hint=f"stage keys are: {', '.join(sorted(STAGE_KEYS))}")
    body = {k: _interpolate(v, where + (k,), loc, context, local) for k, v in body.items()}
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
    always = body.get("always_changed", False)
    if not isinstance(always, bool):
        raise loc.error(where + ("always_changed",), "must be true or false")
    stage.always_changed = always
    return stage


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
        flags: dict[str, Any] = {}
        if isinstance(item, dict) and len(item) == 1:
            item, flags = next(iter(item.items()))
            flags = flags or {}
            if not isinstance(flags, dict) or set(flags) - OUT_FLAGS or not all(
                    isinstance(v, bool) for v in flags.values()):
                raise loc.error(where + (i,), "options are `cache: true|false` and "
                                              "`persist: true|false`")
        if not isinstance(item, str):
            raise loc.error(where + (i,), "must be a path, or {path: {cache: false}}")
        path = _repo_path(root, wdir, item, where + (i,), loc)
        if paths.own_file(path):
            raise loc.error(where + (i,), str(paths.own_file(path)))
        result.append(Output(path, kind, flags.get("cache", cached), flags.get("persist", False)))
    return result


def _params(root: str | None, value: Any, where: tuple[Any, ...], loc: Loc,
            wdir: str) -> dict[str, list[str]]:
    default = DEFAULT_PARAMS if wdir == "." else f"{wdir}/{DEFAULT_PARAMS}"
    result: dict[str, list[str]] = {}
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
                if not isinstance(file, str) or not (
                        isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
                    raise loc.error(where + (i,), "must be {params-file: [key, …]}")
                result.setdefault(_repo_path(root, wdir, file, where + (i,), loc),
                                  []).extend(keys)
        else:
            raise loc.error(where + (i,), "must be a key like train.lr, or {file: [keys]}")
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
        value = params_file(context, DEFAULT_PARAMS, loc)
        parts = expr.split(".")
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise loc.error(where, f"${{{expr}}} is not defined",
                            hint=f"define {expr} in {DEFAULT_PARAMS}, or fix the name")
    return value


def _interpolate(value: Any, where: tuple[Any, ...], loc: Loc, context: dict[str, Any],
                 local: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), where, loc, context, local)

        def text(match: re.Match[str]) -> str:
            found = _lookup(match.group(1), where, loc, context, local)
            if isinstance(found, (dict, list)):
                raise loc.error(where, f"${{{match.group(1)}}} is a {type(found).__name__}, "
                                       "not a value that fits in a string")
            return str(found)

        return _VAR.sub(text, value)
    if isinstance(value, list):
        return [_interpolate(v, where + (i,), loc, context, local) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {_interpolate(k, where, loc, context, local): _interpolate(v, where + (k,), loc,
                                                                        context, local)
                for k, v in value.items()}
    return value


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


def _check_unique(stages: list[Stage], loc: Loc) -> None:
    seen: dict[str, str] = {}
    for stage in stages:
        if stage.name in seen:
            raise loc.error(("stages", stage.name), "two stages have this name")
        seen[stage.name] = stage.name
