"""Putting cache objects into the workspace with the configured link type."""

from __future__ import annotations

import os

from mlv import fsio
from mlv.odb import ObjectStore


def materialize(odb: ObjectStore, oid: str, dst: str, link_types: list[str],
                exec_bit: bool, skip: set[str] | None = None) -> os.stat_result:
    """Make `dst` hold object `oid`, atomically. Returns the new file's stat."""
    mode = 0o755 if exec_bit else 0o644
    folder = os.path.dirname(dst)
    if not os.path.isdir(folder):
        if os.path.lexists(folder):
            fsio.remove_file(folder)
        fsio.makedirs(folder)
    return fsio.place_first_working(odb.path_of(oid), dst, link_types, mode, skip=skip)


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
