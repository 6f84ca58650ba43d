"""Reading a DVC project: `.dvc` files, `dvc.lock`, `.dvc/config` and DVC's md5 cache.

Everything here comes with the repository, so it is untrusted: paths are held to the
one path rule by the caller (mlv/paths.py), files are read with `fsio.read_text` (size
limits, no symlinks), and bytes from DVC's cache count only when their md5 matches the
name DVC gave them. Nothing here writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from mlv import fsio, paths, yamlio
from mlv.errors import MlvError
from mlv.hashing import BLOCK, open_regular
from mlv.pointer import is_count

DVC_DIR = ".dvc"
MD5_RE = re.compile(r"[0-9a-f]{32}(\.dir)?\Z")
# A DVC 2 md5 of a text file was taken after CRLF -> LF; files this size or smaller are
# checked that way too when the plain md5 does not match.
DOS2UNIX_MAX = 64 << 20
LISTING_MAX = 256 << 20  # a `.dir` object: like mlv's manifests


class DvcFormatError(MlvError):
    """A DVC file mlv cannot read."""


@dataclass(frozen=True)
class DvcOut:
    """One entry of a `.dvc` file's or a dvc.lock stage's deps or outs."""

    path: str  # as written: relative to the .dvc file's folder, or to the stage's wdir
    md5: str | None  # hex, with `.dir` for a folder; None when DVC recorded none
    size: int | None = None
    nfiles: int | None = None
    legacy: bool = False  # no `hash: md5`: a DVC 2 hash (text files hashed CRLF -> LF)
    cache: bool = True

    @property
    def is_dir(self) -> bool:
        return bool(self.md5 and self.md5.endswith(".dir"))


@dataclass
class DvcFile:
    outs: list[DvcOut]
    imported_from: str | None = None  # `dvc import`: the source repository's url
    import_url: str | None = None  # `dvc import-url`: where the data came from
    frozen: bool = False
    stage_cmd: str | None = None  # a DVC 1 stage file (`dvc run -f x.dvc`)


@dataclass
class DvcLockStage:
    cmd: str
    deps: list[DvcOut] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    outs: list[DvcOut] = field(default_factory=list)


def _bad(name: str, what: str) -> DvcFormatError:
    return DvcFormatError(f"{name}: {what}", hint=f"fix {name} (`dvc status` checks it), "
                                                  "then run `mlv migrate dvc` again")


def _entry(item: Any, name: str, at: str) -> DvcOut:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise _bad(name, f"{at} must be a mapping with a `path`")
    md5 = item.get("md5")
    if md5 is not None and (not isinstance(md5, str) or not MD5_RE.match(md5)):
        md5 = None  # an etag or checksum of an import-url dep: nothing mlv can verify
    size, nfiles = item.get("size"), item.get("nfiles")
    return DvcOut(item["path"], md5, size if is_count(size) else None,
                  nfiles if is_count(nfiles) else None,
                  legacy=item.get("hash") != "md5", cache=item.get("cache", True) is not False)


def _entries(value: Any, name: str, at: str) -> list[DvcOut]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(name, f"{at} must be a list")
    return [_entry(item, name, f"{at}[{i}]") for i, item in enumerate(value)]


def read_yaml(path: str, name: str, limit: int = fsio.LOCK_LIMIT) -> Any:
    text = fsio.read_text(path, limit, name, DvcFormatError)
    data, _ = yamlio.load(text, name, DvcFormatError)
    return data


def parse_dvc_file(data: Any, name: str) -> DvcFile:
    """A `.dvc` file's outs, and whether it imports its data or is an old stage file."""
    if not isinstance(data, dict):
        raise _bad(name, "expected a mapping with `outs:`")
    result = DvcFile(_entries(data.get("outs"), name, "outs"), frozen=data.get("frozen") is True)
    deps = data.get("deps") or []
    if isinstance(deps, list):
        for dep in deps:
            if isinstance(dep, dict) and isinstance(dep.get("repo"), dict):
                result.imported_from = str(dep["repo"].get("url", "?"))
            elif isinstance(dep, dict) and "cmd" not in data:
                result.import_url = str(dep.get("path", "?"))
    if isinstance(data.get("cmd"), str):
        result.stage_cmd = data["cmd"]
    return result


def _cmd(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(c, str) for c in value):
        return " && ".join(value)
    return None


def parse_lock(data: Any, name: str = "dvc.lock") -> dict[str, DvcLockStage]:
    """The stages of a dvc.lock (DVC 1, 2 and 3 schemas)."""
    if not data:
        return {}
    if not isinstance(data, dict):
        raise _bad(name, "expected a mapping")
    stages = data.get("stages", data if "schema" not in data else {})
    if not isinstance(stages, dict):
        raise _bad(name, "expected `stages:` with one entry per stage")
    result = {}
    for stage_name, body in stages.items():
        at = f"stages.{stage_name}"
        if not isinstance(body, dict) or _cmd(body.get("cmd")) is None:
            raise _bad(name, f"{at} has no cmd")
        params = body.get("params") or {}
        if not isinstance(params, dict) or not all(
                isinstance(f, str) and isinstance(v, dict) for f, v in params.items()):
            raise _bad(name, f"{at}.params must map params files to values")
        result[str(stage_name)] = DvcLockStage(
            str(_cmd(body["cmd"])), _entries(body.get("deps"), name, f"{at}.deps"),
            {f: dict(v) for f, v in params.items()},
            _entries(body.get("outs"), name, f"{at}.outs"))
    return result


# ---- .dvc/config: INI as configobj writes it ------------------------------------------

