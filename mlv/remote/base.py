"""What every remote offers (the `Remote` interface), its errors, and the masking of
secrets in remote URLs and messages."""

from __future__ import annotations

import copy
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from mlv.errors import MlvError
from mlv.hashing import HASH_NAME
from mlv.workspace import Progress

# Fewer queries than this are asked one by one; more use one listing of the remote.
EXISTS_ONE_BY_ONE = 64
SECRET_KEYS = ("access_key_id", "secret_access_key", "session_token")
REMOTE_KEYS = ("url", "endpoint_url", "profile", "region", "jobs", "format") + SECRET_KEYS
MASK = "***"
# Parts of an option name that mark its value as a secret. Hand-added options go to the
# fsspec filesystem (sftp `password`, azure `account_key`, `sas_token`, `client_secret`,
# `connection_string` …); showing a harmless value masked costs less than leaking a key.
_SECRET_PARTS = ("pass", "secret", "token", "key", "credential", "auth", "sas", "sig",
                 "connection_string")
# In a URL (or a message quoting one): `scheme://user:PASSWORD@`, and `?name=VALUE` or
# `&name=VALUE` where the name marks a secret.
_URL_PASSWORD = re.compile(r"(?P<user>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:\s]*)"
                           r":(?P<pw>[^/?#@\s]*)@")
_URL_QUERY_PAIR = re.compile(r"(?P<name>(?<=[?&])[^=&#\s]+)=(?P<value>[^&#\s)'\"]*)")


def is_secret(key: str) -> bool:
    """Whether a remote option's value (or a URL's query value) is a secret, by its name."""
    name = str(key).lower()
    return key in SECRET_KEYS or any(part in name for part in _SECRET_PARTS)


def masked_url(text: str) -> str:
    """`text` with the password and the secret query values (`sig=`,
    `X-Amz-Signature=` …) of every URL in it replaced by `***`."""
    if "://" not in text:
        return text
    text = _URL_PASSWORD.sub(rf"\g<user>:{MASK}@", text)
    return _URL_QUERY_PAIR.sub(lambda m: f"{m['name']}={MASK}" if is_secret(m["name"])
                               else m[0], text)


def _url_secrets(url: str) -> list[str]:
    """The password and secret query values in `url`, longest first: a library's error
    may quote them outside the URL (an sftp root `user:pw@host/…`)."""
    found = [m["pw"] for m in _URL_PASSWORD.finditer(url)]
    found += [m["value"] for m in _URL_QUERY_PAIR.finditer(url) if is_secret(m["name"])]
    return sorted({f for f in found if f}, key=len, reverse=True)


class RemoteError(MlvError):
    """The remote could not be used at all (unreachable, no access, no bucket)."""


class RootMissingError(RemoteError):
    """The remote's folder or bucket does not exist (not one key: the whole remote)."""


Failures = dict[str, BaseException]  # oid (or key) -> what went wrong
# (oid, local path, verified bytes or None) after each download
After = Callable[[str, str, bytes | None], None]


