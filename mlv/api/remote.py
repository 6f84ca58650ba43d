"""`mlv remote …`: configure remotes, and open the one a command should use."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlv.config import LEVELS, MAX_JOBS
from mlv.errors import ConfigError, StorageError, UsageError
from mlv.remote import (
    MASK,
    REMOTE_KEYS,
    SECRET_KEYS,
    Remote,
    is_secret,
    local_root,
    masked_url,
    open_remote,
)
from mlv.repo import Repo

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# What the committed .mlv/config (which a clone brings) may choose for a remote: where
# objects live, not how fsspec behaves on this machine. Caching and archive protocols
# (filecache, simplecache, reference, zip, …) and their options read and write local
# files of their own choosing, so they must come from the user's own config.
CLONE_OPTIONS = ("url", "endpoint_url", "profile", "region", "jobs", "format")
CLONE_PROTOCOLS = {"file", "local", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl",
                   "ssh", "sftp", "hdfs", "webhdfs", "http", "https", "oss"}


@dataclass
class RemoteInfo:
    name: str
    options: dict[str, Any]  # secrets masked
    default: bool


def masked(key: str, value: Any) -> Any:
    """`value` as it may be shown: secrets (also inside a mapping of options, and the
    password or secret query values of a URL) replaced by `***`."""
    if is_secret(key):
        return MASK
    if isinstance(value, dict):
        return {k: masked(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(key, v) for v in value]
    if isinstance(value, str):
        return masked_url(value)
    return value


def _level(local: bool) -> str:
    return "local" if local else "repo"


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise UsageError(f"invalid remote name {name!r}",
                         hint="use letters, digits, '-', '_' and '.'")


def _known(repo: Repo, name: str) -> dict[str, Any]:
    remotes = repo.config.remotes()
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise ConfigError(f"unknown remote '{name}' (configured: {known})",
                          hint="see `mlv remote list`, or add one with `mlv remote add NAME URL`")
    return remotes[name]


def _check_committed(repo: Repo, name: str) -> None:
    """Refuse what only the committed .mlv/config says about remote `name` and a clone
    may not choose: an option other than CLONE_OPTIONS, or a protocol outside
    CLONE_PROTOCOLS. The same set by the user's local or global config is trusted."""
    def options_at(level: str) -> dict[Any, Any]:
        found = repo.config.layers.get(level, {}).get("remote", {}).get(name, {})
        return found if isinstance(found, dict) else {}

    mine = set(options_at("global")) | set(options_at("local"))
    committed = {k: v for k, v in options_at("repo").items() if k not in mine}
    where = ".mlv/config"
    for key in sorted(map(str, committed)):
        if key not in CLONE_OPTIONS and key not in SECRET_KEYS:
            raise ConfigError(f"remote '{name}': option {key!r} in {where} is not used: a "
                              f"clone may set only {', '.join(CLONE_OPTIONS)}",
                              hint="if you trust it, move it to .mlv/config.local (this "
                                   "clone only)")
    url = str(committed.get("url", ""))
    protocol = refused_protocol(url)
    if protocol is not None:
        raise ConfigError(f"remote '{name}': the url {masked_url(url)!r} in {where} is not "
                          f"used: a clone may not choose the {protocol}:// protocol",
                          hint=f"if you trust it, set it for this clone: "
                               f"`mlv remote modify --local {name} url URL`")


def refused_protocol(url: str) -> str | None:
    """The protocol of `url` when the committed .mlv/config may not choose it (one
    outside CLONE_PROTOCOLS, or a chained `filecache::…` URL), else None."""
    protocol = url.partition("://")[0] if "://" in url else "file"
    if "::" in url.partition("://")[0]:  # fsspec's chaining: the first one acts first
        protocol = url.partition("::")[0]
    return None if protocol in CLONE_PROTOCOLS else protocol


def _check_option(key: str, value: Any, level: str) -> Any:
    if key not in REMOTE_KEYS:
        raise ConfigError(f"unknown remote option {key!r}",
                          hint=f"known options: {', '.join(REMOTE_KEYS)}")
    if key in SECRET_KEYS and level == "repo":
        raise ConfigError(f"{key} is a secret and .mlv/config is committed to git",
                          hint="use `mlv remote modify --local NAME KEY VALUE` (git-ignored) "
                               "or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables")
    if key == "jobs":
        value = check_jobs(value)
    if key == "format":
        value = check_format(value)
    return value


def check_format(value: Any) -> int:
    """A remote's `format` option: 1 (loose objects) or 2 (packs and chunks)."""
    if str(value).strip() in ("1", "2") and not isinstance(value, bool):
        return int(str(value).strip())
    raise ConfigError(f"remote format {value!r} is not 1 or 2",
                      hint="1 stores each file as one object; 2 stores packs and chunks")