_SECTION = re.compile(r"\[\s*(['\"]?)(.*?)\1\s*\]\Z")
_REMOTE = re.compile(r"remote\s+\"(.+)\"\Z")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_config(text: str, name: str) -> dict[str, dict[str, str]]:
    """`{section: {key: value}}` of a DVC config file; `['remote "s3"']` becomes
    section `remote "s3"`."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        header = _SECTION.match(line)
        if header:
            current = sections.setdefault(header.group(2).strip(), {})
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise DvcFormatError(f"{name}:{number}: expected `[section]` or `key = value`",
                                 hint=f"fix {name} (`dvc config -l` reads it)")
        current[key.strip()] = _unquote(value)
    return sections


def read_config(root: str, which: str) -> dict[str, dict[str, str]]:
    """`.dvc/config` or `.dvc/config.local` (empty when absent)."""
    name = f"{DVC_DIR}/{which}"
    try:
        text = fsio.read_text(os.path.join(root, DVC_DIR, which), fsio.CONFIG_LIMIT, name,
                              DvcFormatError)
    except FileNotFoundError:
        return {}
    return parse_config(text, name)


def remotes(config: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    found = {}
    for section, options in config.items():
        match = _REMOTE.match(section)
        if match:
            found[match.group(1)] = options
    return found


# ---- DVC's cache ------------------------------------------------------------------------

def cache_dir(root: str, config: dict[str, dict[str, str]], trusted: bool = False) -> str:
    """DVC's cache folder: `cache.dir` (relative to .dvc/), else `.dvc/cache`. Unless
    `trusted` (set in `.dvc/config.local`), it comes with the clone, so it must be a
    folder inside the repository reached through real folders: a committed
    `cache.dir: /shared/dvc-cache` or `.dvc/cache -> ~/other/.dvc/cache` would let the
    clone's md5s pick files of yours for mlv's cache (and a later push)."""
    configured = config.get("cache", {}).get("dir")
    base = os.path.join(root, DVC_DIR)
    if configured and trusted:
        return os.path.normpath(os.path.join(base, os.path.expanduser(configured)))
    rel = posixpath.normpath(posixpath.join(DVC_DIR, configured or "cache"))
    found = None
    if configured and (paths.absolute(configured) or configured.startswith("~")
                       or rel == ".." or rel.startswith("../")):
        found = f"{configured!r} is outside the repository"
    found = found or paths.problem_on_disk(root, rel)
    if found:
        where = f"{DVC_DIR}/config: cache.dir" if configured else "DVC's cache"
        raise DvcFormatError(f"{where}: {found}",
                             hint="a committed cache.dir may only name a folder inside the "
                                  "repository; to use another, set it for this clone with "
                                  "`dvc cache dir --local PATH` (.dvc/config.local)")
    return os.path.join(root, *rel.split("/"))


def object_path(cache: str, md5: str) -> str | None:
    """Where DVC's cache keeps `md5` (DVC 3 layout, then DVC 2), or None. Never through a
    symlink: the cache's folders and objects must be real."""
    for base in ("files/md5/", ""):
        rel = f"{base}{md5[:2]}/{md5[2:]}"
        path = os.path.join(cache, *rel.split("/"))
        if os.path.isfile(path) and not os.path.islink(path) \
                and paths.problem_on_disk(cache, rel) is None:
            return path
    return None


def md5_file(path: str, legacy: bool = False, want: str | None = None) -> tuple[str, int]:
    """(md5 hex, size) of a regular file. With `legacy` and a `want` that the plain md5
    misses, a small file's DVC 2 md5 (CRLF -> LF) is tried too."""
    hasher = hashlib.md5(usedforsecurity=False)
    size = 0
    with open_regular(path) as fobj:
        while chunk := fobj.read(BLOCK):
            hasher.update(chunk)
            size += len(chunk)
    digest = hasher.hexdigest()
    if legacy and want is not None and digest != want and size <= DOS2UNIX_MAX:
        with open_regular(path) as fobj:
            data = fobj.readall()
        if b"\0" not in data[:8000]:
            other = hashlib.md5(data.replace(b"\r\n", b"\n"), usedforsecurity=False).hexdigest()
            if other == want:
                return other, size
    return digest, size


@dataclass(frozen=True)
class ListingEntry:
    relpath: str
    md5: str


def parse_listing(data: bytes, md5: str) -> list[ListingEntry]:
    """A `.dir` object's entries, each path held to the one path rule."""
    try:
        items = json.loads(data)
    except (ValueError, RecursionError):
        items = None
    bad = DvcFormatError(f"DVC's cache object {md5} is not a folder listing",
                         hint="check it with `dvc fsck`, or `dvc pull` it again")
    if not isinstance(items, list):
        raise bad
    entries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("relpath"), str) or not (
                isinstance(item.get("md5"), str) and MD5_RE.match(item["md5"])):
            raise bad
        entries.append(ListingEntry(item["relpath"], item["md5"]))
    found = paths.first_problem([e.relpath for e in entries])
    if found:
        raise DvcFormatError(f"DVC's folder listing {md5}: {found[1]}",
                             hint="mlv does not convert a folder with such a path")
    return entries


def listing_md5(entries: list[ListingEntry]) -> str:
    """The md5 DVC gives a folder with these files (its `.dir` object's bytes)."""
    items = sorted(({"md5": e.md5, "relpath": e.relpath} for e in entries),
                   key=lambda item: item["relpath"])
    return hashlib.md5(json.dumps(items, sort_keys=True).encode(),
                       usedforsecurity=False).hexdigest() + ".dir"
