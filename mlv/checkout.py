"""Putting cache objects into the workspace with the configured link type."""

from __future__ import annotations

import os

from mlv import fsio
from mlv.errors import PathError
from mlv.odb import ObjectStore


def materialize(odb: ObjectStore, oid: str, dst: str, link_types: list[str],
                exec_bit: bool, skip: set[str] | None = None) -> os.stat_result:
    """Make `dst` hold object `oid`, atomically. Returns the new file's stat."""
    mode = 0o755 if exec_bit else 0o644
    ensure_folder(os.path.dirname(dst))
    return fsio.place_first_working(odb.path_of(oid), dst, link_types, mode, skip=skip)


def ensure_folder(folder: str) -> None:
    """Make `folder` exist as a real folder. Whatever else stands there (a file, a
    symlink) is never removed or written through: the caller clears the way first, and
    only with the user's --force."""
    if os.path.isdir(folder) and not os.path.islink(folder):
        return
    if os.path.lexists(folder):
        raise PathError(f"{folder} is in the way: a folder should be there",
                        hint="move it away, then run the command again")
    fsio.makedirs(folder)


def is_link_to(dst: str, odb: ObjectStore, oid: str, kind: str) -> bool:
    """True when `dst` already is a `kind` link to the object (for --relink and add)."""
    obj = odb.path_of(oid)
    try:
        if kind == "symlink":
            return os.path.islink(dst) and os.path.realpath(dst) == os.path.realpath(obj)
        if kind == "hardlink":
            return not os.path.islink(dst) and os.path.samefile(dst, obj)
    except OSError:
        return False
    # a copy or reflink: an independent file that is neither link
    return not os.path.islink(dst) and not os.path.samefile(dst, obj)


def wants_links(link_types: list[str]) -> bool:
    """True when the preferred link type replaces workspace files with links."""
    return link_types[0] in ("hardlink", "symlink")