def check_jobs(value: Any) -> int:
    """A remote's `jobs` option: a whole number from 1 to MAX_JOBS (`"8"` is 8)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_JOBS:
        raise ConfigError(f"jobs: expected a whole number from 1 to {MAX_JOBS}, got {value!r}")
    return value


def _checked_jobs(repo: Repo, name: str, value: Any) -> int:
    """The `jobs` option read from a config file someone may have edited by hand."""
    try:
        return check_jobs(value)
    except ConfigError as exc:
        level = next((lvl for lvl in reversed(LEVELS)
                      if "jobs" in (repo.config.layers.get(lvl, {}).get("remote", {})
                                    .get(name) or {})), "repo")
        path = repo.config.paths.get(level, "the config")
        if level == "global":
            hint = f"edit {path}: set it to a whole number, or delete the line"
        else:
            flag = " --local" if level == "local" else ""
            hint = (f"set it with `mlv remote modify{flag} {name} jobs 8`, or remove it with "
                    f"`mlv remote modify{flag} --unset {name} jobs`")
        raise ConfigError(f"remote '{name}': {exc.message} (in {path})", hint=hint) from None


@dataclass
class Added:
    folder: str | None  # the folder of a local remote, else None
    created: bool = False  # the folder was created
    missing: bool = False  # the folder does not exist (and was not created)


def add(repo: Repo, name: str, url: str, default: bool = False, local: bool = False,
        create: bool = False) -> Added:
    """Add a remote. The folder of a local one is created with `create`; else a
    missing folder is reported (`Added.missing`), not refused: it may be a mount that
    is not there now, and push refuses a missing folder anyway."""
    _check_name(name)
    if name in repo.config.remotes():
        raise ConfigError(f"remote '{name}' already exists",
                          hint=f"change it with `mlv remote modify {name} url "
                               f"{masked_url(url)}`")
    folder = local_folder(repo, url)
    added = Added(folder)
    if folder is not None and not os.path.isdir(folder):
        if create:
            _create(folder)
            added.created = True
        else:
            added.missing = True
    level = _level(local)
    repo.config.set_remote(name, "url", url, level)
    if default:
        repo.config.set("core.remote", name, level)
    return added


def _rooted(repo: Repo, url: str) -> str:
    """A relative folder URL made relative to the repository (not the current folder)."""
    local = url.removeprefix("file://") if url.startswith("file://") else url
    if local and "://" not in local and not os.path.isabs(os.path.expanduser(local)):
        return os.path.join(repo.root, local)
    return url


def local_folder(repo: Repo, url: str) -> str | None:
    """The folder a local remote's URL names, else None."""
    return local_root(_rooted(repo, url))


def _create(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the remote's folder {folder}: "
                           f"{exc.strerror or exc}",
                           hint="create it yourself, or choose another folder") from None


def modify(repo: Repo, name: str, key: str, value: str | None, local: bool = False,
           unset: bool = False) -> None:
    _known(repo, name)
    level = _level(local)
    if unset:
        if key not in REMOTE_KEYS:
            _check_option(key, None, level)
        if not repo.config.unset_remote(name, key, level):
            raise ConfigError(f"remote '{name}' has no {key} in the {level} config")
        return
    if value is None:
        raise UsageError("give a VALUE, or --unset")
    repo.config.set_remote(name, key, _check_option(key, value, level), level)


def remove(repo: Repo, name: str) -> None:
    _known(repo, name)
    for level in ("repo", "local"):
        repo.config.unset_remote(name, None, level)
        if repo.config.get("core.remote", level=level) == name:
            repo.config.unset("core.remote", level)


def set_default(repo: Repo, name: str, local: bool = False) -> None:
    _known(repo, name)
    repo.config.set("core.remote", name, _level(local))


def default_name(repo: Repo) -> str | None:
    value = repo.config.get("core.remote")
    return str(value) if value else None


def listing(repo: Repo) -> list[RemoteInfo]:
    default = default_name(repo)
    result = []
    for name, options in sorted(repo.config.remotes().items()):
        shown = {str(k): masked(str(k), v) for k, v in options.items()}
        result.append(RemoteInfo(name, shown, name == default))
    return result


INDEX_DIR = "remote-index"  # in the cache folder: format-2 remotes' index segments


def resolve(repo: Repo, name: str | None = None, jobs: int | None = None) -> Remote:
    """The remote a command should use: the named one, else the default."""
    if name is None:
        name = default_name(repo)
        if name is None:
            raise ConfigError("no remote given and no default remote is set",
                              hint="pass -r NAME, or set one with `mlv remote add -d NAME URL`")
    options = dict(_known(repo, name))
    _check_committed(repo, name)
    if options.get("jobs") is not None:
        options["jobs"] = _checked_jobs(repo, name, options["jobs"])
    if options.get("url"):
        options["url"] = _rooted(repo, str(options["url"]))
    remote = open_remote(name, options, default_jobs=max(16, repo.jobs * 4), jobs=jobs,
                         local_jobs=repo.jobs)
    from mlv.remote.packed import open_format

    return open_format(remote, index_dir(repo, remote), _in_cache(repo))


def for_push(repo: Repo, remote: Remote) -> tuple[Remote, str | None]:
    """The remote a push writes, and a note for the user. A remote that is still empty
    becomes a format-2 remote (its marker is written first), unless its config says
    `format 1`. One that already holds format-1 objects (written by an earlier mlv, or
    with `format 1`) stays as it is; with a note when its config asks for format 2."""
    from mlv.remote.packed import PackedRemote, make_format2

    if isinstance(remote, PackedRemote):
        return remote, None
    wanted = repo.config.remotes().get(remote.name, {}).get("format")
    if wanted is not None and check_format(wanted) == 1:
        return remote, None
    if not remote.is_empty():
        if wanted is None:
            return remote, None
        return remote, (f"remote '{remote.name}' already holds objects in format 1, so it "
                        "stays in format 1 (mlv does not convert a remote yet)")
    return make_format2(remote, index_dir=index_dir(repo, remote),
                        local=_in_cache(repo)), None


def _in_cache(repo: Repo) -> Callable[[str], str | None]:
    odb = repo.odb

    def local(oid: str) -> str | None:
        return odb.path_of(oid) if odb.exists(oid) else None

    return local


def index_dir(repo: Repo, remote: Remote) -> str:
    """Where a format-2 remote's index segments are kept locally (they never change)."""
    from mlv.hashing import hash_bytes

    return os.path.join(repo.cache_dir, INDEX_DIR, hash_bytes(remote.url.encode())[:16])
