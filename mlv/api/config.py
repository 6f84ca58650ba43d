"""`mlv config`: read and write config values at one level."""

from __future__ import annotations

from typing import Any

from mlv.config import DEFAULTS, KEYS, Config, validate
from mlv.errors import NotARepoError
from mlv.repo import Repo


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


def set_value(key: str, value: str, level: str) -> None:
    _config(level).set(key, value, level)


def unset(key: str, level: str) -> bool:
    _check_key(key)
    return _config(level).unset(key, level)
