"""Layered YAML configuration: user, then `.mlv/config` (committed), then `.mlv/config.local`."""

from __future__ import annotations

import os
import re
from typing import Any

from mlv import fsio, yamlio
from mlv.errors import ConfigError
from mlv.fsio import LINK_TYPES
from mlv.hashing import default_jobs

LEVELS = ("global", "repo", "local")


def global_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mlv", "config")


def _check_link_types(value: str) -> str:
    kinds = [k.strip() for k in str(value).split(",") if k.strip()]
    bad = [k for k in kinds if k not in LINK_TYPES]
    if not kinds or bad:
        raise ConfigError(f"cache.type: unknown link type {','.join(bad) or repr(value)}",
                          hint=f"use one or more of {', '.join(LINK_TYPES)}, comma-separated")
    return ",".join(kinds)


MAX_JOBS = 1024  # more threads than this help nobody; a committed config may set it


def _check_jobs(value: Any) -> int:
    try:
        jobs = int(value)
    except (TypeError, ValueError):
        jobs = 0
    if not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"core.jobs: expected a whole number from 1 to {MAX_JOBS}, "
                          f"got {value!r}")
    return jobs


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> float:
    """Seconds in a duration like `0`, `90s`, `30m`, `12h`, `2d` or `1w`. A number needs
    a unit (except 0), so `1` is not mistaken for a day or a second."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw]?)", text)
    if match and (match.group(2) or float(match.group(1)) == 0):
        return float(match.group(1)) * DURATION_UNITS.get(match.group(2), 1)
    raise ConfigError(f"expected a duration like 0, 30m, 12h or 2d, got {value!r}")


def _check_grace(value: Any) -> str:
    try:
        parse_duration(value)
    except ConfigError as exc:
        raise ConfigError(f"gc.grace: {exc.message}",
                          hint="a unit is needed: s, m, h, d or w (e.g. 1d)") from None
    return str(value).strip().lower()


def _check_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a non-empty string, got {value!r}")
    return value


KEYS: dict[str, Any] = {
    "cache.type": _check_link_types,
    "cache.dir": _check_str,
    "core.jobs": _check_jobs,
    "core.remote": _check_str,
    "gc.grace": _check_grace,
}


DEFAULTS: dict[str, Any] = {
    "cache.type": "reflink,copy",
    "cache.dir": ".mlv/cache",
    "core.jobs": default_jobs(),
    "gc.grace": "1d",
}


def shortens_grace(value: Any) -> bool:
    """True when a gc.grace value is shorter than the default: the committed config,
    which a clone brings, may only lengthen the grace period."""
    return parse_duration(value) < parse_duration(DEFAULTS["gc.grace"])


def validate(key: str, value: Any) -> Any:
    check = KEYS.get(key)
    if check is None:
        raise ConfigError(f"unknown config key {key!r}",
                          hint=f"known keys: {', '.join(sorted(KEYS))}")
    return check(value)


def _read(path: str, follow: bool = False) -> dict[str, Any]:
    """One config layer. A repository's .mlv/config comes with a clone, so a symlink
    there is refused; the user's own (`follow`) may be one (a dotfiles checkout)."""
    try:
        text = fsio.read_text(path, fsio.CONFIG_LIMIT, path, ConfigError, follow=follow)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_layer(text, path)


def parse_layer(text: str, path: str) -> dict[str, Any]:
    """One config layer's sections from the text of its file (`path` names it)."""
    if text.strip() in ("", "{}"):
        return {}  # the default config: no need to load a YAML parser
    data, _ = yamlio.load(text, path, ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected sections of keys, like `cache: {{type: copy}}`")
    return data


class Config:
    def __init__(self, mlv_dir: str | None) -> None:
        self.paths = {"global": global_path()}
        if mlv_dir is not None:
            self.paths["repo"] = os.path.join(mlv_dir, "config")
            self.paths["local"] = os.path.join(mlv_dir, "config.local")
        self.layers = {level: _read(path, follow=level == "global")
                       for level, path in self.paths.items()}

    def get(self, key: str, default: Any = None, level: str | None = None) -> Any:
        """The effective value of `key` (or its value at one `level`)."""
        section, _, name = key.partition(".")
        value, source = default, None
        for lvl in [level] if level else LEVELS:
            layer = self.layers.get(lvl, {})
            if name in layer.get(section, {}):
                value, source = layer[section][name], lvl
        if source is not None and key in KEYS:
            try:
                value = KEYS[key](value)
            except ConfigError as exc:
                flag = {"global": " --global", "local": " --local"}.get(source, "")
                raise ConfigError(f"{exc.message} (in {self.paths[source]})",
                                  hint=f"fix it with `mlv config{flag} {key} VALUE`") from None
        return value

    def level_of(self, key: str) -> str | None:
        """The level whose value of `key` is the effective one, or None when unset."""
        section, _, name = key.partition(".")
        found = None
        for level in LEVELS:
            if name in self.layers.get(level, {}).get(section, {}):
                found = level
        return found

    def set(self, key: str, value: Any, level: str) -> None:
        value = validate(key, value)
        section, _, name = key.partition(".")
        data = self.layers.setdefault(level, {})
        data.setdefault(section, {})[name] = value
        self._save(level)

    def unset(self, key: str, level: str) -> bool:
        section, _, name = key.partition(".")
        data = self.layers.get(level, {})
        if name not in data.get(section, {}):
            return False
        del data[section][name]
        if not data[section]:
            del data[section]
        self._save(level)
        return True

    # ---- remotes: `remote: {NAME: {url: …, endpoint_url: …}}` ---------------------------

    def remotes(self) -> dict[str, dict[str, Any]]:
        """Every configured remote with its options merged across the layers."""
        merged: dict[str, dict[str, Any]] = {}
        for level in LEVELS:
            for name, options in self.layers.get(level, {}).get("remote", {}).items():
                if not isinstance(options, dict):
                    raise ConfigError(f"{self.paths[level]}: remote '{name}' must be a mapping "
                                      "of options", hint="fix the file or `mlv remote remove` it")
                merged.setdefault(str(name), {}).update(options)
        return merged

    def set_remote(self, name: str, key: str, value: Any, level: str) -> None:
        data = self.layers.setdefault(level, {})
        data.setdefault("remote", {}).setdefault(name, {})[key] = value
        self._save(level)

    def unset_remote(self, name: str, key: str | None, level: str) -> bool:
        """Remove one option (or, with key None, the whole remote) at one level."""
        remotes = self.layers.get(level, {}).get("remote", {})
        if name not in remotes or (key is not None and key not in remotes[name]):
            return False
        if key is None:
            del remotes[name]
        else:
            del remotes[name][key]
        if not remotes:
            del self.layers[level]["remote"]
        self._save(level)
        return True

    def _save(self, level: str) -> None:
        path = self.paths.get(level)
        if path is None:
            raise ConfigError(f"no {level} config outside an mlv repository",
                              hint="run `mlv init`, or use --global")
        fsio.makedirs(os.path.dirname(path))
        # The local and user configs may hold keys: only their owner may read them. A file
        # that is already stricter for others stays so (the rename makes a new inode).
        mode = 0o644 if level == "repo" else 0o600
        try:
            mode &= (os.stat(path).st_mode & 0o777) | 0o600
        except OSError:
            pass  # a new file
        fsio.atomic_write(path, yamlio.dump(self.layers[level]).encode(), mode)
