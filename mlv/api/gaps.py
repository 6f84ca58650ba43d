"""Manifests a remote holds without all of their files: found by `mlv status --cloud`
(or a fetch that missed files), repaired by the next `mlv push` to that remote.

A manifest on a remote vouches for its files, so `mlv push` normally does not ask
about them. When this clone has seen evidence that a remote's manifest lies (its files
were deleted behind mlv's back, or lost), it notes the manifest here, and the next push
to that remote checks every file the manifest lists and uploads what is missing.

The record is machine state in `.mlv/tmp/remote-gaps.json`, safe to delete:
`{"<key>": ["<oid>.dir", …]}`, where the key is a hash of the remote's URL (so a
password in a URL is never written down).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from mlv import fsio
from mlv.errors import MlvError
from mlv.hashing import hash_bytes, is_oid
from mlv.remote import Remote
from mlv.repo import Repo

NAME = "remote-gaps.json"
MAX_BYTES = 4 * 2**20  # far more than any real record; a bigger file is ignored


def _key(remote: Remote) -> str:
    return hash_bytes(remote.url.encode("utf-8", "surrogateescape"))


def _path(repo: Repo) -> str:
    return os.path.join(repo.tmp_dir, NAME)


def _load(repo: Repo) -> dict[str, list[str]]:
    """The whole record; anything unreadable or malformed counts as empty (it only
    makes a push check more than it must, never less than a plain push does)."""
    try:
        data = json.loads(fsio.read_regular(_path(repo), MAX_BYTES, NAME))
    except (OSError, ValueError, MlvError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {url: sorted({o for o in oids if isinstance(o, str) and _is_dir_oid(o)})
            for url, oids in data.items() if isinstance(url, str) and isinstance(oids, list)}


def _is_dir_oid(oid: str) -> bool:
    return oid.endswith(".dir") and is_oid(oid[:-4])


def _save(repo: Repo, record: dict[str, list[str]]) -> None:
    record = {url: oids for url, oids in sorted(record.items()) if oids}
    if not record:
        if os.path.lexists(_path(repo)):
            fsio.remove_file(_path(repo))
        return
    fsio.makedirs(repo.tmp_dir)
    fsio.atomic_write(_path(repo), (json.dumps(record, indent=1) + "\n").encode())


def recorded(repo: Repo, remote: Remote) -> set[str]:
    """The manifests on `remote` that this clone knows lack some of their files."""
    return set(_load(repo).get(_key(remote), []))


def record(repo: Repo, remote: Remote, manifests: Iterable[str]) -> None:
    """Note manifests on `remote` that list files the remote does not have."""
    new = {o for o in manifests if _is_dir_oid(o)}
    if not new:
        return
    data = _load(repo)
    if new <= set(data.get(_key(remote), [])):
        return
    data[_key(remote)] = sorted(new | set(data.get(_key(remote), [])))
    _save(repo, data)


def clear(repo: Repo, remote: Remote, manifests: Iterable[str]) -> None:
    """Forget manifests whose files are all on `remote` again."""
    gone = set(manifests)
    data = _load(repo)
    if not gone & set(data.get(_key(remote), [])):
        return
    data[_key(remote)] = sorted(set(data[_key(remote)]) - gone)
    _save(repo, data)
