"""`mlv config`: read and write config values at one level."""

from __future__ import annotations

from typing import Any

from mlv.config import DEFAULTS, KEYS, Config, shortens_grace, validate
from mlv.errors import NotARepoError
from mlv.repo import Repo, committed_cache_problem


def _config(level: str) -> Config:
    try:
        return Repo.find().config
    except NotARepoError:
        if level == "global":
            return Config(None)
        raise


def _check_key(key: str) -> None:
    if key not in KEYS:
        validate(key, None)  # raises the "unknown key" error


def get(key: str, level: str | None = None) -> Any:
    """The value at `level`, or the effective value (falling back to the default)."""
    _check_key(key)
    value = _config(level or "global").get(key, level=level)
    if value is None and level is None:
        value = DEFAULTS.get(key)
    return value


def set_value(key: str, value: str, level: str | None = None) -> str:
    """Set `key` at `level`, by default the committed .mlv/config; returns the level
    written. With no level, a value that clones would refuse from the committed config
    (`committed_refuses`) goes to .mlv/config.local: it is the user's own choice."""
    if level is None:
        level = "local" if committed_refuses(key, value) else "repo"
    _config(level).set(key, value, level)
    return level


def committed_refuses(key: str, value: str) -> str | None:
    """Why clones would not use this value from the committed .mlv/config (a cache.dir
    outside the repository, a gc.grace shorter than the default), or None."""
    if key == "cache.dir" and committed_cache_problem(Repo.find().root, validate(key, value)):
        return "the committed .mlv/config may only name a folder inside the repository"
    if key == "gc.grace" and shortens_grace(validate(key, value)):
        return f"the committed .mlv/config may only lengthen it (at least {DEFAULTS[key]})"
    return None


def unset(key: str, level: str) -> bool:
    _check_key(key)
    return _config(level).unset(key, level)