class Remote(ABC):
    """The interface every remote offers; objects are named by their ids."""

    def __init__(self, name: str, url: str, jobs: int) -> None:
        self.name = name
        self.url = url
        self.shown_url = masked_url(url)  # for messages: the URL without its secrets
        self.jobs = jobs
        self.namespace = HASH_NAME  # the top folder: objects, or "runs" for the run-cache

    def hide(self, text: str) -> str:
        """`text` (a message, a library's error) without this remote's URL secrets."""
        for secret in _url_secrets(self.url):
            text = text.replace(secret, MASK)
        return masked_url(text)

    def with_namespace(self, namespace: str) -> Remote:
        """The same remote, looking at another top folder (e.g. the run-cache's)."""
        other = copy.copy(self)
        other.namespace = namespace
        return other

    @abstractmethod
    def list_oids(self) -> set[str]:
        """Every object id on the remote, from one listing."""

    @abstractmethod
    def list_mtimes(self) -> dict[str, float | None]:
        """Every object id on the remote with its modification time (seconds since the
        epoch), or None where the listing does not say; from one listing (for gc)."""

    def has(self, oids: list[str]) -> set[str]:
        """Which of `oids` the remote holds: one listing, or one request per object."""
        if len(oids) > EXISTS_ONE_BY_ONE:
            return self.list_oids() & set(oids)
        return self._exist_each(oids)

    @abstractmethod
    def _exist_each(self, oids: list[str]) -> set[str]:
        """Which of `oids` exist, asking about each one."""

    @abstractmethod
    def upload(self, items: list[tuple[str, str]], progress: Progress | None,
               sizes: dict[str, int] | None = None) -> Failures:
        """Upload (local path, oid) pairs; `sizes` are the objects' sizes where known.
        Returns the failures by oid."""

    @abstractmethod
    def download(self, items: list[tuple[str, str]], progress: Progress | None,
                 after: After | None = None, sizes: dict[str, int] | None = None
                 ) -> Failures:
        """Download (oid, local temp path) pairs. `after(oid, path, data)` runs as soon
        as each one has arrived (to verify and keep it). `data`: the bytes the remote
        wrote to `path` after checking them against `oid` itself (so they need not be
        hashed again, and the caller may use them without reading the file), or None;
        `sizes` are the expected sizes where known. Returns the failures by oid."""

    @abstractmethod
    def delete(self, oids: list[str]) -> Failures:
        """Delete objects (for `gc --cloud`)."""

    @abstractmethod
    def open(self, oid: str) -> Any:
        """A binary file object for reading one object (for `fsck`)."""

    # ---- keys: files named by their path under the remote's root (format 2) ------------
    # Every key is checked by `keys.check_key` (InvalidKeyError) before anything is done.

    @abstractmethod
    def put_key(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there: whole or not at all."""

    @abstractmethod
    def put_key_file(self, key: str, path: str, progress: Progress | None = None) -> None:
        """Store the bytes of the local file `path` under `key` (a big file: streamed),
        whole or not at all; `progress` hears of the bytes as they move."""

    @abstractmethod
    def get_key(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of `key`, or `data[start:end]` of them (offsets from the start; an
        `end` beyond the size stops at the end; a range past the end is empty).
        FileNotFoundError when there is no such key."""

    def get_bulk(self, key: str, start: int, end: int) -> bytes:
        """`get_key(key, start, end)` for a transfer that reads many such ranges from
        several threads (a pull's packs): a backend may take a faster path for them."""
        return self.get_key(key, start, end)

    @abstractmethod
    def list_keys(self, prefix: str) -> dict[str, int]:
        """key -> size of every key under the folder `prefix` ("" for the whole
        remote), at any depth; empty when there is none."""

    @abstractmethod
    def delete_keys(self, keys: list[str]) -> Failures:
        """Delete keys (one that is already gone is no failure); the failures by key."""

    def is_empty(self) -> bool:
        """True when the remote holds nothing at all."""
        return not self.list_keys("")

    @abstractmethod
    def keys_exist(self, keys: list[str]) -> set[str]:
        """Which of `keys` exist, asking about each one."""

    def remove_stale_temps(self, older_than: float) -> int:
        """Delete temp files that interrupted uploads left, if older than `older_than`
        seconds; returns how many. Only folders have them (an S3 object appears whole)."""
        return 0


def announce(progress: Progress | None, items: list[tuple[str, str]],
             sizes: dict[str, int] | None, upload: bool = False) -> None:
    """Add a transfer's files and bytes (where known) to `progress`'s totals."""
    if not progress:
        return
    known = sizes or {}
    total = 0
    for item in items:
        src, oid = item if upload else (item[1], item[0])
        size = known.get(oid)
        if size is None and upload:
            try:
                size = os.path.getsize(src)
            except OSError:
                size = 0
        total += size or 0
    progress(total_files=len(items), total_bytes=total)
